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

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rt::fanout::json
{

/*
 * Not kParseFullPrecisionFlag: RapidJSON 1.1's full-precision path calls clz(0) on "0E76"
 * (UBSan, fuzz_http); the default path may be one ulp off for numbers of more than 17 digits.
 */
constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

/*
 * Parse text into doc; false on any error. A NUL byte is an error too: RapidJSON would take
 * it for the end of the text and accept what follows unread (fuzz_http found "1\0junk").
 */
inline bool
Parse(rapidjson::Document &doc, std::string_view text)
{
	if (text.find('\0') != std::string_view::npos)
		return false;
	doc.Parse<kParseFlags>(text.data(), text.size());
	return !doc.HasParseError();
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
