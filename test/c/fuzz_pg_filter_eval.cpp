/*
 * fuzz_pg_filter_eval.cpp: libFuzzer target for Postgres Changes filter
 * evaluation (src/fanout/postgres_changes/pg_filter_eval.cpp).
 *
 * Single-threaded. Built by `make fuzz-build` (clang, ASan, UBSan) into build/fuzz/;
 * scripts/fuzz.sh runs it from test/c/corpus/pg_filter_eval (the README's test command for a
 * bounded time, `make fuzz` longer).
 * The first byte picks the column type and the operator; the rest is split at
 * the first newline into the right-hand side and the row value. Besides
 * crashes and sanitizer reports, it traps when a filter and its `not.` form
 * both match, or when a right-hand side that compiles as `eq` is not equal to
 * itself (or is below itself) as a row value.
 */
#include "fuzz_check.hpp"
#include "postgres_changes/pg_filter_eval.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace
{

using namespace rt::fanout;

constexpr const char *kTypes[] = {
    "int4", "int8", "oid",  "float8", "numeric",   "bool",        "text",     "bpchar",
    "uuid", "date", "time", "name",   "timestamp", "timestamptz", "interval", "varchar"};

using rt::fuzz::Check;

std::optional<CompiledFilter>
Compile(FilterOp op, bool negated, IsKeyword kw, std::string_view type, std::string_view rhs)
{
	PgFilter f;
	f.column = "c";
	f.op = op;
	f.negated = negated;
	f.keyword = kw;
	Result<CompiledFilter> r = CompileFilter(f, type, rhs, true);
	if (!r.ok())
	{
		Check(!r.error().message.empty());
		return std::nullopt;
	}
	return std::move(r.value());
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	std::string_view in(reinterpret_cast<const char *>(data + 1), size - 1);
	uint8_t sel = data[0];
	std::string_view type = kTypes[sel % std::size(kTypes)];
	auto op = static_cast<FilterOp>((sel / 16) % (static_cast<int>(FilterOp::kIsDistinct) + 1));
	auto kw = static_cast<IsKeyword>(sel % 5);
	size_t nl = in.find('\n');
	std::string_view rhs = in.substr(0, nl);
	std::optional<std::string_view> lhs;
	if (nl != std::string_view::npos)
		lhs = in.substr(nl + 1);

	std::optional<CompiledFilter> pos = Compile(op, false, kw, type, rhs);
	std::optional<CompiledFilter> neg = Compile(op, true, kw, type, rhs);
	Check(pos.has_value() == neg.has_value());
	if (pos)
	{
		bool a = FilterMatches(*pos, lhs);
		bool b = FilterMatches(*neg, lhs);
		Check(!(a && b));
		Check(!FilterMatches(*pos, std::nullopt) && !FilterMatches(*neg, std::nullopt));
	}

	/* reflexivity: a value the rhs parser accepts must equal itself as a row value */
	std::optional<CompiledFilter> eq = Compile(FilterOp::kEq, false, IsKeyword::kNone, type, rhs);
	if (eq && rhs != "null")
	{
		Check(FilterMatches(*eq, rhs));
		std::optional<CompiledFilter> lt =
		    Compile(FilterOp::kLt, false, IsKeyword::kNone, type, rhs);
		if (lt)
			Check(!FilterMatches(*lt, rhs));
	}
	return 0;
}
