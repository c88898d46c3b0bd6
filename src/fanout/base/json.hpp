/*
 * json.hpp: the one place RapidJSON is configured and included (STYLE.md 9).
 *
 * Any thread. Helpers never call Get*() without Is*(): they return
 * std::optional so a wrong type reads as "absent".
 */
#pragma once

#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rt::fanout::json
{

/*
 * Not kParseFullPrecisionFlag: RapidJSON 1.1's full-precision path calls clz(0) on "0E76"
 * (UBSan, fuzz_http); the default path may be one ulp off for numbers of more than 17 digits.
 */
constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

/*
 * RapidJSON 1.1.0 rejects a lone high surrogate escape but turns a lone low one
 * ("\udc00") into the bytes ED B0 80, which are not UTF-8; sent on in a text
 * frame they would make every client drop its connection. Raw input is already
 * validated, so a decoded string can only be bad in this one way: ED followed
 * by A0..BF (U+D800..U+DFFF).
 */
inline bool
NoSurrogates(const char *s, size_t n)
{
	const char *end = s + n;
	for (const char *p = s; p < end;)
	{
		const void *hit = std::memchr(p, '\xED', static_cast<size_t>(end - p));
		if (hit == nullptr)
			return true;
		const auto *ed = static_cast<const char *>(hit);
		if (ed + 1 < end && static_cast<unsigned char>(ed[1]) >= 0xA0)
			return false;
		p = ed + 1;
	}
	return true;
}

/*
 * True if a number's text (as RapidJSON hands it over with kParseNumbersAsStringsFlag) stays
 * within double's range. RapidJSON refuses "1e400" but not "33300e306"; JSON.parse would
 * read either as Infinity, which JSON.stringify writes as null. Short numbers without an
 * exponent cannot overflow and skip the conversion.
 */
inline bool
RawNumberFinite(const char *s, size_t n)
{
	if (n < 300 && std::memchr(s, 'e', n) == nullptr && std::memchr(s, 'E', n) == nullptr)
		return true;
	std::string text(s, n);
	return std::isfinite(std::strtod(text.c_str(), nullptr));
}

/*
 * True if doc can be written back as it was read: no string or key holds a decoded surrogate
 * and no number is infinite (RapidJSON 1.1 turns "5155555501e307" into inf without an error,
 * and its Writer then stops mid-value). Walked without recursion.
 */
inline bool
WritableAsRead(const rapidjson::Value &doc)
{
	std::vector<const rapidjson::Value *> todo{&doc};
	while (!todo.empty())
	{
		const rapidjson::Value *v = todo.back();
		todo.pop_back();
		if (v->IsString() && !NoSurrogates(v->GetString(), v->GetStringLength()))
			return false;
		if (v->IsDouble() && !std::isfinite(v->GetDouble()))
			return false;
		if (v->IsArray())
			for (const auto &e : v->GetArray())
				todo.push_back(&e);
		if (v->IsObject())
			for (const auto &m : v->GetObject())
			{
				if (!NoSurrogates(m.name.GetString(), m.name.GetStringLength()))
					return false;
				todo.push_back(&m.value);
			}
	}
	return true;
}

/*
 * Parse text into doc; false on any error. A NUL byte is an error too: RapidJSON would take
 * it for the end of the text and accept what follows unread (fuzz_http found "1\0junk"). So
 * is a lone low surrogate escape, which PostgreSQL's jsonb refuses as well, and a number out
 * of double's range (fuzz_http found both: re-serialized, neither was JSON any more).
 */
inline bool
Parse(rapidjson::Document &doc, std::string_view text)
{
	if (text.find('\0') != std::string_view::npos)
		return false;
	doc.Parse<kParseFlags>(text.data(), text.size());
	if (doc.HasParseError())
		return false;
	return WritableAsRead(doc);
}

inline const rapidjson::Value *
Member(const rapidjson::Value &obj, const char *name)
{
	if (!obj.IsObject())
		return nullptr;
	auto it = obj.FindMember(name);
	return it == obj.MemberEnd() ? nullptr : &it->value;
}

inline std::optional<std::string_view>
String(const rapidjson::Value &obj, const char *name)
{
	const rapidjson::Value *v = Member(obj, name);
	if (v == nullptr || !v->IsString())
		return std::nullopt;
	return std::string_view(v->GetString(), v->GetStringLength());
}

inline std::optional<double>
Number(const rapidjson::Value &obj, const char *name)
{
	const rapidjson::Value *v = Member(obj, name);
	if (v == nullptr || !v->IsNumber())
		return std::nullopt;
	return v->GetDouble();
}

/* Booleans also accept "true"/"false" strings in any case (PROTOCOL.md 3.2). */
inline std::optional<bool>
Bool(const rapidjson::Value &obj, const char *name)
{
	const rapidjson::Value *v = Member(obj, name);
	if (v == nullptr)
		return std::nullopt;
	if (v->IsBool())
		return v->GetBool();
	if (v->IsString())
	{
		std::string s(v->GetString(), v->GetStringLength());
		for (char &c : s)
			c = static_cast<char>((c >= 'A' && c <= 'Z') ? c + 32 : c);
		if (s == "true")
			return true;
		if (s == "false")
			return false;
	}
	return std::nullopt;
}

/*
 * True if no array or object in text nests deeper than max_depth. Brackets
 * inside strings do not count; anything else malformed is left to the parser.
 * RapidJSON parses iteratively but serializes recursively, hence the scan.
 */
inline bool
NestingWithin(std::string_view text, int max_depth)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < text.size(); i++)
	{
		char c = text[i];
		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
		{
			if (++depth > max_depth)
				return false;
		}
		else if (c == ']' || c == '}')
			depth--;
	}
	return true;
}

/* Serialize a value back to compact JSON text. */
inline std::string
Stringify(const rapidjson::Value &v)
{
	rapidjson::StringBuffer buf;
	rapidjson::Writer<rapidjson::StringBuffer> w(buf);
	v.Accept(w);
	return std::string(buf.GetString(), buf.GetSize());
}

/* Append s to out as a JSON string literal (with quotes). */
inline void
AppendQuoted(std::string &out, std::string_view s)
{
	rapidjson::StringBuffer buf;
	rapidjson::Writer<rapidjson::StringBuffer> w(buf);
	w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
	out.append(buf.GetString(), buf.GetSize());
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
inline bool
ValidUtf8(std::string_view s)
{
	const auto *p = reinterpret_cast<const unsigned char *>(s.data());
	const unsigned char *end = p + s.size();
	while (p < end)
	{
		unsigned char c = *p;
		if (c < 0x80)
		{
			++p;
			continue;
		}
		size_t need;
		unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
		if (c >= 0xC2 && c <= 0xDF)
			need = 1;
		else if (c >= 0xE0 && c <= 0xEF)
		{
			need = 2;
			if (c == 0xE0)
				lo = 0xA0; /* overlong */
			else if (c == 0xED)
				hi = 0x9F; /* surrogates */
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			need = 3;
			if (c == 0xF0)
				lo = 0x90; /* overlong */
			else if (c == 0xF4)
				hi = 0x8F; /* above U+10FFFF */
		}
		else
			return false;
		if (static_cast<size_t>(end - p) <= need)
			return false;
		if (p[1] < lo || p[1] > hi)
			return false;
		for (size_t i = 2; i <= need; ++i)
			if (p[i] < 0x80 || p[i] > 0xBF)
				return false;
		p += need + 1;
	}
	return true;
}

} // namespace rt::fanout::json
