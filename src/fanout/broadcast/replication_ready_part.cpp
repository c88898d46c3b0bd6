/*
 * replication_ready_part.cpp: see replication_ready_part.hpp.
 *
 * Shard thread only.
 */
#include "broadcast/replication_ready_part.hpp"

#include "base/clock.hpp"
#include "channel/channel.hpp"
#include "db/ring_reader.hpp"
#include "protocol/protocol.hpp"
#include "tenancy/config.hpp"
#include "tenancy/tenant.hpp"

namespace rt::fanout
{

namespace
{

void
Tell(ChannelHost &host, Channel &ch)
{
	ch.replication_ready.told = true;
	host.PushTo(ch, "system",
	            SystemPayload("system", "ok", "Replication connection established", ch.sub_topic));
}

/* What a channel without postgres_changes waits for: the tenant's database stream. */
bool
RingAttached(const ChannelHost &host)
{
	const RingReader *ring = host.tenant().ring;
	return ring != nullptr && ring->attached();
}

} // namespace

JoinStep
ReplicationReadyPart::Join(ChannelHost &, Channel &ch, JoinConfig &join)
{
	const rapidjson::Value *broadcast = join.Options("broadcast");
	ch.replication_ready.requested =
	    broadcast != nullptr && json::Bool(*broadcast, "replication_ready").value_or(false);
	return JoinStep::kDone;
}

bool
ReplicationReadyPart::Joined(ChannelHost &host, Channel &ch)
{
	ReplicationReadyChannel &r = ch.replication_ready;
	if (!r.requested)
		return true;
	r.deadline_ms = NowMs() + host.config().replication_ready_timeout_ms;
	if (!ch.pg_changes.any && RingAttached(host))
		Tell(host, ch);
	return true;
}

void
ReplicationReadyPart::Confirmed(ChannelHost &host, Channel &ch)
{
	if (ch.replication_ready.requested && !ch.replication_ready.told)
		Tell(host, ch);
}

bool
ReplicationReadyPart::TimedOut(ChannelHost &host, Channel &ch, int64_t now_ms)
{
	ReplicationReadyChannel &r = ch.replication_ready;
	if (!r.requested || r.told || ch.joining)
		return false;
	if (!ch.pg_changes.any && RingAttached(host))
	{
		Tell(host, ch);
		return false;
	}
	return now_ms >= r.deadline_ms;
}

} // namespace rt::fanout
