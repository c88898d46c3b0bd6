/*
 * broadcast_part.cpp: client broadcasts on a channel (PROTOCOL.md 4.1-4.3).
 *
 * Shard thread only. A push is checked (write right of a private channel,
 * payload size), serialized once for both protocol versions and published;
 * the sender is excluded unless it joined with self.
 */
#include "broadcast/broadcast_part.hpp"

#include "auth/private_part.hpp"
#include "broadcast/broadcast.hpp"
#include "channel/channel.hpp"
#include "ops/metrics.hpp"
#include "tenancy/tenant.hpp"

namespace rt::fanout
{

JoinStep
BroadcastPart::Join(ChannelHost &, Channel &ch, JoinConfig &join)
{
	if (const rapidjson::Value *broadcast = join.Options("broadcast"))
	{
		ch.broadcast.self = json::Bool(*broadcast, "self").value_or(false);
		ch.broadcast.ack = json::Bool(*broadcast, "ack").value_or(false);
	}
	return JoinStep::kDone;
}

void
BroadcastPart::Push(ChannelHost &host, Channel &ch, Inbound &m)
{
	/* a private channel without the right drops silently, even with ack (PROTOCOL.md 4.2) */
	if (!PrivatePart::MayWrite(host, ch, m, kAuthBroadcast))
	{
		if (!ch.checking)
			host.Metrics().Drop(DropReason::kNotAuthorized);
		return;
	}
	const TenantConfig &cfg = host.tenant().config();
	size_t size = m.user_broadcast ? m.user_payload.size() : m.payload.size();
	if (size > static_cast<size_t>(cfg.max_payload_bytes))
	{
		/* upstream replies only with ack; a ref is enough here: told, not timed out */
		host.Metrics().Drop(DropReason::kPayloadTooLarge);
		if (m.ref)
			host.ReplyTo(ch, m.ref, R"({"status":"error","response":"payload_size_exceeded"})");
		return;
	}

	std::shared_ptr<Delivery> d = m.user_broadcast
	                                  ? MakeUserBroadcast(ch.routing_key, ch.topic, m.user_event,
	                                                      m.encoding, m.user_payload, "")
	                                  : MakeTextBroadcast(ch.routing_key, ch.topic, m.payload);
	d->exclude_session = ch.broadcast.self ? 0 : host.session_id();
	host.Publish(std::move(d));
	if (ch.broadcast.ack)
		host.ReplyTo(ch, m.ref, kReplyOkEmpty);
}

} // namespace rt::fanout
