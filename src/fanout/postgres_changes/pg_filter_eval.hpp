/*
 * pg_filter_eval.hpp: evaluate one parsed Postgres Changes filter
 * (PgFilter, pg_changes_params.hpp) against a row's column value, with the
 * column type's comparison rules, as Postgres would (PROTOCOL.md 6.1).
 *
 * Any thread; pure functions. A CompiledFilter is immutable once built and
 * may be shared by threads (its regex, if any, is reentrant in glibc).
 *
 * Both sides arrive as Postgres to_jsonb renderings (session TimeZone UTC):
 * the row's value as to_jsonb(value), the right-hand side as
 * realtime.cast(value, column_type) at join time (`in`: the cast to the array
 * type, a JSON array; like/ilike/match/imatch: the pattern as a JSON string;
 * `is`: unused, PgFilter::keyword counts). SQL three-valued logic: a NULL
 * result is "not delivered", also under `not.`.
 *
 * Approximations (pg_filter_eval.cpp, pg_filter_pattern.cpp): float equality sees the
 * shortest round-trip decimal to_jsonb prints; ilike folds ASCII only;
 * match/imatch use POSIX extended regexes (glibc, byte-wise in the C
 * locale), not Postgres's ARE flavour; other types compare their canonical
 * jsonb text for equality only.
 */
#pragma once

#include "postgres_changes/pg_changes_params.hpp"
#include "postgres_changes/pg_filter_pattern.hpp"
#include "base/result.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rt::fanout
{

/* How values of a column type compare. */
enum class ValueKind : uint8_t
{
	kInt,         /* int2 int4 int8 oid: int64 */
	kFloat,       /* float4 float8: decimal rendering, NaN above Infinity */
	kNumeric,     /* numeric: exact decimal, 1.0 = 1.00 */
	kBool,        /* false < true */
	kText,        /* text varchar name: bytes */
	kBpchar,      /* char(n): bytes, trailing spaces ignored by comparisons */
	kUuid,        /* 16 bytes, unsigned */
	kDate,        /* days, +-infinity */
	kTimestamp,   /* microseconds, +-infinity */
	kTimestampTz, /* microseconds UTC, +-infinity */
	kTime,        /* microseconds since midnight */
	kOther,       /* canonical jsonb text, equality only */
};

/* pg_type.typname to its kind; anything not listed above is kOther. */
ValueKind ValueKindOfType(std::string_view typname);

/* One right-hand side value, pre-parsed (text: decoded bytes or digits). */
struct FilterOperand
{
	bool null = false;
	int8_t cls = 0;   /* kFloat/kNumeric: 0 finite, -1 -Infinity, 1 Infinity, 2 NaN */
	bool neg = false; /* kFloat/kNumeric: finite and below zero */
	int64_t num = 0;  /* int, bool, date, timestamps, time; decimal exponent */
	uint64_t hi = 0;  /* uuid, first 8 bytes */
	uint64_t lo = 0;  /* uuid, last 8 bytes */
	std::string text; /* see above; kOther: the canonical JSON text */
};

/* A filter ready for FilterMatches: copyable, cheap to share. */
struct CompiledFilter
{
	FilterOp op = FilterOp::kEq;
	bool negated = false;
	ValueKind kind = ValueKind::kOther;
	IsKeyword keyword = IsKeyword::kNone;
	std::vector<FilterOperand> operands; /* one; `in`: the non-NULL elements */
	bool in_has_null = false;            /* `in`: a NULL element was listed */
	std::vector<LikeToken> like;         /* like/ilike, ilike literals folded */
	std::shared_ptr<const CompiledRegex> regex;
};

/*
 * Check the filter against its column type and pre-parse rhs_json. Error
 * (kInvalidArgument) for what cannot be evaluated here or is malformed:
 * ordering text unless text_orders_bytewise (the column's collation is C or
 * its order is byte order; `name` always is), ordering other types, pattern
 * ops on non-text columns, `is true|false|unknown` on non-boolean columns,
 * a LIKE pattern ending in its escape, a regex that does not compile, a
 * right-hand side that is not a rendering of the type. Never throws.
 */
Result<CompiledFilter> CompileFilter(const PgFilter &f, std::string_view typname,
                                     std::string_view rhs_json, bool text_orders_bytewise);

/*
 * True when the row's value (its to_jsonb text; nullopt when the column is
 * absent from the change) passes the filter. NULL results, absent columns and
 * malformed values are false. Never throws; allocates only for string values
 * with JSON escapes (a per-thread buffer that is reused).
 */
bool FilterMatches(const CompiledFilter &f, std::optional<std::string_view> value_json);

} // namespace rt::fanout
