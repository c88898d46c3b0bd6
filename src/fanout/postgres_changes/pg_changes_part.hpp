/*
 * pg_changes_part.hpp: the postgres_changes part of a channel (PROTOCOL.md
 * 3.4, 6): the join's config.postgres_changes entries, echoed with their ids
 * in the join reply, handed to the Postgres Changes engine once the join is
 * answered, and re-checked there when the channel's token changes.
 *
 * Shard thread only, through the socket's ChannelHost; the engine
 * (pg_changes_engine.hpp) runs on its own thread and queues what it is given.
 */
#pragma once

#include "channel/channel_part.hpp"
#include "postgres_changes/pg_changes_engine.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rt::fanout
{

/* A channel's postgres_changes subscriptions. */
struct PgChangesChannel
{
	bool any = false;                          /* the join had at least one entry */
	std::vector<PgJoinEntry> entries;          /* ... and these are the valid ones */
	std::optional<std::string> error;          /* the first invalid entry, told after the join */
	std::shared_ptr<const ChannelRef> channel; /* set once the engine has the entries */
};

class PgChangesPart final : public ChannelPart
{
public:
	JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) override;
	bool Joined(ChannelHost &host, Channel &ch) override;
	void TokenRefreshed(ChannelHost &host, Channel &ch) override;
	void Leave(ChannelHost &host, Channel &ch) override;
};

} // namespace rt::fanout
