/*
 * replay_part.cpp: config.broadcast.replay at join (PROTOCOL.md 4.5); see
 * replay_part.hpp for how it keeps both gap and duplicate out.
 *
 * Shard thread only. The rows come with the private read check's answer
 * (auth/private_part.cpp puts them in Channel::replay); this part checks the
 * join's parameters before that and sends the rows once the join is answered.
 */
#include "broadcast/replay_part.hpp"

#include "base/clock.hpp"
#include "broadcast/broadcast.hpp"
#include "broadcast/persist.hpp"
#include "channel/channel.hpp"
#include "protocol/protocol.hpp"

#include <algorithm>

namespace rt::fanout
{

namespace
{

/*
 * `since` as a time PostgreSQL can take (years 1 to 9999, in unix ms): what
 * Elixir's DateTime.from_unix! accepts and more than any client sends.
 */
constexpr int64_t kMinSinceMs = -62135596800000;
constexpr int64_t kMaxSinceMs = 253402300799999;

/* {"replayed":true,"id":...,"inserted_at":ms}: StoredMeta's, marked */
std::string
ReplayMeta(const ReplayRow &row)
{
	std::string meta = StoredMeta(row.id, row.inserted_us);
	meta.insert(1, R"("replayed":true,)");
	return meta;
}

} // namespace

/* PROTOCOL.md 4.5: private only, `since` an integer, `limit` an integer if given. */
JoinStep
ReplayPart::Join(ChannelHost &host, Channel &ch, JoinConfig &join)
{
	const rapidjson::Value *broadcast = join.Options("broadcast");
	const rapidjson::Value *replay = broadcast ? json::Member(*broadcast, "replay") : nullptr;
	if (replay == nullptr || replay->IsNull())
		return JoinStep::kDone;
	if (!ch.is_private)
	{
		join.refusal = "UnableToReplayMessages: Replay is not allowed for public channels";
		return JoinStep::kRefused;
	}
	const rapidjson::Value *since = json::Member(*replay, "since");
	const rapidjson::Value *limit = json::Member(*replay, "limit");
	bool valid = replay->IsObject() && since != nullptr && since->IsInt64() &&
	             since->GetInt64() >= kMinSinceMs && since->GetInt64() <= kMaxSinceMs &&
	             (limit == nullptr || limit->IsNull() || limit->IsInt64() || limit->IsUint64());
	if (!valid)
	{
		join.refusal = "UnableToReplayMessages: Replay params are not valid";
		return JoinStep::kRefused;
	}
	int64_t most = host.tenant().config().max_replay_messages;
	int64_t n = std::min<int64_t>(kDefaultLimit, most);
	if (limit != nullptr && limit->IsInt64())
		n = std::clamp<int64_t>(limit->GetInt64(), 1, most);
	else if (limit != nullptr && limit->IsUint64())
		n = most; /* beyond int64: clamped */
	ReplayChannel &r = ch.replay;
	r.requested = true;
	r.buffering = true; /* the session puts it in the registry before the check goes out */
	r.since_ms = since->GetInt64();
	r.limit = static_cast<int>(n);
	return JoinStep::kDone;
}

/*
 * The join was answered: the stored messages, oldest first, then what came
 * live meanwhile (less what was replayed), then what did not fit.
 */
bool
ReplayPart::Joined(ChannelHost &host, Channel &ch)
{
	ReplayChannel &r = ch.replay;
	if (!r.requested)
		return true;
	r.buffering = false;
	int64_t now = NowMs();
	for (const ReplayRow &row : r.rows)
	{
		std::shared_ptr<Delivery> d =
		    MakeUserBroadcast("", ch.topic, row.event, row.binary ? kEncodingBinary : kEncodingJson,
		                      row.payload, ReplayMeta(row));
		if (std::shared_ptr<const Frame> f = host.UsesV1() ? d->v1 : d->v2)
			host.SendFrame(ch, std::move(f), LossPart::kBroadcast);
		r.replayed_ids.insert(row.id);
	}
	if (r.stored > r.rows.size())
		host.NoteLost(ch, LossPart::kBroadcast, LossReason::kReplayLimit, r.stored - r.rows.size(),
		              now);
	r.rows.clear();
	r.rows.shrink_to_fit();
	for (size_t i = 0; i < r.waiting.size(); i++)
		if (r.waiting_ids[i].empty() || !Replayed(ch, r.waiting_ids[i]))
			host.SendFrame(ch, std::move(r.waiting[i]), LossPart::kBroadcast);
	if (r.waiting_dropped > 0)
		host.NoteLost(ch, LossPart::kBroadcast, LossReason::kReplayWait, r.waiting_dropped, now);
	for (size_t i = 0; i < kLossReasons; i++)
		if (r.waiting_lost[i] > 0)
			host.NoteLost(ch, LossPart::kBroadcast, static_cast<LossReason>(i), r.waiting_lost[i],
			              now);
	r.waiting = {};
	r.waiting_ids = {};
	r.waiting_bytes = 0;
	r.waiting_dropped = 0;
	r.waiting_lost = {};
	return true;
}

void
ReplayPart::Leave(ChannelHost &, Channel &ch)
{
	ch.replay = ReplayChannel{};
}

void
ReplayPart::Wait(ChannelHost &, Channel &ch, std::shared_ptr<const Frame> frame,
                 const std::string &id)
{
	ReplayChannel &r = ch.replay;
	size_t bytes = frame->bytes.size();
	if (r.waiting.size() >= kMaxWaiting || r.waiting_bytes + bytes > kMaxWaitingBytes)
	{
		r.waiting_dropped++;
		return;
	}
	r.waiting_bytes += bytes;
	r.waiting.push_back(std::move(frame));
	r.waiting_ids.push_back(id);
}

void
ReplayPart::WaitLost(Channel &ch, LossReason reason)
{
	ch.replay.waiting_lost[static_cast<size_t>(reason)]++;
}

bool
ReplayPart::Replayed(const Channel &ch, const std::string &id)
{
	return ch.replay.replayed_ids.contains(id);
}

} // namespace rt::fanout
