/*
 * pg_changes_params.hpp: one config.postgres_changes[] entry of a join,
 * parsed into a subscription (PROTOCOL.md 3.2, 6.1, 6.6).
 *
 * Any thread; pure functions, no SQL, no I/O. Three steps, in the order
 * upstream Supabase Realtime reports their errors (none is retried):
 *   1. ParsePgChangesParams: what upstream's parse_subscription_params
 *      refuses (key combinations, filter syntax, select shape).
 *   2. CheckPgChangesText: NUL bytes, which Postgres refuses in the text
 *      parameters of upstream's insert, before any table is matched.
 *   3. CheckPgChangesParams: what upstream's subscription_check_filters
 *      trigger refuses without needing the catalog: impossible column names,
 *      `in` array syntax and the 100 value limit, the `is` keyword. The
 *      trigger runs only for matched tables, so call this after the
 *      publication matched at least one (else upstream's "Please check
 *      Realtime is enabled" text comes first); column existence, value casts
 *      and operator/type fit stay with the database.
 * Error texts embed the parameters the way upstream renders Elixir terms
 * (elixir_inspect.hpp: inspect/2, with its 80 column pretty layout where
 * upstream asks for it).
 */
#pragma once

#include "base/json.hpp"
#include "base/result.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rt::fanout
{

/* `event` of an entry: anything but insert/update/delete (any case) is all. */
enum class PgEvent : uint8_t
{
	kAll,
	kInsert,
	kUpdate,
	kDelete,
};

enum class FilterOp : uint8_t
{
	kEq,
	kNeq,
	kLt,
	kLte,
	kGt,
	kGte,
	kIn,
	kLike,
	kIlike,
	kIs,
	kMatch,
	kImatch,
	kIsDistinct,
};

/* The right-hand side of `is`; kNone when the value is none of them. */
enum class IsKeyword : uint8_t
{
	kNone,
	kNull,
	kTrue,
	kFalse,
	kUnknown,
};

constexpr size_t kMaxInValues = 100;       /* `in` list elements (PROTOCOL.md 6.1) */
constexpr size_t kMaxIdentifierBytes = 63; /* NAMEDATALEN - 1: longer names cannot exist */

/* One condition `column=[not.]op.value`. */
struct PgFilter
{
	std::string column; /* as written (not trimmed inside the segment, as upstream) */
	FilterOp op = FilterOp::kEq;
	bool negated = false; /* `not.` prefix */
	/*
	 * All ops but `in`: the value, surrounding double quotes removed and
	 * backslash escapes resolved when it was a well-formed "..." string.
	 * `in`: the Postgres array literal "{v1,v2}" upstream stores.
	 */
	std::string value;
	/*
	 * `in` only, filled when the literal is well formed and has at most
	 * kMaxInValues elements (CheckPgChangesParams reports otherwise): the
	 * non-NULL elements in order, quotes and escapes resolved, and whether an
	 * unquoted NULL element was present (x = ANY('{1,NULL}') is never false).
	 */
	std::vector<std::string> values;
	bool in_has_null = false;
	IsKeyword keyword = IsKeyword::kNone; /* `is` only */
};

struct PgChangesParams
{
	PgEvent event = PgEvent::kAll;
	std::string schema; /* "*" = any; upstream matches it with SQL LIKE */
	std::string table;  /* "*" = any; likewise */
	std::vector<PgFilter> filters;
	std::optional<std::vector<std::string>> select; /* nullopt: all columns */
};

/*
 * Parse one entry (any JSON value; non-objects are refused). On error the
 * message is the exact client text of PROTOCOL.md 6.6 (ErrorCode
 * kInvalidArgument). Duplicate keys: the last one counts, as upstream's JSON
 * decoder does.
 */
Result<PgChangesParams> ParsePgChangesParams(const rapidjson::Value &entry);

/*
 * Steps 2 and 3: nullopt when all pass; else the exact client text ("Unable
 * to subscribe to changes with given parameters. An exception happened ...
 * Exception: ERROR <code> (<name>) <message>"), ErrorCode kInvalidArgument.
 * Step 3 goes per filter in the order given, then select columns.
 */
std::optional<Error> CheckPgChangesText(const PgChangesParams &p);
std::optional<Error> CheckPgChangesParams(const PgChangesParams &p);

/*
 * The parameters as upstream's error texts show them, without brackets:
 *   event: *, schema: public, table: x, filters: [{"id", "eq", "1", false}], select: nil
 * event, schema and table as they are; filters and select as inspect(x,
 * pretty: true) lays them out: past 80 columns they span several lines.
 */
std::string RenderPgChangesParams(const PgChangesParams &p);

/*
 * The client texts of a subscription the database refused (PROTOCOL.md 6.6):
 * "... An exception happened ... [<params>]. Exception: <pg_error>" (pg_error
 * in Postgrex form, pg_sqlstate.hpp) and "... Please check Realtime is enabled
 * for the given connect parameters: [<params>]" when no table matched.
 */
std::string PgChangesExceptionText(const PgChangesParams &p, std::string_view pg_error);
std::string PgChangesNoTableText(const PgChangesParams &p);

std::string_view PgEventName(PgEvent event); /* "*", "INSERT", "UPDATE", "DELETE" */
std::string_view FilterOpName(FilterOp op);  /* "eq" ... "isdistinct" */

} // namespace rt::fanout
