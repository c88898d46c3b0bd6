/*
 * broadcast_part.cpp: client broadcasts on a channel (PROTOCOL.md 4.1-4.3),
 * persisted ones included (persist.hpp).
 *
 * Shard thread only, but for the store's answer, which comes from the store
 * thread and is posted back to the sender's shard. A push is checked (write
 * right of a private channel, payload size, persist), serialized once for
 * both protocol versions and published; the sender is excluded unless it
 * joined with self. Broadcasts behind a persisted one wait for its commit.
 */
#include "broadcast/broadcast_part.hpp"

#include "auth/private_part.hpp"
#include "base/uuid.hpp"
#include "broadcast/broadcast.hpp"
#include "broadcast/message_store.hpp"
#include "broadcast/persist.hpp"
#include "channel/channel.hpp"
#include "channel/session.hpp"
#include "ops/metrics.hpp"
#include "server/shard.hpp"
#include "tenancy/tenant.hpp"

#include <unordered_map>

namespace rt::fanout
{

namespace
{

size_t
DeliveryBytes(const Delivery &d)
{
	return (d.v1 ? d.v1->bytes.size() : 0) + (d.v2 ? d.v2->bytes.size() : 0);
}

/*
 * The queues of channels that went while a persisted broadcast of theirs was being
 * stored (BroadcastPart::Leave), by OrphanKey: flushed in order as the store answers,
 * without acks (the sender left). Per shard thread, as the channels were.
 */
thread_local std::unordered_map<std::string, std::vector<OutgoingBroadcast>> t_orphans;

std::string
OrphanKey(uint64_t session, uint64_t gen, const std::string &topic)
{
	return std::to_string(session) + ":" + std::to_string(gen) + ":" + topic;
}

/* Publish the front of an orphaned queue up to the first one still being stored. */
void
FlushOrphan(Shard &sh, const std::string &key)
{
	auto it = t_orphans.find(key);
	if (it == t_orphans.end())
		return;
	std::vector<OutgoingBroadcast> &q = it->second;
	size_t n = 0;
	while (n < q.size() && q[n].state != OutgoingBroadcast::State::kStoring)
	{
		if (q[n].state == OutgoingBroadcast::State::kFailed)
			q[n].delivery->tenant->shard(sh.index()).metrics.Drop(DropReason::kNotStored);
		else
			sh.hub().Publish(q[n].delivery, sh.index());
		n++;
	}
	q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(n));
	if (q.empty())
		t_orphans.erase(it);
}

/* The store's answer for a persisted broadcast whose channel is gone. */
void
OrphanStored(Shard &sh, const std::string &key, const std::string &id, bool stored,
             const std::shared_ptr<Delivery> &d)
{
	auto it = t_orphans.find(key);
	if (it == t_orphans.end())
	{
		if (stored) /* no queue kept: nothing waits behind it */
			sh.hub().Publish(d, sh.index());
		return;
	}
	for (OutgoingBroadcast &o : it->second)
		if (o.state == OutgoingBroadcast::State::kStoring && o.id == id)
		{
			o.state =
			    stored ? OutgoingBroadcast::State::kStored : OutgoingBroadcast::State::kFailed;
			break;
		}
	FlushOrphan(sh, key);
}

/* The event and payload JSON of a text push's {"type":"broadcast","event":..,"payload":..}. */
bool
TextEventPayload(const Inbound &m, std::string &event, std::string &payload)
{
	rapidjson::Document doc;
	if (!json::Parse(doc, m.payload) || !doc.IsObject())
		return false;
	std::optional<std::string_view> e = json::String(doc, "event");
	if (!e)
		return false;
	event.assign(*e);
	const rapidjson::Value *p = json::Member(doc, "payload");
	payload = p != nullptr ? json::Stringify(*p) : "{}";
	return true;
}

} // namespace

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
	PersistAsk persist = ReadPersist(m);
	if (persist.asked)
	{
		std::string_view refusal = !ch.is_private   ? kPersistPublic
		                           : !persist.valid ? kPersistInvalid
		                           : host.UsesV1()  ? kPersistVsn1
		                                            : std::string_view();
		if (!refusal.empty())
		{
			host.Metrics().Drop(DropReason::kNotStored);
			if (m.ref)
				host.ReplyTo(ch, m.ref, PersistErrorReply(refusal));
			return;
		}
		Persist(host, ch, m, persist.ttl_s);
		return;
	}

	std::shared_ptr<Delivery> d = m.user_broadcast
	                                  ? MakeUserBroadcast(ch.routing_key, ch.topic, m.user_event,
	                                                      m.encoding, m.user_payload, "")
	                                  : MakeTextBroadcast(ch.routing_key, ch.topic, m.payload);
	d->exclude_session = ch.broadcast.self ? 0 : host.session_id();
	OutgoingBroadcast out;
	out.delivery = std::move(d);
	out.ref = m.ref;
	Send(host, ch, std::move(out));
}

/*
 * Store the message, then send it (Stored). False when it was refused at once
 * (answered with an error: nothing stored, nothing delivered).
 */
bool
BroadcastPart::Persist(ChannelHost &host, Channel &ch, Inbound &m, int64_t ttl_s)
{
	MessageStore *store = host.tenant().store;
	StoreRequest req;
	req.id = NewUuid();
	req.topic = ch.sub_topic;
	req.ttl_s = ttl_s;
	req.inserted_us = store != nullptr ? store->Stamp() : 0;
	bool ok = true;
	if (m.user_broadcast)
	{
		req.event = m.user_event;
		req.payload = m.user_payload;
		req.binary = m.encoding == kEncodingBinary;
	}
	else
		ok = TextEventPayload(m, req.event, req.payload);
	std::optional<std::string> unstorable = ok ? Unstorable(req) : std::nullopt;
	std::string refusal = !ok                             ? std::string(kPersistInvalid)
	                      : unstorable                    ? "UnableToPersistMessage: " + *unstorable
	                      : !store                        ? std::string(kPersistFailed)
	                      : !Room(ch, req.payload.size()) ? std::string(kPersistBusy)
	                                                      : std::string();
	if (!refusal.empty())
	{
		host.Metrics().Drop(DropReason::kNotStored);
		if (m.ref)
			host.ReplyTo(ch, m.ref, PersistErrorReply(refusal));
		return false;
	}
	std::shared_ptr<Delivery> d = MakeUserBroadcast(
	    ch.routing_key, ch.topic, req.event, req.binary ? kEncodingBinary : kEncodingJson,
	    req.payload, StoredMeta(req.id, req.inserted_us));
	d->exclude_session = ch.broadcast.self ? 0 : host.session_id();
	d->message_id = req.id;
	d->tenant = host.tenant().shared_from_this();
	OutgoingBroadcast out;
	out.delivery = d;
	out.ref = m.ref;
	out.persisted = true;
	out.id = req.id;
	out.state = OutgoingBroadcast::State::kStoring;
	out.bytes = DeliveryBytes(*d);
	/*
	 * The answer comes on the store thread: back to this shard. If the channel is gone by
	 * then, a stored message still goes out (its subscribers must not miss it).
	 */
	Hub *hub = &host.hub();
	int shard = host.shard_index();
	uint64_t session = host.session_id(), gen = ch.gen;
	std::string topic = ch.topic, id = req.id;
	req.done = [hub, shard, session, gen, topic, id, d](bool stored)
	{
		hub->PostTask(shard,
		              [session, gen, topic, id, d, stored](Shard &sh)
		              {
			              Session *s = sh.FindSession(session);
			              Channel *c = s != nullptr ? s->FindChannel(topic, gen) : nullptr;
			              if (c != nullptr)
				              Stored(*s, *c, id, stored);
			              else
				              OrphanStored(sh, OrphanKey(session, gen, topic), id, stored, d);
		              });
	};
	Send(host, ch, std::move(out));
	store->Submit(std::move(req));
	return true;
}

void
BroadcastPart::Leave(ChannelHost &host, Channel &ch)
{
	BroadcastChannel &b = ch.broadcast;
	if (b.outgoing_head == b.outgoing.size())
		return;
	std::vector<OutgoingBroadcast> left;
	for (size_t i = b.outgoing_head; i < b.outgoing.size(); i++)
	{
		OutgoingBroadcast &o = b.outgoing[i];
		if (o.delivery)
			o.delivery->tenant = host.tenant().shared_from_this(); /* as Session::Publish sets */
		left.push_back(std::move(o));
	}
	b.outgoing.clear();
	b.outgoing_head = 0;
	b.outgoing_bytes = 0;
	std::string key = OrphanKey(host.session_id(), ch.gen, ch.topic);
	t_orphans[key] = std::move(left);
	/* after the leave is done: a publish may end channels of this shard */
	host.hub().PostTask(host.shard_index(), [key](Shard &sh) { FlushOrphan(sh, key); });
}

/* Whether ch can keep one more broadcast of bytes behind those being stored. */
bool
BroadcastPart::Room(const Channel &ch, size_t bytes)
{
	const BroadcastChannel &b = ch.broadcast;
	return b.outgoing.size() - b.outgoing_head < kMaxOutgoing &&
	       b.outgoing_bytes + bytes <= kMaxOutgoingBytes;
}

/* Out now, or behind the persisted broadcasts still being stored (order kept). */
void
BroadcastPart::Send(ChannelHost &host, Channel &ch, OutgoingBroadcast out)
{
	BroadcastChannel &b = ch.broadcast;
	if (b.outgoing_head == b.outgoing.size() && out.state == OutgoingBroadcast::State::kReady)
	{
		/* the ack first: a publish over the events limit may end this very channel */
		if (ch.broadcast.ack)
			host.ReplyTo(ch, out.ref, kReplyOkEmpty);
		host.Publish(std::move(out.delivery));
		return;
	}
	out.bytes = DeliveryBytes(*out.delivery);
	if (!out.persisted && !Room(ch, out.bytes))
	{
		host.Metrics().Drop(DropReason::kNotStored);
		if (out.ref)
			host.ReplyTo(ch, out.ref, PersistErrorReply(kPersistBusy));
		return;
	}
	b.outgoing_bytes += out.bytes;
	b.outgoing.push_back(std::move(out));
}

void
BroadcastPart::Stored(ChannelHost &host, Channel &ch, const std::string &id, bool stored)
{
	BroadcastChannel &b = ch.broadcast;
	for (size_t i = b.outgoing_head; i < b.outgoing.size(); i++)
	{
		OutgoingBroadcast &o = b.outgoing[i];
		/* by id: a refused Submit answers at once, ahead of earlier rows still being written */
		if (o.state == OutgoingBroadcast::State::kStoring && o.id == id)
		{
			o.state =
			    stored ? OutgoingBroadcast::State::kStored : OutgoingBroadcast::State::kFailed;
			break;
		}
	}
	Flush(host, ch);
}

/*
 * Send the front of the queue while nothing before it is still being stored. A publish
 * may end the channel (over the events limit, Shard::Deliver shuts down the channels it
 * reaches, the sender's with self): it is looked up again after each one.
 */
void
BroadcastPart::Flush(ChannelHost &host, Channel &channel)
{
	const std::string topic = channel.topic;
	const uint64_t gen = channel.gen;
	Channel *ch = &channel;
	while (ch->broadcast.outgoing_head < ch->broadcast.outgoing.size())
	{
		BroadcastChannel &b = ch->broadcast;
		OutgoingBroadcast &o = b.outgoing[b.outgoing_head];
		if (o.state == OutgoingBroadcast::State::kStoring)
			break;
		b.outgoing_bytes -= o.bytes;
		b.outgoing_head++;
		if (o.state == OutgoingBroadcast::State::kFailed)
		{
			/* never a false ok: not stored, not delivered, and the sender is told */
			host.Metrics().Drop(DropReason::kNotStored);
			if (o.ref)
				host.ReplyTo(*ch, o.ref, PersistErrorReply(kPersistFailed));
			continue;
		}
		std::shared_ptr<Delivery> d = std::move(o.delivery);
		if (ch->broadcast.ack)
			host.ReplyTo(*ch, o.ref, kReplyOkEmpty);
		host.Publish(std::move(d));
		if ((ch = host.FindChannel(topic, gen)) == nullptr)
			return;
	}
	BroadcastChannel &b = ch->broadcast;
	if (b.outgoing_head == b.outgoing.size())
	{
		b.outgoing.clear();
		b.outgoing_head = 0;
		b.outgoing_bytes = 0;
	}
}

} // namespace rt::fanout
