/*
 * pg_filter_pattern.hpp: the pattern operators of Postgres Changes filters:
 * LIKE/ILIKE and POSIX regular expressions standing in for ~ and ~*
 * (pg_filter_eval.hpp uses them; PROTOCOL.md 6.1).
 *
 * Any thread; pure functions. A CompiledRegex is immutable after
 * CompileRegex and may be shared by threads (glibc regexec is reentrant).
 */
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <memory>
#include <regex.h>
#include <string_view>
#include <vector>

namespace rt::fanout
{

struct LikeToken
{
	uint8_t kind; /* 0 literal byte, 1 `_` (one character), 2 `%` */
	char byte;    /* kind 0; folded to lower case for ILIKE */
};

/*
 * A LIKE pattern (backslash escapes, as Postgres's default ESCAPE) to
 * tokens; fold: ILIKE, ASCII letters compare case-insensitively. False when
 * the pattern ends in the escape (Postgres: "LIKE pattern must not end with
 * escape character").
 */
bool CompileLikePattern(std::string_view pattern, bool fold, std::vector<LikeToken> *out);

/* Whether text matches the tokens; `_` takes one UTF-8 character. */
bool LikeMatches(const std::vector<LikeToken> &tokens, std::string_view text, bool fold);

/* regex_t is not copyable: one owner, shared by every copy of a filter. */
struct CompiledRegex
{
	regex_t re{};
	bool compiled = false; /* regfree only after a successful regcomp */
	CompiledRegex() = default;
	CompiledRegex(const CompiledRegex &) = delete;
	CompiledRegex &operator=(const CompiledRegex &) = delete;
	~CompiledRegex()
	{
		if (compiled)
			regfree(&re);
	}
};

/*
 * Compile a Postgres regex as a POSIX extended one (REG_EXTENDED|REG_NOSUB,
 * REG_ICASE for ~*). Error kInvalidArgument "invalid regular expression: ..."
 * for what regcomp refuses and for what Postgres refuses that would cost
 * glibc unbounded memory (stacked quantifiers, counts above 255, huge
 * expansions), and for back-references (\1: exponential time in glibc).
 */
Result<std::shared_ptr<const CompiledRegex>> CompileRegex(std::string_view pattern, bool icase);

/* Whether the regex matches anywhere in text. */
bool RegexMatches(const CompiledRegex &re, std::string_view text);

} // namespace rt::fanout
