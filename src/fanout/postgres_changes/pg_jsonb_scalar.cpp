/*
 * pg_jsonb_scalar.cpp: to_jsonb scalar renderings (see pg_jsonb_scalar.hpp).
 *
 * Any thread; no shared mutable state but DecodedJsonString's per-thread
 * buffer. Dates use the proleptic Gregorian calendar with astronomical years
 * (1 BC = year 0), as Postgres does; timestamps are microseconds from
 * 2000-01-01 like Postgres's own, so its whole range fits an int64.
 */
#include "postgres_changes/pg_jsonb_scalar.hpp"

#include "base/url.hpp"

#include <charconv>

namespace rt::fanout
{

/* The text between the quotes of a JSON string literal; false if it is none. */
bool
JsonStringBody(std::string_view j, std::string_view *body)
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

namespace
{

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

} // namespace

/*
 * The decoded bytes of a JSON string: the body itself when it has no escapes
 * (the common case, no copy), else decoded into a per-thread buffer that
 * lives until the next call on this thread.
 */
bool
DecodedJsonString(std::string_view j, std::string_view *out)
{
	std::string_view body;
	if (!JsonStringBody(j, &body))
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

/* ---- numbers ---------------------------------------------------------------------------- */

namespace
{

bool
IsDigit(char c)
{
	return c >= '0' && c <= '9';
}

} // namespace

/* A JSON number (any exponent up to 9 digits) or "NaN" / "Infinity" / "-Infinity". */
bool
ParseJsonDecimal(std::string_view j, Decimal *d)
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

namespace
{

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

} // namespace

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
ParseJsonInt(std::string_view j, int64_t *out)
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
ParseJsonUuid(std::string_view j, uint64_t *hi, uint64_t *lo)
{
	std::string_view b;
	if (!JsonStringBody(j, &b) || b.size() != 36)
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

namespace
{

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

constexpr int kFormDate = 0, kFormTimestamp = 1, kFormTimestampTz = 2;

/* date, timestamp or timestamptz body to days or microseconds; +-infinity at the int64 ends. */
bool
ParseDateTime(std::string_view j, int form, int64_t *out)
{
	std::string_view s;
	if (!JsonStringBody(j, &s))
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
	if (form == kFormDate)
		return i == s.size() ? (*out = days, true) : false;
	int64_t tod, us;
	if (days > kMaxDays || days < -kMaxDays || !Expect(s, &i, 'T') || !ReadTime(s, &i, &tod) ||
	    __builtin_add_overflow(days * kUsPerDay, tod, &us))
		return false;
	if (form == kFormTimestampTz)
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

} // namespace

bool
ParseJsonTime(std::string_view j, int64_t *out)
{
	std::string_view s;
	size_t i = 0;
	return JsonStringBody(j, &s) && ReadTime(s, &i, out) && i == s.size() && *out <= kUsPerDay;
}

bool
ParseJsonDate(std::string_view j, int64_t *days)
{
	return ParseDateTime(j, kFormDate, days);
}

bool
ParseJsonTimestamp(std::string_view j, bool with_zone, int64_t *us)
{
	return ParseDateTime(j, with_zone ? kFormTimestampTz : kFormTimestamp, us);
}

} // namespace rt::fanout
