/*
 * pg_changes_params.cpp: postgres_changes subscription parameters (see
 * pg_changes_params.hpp).
 *
 * Any thread; pure functions, no shared state. Every scan is a single pass
 * over string_views of the input, so hostile filters (huge, thousands of
 * commas, unbalanced quotes) cost linear time; nothing recurses here (the
 * Elixir rendering in elixir_inspect.cpp is bounded by its item limit).
 *
 * Behaviour follows upstream Supabase Realtime (lib/extensions/
 * postgres_cdc_rls/subscriptions.ex, the subscription_check_filters trigger)
 * where PROTOCOL.md is silent; comments say where.
 */
#include "postgres_changes/pg_changes_params.hpp"

#include "protocol/elixir_inspect.hpp"

#include <algorithm>

namespace rt::fanout
{

namespace
{

constexpr std::string_view kNoParams = "No subscription params provided. Please provide at least "
                                       "a `schema` or `table` to subscribe to: ";
constexpr std::string_view kFilterError = "Error parsing `filter` params: ";
constexpr std::string_view kEmptySegment =
    "filter must not contain empty segments (check for extra commas)";
constexpr std::string_view kInParens = "`in` filter value must be wrapped by parentheses";
constexpr std::string_view kSelectNotList =
    "Error parsing `select` params: expected a list of column name strings, e.g. select: "
    "[\"col1\", \"col2\"]";
constexpr std::string_view kSelectWildcard = "Column selection is not supported for wildcard "
                                             "subscriptions. Provide an explicit schema and table "
                                             "name.";
constexpr std::string_view kException = "Unable to subscribe to changes with given parameters. An "
                                        "exception happened so please check your connect "
                                        "parameters: [";

struct OpName
{
	std::string_view name;
	FilterOp op;
};

constexpr OpName kOps[] = {
    {"eq", FilterOp::kEq},
    {"neq", FilterOp::kNeq},
    {"lt", FilterOp::kLt},
    {"lte", FilterOp::kLte},
    {"gt", FilterOp::kGt},
    {"gte", FilterOp::kGte},
    {"in", FilterOp::kIn},
    {"like", FilterOp::kLike},
    {"ilike", FilterOp::kIlike},
    {"is", FilterOp::kIs},
    {"match", FilterOp::kMatch},
    {"imatch", FilterOp::kImatch},
    {"isdistinct", FilterOp::kIsDistinct},
};

Error
InvalidArgument(std::string message)
{
	return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

/* ---- parsing --------------------------------------------------------------------------- */

std::string_view
View(const rapidjson::Value &v)
{
	return std::string_view(v.GetString(), v.GetStringLength());
}

/* The member named name; the last one if repeated (Jason keeps the last). */
const rapidjson::Value *
LastMember(const rapidjson::Value &obj, std::string_view name)
{
	if (!obj.IsObject())
		return nullptr;
	const rapidjson::Value *found = nullptr;
	for (const auto &m : obj.GetObject())
		if (View(m.name) == name)
			found = &m.value;
	return found;
}

/*
 * String.upcase/1 of event compared with the three actions. Besides ASCII,
 * only U+0131 (dotless i -> I) and U+017F (long s -> S) upcase into their
 * letters, so those are the only other spellings that match.
 */
PgEvent
EventOf(const rapidjson::Value &entry)
{
	const rapidjson::Value *v = LastMember(entry, "event");
	if (v == nullptr || !v->IsString())
		return PgEvent::kAll;
	std::string_view s = View(*v);
	std::string upper;
	for (size_t i = 0; i < s.size() && upper.size() <= 6; i++)
	{
		unsigned char c = static_cast<unsigned char>(s[i]);
		if (c >= 'a' && c <= 'z')
			upper += static_cast<char>(c - 32);
		else if (c == 0xc4 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xb1)
			upper += 'I', i++;
		else if (c == 0xc5 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xbf)
			upper += 'S', i++;
		else
			upper += static_cast<char>(c);
	}
	if (upper == "INSERT")
		return PgEvent::kInsert;
	if (upper == "UPDATE")
		return PgEvent::kUpdate;
	if (upper == "DELETE")
		return PgEvent::kDelete;
	return PgEvent::kAll;
}

/*
 * Split at top-level commas: not inside (...) nor inside a "..." string. As
 * upstream, a quote opens a string only right after '.', '(' or a comma
 * inside parentheses (a comma that split resets that), a backslash inside a
 * string keeps the next byte, and an unclosed string runs to the end.
 */
std::vector<std::string_view>
SplitTopLevel(std::string_view filter)
{
	std::vector<std::string_view> parts;
	size_t start = 0;
	int depth = 0;
	bool quoted = false;
	char prev = 0;
	for (size_t i = 0; i < filter.size(); i++)
	{
		char c = filter[i];
		if (quoted)
		{
			if (c == '\\' && i + 1 < filter.size())
				c = filter[++i];
			else if (c == '"')
				quoted = false;
			prev = c;
			continue;
		}
		if (c == '"' && (prev == '.' || prev == '(' || prev == ','))
			quoted = true;
		else if (c == '(')
			depth++;
		else if (c == ')')
			depth = depth > 0 ? depth - 1 : 0;
		else if (c == ',' && depth == 0)
		{
			parts.push_back(filter.substr(start, i - start));
			start = i + 1;
			prev = 0;
			continue;
		}
		prev = c;
	}
	parts.push_back(filter.substr(start));
	return parts;
}

/*
 * A value "..." loses its quotes and backslash escapes; one that is not
 * exactly one well-formed string (text after the closing quote, unclosed,
 * trailing lone backslash) is kept as written, as upstream does.
 */
std::string
Unquote(std::string_view v)
{
	if (v.empty() || v[0] != '"')
		return std::string(v);
	std::string out;
	for (size_t i = 1; i < v.size(); i++)
	{
		char c = v[i];
		if (c == '"')
			return i + 1 == v.size() ? out : std::string(v);
		if (c == '\\' && i + 1 < v.size())
			c = v[++i];
		out += c;
	}
	return std::string(v);
}

IsKeyword
KeywordOf(std::string_view v)
{
	/* compared as text by the trigger: case matters */
	if (v == "null")
		return IsKeyword::kNull;
	if (v == "true")
		return IsKeyword::kTrue;
	if (v == "false")
		return IsKeyword::kFalse;
	if (v == "unknown")
		return IsKeyword::kUnknown;
	return IsKeyword::kNone;
}

/* array_in's whitespace. */
bool
IsArraySpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

enum class InList : uint8_t
{
	kOk,
	kMalformed,
	kTooMany,
};

/*
 * Read the inside of a one-dimensional Postgres array literal, as array_in
 * does: elements split by commas, optional whitespace around them, "quoted"
 * elements, backslash escapes anywhere, an unquoted NULL (any case) is SQL
 * NULL, "{}" is empty. Nested braces (multi-dimensional arrays) count as
 * malformed. Malformed wins over too many (the cast fails first); values are
 * kept only when neither.
 */
InList
ReadInList(std::string_view s, std::vector<std::string> *values, bool *has_null)
{
	size_t count = 0;
	size_t i = 0;
	auto skip_space = [&]()
	{
		while (i < s.size() && IsArraySpace(s[i]))
			i++;
	};
	skip_space();
	if (i == s.size())
		return InList::kOk;
	std::vector<std::string> out;
	bool null_seen = false;
	for (;;)
	{
		skip_space();
		std::string elem;
		bool is_null = false;
		if (i < s.size() && s[i] == '"')
		{
			for (i++;; i++)
			{
				if (i >= s.size())
					return InList::kMalformed;
				if (s[i] == '"')
					break;
				if (s[i] == '\\')
				{
					if (++i >= s.size())
						return InList::kMalformed;
				}
				elem += s[i];
			}
			i++;
			skip_space();
		}
		else
		{
			size_t kept = 0; /* elem length up to the last escaped or non-space byte */
			bool escaped = false;
			while (i < s.size() && s[i] != ',')
			{
				char c = s[i];
				if (c == '"' || c == '{' || c == '}')
					return InList::kMalformed;
				if (c == '\\')
				{
					if (++i >= s.size())
						return InList::kMalformed;
					elem += s[i++];
					kept = elem.size();
					escaped = true;
					continue;
				}
				elem += c;
				if (!IsArraySpace(c))
					kept = elem.size();
				i++;
			}
			elem.resize(kept);
			if (elem.empty() && !escaped)
				return InList::kMalformed;
			is_null = !escaped && elem.size() == 4 && (elem[0] | 0x20) == 'n' &&
			          (elem[1] | 0x20) == 'u' && (elem[2] | 0x20) == 'l' && (elem[3] | 0x20) == 'l';
		}
		count++;
		if (count <= kMaxInValues)
		{
			if (is_null)
				null_seen = true;
			else
				out.push_back(std::move(elem));
		}
		if (i == s.size())
			break;
		if (s[i] != ',')
			return InList::kMalformed;
		i++;
	}
	if (count > kMaxInValues)
		return InList::kTooMany;
	if (values != nullptr)
		*values = std::move(out);
	if (has_null != nullptr)
		*has_null = null_seen;
	return InList::kOk;
}

/* Parse one non-empty, trimmed condition; the reason text on error. */
std::optional<std::string>
ParseCondition(std::string_view seg, PgFilter &f)
{
	size_t eq = seg.find('=');
	if (eq == std::string_view::npos)
		return elixir::InspectStrings({seg});
	f.column = std::string(seg.substr(0, eq));
	std::string_view rest = seg.substr(eq + 1);
	f.negated = rest.starts_with("not.");
	if (f.negated)
		rest.remove_prefix(4);
	size_t dot = rest.find('.');
	if (dot == std::string_view::npos)
		return elixir::InspectStrings({rest});
	std::string_view op = rest.substr(0, dot);
	std::string_view value = rest.substr(dot + 1);
	auto it = std::find_if(std::begin(kOps), std::end(kOps),
	                       [&](const OpName &o) { return o.name == op; });
	if (it == std::end(kOps))
		return elixir::InspectStrings({op, value});
	f.op = it->op;
	if (f.op == FilterOp::kIn)
	{
		if (value.size() < 2 || value.front() != '(' || value.back() != ')')
			return std::string(kInParens);
		std::string_view inner = value.substr(1, value.size() - 2);
		f.value.reserve(inner.size() + 2);
		f.value += '{';
		f.value += inner;
		f.value += '}';
		ReadInList(inner, &f.values, &f.in_has_null);
		return std::nullopt;
	}
	f.value = Unquote(value);
	if (f.op == FilterOp::kIs)
		f.keyword = KeywordOf(f.value);
	return std::nullopt;
}

/* The filter string: empty or blank is no filter; else AND-ed conditions. */
std::optional<std::string>
ParseFilter(std::string_view filter, std::vector<PgFilter> &out)
{
	std::string_view trimmed = elixir::Trim(filter);
	if (trimmed.empty())
		return std::nullopt;
	for (std::string_view part : SplitTopLevel(trimmed))
	{
		std::string_view seg = elixir::Trim(part);
		if (seg.empty())
			return std::string(kEmptySegment);
		PgFilter f;
		if (std::optional<std::string> err = ParseCondition(seg, f))
			return err;
		out.push_back(std::move(f));
	}
	return std::nullopt;
}

/* A filter as upstream's 4-tuple {column, op, value, negate}, under the item limit. */
elixir::Doc
FilterDoc(const PgFilter &f, int limit)
{
	std::string_view parts[3] = {f.column, FilterOpName(f.op), f.value};
	const int fields[] = {0, 1, 2, 3};
	return elixir::ContainerDoc(
	    "{", "}",
	    elixir::LimitedDocs(fields, limit,
	                        [&](int k, int item_limit)
	                        {
		                        if (k < 3)
			                        return elixir::StringDoc(parts[k], item_limit);
		                        return elixir::Text(f.negated ? "true" : "false");
	                        }));
}

Error
CheckError(const PgChangesParams &p, std::string_view pg_error)
{
	return InvalidArgument(PgChangesExceptionText(p, pg_error));
}

bool
HasNul(std::string_view s)
{
	return s.find('\0') != std::string_view::npos;
}

bool
ImpossibleName(std::string_view s)
{
	return s.empty() || s.size() > kMaxIdentifierBytes;
}

} // namespace

std::string_view
PgEventName(PgEvent event)
{
	switch (event)
	{
	case PgEvent::kInsert:
		return "INSERT";
	case PgEvent::kUpdate:
		return "UPDATE";
	case PgEvent::kDelete:
		return "DELETE";
	case PgEvent::kAll:
		break;
	}
	return "*";
}

std::string_view
FilterOpName(FilterOp op)
{
	for (const OpName &o : kOps)
		if (o.op == op)
			return o.name;
	return "eq";
}

Result<PgChangesParams>
ParsePgChangesParams(const rapidjson::Value &entry)
{
	PgChangesParams p;
	p.event = EventOf(entry);

	/* select is read first: its shape error wins over everything else (upstream) */
	if (const rapidjson::Value *sel = LastMember(entry, "select"))
	{
		if (sel->IsString())
			return InvalidArgument(std::string(kSelectNotList));
		if (sel->IsArray())
		{
			std::vector<std::string> cols;
			for (const rapidjson::Value &c : sel->GetArray())
				if (c.IsString())
					cols.emplace_back(View(c));
			if (!cols.empty())
				p.select = std::move(cols);
		}
	}

	const rapidjson::Value *schema = LastMember(entry, "schema");
	const rapidjson::Value *table = LastMember(entry, "table");
	const rapidjson::Value *filter = LastMember(entry, "filter");
	bool schema_s = schema != nullptr && schema->IsString();
	bool table_s = table != nullptr && table->IsString();

	/* the accepted combinations (PROTOCOL.md 6.1); a key present with a non-string value
	 * (null included) does not count as absent */
	if (schema_s && table_s && filter != nullptr && filter->IsString())
	{
		if (std::optional<std::string> err = ParseFilter(View(*filter), p.filters))
			return InvalidArgument(std::string(kFilterError) + *err);
		p.schema = View(*schema);
		p.table = View(*table);
	}
	else if (schema_s && table_s && filter == nullptr)
	{
		p.schema = View(*schema);
		p.table = View(*table);
	}
	else if (schema_s && table == nullptr && filter == nullptr)
	{
		p.schema = View(*schema);
		p.table = "*";
	}
	else if (table_s && schema == nullptr && filter == nullptr)
	{
		p.schema = "public";
		p.table = View(*table);
	}
	else
	{
		/* upstream keeps tokens out of the text */
		bool secret = LastMember(entry, "user_token") != nullptr ||
		              LastMember(entry, "auth_token") != nullptr;
		return InvalidArgument(std::string(kNoParams) +
		                       (secret ? std::string("<redacted>") : elixir::Inspect(entry)));
	}

	if (p.select && (p.schema == "*" || p.table == "*"))
		return InvalidArgument(std::string(kSelectWildcard));
	return p;
}

std::optional<Error>
CheckPgChangesText(const PgChangesParams &p)
{
	/* text parameters: Postgres refuses a NUL byte before the row exists */
	bool nul = HasNul(p.schema) || HasNul(p.table);
	for (const PgFilter &f : p.filters)
		nul = nul || HasNul(f.column) || HasNul(f.value);
	if (p.select)
		for (const std::string &c : *p.select)
			nul = nul || HasNul(c);
	if (nul)
		return CheckError(p, "ERROR 22021 (character_not_in_repertoire) invalid byte sequence "
		                     "for encoding \"UTF8\": 0x00");
	return std::nullopt;
}

std::optional<Error>
CheckPgChangesParams(const PgChangesParams &p)
{
	/* the trigger, per filter in the order given */
	for (const PgFilter &f : p.filters)
	{
		if (ImpossibleName(f.column))
			return CheckError(p, "ERROR P0001 (raise_exception) invalid column for filter " +
			                         f.column);
		if (f.op == FilterOp::kIn)
		{
			std::string_view inner;
			if (f.value.size() >= 2)
				inner = std::string_view(f.value).substr(1, f.value.size() - 2);
			InList r = ReadInList(inner, nullptr, nullptr);
			if (r == InList::kMalformed)
				return CheckError(p, "ERROR 22P02 (invalid_text_representation) malformed array "
				                     "literal: \"" +
				                         f.value + "\"");
			if (r == InList::kTooMany)
				return CheckError(p, "ERROR P0001 (raise_exception) too many values for `in` "
				                     "filter. Maximum 100");
		}
		else if (f.op == FilterOp::kIs && f.keyword == IsKeyword::kNone)
			return CheckError(p, "ERROR P0001 (raise_exception) invalid value for is filter: must "
			                     "be null, true, false, or unknown");
	}
	if (p.select)
		for (const std::string &c : *p.select)
			if (ImpossibleName(c))
				return CheckError(p,
				                  "ERROR P0001 (raise_exception) invalid column for select " + c);
	return std::nullopt;
}

std::string
PgChangesExceptionText(const PgChangesParams &p, std::string_view pg_error)
{
	std::string msg(kException);
	msg += RenderPgChangesParams(p);
	msg += "]. Exception: ";
	msg += pg_error;
	return msg;
}

std::string
PgChangesNoTableText(const PgChangesParams &p)
{
	std::string msg = "Unable to subscribe to changes with given parameters. Please check Realtime "
	                  "is enabled for the given connect parameters: [";
	msg += RenderPgChangesParams(p);
	msg += ']';
	return msg;
}

std::string
RenderPgChangesParams(const PgChangesParams &p)
{
	/* params_to_log: strings as they are, filters and select through inspect(pretty: true) */
	std::string out = "event: ";
	out += PgEventName(p.event);
	out += ", schema: ";
	out += p.schema;
	out += ", table: ";
	out += p.table;
	out += ", filters: ";
	out += elixir::Pretty(elixir::ContainerDoc(
	    "[", "]", elixir::LimitedDocs(p.filters, elixir::kInspectLimit, FilterDoc)));
	out += ", select: ";
	if (!p.select)
		out += "nil";
	else
		out += elixir::Pretty(elixir::ContainerDoc(
		    "[", "]", elixir::LimitedDocs(*p.select, elixir::kInspectLimit, elixir::StringDoc)));
	return out;
}

} // namespace rt::fanout
