/*
 * presence_state.hpp: the pure presence logic (PROTOCOL.md 5.2-5.3): who is
 * tracked under which presence key of a routing key, the presence_diff a
 * track or untrack produces, and the presence_state payload.
 *
 * Folder presence/: this state (the pure logic and the per-tenant store) and
 * presence_part (the channel part: track, untrack, presence_state at join,
 * presence limits). The part runs on shard threads; the store is shared by them
 * behind its mutex.
 *
 * No I/O. PresenceTopic is not thread-safe; PresenceStore holds all topics of
 * one sidecar behind one mutex (any shard thread). NewPhxRef: any thread.
 *
 * Output shapes (all compact JSON):
 *   meta            {"phx_ref":"F…",["phx_ref_prev":"F…",]<payload members in their order>}
 *                   payload members named phx_ref or phx_ref_prev are dropped: ours win
 *   presence_diff   {"joins":{"<key>":{"metas":[…]}},"leaves":{"<key>":{"metas":[…]}}}
 *                   (both members always present, "{}" when empty)
 *   presence_state  {"<key>":{"metas":[…]},…} with keys sorted by their bytes, the
 *                   metas of one key in tracking order (an update is a new track: its
 *                   meta moves to the end, as a client applying the diff puts it)
 * Applying every diff in order with Phoenix's syncDiff (joins merged by phx_ref,
 * leaves removed by phx_ref) reproduces StateJson (test_presence_state.cpp).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rt::fanout
{

/*
 * A process-unique opaque reference for one tracked meta: "F" + 11 base64url
 * characters encoding a counter through a bijection keyed by startup
 * randomness, so it never repeats within the process (2^64 calls) and is not
 * guessable across restarts. Thread-safe.
 */
std::string NewPhxRef();

/* Presence of one routing key: presence key -> metas, one meta per tracking
 * channel (session id + join generation). Not thread-safe. */
class PresenceTopic
{
public:
	/*
	 * Track or update the channel's meta under key. payload_json: the client's
	 * payload, a JSON object (the caller checked; anything else is ignored and
	 * gives ""). Returns the presence_diff payload to fan out, or "" when
	 * nothing changed (the channel's current meta has the same payload).
	 * Update: the new meta carries phx_ref_prev = the old ref; the diff has the
	 * old meta in leaves and the new one in joins. A channel tracked under
	 * another key leaves that key and joins this one in one diff (no
	 * phx_ref_prev: it is a different presence).
	 */
	std::string Track(std::string_view key, uint64_t session_id, uint64_t gen,
	                  std::string_view payload_json);
	/* Remove the channel's meta: a diff with leaves only, or "" if it had none. */
	std::string Untrack(uint64_t session_id, uint64_t gen);
	/* The presence_state payload; "{}" when empty. */
	std::string StateJson() const;
	bool
	empty() const
	{
		return metas_ == 0;
	}
	/* Number of metas (tracked channels). */
	size_t
	size() const
	{
		return metas_;
	}

private:
	struct Meta
	{
		uint64_t session_id;
		uint64_t gen;
		std::string json;  /* the rendered meta object */
		uint32_t tail_off; /* where the payload members (or the closing brace) start */
	};
	struct KeyEntry
	{
		std::string quoted;      /* the key as a JSON string literal */
		std::vector<Meta> metas; /* tracking order */
	};
	using KeyMap = std::map<std::string, KeyEntry, std::less<>>;
	struct ChannelId
	{
		uint64_t session_id;
		uint64_t gen;
		bool
		operator==(const ChannelId &o) const
		{
			return session_id == o.session_id && gen == o.gen;
		}
	};
	struct ChannelIdHash
	{
		size_t operator()(const ChannelId &c) const;
	};

	/* Take the channel's meta out of entry (erasing the key when it empties). */
	Meta TakeMeta(KeyMap::iterator entry, const ChannelId &ch);

	KeyMap keys_;
	/* channel -> its key's node (std::map iterators stay valid): Untrack without a scan */
	std::unordered_map<ChannelId, KeyMap::iterator, ChannelIdHash> channels_;
	size_t metas_ = 0;
};

/* All topics of one sidecar, shared by its shards behind one mutex (presence
 * is rare next to broadcast). Empty topics are erased. Same return values as
 * PresenceTopic. */
class PresenceStore
{
public:
	std::string Track(const std::string &routing_key, std::string_view key, uint64_t session_id,
	                  uint64_t gen, std::string_view payload_json);
	std::string Untrack(const std::string &routing_key, uint64_t session_id, uint64_t gen);
	/* presence_state of routing_key; "{}" when nobody is tracked there. */
	std::string State(const std::string &routing_key) const;
	size_t topics() const;

private:
	mutable std::mutex mu_;
	std::unordered_map<std::string, PresenceTopic> topics_;
};

} // namespace rt::fanout
