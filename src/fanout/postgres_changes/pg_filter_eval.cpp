/*
 * pg_filter_eval.cpp: Postgres Changes filter evaluation (see
 * pg_filter_eval.hpp).
 *
 * Any thread; no shared mutable state but a per-thread decode buffer. The
 * row side is parsed in place on every call, strictly: anything that is not
 * the rendering to_jsonb gives for the kind is "malformed" and fails the
 * filter. The right-hand side is parsed once, at compile time.
 *
 * Values are read by pg_jsonb_scalar.cpp (which lists the renderings), LIKE
 * and regexes matched by pg_filter_pattern.cpp (ilike and regex caveats
 * there). Approximate here, by design:
 *   - float: Postgres compares the binary values; we see their shortest
 *     round-trip decimals, which order the same way and are equal exactly
 *     when the floats are (-0 prints as 0, and -0 = 0 in Postgres too).
 *   - char(n): comparisons ignore trailing spaces, LIKE and regexes see them
 *     (as Postgres: 'ab'::char(5) LIKE 'ab' is false).
 *   - kOther: eq/neq/in/isdistinct compare the canonical jsonb text, which is
 *     Postgres's equality for most types but not all (interval '1 day' =
 *     '24 hours', citext, numbers of different scale inside jsonb); a jsonb
 *     column holding JSON null reads as SQL NULL.
 */
#include "postgres_changes/pg_filter_eval.hpp"

#include "base/json.hpp"
#include "postgres_changes/pg_filter_pattern.hpp"
#include "postgres_changes/pg_jsonb_scalar.hpp"

#include <cstdint>
#include <exception>

namespace rt::fanout
{

namespace
{

enum class Tri : uint8_t
{
	kFalse,
	kTrue,
	kNull,
};

Tri
FromBool(bool b)
{
	return b ? Tri::kTrue : Tri::kFalse;
}

std::string_view
TrimTrailingSpaces(std::string_view s)
{
	while (!s.empty() && s.back() == ' ')
		s.remove_suffix(1);
	return s;
}

/* ---- typed values ----------------------------------------------------------------------- */

/* One side of a comparison; views point into the input or an operand. */
struct Value
{
	bool null = false;
	int64_t num = 0;
	uint64_t hi = 0, lo = 0;
	Decimal dec;
	std::string_view text; /* decoded text (bpchar trimmed), or kOther JSON */
};

/* Parse j as a value of kind (null -> SQL NULL); false if malformed. */
bool
ParseValue(ValueKind kind, std::string_view j, Value *v)
{
	*v = Value{};
	if (j == "null")
		return v->null = true, true;
	switch (kind)
	{
	case ValueKind::kInt:
		return ParseJsonInt(j, &v->num);
	case ValueKind::kFloat:
	case ValueKind::kNumeric:
		return ParseJsonDecimal(j, &v->dec);
	case ValueKind::kBool:
		v->num = j == "true";
		return j == "true" || j == "false";
	case ValueKind::kText:
		return DecodedJsonString(j, &v->text);
	case ValueKind::kBpchar:
		if (!DecodedJsonString(j, &v->text))
			return false;
		v->text = TrimTrailingSpaces(v->text);
		return true;
	case ValueKind::kUuid:
		return ParseJsonUuid(j, &v->hi, &v->lo);
	case ValueKind::kDate:
		return ParseJsonDate(j, &v->num);
	case ValueKind::kTimestamp:
	case ValueKind::kTimestampTz:
		return ParseJsonTimestamp(j, kind == ValueKind::kTimestampTz, &v->num);
	case ValueKind::kTime:
		return ParseJsonTime(j, &v->num);
	case ValueKind::kOther:
		v->text = j;
		return true;
	}
	return false;
}

Value
ValueOf(const FilterOperand &o)
{
	Value v;
	v.null = o.null;
	v.num = o.num;
	v.hi = o.hi;
	v.lo = o.lo;
	v.dec.cls = o.cls;
	v.dec.neg = o.neg;
	v.dec.exp = o.num;
	v.dec.digits = o.text;
	v.text = o.text;
	return v;
}

/* The operand form of a parsed rhs value: views become owned strings. */
FilterOperand
OperandOf(ValueKind kind, const Value &v)
{
	FilterOperand o;
	o.null = v.null;
	o.num = v.num;
	o.hi = v.hi;
	o.lo = v.lo;
	if (kind == ValueKind::kFloat || kind == ValueKind::kNumeric)
	{
		o.cls = v.dec.cls;
		o.neg = v.dec.neg;
		o.num = v.dec.exp;
		for (char c : v.dec.digits)
			if (c != '.')
				o.text += c;
	}
	else
		o.text = std::string(v.text);
	return o;
}

int
CompareBytes(std::string_view a, std::string_view b)
{
	int c = a.compare(b);
	return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

/* Three-way compare of two non-NULL values (kOther: 0 or 1, equality only). */
int
Compare(ValueKind kind, const Value &a, const Value &b)
{
	switch (kind)
	{
	case ValueKind::kFloat:
	case ValueKind::kNumeric:
		return CompareDecimal(a.dec, b.dec);
	case ValueKind::kUuid:
		if (a.hi != b.hi)
			return a.hi < b.hi ? -1 : 1;
		return a.lo == b.lo ? 0 : (a.lo < b.lo ? -1 : 1);
	case ValueKind::kText:
	case ValueKind::kBpchar:
		return CompareBytes(a.text, b.text);
	case ValueKind::kOther:
		return a.text == b.text ? 0 : 1;
	default:
		return a.num == b.num ? 0 : (a.num < b.num ? -1 : 1);
	}
}

/* ---- compile ---------------------------------------------------------------------------- */

Error
FilterError(const PgFilter &f, std::string_view typname, std::string_view what)
{
	std::string m = "filter on column \"" + f.column + "\" (type " + std::string(typname) + "): ";
	m += f.negated ? "not." : "";
	m += FilterOpName(f.op);
	m += ' ';
	m += what;
	return Error{ErrorCode::kInvalidArgument, std::move(m)};
}

bool
IsOrdering(FilterOp op)
{
	return op == FilterOp::kLt || op == FilterOp::kLte || op == FilterOp::kGt ||
	       op == FilterOp::kGte;
}

bool
IsPattern(FilterOp op)
{
	return op == FilterOp::kLike || op == FilterOp::kIlike || op == FilterOp::kMatch ||
	       op == FilterOp::kImatch;
}

/* Top-level elements of a validated JSON array, as raw text. */
std::vector<std::string_view>
ArrayElements(std::string_view j)
{
	std::vector<std::string_view> out;
	auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
	size_t i = j.find('[') + 1;
	int depth = 0;
	bool in_string = false;
	size_t start = i;
	for (; i < j.size(); i++)
	{
		char c = j[i];
		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
			depth++;
		else if ((c == ']' && depth == 0) || (c == ',' && depth == 0))
		{
			std::string_view e = j.substr(start, i - start);
			while (!e.empty() && space(e.front()))
				e.remove_prefix(1);
			while (!e.empty() && space(e.back()))
				e.remove_suffix(1);
			if (!e.empty() || c == ',')
				out.push_back(e);
			if (c == ']')
				break;
			start = i + 1;
		}
		else if (c == ']' || c == '}')
			depth--;
	}
	return out;
}

Result<CompiledFilter>
CompileChecked(const PgFilter &f, std::string_view typname, std::string_view rhs_json,
               bool text_orders_bytewise)
{
	CompiledFilter c;
	c.op = f.op;
	c.negated = f.negated;
	c.kind = ValueKindOfType(typname);
	c.keyword = f.keyword;

	if (f.op == FilterOp::kIs)
	{
		if (f.keyword == IsKeyword::kNone)
			return FilterError(f, typname, "needs null, true, false or unknown");
		if (f.keyword != IsKeyword::kNull && c.kind != ValueKind::kBool)
			return FilterError(f, typname, "needs a boolean column");
		return c;
	}
	if (IsOrdering(f.op))
	{
		if (c.kind == ValueKind::kOther)
			return FilterError(f, typname,
			                   "cannot be evaluated outside the database: values of this type "
			                   "support only eq, neq, in, isdistinct and is null here");
		if (c.kind == ValueKind::kText && !text_orders_bytewise && typname != "name")
			return FilterError(f, typname,
			                   "cannot be evaluated outside the database: ordering text depends "
			                   "on the column's collation, which does not order bytes");
	}
	if (IsPattern(f.op) && c.kind != ValueKind::kText && c.kind != ValueKind::kBpchar)
		return FilterError(f, typname, "needs a text column");

	if (json::NestingWithin(rhs_json, 64) == false)
		return FilterError(f, typname, "value is nested too deeply");
	rapidjson::Document doc;
	if (!json::Parse(doc, rhs_json))
		return FilterError(f, typname, "value is not valid JSON");

	if (IsPattern(f.op))
	{
		if (!doc.IsString())
			return FilterError(f, typname, "pattern is not a JSON string");
		std::string_view pattern(doc.GetString(), doc.GetStringLength());
		if (f.op == FilterOp::kLike || f.op == FilterOp::kIlike)
		{
			if (!CompileLikePattern(pattern, f.op == FilterOp::kIlike, &c.like))
				return FilterError(f, typname, "LIKE pattern must not end with escape character");
			return c;
		}
		Result<std::shared_ptr<const CompiledRegex>> re =
		    CompileRegex(pattern, f.op == FilterOp::kImatch);
		if (!re.ok())
			return FilterError(f, typname, re.error().message);
		c.regex = std::move(re.value());
		return c;
	}

	std::vector<std::string_view> items;
	if (f.op == FilterOp::kIn)
	{
		if (!doc.IsArray())
			return FilterError(f, typname, "value is not a JSON array");
		items = ArrayElements(rhs_json);
		if (items.size() != doc.Size())
			return FilterError(f, typname, "value is not a JSON array");
	}
	else
		items.push_back(rhs_json);
	for (std::string_view item : items)
	{
		Value v;
		if (!ParseValue(c.kind, item, &v))
			return FilterError(f, typname,
			                   "value " + std::string(item.substr(0, 64)) +
			                       " is not a rendering of the column type");
		if (f.op == FilterOp::kIn && v.null)
			c.in_has_null = true;
		else
			c.operands.push_back(OperandOf(c.kind, v));
	}
	return c;
}

/* ---- evaluate --------------------------------------------------------------------------- */

Tri
Evaluate(const CompiledFilter &f, std::string_view j)
{
	Value v;
	if (!ParseValue(f.kind, j, &v))
		return Tri::kNull;
	switch (f.op)
	{
	case FilterOp::kIs:
		if (f.keyword == IsKeyword::kNull || f.keyword == IsKeyword::kUnknown)
			return FromBool(v.null);
		return FromBool(!v.null && v.num == (f.keyword == IsKeyword::kTrue ? 1 : 0));
	case FilterOp::kIsDistinct:
	{
		Value r = ValueOf(f.operands.front());
		if (v.null || r.null)
			return FromBool(v.null != r.null);
		return FromBool(Compare(f.kind, v, r) != 0);
	}
	case FilterOp::kIn:
	{
		if (v.null)
			return Tri::kNull;
		for (const FilterOperand &o : f.operands)
			if (Compare(f.kind, v, ValueOf(o)) == 0)
				return Tri::kTrue;
		return f.in_has_null ? Tri::kNull : Tri::kFalse;
	}
	case FilterOp::kLike:
	case FilterOp::kIlike:
	case FilterOp::kMatch:
	case FilterOp::kImatch:
	{
		if (v.null)
			return Tri::kNull;
		/* char(n) matches with its padding: decode again without the trim */
		std::string_view t = v.text;
		if (f.kind == ValueKind::kBpchar && !DecodedJsonString(j, &t))
			return Tri::kNull;
		if (f.op == FilterOp::kLike || f.op == FilterOp::kIlike)
			return FromBool(LikeMatches(f.like, t, f.op == FilterOp::kIlike));
		return FromBool(RegexMatches(*f.regex, t));
	}
	default:
		break;
	}
	Value r = ValueOf(f.operands.front());
	if (v.null || r.null)
		return Tri::kNull;
	int cmp = Compare(f.kind, v, r);
	switch (f.op)
	{
	case FilterOp::kEq:
		return FromBool(cmp == 0);
	case FilterOp::kNeq:
		return FromBool(cmp != 0);
	case FilterOp::kLt:
		return FromBool(cmp < 0);
	case FilterOp::kLte:
		return FromBool(cmp <= 0);
	case FilterOp::kGt:
		return FromBool(cmp > 0);
	case FilterOp::kGte:
		return FromBool(cmp >= 0);
	default:
		return Tri::kNull;
	}
}

} // namespace

ValueKind
ValueKindOfType(std::string_view t)
{
	if (t == "int2" || t == "int4" || t == "int8" || t == "oid")
		return ValueKind::kInt;
	if (t == "float4" || t == "float8")
		return ValueKind::kFloat;
	if (t == "numeric")
		return ValueKind::kNumeric;
	if (t == "bool")
		return ValueKind::kBool;
	if (t == "text" || t == "varchar" || t == "name")
		return ValueKind::kText;
	if (t == "bpchar")
		return ValueKind::kBpchar;
	if (t == "uuid")
		return ValueKind::kUuid;
	if (t == "date")
		return ValueKind::kDate;
	if (t == "timestamp")
		return ValueKind::kTimestamp;
	if (t == "timestamptz")
		return ValueKind::kTimestampTz;
	if (t == "time")
		return ValueKind::kTime;
	return ValueKind::kOther;
}

Result<CompiledFilter>
CompileFilter(const PgFilter &f, std::string_view typname, std::string_view rhs_json,
              bool text_orders_bytewise)
{
	try
	{
		return CompileChecked(f, typname, rhs_json, text_orders_bytewise);
	}
	catch (const std::exception &e)
	{
		return Error{ErrorCode::kInternal, std::string("filter compilation failed: ") + e.what()};
	}
	catch (...)
	{
		return Error{ErrorCode::kInternal, "filter compilation failed"};
	}
}

bool
FilterMatches(const CompiledFilter &f, std::optional<std::string_view> value_json)
{
	if (!value_json)
		return false;
	try
	{
		Tri t = Evaluate(f, *value_json);
		if (f.negated && t != Tri::kNull)
			t = t == Tri::kTrue ? Tri::kFalse : Tri::kTrue;
		return t == Tri::kTrue;
	}
	catch (...)
	{
		return false;
	}
}

} // namespace rt::fanout
