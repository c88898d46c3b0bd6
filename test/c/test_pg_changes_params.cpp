/*
 * test_pg_changes_params.cpp: unit tests of postgres_changes parameter parsing
 * (src/fanout/pg_changes_params.cpp).
 *
 * Single-threaded CMocka program. Every accepted key combination, every
 * operator, quoting and splitting rule, every client-facing error text
 * byte for byte (PROTOCOL.md 6.1, 6.6; upstream subscriptions.ex and the
 * subscription_check_filters trigger), the rendering of parameters in them
 * (test_elixir_inspect.cpp covers the renderer itself), and hostile inputs
 * (huge, comma floods, NUL, deep nesting) with a time bound.
 */
/* ours and std first: cmocka.h defines a fail() macro that <ios> would trip over */
#include "base/json.hpp"
#include "postgres_changes/pg_changes_params.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
/* cmocka.h 1.1 has no extern "C" guard of its own. */
extern "C"
{
#include <cmocka.h>
}

using rt::fanout::CheckPgChangesParams;
using rt::fanout::CheckPgChangesText;
using rt::fanout::Error;
using rt::fanout::FilterOp;
using rt::fanout::FilterOpName;
using rt::fanout::IsKeyword;
using rt::fanout::kMaxIdentifierBytes;
using rt::fanout::kMaxInValues;
using rt::fanout::ParsePgChangesParams;
using rt::fanout::PgChangesParams;
using rt::fanout::PgEvent;
using rt::fanout::PgEventName;
using rt::fanout::PgFilter;
using rt::fanout::RenderPgChangesParams;
using rt::fanout::Result;

namespace
{

using namespace std::string_literals;

constexpr std::string_view kNoParams = "No subscription params provided. Please provide at least "
                                       "a `schema` or `table` to subscribe to: ";
constexpr std::string_view kException = "Unable to subscribe to changes with given parameters. An "
                                        "exception happened so please check your connect "
                                        "parameters: [";

/* Parse JSON text (must be valid) and then the entry. */
Result<PgChangesParams>
Parse(std::string_view json_text)
{
	rapidjson::Document doc;
	if (!rt::fanout::json::Parse(doc, json_text))
	{
		std::fprintf(stderr, "bad test JSON: %.*s\n", static_cast<int>(json_text.size()),
		             json_text.data());
		fail();
	}
	return ParsePgChangesParams(doc);
}

PgChangesParams
ParseOk(std::string_view json_text)
{
	Result<PgChangesParams> r = Parse(json_text);
	if (!r.ok())
	{
		std::fprintf(stderr, "unexpected error for %.*s: %s\n", static_cast<int>(json_text.size()),
		             json_text.data(), r.error().message.c_str());
		fail();
	}
	return r.value();
}

void
ExpectError(std::string_view json_text, std::string_view message)
{
	Result<PgChangesParams> r = Parse(json_text);
	if (r.ok())
	{
		std::fprintf(stderr, "expected an error for %.*s\n", static_cast<int>(json_text.size()),
		             json_text.data());
		fail();
	}
	if (r.error().message != message)
	{
		std::fprintf(stderr, "for %.*s\n  got:  %s\n  want: %.*s\n",
		             static_cast<int>(json_text.size()), json_text.data(),
		             r.error().message.c_str(), static_cast<int>(message.size()), message.data());
		fail();
	}
	assert_int_equal(static_cast<int>(r.error().code),
	                 static_cast<int>(rt::fanout::ErrorCode::kInvalidArgument));
}

/* A join config of schema public, table t and this filter string, parsed. */
Result<PgChangesParams>
ParseWithFilter(std::string_view filter)
{
	rapidjson::Document doc;
	doc.SetObject();
	auto &a = doc.GetAllocator();
	doc.AddMember("schema", "public", a);
	doc.AddMember("table", "t", a);
	doc.AddMember(
	    "filter",
	    rapidjson::Value(filter.data(), static_cast<rapidjson::SizeType>(filter.size()), a), a);
	return ParsePgChangesParams(doc);
}

/* Filter string -> parsed filters (schema public, table t). */
std::vector<PgFilter>
Filters(std::string_view filter)
{
	Result<PgChangesParams> r = ParseWithFilter(filter);
	if (!r.ok())
	{
		std::fprintf(stderr, "filter error: %s\n", r.error().message.c_str());
		fail();
	}
	return r.value().filters;
}

/* The error text for a filter string. */
std::string
FilterError(std::string_view filter)
{
	Result<PgChangesParams> r = ParseWithFilter(filter);
	if (r.ok())
	{
		std::fprintf(stderr, "expected a filter error\n");
		fail();
	}
	return r.error().message;
}

/* The error text of steps 2 and 3, in that order ("" when both pass). */
std::string
CheckText(const PgChangesParams &p)
{
	std::optional<Error> e = CheckPgChangesText(p);
	if (!e)
		e = CheckPgChangesParams(p);
	return e ? e->message : std::string();
}

PgChangesParams
WithFilter(std::string_view filter)
{
	PgChangesParams p;
	p.schema = "public";
	p.table = "t";
	p.filters = Filters(filter);
	return p;
}

void
ExpectFilter(const PgFilter &f, std::string_view column, FilterOp op, bool negated,
             std::string_view value)
{
	assert_string_equal(f.column.c_str(), std::string(column).c_str());
	assert_string_equal(std::string(FilterOpName(f.op)).c_str(),
	                    std::string(FilterOpName(op)).c_str());
	assert_int_equal(f.negated, negated);
	assert_string_equal(f.value.c_str(), std::string(value).c_str());
}

double
MsSince(std::chrono::steady_clock::time_point t0)
{
	return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/* ---- key combinations ------------------------------------------------------------------ */

void
TestCombinations(void **)
{
	PgChangesParams p = ParseOk(R"({"schema":"public","table":"todos","filter":"id=eq.1"})");
	assert_string_equal(p.schema.c_str(), "public");
	assert_string_equal(p.table.c_str(), "todos");
	assert_int_equal(p.filters.size(), 1);
	ExpectFilter(p.filters[0], "id", FilterOp::kEq, false, "1");
	assert_false(p.select.has_value());
	assert_int_equal(static_cast<int>(p.event), static_cast<int>(PgEvent::kAll));

	p = ParseOk(R"({"schema":"public","table":"todos"})");
	assert_string_equal(p.table.c_str(), "todos");
	assert_true(p.filters.empty());

	p = ParseOk(R"({"schema":"app"})");
	assert_string_equal(p.schema.c_str(), "app");
	assert_string_equal(p.table.c_str(), "*");

	p = ParseOk(R"({"table":"todos"})");
	assert_string_equal(p.schema.c_str(), "public");
	assert_string_equal(p.table.c_str(), "todos");

	p = ParseOk(R"({"schema":"*","table":"*","event":"*"})");
	assert_string_equal(p.schema.c_str(), "*");
	assert_string_equal(p.table.c_str(), "*");

	/* unknown keys are ignored; the join's "id" echo is not our business */
	p = ParseOk(R"({"schema":"public","table":"t","id":5,"extra":[1]})");
	assert_string_equal(p.table.c_str(), "t");

	/* empty and blank filters are no filter */
	assert_true(ParseOk(R"({"schema":"public","table":"t","filter":""})").filters.empty());
	assert_true(ParseOk(R"({"schema":"public","table":"t","filter":" \t\n "})").filters.empty());
	/* String.trim takes Unicode White_Space (no-break spaces too), not U+200B */
	assert_true(
	    ParseOk("{\"schema\":\"public\",\"table\":\"t\",\"filter\":\"\u3000\u2028\u00a0\u202f\"}")
	        .filters.empty());
	ExpectError("{\"schema\":\"public\",\"table\":\"t\",\"filter\":\"\u200b\"}",
	            "Error parsing `filter` params: [\"\u200b\"]");
	ExpectFilter(
	    ParseOk("{\"table\":\"t\",\"schema\":\"s\",\"filter\":\"\u2007a=eq.1\u0085\"}").filters[0],
	    "a", FilterOp::kEq, false, "1");

	/* duplicate keys: the last counts */
	p = ParseOk(R"({"schema":"a","table":"t","schema":"b"})");
	assert_string_equal(p.schema.c_str(), "b");
}

void
TestMissingParams(void **)
{
	std::string np(kNoParams);
	ExpectError("{}", np + "%{}");
	ExpectError(R"({"schema":"public","filter":"id=eq.1"})",
	            np + R"(%{"filter" => "id=eq.1", "schema" => "public"})");
	ExpectError(R"({"table":"t","filter":"id=eq.1"})",
	            np + R"(%{"filter" => "id=eq.1", "table" => "t"})");
	ExpectError(R"({"filter":"id=eq.1"})", np + R"(%{"filter" => "id=eq.1"})");
	ExpectError(R"({"event":"INSERT"})", np + R"(%{"event" => "INSERT"})");
	/* present but not a string: not absent either */
	ExpectError(R"({"schema":"public","table":null})",
	            np + R"(%{"schema" => "public", "table" => nil})");
	ExpectError(R"({"schema":"public","table":{"actually a":"map"}})",
	            np + R"(%{"schema" => "public", "table" => %{"actually a" => "map"}})");
	ExpectError(R"({"schema":"public","table":"t","filter":null})",
	            np + R"(%{"filter" => nil, "schema" => "public", "table" => "t"})");
	ExpectError(R"({"schema":7,"table":"t"})", np + R"(%{"schema" => 7, "table" => "t"})");
	/* not an object at all */
	ExpectError(R"("public")", np + R"("public")");
	ExpectError("42", np + "42");
	ExpectError("null", np + "nil");
	ExpectError("[]", np + "[]");
	ExpectError(R"([{"schema":"public"}])", np + R"([%{"schema" => "public"}])");
	/* tokens are redacted */
	ExpectError(R"({"user_token":"secret"})", np + "<redacted>");
	ExpectError(R"({"auth_token":null,"filter":"x"})", np + "<redacted>");
}

void
TestEvent(void **)
{
	struct
	{
		const char *json;
		PgEvent want;
	} cases[] = {
	    {R"({"table":"t","event":"*"})", PgEvent::kAll},
	    {R"({"table":"t","event":"INSERT"})", PgEvent::kInsert},
	    {R"({"table":"t","event":"insert"})", PgEvent::kInsert},
	    {R"({"table":"t","event":"Update"})", PgEvent::kUpdate},
	    {R"({"table":"t","event":"deLETE"})", PgEvent::kDelete},
	    {R"({"table":"t","event":"TRUNCATE"})", PgEvent::kAll},
	    {R"({"table":"t","event":"INSERTS"})", PgEvent::kAll},
	    {R"({"table":"t","event":" INSERT"})", PgEvent::kAll},
	    {R"({"table":"t","event":""})", PgEvent::kAll},
	    {R"({"table":"t","event":3})", PgEvent::kAll},
	    {R"({"table":"t","event":null})", PgEvent::kAll},
	    {R"({"table":"t"})", PgEvent::kAll},
	    /* String.upcase: dotless i and long s upcase to I and S */
	    {"{\"table\":\"t\",\"event\":\"\u0131nsert\"}", PgEvent::kInsert},
	    {"{\"table\":\"t\",\"event\":\"in\u017fert\"}", PgEvent::kInsert},
	};
	for (const auto &c : cases)
		assert_int_equal(static_cast<int>(ParseOk(c.json).event), static_cast<int>(c.want));
	assert_string_equal(std::string(PgEventName(PgEvent::kAll)).c_str(), "*");
	assert_string_equal(std::string(PgEventName(PgEvent::kDelete)).c_str(), "DELETE");
}

/* ---- filters ----------------------------------------------------------------------------- */

void
TestOperators(void **)
{
	struct
	{
		const char *op;
		FilterOp want;
	} ops[] = {
	    {"eq", FilterOp::kEq},         {"neq", FilterOp::kNeq},
	    {"lt", FilterOp::kLt},         {"lte", FilterOp::kLte},
	    {"gt", FilterOp::kGt},         {"gte", FilterOp::kGte},
	    {"like", FilterOp::kLike},     {"ilike", FilterOp::kIlike},
	    {"is", FilterOp::kIs},         {"match", FilterOp::kMatch},
	    {"imatch", FilterOp::kImatch}, {"isdistinct", FilterOp::kIsDistinct},
	};
	for (const auto &o : ops)
	{
		for (bool neg : {false, true})
		{
			std::string filter = "col="s + (neg ? "not." : "") + o.op + ".null";
			std::vector<PgFilter> f = Filters(filter);
			assert_int_equal(f.size(), 1);
			ExpectFilter(f[0], "col", o.want, neg, "null");
			assert_string_equal(std::string(FilterOpName(o.want)).c_str(), o.op);
		}
	}
	std::vector<PgFilter> f = Filters("name=in.(red,blue,yellow)");
	ExpectFilter(f[0], "name", FilterOp::kIn, false, "{red,blue,yellow}");
	assert_int_equal(f[0].values.size(), 3);
	assert_string_equal(f[0].values[2].c_str(), "yellow");
	f = Filters("name=not.in.(a)");
	ExpectFilter(f[0], "name", FilterOp::kIn, true, "{a}");

	/* the documented examples */
	f = Filters("qty=gt.10,qty=lt.100");
	assert_int_equal(f.size(), 2);
	ExpectFilter(f[0], "qty", FilterOp::kGt, false, "10");
	ExpectFilter(f[1], "qty", FilterOp::kLt, false, "100");
	ExpectFilter(Filters("title=not.ilike.%draft%")[0], "title", FilterOp::kIlike, true, "%draft%");
	ExpectFilter(Filters("deleted_at=is.null")[0], "deleted_at", FilterOp::kIs, false, "null");
	ExpectFilter(Filters("status=neq.done")[0], "status", FilterOp::kNeq, false, "done");

	/* value keeps everything after the first dot; column everything before the first '=' */
	ExpectFilter(Filters("v=eq.1.5")[0], "v", FilterOp::kEq, false, "1.5");
	ExpectFilter(Filters("a=eq.b=c")[0], "a", FilterOp::kEq, false, "b=c");
	ExpectFilter(Filters("a=eq.")[0], "a", FilterOp::kEq, false, "");
	ExpectFilter(Filters("=eq.1")[0], "", FilterOp::kEq, false, "1");
	ExpectFilter(Filters("a =eq.1")[0], "a ", FilterOp::kEq, false, "1");
	ExpectFilter(Filters("a=eq.not.x")[0], "a", FilterOp::kEq, false, "not.x");
	ExpectFilter(Filters("  a=eq.1  ,  b=eq.2  ")[1], "b", FilterOp::kEq, false, "2");
	/* unicode passes through untouched */
	ExpectFilter(Filters("名前=eq.東京")[0], "名前", FilterOp::kEq, false, "東京");
}

void
TestIsKeyword(void **)
{
	struct
	{
		const char *filter;
		IsKeyword want;
	} cases[] = {
	    {"a=is.null", IsKeyword::kNull},     {"a=is.true", IsKeyword::kTrue},
	    {"a=is.false", IsKeyword::kFalse},   {"a=is.unknown", IsKeyword::kUnknown},
	    {"a=not.is.null", IsKeyword::kNull}, {"a=is.\"null\"", IsKeyword::kNull},
	    {"a=is.NULL", IsKeyword::kNone},     {"a=is.nil", IsKeyword::kNone},
	    {"a=is.", IsKeyword::kNone},
	};
	for (const auto &c : cases)
		assert_int_equal(static_cast<int>(Filters(c.filter)[0].keyword), static_cast<int>(c.want));
	assert_int_equal(static_cast<int>(Filters("a=eq.null")[0].keyword),
	                 static_cast<int>(IsKeyword::kNone));
}

void
TestSplitting(void **)
{
	/* commas inside parentheses do not split */
	std::vector<PgFilter> f = Filters("id=in.(1,2,3),name=eq.x");
	assert_int_equal(f.size(), 2);
	ExpectFilter(f[0], "id", FilterOp::kIn, false, "{1,2,3}");
	ExpectFilter(f[1], "name", FilterOp::kEq, false, "x");

	/* nor inside a quoted value; the quotes go, escapes resolve */
	f = Filters(R"(area=eq."Oslo, Norway",b=eq.2)");
	assert_int_equal(f.size(), 2);
	ExpectFilter(f[0], "area", FilterOp::kEq, false, "Oslo, Norway");
	f = Filters(R"(a=eq."say \"hi\", \\ bye")");
	ExpectFilter(f[0], "a", FilterOp::kEq, false, R"(say "hi", \ bye)");
	/* parentheses inside quotes do not count */
	f = Filters(R"~(a=eq."(",b=eq.")")~");
	assert_int_equal(f.size(), 2);
	ExpectFilter(f[0], "a", FilterOp::kEq, false, "(");
	ExpectFilter(f[1], "b", FilterOp::kEq, false, ")");
	/* quoted elements inside in.(...) */
	f = Filters(R"(a=in.("x,y",z),b=eq.1)");
	assert_int_equal(f.size(), 2);
	ExpectFilter(f[0], "a", FilterOp::kIn, false, R"({"x,y",z})");
	assert_int_equal(f[0].values.size(), 2);
	assert_string_equal(f[0].values[0].c_str(), "x,y");
	/* a quote opens a string only after '.', '(' or ',' : here it does not */
	assert_string_equal(FilterError(R"(a=eq.x"y,z")").c_str(),
	                    R"(Error parsing `filter` params: ["z\""])");
	/* nor right after a top-level comma (upstream resets its memory there) */
	assert_string_equal(FilterError(R"(a=eq.1,"b,c"=eq.2)").c_str(),
	                    R"(Error parsing `filter` params: ["\"b"])");
	/* an unclosed quote runs to the end: one condition, value kept as written */
	f = Filters(R"(a=eq."x,y=eq.2)");
	assert_int_equal(f.size(), 1);
	ExpectFilter(f[0], "a", FilterOp::kEq, false, R"("x,y=eq.2)");
	/* text after the closing quote: kept as written */
	ExpectFilter(Filters(R"(a=eq."x"y)")[0], "a", FilterOp::kEq, false, R"("x"y)");
	/* a trailing lone backslash: kept as written */
	ExpectFilter(Filters(R"(a=eq."x\)")[0], "a", FilterOp::kEq, false, R"("x\)");
	/* a backslash outside quotes is an ordinary byte and does not escape a comma */
	f = Filters(R"(a=eq.x\,b=eq.y)");
	assert_int_equal(f.size(), 2);
	ExpectFilter(f[0], "a", FilterOp::kEq, false, R"(x\)");
	/* unbalanced ')' never goes below zero: the next comma still splits */
	f = Filters("a=eq.)),b=eq.2");
	assert_int_equal(f.size(), 2);
	/* an unclosed '(' swallows the rest */
	f = Filters("a=eq.(x,b=eq.2");
	assert_int_equal(f.size(), 1);
	ExpectFilter(f[0], "a", FilterOp::kEq, false, "(x,b=eq.2");
	/* quoted value of `in` is not unquoted; it then lacks its parentheses */
	assert_string_equal(FilterError(R"~(a=in."(1,2)")~").c_str(),
	                    "Error parsing `filter` params: `in` filter value must be wrapped by "
	                    "parentheses");
}

void
TestFilterErrors(void **)
{
	const std::string pre = "Error parsing `filter` params: ";
	struct
	{
		const char *filter;
		std::string want;
	} cases[] = {
	    {"subject=foo.hey", pre + R"(["foo", "hey"])"},
	    {"undefined", pre + R"(["undefined"])"},
	    {"id=eq", pre + R"(["eq"])"},
	    {"id=", pre + R"([""])"},
	    {"id=not.eq", pre + R"(["eq"])"},
	    {"id=not.foo.1", pre + R"(["foo", "1"])"},
	    {"id=EQ.1", pre + R"(["EQ", "1"])"},
	    {"id=not.not.eq.1", pre + R"(["not", "eq.1"])"},
	    {"id=.1", pre + R"(["", "1"])"},
	    {"id=gt.0,id=foo.100", pre + R"(["foo", "100"])"},
	    {"id=eq.1,nonsense", pre + R"(["nonsense"])"},
	    {"id=in.1,2", pre + "`in` filter value must be wrapped by parentheses"},
	    {"id=in.(1,2", pre + "`in` filter value must be wrapped by parentheses"},
	    {"id=in.", pre + "`in` filter value must be wrapped by parentheses"},
	    {"id=in.(", pre + "`in` filter value must be wrapped by parentheses"},
	    {"id=in.1)", pre + "`in` filter value must be wrapped by parentheses"},
	    {"id=eq.1,,id=eq.2", pre + "filter must not contain empty segments (check for extra "
	                               "commas)"},
	    {"id=eq.1,", pre + "filter must not contain empty segments (check for extra commas)"},
	    {",id=eq.1", pre + "filter must not contain empty segments (check for extra commas)"},
	    {"id=eq.1, ,id=eq.2", pre + "filter must not contain empty segments (check for extra "
	                                "commas)"},
	    {",", pre + "filter must not contain empty segments (check for extra commas)"},
	    /* the first failing segment is reported */
	    {"a=foo.1,,", pre + R"(["foo", "1"])"},
	    /* escapes in the rendered parts: quote, backslash, newline, #{ */
	    {"a=x.\"q\\\n#{", pre + R"(["x", "\"q\\\n\#{"])"},
	};
	for (const auto &c : cases)
		assert_string_equal(FilterError(c.filter).c_str(), c.want.c_str());
	/* a NUL or control byte makes a part non-printable: Elixir prints its bytes */
	assert_string_equal(FilterError("a\0b"s).c_str(), (pre + "[<<97, 0, 98>>]").c_str());
	assert_string_equal(FilterError("a=x.\x01"s).c_str(), (pre + R"(["x", <<1>>])").c_str());
}

void
TestSelect(void **)
{
	PgChangesParams p = ParseOk(R"({"schema":"public","table":"t","select":["id","name"]})");
	assert_true(p.select.has_value());
	assert_int_equal(p.select->size(), 2);
	assert_string_equal((*p.select)[1].c_str(), "name");
	/* non-strings are dropped; none left is no selection */
	p = ParseOk(R"({"schema":"public","table":"t","select":["id",1,null,"x"]})");
	assert_int_equal(p.select->size(), 2);
	assert_false(ParseOk(R"({"schema":"public","table":"t","select":[]})").select.has_value());
	assert_false(ParseOk(R"({"schema":"public","table":"t","select":[1]})").select.has_value());
	assert_false(ParseOk(R"({"schema":"public","table":"t","select":7})").select.has_value());
	assert_false(ParseOk(R"({"schema":"public","table":"t","select":null})").select.has_value());
	assert_false(ParseOk(R"({"schema":"public","table":"t","select":{}})").select.has_value());
	/* with table only, the schema is public: allowed */
	assert_true(ParseOk(R"({"table":"t","select":["id"]})").select.has_value());

	const char *not_list = "Error parsing `select` params: expected a list of column name "
	                       "strings, e.g. select: [\"col1\", \"col2\"]";
	const char *wildcard = "Column selection is not supported for wildcard subscriptions. "
	                       "Provide an explicit schema and table name.";
	ExpectError(R"({"schema":"public","table":"t","select":"id,name"})", not_list);
	/* the select shape is checked before anything else */
	ExpectError(R"({"select":"id"})", not_list);
	ExpectError(R"({"schema":"public","table":"t","filter":"bad","select":"id"})", not_list);
	ExpectError(R"({"schema":"public","select":["id"]})", wildcard);
	ExpectError(R"({"schema":"*","table":"t","select":["id"]})", wildcard);
	ExpectError(R"({"schema":"public","table":"*","select":["id"]})", wildcard);
	/* a filter error wins over the wildcard one */
	ExpectError(R"({"schema":"*","table":"*","filter":"x","select":["id"]})",
	            R"(Error parsing `filter` params: ["x"])");
	/* wildcard without select is fine */
	assert_string_equal(ParseOk(R"({"schema":"public","table":"*","select":[]})").table.c_str(),
	                    "*");
}

/* ---- rendering and inspect ------------------------------------------------------------- */

void
TestRender(void **)
{
	PgChangesParams p = ParseOk(R"({"table":"x"})");
	assert_string_equal(RenderPgChangesParams(p).c_str(),
	                    "event: *, schema: public, table: x, filters: [], select: nil");
	p = ParseOk(R"({"event":"insert","schema":"public","table":"test","filter":)"
	            R"~("subject=eq.hey,id=not.in.(1,2)","select":["id","subject"]})~");
	assert_string_equal(RenderPgChangesParams(p).c_str(),
	                    "event: INSERT, schema: public, table: test, filters: [{\"subject\", "
	                    "\"eq\", \"hey\", false}, {\"id\", \"in\", \"{1,2}\", true}], select: "
	                    "[\"id\", \"subject\"]");
	/* schema and table are printed raw, filter strings escaped */
	p = ParseOk(R"({"schema":"a\"b","table":"t","filter":"c=eq.\"x\\\"y\""})");
	assert_string_equal(RenderPgChangesParams(p).c_str(),
	                    "event: *, schema: a\"b, table: t, filters: [{\"c\", \"eq\", \"x\\\"y\", "
	                    "false}], select: nil");
	/* item limits: 60 filters show 50 then "..."; late tuples are cut too */
	std::string filter;
	for (int i = 0; i < 60; i++)
		filter += (i ? "," : "") + "c"s + std::to_string(i) + "=eq." + std::to_string(i);
	p = WithFilter(filter);
	std::string r = RenderPgChangesParams(p);
	assert_true(
	    r.find("\n  {\"c45\", \"eq\", \"45\", false},\n  {\"c46\", \"eq\", \"46\", ...},\n"
	           "  {\"c47\", \"eq\", ...},\n  {\"c48\", ...},\n  {...},\n  ...\n], select: nil") !=
	    std::string::npos);
}

/* Upstream pretty-prints filters and select at 80 columns (inspect(x, pretty: true)). */
void
TestRenderPretty(void **)
{
	const std::string head = "event: *, schema: public, table: t, filters: ";
	/* wider than 80: one tuple per line, 2 columns in */
	PgChangesParams p = WithFilter("id=eq.1,name=eq.something,other=gt.12345");
	assert_string_equal(RenderPgChangesParams(p).c_str(),
	                    (head +
	                     "[\n  {\"id\", \"eq\", \"1\", false},\n  {\"name\", \"eq\", "
	                     "\"something\", false},\n  {\"other\", \"gt\", \"12345\", false}\n], "
	                     "select: nil")
	                        .c_str());
	/* exactly 80 columns stay on one line; 81 break, and the tuple's own breaks are flex */
	std::string v56(56, 'v');
	p = WithFilter("a=eq." + v56);
	assert_string_equal(RenderPgChangesParams(p).c_str(),
	                    (head + "[{\"a\", \"eq\", \"" + v56 + "\", false}], select: nil").c_str());
	std::string v57(57, 'v');
	p = WithFilter("a=eq." + v57);
	assert_string_equal(
	    RenderPgChangesParams(p).c_str(),
	    (head + "[\n  {\"a\", \"eq\", \"" + v57 + "\",\n   false}\n], select: nil").c_str());
	/* a long value goes to its own line, 3 columns in */
	p = WithFilter(
	    "description=eq.a very long value that goes on and on and on and on and on and on");
	assert_string_equal(RenderPgChangesParams(p).c_str(),
	                    (head +
	                     "[\n  {\"description\", \"eq\",\n   \"a very long value that goes on "
	                     "and on and on and on and on and on\", false}\n], select: nil")
	                        .c_str());
	/* select: a flex list, broken where the next item would pass column 80 */
	p = ParseOk(R"({"schema":"public","table":"t","select":["column_one","column_two",)"
	            R"("column_three","column_four","column_five","column_six"]})");
	p.table = "t";
	assert_string_equal(RenderPgChangesParams(p).c_str(),
	                    (head + "[], select: [\"column_one\", \"column_two\", \"column_three\", "
	                            "\"column_four\", \"column_five\",\n \"column_six\"]")
	                        .c_str());
	/* a non-printable value is a <<bytes>> group: the tuple is no longer simple */
	p = WithFilter("a=eq.\x01"s + std::string(40, 'y'));
	std::string want = head + "[\n  {\n    \"a\",\n    \"eq\",\n    <<1";
	for (int i = 0; i < 40; i++)
		want += (i == 14 || i == 29) ? ",\n     121" : ", 121";
	want += ">>,\n    false\n  }\n], select: nil";
	assert_string_equal(RenderPgChangesParams(p).c_str(), want.c_str());
}

/* ---- check stage ------------------------------------------------------------------------ */

void
TestCheckIn(void **)
{
	const std::string pre(kException);
	/* exactly 100 values pass, 101 do not */
	std::string in = "id=in.(";
	for (size_t i = 0; i < kMaxInValues; i++)
		in += (i ? "," : "") + std::to_string(i);
	PgChangesParams p = WithFilter(in + ")");
	assert_string_equal(CheckText(p).c_str(), "");
	assert_int_equal(p.filters[0].values.size(), kMaxInValues);
	p = WithFilter(in + ",100)");
	assert_true(p.filters[0].values.empty());
	std::string want = pre + RenderPgChangesParams(p) +
	                   "]. Exception: ERROR P0001 (raise_exception) too many values for `in` "
	                   "filter. Maximum 100";
	assert_string_equal(CheckText(p).c_str(), want.c_str());

	/* array literal rules */
	p = WithFilter(R"(a=in.( x , "y z" ,NULL,"NULL",nu\ll,\ w\ ,""))");
	assert_string_equal(CheckText(p).c_str(), "");
	const PgFilter &f = p.filters[0];
	assert_true(f.in_has_null);
	assert_int_equal(f.values.size(), 6);
	const char *vals[] = {"x", "y z", "NULL", "null", " w ", ""};
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(f.values[i].c_str(), vals[i]);
	p = WithFilter("a=in.()");
	assert_string_equal(CheckText(p).c_str(), "");
	assert_true(p.filters[0].values.empty());
	assert_false(p.filters[0].in_has_null);
	assert_string_equal(CheckText(WithFilter("a=in.(  )")).c_str(), "");

	for (const char *bad : {"a=in.(1,,2)", "a=in.(1,)", "a=in.(,1)", "a=in.(a\"b)", "a=in.(\"a\"b)",
	                        "a=in.({1,2})", "a=in.(1})", "a=in.(\"a)", "a=in.(a\\)"})
	{
		PgChangesParams q = WithFilter(bad);
		std::string value = q.filters[0].value;
		std::string expect = pre + RenderPgChangesParams(q) +
		                     "]. Exception: ERROR 22P02 (invalid_text_representation) malformed "
		                     "array literal: \"" +
		                     value + "\"";
		assert_string_equal(CheckText(q).c_str(), expect.c_str());
	}
	/* malformed wins over too many */
	std::string both = in + ",100,,)";
	p = WithFilter(both);
	assert_true(CheckText(p).find("malformed array literal") != std::string::npos);
}

void
TestCheckOther(void **)
{
	const std::string pre(kException);
	PgChangesParams p = WithFilter("a=is.maybe");
	assert_string_equal(CheckText(p).c_str(),
	                    (pre +
	                     "event: *, schema: public, table: t, filters: [{\"a\", \"is\", \"maybe\", "
	                     "false}], select: nil]. Exception: ERROR P0001 (raise_exception) invalid "
	                     "value for is filter: must be null, true, false, or unknown")
	                        .c_str());
	for (const char *ok : {"a=is.null", "a=not.is.true", "a=is.false", "a=is.unknown"})
		assert_string_equal(CheckText(WithFilter(ok)).c_str(), "");

	/* column names: 63 bytes may exist, 64 cannot; empty cannot */
	std::string col63(kMaxIdentifierBytes, 'c');
	assert_string_equal(CheckText(WithFilter(col63 + "=eq.1")).c_str(), "");
	std::string col64 = col63 + "c";
	p = WithFilter(col64 + "=eq.1");
	assert_string_equal(CheckText(p).c_str(),
	                    (pre + RenderPgChangesParams(p) +
	                     "]. Exception: ERROR P0001 (raise_exception) invalid column for filter " +
	                     col64)
	                        .c_str());
	p = WithFilter("=eq.1");
	assert_true(CheckText(p).ends_with("invalid column for filter "));
	/* the column is checked before the value, filters in the order given */
	p = WithFilter("b=is.x,=in.(1,,)");
	assert_true(CheckText(p).ends_with("invalid value for is filter: must be null, true, false, "
	                                   "or unknown"));
	p = WithFilter("=is.x");
	assert_true(CheckText(p).ends_with("invalid column for filter "));

	/* select columns */
	p = ParseOk(R"({"schema":"public","table":"t","select":["id",""]})");
	assert_true(CheckText(p).ends_with("invalid column for select "));
	p.select = std::vector<std::string>{"id", col64};
	assert_true(CheckText(p).ends_with("invalid column for select " + col64));
	p.select = std::vector<std::string>{"id", col63};
	assert_string_equal(CheckText(p).c_str(), "");

	/* NUL bytes anywhere: Postgres refuses the text parameter first */
	const std::string nul_error = "]. Exception: ERROR 22021 (character_not_in_repertoire) invalid "
	                              "byte sequence for encoding \"UTF8\": 0x00";
	p = ParseOk(R"({"schema":"public","table":"t\u0000"})");
	assert_string_equal(CheckText(p).c_str(),
	                    (pre + "event: *, schema: public, table: t" + std::string(1, '\0') +
	                     ", filters: [], select: nil" + nul_error)
	                        .c_str());
	assert_true(CheckText(p).ends_with(nul_error));
	p = WithFilter("a=eq.x\0y"s);
	assert_true(CheckText(p).ends_with(nul_error));
	assert_true(CheckText(p).find("{\"a\", \"eq\", <<120, 0, 121>>, false}") != std::string::npos);
	p = WithFilter("a=is.maybe");
	p.select = std::vector<std::string>{"x\0"s};
	assert_true(CheckText(p).ends_with(nul_error));
	/* NUL is step 2 only: step 3 reports what it checks */
	assert_true(CheckPgChangesParams(p)->message.ends_with("or unknown"));
	assert_false(CheckPgChangesText(WithFilter("a=is.maybe")).has_value());
	/* a hand-built in filter without braces does not crash */
	PgChangesParams hand;
	hand.schema = "s";
	hand.table = "t";
	hand.filters.push_back(PgFilter{"a", FilterOp::kIn, false, "", {}, false, IsKeyword::kNone});
	assert_string_equal(CheckText(hand).c_str(), "");
}

/* ---- hostile input ---------------------------------------------------------------------- */

void
TestHostile(void **)
{
	auto t0 = std::chrono::steady_clock::now();

	/* a megabyte of commas: the first empty segment stops it */
	std::string commas(1 << 20, ',');
	assert_true(FilterError(commas).ends_with("(check for extra commas)"));
	/* 10,000 commas inside parentheses: one condition; its literal is malformed */
	PgChangesParams p = WithFilter("a=in.(" + std::string(10000, ',') + ")");
	assert_int_equal(p.filters.size(), 1);
	assert_true(CheckText(p).find("malformed array literal") != std::string::npos);
	/* 100,000 values in one in-list: parsed once, refused, nothing stored */
	std::string in = "a=in.(";
	for (int i = 0; i < 100000; i++)
		in += (i ? ",x" : "x");
	p = WithFilter(in + ")");
	assert_true(p.filters[0].values.empty());
	assert_true(CheckText(p).ends_with("Maximum 100"));
	/* 50,000 valid conditions */
	std::string many;
	for (int i = 0; i < 50000; i++)
		many += (i ? ",c=eq." : "c=eq.") + std::to_string(i);
	assert_int_equal(Filters(many).size(), 50000);
	/* a megabyte inside one unclosed quote, one of backslashes, one of '(' */
	assert_int_equal(Filters("a=eq.\"" + std::string(1 << 20, ',')).size(), 1);
	assert_int_equal(Filters("a=eq.\"" + std::string(1 << 20, '\\')).size(), 1);
	assert_int_equal(Filters("a=eq." + std::string(1 << 20, '(') + ",").size(), 1);
	assert_int_equal(Filters("a=eq." + std::string(1 << 20, ')') + ",b=eq.1").size(), 2);
	/* a megabyte of blanks, of '=' and of dots */
	assert_true(Filters(std::string(1 << 20, ' ')).empty());
	assert_true(FilterError("a" + std::string(1 << 20, '='))
	                .starts_with("Error parsing `filter` params: [\"===="));
	assert_true(FilterError("a=" + std::string(1 << 20, '.'))
	                .starts_with("Error parsing `filter` params: [\"\", \"...."));
	/* an unknown operator a megabyte long: rendered, cut at 4096 characters */
	std::string err = FilterError("a=" + std::string(1 << 20, 'o') + ".1");
	assert_true(err.size() < 4200);
	assert_true(err.ends_with("\" <> ..., \"1\"]"));
	/* long names parse; the check refuses them */
	p = WithFilter(std::string(1 << 16, 'c') + "=eq.1");
	assert_true(CheckText(p).find("invalid column for filter") != std::string::npos);
	/* invalid UTF-8 cannot come from the JSON decoder, but the renderer copes */
	p = WithFilter("a=eq.\xff\xfe");
	assert_true(RenderPgChangesParams(p).find("<<255, 254>>") != std::string::npos);

	/* deep nesting in the entry: the rendering stops at the item limit */
	rapidjson::Document doc;
	doc.SetObject();
	rapidjson::Value deep(rapidjson::kArrayType);
	for (int i = 0; i < 100000; i++)
	{
		rapidjson::Value outer(rapidjson::kArrayType);
		outer.PushBack(deep, doc.GetAllocator());
		deep = outer;
	}
	doc.AddMember("filter", deep, doc.GetAllocator());
	Result<PgChangesParams> r = ParsePgChangesParams(doc);
	assert_false(r.ok());
	assert_true(r.error().message.find("...") != std::string::npos);
	assert_true(r.error().message.size() < 1000);
	/* a wide object: 100,000 keys, 50 shown */
	rapidjson::Document wide;
	wide.SetObject();
	for (int i = 0; i < 100000; i++)
	{
		std::string k = "k" + std::to_string(i);
		wide.AddMember(rapidjson::Value(k.c_str(), wide.GetAllocator()), rapidjson::Value(i),
		               wide.GetAllocator());
	}
	r = ParsePgChangesParams(wide);
	assert_false(r.ok());
	assert_true(r.error().message.ends_with(", ...}"));

	double ms = MsSince(t0);
	std::printf("# hostile inputs took %.0f ms\n", ms);
	assert_true(ms < 5000);
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestCombinations), cmocka_unit_test(TestMissingParams),
	    cmocka_unit_test(TestEvent),        cmocka_unit_test(TestOperators),
	    cmocka_unit_test(TestIsKeyword),    cmocka_unit_test(TestSplitting),
	    cmocka_unit_test(TestFilterErrors), cmocka_unit_test(TestSelect),
	    cmocka_unit_test(TestRender),       cmocka_unit_test(TestRenderPretty),
	    cmocka_unit_test(TestCheckIn),      cmocka_unit_test(TestCheckOther),
	    cmocka_unit_test(TestHostile),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
