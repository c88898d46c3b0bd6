/*
 * broadcast_part.hpp: the broadcast part of a channel (PROTOCOL.md 4): the
 * join's config.broadcast options and the client's broadcast pushes, each
 * serialized once (broadcast.hpp) and published to every shard by the Hub.
 *
 * Shard thread only, through the socket's ChannelHost.
 */
#pragma once

#include "channel/channel_part.hpp"

namespace rt::fanout
{

/* config.broadcast of the join (PROTOCOL.md 3.2). */
struct BroadcastChannel
{
	bool self = false; /* the sender receives its own broadcasts */
	bool ack = false;  /* each broadcast push is answered */
};

class BroadcastPart final : public ChannelPart
{
public:
	BroadcastPart() : ChannelPart("broadcast") {}
	JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) override;
	void Push(ChannelHost &host, Channel &ch, Inbound &m) override;
};

} // namespace rt::fanout
