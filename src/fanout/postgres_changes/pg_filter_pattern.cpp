/*
 * pg_filter_pattern.cpp: LIKE/ILIKE and regex matching for Postgres Changes
 * filters (see pg_filter_pattern.hpp).
 *
 * Any thread; no shared mutable state but a per-thread regex subject buffer.
 *
 * Approximate, by design: ILIKE folds ASCII letters only (Postgres lowercases
 * by the database's ctype: 'É' ILIKE 'é' is true there, false here). Regexes
 * are glibc POSIX EREs, byte-wise unless the process set a UTF-8 locale;
 * Postgres uses its ARE flavour. \d \D \s \S \w \W are translated to bracket
 * classes, non-greedy quantifiers cannot change whether a match exists, and
 * ARE-only syntax (lookaheads, \m, \y, embedded options) fails to compile.
 */
#include "postgres_changes/pg_filter_pattern.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace rt::fanout
{

namespace
{

bool
IsDigit(char c)
{
	return c >= '0' && c <= '9';
}

char
FoldAscii(char c)
{
	return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

/* Past the UTF-8 character starting at t[i]. */
size_t
NextChar(std::string_view t, size_t i)
{
	i++;
	while (i < t.size() && (static_cast<unsigned char>(t[i]) & 0xc0) == 0x80)
		i++;
	return i;
}

/* ---- regex ------------------------------------------------------------------------------ */

/*
 * Postgres ARE class escapes to POSIX bracket expressions (glibc's ERE knows
 * \w \s but not \d, and none inside brackets). Everything else is kept.
 */
std::string
TranslateRegex(std::string_view p)
{
	std::string out;
	bool bracket = false;
	for (size_t i = 0; i < p.size(); i++)
	{
		char c = p[i];
		if (bracket)
		{
			if (c == ']' &&
			    !(out.back() == '[' || (out.back() == '^' && out[out.size() - 2] == '[')))
				bracket = false;
			if (c == '\\' && i + 1 < p.size() && std::strchr("dsw", p[i + 1]) != nullptr)
			{
				char e = p[++i];
				out += e == 'd' ? "[:digit:]" : (e == 's' ? "[:space:]" : "[:alnum:]_");
				continue;
			}
			out += c;
			continue;
		}
		if (c == '[')
		{
			bracket = true;
			out += c;
			continue;
		}
		if (c == '\\' && i + 1 < p.size())
		{
			char e = p[i + 1];
			const char *cls = nullptr;
			switch (e)
			{
			case 'd':
				cls = "[[:digit:]]";
				break;
			case 'D':
				cls = "[^[:digit:]]";
				break;
			case 's':
				cls = "[[:space:]]";
				break;
			case 'S':
				cls = "[^[:space:]]";
				break;
			case 'w':
				cls = "[[:alnum:]_]";
				break;
			case 'W':
				cls = "[^[:alnum:]_]";
				break;
			default:
				break;
			}
			out += cls != nullptr ? std::string_view(cls) : p.substr(i, 2);
			i++;
			continue;
		}
		out += c;
	}
	return out;
}

constexpr int64_t kMaxRegexNodes = 20000; /* atoms after glibc expands repetitions */
constexpr int64_t kMaxRepeat = 255;       /* Postgres's DUPMAX */

/* "{m}", "{m,}" or "{m,n}" at p[*i]; the largest count that matters (m+1 if unbounded). */
bool
ReadBound(std::string_view p, size_t *i, int64_t *count)
{
	size_t k = *i + 1;
	int64_t m = 0, n = -1;
	size_t b = k;
	while (k < p.size() && IsDigit(p[k]))
		m = std::min<int64_t>(m * 10 + (p[k++] - '0'), kMaxRepeat + 1); /* saturate */
	if (k == b)
		return false;
	if (k < p.size() && p[k] == ',')
	{
		k++;
		b = k;
		n = 0;
		while (k < p.size() && IsDigit(p[k]))
			n = std::min<int64_t>(n * 10 + (p[k++] - '0'), kMaxRepeat + 1);
		if (k == b)
			n = m + 1;
	}
	if (k >= p.size() || p[k] != '}')
		return false;
	*i = k;
	*count = n < 0 ? m : (n > m ? n : m);
	return true;
}

/*
 * What Postgres refuses and glibc would take with exponential memory: stacked
 * quantifiers ("a++"; a lazy "?" after one is fine, it cannot change whether
 * a match exists), counts above 255, and patterns whose repetitions expand
 * past kMaxRegexNodes atoms (glibc copies the operand of a bound per count);
 * and back-references, which Postgres takes but glibc matches in exponential
 * time. nullptr when the ERE pattern p is acceptable.
 */
const char *
RegexRefusal(std::string_view p)
{
	std::vector<int64_t> outer; /* sizes of the enclosing groups so far */
	int64_t cur = 0, last = 0;  /* size of this group so far; of its last atom */
	int quantifiers = 0;        /* quantifiers right after the last atom */
	for (size_t i = 0; i < p.size(); i++)
	{
		char c = p[i];
		int64_t count = -1;
		if (c == '*' || c == '?')
			count = 1;
		else if (c == '+')
			count = 2;
		else if (c == '{' && !ReadBound(p, &i, &count))
			count = -1;
		if (count >= 0)
		{
			if (quantifiers > 0 && !(c == '?' && quantifiers == 1))
				return "quantifier operand invalid";
			if (count > kMaxRepeat)
				return "invalid repetition count(s)";
			quantifiers++;
			if (count > 1)
			{
				cur += last * (count - 1);
				last *= count;
			}
		}
		else
		{
			quantifiers = 0;
			if (c == '(')
			{
				outer.push_back(cur);
				cur = 0;
				last = 0;
				continue;
			}
			if (c == ')' && !outer.empty())
			{
				last = cur;
				cur = outer.back() + cur;
				outer.pop_back();
			}
			else if (c == '|')
				last = 0;
			else
			{
				if (c == '\\')
				{
					/* glibc matches back-references by backtracking: exponential time */
					if (i + 1 < p.size() && p[i + 1] >= '1' && p[i + 1] <= '9')
						return "back-references are not supported outside the database";
					i++;
				}
				else if (c == '[')
				{
					/* to the closing bracket: a leading ] or ^] is literal, [:x:] nests */
					size_t k = i + 1;
					if (k < p.size() && p[k] == '^')
						k++;
					if (k < p.size() && p[k] == ']')
						k++;
					while (k < p.size() && p[k] != ']')
					{
						if (p[k] == '[' && k + 1 < p.size() &&
						    (p[k + 1] == ':' || p[k + 1] == '.' || p[k + 1] == '='))
						{
							size_t close = p.find(std::string{p[k + 1], ']'}, k + 2);
							k = close == std::string_view::npos ? p.size() : close + 2;
							continue;
						}
						k++;
					}
					i = k;
				}
				last = 1;
				cur += 1;
			}
		}
		if (cur > kMaxRegexNodes || last > kMaxRegexNodes)
			return "regular expression is too complex";
	}
	return nullptr;
}

} // namespace

/* Pattern to tokens: backslash escapes, %% collapsed; false if it ends in the escape. */
bool
CompileLikePattern(std::string_view p, bool fold, std::vector<LikeToken> *out)
{
	for (size_t i = 0; i < p.size(); i++)
	{
		char c = p[i];
		if (c == '\\')
		{
			if (++i >= p.size())
				return false;
			out->push_back({0, fold ? FoldAscii(p[i]) : p[i]});
		}
		else if (c == '%')
		{
			if (out->empty() || out->back().kind != 2)
				out->push_back({2, 0});
		}
		else if (c == '_')
			out->push_back({1, 0});
		else
			out->push_back({0, fold ? FoldAscii(c) : c});
	}
	return true;
}

/*
 * Wildcard match with one backtrack point (the last %): O(len(t) x tokens)
 * at worst. `_` takes one UTF-8 character, % any number; literals compare
 * bytes, which keeps character boundaries aligned.
 */
bool
LikeMatches(const std::vector<LikeToken> &p, std::string_view t, bool fold)
{
	size_t ti = 0, pi = 0;
	size_t star_p = std::string_view::npos, star_t = 0;
	while (ti < t.size())
	{
		if (pi < p.size())
		{
			const LikeToken &tok = p[pi];
			if (tok.kind == 2)
			{
				star_p = ++pi;
				star_t = ti;
				continue;
			}
			if (tok.kind == 1)
			{
				ti = NextChar(t, ti);
				pi++;
				continue;
			}
			if ((fold ? FoldAscii(t[ti]) : t[ti]) == tok.byte)
			{
				ti++;
				pi++;
				continue;
			}
		}
		if (star_p == std::string_view::npos)
			return false;
		star_t = NextChar(t, star_t);
		ti = star_t;
		pi = star_p;
	}
	while (pi < p.size() && p[pi].kind == 2)
		pi++;
	return pi == p.size();
}

Result<std::shared_ptr<const CompiledRegex>>
CompileRegex(std::string_view pattern, bool icase)
{
	auto invalid = [](std::string_view why) {
		return Error{ErrorCode::kInvalidArgument,
		             "invalid regular expression: " + std::string(why)};
	};
	if (pattern.find('\0') != std::string_view::npos)
		return invalid("pattern contains a NUL character");
	std::string re = TranslateRegex(pattern);
	if (const char *refusal = RegexRefusal(re))
		return invalid(refusal);
	auto holder = std::make_shared<CompiledRegex>();
	int rc = regcomp(&holder->re, re.c_str(), REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
	if (rc != 0)
	{
		char buf[256];
		regerror(rc, &holder->re, buf, sizeof buf);
		return invalid(buf);
	}
	holder->compiled = true;
	return std::shared_ptr<const CompiledRegex>(std::move(holder));
}

bool
RegexMatches(const CompiledRegex &re, std::string_view text)
{
	/*
	 * glibc honours REG_STARTEND without reading past rm_eo, but sanitizer
	 * interceptors strlen() the subject: give it a terminated copy (the
	 * per-thread buffer keeps its capacity, so this rarely allocates).
	 */
	thread_local std::string subject;
	subject.assign(text);
	regmatch_t m[1];
	m[0].rm_so = 0;
	m[0].rm_eo = static_cast<regoff_t>(subject.size());
	return regexec(&re.re, subject.c_str(), 1, m, REG_STARTEND) == 0;
}

} // namespace rt::fanout
