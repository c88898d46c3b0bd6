/*
 * presence_state.cpp: see presence_state.hpp.
 *
 * Metas are rendered once, when tracked; diffs and presence_state are
 * concatenations of those strings and of each key's pre-quoted literal.
 */
#include "presence/presence_state.hpp"

#include "base/json.hpp"

#include <algorithm>
#include <atomic>
#include <random>

namespace rt::fanout
{

namespace
{

constexpr std::string_view kRefMember = "{\"phx_ref\":\"";
constexpr std::string_view kPrevMember = ",\"phx_ref_prev\":\"";

/* splitmix64's finalizer: a bijection on 64 bits, so distinct inputs give distinct refs */
uint64_t
Mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

struct RefKeys
{
	uint64_t pre;  /* xor-ed into the counter before mixing */
	uint64_t post; /* xor-ed into the result */
};

RefKeys
DrawRefKeys()
{
	std::random_device rd;
	auto draw64 = [&rd]
	{ return (static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd()); };
	RefKeys k;
	k.pre = draw64();
	k.post = draw64();
	return k;
}

bool
IsOurMember(const rapidjson::Value &name)
{
	std::string_view n(name.GetString(), name.GetStringLength());
	return n == "phx_ref" || n == "phx_ref_prev";
}

/*
 * The payload's members as they follow our own in a meta: ",<members>}" or
 * "}" when there are none. false if payload_json is not a JSON object.
 */
bool
RenderTail(std::string_view payload_json, std::string &tail)
{
	rapidjson::Document doc;
	if (!json::Parse(doc, payload_json) || !doc.IsObject())
		return false;
	rapidjson::StringBuffer buf;
	rapidjson::Writer<rapidjson::StringBuffer> w(buf);
	w.StartObject();
	for (auto &m : doc.GetObject())
	{
		if (IsOurMember(m.name))
			continue;
		w.Key(m.name.GetString(), m.name.GetStringLength());
		m.value.Accept(w);
	}
	w.EndObject();
	std::string_view body(buf.GetString(), buf.GetSize()); /* "{...}" */
	tail.clear();
	if (body.size() > 2)
	{
		tail.reserve(body.size());
		tail += ',';
		tail.append(body.substr(1));
	}
	else
		tail.push_back('}');
	return true;
}

/* The phx_ref of a rendered meta (it opens every meta; base64url: no escapes). */
std::string_view
RefOf(const std::string &meta_json)
{
	std::string_view s(meta_json);
	s.remove_prefix(kRefMember.size());
	return s.substr(0, s.find('"'));
}

/* "<quoted key>":{"metas":[<meta>]} */
void
AppendKeyMeta(std::string &out, const std::string &quoted, const std::string &meta_json)
{
	out += quoted;
	out += ":{\"metas\":[";
	out += meta_json;
	out += "]}";
}

} // namespace

std::string
NewPhxRef()
{
	static const RefKeys keys = DrawRefKeys();
	static std::atomic<uint64_t> counter{0};
	static constexpr char kAlphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	uint64_t x = Mix(counter.fetch_add(1, std::memory_order_relaxed) ^ keys.pre) ^ keys.post;
	std::string ref(12, 'F');
	/* 11 characters x 6 bits = 66 >= 64: the first one carries the top 4 bits */
	for (int i = 0; i < 11; i++)
		ref[static_cast<size_t>(1 + i)] = kAlphabet[(x >> (6 * (10 - i))) & 63];
	return ref;
}

size_t
PresenceTopic::ChannelIdHash::operator()(const ChannelId &c) const
{
	return static_cast<size_t>(Mix(c.session_id * 0x9e3779b97f4a7c15ULL ^ c.gen));
}

PresenceTopic::Meta
PresenceTopic::TakeMeta(KeyMap::iterator entry, const ChannelId &ch)
{
	std::vector<Meta> &metas = entry->second.metas;
	auto it = std::find_if(metas.begin(), metas.end(),
	                       [&ch](const Meta &m)
	                       { return m.session_id == ch.session_id && m.gen == ch.gen; });
	/* the index and the lists change together: the meta is there */
	Meta m = std::move(*it);
	metas.erase(it);
	metas_--;
	return m;
}

namespace
{

/* A meta for ref (and prev, if not empty) followed by tail (see RenderTail). */
std::string
RenderMeta(std::string_view ref, std::string_view prev, std::string_view tail, uint32_t &tail_off)
{
	std::string json;
	json.reserve(kRefMember.size() + ref.size() + 1 +
	             (prev.empty() ? 0 : kPrevMember.size() + prev.size() + 1) + tail.size());
	json += kRefMember;
	json += ref;
	json += '"';
	if (!prev.empty())
	{
		json += kPrevMember;
		json += prev;
		json += '"';
	}
	tail_off = static_cast<uint32_t>(json.size());
	json += tail;
	return json;
}

} // namespace

std::string
PresenceTopic::Track(std::string_view key, uint64_t session_id, uint64_t gen,
                     std::string_view payload_json)
{
	std::string tail;
	if (!RenderTail(payload_json, tail))
		return {};
	const ChannelId ch{session_id, gen};
	std::string leaves;

	auto idx = channels_.find(ch);
	if (idx != channels_.end())
	{
		KeyMap::iterator entry = idx->second;
		if (entry->first == key)
		{
			std::vector<Meta> &metas = entry->second.metas;
			auto it = std::find_if(metas.begin(), metas.end(),
			                       [&ch](const Meta &m)
			                       { return m.session_id == ch.session_id && m.gen == ch.gen; });
			if (std::string_view(it->json).substr(it->tail_off) == tail)
				return {};
			/* update: leave the old meta, join the new one at the end (tracking order) */
			Meta old = std::move(*it);
			metas.erase(it);
			Meta next{session_id, gen, {}, 0};
			next.json = RenderMeta(NewPhxRef(), RefOf(old.json), tail, next.tail_off);
			std::string diff = "{\"joins\":{";
			AppendKeyMeta(diff, entry->second.quoted, next.json);
			diff += "},\"leaves\":{";
			AppendKeyMeta(diff, entry->second.quoted, old.json);
			diff += "}}";
			metas.push_back(std::move(next));
			return diff;
		}
		/* keys are fixed per channel; should one change: leave the old key, join the new */
		Meta old = TakeMeta(entry, ch);
		AppendKeyMeta(leaves, entry->second.quoted, old.json);
		if (entry->second.metas.empty())
			keys_.erase(entry);
		channels_.erase(idx);
	}

	auto entry = keys_.find(key);
	if (entry == keys_.end())
	{
		entry = keys_.emplace(std::string(key), KeyEntry{}).first;
		json::AppendQuoted(entry->second.quoted, key);
	}
	Meta meta{session_id, gen, {}, 0};
	meta.json = RenderMeta(NewPhxRef(), {}, tail, meta.tail_off);
	std::string diff = "{\"joins\":{";
	AppendKeyMeta(diff, entry->second.quoted, meta.json);
	diff += "},\"leaves\":{";
	diff += leaves;
	diff += "}}";
	entry->second.metas.push_back(std::move(meta));
	metas_++;
	channels_.emplace(ch, entry);
	return diff;
}

std::string
PresenceTopic::Untrack(uint64_t session_id, uint64_t gen)
{
	const ChannelId ch{session_id, gen};
	auto idx = channels_.find(ch);
	if (idx == channels_.end())
		return {};
	KeyMap::iterator entry = idx->second;
	channels_.erase(idx);
	Meta old = TakeMeta(entry, ch);
	std::string diff = "{\"joins\":{},\"leaves\":{";
	AppendKeyMeta(diff, entry->second.quoted, old.json);
	diff += "}}";
	if (entry->second.metas.empty())
		keys_.erase(entry);
	return diff;
}

std::string
PresenceTopic::StateJson() const
{
	size_t n = 2;
	for (const auto &[key, e] : keys_)
	{
		n += e.quoted.size() + 15; /* :{"metas":[]}, */
		for (const Meta &m : e.metas)
			n += m.json.size() + 1;
	}
	std::string out;
	out.reserve(n);
	out += '{';
	bool first_key = true;
	for (const auto &[key, e] : keys_)
	{
		if (!first_key)
			out += ',';
		first_key = false;
		out += e.quoted;
		out += ":{\"metas\":[";
		bool first_meta = true;
		for (const Meta &m : e.metas)
		{
			if (!first_meta)
				out += ',';
			first_meta = false;
			out += m.json;
		}
		out += "]}";
	}
	out += '}';
	return out;
}

std::string
PresenceStore::Track(const std::string &routing_key, std::string_view key, uint64_t session_id,
                     uint64_t gen, std::string_view payload_json)
{
	std::lock_guard<std::mutex> lock(mu_);
	auto it = topics_.try_emplace(routing_key).first;
	std::string diff = it->second.Track(key, session_id, gen, payload_json);
	if (it->second.empty())
		topics_.erase(it); /* a payload that is not an object on a new topic */
	return diff;
}

std::string
PresenceStore::Untrack(const std::string &routing_key, uint64_t session_id, uint64_t gen)
{
	std::lock_guard<std::mutex> lock(mu_);
	auto it = topics_.find(routing_key);
	if (it == topics_.end())
		return {};
	std::string diff = it->second.Untrack(session_id, gen);
	if (it->second.empty())
		topics_.erase(it);
	return diff;
}

std::string
PresenceStore::State(const std::string &routing_key) const
{
	std::lock_guard<std::mutex> lock(mu_);
	auto it = topics_.find(routing_key);
	return it == topics_.end() ? std::string("{}") : it->second.StateJson();
}

size_t
PresenceStore::topics() const
{
	std::lock_guard<std::mutex> lock(mu_);
	return topics_.size();
}

} // namespace rt::fanout
