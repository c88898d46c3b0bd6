/*
 * test_pg_filter_eval.cpp: unit tests of Postgres Changes filter evaluation
 * (src/fanout/pg_filter_eval.cpp).
 *
 * Single-threaded CMocka program. Tables of cases, one per value kind: every
 * operator, `not.`, NULL and absent values, `in` with NULL elements, numeric
 * scale, NaN and infinities, timestamps with and without fractions, BC
 * dates, char(n) padding, uuid order, LIKE escapes, ilike, regexes; then
 * compile errors and malformed inputs.
 *
 * The table cases marked for Postgres can be checked against a server:
 *   build/test/test_pg_filter_eval --sql | psql -X -At -h HOST -p PORT -U postgres
 * prints one line per case where Postgres disagrees, then "checked N cases".
 * Each case becomes coalesce(<lhs> <op> <rhs>, false) with both sides cast
 * from their to_jsonb text back to the column type.
 */
/* ours and std first: cmocka.h defines a fail() macro that <ios> would trip over */
#include "postgres_changes/pg_filter_eval.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
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

using rt::fanout::CompiledFilter;
using rt::fanout::CompileFilter;
using rt::fanout::FilterMatches;
using rt::fanout::FilterOp;
using rt::fanout::FilterOpName;
using rt::fanout::IsKeyword;
using rt::fanout::PgFilter;
using rt::fanout::Result;
using rt::fanout::ValueKind;
using rt::fanout::ValueKindOfType;

namespace
{

/* One evaluation: typname, [not.]op, rhs JSON (`is`: the keyword), row JSON or absent. */
struct Case
{
	const char *type;
	const char *op;
	const char *rhs;
	const char *lhs; /* nullptr: the column is absent */
	bool expect;
	bool pg = true; /* part of the --sql check */
};

const Case kIntCases[] = {
    {"int4", "eq", "5", "5", true},
    {"int4", "eq", "5", "6", false},
    {"int4", "not.eq", "5", "6", true},
    {"int4", "neq", "5", "5", false},
    {"int4", "neq", "5", "-5", true},
    {"int4", "lt", "5", "4", true},
    {"int4", "lt", "5", "5", false},
    {"int4", "lte", "5", "5", true},
    {"int4", "gt", "5", "6", true},
    {"int4", "gte", "5", "4", false},
    {"int4", "not.gte", "5", "4", true},
    {"int4", "eq", "5", "null", false},
    {"int4", "not.eq", "5", "null", false},
    {"int4", "neq", "5", "null", false},
    {"int4", "eq", "5", nullptr, false},
    {"int4", "not.eq", "5", nullptr, false},
    {"int2", "lt", "-3", "-4", true},
    {"int8", "eq", "9223372036854775807", "9223372036854775807", true},
    {"int8", "gt", "9223372036854775807", "-9223372036854775808", false},
    {"int8", "lt", "9223372036854775807", "-9223372036854775808", true},
    {"oid", "eq", "\"4294967295\"", "\"4294967295\"", true},
    {"oid", "lt", "\"4294967295\"", "\"7\"", true},
    {"int4", "in", "[1, 2, 3]", "2", true},
    {"int4", "in", "[1, 2, 3]", "4", false},
    {"int4", "not.in", "[1, 2, 3]", "4", true},
    {"int4", "not.in", "[1, 2, 3]", "2", false},
    {"int4", "in", "[1, null]", "1", true},
    {"int4", "in", "[1, null]", "3", false},
    {"int4", "not.in", "[1, null]", "3", false},
    {"int4", "not.in", "[1, null]", "1", false},
    {"int4", "in", "[1, 2]", "null", false},
    {"int4", "not.in", "[1, 2]", "null", false},
    {"int4", "in", "[]", "1", false},
    {"int4", "isdistinct", "5", "5", false},
    {"int4", "isdistinct", "5", "6", true},
    {"int4", "isdistinct", "5", "null", true},
    {"int4", "not.isdistinct", "5", "5", true},
    {"int4", "not.isdistinct", "5", "null", false},
    {"int4", "isdistinct", "null", "null", false},
    {"int4", "not.isdistinct", "null", "null", true},
    {"int4", "isdistinct", "5", nullptr, false},
    {"int4", "is", "null", "null", true},
    {"int4", "is", "null", "5", false},
    {"int4", "not.is", "null", "5", true},
    {"int4", "not.is", "null", "null", false},
    {"int4", "is", "null", nullptr, false},
};

const Case kFloatCases[] = {
    {"float8", "eq", "1.5", "1.5", true},
    {"float8", "eq", "1.5", "1.50", true},
    {"float8", "lt", "1.5", "1.4999999999999998", true},
    {"float8", "eq", "1.0000000000000002", "1", false},
    {"float8", "eq", "\"NaN\"", "\"NaN\"", true},
    {"float8", "neq", "\"NaN\"", "\"NaN\"", false},
    {"float8", "gt", "\"Infinity\"", "\"NaN\"", true},
    {"float8", "lt", "\"NaN\"", "\"Infinity\"", true},
    {"float8", "lt", "-5", "\"-Infinity\"", true},
    {"float8", "gt", "1000000000000000000000000000000", "\"Infinity\"", true},
    {"float8", "eq", "\"Infinity\"", "\"Infinity\"", true},
    {"float8", "eq", "0", "-0", true},
    {"float8", "gt", "-0.5", "0", true},
    {"float8", "lt", "0.0000001", "0.00000001", true},
    {"float8", "gt", "1e30", "1e31", true},
    {"float8", "eq", "0.1", "null", false},
    {"float4", "eq", "0.1", "0.1", true},
    {"float4", "gt", "0.1", "0.2", true},
    {"float4", "gte", "123456790", "123456790", true},
    {"float8", "in", "[1.5, \"NaN\"]", "\"NaN\"", true},
    {"float8", "in", "[1.5, \"NaN\"]", "2", false},
    {"float8", "isdistinct", "\"NaN\"", "\"NaN\"", false},
};

const Case kNumericCases[] = {
    {"numeric", "eq", "1.0", "1.00", true},
    {"numeric", "eq", "1.0", "1", true},
    {"numeric", "neq", "1.0", "1.00", false},
    {"numeric", "gt", "1.0", "1.001", true},
    {"numeric", "lt", "1.0", "0.999", true},
    {"numeric", "lt", "1.0", "-1.0", true},
    {"numeric", "gt", "-1.0", "-0.5", true},
    {"numeric", "lt", "-0.5", "-1.0", true},
    {"numeric", "gt", "99.999", "100", true},
    {"numeric", "lt", "0.0012", "0.00012", true},
    {"numeric", "gt", "0.00012", "0.0012", true},
    {"numeric", "gt", "123456789012345678901234567890.25", "123456789012345678901234567890.5",
     true},
    {"numeric", "lt", "123456789012345678901234567890.25", "123456789012345678901234567890.2",
     true},
    {"numeric", "eq", "0", "0.000", true},
    {"numeric", "eq", "0", "-0", true},
    {"numeric", "lt", "0", "-0.001", true},
    {"numeric", "gt", "0", "0.001", true},
    {"numeric", "eq", "10", "10.0", true},
    {"numeric", "gt", "10", "100", true},
    {"numeric", "lt", "10", "9.99", true},
    {"numeric", "eq", "12.50", "12.5", true},
    {"numeric", "eq", "1E+2", "100", true},
    {"numeric", "eq", "1.5e-3", "0.0015", true},
    {"numeric", "gt", "\"Infinity\"", "\"NaN\"", true},
    {"numeric", "gt", "1000000000000000000000000000000", "\"Infinity\"", true},
    {"numeric", "lt", "-1000", "\"-Infinity\"", true},
    {"numeric", "eq", "\"NaN\"", "\"NaN\"", true},
    {"numeric", "lt", "\"-Infinity\"", "\"-Infinity\"", false},
    {"numeric", "lte", "\"-Infinity\"", "\"-Infinity\"", true},
    {"numeric", "in", "[1.10, 2]", "1.1", true},
    {"numeric", "in", "[1.10, 2]", "2.000", true},
    {"numeric", "in", "[1.10, null]", "3", false},
    {"numeric", "not.in", "[1.10, 2]", "3", true},
    {"numeric", "isdistinct", "1.0", "1.00", false},
};

const Case kBoolCases[] = {
    {"bool", "eq", "true", "true", true},           {"bool", "eq", "true", "false", false},
    {"bool", "neq", "true", "false", true},         {"bool", "lt", "true", "false", true},
    {"bool", "gte", "true", "false", false},        {"bool", "gt", "false", "true", true},
    {"bool", "is", "true", "true", true},           {"bool", "is", "true", "false", false},
    {"bool", "is", "true", "null", false},          {"bool", "not.is", "true", "null", true},
    {"bool", "not.is", "true", "true", false},      {"bool", "is", "false", "false", true},
    {"bool", "not.is", "false", "true", true},      {"bool", "is", "unknown", "null", true},
    {"bool", "is", "unknown", "false", false},      {"bool", "not.is", "unknown", "true", true},
    {"bool", "is", "null", "null", true},           {"bool", "in", "[true, null]", "true", true},
    {"bool", "in", "[true, null]", "false", false}, {"bool", "isdistinct", "true", "null", true},
};

const Case kTextCases[] = {
    {"text", "eq", "\"abc\"", "\"abc\"", true},
    {"text", "eq", "\"abc\"", "\"abc \"", false},
    {"text", "neq", "\"abc\"", "\"abd\"", true},
    {"text", "lt", "\"abc\"", "\"abb\"", true},
    {"text", "lt", "\"abc\"", "\"ab\"", true},
    {"text", "gt", "\"abc\"", "\"abcd\"", true},
    {"text", "gt", "\"abc\"", "\"B\"", false},
    {"text", "gte", "\"abc\"", "\"abc\"", true},
    {"text", "lte", "\"abc\"", "\"\"", true},
    {"text", "gt", "\"z\"", "\"\xc3\xa9\"", true},
    {"text", "eq", "\"\xc3\xa9\"", "\"\\u00e9\"", true},
    {"text", "eq", "\"a\\\"b\"", "\"a\\\"b\"", true},
    {"text", "eq", "\"a\\\"b\"", "\"a\\u0022b\"", true},
    {"text", "eq", "\"tab\\there\"", "\"tab\\u0009here\"", true},
    {"text", "eq", "\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"", true},
    {"text", "eq", "\"null\"", "null", false},
    {"text", "not.eq", "\"null\"", "null", false},
    {"text", "eq", "\"null\"", "\"null\"", true},
    {"varchar", "eq", "\"x\"", "\"x\"", true},
    {"varchar", "lt", "\"x\"", "\"w\"", true},
    {"name", "gt", "\"a\"", "\"b\"", true},
    {"text", "in", "[\"red\", \"blue\"]", "\"blue\"", true},
    {"text", "in", "[\"red\", \"blue\"]", "\"Blue\"", false},
    {"text", "in", "[\"a,b\", \"c]\"]", "\"c]\"", true},
    {"text", "not.in", "[\"red\", null]", "\"blue\"", false},
    {"text", "isdistinct", "\"a\"", "\"a\"", false},
    {"text", "not.isdistinct", "\"a\"", "null", false},
    {"text", "is", "null", "\"\"", false},
};

const Case kLikeCases[] = {
    {"text", "like", "\"a%\"", "\"abc\"", true},
    {"text", "like", "\"a%\"", "\"bac\"", false},
    {"text", "like", "\"%c\"", "\"abc\"", true},
    {"text", "like", "\"_b_\"", "\"abc\"", true},
    {"text", "like", "\"_b_\"", "\"ab\"", false},
    {"text", "like", "\"%\"", "\"\"", true},
    {"text", "like", "\"\"", "\"\"", true},
    {"text", "like", "\"\"", "\"a\"", false},
    {"text", "like", "\"a\\\\%\"", "\"a%\"", true},
    {"text", "like", "\"a\\\\%\"", "\"ab\"", false},
    {"text", "like", "\"a\\\\_c\"", "\"abc\"", false},
    {"text", "like", "\"a\\\\_c\"", "\"a_c\"", true},
    {"text", "like", "\"\\\\\\\\\"", "\"\\\\\"", true},
    {"text", "like", "\"\\\\a\"", "\"a\"", true},
    {"text", "like", "\"_\"", "\"\xc3\xa9\"", true},
    {"text", "like", "\"__\"", "\"\xc3\xa9\"", false},
    {"text", "like", "\"%_\xc3\xa9\"", "\"\xc3\xa9\xc3\xa9\"", true},
    {"text", "like", "\"%b%b%\"", "\"abxb\"", true},
    {"text", "like", "\"%a%b\"", "\"aXbYb\"", true},
    {"text", "like", "\"%a%b\"", "\"aXbYbc\"", false},
    {"text", "like", "\"a%%%c\"", "\"ac\"", true},
    {"text", "like", "\"A%\"", "\"abc\"", false},
    {"text", "like", "\"%\\n%\"", "\"a\\nb\"", true},
    {"text", "not.like", "\"a%\"", "\"abc\"", false},
    {"text", "not.like", "\"a%\"", "\"xbc\"", true},
    {"text", "like", "\"a%\"", "null", false},
    {"text", "not.like", "\"a%\"", "null", false},
    {"text", "ilike", "\"A%\"", "\"abc\"", true},
    {"text", "ilike", "\"%DRAFT%\"", "\"my Draft post\"", true},
    {"text", "ilike", "\"ab_\"", "\"ABC\"", true},
    {"text", "ilike", "\"ab\\\\_\"", "\"AB_\"", true},
    {"text", "not.ilike", "\"%draft%\"", "\"final\"", true},
    {"varchar", "like", "\"x%\"", "\"xy\"", true},
    {"text", "match", "\"^a.c$\"", "\"abc\"", true},
    {"text", "match", "\"^a.c$\"", "\"abcd\"", false},
    {"text", "match", "\"b\"", "\"abc\"", true},
    {"text", "match", "\"^\\\\d+$\"", "\"123\"", true},
    {"text", "match", "\"^\\\\d+$\"", "\"12a\"", false},
    {"text", "match", "\"^[\\\\d]+$\"", "\"42\"", true},
    {"text", "match", "\"^\\\\w+\\\\s\\\\S$\"", "\"ab_1 x\"", true},
    {"text", "match", "\"(foo|bar)baz\"", "\"xbarbaz\"", true},
    {"text", "match", "\"^a{2,3}$\"", "\"aaaa\"", false},
    {"text", "match", "\"^a+?b$\"", "\"aab\"", true},
    {"text", "match", "\"^[+*]+x$\"", "\"+*x\"", true},
    {"text", "match", "\"^A\"", "\"abc\"", false},
    {"text", "imatch", "\"^A\"", "\"abc\"", true},
    {"text", "not.match", "\"^a\"", "\"abc\"", false},
    {"text", "not.imatch", "\"^x\"", "\"abc\"", true},
    {"text", "match", "\"^a\\nb$\"", "\"a\\nb\"", true},
    {"text", "match", "\"a\"", "null", false},
    {"text", "not.match", "\"a\"", "null", false},
};

const Case kBpcharCases[] = {
    {"bpchar", "eq", "\"ab   \"", "\"ab   \"", true},
    {"bpchar", "eq", "\"ab   \"", "\"ab\"", true},
    {"bpchar", "eq", "\"ab\"", "\"ab \"", true},
    {"bpchar", "lt", "\"ab   \"", "\"ab \"", false},
    {"bpchar", "lt", "\"ab   \"", "\"aa   \"", true},
    {"bpchar", "gt", "\"ab   \"", "\"ab a \"", true},
    {"bpchar", "in", "[\"ab   \", \"cd   \"]", "\"cd   \"", true},
    {"bpchar", "in", "[\"ab   \", \"cd\"]", "\"cd   \"", true},
    {"bpchar", "isdistinct", "\"ab\"", "\"ab   \"", false},
    {"bpchar", "like", "\"ab\"", "\"ab   \"", false},
    {"bpchar", "like", "\"ab%\"", "\"ab   \"", true},
    {"bpchar", "like", "\"ab   \"", "\"ab   \"", true},
    {"bpchar", "match", "\"b$\"", "\"ab   \"", false},
    {"bpchar", "match", "\"b *$\"", "\"ab   \"", true},
};

const Case kUuidCases[] = {
    {"uuid", "eq", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
     "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", true},
    {"uuid", "eq", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
     "\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\"", true},
    {"uuid", "neq", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
     "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12\"", true},
    {"uuid", "lt", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
     "\"00000000-0000-0000-0000-000000000000\"", true},
    {"uuid", "gt", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
     "\"ffffffff-0000-0000-0000-000000000000\"", true},
    {"uuid", "gt", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
     "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12\"", true},
    {"uuid", "lt", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
     "\"a0eebc99-9c0b-4ef8-8b6d-6bb9bd380a11\"", true},
    {"uuid", "gt", "\"7fffffff-ffff-ffff-ffff-ffffffffffff\"",
     "\"80000000-0000-0000-0000-000000000000\"", true},
    {"uuid", "in",
     "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\", \"00000000-0000-0000-0000-000000000001\"]",
     "\"00000000-0000-0000-0000-000000000001\"", true},
};

const Case kDateTimeCases[] = {
    {"date", "eq", "\"2026-01-05\"", "\"2026-01-05\"", true},
    {"date", "lt", "\"2026-01-05\"", "\"2026-01-04\"", true},
    {"date", "gt", "\"2026-01-05\"", "\"2026-02-01\"", true},
    {"date", "gt", "\"2026-01-05\"", "\"infinity\"", true},
    {"date", "lt", "\"2026-01-05\"", "\"-infinity\"", true},
    {"date", "eq", "\"infinity\"", "\"infinity\"", true},
    {"date", "lt", "\"2026-01-05\"", "\"0044-03-15 BC\"", true},
    {"date", "lt", "\"0044-03-15 BC\"", "\"0045-03-15 BC\"", true},
    {"date", "gt", "\"0001-12-31 BC\"", "\"0001-01-01\"", true},
    {"date", "gt", "\"2026-01-05\"", "\"12000-01-01\"", true},
    {"date", "lt", "\"2000-03-01\"", "\"2000-02-29\"", true},
    {"date", "lt", "\"1970-01-01\"", "\"1969-12-31\"", true},
    {"date", "gt", "\"5874897-12-30\"", "\"5874897-12-31\"", true},
    {"timestamp", "eq", "\"2026-01-05T09:14:02.118\"", "\"2026-01-05T09:14:02.118\"", true},
    {"timestamp", "lt", "\"2026-01-05T09:14:02.118\"", "\"2026-01-05T09:14:02\"", true},
    {"timestamp", "gt", "\"2026-01-05T09:14:02.118\"", "\"2026-01-05T09:14:02.1181\"", true},
    {"timestamp", "gt", "\"2026-01-05T09:14:02\"", "\"2026-01-05T09:14:02.000001\"", true},
    {"timestamp", "lt", "\"2026-01-05T09:14:02\"", "\"2026-01-04T23:59:59.999999\"", true},
    {"timestamp", "gt", "\"2026-01-05T09:14:02\"", "\"infinity\"", true},
    {"timestamp", "lt", "\"2026-01-05T09:14:02\"", "\"0044-03-15T12:00:00 BC\"", true},
    {"timestamp", "gt", "\"2026-01-05T09:14:02\"", "\"294276-12-31T23:59:59.999999\"", true},
    {"timestamp", "lt", "\"2026-01-05T09:14:02\"", "\"4713-11-24T00:00:00 BC\"", true},
    {"timestamp", "in", "[\"2026-01-05T09:14:02\", \"infinity\"]", "\"infinity\"", true},
    {"timestamptz", "eq", "\"2026-01-05T09:14:02.118+00:00\"", "\"2026-01-05T09:14:02.118+00:00\"",
     true},
    {"timestamptz", "eq", "\"2026-01-05T09:14:02.118+00:00\"", "\"2026-01-05T10:14:02.118+01:00\"",
     true},
    {"timestamptz", "eq", "\"2026-01-05T09:14:02.118+00:00\"", "\"2026-01-05T04:14:02.118-05:00\"",
     true},
    {"timestamptz", "lt", "\"2026-01-05T09:14:02.118+00:00\"", "\"1850-01-01T00:00:00+05:53:28\"",
     true},
    {"timestamptz", "gt", "\"1849-12-31T18:06:32+00:00\"", "\"1850-01-01T00:00:00+05:53:28\"",
     false},
    {"timestamptz", "gte", "\"1849-12-31T18:06:32+00:00\"", "\"1850-01-01T00:00:00+05:53:28\"",
     true},
    {"timestamptz", "gt", "\"2026-01-05T09:14:02.118+00:00\"",
     "\"2026-01-05T09:14:02.118001+00:00\"", true},
    {"timestamptz", "lt", "\"2026-01-05T09:14:02.118+00:00\"", "\"-infinity\"", true},
    {"timestamptz", "lt", "\"2026-01-05T09:14:02.118+00:00\"", "\"0044-03-15T12:00:00+00:00 BC\"",
     true},
    {"timestamptz", "neq", "\"2026-01-05T09:14:02.118+00:00\"", "null", false},
    {"time", "eq", "\"09:14:02.5\"", "\"09:14:02.5\"", true},
    {"time", "gt", "\"09:14:02.5\"", "\"24:00:00\"", true},
    {"time", "lt", "\"09:14:02.5\"", "\"09:14:02.499999\"", true},
    {"time", "lt", "\"09:14:02.5\"", "\"00:00:00\"", true},
    {"time", "gte", "\"09:14:02.5\"", "\"09:14:02.500001\"", true},
};

const Case kOtherCases[] = {
    {"interval", "eq", "\"1 day\"", "\"1 day\"", true},
    {"interval", "neq", "\"1 day\"", "\"2 days\"", true},
    {"interval", "in", "[\"1 day\", \"02:00:00\"]", "\"02:00:00\"", true},
    {"interval", "in", "[\"1 day\", null]", "\"03:00:00\"", false},
    {"interval", "isdistinct", "\"1 day\"", "null", true},
    {"interval", "is", "null", "null", true},
    {"jsonb", "eq", "{\"k\": 1}", "{\"k\": 1}", true},
    {"jsonb", "eq", "{\"k\": 1}", "{\"k\": 2}", false},
    {"jsonb", "eq", "[\"a\", \"b\"]", "[\"a\", \"b\"]", true},
    {"jsonb", "in", "[{\"k\": [1, 2]}, {\"k\": 3}]", "{\"k\": [1, 2]}", true},
    {"jsonb", "not.in", "[{\"k\": [1, 2]}, {\"k\": 3}]", "{\"k\": 4}", true},
};

/* The op of "[not.]op"; false when unknown. */
bool
ParseOp(std::string_view s, PgFilter *f)
{
	f->negated = s.starts_with("not.");
	if (f->negated)
		s.remove_prefix(4);
	for (int i = 0; i <= static_cast<int>(FilterOp::kIsDistinct); i++)
		if (FilterOpName(static_cast<FilterOp>(i)) == s)
		{
			f->op = static_cast<FilterOp>(i);
			return true;
		}
	return false;
}

IsKeyword
KeywordOf(std::string_view s)
{
	if (s == "null")
		return IsKeyword::kNull;
	if (s == "true")
		return IsKeyword::kTrue;
	if (s == "false")
		return IsKeyword::kFalse;
	if (s == "unknown")
		return IsKeyword::kUnknown;
	return IsKeyword::kNone;
}

PgFilter
FilterOf(const char *op, const char *rhs)
{
	PgFilter f;
	f.column = "col";
	if (!ParseOp(op, &f))
	{
		std::fprintf(stderr, "bad test op %s\n", op);
		fail();
	}
	if (f.op == FilterOp::kIs)
		f.keyword = KeywordOf(rhs);
	return f;
}

Result<CompiledFilter>
Compile(const char *type, const char *op, const char *rhs, bool bytewise = true)
{
	PgFilter f = FilterOf(op, rhs);
	return CompileFilter(f, type, f.op == FilterOp::kIs ? "null" : rhs, bytewise);
}

void
RunCases(const Case *cases, size_t n)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++)
	{
		const Case &c = cases[i];
		Result<CompiledFilter> r = Compile(c.type, c.op, c.rhs);
		if (!r.ok())
		{
			std::fprintf(stderr, "%s %s %s: compile error %s\n", c.type, c.op, c.rhs,
			             r.error().message.c_str());
			bad++;
			continue;
		}
		std::optional<std::string_view> v;
		if (c.lhs != nullptr)
			v = c.lhs;
		bool got = FilterMatches(r.value(), v);
		if (got != c.expect)
		{
			std::fprintf(stderr, "%s: %s %s %s: got %d, want %d\n", c.type,
			             c.lhs != nullptr ? c.lhs : "(absent)", c.op, c.rhs, got, c.expect);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

#define RUN_TABLE(t) RunCases(t, sizeof(t) / sizeof(t[0]))

void
TestInt(void **)
{
	RUN_TABLE(kIntCases);
}
void
TestFloat(void **)
{
	RUN_TABLE(kFloatCases);
}
void
TestNumeric(void **)
{
	RUN_TABLE(kNumericCases);
}
void
TestBool(void **)
{
	RUN_TABLE(kBoolCases);
}
void
TestText(void **)
{
	RUN_TABLE(kTextCases);
}
void
TestLikeRegex(void **)
{
	RUN_TABLE(kLikeCases);
}
void
TestBpchar(void **)
{
	RUN_TABLE(kBpcharCases);
}
void
TestUuid(void **)
{
	RUN_TABLE(kUuidCases);
}
void
TestDateTime(void **)
{
	RUN_TABLE(kDateTimeCases);
}
void
TestOther(void **)
{
	RUN_TABLE(kOtherCases);
}

void
TestKinds(void **)
{
	assert_true(ValueKindOfType("int2") == ValueKind::kInt);
	assert_true(ValueKindOfType("oid") == ValueKind::kInt);
	assert_true(ValueKindOfType("float4") == ValueKind::kFloat);
	assert_true(ValueKindOfType("numeric") == ValueKind::kNumeric);
	assert_true(ValueKindOfType("bool") == ValueKind::kBool);
	assert_true(ValueKindOfType("name") == ValueKind::kText);
	assert_true(ValueKindOfType("bpchar") == ValueKind::kBpchar);
	assert_true(ValueKindOfType("uuid") == ValueKind::kUuid);
	assert_true(ValueKindOfType("date") == ValueKind::kDate);
	assert_true(ValueKindOfType("timestamp") == ValueKind::kTimestamp);
	assert_true(ValueKindOfType("timestamptz") == ValueKind::kTimestampTz);
	assert_true(ValueKindOfType("time") == ValueKind::kTime);
	assert_true(ValueKindOfType("timetz") == ValueKind::kOther);
	assert_true(ValueKindOfType("char") == ValueKind::kOther);
	assert_true(ValueKindOfType("_int4") == ValueKind::kOther);
	assert_true(ValueKindOfType("") == ValueKind::kOther);
}

/* An error whose message holds every fragment. */
void
ExpectError(Result<CompiledFilter> r, std::vector<std::string_view> fragments)
{
	if (r.ok())
	{
		std::fprintf(stderr, "expected a compile error\n");
		fail();
	}
	for (std::string_view f : fragments)
		if (r.error().message.find(f) == std::string::npos)
		{
			std::fprintf(stderr, "\"%s\" lacks \"%.*s\"\n", r.error().message.c_str(),
			             static_cast<int>(f.size()), f.data());
			fail();
		}
}

void
TestCompileErrors(void **)
{
	/* ordering text needs a byte-order collation; name always has one */
	ExpectError(Compile("text", "lt", "\"a\"", false), {"\"col\"", "lt", "collation"});
	ExpectError(Compile("varchar", "not.gte", "\"a\"", false), {"\"col\"", "not.gte", "collation"});
	assert_true(Compile("text", "lt", "\"a\"", true).ok());
	assert_true(Compile("name", "lt", "\"a\"", false).ok());
	assert_true(Compile("text", "eq", "\"a\"", false).ok());
	assert_true(Compile("text", "like", "\"a\"", false).ok());
	assert_true(Compile("bpchar", "lt", "\"a\"", false).ok());
	/* ordering other types, patterns on non-text, is true on non-bool */
	ExpectError(Compile("interval", "gt", "\"1 day\""), {"\"col\"", "gt", "interval"});
	ExpectError(Compile("int4", "like", "\"1%\""), {"like", "text column"});
	ExpectError(Compile("uuid", "match", "\"^a\""), {"match", "text column"});
	ExpectError(Compile("int4", "is", "true"), {"is", "boolean"});
	ExpectError(Compile("int4", "is", "unknown"), {"is", "boolean"});
	ExpectError(Compile("int4", "is", "maybe"), {"is", "null, true, false or unknown"});
	assert_true(Compile("int4", "is", "null").ok());
	/* patterns */
	ExpectError(Compile("text", "match", "\"(\""), {"match", "invalid regular expression"});
	ExpectError(Compile("text", "imatch", "\"a{2,1}\""), {"imatch", "invalid regular expression"});
	ExpectError(Compile("text", "like", "\"ab\\\\\""), {"must not end with escape"});
	/* what Postgres refuses and glibc would expand without bound */
	ExpectError(Compile("text", "match", "\"a++\""), {"quantifier operand invalid"});
	ExpectError(Compile("text", "match", "\"!+++++++++++++++++++++++++\""),
	            {"quantifier operand invalid"});
	ExpectError(Compile("text", "match", "\"a{1,256}\""), {"repetition count"});
	ExpectError(Compile("text", "match", "\"(a{30000}){30000}\""), {"repetition count"});
	ExpectError(Compile("text", "match", "\"^(a*)*\\\\1$\""), {"back-references"});
	ExpectError(Compile("text", "match", "\"a{99999999999999999999}\""), {"repetition count"});
	ExpectError(Compile("text", "match", "\"((a{1,255}){1,255}){1,255}\""), {"too complex"});
	assert_true(Compile("text", "match", "\"a+?b*?c??d{2,3}?\"").ok());
	assert_true(Compile("text", "match", "\"[+*]+[[:digit:]]{2}(x|y)*\"").ok());
	ExpectError(Compile("text", "like", "5"), {"JSON string"});
	/* right-hand sides that are no rendering of the type */
	ExpectError(Compile("int4", "eq", "\"x\""), {"not a rendering"});
	ExpectError(Compile("int4", "eq", "1.5"), {"not a rendering"});
	ExpectError(Compile("int4", "eq", "99999999999999999999"), {"not a rendering"});
	ExpectError(Compile("int4", "in", "5"), {"JSON array"});
	ExpectError(Compile("int4", "in", "[1, \"x\"]"), {"not a rendering"});
	ExpectError(Compile("int4", "eq", "[1,"), {"valid JSON"});
	ExpectError(Compile("text", "eq", "5"), {"not a rendering"});
	ExpectError(Compile("uuid", "eq", "\"abc\""), {"not a rendering"});
	ExpectError(Compile("date", "eq", "\"2026-02-30x\""), {"not a rendering"});
	ExpectError(Compile("timestamptz", "eq", "\"2026-01-05T09:14:02\""), {"not a rendering"});
	ExpectError(Compile("numeric", "eq", "\"1.0\""), {"not a rendering"});
	ExpectError(Compile("jsonb", "eq", std::string(200, '[').c_str()), {"nested"});
	ExpectError(Compile("int4", "eq", ""), {"valid JSON"});
}

/* Values that are not renderings of the kind fail, also under not. */
void
TestMalformed(void **)
{
	struct Bad
	{
		const char *type;
		const char *rhs;
		const char *lhs;
	};
	const Bad bad[] = {
	    {"int4", "5", "\"abc\""},
	    {"int4", "5", "5x"},
	    {"int4", "5", ""},
	    {"int4", "5", "5.0"},
	    {"int8", "5", "99999999999999999999"},
	    {"numeric", "1", "1.2.3"},
	    {"numeric", "1", "01"},
	    {"numeric", "1", "1."},
	    {"numeric", "1", ".5"},
	    {"numeric", "1", "1e"},
	    {"numeric", "1", "1e9999999999"},
	    {"numeric", "1", "\"1\""},
	    {"numeric", "1", "-"},
	    {"float8", "1", "\"nan\""},
	    {"bool", "true", "1"},
	    {"bool", "true", "True"},
	    {"text", "\"a\"", "\"abc"},
	    {"text", "\"a\"", "abc"},
	    {"text", "\"a\"", "\""},
	    {"text", "\"a\"", "\"a\\\""},
	    {"text", "\"a\"", "\"a\"b\""},
	    {"text", "\"a\"", "\"\\u12\""},
	    {"text", "\"a\"", "\"\\ud800\""},
	    {"text", "\"a\"", "\"\\udc00x\""},
	    {"text", "\"a\"", "\"\\u0000\""},
	    {"text", "\"a\"", "\"\\x\""},
	    {"uuid", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", "\"a0eebc99-9c0b-4ef8-bb6d\""},
	    {"uuid", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
	     "\"a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11\""},
	    {"uuid", "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
	     "\"g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""},
	    {"date", "\"2026-01-05\"", "\"2026-13-01\""},
	    {"date", "\"2026-01-05\"", "\"26-01-05\""},
	    {"date", "\"2026-01-05\"", "\"0000-01-01 BC\""},
	    {"date", "\"2026-01-05\"", "\"2026-01-05T00:00:00\""},
	    {"timestamp", "\"2026-01-05T09:14:02\"", "\"2026-01-05 09:14:02\""},
	    {"timestamp", "\"2026-01-05T09:14:02\"", "\"2026-01-05T09:14:02+00:00\""},
	    {"timestamp", "\"2026-01-05T09:14:02\"", "\"2026-01-05T09:14:02.1234567\""},
	    {"timestamp", "\"2026-01-05T09:14:02\"", "\"2026-01-05T09:14:02.\""},
	    {"timestamp", "\"2026-01-05T09:14:02\"", "\"9999999-01-05T09:14:02\""},
	    {"timestamptz", "\"2026-01-05T09:14:02+00:00\"", "\"2026-01-05T09:14:02\""},
	    {"timestamptz", "\"2026-01-05T09:14:02+00:00\"", "\"2026-01-05T09:14:02+0\""},
	    {"time", "\"09:14:02\"", "\"9:14:02\""},
	    {"time", "\"09:14:02\"", "\"25:00:00\""},
	};
	const char *ops[] = {"eq",      "not.eq", "neq",    "not.neq",    "lt",
	                     "not.gte", "in",     "not.in", "isdistinct", "not.isdistinct"};
	int wrong = 0;
	for (const Bad &b : bad)
		for (const char *op : ops)
		{
			std::string rhs = b.rhs;
			if (std::string_view(op).ends_with("in"))
				rhs = "[" + rhs + "]";
			Result<CompiledFilter> r = Compile(b.type, op, rhs.c_str());
			if (!r.ok())
			{
				std::fprintf(stderr, "%s %s %s: %s\n", b.type, op, rhs.c_str(),
				             r.error().message.c_str());
				wrong++;
				continue;
			}
			if (FilterMatches(r.value(), std::string_view(b.lhs)))
			{
				std::fprintf(stderr, "%s: %s %s %s matched\n", b.type, b.lhs, op, rhs.c_str());
				wrong++;
			}
		}
	/* pattern and `is` ops on malformed text values */
	for (const char *op : {"like", "not.like", "ilike", "match", "not.imatch"})
	{
		Result<CompiledFilter> r = Compile("text", op, "\"%\"");
		assert_true(r.ok());
		wrong += FilterMatches(r.value(), std::string_view("\"abc"));
		wrong += FilterMatches(r.value(), std::string_view("5"));
	}
	Result<CompiledFilter> is = Compile("bool", "not.is", "true");
	assert_true(is.ok());
	wrong += FilterMatches(is.value(), std::string_view("tru"));
	assert_int_equal(wrong, 0);
}

/* Copies share the regex; a hostile LIKE stays polynomial. */
void
TestCopiesAndCost(void **)
{
	Result<CompiledFilter> r = Compile("text", "imatch", "\"^ab+c$\"");
	assert_true(r.ok());
	CompiledFilter copy = r.value();
	{
		CompiledFilter moved = std::move(r.value());
		assert_true(FilterMatches(moved, std::string_view("\"ABBC\"")));
	}
	assert_true(FilterMatches(copy, std::string_view("\"abbbc\"")));
	assert_false(FilterMatches(copy, std::string_view("\"ac\"")));

	Result<CompiledFilter> like = Compile("text", "like", "\"%a%a%a%a%a%a%a%a%a%a%b\"");
	assert_true(like.ok());
	std::string big = "\"" + std::string(20000, 'a') + "\"";
	auto t0 = std::chrono::steady_clock::now();
	assert_false(FilterMatches(like.value(), std::string_view(big)));
	auto ms =
	    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
	        .count();
	assert_true(ms < 500);
}

/* ---- --sql: the table cases as checks a Postgres server runs ---------------------------- */

std::string
Quote(std::string_view s)
{
	std::string out = "'";
	for (char c : s)
	{
		out += c;
		if (c == '\'')
			out += '\'';
	}
	return out + "'";
}

/* A to_jsonb text back to a value of the column type. */
std::string
FromJson(const char *type, std::string_view j)
{
	if (std::string_view(type) == "jsonb")
		return "(" + Quote(j) + "::jsonb)";
	return "((" + Quote(j) + "::jsonb #>> '{}')::" + type + ")";
}

std::string
SqlOf(const Case &c)
{
	std::string_view op = c.op;
	bool negated = op.starts_with("not.");
	if (negated)
		op.remove_prefix(4);
	std::string l = FromJson(c.type, c.lhs);
	std::string r;
	if (op == "in")
		r = std::string("array(select (e #>> '{}')::") + c.type + " from jsonb_array_elements(" +
		    Quote(c.rhs) + "::jsonb) e)";
	else if (op == "like" || op == "ilike" || op == "match" || op == "imatch")
		r = "(" + Quote(c.rhs) + "::jsonb #>> '{}')";
	else if (op != "is")
		r = FromJson(c.type, c.rhs);
	std::string e;
	if (op == "eq")
		e = l + " = " + r;
	else if (op == "neq")
		e = l + " <> " + r;
	else if (op == "lt")
		e = l + " < " + r;
	else if (op == "lte")
		e = l + " <= " + r;
	else if (op == "gt")
		e = l + " > " + r;
	else if (op == "gte")
		e = l + " >= " + r;
	else if (op == "in")
		e = l + " = ANY(" + r + ")";
	else if (op == "like")
		e = l + " LIKE " + r;
	else if (op == "ilike")
		e = l + " ILIKE " + r;
	else if (op == "match")
		e = l + " ~ " + r;
	else if (op == "imatch")
		e = l + " ~* " + r;
	else if (op == "isdistinct")
		e = l + " IS DISTINCT FROM " + r;
	else
		e = l + " IS " + c.rhs;
	if (negated)
		e = "NOT (" + e + ")";
	std::string label = std::string(c.type) + " " + c.lhs + " " + c.op + " " + c.rhs;
	return "SELECT " + Quote("DISAGREES: " + label) + " WHERE coalesce((" + e +
	       "), false) IS DISTINCT FROM " + (c.expect ? "true" : "false") + ";";
}

int
PrintSql()
{
	const std::pair<const Case *, size_t> tables[] = {
	    {kIntCases, std::size(kIntCases)},           {kFloatCases, std::size(kFloatCases)},
	    {kNumericCases, std::size(kNumericCases)},   {kBoolCases, std::size(kBoolCases)},
	    {kTextCases, std::size(kTextCases)},         {kLikeCases, std::size(kLikeCases)},
	    {kBpcharCases, std::size(kBpcharCases)},     {kUuidCases, std::size(kUuidCases)},
	    {kDateTimeCases, std::size(kDateTimeCases)}, {kOtherCases, std::size(kOtherCases)},
	};
	int n = 0;
	std::printf("SET TimeZone = 'UTC';\n");
	for (const auto &[cases, count] : tables)
		for (size_t i = 0; i < count; i++)
			if (cases[i].pg && cases[i].lhs != nullptr)
			{
				std::printf("%s\n", SqlOf(cases[i]).c_str());
				n++;
			}
	std::printf("SELECT 'checked %d cases';\n", n);
	return 0;
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc > 1 && std::strcmp(argv[1], "--sql") == 0)
		return PrintSql();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestKinds),     cmocka_unit_test(TestInt),
	    cmocka_unit_test(TestFloat),     cmocka_unit_test(TestNumeric),
	    cmocka_unit_test(TestBool),      cmocka_unit_test(TestText),
	    cmocka_unit_test(TestLikeRegex), cmocka_unit_test(TestBpchar),
	    cmocka_unit_test(TestUuid),      cmocka_unit_test(TestDateTime),
	    cmocka_unit_test(TestOther),     cmocka_unit_test(TestCompileErrors),
	    cmocka_unit_test(TestMalformed), cmocka_unit_test(TestCopiesAndCost),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
