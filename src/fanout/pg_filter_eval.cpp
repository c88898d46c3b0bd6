/*
 * pg_filter_eval.cpp: Postgres Changes filter evaluation (see
 * pg_filter_eval.hpp).
 *
 * Any thread; no shared mutable state but a per-thread decode buffer. The
 * row side is parsed in place on every call, strictly: anything that is not
 * the rendering to_jsonb gives for the kind is "malformed" and fails the
 * filter. The right-hand side is parsed once, at compile time.
 *
 * Renderings this relies on (checked on PostgreSQL 15, TimeZone UTC):
 *   int2/int4/int8: 42; oid: "42"; float4/float8: shortest round-trip decimal
 *   without exponent (1e30 -> 1000000000000000000000000000000), "NaN",
 *   "Infinity", "-Infinity"; numeric: its digits with scale (12.50), the same
 *   three strings; bool: true/false; uuid: lower-case 8-4-4-4-12;
 *   date: "2026-01-05", "0044-03-15 BC", "infinity", "-infinity";
 *   timestamp: "2026-01-05T09:14:02.118" (+ " BC"); timestamptz: the same
 *   with "+00:00" (historic zones may give "+05:53:28"); time: "09:14:02.5",
 *   "24:00:00"; char(n): padded with spaces.
 *
 * Approximate, by design:
 *   - float: Postgres compares the binary values; we see their shortest
 *     round-trip decimals, which order the same way and are equal exactly
 *     when the floats are (-0 prints as 0, and -0 = 0 in Postgres too).
 *   - ilike folds ASCII letters only (Postgres lowercases by the database's
 *     ctype: 'É' ILIKE 'é' is true there, false here).
 *   - match/imatch: POSIX extended regular expressions (glibc <regex.h>,
 *     REG_EXTENDED|REG_NOSUB[|REG_ICASE]), byte-wise unless the process set a
 *     UTF-8 locale. Postgres uses its ARE flavour; \d \D \s \S \w \W are
 *     translated to bracket classes, lookaheads and the like fail to compile.
 *   - kOther: eq/neq/in/isdistinct compare the canonical jsonb text, which is
 *     Postgres's equality for most types but not all (interval '1 day' =
 *     '24 hours', citext, numbers of different scale inside jsonb).
 */
#include "pg_filter_eval.hpp"

#include "json.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <exception>
#include <regex.h>

namespace rt::fanout
{

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

namespace
{

enum class Tri : uint8_t
{
	kFalse,
	kTrue,
	kNull,
};

Tri
FromBool(bool b)
{
	return b ? Tri::kTrue : Tri::kFalse;
}

/* ---- JSON strings ----------------------------------------------------------------------- */

/* The text between the quotes of a JSON string literal; false if it is none. */
bool
StringBody(std::string_view j, std::string_view *body)
{
	if (j.size() < 2 || j.front() != '"' || j.back() != '"')
		return false;
	std::string_view b = j.substr(1, j.size() - 2);
	/* an odd run of backslashes before the last quote escapes it */
	size_t slashes = 0;
	while (slashes < b.size() && b[b.size() - 1 - slashes] == '\\')
		slashes++;
	if (slashes % 2 != 0)
		return false;
	*body = b;
	return true;
}

int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
Hex4(std::string_view s, size_t i, uint32_t *out)
{
	if (i + 4 > s.size())
		return false;
	uint32_t v = 0;
	for (size_t k = 0; k < 4; k++)
	{
		int h = HexValue(s[i + k]);
		if (h < 0)
			return false;
		v = v << 4 | static_cast<uint32_t>(h);
	}
	*out = v;
	return true;
}

void
AppendUtf8(std::string &out, uint32_t cp)
{
	if (cp < 0x80)
		out += static_cast<char>(cp);
	else if (cp < 0x800)
	{
		out += static_cast<char>(0xc0 | cp >> 6);
		out += static_cast<char>(0x80 | (cp & 0x3f));
	}
	else if (cp < 0x10000)
	{
		out += static_cast<char>(0xe0 | cp >> 12);
		out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	}
	else
	{
		out += static_cast<char>(0xf0 | cp >> 18);
		out += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
		out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	}
}

/* Resolve the escapes of a string body into out; false if malformed or \u0000. */
bool
DecodeBody(std::string_view b, std::string &out)
{
	out.clear();
	for (size_t i = 0; i < b.size(); i++)
	{
		char c = b[i];
		if (c == '"')
			return false;
		if (c != '\\')
		{
			out += c;
			continue;
		}
		if (++i >= b.size())
			return false;
		switch (b[i])
		{
		case '"':
		case '\\':
		case '/':
			out += b[i];
			break;
		case 'b':
			out += '\b';
			break;
		case 'f':
			out += '\f';
			break;
		case 'n':
			out += '\n';
			break;
		case 'r':
			out += '\r';
			break;
		case 't':
			out += '\t';
			break;
		case 'u':
		{
			uint32_t cp;
			if (!Hex4(b, i + 1, &cp))
				return false;
			i += 4;
			if (cp >= 0xd800 && cp <= 0xdbff)
			{
				uint32_t low;
				if (i + 2 >= b.size() || b[i + 1] != '\\' || b[i + 2] != 'u' ||
				    !Hex4(b, i + 3, &low) || low < 0xdc00 || low > 0xdfff)
					return false;
				i += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
			}
			else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0)
				return false;
			AppendUtf8(out, cp);
			break;
		}
		default:
			return false;
		}
	}
	return true;
}

/*
 * The decoded bytes of a JSON string: the body itself when it has no escapes
 * (the common case, no copy), else decoded into a per-thread buffer that
 * lives until the next call on this thread.
 */
bool
DecodedString(std::string_view j, std::string_view *out)
{
	std::string_view body;
	if (!StringBody(j, &body))
		return false;
	if (body.find_first_of("\\\"") == std::string_view::npos)
	{
		*out = body;
		return true;
	}
	thread_local std::string scratch;
	if (!DecodeBody(body, scratch))
		return false;
	*out = scratch;
	return true;
}

std::string_view
TrimTrailingSpaces(std::string_view s)
{
	while (!s.empty() && s.back() == ' ')
		s.remove_suffix(1);
	return s;
}

/* ---- numbers ---------------------------------------------------------------------------- */

bool
IsDigit(char c)
{
	return c >= '0' && c <= '9';
}

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

/* A JSON number (any exponent up to 9 digits) or "NaN" / "Infinity" / "-Infinity". */
bool
ParseDecimal(std::string_view j, Decimal *d)
{
	*d = Decimal{};
	if (j == "\"NaN\"")
		return d->cls = 2, true;
	if (j == "\"Infinity\"")
		return d->cls = 1, true;
	if (j == "\"-Infinity\"")
		return d->cls = -1, true;
	size_t i = 0;
	bool neg = false;
	if (i < j.size() && j[i] == '-')
		neg = true, i++;
	size_t int_begin = i;
	if (i < j.size() && j[i] == '0')
		i++;
	else
	{
		if (i >= j.size() || !IsDigit(j[i]))
			return false;
		while (i < j.size() && IsDigit(j[i]))
			i++;
	}
	size_t int_end = i;
	size_t frac_begin = i, frac_end = i;
	if (i < j.size() && j[i] == '.')
	{
		frac_begin = ++i;
		while (i < j.size() && IsDigit(j[i]))
			i++;
		frac_end = i;
		if (frac_end == frac_begin)
			return false;
	}
	int64_t e = 0;
	if (i < j.size() && (j[i] == 'e' || j[i] == 'E'))
	{
		i++;
		bool eneg = false;
		if (i < j.size() && (j[i] == '+' || j[i] == '-'))
			eneg = j[i++] == '-';
		size_t eb = i;
		while (i < j.size() && IsDigit(j[i]) && i - eb < 9)
			e = e * 10 + (j[i++] - '0');
		if (i == eb)
			return false;
		e = eneg ? -e : e;
	}
	if (i != j.size())
		return false;

	size_t first = std::string_view::npos, last = std::string_view::npos;
	for (size_t k = int_begin; k < int_end && first == std::string_view::npos; k++)
		if (j[k] != '0')
			first = k;
	for (size_t k = frac_begin; k < frac_end && first == std::string_view::npos; k++)
		if (j[k] != '0')
			first = k;
	if (first == std::string_view::npos)
		return true; /* zero, also -0 */
	for (size_t k = frac_end; k > frac_begin && last == std::string_view::npos; k--)
		if (j[k - 1] != '0')
			last = k - 1;
	for (size_t k = int_end; k > int_begin && last == std::string_view::npos; k--)
		if (j[k - 1] != '0')
			last = k - 1;
	int64_t int_len = static_cast<int64_t>(int_end - int_begin);
	if (first < int_end)
		d->exp = int_len - static_cast<int64_t>(first - int_begin) + e;
	else
		d->exp = -static_cast<int64_t>(first - frac_begin) + e;
	d->neg = neg;
	d->digits = j.substr(first, last + 1 - first);
	return true;
}

/* Compare digit strings (each may hold one '.') as 0.digits. */
int
CompareDigits(std::string_view a, std::string_view b)
{
	size_t i = 0, k = 0;
	for (;;)
	{
		if (i < a.size() && a[i] == '.')
			i++;
		if (k < b.size() && b[k] == '.')
			k++;
		bool ae = i >= a.size(), be = k >= b.size();
		if (ae || be)
			return ae && be ? 0 : (ae ? -1 : 1);
		if (a[i] != b[k])
			return a[i] < b[k] ? -1 : 1;
		i++, k++;
	}
}

/* Postgres order: -Infinity < finite < Infinity < NaN, and NaN = NaN. */
int
CompareDecimal(const Decimal &a, const Decimal &b)
{
	if (a.cls != 0 || b.cls != 0)
	{
		int ra = a.cls == 0 ? 0 : a.cls * 2 - (a.cls == 2 ? 1 : 0);
		int rb = b.cls == 0 ? 0 : b.cls * 2 - (b.cls == 2 ? 1 : 0);
		/* ranks: -Infinity -2, finite 0, Infinity 2, NaN 3 */
		if (ra != rb || ra != 0)
			return ra == rb ? 0 : (ra < rb ? -1 : 1);
	}
	int sa = a.digits.empty() ? 0 : (a.neg ? -1 : 1);
	int sb = b.digits.empty() ? 0 : (b.neg ? -1 : 1);
	if (sa != sb)
		return sa < sb ? -1 : 1;
	if (sa == 0)
		return 0;
	int mag = a.exp != b.exp ? (a.exp < b.exp ? -1 : 1) : CompareDigits(a.digits, b.digits);
	return sa < 0 ? -mag : mag;
}

/* int2/int4/int8 as JSON numbers; oid as a JSON string of digits. */
bool
ParseInt(std::string_view j, int64_t *out)
{
	if (j.size() >= 2 && j.front() == '"' && j.back() == '"')
		j = j.substr(1, j.size() - 2);
	if (j.empty())
		return false;
	auto [p, ec] = std::from_chars(j.data(), j.data() + j.size(), *out);
	return ec == std::errc() && p == j.data() + j.size();
}

/* ---- uuid, dates and times ------------------------------------------------------------ */

bool
ParseUuid(std::string_view j, uint64_t *hi, uint64_t *lo)
{
	std::string_view b;
	if (!StringBody(j, &b) || b.size() != 36)
		return false;
	uint64_t v[2] = {0, 0};
	int n = 0;
	for (size_t i = 0; i < b.size(); i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (b[i] != '-')
				return false;
			continue;
		}
		int h = HexValue(b[i]);
		if (h < 0)
			return false;
		v[n / 16] = v[n / 16] << 4 | static_cast<uint64_t>(h);
		n++;
	}
	*hi = v[0];
	*lo = v[1];
	return true;
}

/* Read exactly n digits at s[*i]. */
bool
Digits(std::string_view s, size_t *i, size_t n, int64_t *out)
{
	if (*i + n > s.size())
		return false;
	int64_t v = 0;
	for (size_t k = 0; k < n; k++)
	{
		char c = s[*i + k];
		if (!IsDigit(c))
			return false;
		v = v * 10 + (c - '0');
	}
	*i += n;
	*out = v;
	return true;
}

bool
Expect(std::string_view s, size_t *i, char c)
{
	if (*i >= s.size() || s[*i] != c)
		return false;
	(*i)++;
	return true;
}

/* Days from 2000-01-01 to the proleptic Gregorian date (astronomical year). */
int64_t
DaysFrom2000(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468 - 10957;
}

/* "YYYY-MM-DD" (4 to 7 year digits) at s[*i]; the year as written (BC handled by caller). */
bool
ReadDate(std::string_view s, size_t *i, int64_t *y, int64_t *m, int64_t *d)
{
	size_t b = *i;
	*y = 0;
	while (*i < s.size() && IsDigit(s[*i]) && *i - b < 7)
		*y = *y * 10 + (s[(*i)++] - '0');
	if (*i - b < 4)
		return false;
	return Expect(s, i, '-') && Digits(s, i, 2, m) && *m >= 1 && *m <= 12 && Expect(s, i, '-') &&
	       Digits(s, i, 2, d) && *d >= 1 && *d <= 31;
}

/* "HH:MM:SS[.f{1,6}]" at s[*i] as microseconds. */
bool
ReadTime(std::string_view s, size_t *i, int64_t *us)
{
	int64_t h, mi, se;
	if (!Digits(s, i, 2, &h) || !Expect(s, i, ':') || !Digits(s, i, 2, &mi) || !Expect(s, i, ':') ||
	    !Digits(s, i, 2, &se) || h > 24 || mi > 59 || se > 60)
		return false;
	int64_t frac = 0;
	if (*i < s.size() && s[*i] == '.')
	{
		(*i)++;
		size_t b = *i;
		while (*i < s.size() && IsDigit(s[*i]) && *i - b < 6)
			frac = frac * 10 + (s[(*i)++] - '0');
		if (*i == b || (*i < s.size() && IsDigit(s[*i])))
			return false;
		for (size_t k = *i - b; k < 6; k++)
			frac *= 10;
	}
	*us = ((h * 60 + mi) * 60 + se) * 1000000 + frac;
	return true;
}

constexpr int64_t kUsPerDay = 86400000000LL;
constexpr int64_t kMaxDays = INT64_MAX / kUsPerDay; /* |days| * kUsPerDay fits int64 */

/* date, timestamp or timestamptz body to days or microseconds; +-infinity at the int64 ends. */
bool
ParseDateTime(std::string_view j, ValueKind kind, int64_t *out)
{
	std::string_view s;
	if (!StringBody(j, &s))
		return false;
	if (s == "infinity")
		return *out = INT64_MAX, true;
	if (s == "-infinity")
		return *out = INT64_MIN, true;
	bool bc = s.ends_with(" BC");
	if (bc)
		s.remove_suffix(3);
	size_t i = 0;
	int64_t y, m, d;
	if (!ReadDate(s, &i, &y, &m, &d) || (bc && y == 0))
		return false;
	int64_t days = DaysFrom2000(bc ? 1 - y : y, m, d);
	if (kind == ValueKind::kDate)
		return i == s.size() ? (*out = days, true) : false;
	int64_t tod, us;
	if (days > kMaxDays || days < -kMaxDays || !Expect(s, &i, 'T') || !ReadTime(s, &i, &tod) ||
	    __builtin_add_overflow(days * kUsPerDay, tod, &us))
		return false;
	if (kind == ValueKind::kTimestampTz)
	{
		if (i >= s.size() || (s[i] != '+' && s[i] != '-'))
			return false;
		bool east = s[i++] == '+';
		int64_t oh, om = 0, os = 0;
		if (!Digits(s, &i, 2, &oh))
			return false;
		if (i < s.size() && s[i] == ':' && (++i, !Digits(s, &i, 2, &om)))
			return false;
		if (i < s.size() && s[i] == ':' && (++i, !Digits(s, &i, 2, &os)))
			return false;
		int64_t off = ((oh * 60 + om) * 60 + os) * 1000000;
		if (__builtin_add_overflow(us, east ? -off : off, &us))
			return false;
	}
	if (i != s.size())
		return false;
	*out = us;
	return true;
}

bool
ParseTimeOfDay(std::string_view j, int64_t *out)
{
	std::string_view s;
	size_t i = 0;
	return StringBody(j, &s) && ReadTime(s, &i, out) && i == s.size() && *out <= kUsPerDay;
}

/* ---- typed values ----------------------------------------------------------------------- */

/* One side of a comparison; views point into the input or an operand. */
struct Value
{
	bool null = false;
	int64_t num = 0;
	uint64_t hi = 0, lo = 0;
	Decimal dec;
	std::string_view text; /* decoded text (bpchar trimmed), or kOther JSON */
};

/* Parse j as a value of kind (null -> SQL NULL); false if malformed. */
bool
ParseValue(ValueKind kind, std::string_view j, Value *v)
{
	*v = Value{};
	if (j == "null")
		return v->null = true, true;
	switch (kind)
	{
	case ValueKind::kInt:
		return ParseInt(j, &v->num);
	case ValueKind::kFloat:
	case ValueKind::kNumeric:
		return ParseDecimal(j, &v->dec);
	case ValueKind::kBool:
		v->num = j == "true";
		return j == "true" || j == "false";
	case ValueKind::kText:
		return DecodedString(j, &v->text);
	case ValueKind::kBpchar:
		if (!DecodedString(j, &v->text))
			return false;
		v->text = TrimTrailingSpaces(v->text);
		return true;
	case ValueKind::kUuid:
		return ParseUuid(j, &v->hi, &v->lo);
	case ValueKind::kDate:
	case ValueKind::kTimestamp:
	case ValueKind::kTimestampTz:
		return ParseDateTime(j, kind, &v->num);
	case ValueKind::kTime:
		return ParseTimeOfDay(j, &v->num);
	case ValueKind::kOther:
		v->text = j;
		return true;
	}
	return false;
}

Value
ValueOf(const FilterOperand &o)
{
	Value v;
	v.null = o.null;
	v.num = o.num;
	v.hi = o.hi;
	v.lo = o.lo;
	v.dec.cls = o.cls;
	v.dec.neg = o.neg;
	v.dec.exp = o.num;
	v.dec.digits = o.text;
	v.text = o.text;
	return v;
}

/* The operand form of a parsed rhs value: views become owned strings. */
FilterOperand
OperandOf(ValueKind kind, const Value &v)
{
	FilterOperand o;
	o.null = v.null;
	o.num = v.num;
	o.hi = v.hi;
	o.lo = v.lo;
	if (kind == ValueKind::kFloat || kind == ValueKind::kNumeric)
	{
		o.cls = v.dec.cls;
		o.neg = v.dec.neg;
		o.num = v.dec.exp;
		for (char c : v.dec.digits)
			if (c != '.')
				o.text += c;
	}
	else
		o.text = std::string(v.text);
	return o;
}

int
CompareBytes(std::string_view a, std::string_view b)
{
	int c = a.compare(b);
	return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

/* Three-way compare of two non-NULL values (kOther: 0 or 1, equality only). */
int
Compare(ValueKind kind, const Value &a, const Value &b)
{
	switch (kind)
	{
	case ValueKind::kFloat:
	case ValueKind::kNumeric:
		return CompareDecimal(a.dec, b.dec);
	case ValueKind::kUuid:
		if (a.hi != b.hi)
			return a.hi < b.hi ? -1 : 1;
		return a.lo == b.lo ? 0 : (a.lo < b.lo ? -1 : 1);
	case ValueKind::kText:
	case ValueKind::kBpchar:
		return CompareBytes(a.text, b.text);
	case ValueKind::kOther:
		return a.text == b.text ? 0 : 1;
	default:
		return a.num == b.num ? 0 : (a.num < b.num ? -1 : 1);
	}
}

/* ---- LIKE ------------------------------------------------------------------------------- */

char
FoldAscii(char c)
{
	return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

/* Pattern to tokens: backslash escapes, %% collapsed; false if it ends in the escape. */
bool
CompileLike(std::string_view p, bool fold, std::vector<LikeToken> *out)
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

/* Past the UTF-8 character starting at t[i]. */
size_t
NextChar(std::string_view t, size_t i)
{
	i++;
	while (i < t.size() && (static_cast<unsigned char>(t[i]) & 0xc0) == 0x80)
		i++;
	return i;
}

/*
 * Wildcard match with one backtrack point (the last %): O(len(t) x tokens)
 * at worst. `_` takes one UTF-8 character, % any number; literals compare
 * bytes, which keeps character boundaries aligned.
 */
bool
LikeMatch(const std::vector<LikeToken> &p, std::string_view t, bool fold)
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

/* ---- compile ---------------------------------------------------------------------------- */

Error
FilterError(const PgFilter &f, std::string_view typname, std::string_view what)
{
	std::string m = "filter on column \"" + f.column + "\" (type " + std::string(typname) + "): ";
	m += f.negated ? "not." : "";
	m += FilterOpName(f.op);
	m += ' ';
	m += what;
	return Error{ErrorCode::kInvalidArgument, std::move(m)};
}

bool
IsOrdering(FilterOp op)
{
	return op == FilterOp::kLt || op == FilterOp::kLte || op == FilterOp::kGt ||
	       op == FilterOp::kGte;
}

bool
IsPattern(FilterOp op)
{
	return op == FilterOp::kLike || op == FilterOp::kIlike || op == FilterOp::kMatch ||
	       op == FilterOp::kImatch;
}

/* Top-level elements of a validated JSON array, as raw text. */
std::vector<std::string_view>
ArrayElements(std::string_view j)
{
	std::vector<std::string_view> out;
	auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
	size_t i = j.find('[') + 1;
	int depth = 0;
	bool in_string = false;
	size_t start = i;
	for (; i < j.size(); i++)
	{
		char c = j[i];
		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
			depth++;
		else if ((c == ']' && depth == 0) || (c == ',' && depth == 0))
		{
			std::string_view e = j.substr(start, i - start);
			while (!e.empty() && space(e.front()))
				e.remove_prefix(1);
			while (!e.empty() && space(e.back()))
				e.remove_suffix(1);
			if (!e.empty() || c == ',')
				out.push_back(e);
			if (c == ']')
				break;
			start = i + 1;
		}
		else if (c == ']' || c == '}')
			depth--;
	}
	return out;
}

Result<CompiledFilter>
CompileChecked(const PgFilter &f, std::string_view typname, std::string_view rhs_json,
               bool text_orders_bytewise)
{
	CompiledFilter c;
	c.op = f.op;
	c.negated = f.negated;
	c.kind = ValueKindOfType(typname);
	c.keyword = f.keyword;

	if (f.op == FilterOp::kIs)
	{
		if (f.keyword == IsKeyword::kNone)
			return FilterError(f, typname, "needs null, true, false or unknown");
		if (f.keyword != IsKeyword::kNull && c.kind != ValueKind::kBool)
			return FilterError(f, typname, "needs a boolean column");
		return c;
	}
	if (IsOrdering(f.op))
	{
		if (c.kind == ValueKind::kOther)
			return FilterError(f, typname,
			                   "cannot be evaluated outside the database: values of this type "
			                   "support only eq, neq, in, isdistinct and is null here");
		if (c.kind == ValueKind::kText && !text_orders_bytewise && typname != "name")
			return FilterError(f, typname,
			                   "cannot be evaluated outside the database: ordering text depends "
			                   "on the column's collation, which does not order bytes");
	}
	if (IsPattern(f.op) && c.kind != ValueKind::kText && c.kind != ValueKind::kBpchar)
		return FilterError(f, typname, "needs a text column");

	if (json::NestingWithin(rhs_json, 64) == false)
		return FilterError(f, typname, "value is nested too deeply");
	rapidjson::Document doc;
	if (!json::Parse(doc, rhs_json))
		return FilterError(f, typname, "value is not valid JSON");

	if (IsPattern(f.op))
	{
		if (!doc.IsString())
			return FilterError(f, typname, "pattern is not a JSON string");
		std::string_view pattern(doc.GetString(), doc.GetStringLength());
		if (f.op == FilterOp::kLike || f.op == FilterOp::kIlike)
		{
			if (!CompileLike(pattern, f.op == FilterOp::kIlike, &c.like))
				return FilterError(f, typname, "LIKE pattern must not end with escape character");
			return c;
		}
		if (pattern.find('\0') != std::string_view::npos)
			return FilterError(f, typname, "pattern contains a NUL character");
		std::string re = TranslateRegex(pattern);
		auto holder = std::make_shared<CompiledRegex>();
		int flags = REG_EXTENDED | REG_NOSUB | (f.op == FilterOp::kImatch ? REG_ICASE : 0);
		int rc = regcomp(&holder->re, re.c_str(), flags);
		if (rc != 0)
		{
			char buf[256];
			regerror(rc, &holder->re, buf, sizeof buf);
			return FilterError(f, typname, "invalid regular expression: " + std::string(buf));
		}
		holder->compiled = true;
		c.regex = std::move(holder);
		return c;
	}

	std::vector<std::string_view> items;
	if (f.op == FilterOp::kIn)
	{
		if (!doc.IsArray())
			return FilterError(f, typname, "value is not a JSON array");
		items = ArrayElements(rhs_json);
		if (items.size() != doc.Size())
			return FilterError(f, typname, "value is not a JSON array");
	}
	else
		items.push_back(rhs_json);
	for (std::string_view item : items)
	{
		Value v;
		if (!ParseValue(c.kind, item, &v))
			return FilterError(f, typname,
			                   "value " + std::string(item.substr(0, 64)) +
			                       " is not a rendering of the column type");
		if (f.op == FilterOp::kIn && v.null)
			c.in_has_null = true;
		else
			c.operands.push_back(OperandOf(c.kind, v));
	}
	return c;
}

/* ---- evaluate --------------------------------------------------------------------------- */

Tri
Evaluate(const CompiledFilter &f, std::string_view j)
{
	Value v;
	if (!ParseValue(f.kind, j, &v))
		return Tri::kNull;
	switch (f.op)
	{
	case FilterOp::kIs:
		if (f.keyword == IsKeyword::kNull || f.keyword == IsKeyword::kUnknown)
			return FromBool(v.null);
		return FromBool(!v.null && v.num == (f.keyword == IsKeyword::kTrue ? 1 : 0));
	case FilterOp::kIsDistinct:
	{
		Value r = ValueOf(f.operands.front());
		if (v.null || r.null)
			return FromBool(v.null != r.null);
		return FromBool(Compare(f.kind, v, r) != 0);
	}
	case FilterOp::kIn:
	{
		if (v.null)
			return Tri::kNull;
		for (const FilterOperand &o : f.operands)
			if (Compare(f.kind, v, ValueOf(o)) == 0)
				return Tri::kTrue;
		return f.in_has_null ? Tri::kNull : Tri::kFalse;
	}
	case FilterOp::kLike:
	case FilterOp::kIlike:
	case FilterOp::kMatch:
	case FilterOp::kImatch:
	{
		if (v.null)
			return Tri::kNull;
		/* char(n) matches with its padding: decode again without the trim */
		std::string_view t = v.text;
		if (f.kind == ValueKind::kBpchar && !DecodedString(j, &t))
			return Tri::kNull;
		if (f.op == FilterOp::kLike || f.op == FilterOp::kIlike)
			return FromBool(LikeMatch(f.like, t, f.op == FilterOp::kIlike));
		regmatch_t m[1];
		m[0].rm_so = 0;
		m[0].rm_eo = static_cast<regoff_t>(t.size());
		return FromBool(regexec(&f.regex->re, t.data(), 1, m, REG_STARTEND) == 0);
	}
	default:
		break;
	}
	Value r = ValueOf(f.operands.front());
	if (v.null || r.null)
		return Tri::kNull;
	int cmp = Compare(f.kind, v, r);
	switch (f.op)
	{
	case FilterOp::kEq:
		return FromBool(cmp == 0);
	case FilterOp::kNeq:
		return FromBool(cmp != 0);
	case FilterOp::kLt:
		return FromBool(cmp < 0);
	case FilterOp::kLte:
		return FromBool(cmp <= 0);
	case FilterOp::kGt:
		return FromBool(cmp > 0);
	case FilterOp::kGte:
		return FromBool(cmp >= 0);
	default:
		return Tri::kNull;
	}
}

} // namespace

ValueKind
ValueKindOfType(std::string_view t)
{
	if (t == "int2" || t == "int4" || t == "int8" || t == "oid")
		return ValueKind::kInt;
	if (t == "float4" || t == "float8")
		return ValueKind::kFloat;
	if (t == "numeric")
		return ValueKind::kNumeric;
	if (t == "bool")
		return ValueKind::kBool;
	if (t == "text" || t == "varchar" || t == "name")
		return ValueKind::kText;
	if (t == "bpchar")
		return ValueKind::kBpchar;
	if (t == "uuid")
		return ValueKind::kUuid;
	if (t == "date")
		return ValueKind::kDate;
	if (t == "timestamp")
		return ValueKind::kTimestamp;
	if (t == "timestamptz")
		return ValueKind::kTimestampTz;
	if (t == "time")
		return ValueKind::kTime;
	return ValueKind::kOther;
}

Result<CompiledFilter>
CompileFilter(const PgFilter &f, std::string_view typname, std::string_view rhs_json,
              bool text_orders_bytewise)
{
	try
	{
		return CompileChecked(f, typname, rhs_json, text_orders_bytewise);
	}
	catch (const std::exception &e)
	{
		return Error{ErrorCode::kInternal, std::string("filter compilation failed: ") + e.what()};
	}
}

bool
FilterMatches(const CompiledFilter &f, std::optional<std::string_view> value_json)
{
	if (!value_json)
		return false;
	try
	{
		Tri t = Evaluate(f, *value_json);
		if (f.negated && t != Tri::kNull)
			t = t == Tri::kTrue ? Tri::kFalse : Tri::kTrue;
		return t == Tri::kTrue;
	}
	catch (...)
	{
		return false;
	}
}

} // namespace rt::fanout
