/*
 * url.hpp: percent-decoding, as upstream does it (Elixir's URI.decode: "+"
 * stays "+", a "%" without two hex digits is an error).
 *
 * Any thread; pure. Used for query parameters and for JWTs, which upstream
 * URL-decodes before parsing.
 */
#pragma once

#include <string>
#include <string_view>

namespace rt::fanout
{

inline int
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

/* %XX decoding into out; false on a bad escape. */
inline bool
UrlDecode(std::string_view in, std::string &out)
{
	out.clear();
	out.reserve(in.size());
	for (size_t i = 0; i < in.size(); i++)
	{
		if (in[i] != '%')
		{
			out += in[i];
			continue;
		}
		if (i + 2 >= in.size())
			return false;
		int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
		if (hi < 0 || lo < 0)
			return false;
		out += static_cast<char>(hi * 16 + lo);
		i += 2;
	}
	return true;
}

} // namespace rt::fanout
