/*
 * fuzz_pg_changes_params.cpp: libFuzzer target for postgres_changes parameters
 * (src/fanout/postgres_changes/pg_changes_params.cpp).
 *
 * Single-threaded. Built by `make fuzz-build` (clang, ASan, UBSan) into build/fuzz/;
 * scripts/fuzz.sh runs it from test/c/corpus/pg_changes_params (the README's test command for a
 * bounded time, `make fuzz` longer).
 * Each input is tried as a whole JSON entry (when it parses) and as the filter
 * string of {"schema":"public","table":"t"}. Besides crashes and sanitizer
 * reports, it traps when an accepted subscription breaks the module's promises:
 * empty schema/table where they cannot be, an `in` or `is` filter that passed
 * the checks without its values or keyword, an error text without its prefix.
 */
#include "fuzz_check.hpp"
#include "base/json.hpp"
#include "postgres_changes/pg_changes_params.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace
{

using namespace rt::fanout;

using rt::fuzz::Check;

bool
KnownPrefix(const std::string &m)
{
	return m.starts_with("Error parsing `filter` params: ") ||
	       m.starts_with("Error parsing `select` params: ") ||
	       m.starts_with("No subscription params provided. ") ||
	       m.starts_with("Column selection is not supported for wildcard subscriptions.");
}

void
Exercise(const rapidjson::Value &entry)
{
	Result<PgChangesParams> r = ParsePgChangesParams(entry);
	if (!r.ok())
	{
		Check(KnownPrefix(r.error().message));
		return;
	}
	const PgChangesParams &p = r.value();
	std::string rendered = RenderPgChangesParams(p);
	Check(rendered.starts_with("event: "));
	std::optional<Error> e = CheckPgChangesText(p);
	if (!e)
		e = CheckPgChangesParams(p);
	if (e)
	{
		Check(e->message.starts_with("Unable to subscribe to changes with given parameters. An "
		                             "exception happened"));
		return;
	}
	for (const PgFilter &f : p.filters)
	{
		Check(!f.column.empty() && f.column.size() <= kMaxIdentifierBytes);
		if (f.op == FilterOp::kIn)
		{
			Check(f.values.size() + (f.in_has_null ? 1 : 0) <= kMaxInValues);
			Check(f.value.size() >= 2 && f.value.front() == '{' && f.value.back() == '}');
		}
		if (f.op == FilterOp::kIs)
			Check(f.keyword != IsKeyword::kNone);
	}
	if (p.select)
		for (const std::string &c : *p.select)
			Check(!c.empty() && c.size() <= kMaxIdentifierBytes);
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view in(reinterpret_cast<const char *>(data), size);

	rapidjson::Document doc;
	if (json::NestingWithin(in, 256) && json::Parse(doc, in))
		Exercise(doc);

	rapidjson::Document entry;
	entry.SetObject();
	auto &a = entry.GetAllocator();
	entry.AddMember("schema", "public", a);
	entry.AddMember("table", "t", a);
	entry.AddMember("filter",
	                rapidjson::Value(in.data(), static_cast<rapidjson::SizeType>(size), a), a);
	Exercise(entry);
	return 0;
}
