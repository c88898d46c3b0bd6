/*
 * pg_jsonb_scalar.hpp: read the JSON text Postgres's to_jsonb gives for
 * scalar values, in place and strictly (pg_filter_eval.hpp compares them).
 *
 * Any thread; pure functions, no allocation except DecodedJsonString on
 * strings with escapes (a per-thread buffer that is reused). Every parser
 * answers false for text that is not such a rendering, never throws.
 *
 * Renderings (PostgreSQL 15, TimeZone UTC): int2/int4/int8 42; oid "42";
 * float4/float8 the shortest round-trip decimal without exponent, "NaN",
 * "Infinity", "-Infinity"; numeric its digits with scale (12.50) and the
 * same three strings; uuid lower-case 8-4-4-4-12; date "2026-01-05",
 * "0044-03-15 BC", "infinity", "-infinity"; timestamp
 * "2026-01-05T09:14:02.118" (+ " BC"); timestamptz the same with "+00:00"
 * before any " BC" (historic zones give "+05:53:28"); time "09:14:02.5",
 * "24:00:00".
 */
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rt::fanout
{

/*
 * A decimal 0.d1d2... x 10^exp; digits run from the first to the last
 * non-zero digit and may contain the '.' of the source (skipped when read).
 * Zero has no digits.
 */
struct Decimal
{
	int8_t cls = 0; /* 0 finite, -1 -Infinity, 1 Infinity, 2 NaN */
	bool neg = false;
	int64_t exp = 0;
	std::string_view digits;
};

/* The text between the quotes of a JSON string literal; false if it is none. */
bool JsonStringBody(std::string_view j, std::string_view *body);

/*
 * The decoded bytes of a JSON string: a view of j when it has no escapes,
 * else of a per-thread buffer valid until the next call on this thread.
 * False when malformed, for lone surrogates and for \u0000.
 */
bool DecodedJsonString(std::string_view j, std::string_view *out);

/* A JSON number (exponent up to 9 digits) or "NaN", "Infinity", "-Infinity". */
bool ParseJsonDecimal(std::string_view j, Decimal *d);

/* -1, 0, 1 in Postgres's order: -Infinity < finite < Infinity < NaN = NaN. */
int CompareDecimal(const Decimal &a, const Decimal &b);

/* An int64 written as a JSON number, or as a JSON string of digits (oid). */
bool ParseJsonInt(std::string_view j, int64_t *out);

/* 8-4-4-4-12 hex (either case) to its 16 bytes, big-endian halves. */
bool ParseJsonUuid(std::string_view j, uint64_t *hi, uint64_t *lo);

/* Days since 2000-01-01; "infinity" and "-infinity" as INT64_MAX and INT64_MIN. */
bool ParseJsonDate(std::string_view j, int64_t *days);

/* Microseconds since 2000-01-01 (UTC for with_zone); infinities as for dates. */
bool ParseJsonTimestamp(std::string_view j, bool with_zone, int64_t *us);

/* Microseconds since midnight, up to 24:00:00. */
bool ParseJsonTime(std::string_view j, int64_t *us);

} // namespace rt::fanout
