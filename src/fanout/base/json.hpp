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

constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

/* Parse text into doc; false on any error (doc then holds the error). */
inline bool
Parse(rapidjson::Document &doc, std::string_view text)
{
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

} // namespace rt::fanout::json
