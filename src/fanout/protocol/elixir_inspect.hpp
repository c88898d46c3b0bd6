/*
 * elixir_inspect.hpp: text the way upstream's Elixir code prints it, for
 * client-facing texts that must match upstream Supabase Realtime byte for
 * byte (PROTOCOL.md 6.6 embeds inspect/2 output in its error messages).
 *
 * Any thread; pure functions. Covers what JSON can decode into (nil,
 * booleans, integers, floats, strings, lists, maps) plus tuples, with
 * inspect/2's default options: 50 items per container (item k of a container
 * gets the limit minus k + 1, so nesting is bounded too), strings cut after
 * 4096 characters, and, for pretty: true, Inspect.Algebra's 80 column layout.
 * Maps print with keys sorted; Elixir does so up to 32 keys and uses hash
 * order past that, which is not reproduced.
 */
#pragma once

#include "base/json.hpp"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace rt::fanout::elixir
{

constexpr int kInspectLimit = 50;        /* Inspect.Opts :limit default */
constexpr size_t kPrintableLimit = 4096; /* Inspect.Opts :printable_limit default */
constexpr int kPrettyWidth = 80;         /* Inspect.Opts :width default */

/* String.trim/1: Unicode White_Space off both ends. */
std::string_view Trim(std::string_view s);

/*
 * A binary: "quoted" and escaped (\" \\ \#{ \n ...) when its first 4096
 * characters are printable, cut there with `<> ...`; else <<1, 2, ...>> with
 * the item limit.
 */
void InspectString(std::string &out, std::string_view s, int limit = kInspectLimit);

/* inspect/2 of a decoded JSON value, one line (pretty: false). */
std::string Inspect(const rapidjson::Value &v);

/* inspect/2 of a list of strings, one line: ["foo", "hey"]. */
std::string InspectStrings(std::initializer_list<std::string_view> items);

/*
 * A document of Inspect.Algebra, for pretty: true: text, breaks (strict: all
 * of a group's break together; flex: each on its own), nesting, groups. Built
 * with the functions below; laid out by Pretty.
 */
struct Doc
{
	enum class Kind : uint8_t
	{
		kText,
		kBreak,
		kNest,
		kGroup,
		kConcat,
	};
	Kind kind = Kind::kText;
	std::string text; /* kText; kBreak: what a flat break prints */
	bool flex = false;
	int indent = 0;        /* kNest */
	std::vector<Doc> kids; /* kNest, kGroup: one; kConcat: any */
};

Doc Text(std::string s);

/* A string as inspect/2 documents it (a <<bytes>> container when not printable). */
Doc StringDoc(std::string_view s, int limit);

/*
 * container_doc/6: items joined by "," and a break; all-text items (Elixir's
 * "simple") get flex breaks and a 1 column nest, others strict breaks with
 * the items on their own lines, 2 columns in.
 */
Doc ContainerDoc(const char *open, const char *close, std::vector<Doc> items);

/* Items under the container limit: fn(item, item_limit) for each, then "..." once used up. */
template <typename Items, typename Fn>
std::vector<Doc>
LimitedDocs(const Items &items, int limit, Fn &&fn)
{
	std::vector<Doc> docs;
	for (const auto &item : items)
	{
		if (limit <= 0)
		{
			docs.push_back(Text("..."));
			break;
		}
		limit--;
		docs.push_back(fn(item, limit));
	}
	return docs;
}

/* Inspect.Algebra.format/2 from column 0. */
std::string Pretty(const Doc &root, int width = kPrettyWidth);

} // namespace rt::fanout::elixir
