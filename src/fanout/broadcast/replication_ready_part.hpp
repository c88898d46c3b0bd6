/*
 * replication_ready_part.hpp: config.broadcast.replication_ready (PROTOCOL.md
 * 2.6, 3.8). A channel that asks is told, with a `system` message
 * "Replication connection established", once what the database sends it
 * flows: for a channel with postgres_changes, when its subscriptions are
 * confirmed ("Subscribed to PostgreSQL", the same readiness); otherwise when
 * the tenant's ring reader is attached (realtime.send() messages reach it).
 * Not ready within --replication-ready-timeout-ms (60 s, as upstream): the
 * channel ends with "Replication connection was not established in time".
 *
 * Shard thread only, through the socket's ChannelHost.
 */
#pragma once

#include "channel/channel_part.hpp"

#include <cstdint>

namespace rt::fanout
{

struct ReplicationReadyChannel
{
	bool requested = false;
	bool told = false;
	int64_t deadline_ms = 0;
};

class ReplicationReadyPart final : public ChannelPart
{
public:
	JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) override;
	bool Joined(ChannelHost &host, Channel &ch) override;

	/* The channel's postgres_changes were confirmed: tell it, if it asked. */
	static void Confirmed(ChannelHost &host, Channel &ch);
	/* Once a second: tell it if the ring is attached now; true when its time is up. */
	static bool TimedOut(ChannelHost &host, Channel &ch, int64_t now_ms);
	static constexpr const char *kTimeoutMessage =
	    "Replication connection was not established in time";
};

} // namespace rt::fanout
