/*
 * changes_payload.cpp: see changes_payload.hpp.
 */
#include "postgres_changes/changes_payload.hpp"

#include "base/json.hpp"

#include <ctime>

namespace rt::fanout
{

void
AppendCommitTimestamp(std::string &out, uint64_t unix_us)
{
	time_t secs = static_cast<time_t>(unix_us / 1000000);
	unsigned ms = static_cast<unsigned>((unix_us % 1000000) / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char buf[40];
	int n = snprintf(buf, sizeof(buf), "\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	out.append(buf, static_cast<size_t>(n));
}

namespace
{

void
AppendKey(std::string &out, bool &first, std::string_view name)
{
	if (!first)
		out += ',';
	first = false;
	json::AppendQuoted(out, name);
	out += ':';
}

} // namespace

void
AppendChangeData(std::string &out, const RingChange &c, const ColumnMask &mask, bool pk_only_old,
                 ChangeError error)
{
	using Action = RingChange::Action;
	out += R"({"schema":)";
	json::AppendQuoted(out, c.schema);
	out += R"(,"table":)";
	json::AppendQuoted(out, c.table);
	out += R"(,"commit_timestamp":)";
	if (error == ChangeError::kNone)
		AppendCommitTimestamp(out, c.commit_time_us);
	else
		out += "null";
	out += R"(,"type":")";
	out += c.type_name();
	out += R"(","columns":[)";
	bool first = true;
	if (error == ChangeError::kNone)
	{
		for (size_t i = 0; i < c.columns.size(); i++)
		{
			if (!mask[i])
				continue;
			out += first ? R"({"name":)" : R"(,{"name":)";
			first = false;
			json::AppendQuoted(out, c.columns[i].name);
			out += R"(,"type":)";
			json::AppendQuoted(out, c.columns[i].type);
			out += '}';
		}
	}
	out += ']';
	if (c.action != Action::kDelete)
	{
		out += R"(,"record":{)";
		first = true;
		for (size_t i = 0; error == ChangeError::kNone && i < c.columns.size(); i++)
		{
			const RingColumn &col = c.columns[i];
			/* an unchanged TOAST value takes the old one when the old row has it */
			std::string_view v = col.new_value.empty() ? col.old_value : col.new_value;
			if (!mask[i] || v.empty())
				continue;
			AppendKey(out, first, col.name);
			out += v;
		}
		out += '}';
	}
	if (c.action != Action::kInsert)
	{
		out += R"(,"old_record":{)";
		first = true;
		for (size_t i = 0; error == ChangeError::kNone && i < c.columns.size(); i++)
		{
			const RingColumn &col = c.columns[i];
			if (!mask[i] || col.old_value.empty() || (pk_only_old && !col.pk))
				continue;
			AppendKey(out, first, col.name);
			out += col.old_value;
		}
		out += '}';
	}
	out += R"(,"errors":)";
	switch (error)
	{
	case ChangeError::kNoPrimaryKey:
		out += R"(["Error 400: Bad Request, no primary key"])";
		break;
	case ChangeError::kUnauthorized:
		out += R"(["Error 401: Unauthorized"])";
		break;
	case ChangeError::kNone:
		out += c.too_large() ? R"(["Error 413: Payload Too Large"])" : "null";
		break;
	}
	out += '}';
}

std::string
ChangesPayloadHead(const std::vector<uint32_t> &ids)
{
	std::string out = R"({"ids":[)";
	for (size_t i = 0; i < ids.size(); i++)
	{
		if (i > 0)
			out += ',';
		out += std::to_string(ids[i]);
	}
	out += R"(],"data":)";
	return out;
}

} // namespace rt::fanout
