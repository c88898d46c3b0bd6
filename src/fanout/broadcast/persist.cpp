/*
 * persist.cpp: reading `persist` (persist.hpp). Any thread; pure.
 */
#include "broadcast/persist.hpp"

#include "base/json.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace rt::fanout
{

namespace
{

PersistAsk
FromValue(const rapidjson::Value &v)
{
	PersistAsk p;
	if (v.IsNull() || (v.IsBool() && !v.GetBool()))
		return p; /* not asked */
	p.asked = true;
	if (v.IsBool())
		return p;
	if (!v.IsObject())
	{
		p.valid = false;
		return p;
	}
	const rapidjson::Value *ttl = json::Member(v, "ttl");
	if (ttl == nullptr || ttl->IsNull())
		return p; /* {} or {"ttl": null}: as true */
	p.valid = ttl->IsInt64() && ttl->GetInt64() >= 1 && ttl->GetInt64() <= kMaxPersistTtl;
	if (p.valid)
		p.ttl_s = ttl->GetInt64();
	return p;
}

} // namespace

PersistAsk
PersistFromJson(std::string_view value_json)
{
	rapidjson::Document doc;
	if (!json::Parse(doc, value_json))
		return PersistAsk{true, false, 0};
	return FromValue(doc);
}

PersistAsk
ReadPersist(const Inbound &m)
{
	rapidjson::Document doc;
	std::string_view text =
	    m.user_broadcast ? std::string_view(m.meta) : std::string_view(m.payload);
	if (text.empty() || !json::Parse(doc, text) || !doc.IsObject())
		return PersistAsk{};
	const rapidjson::Value *v = json::Member(doc, "persist");
	return v == nullptr ? PersistAsk{} : FromValue(*v);
}

PersistAsk
PersistFromQuery(const char *persist, const char *ttl)
{
	PersistAsk p;
	if (ttl != nullptr)
	{
		p.asked = true;
		char *end = nullptr;
		errno = 0;
		long long n = std::strtoll(ttl, &end, 10);
		p.valid = errno == 0 && end != ttl && *end == '\0' && ttl[0] != '+' && ttl[0] != '-' &&
		          n >= 1 && n <= kMaxPersistTtl;
		if (p.valid)
			p.ttl_s = n;
		return p;
	}
	if (persist == nullptr || std::strcmp(persist, "false") == 0)
		return p;
	p.asked = true;
	p.valid = std::strcmp(persist, "true") == 0;
	return p;
}

std::string
PersistErrorReply(std::string_view why)
{
	std::string out = R"({"status":"error","response":{"error":)";
	json::AppendQuoted(out, why);
	out += "}}";
	return out;
}

std::string
StoredMeta(std::string_view id, int64_t inserted_us)
{
	std::string meta = R"({"id":)";
	json::AppendQuoted(meta, id);
	if (inserted_us != 0)
	{
		int64_t ms = inserted_us / 1000 - (inserted_us % 1000 < 0 ? 1 : 0);
		meta += R"(,"inserted_at":)";
		meta += std::to_string(ms);
	}
	meta += '}';
	return meta;
}

} // namespace rt::fanout
