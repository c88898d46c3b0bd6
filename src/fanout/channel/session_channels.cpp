/*
 * session_channels.cpp: the channels of one connection (PROTOCOL.md 3):
 * routing each inbound message, joins (topic, limits, token, then each
 * part), leaves, a new access_token, and the messages a channel holds while
 * a check is out. A channel's features are its parts (channel_part.hpp).
 *
 * Shard thread only.
 */
#include "channel/session.hpp"

#include "base/clock.hpp"
#include "base/json.hpp"
#include "base/log.hpp"
#include "server/shard.hpp"
#include "tenancy/tenant.hpp"

#include <atomic>
#include <ctime>
#include <vector>

namespace rt::fanout
{

namespace
{

/* messages a channel holds while it is being authorized (Session::Hold) */
constexpr size_t kMaxHeldMessages = 1024;
constexpr size_t kMaxHeldBytes = 8u << 20;
constexpr size_t kMaxSessionHeldBytes = 16u << 20; /* all channels of one socket */

/* The code prefix of a join refusal for a token error (PROTOCOL.md 3.5). */
const char *
JwtErrorPrefix(ErrorCode code)
{
	switch (code)
	{
	case ErrorCode::kMalformedJwt:
		return "MalformedJWT";
	case ErrorCode::kJwtSignature:
		return "JwtSignatureError";
	case ErrorCode::kJwtSigner:
		return "JwtSignerError";
	default:
		return "InvalidJWTToken";
	}
}

std::atomic<uint64_t> g_channel_gen{1};

BroadcastPart g_broadcast;
ReplayPart g_replay;
ReplicationReadyPart g_replication_ready;
PresencePart g_presence;
PgChangesPart g_pg_changes;
PrivatePart g_private;
/* A channel's parts in join order: the private read check, which waits, comes last. */
ChannelPart *const kParts[] = {&g_broadcast,  &g_replay,  &g_presence,
                               &g_pg_changes, &g_private, &g_replication_ready};

int64_t
NowSeconds()
{
	return static_cast<int64_t>(time(nullptr));
}

} // namespace

Session::~Session()
{
	for (auto &[topic, ch] : channels_)
	{
		if (ch->in_registry)
			shard_.registry().Remove(ch->routing_key, this);
		if (!ch->joining)
			Metrics().channels.Sub();
		for (ChannelPart *part : kParts)
			part->Leave(*this, *ch);
	}
	if (counted_user_)
		tenant_->users.fetch_sub(1, std::memory_order_relaxed);
	tenant_->sessions.fetch_sub(1, std::memory_order_relaxed);
}

void
Session::HandleMessage(Inbound &m)
{
	/*
	 * Refs and topics are echoed in replies and kept per channel: bound them
	 * to what a binary frame can carry, so one socket cannot pin megabytes.
	 */
	if ((m.ref && m.ref->size() > kMaxRefBytes) ||
	    (m.join_ref && m.join_ref->size() > kMaxRefBytes))
	{
		Log(LogLevel::kDebug, "shard", "ref too long: dropped session=%llu",
		    static_cast<unsigned long long>(id_));
		return;
	}
	if (m.topic.size() > kMaxTopicBytes)
	{
		if (m.event == "phx_join")
			ReplyLater(m.join_ref, m.ref, m.topic.substr(0, kMaxTopicBytes),
			           ReplyErrorReason("TopicNameTooLong: a topic is at most 255 bytes"));
		return;
	}
	if (m.topic == "phoenix")
	{
		if (m.event == "heartbeat")
			Reply(std::nullopt, m.ref, m.topic, kReplyOkEmpty);
		else
			Reply(std::nullopt, m.ref, m.topic, ReplyErrorReason("unmatched topic"));
		return;
	}
	auto it = channels_.find(m.topic);
	if (it != channels_.end() && it->second->Busy())
	{
		Hold(*it->second, m); /* handled in order once the check answers */
		return;
	}
	if (m.event == "phx_join")
	{
		HandleJoin(m);
		return;
	}
	if (m.event == "phx_leave")
	{
		HandleLeave(m, it == channels_.end() ? nullptr : it->second.get());
		return;
	}
	if (it == channels_.end())
	{
		Reply(std::nullopt, m.ref, m.topic, ReplyErrorReason("unmatched topic"));
		return;
	}
	Channel &ch = *it->second;
	/* a message for an earlier join of this topic is stale: drop it */
	if (m.join_ref.has_value() && ch.join_ref.has_value() && *m.join_ref != *ch.join_ref)
		return;
	/* every event on a channel counts for the tenant; over its limit the channel ends (3.7) */
	tenant_->shard(shard_.index()).events.Add(NowMs());
	if (tenant_->events_limited.load(std::memory_order_relaxed))
	{
		ShutdownChannel(ch, "Too many messages per second");
		return;
	}
	HandleChannelEvent(m, ch);
}

/* An event on a joined channel: a new token is for every part, others for the event's part. */
void
Session::HandleChannelEvent(Inbound &m, Channel &ch)
{
	if (m.event == "access_token")
	{
		HandleAccessToken(m, ch);
		return;
	}
	for (ChannelPart *part : kParts)
	{
		if (part->Event() == m.event)
		{
			part->Push(*this, ch, m);
			return;
		}
	}
	Metrics().Drop(DropReason::kUnknownEvent);
	Log(LogLevel::kDebug, "shard", "ignored event on %s", m.topic.c_str());
	if (m.ref)
		ReplyTo(ch, m.ref, ReplyErrorReason("unknown event: " + m.event));
}

/*
 * A phx_join (PROTOCOL.md 3.3): the topic and the tenant's limits first,
 * then the channel's token, then each part takes its options; the join is
 * answered at once, or when a part that waits (the private read check) has
 * its answer (JoinDecided).
 */
void
Session::HandleJoin(Inbound &m)
{
	if (!JoinTopicAllowed(m))
		return;
	rapidjson::Document doc;
	json::Parse(doc, m.payload); /* DecodeText made sure it is an object */
	/* a second join of the same topic replaces the first (Phoenix) */
	auto old = channels_.find(m.topic);
	if (old != channels_.end())
		CloseChannel(*old->second);
	if (!WithinJoinLimits(m))
		return;
	std::unique_ptr<Channel> ch = NewChannel(m, doc);
	if (ch == nullptr)
		return;

	JoinConfig join;
	join.config = json::Member(doc, "config");
	bool waiting = false;
	for (ChannelPart *part : kParts)
	{
		JoinStep step = part->Join(*this, *ch, join);
		if (step == JoinStep::kRefused)
		{
			RefuseJoin(m, join.refusal);
			return;
		}
		waiting = waiting || step == JoinStep::kWaiting;
	}
	ch->join_response = R"({"status":"ok","response":{)" + join.response + "}}";
	Channel *c = ch.get();
	c->joining = waiting;
	channels_.emplace(m.topic, std::move(ch));
	if (c->replay.buffering)
	{
		/*
		 * A replaying join takes live messages from now on (they wait in the channel):
		 * in this turn of the loop, so before any delivery of a message committed after
		 * the snapshot its check (submitted above) reads the replay from.
		 */
		shard_.registry().Add(c->routing_key, this, c);
		c->in_registry = true;
	}
	if (!waiting)
		FinishJoin(*c);
}

/*
 * Whether the join's topic may be joined now; false when it was answered.
 * A reload or the shutdown draining this socket's tenant ("Server requested
 * disconnect" is out, the close waits for its queue) refuses at once: a join
 * would run on components being stopped (PROTOCOL.md 3.3 step 2), and the
 * join-error back-off must not put the close off.
 */
bool
Session::JoinTopicAllowed(const Inbound &m)
{
	constexpr std::string_view kPrefix = "realtime:";
	if (!m.topic.starts_with(kPrefix))
	{
		Reply(std::nullopt, m.ref, m.topic, ReplyErrorReason("unmatched topic"));
		return false;
	}
	if (m.topic.size() == kPrefix.size())
	{
		RefuseJoin(m, "TopicNameRequired: You must provide a topic name");
		return false;
	}
	if (tenant_->draining.load(std::memory_order_acquire))
	{
		Reply(m.join_ref, m.ref, m.topic,
		      ReplyErrorReason("RealtimeRestarting: Realtime is restarting, please standby"));
		return false;
	}
	return true;
}

/* The tenant's limits (PROTOCOL.md 3.3 steps 5 and 6); false when the join was refused. */
bool
Session::WithinJoinLimits(const Inbound &m)
{
	Tenant &tenant = *tenant_;
	const TenantConfig &cfg = tenant.config();
	if (cfg.suspended)
	{
		RefuseJoin(m, "RealtimeDisabledForTenant: Realtime disabled for this tenant");
		return false;
	}
	if (!counted_user_ && tenant.users.load(std::memory_order_relaxed) >=
	                          static_cast<int64_t>(cfg.max_concurrent_users))
	{
		RefuseJoin(m, "ConnectionRateLimitReached: Too many connected users");
		return false;
	}
	if (tenant.join_rate.Average(NowMs()) >= cfg.max_joins_per_second)
	{
		/* the socket goes too, once the refusal is out (close 1001: clients reconnect later) */
		RefuseJoin(m, "ClientJoinRateLimitReached: Too many joins per second");
		CloseWhenFlushed(LWS_CLOSE_STATUS_GOINGAWAY, "Too many joins per second");
		return false;
	}
	tenant.join_rate.Add(NowMs());
	if (channels_.size() >= static_cast<size_t>(cfg.max_channels_per_client))
	{
		RefuseJoin(m, "ChannelRateLimitReached: Too many channels");
		return false;
	}
	return true;
}

/*
 * The channel a join asks for, with its verified token: the join's, else the
 * socket's (PROTOCOL.md 3.2); nullptr when the token was refused (answered).
 */
std::unique_ptr<Channel>
Session::NewChannel(const Inbound &m, const rapidjson::Document &doc)
{
	std::optional<std::string_view> tok = json::String(doc, "user_token");
	if (!tok)
		tok = json::String(doc, "access_token");
	std::string token = (tok && !tok->starts_with("sb_")) ? std::string(*tok) : token_;
	/* token_ stays the connect token: a join's token belongs to its channel only */
	Result<JwtClaims> claims = VerifyJwt(token, tenant_->config().jwt_keys, NowSeconds());
	if (!claims.ok())
	{
		RefuseJoin(m, std::string(JwtErrorPrefix(claims.error().code)) + ": " +
		                  claims.error().message);
		return nullptr;
	}
	const rapidjson::Value *config = json::Member(doc, "config");
	auto ch = std::make_unique<Channel>();
	ch->topic = m.topic;
	ch->sub_topic = m.topic.substr(std::string_view("realtime:").size());
	ch->is_private = config ? json::Bool(*config, "private").value_or(false) : false;
	ch->routing_key = tenant_->RoutingKey(ch->sub_topic, ch->is_private);
	ch->join_ref = m.join_ref;
	ch->join_msg_ref = m.ref;
	ch->token = std::move(token);
	ch->claims = std::move(claims.value());
	ch->gen = g_channel_gen.fetch_add(1, std::memory_order_relaxed);
	return ch;
}

/* Refuse the join m, after the join-error back-off (PROTOCOL.md 3.5). */
void
Session::RefuseJoin(const Inbound &m, std::string_view reason)
{
	ReplyLater(m.join_ref, m.ref, m.topic, ReplyErrorReason(reason));
}

void
Session::JoinDecided(Channel &ch, const std::string &refusal)
{
	ch.joining = false;
	if (refusal.empty())
	{
		FinishJoin(ch);
		return;
	}
	ReplyLater(ch.join_ref, ch.join_msg_ref, ch.topic, ReplyErrorReason(refusal));
	if (ch.in_registry)
		shard_.registry().Remove(ch.routing_key, this);
	/* never joined: no phx_close; messages it held are answered as for no channel */
	EraseChannel(ch);
}

/* The join is answered ok: the channel receives from now on, then each part starts. */
void
Session::FinishJoin(Channel &ch)
{
	if (!ch.in_registry)
		shard_.registry().Add(ch.routing_key, this, &ch);
	ch.in_registry = true;
	if (!counted_user_)
	{
		counted_user_ = true; /* a connected user from its first join until it closes */
		tenant_->users.fetch_add(1, std::memory_order_relaxed);
	}
	Metrics().joins_ok.Add();
	Metrics().channels.Add();
	Reply(ch.join_ref, ch.join_msg_ref, ch.topic, ch.join_response);
	ch.join_response.clear();
	ch.join_response.shrink_to_fit();
	for (ChannelPart *part : kParts)
	{
		if (!part->Joined(*this, ch))
			return; /* the part ended the channel: ch is gone */
	}
}

void
Session::Hold(Channel &ch, Inbound &m)
{
	size_t bytes = m.payload.size() + m.user_payload.size() + m.topic.size();
	if (ch.held.size() >= kMaxHeldMessages || ch.held_bytes + bytes > kMaxHeldBytes ||
	    held_total_ + bytes > kMaxSessionHeldBytes)
	{
		Metrics().Drop(DropReason::kHeldOverflow);
		Log(LogLevel::kInfo, "shard", "channel busy authorizing: message dropped session=%llu",
		    static_cast<unsigned long long>(id_));
		if (m.ref)
			ReplyTo(ch, m.ref,
			        ReplyErrorReason("too many messages waiting for the channel's authorization"));
		return;
	}
	ch.held_bytes += bytes;
	held_total_ += bytes;
	ch.held.push_back(std::move(m));
}

void
Session::ReleaseHeld(const std::string &topic)
{
	auto it = channels_.find(topic);
	if (it == channels_.end() || it->second->Busy() || it->second->held.empty())
		return;
	/* in order; one that starts another check holds the ones after it again */
	std::vector<Inbound> held = std::move(it->second->held);
	it->second->held.clear();
	held_total_ -= it->second->held_bytes;
	it->second->held_bytes = 0;
	for (Inbound &m : held)
		HandleMessage(m);
}

/* The channel ends: phx_close, out of the registry, each part leaves, then it is gone. */
void
Session::CloseChannel(Channel &ch)
{
	/* phx_close carries the join_ref as both join_ref and ref (PROTOCOL.md 2.2) */
	SendControl(MakeFrame(Opcode::kText,
	                      EncodeText(vsn_, ch.join_ref, ch.join_ref, ch.topic, "phx_close", "{}")));
	shard_.registry().Remove(ch.routing_key, this);
	Metrics().channels.Sub();
	for (ChannelPart *part : kParts)
		part->Leave(*this, ch);
	EraseChannel(ch);
}

/*
 * Forget ch (it is gone after this); what it held while a check was out is
 * answered as for a channel that does not exist.
 */
void
Session::EraseChannel(Channel &ch)
{
	std::vector<Inbound> held = std::move(ch.held);
	held_total_ -= ch.held_bytes;
	std::string topic = ch.topic;
	channels_.erase(topic);
	for (Inbound &m : held)
		HandleMessage(m);
}

void
Session::ShutdownChannel(Channel &ch, std::string_view message)
{
	PushTo(ch, "system", SystemPayload("system", "error", message, ch.sub_topic));
	CloseChannel(ch);
}

void
Session::ExpireChannels(int64_t now_s)
{
	std::vector<Channel *> expired, unready;
	int64_t now_ms = NowMs();
	for (auto &[topic, ch] : channels_)
	{
		if (ch->claims.exp <= now_s && !ch->joining)
			expired.push_back(ch.get());
		else if (ReplicationReadyPart::TimedOut(*this, *ch, now_ms))
			unready.push_back(ch.get());
	}
	for (Channel *ch : expired)
		ShutdownChannel(*ch, "Token has expired " + std::to_string(now_s - ch->claims.exp) +
		                         " seconds ago");
	for (Channel *ch : unready)
		ShutdownChannel(*ch, ReplicationReadyPart::kTimeoutMessage);
}

void
Session::HandleLeave(Inbound &m, Channel *ch)
{
	if (ch == nullptr)
	{
		Reply(std::nullopt, m.ref, m.topic, kReplyOkEmpty);
		return;
	}
	Reply(ch->join_ref, m.ref, m.topic, kReplyOkEmpty);
	CloseChannel(*ch);
}

/* A new access_token for the channel (PROTOCOL.md 3.6): verified, then every part follows it. */
void
Session::HandleAccessToken(Inbound &m, Channel &ch)
{
	rapidjson::Document doc;
	json::Parse(doc, m.payload);
	std::optional<std::string_view> tok = json::String(doc, "access_token");
	/* ignored: null, unchanged, or a new-style API key (PROTOCOL.md 3.6) */
	if (!tok || *tok == ch.token || tok->starts_with("sb_"))
		return;
	Result<JwtClaims> claims = VerifyJwt(*tok, tenant_->config().jwt_keys, NowSeconds());
	if (!claims.ok())
	{
		ShutdownChannel(ch, claims.error().message);
		return;
	}
	ch.token = std::string(*tok);
	ch.claims = std::move(claims.value());
	for (ChannelPart *part : kParts)
		part->TokenRefreshed(*this, ch);
}

} // namespace rt::fanout
