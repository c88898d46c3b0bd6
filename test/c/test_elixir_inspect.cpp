/*
 * test_elixir_inspect.cpp: unit tests of the Elixir renderer
 * (src/fanout/elixir_inspect.cpp).
 *
 * Single-threaded CMocka program. Expected texts follow Elixir's inspect/2
 * defaults (limit 50, printable_limit 4096), Erlang's shortest float format
 * and Inspect.Algebra's 80 column layout; hostile sizes stay bounded.
 */
/* ours and std first: cmocka.h defines a fail() macro that <ios> would trip over */
#include "protocol/elixir_inspect.hpp"
#include "base/json.hpp"

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

namespace elixir = rt::fanout::elixir;

namespace
{

std::string
Inspect(std::string_view json_text)
{
	rapidjson::Document doc;
	if (!rt::fanout::json::Parse(doc, json_text))
		fail();
	return elixir::Inspect(doc);
}

void
TestInspect(void **)
{
	struct
	{
		const char *json;
		const char *want;
	} cases[] = {
	    {"null", "nil"},
	    {"true", "true"},
	    {"-12", "-12"},
	    {"18446744073709551615", "18446744073709551615"},
	    {"1.0", "1.0"},
	    {"1.5", "1.5"},
	    {"-2.25", "-2.25"},
	    {"100.0", "100.0"},
	    {"1000.0", "1.0e3"},
	    {"1e3", "1.0e3"},
	    {"123456.0", "123456.0"},
	    {"0.001", "0.001"},
	    {"0.0001", "1.0e-4"},
	    {"0.00012", "1.2e-4"},
	    {"1.5e300", "1.5e300"},
	    {"9007199254740993.0", "9.007199254740992e15"},
	    {"0.0", "0.0"},
	    {"-0.0", "-0.0"},
	    {"0.1", "0.1"},
	    {"123.456", "123.456"},
	    {R"("")", R"("")"},
	    {R"("a\"b\\c")", R"("a\"b\\c")"},
	    {R"("\u0007\b\t\n\u000b\f\r\u001b\u007f")", R"("\a\b\t\n\v\f\r\e\d")"},
	    {R"("#{x} # {")", R"("\#{x} # {")"},
	    {R"("é😀")", R"("é😀")"},
	    {R"("\u0000")", "<<0>>"},
	    {R"("\u0085")", "<<194, 133>>"},
	    {R"("\uffff")", "<<239, 191, 191>>"},
	    {"[]", "[]"},
	    {"{}", "%{}"},
	    {R"([1,"a",[null,{}]])", R"([1, "a", [nil, %{}]])"},
	    {R"({"b":1,"a":2,"B":3,"aa":4})", R"(%{"B" => 3, "a" => 2, "aa" => 4, "b" => 1})"},
	    {R"({"k":1,"k":2})", R"(%{"k" => 2})"},
	};
	for (const auto &c : cases)
		assert_string_equal(Inspect(c.json).c_str(), c.want);

	/* 51 items: 50 and "..." */
	std::string list = "[";
	std::string want = "[";
	for (int i = 0; i < 51; i++)
	{
		list += (i ? "," : "") + std::to_string(i);
		if (i < 50)
			want += (i ? ", " : "") + std::to_string(i);
	}
	list += "]";
	want += ", ...]";
	assert_string_equal(Inspect(list).c_str(), want.c_str());
	/* nested: the limit shrinks with the position (item k gets 50 - k - 1) */
	assert_string_equal(Inspect("[[[[1,2,3]]]]").c_str(), "[[[[1, 2, 3]]]]");
	/* long strings: 4096 characters then <> ... */
	std::string big(5000, 'x');
	std::string got = Inspect("\"" + big + "\"");
	assert_string_equal(got.c_str(), ("\"" + std::string(4096, 'x') + "\" <> ...").c_str());
	/* a NUL after the first 4096 characters is not looked at */
	std::string late = "\"" + std::string(4096, 'y') + "\\u0000\"";
	assert_string_equal(Inspect(late).c_str(),
	                    ("\"" + std::string(4096, 'y') + "\" <> ...").c_str());
	/* non-printable: 50 bytes then ... */
	std::string bin = "\"\\u0000" + std::string(60, 'a') + "\"";
	got = Inspect(bin);
	assert_true(got.starts_with("<<0, 97, 97"));
	assert_true(got.ends_with("97, ...>>"));
}

void
TestTrim(void **)
{
	assert_true(elixir::Trim("").empty());
	assert_true(elixir::Trim(" \t\n\v\f\r ").empty());
	assert_true(elixir::Trim(" a b ") == "a b");
	/* White_Space beyond ASCII, no-break spaces included */
	assert_true(
	    elixir::Trim("\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000x\u0085\u2007") == "x");
	/* not White_Space: zero width space, BOM, NUL */
	assert_true(elixir::Trim("\u200bx\ufeff") == "\u200bx\ufeff");
	assert_true(elixir::Trim(std::string_view("\0x\0", 3)).size() == 3);
	/* invalid UTF-8 at either end is left alone */
	assert_true(elixir::Trim("\xff x \xe3\x80") == "\xff x \xe3\x80");
	assert_true(elixir::Trim(" \x80") == "\x80");
}

void
TestPretty(void **)
{
	/* a flex list fills lines, nested 1 column */
	std::vector<std::string> words;
	for (int i = 0; i < 30; i++)
		words.push_back("word" + std::to_string(i));
	std::string got = elixir::Pretty(
	    elixir::ContainerDoc("[", "]",
	                         elixir::LimitedDocs(words, elixir::kInspectLimit,
	                                             [](const std::string &w, int limit)
	                                             { return elixir::StringDoc(w, limit); })));
	for (const std::string &line : {std::string("[\"word0\", "), std::string("\n \"word")})
		assert_true(got.find(line) != std::string::npos);
	size_t start = 0;
	while (start < got.size())
	{
		size_t nl = got.find('\n', start);
		size_t end = nl == std::string::npos ? got.size() : nl;
		assert_true(end - start <= 80);
		start = end + 1;
	}
	/* an item wider than the line has nowhere to go: it stays whole */
	std::string wide(200, 'w');
	got = elixir::Pretty(elixir::ContainerDoc("[", "]", {elixir::StringDoc(wide, 50)}));
	assert_string_equal(got.c_str(), ("[\"" + wide + "\"]").c_str());
	/* empty containers */
	assert_string_equal(elixir::Pretty(elixir::ContainerDoc("[", "]", {})).c_str(), "[]");
	assert_string_equal(elixir::Pretty(elixir::ContainerDoc("{", "}", {})).c_str(), "{}");
	/* a narrower width breaks sooner */
	got = elixir::Pretty(
	    elixir::ContainerDoc("{", "}", {elixir::Text("aaaa"), elixir::Text("bbbb")}), 8);
	assert_string_equal(got.c_str(), "{aaaa,\n bbbb}");
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestInspect),
	    cmocka_unit_test(TestTrim),
	    cmocka_unit_test(TestPretty),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
