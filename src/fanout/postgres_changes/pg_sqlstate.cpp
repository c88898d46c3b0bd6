/*
 * pg_sqlstate.cpp: see pg_sqlstate.hpp.
 */
#include "postgres_changes/pg_sqlstate.hpp"

#include <algorithm>
#include <iterator>

namespace rt::fanout
{

namespace
{

struct Code
{
	const char *state;
	const char *name;
};

constexpr Code kCodes[] = {
#include "pg_errcodes.inc"
};

std::string_view
Field(const PGresult *res, int code)
{
	const char *v = PQresultErrorField(res, code);
	return v == nullptr ? std::string_view() : std::string_view(v);
}

} // namespace

std::string_view
SqlstateName(std::string_view sqlstate)
{
	auto it = std::find_if(std::begin(kCodes), std::end(kCodes),
	                       [&](const Code &c) { return sqlstate == c.state; });
	return it == std::end(kCodes) ? std::string_view() : std::string_view(it->name);
}

std::string
PostgrexErrorText(const PGresult *res)
{
	std::string_view severity = Field(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	std::string_view state = Field(res, PG_DIAG_SQLSTATE);
	std::string_view message = Field(res, PG_DIAG_MESSAGE_PRIMARY);
	std::string out(severity.empty() ? "ERROR" : severity);
	if (!state.empty())
	{
		out += ' ';
		out += state;
		std::string_view name = SqlstateName(state);
		if (!name.empty())
		{
			out += " (";
			out += name;
			out += ')';
		}
	}
	out += ' ';
	out += message;
	return out;
}

} // namespace rt::fanout
