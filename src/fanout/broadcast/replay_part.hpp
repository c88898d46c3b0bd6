/*
 * replay_part.hpp: replay at join (PROTOCOL.md 4.5): a private channel joined
 * with config.broadcast.replay = {since, limit} first receives the stored
 * broadcasts of its topic since `since` (rows of realtime.messages that its
 * user's RLS lets it read), then the live ones, without a gap and without a
 * message twice.
 *
 * No gap: the channel is in the shard's registry from the join on, before
 * the authorizer takes the snapshot the replay reads (the read check and the
 * replay query share one transaction, auth/authorizer_db.cpp); what arrives
 * live meanwhile waits in the channel (bounded) until the replay is out. No
 * duplicate: a live message whose id was replayed is skipped, for the life of
 * the channel (PROTOCOL.md 4.5). Stored messages beyond the limit are told
 * (PROTOCOL.md 3.10, reason replay_limit): nothing is lost silently.
 *
 * Shard thread only, through the socket's ChannelHost.
 */
#pragma once

#include "auth/authorizer.hpp"
#include "channel/channel_part.hpp"
#include "channel/loss_notice.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace rt::fanout
{

struct Frame;

/* config.broadcast.replay of the join and what it is doing (PROTOCOL.md 4.5). */
struct ReplayChannel
{
	bool requested = false;
	int64_t since_ms = 0;
	int limit = 0;
	/* in the registry before the join answered: live messages wait in `waiting` */
	bool buffering = false;
	std::vector<std::shared_ptr<const Frame>> waiting; /* this socket's wire form */
	std::vector<std::string> waiting_ids;              /* their message ids ("" if none) */
	size_t waiting_bytes = 0;
	uint64_t waiting_dropped = 0; /* over the bound: told once the replay is out */
	/* live broadcasts lost meanwhile for other reasons (LossReason): told then too */
	std::array<uint64_t, kLossReasons> waiting_lost{};
	/* from the authorizer's answer until the join is answered */
	std::vector<ReplayRow> rows;
	uint64_t stored = 0;                          /* rows since `since`: more than rows is told */
	std::unordered_set<std::string> replayed_ids; /* skipped when they come live */
};

class ReplayPart final : public ChannelPart
{
public:
	/*
	 * The replay's bounds (PROTOCOL.md 4.5): clamp(limit, 1, max_replay_messages), 25
	 * when absent; the tenant's max_replay_messages is 25 (upstream's clamp) by default.
	 */
	static constexpr int kDefaultLimit = 25;
	/* live messages that may wait for one replaying channel */
	static constexpr size_t kMaxWaiting = 10000;
	static constexpr size_t kMaxWaitingBytes = 8u << 20;

	JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) override;
	bool Joined(ChannelHost &host, Channel &ch) override;
	void Leave(ChannelHost &host, Channel &ch) override;

	/*
	 * A live broadcast for a channel that is joining with replay: kept until
	 * the replay is out. frame is this socket's wire form; id its message id.
	 */
	static void Wait(ChannelHost &host, Channel &ch, std::shared_ptr<const Frame> frame,
	                 const std::string &id);
	/* A live broadcast for a channel that is joining with replay was lost (told after it). */
	static void WaitLost(Channel &ch, LossReason reason);
	/* Whether a live message with this id was replayed to ch (then it is skipped). */
	static bool Replayed(const Channel &ch, const std::string &id);
};

} // namespace rt::fanout
