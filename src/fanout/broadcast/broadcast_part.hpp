/*
 * broadcast_part.hpp: the broadcast part of a channel (PROTOCOL.md 4): the
 * join's config.broadcast options and the client's broadcast pushes, each
 * serialized once (broadcast.hpp) and published to every shard by the Hub;
 * a push with `persist` is stored first (persist.hpp, message_store.hpp).
 *
 * Shard thread only, through the socket's ChannelHost.
 */
#pragma once

#include "channel/channel_part.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rt::fanout
{

/* A broadcast of the channel on its way out: after the persisted ones before it. */
struct OutgoingBroadcast
{
	enum class State : uint8_t
	{
		kReady,   /* nothing to wait for */
		kStoring, /* its row is being written */
		kStored,  /* committed: goes out */
		kFailed,  /* not stored: answered with an error, not delivered */
	};
	std::shared_ptr<Delivery> delivery;
	std::optional<std::string> ref;
	std::string id; /* persisted: its row id, which its store answer names */
	State state = State::kReady;
	bool persisted = false;
	size_t bytes = 0;
};

/* config.broadcast of the join (PROTOCOL.md 3.2), and its broadcasts waiting for a store. */
struct BroadcastChannel
{
	bool self = false;                       /* the sender receives its own broadcasts */
	bool ack = false;                        /* each broadcast push is answered */
	std::vector<OutgoingBroadcast> outgoing; /* in send order, from outgoing_head */
	size_t outgoing_head = 0;
	size_t outgoing_bytes = 0;
};

class BroadcastPart final : public ChannelPart
{
public:
	/* what may wait behind persisted broadcasts of one channel */
	static constexpr size_t kMaxOutgoing = 10000;
	static constexpr size_t kMaxOutgoingBytes = 16u << 20;

	BroadcastPart() : ChannelPart("broadcast") {}
	JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) override;
	void Push(ChannelHost &host, Channel &ch, Inbound &m) override;
	/*
	 * The channel goes while broadcasts wait behind a persisted one: the queue outlives
	 * it (per shard, by session, join and topic) and goes out in order as the store
	 * answers, unacknowledged (the sender left): nothing it sent is lost.
	 */
	void Leave(ChannelHost &host, Channel &ch) override;

	/* The persisted broadcast id of ch is committed (stored) or not. */
	static void Stored(ChannelHost &host, Channel &ch, const std::string &id, bool stored);

private:
	static bool Persist(ChannelHost &host, Channel &ch, Inbound &m, int64_t ttl_s);
	static bool Room(const Channel &ch, size_t bytes);
	static void Send(ChannelHost &host, Channel &ch, OutgoingBroadcast out);
	static void Flush(ChannelHost &host, Channel &ch);
};

} // namespace rt::fanout
