/*
 * presence_part.cpp: presence on a channel (PROTOCOL.md 5.1-5.5).
 *
 * Shard thread only. Tracks and untracks change the tenant's PresenceStore
 * and publish its presence_diff to every shard; the limits are upstream's:
 * the client's window of pushes, the tenant's presence events per second and
 * the size of a meta.
 */
#include "presence/presence_part.hpp"

#include "auth/private_part.hpp"
#include "base/clock.hpp"
#include "base/log.hpp"
#include "base/uuid.hpp"
#include "broadcast/broadcast.hpp"
#include "channel/channel.hpp"
#include "tenancy/tenant.hpp"

#include <cctype>

namespace rt::fanout
{

namespace
{

constexpr std::string_view kReplyErrorEmpty = R"({"status":"error","response":{}})";

} // namespace

JoinStep
PresencePart::Join(ChannelHost &, Channel &ch, JoinConfig &join)
{
	if (const rapidjson::Value *presence = join.Options("presence"))
	{
		ch.presence.enabled = json::Bool(*presence, "enabled").value_or(false);
		if (std::optional<std::string_view> key = json::String(*presence, "key"))
			ch.presence.key = std::string(*key);
	}
	if (ch.presence.key.empty())
		ch.presence.key = NewUuid(); /* upstream makes one per channel */
	return JoinStep::kDone;
}

bool
PresencePart::Joined(ChannelHost &host, Channel &ch)
{
	if (!ch.presence.enabled || !ch.Reads(DeliveryKind::kPresence))
		return true;
	if (!CountPresenceEvent(host))
	{
		host.ShutdownChannel(ch, "Too many presence messages per second");
		return false;
	}
	host.PushTo(ch, "presence_state", host.tenant().presence.State(ch.routing_key));
	return true;
}

void
PresencePart::Push(ChannelHost &host, Channel &ch, Inbound &m)
{
	rapidjson::Document doc;
	json::Parse(doc, m.payload);
	std::optional<std::string_view> ev = json::String(doc, "event");
	if (!ev)
	{
		host.ReplyTo(ch, m.ref, kReplyOkEmpty); /* no event: nothing to do */
		return;
	}
	std::string event(*ev);
	for (char &c : event)
		c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
	/* a private track first learns its rights; this push waits for them (PROTOCOL.md 5.4) */
	if (event == "track" && PrivatePart::MustAskPresenceWrite(ch) &&
	    !PrivatePart::MayWrite(host, ch, m, kAuthPresence) && ch.checking)
		return;
	if (!WithinClientWindow(host, ch))
		return;
	if (event == "track")
	{
		const rapidjson::Value *payload = json::Member(doc, "payload");
		rapidjson::Value empty(rapidjson::kObjectType);
		if (payload == nullptr || payload->IsNull())
			payload = &empty;
		if (!payload->IsObject())
		{
			host.ReplyTo(ch, m.ref, ReplyErrorReason("Presence track payload must be a map"));
			return;
		}
		Track(host, ch, m, *payload);
	}
	else if (event == "untrack")
	{
		if (ch.presence.tracked)
			Untrack(host, ch);
		host.ReplyTo(ch, m.ref, kReplyOkEmpty);
	}
	else
	{
		Log(LogLevel::kInfo, "shard", "UnknownPresenceEvent: %s session=%llu", event.c_str(),
		    static_cast<unsigned long long>(host.session_id()));
		host.ReplyTo(ch, m.ref, kReplyErrorEmpty);
	}
}

void
PresencePart::Leave(ChannelHost &host, Channel &ch)
{
	if (ch.presence.tracked)
		Untrack(host, ch); /* a dropped socket leaves at once: no ghost */
}

/* The client's window (PROTOCOL.md 5.5): more pushes end the channel, no reply. */
bool
PresencePart::WithinClientWindow(ChannelHost &host, Channel &ch)
{
	const TenantConfig &cfg = host.tenant().config();
	int64_t now = NowMs();
	if (ch.presence.window_end_ms == 0 || now > ch.presence.window_end_ms)
	{
		ch.presence.window_end_ms = now + cfg.client_presence_window_ms;
		ch.presence.window_count = 0;
	}
	if (ch.presence.window_count >= cfg.max_client_presence_events_per_window)
	{
		host.ShutdownChannel(ch, "Client presence rate limit exceeded");
		return false;
	}
	ch.presence.window_count++;
	return true;
}

void
PresencePart::Track(ChannelHost &host, Channel &ch, const Inbound &m,
                    const rapidjson::Value &payload)
{
	Tenant &tenant = host.tenant();
	std::string meta = json::Stringify(payload);
	if (meta.size() + ch.presence.key.size() >
	    static_cast<size_t>(tenant.config().max_payload_bytes))
	{
		host.ShutdownChannel(ch, "Track message size exceeded");
		return;
	}
	if (ch.is_private && ch.rights.write_presence != Perm::kYes)
	{
		/* refused, or the check failed (Push asked already) */
		host.ReplyTo(ch, m.ref, kReplyErrorEmpty);
		return;
	}
	if (!CountPresenceEvent(host))
	{
		host.ShutdownChannel(ch, "Too many presence messages per second");
		return;
	}
	std::string diff =
	    tenant.presence.Track(ch.routing_key, ch.presence.key, host.session_id(), ch.gen, meta);
	ch.presence.enabled = true; /* a track turns presence on for the channel (PROTOCOL.md 5.1) */
	ch.presence.tracked = true;
	host.ReplyTo(ch, m.ref, kReplyOkEmpty);
	PublishDiff(host, ch, diff);
}

/* Count one presence event for the tenant; false when its average is over the limit. */
bool
PresencePart::CountPresenceEvent(ChannelHost &host)
{
	Tenant &tenant = host.tenant();
	RateCounter &rate = tenant.presence_rate;
	int64_t now = NowMs();
	if (rate.Average(now) > tenant.config().max_presence_events_per_second)
		return false;
	rate.Add(now);
	return true;
}

void
PresencePart::Untrack(ChannelHost &host, Channel &ch)
{
	ch.presence.tracked = false;
	PublishDiff(host, ch,
	            host.tenant().presence.Untrack(ch.routing_key, host.session_id(), ch.gen));
}

/* Send a presence_diff (none when the change changed nothing) to every subscriber. */
void
PresencePart::PublishDiff(ChannelHost &host, const Channel &ch, const std::string &diff)
{
	if (diff.empty())
		return;
	std::shared_ptr<Delivery> d = MakeTextEvent(ch.routing_key, ch.topic, "presence_diff", diff);
	d->kind = DeliveryKind::kPresence;
	host.Publish(std::move(d));
}

} // namespace rt::fanout
