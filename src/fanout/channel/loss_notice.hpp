/*
 * loss_notice.hpp: what a channel missed, and the `system` message that says so
 * (PROTOCOL.md 3.10): nothing a subscriber should have had is lost without a word.
 *
 * A channel counts the messages it missed by part (broadcast, postgres_changes) and
 * reason; the first loss is told at once, later ones at most once a second per channel
 * (the shard's timer sends what is pending). Shard thread only, like the Channel.
 */
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace rt::fanout
{

/* Why a message did not reach a channel. */
enum class LossReason : uint8_t
{
	kEventsLimit, /* the tenant is over max_events_per_second (database messages, changes) */
	kSlowClient,  /* the socket's send queue was full */
	kShardBehind, /* the shard serving the socket fell behind (its inbox was full) */
	kRingGap,     /* the database stream overwrote records before the sidecar read them */
	kRlsUnknown,  /* a change's RLS or privilege check failed: the database did not answer */
	kReplayLimit, /* stored messages since the replay's `since` beyond its limit */
	kReplayWait,  /* live messages over the bound while a replaying join waited */
};
constexpr size_t kLossReasons = 7;

/* Which part of the channel missed it: the `extension` of the notice. */
enum class LossPart : uint8_t
{
	kBroadcast,
	kPresence,
	kPostgresChanges,
};
constexpr size_t kLossParts = 3;

/* Label values for /metrics: events_limit, slow_client, shard_behind, ring_gap, rls_unknown,
 * replay_limit, replay_wait. */
const char *LossReasonName(LossReason r);
/* broadcast, presence, postgres_changes */
const char *LossPartName(LossPart p);

using LossCounts = std::array<uint64_t, kLossReasons>;

class LossNotice
{
public:
	static constexpr int64_t kIntervalMs = 1000;

	void
	Add(LossPart part, LossReason reason, uint64_t n)
	{
		counts_[static_cast<size_t>(part)][static_cast<size_t>(reason)] += n;
	}
	bool Pending() const;
	/* Whether a notice may go now (the last one went a second ago or more). */
	bool
	Due(int64_t now_ms) const
	{
		return now_ms - last_sent_ms_ >= kIntervalMs;
	}
	/*
	 * The next notice's payload for channel sub_topic: the first part with losses (the
	 * other waits for the next second), its counts then cleared. Empty: nothing pending.
	 */
	std::string Take(std::string_view sub_topic, int64_t now_ms);

private:
	std::array<LossCounts, kLossParts> counts_{};
	int64_t last_sent_ms_ = INT64_MIN / 2;
};

/*
 * The `system` payload: {"extension":"broadcast","status":"error","message":"3 messages
 * not delivered: Too many messages per second","channel":..., "lost":3,
 * "reasons":{"events_limit":3}}.
 */
std::string LossPayload(LossPart part, const LossCounts &counts, std::string_view sub_topic);

} // namespace rt::fanout
