/*
 * session.cpp: Phoenix channel protocol for one connection (PROTOCOL.md 2-4).
 *
 * Shard thread only. Inbound messages are decoded, dispatched by event and
 * answered through the connection's bounded send queue; broadcasts are
 * serialized once here and handed to the Hub for every shard.
 */
#include "channel/session.hpp"

#include "broadcast/broadcast.hpp"
#include "server/hub.hpp"
#include "base/json.hpp"
#include "base/log.hpp"
#include "postgres_changes/pg_changes_engine.hpp"
#include "postgres_changes/pg_changes_params.hpp"
#include "server/shard.hpp"
#include "base/uuid.hpp"

#include <algorithm>
#include <atomic>
#include <ctime>
#include <vector>

namespace rt::fanout
{

namespace
{

constexpr size_t kCoalesceBytes = 64 * 1024; /* largest single write we assemble */
constexpr std::string_view kOkEmpty = R"({"status":"ok","response":{}})";
/* messages a channel holds while it is being authorized (Session::Hold) */
constexpr size_t kMaxHeldMessages = 1024;
constexpr size_t kMaxHeldBytes = 8u << 20;
constexpr size_t kMaxSessionHeldBytes = 16u << 20; /* all channels of one socket */
/* a write check that failed (database, policy error) is asked again after this */
constexpr int64_t kWriteRetryMs = 2000;

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

std::string
ErrorReason(std::string_view reason)
{
	std::string out = R"({"status":"error","response":{"reason":)";
	json::AppendQuoted(out, reason);
	out += "}}";
	return out;
}

std::atomic<uint64_t> g_channel_gen{1};

/*
 * What a token refresh reads again: broadcast, and presence when it is on or its
 * read right is known (a denied track learns it too): an old token's answer must
 * not outlive the refresh (PROTOCOL.md 3.6, 5.4).
 */
uint8_t
TokenReadBits(const Channel &ch)
{
	bool presence = ch.presence || ch.read_presence != Perm::kUnknown;
	return kAuthBroadcast | (presence ? kAuthPresence : 0);
}

/* The log code of a failed authorization (PROTOCOL.md 9.2). */
const char *
AuthStatusCode(AuthResult::Status st)
{
	switch (st)
	{
	case AuthResult::Status::kPolicyError:
		return "RlsPolicyError";
	case AuthResult::Status::kQueryCanceled:
		return "QueryCanceled";
	case AuthResult::Status::kMissingPartition:
		return "MissingPartition";
	case AuthResult::Status::kDbUnavailable:
		return "UnableToConnectToProject";
	default:
		return "UnableToSetPolicies";
	}
}

/*
 * A stable id for a postgres_changes entry: identical parameter objects get
 * identical ids (PROTOCOL.md 3.4). FNV-1a over the compact JSON, 27 bits.
 */
uint32_t
ParamsId(std::string_view compact)
{
	uint32_t h = 2166136261u;
	for (unsigned char c : compact)
	{
		h ^= c;
		h *= 16777619u;
	}
	return h & 0x7ffffff;
}

int64_t
NowSeconds()
{
	return static_cast<int64_t>(time(nullptr));
}

} // namespace

Session::Session(Shard &shard, struct lws *wsi, std::shared_ptr<Tenant> tenant, uint64_t id,
                 Vsn vsn, JwtClaims claims, std::string token, std::string headers_json)
    : shard_(shard), wsi_(wsi), tenant_(std::move(tenant)), id_(id), vsn_(vsn),
      claims_(std::move(claims)), token_(std::move(token)), headers_json_(std::move(headers_json)),
      last_rx_ms_(NowMs()), queue_(shard.config().send_queue_bytes, shard.config().send_queue_items,
                                   shard.config().slow_client_close_ms)
{
	tenant_->sessions.fetch_add(1, std::memory_order_relaxed);
}

Session::~Session()
{
	bool pg_changes = false;
	for (auto &[topic, ch] : channels_)
	{
		if (!ch->joining)
		{
			shard_.registry().Remove(ch->routing_key, this);
			Metrics().channels.Sub();
		}
		pg_changes = pg_changes || ch->pg_changes != nullptr;
		if (ch->presence_tracked)
			Untrack(*ch); /* a dropped socket leaves at once: no ghost */
	}
	if (pg_changes && tenant_->changes != nullptr)
		tenant_->changes->Leave(id_, 0);
	if (counted_user_)
		tenant_->users.fetch_sub(1, std::memory_order_relaxed);
	tenant_->sessions.fetch_sub(1, std::memory_order_relaxed);
}

const Channel *
Session::FindChannel(const std::string &topic, uint64_t gen) const
{
	auto it = channels_.find(topic);
	return it != channels_.end() && it->second->gen == gen ? it->second.get() : nullptr;
}

void
Session::WakeWriter()
{
	/*
	 * Writes wait for lws' writable callback rather than going out at once:
	 * by then the loop has usually queued several messages for this socket,
	 * and they leave in one write. Writing inline, per message, measured 3.5x
	 * slower (docs/PERFORMANCE.md).
	 */
	lws_callback_on_writable(wsi_);
}

void
Session::SendControl(std::shared_ptr<const Frame> frame)
{
	Metrics().Out(Primitive::kControl, 1, frame->bytes.size());
	QueuedFrame *q = NewQueuedFrame(std::move(frame));
	bool was_empty = queue_.Empty();
	EnqueueResult r = queue_.PushControl(q);
	DropIfUnused(q);
	if (r == EnqueueResult::kClose)
	{
		RequestClose(LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full");
		return;
	}
	if (was_empty)
		WakeWriter();
}

void
Session::EnqueueFanout(QueuedFrame *f, int64_t now_ms)
{
	if (close_requested_)
		return; /* closing: nothing more for it */
	bool was_empty = queue_.Empty();
	switch (queue_.Push(f, now_ms))
	{
	case EnqueueResult::kQueued:
		if (was_empty)
			WakeWriter();
		break;
	case EnqueueResult::kDropped:
		Metrics().Drop(DropReason::kSlowClient);
		if (queue_.TakeDropNotice())
		{
			Log(LogLevel::kWarning, "shard", "slow client: dropping messages session=%llu",
			    static_cast<unsigned long long>(id_));
			/* tell the client once per episode, on every channel it has */
			for (auto &[topic, ch] : channels_)
				Push(*ch, "system",
				     SystemPayload("system", "error",
				                   "Messages dropped: the client is not reading fast enough",
				                   ch->sub_topic));
		}
		break;
	case EnqueueResult::kClose:
		Log(LogLevel::kWarning, "shard", "slow client closed session=%llu dropped=%llu",
		    static_cast<unsigned long long>(id_),
		    static_cast<unsigned long long>(queue_.dropped()));
		RequestClose(LWS_CLOSE_STATUS_POLICY_VIOLATION, "client too slow");
		break;
	}
}

void
Session::RequestClose(uint16_t code, const char *reason)
{
	if (close_requested_)
		return;
	close_requested_ = true;
	close_code_ = code;
	close_reason_ = reason;
	/*
	 * A peer that stopped reading never makes the socket writable, so a close
	 * done in the writable callback would never happen: let lws kill it on its
	 * next turn instead (the close reason goes out if the socket can take it).
	 */
	lws_close_reason(wsi_, static_cast<enum lws_close_status>(code),
	                 reinterpret_cast<unsigned char *>(const_cast<char *>(reason)), strlen(reason));
	lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

int
Session::OnWritable()
{
	if (close_requested_)
	{
		lws_close_reason(wsi_, static_cast<enum lws_close_status>(close_code_),
		                 reinterpret_cast<unsigned char *>(const_cast<char *>(close_reason_)),
		                 strlen(close_reason_));
		return -1;
	}
	if (WriteSome() < 0)
		return -1;
	if (!queue_.Empty())
		lws_callback_on_writable(wsi_);
	else if (close_when_flushed_ && delayed_replies_ == 0)
	{
		lws_close_reason(wsi_, static_cast<enum lws_close_status>(close_code_),
		                 reinterpret_cast<unsigned char *>(const_cast<char *>(close_reason_)),
		                 strlen(close_reason_));
		return -1;
	}
	return 0;
}

void
Session::CloseWhenFlushed(uint16_t code, const char *reason)
{
	if (close_requested_ || close_when_flushed_)
		return;
	close_when_flushed_ = true;
	close_code_ = code;
	close_reason_ = reason;
	WakeWriter(); /* an empty queue closes on the next writable turn */
}

ShardMetrics &
Session::Metrics()
{
	return tenant_->shard(shard_.index()).metrics;
}

void
Session::ServerDisconnect()
{
	/* every channel hears it, without a channel key (PROTOCOL.md 2.6); then close 1012 */
	static const std::string kPayload =
	    R"({"extension":"system","status":"ok","message":"Server requested disconnect"})";
	for (auto &[topic, ch] : channels_)
		if (!ch->joining)
			Push(*ch, "system", kPayload);
	CloseWhenFlushed(1012, "Server requested disconnect");
}

void
Session::ShutdownTopic(const std::string &topic, std::string_view message)
{
	auto it = channels_.find(topic);
	if (it != channels_.end() && !it->second->joining)
		ShutdownChannel(*it->second, message);
}

int
Session::WriteSome()
{
	if (queue_.Empty())
		return 0;
	/*
	 * Frames are complete WebSocket frames, so they go out as raw bytes
	 * (LWS_WRITE_HTTP bypasses lws' framing). Several small queued frames
	 * are coalesced into one write: one syscall for many messages.
	 */
	QueuedFrame *first = queue_.Front();
	const std::string &fb = first->frame->bytes;
	int n;
	if (head_offset_ > 0 || fb.size() > kCoalesceBytes)
	{
		/*
		 * A large frame goes out in pieces straight from the shared bytes: lws
		 * copies whatever the kernel does not take, so one big write would copy
		 * the frame once per subscriber.
		 */
		size_t piece = std::min(kCoalesceBytes, fb.size() - head_offset_);
		n = lws_write(
		    wsi_, reinterpret_cast<unsigned char *>(const_cast<char *>(fb.data())) + head_offset_,
		    piece, LWS_WRITE_HTTP);
		head_offset_ += piece;
		if (head_offset_ == fb.size())
		{
			head_offset_ = 0;
			queue_.Pop();
		}
	}
	else if (queue_.size() == 1 || fb.size() >= kCoalesceBytes / 2)
	{
		n = lws_write(wsi_, reinterpret_cast<unsigned char *>(const_cast<char *>(fb.data())),
		              fb.size(), LWS_WRITE_HTTP);
		queue_.Pop();
	}
	else
	{
		std::string &buf = shard_.scratch();
		buf.clear();
		while (!queue_.Empty() &&
		       buf.size() + queue_.Front()->frame->bytes.size() <= kCoalesceBytes)
		{
			buf += queue_.Front()->frame->bytes;
			queue_.Pop();
		}
		n = lws_write(wsi_, reinterpret_cast<unsigned char *>(buf.data()), buf.size(),
		              LWS_WRITE_HTTP);
	}
	return n < 0 ? -1 : 0;
}

int
Session::OnReceive(const char *in, size_t len)
{
	last_rx_ms_ = NowMs();
	bool first = lws_is_first_fragment(wsi_);
	bool last = lws_is_final_fragment(wsi_) && lws_remaining_packet_payload(wsi_) == 0;
	size_t limit = static_cast<size_t>(shard_.config().max_frame_bytes);

	if (first && rx_.empty())
		rx_binary_ = lws_frame_is_binary(wsi_);
	if (rx_.size() + len > limit)
	{
		Log(LogLevel::kInfo, "shard", "message over %zu bytes: closing session=%llu", limit,
		    static_cast<unsigned long long>(id_));
		static const char reason[] = "message too big";
		lws_close_reason(wsi_, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
		                 reinterpret_cast<unsigned char *>(const_cast<char *>(reason)),
		                 sizeof(reason) - 1);
		return -1;
	}

	std::string_view msg;
	if (last && rx_.empty())
		msg = std::string_view(in, len); /* whole message in one piece: no copy */
	else
	{
		rx_.append(in, len);
		if (!last)
			return 0;
		msg = rx_;
	}

	Result<Inbound> r =
	    rx_binary_ ? (vsn_ == Vsn::k2 ? DecodeBinary(msg)
	                                  : Result<Inbound>(Error{ErrorCode::kMalformedMessage,
	                                                          "binary frame on vsn 1.0.0"}))
	               : DecodeText(msg, vsn_);
	if (!r.ok())
	{
		/* the first bad frame of a socket is worth a line; a flood of them is not */
		Log(logged_malformed_ ? LogLevel::kDebug : LogLevel::kInfo, "shard",
		    "MalformedWebSocketMessage: %s session=%llu", r.error().message.c_str(),
		    static_cast<unsigned long long>(id_));
		logged_malformed_ = true;
	}
	else
	{
		const std::string &ev = r.value().event;
		Metrics().In(ev == "broadcast"  ? Primitive::kBroadcast
		             : ev == "presence" ? Primitive::kPresence
		                                : Primitive::kControl,
		             msg.size());
		HandleMessage(r.value());
	}
	rx_.clear();
	if (rx_.capacity() > 1 << 20)
		rx_.shrink_to_fit(); /* do not keep a huge buffer for an idle client */
	return 0;
}

void
Session::Reply(const std::optional<std::string> &join_ref, const std::optional<std::string> &ref,
               std::string_view topic, std::string_view payload_json)
{
	SendControl(MakeFrame(Opcode::kText,
	                      EncodeText(vsn_, join_ref, ref, topic, "phx_reply", payload_json)));
}

void
Session::ReplyLater(const std::optional<std::string> &join_ref,
                    const std::optional<std::string> &ref, std::string_view topic,
                    std::string_view payload_json)
{
	auto frame =
	    MakeFrame(Opcode::kText, EncodeText(vsn_, join_ref, ref, topic, "phx_reply", payload_json));
	Metrics().joins_refused.Add(); /* only join refusals are answered later */
	int delay = shard_.config().channel_error_backoff_ms;
	if (delay <= 0)
		SendControl(std::move(frame));
	else if (delayed_replies_ >= kMaxDelayedReplies)
		/* a client piling up refused joins gets no more answers: its joins time out */
		Log(LogLevel::kInfo, "shard", "too many refused joins pending: not answered session=%llu",
		    static_cast<unsigned long long>(id_));
	else
	{
		delayed_replies_++;
		shard_.SendLater(id_, std::move(frame), NowMs() + delay);
	}
}

void
Session::Push(const Channel &ch, std::string_view event, std::string_view payload_json)
{
	SendControl(MakeFrame(
	    Opcode::kText, EncodeText(vsn_, ch.join_ref, std::nullopt, ch.topic, event, payload_json)));
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
			           ErrorReason("TopicNameTooLong: a topic is at most 255 bytes"));
		return;
	}
	if (m.topic == "phoenix")
	{
		if (m.event == "heartbeat")
			Reply(std::nullopt, m.ref, m.topic, kOkEmpty);
		else
			Reply(std::nullopt, m.ref, m.topic, ErrorReason("unmatched topic"));
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
		Reply(std::nullopt, m.ref, m.topic, ErrorReason("unmatched topic"));
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
	if (m.event == "broadcast")
		HandleBroadcast(m, ch);
	else if (m.event == "access_token")
		HandleAccessToken(m, ch);
	else if (m.event == "presence")
		HandlePresence(m, ch);
	else
		Log(LogLevel::kDebug, "shard", "ignored event on %s", m.topic.c_str());
}

void
Session::HandleJoin(Inbound &m)
{
	constexpr std::string_view kPrefix = "realtime:";
	if (!m.topic.starts_with(kPrefix))
	{
		Reply(std::nullopt, m.ref, m.topic, ErrorReason("unmatched topic"));
		return;
	}
	std::string sub_topic = m.topic.substr(kPrefix.size());
	if (sub_topic.empty())
	{
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("TopicNameRequired: You must provide a topic name"));
		return;
	}

	/*
	 * A reload or the shutdown is draining this socket's tenant ("Server
	 * requested disconnect" is out, the close waits for its queue): a join now
	 * would run on components being stopped (PROTOCOL.md 3.3 step 2). Answered
	 * at once, so the close is not put off by the join-error back-off.
	 */
	if (tenant_->draining.load(std::memory_order_acquire))
	{
		Reply(m.join_ref, m.ref, m.topic,
		      ErrorReason("RealtimeRestarting: Realtime is restarting, please standby"));
		return;
	}

	rapidjson::Document doc;
	json::Parse(doc, m.payload); /* DecodeText made sure it is an object */
	const rapidjson::Value *config = json::Member(doc, "config");
	const rapidjson::Value *broadcast = config ? json::Member(*config, "broadcast") : nullptr;
	const rapidjson::Value *presence = config ? json::Member(*config, "presence") : nullptr;

	/* a second join of the same topic replaces the first (Phoenix) */
	auto old = channels_.find(m.topic);
	if (old != channels_.end())
		CloseChannel(*old->second);

	/* the tenant's limits (PROTOCOL.md 3.3 steps 5 and 6) */
	Tenant &tenant = *tenant_;
	const TenantConfig &cfg = tenant.config();
	if (cfg.suspended)
	{
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("RealtimeDisabledForTenant: Realtime disabled for this tenant"));
		return;
	}
	if (!counted_user_ && tenant.users.load(std::memory_order_relaxed) >=
	                          static_cast<int64_t>(cfg.max_concurrent_users))
	{
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("ConnectionRateLimitReached: Too many connected users"));
		return;
	}
	if (tenant.join_rate.Average(NowMs()) >= cfg.max_joins_per_second)
	{
		/* the socket goes too, once the refusal is out (close 1001: clients reconnect later) */
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("ClientJoinRateLimitReached: Too many joins per second"));
		CloseWhenFlushed(LWS_CLOSE_STATUS_GOINGAWAY, "Too many joins per second");
		return;
	}
	tenant.join_rate.Add(NowMs());

	if (channels_.size() >= static_cast<size_t>(tenant_->config().max_channels_per_client))
	{
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("ChannelRateLimitReached: Too many channels"));
		return;
	}

	/* the channel's token: the join's, else the socket's (PROTOCOL.md 3.2) */
	std::optional<std::string_view> tok = json::String(doc, "user_token");
	if (!tok)
		tok = json::String(doc, "access_token");
	std::string token = (tok && !tok->starts_with("sb_")) ? std::string(*tok) : token_;
	/* token_ stays the connect token: a join's token belongs to its channel only */
	Result<JwtClaims> claims = VerifyJwt(token, tenant_->config().jwt_keys, NowSeconds());
	if (!claims.ok())
	{
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason(std::string(JwtErrorPrefix(claims.error().code)) + ": " +
		                       claims.error().message));
		return;
	}

	bool is_private = config ? json::Bool(*config, "private").value_or(false) : false;

	auto ch = std::make_unique<Channel>();
	ch->topic = m.topic;
	ch->sub_topic = sub_topic;
	ch->routing_key = tenant_->RoutingKey(sub_topic, is_private);
	ch->join_ref = m.join_ref;
	ch->join_msg_ref = m.ref;
	ch->is_private = is_private;
	if (broadcast)
	{
		ch->self = json::Bool(*broadcast, "self").value_or(false);
		ch->ack = json::Bool(*broadcast, "ack").value_or(false);
	}
	if (presence)
	{
		ch->presence = json::Bool(*presence, "enabled").value_or(false);
		if (std::optional<std::string_view> key = json::String(*presence, "key"))
			ch->presence_key = std::string(*key);
	}
	if (ch->presence_key.empty())
		ch->presence_key = NewUuid(); /* upstream makes one per channel */

	/* echo every postgres_changes entry with its id, keys unchanged (PROTOCOL.md 3.4) */
	std::string response = R"({"status":"ok","response":{"postgres_changes":[)";
	const rapidjson::Value *pc = config ? json::Member(*config, "postgres_changes") : nullptr;
	if (pc && pc->IsArray())
	{
		for (const rapidjson::Value &entry : pc->GetArray())
		{
			if (entry.IsNull())
				continue; /* null entries are dropped (PROTOCOL.md 3.2) */
			if (!ch->pc_error)
			{
				/* upstream's words, never retried (PROTOCOL.md 6.6) */
				Result<PgChangesParams> parsed = ParsePgChangesParams(entry);
				if (!parsed.ok())
					ch->pc_error = parsed.error().message;
				else if (std::optional<Error> bad = CheckPgChangesText(parsed.value()))
					ch->pc_error = bad->message;
				else
					ch->pg_entries.push_back(PgJoinEntry{0, std::move(parsed.value())});
			}
			if (!entry.IsObject())
				continue;
			std::string compact = json::Stringify(entry);
			if (ch->any_changes)
				response += ',';
			ch->any_changes = true;
			uint32_t id = ParamsId(compact);
			if (!ch->pc_error)
				ch->pg_entries.back().id = id;
			response += R"({"id":)";
			response += std::to_string(id);
			if (compact.size() > 2)
			{
				response += ',';
				response.append(compact, 1, compact.size() - 1);
			}
			else
				response += '}';
		}
	}
	response += "]}}";
	ch->join_response = std::move(response);
	if (ch->pc_error)
		ch->pg_entries.clear();

	Channel *c = ch.get();
	c->token = std::move(token);
	c->claims = std::move(claims.value());
	c->gen = g_channel_gen.fetch_add(1, std::memory_order_relaxed);
	if (!is_private)
	{
		channels_.emplace(m.topic, std::move(ch));
		FinishJoin(*c);
		return;
	}
	if (tenant_->authorizer == nullptr)
	{
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("UnableToConnectToProject: Realtime was unable to connect to the "
		                       "project database"));
		return;
	}
	if (sub_topic.find('\0') != std::string::npos)
	{
		/* no database text holds a NUL: it would end the topic early there */
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("Unauthorized: You do not have permissions to read from this "
		                       "Channel topic: " +
		                       sub_topic));
		return;
	}
	/* private: the read check decides (PROTOCOL.md 8); presence only if it is on now */
	c->read_broadcast = c->read_presence = Perm::kUnknown;
	c->write_broadcast = c->write_presence = Perm::kUnknown;
	c->joining = true;
	channels_.emplace(m.topic, std::move(ch));
	Authorize(*c, kAuthBroadcast | (c->presence ? kAuthPresence : 0), 0);
}

void
Session::Authorize(Channel &ch, uint8_t read, uint8_t write)
{
	AuthRequest req;
	req.sub_topic = ch.sub_topic;
	req.role = ch.claims.role;
	req.claims_json = ch.claims.claims_json;
	req.sub = ch.claims.sub;
	req.headers_json = headers_json_;
	req.read = read;
	req.write = write;
	Hub &hub = shard_.hub();
	int shard = shard_.index();
	uint64_t session = id_, gen = ch.gen, seq = ch.auth_seq;
	std::string topic = ch.topic;
	req.done = [&hub, shard, session, gen, seq, read, write, topic](AuthResult r)
	{
		hub.PostTask(shard,
		             [session, gen, seq, read, write, topic, r = std::move(r)](Shard &sh)
		             {
			             if (Session *s = sh.FindSession(session))
				             s->OnAuthorized(topic, gen, seq, read, write, r);
		             });
	};
	tenant_->authorizer->Submit(std::move(req));
}

void
Session::OnAuthorized(const std::string &topic, uint64_t gen, uint64_t seq, uint8_t read,
                      uint8_t write, const AuthResult &r)
{
	auto it = channels_.find(topic);
	if (it == channels_.end() || it->second->gen != gen)
		return; /* left, or joined again since */
	Channel &ch = *it->second;
	if (ch.joining)
		OnJoinChecked(ch, r);
	else if (write != 0)
	{
		ch.checking = false;
		if (seq == ch.auth_seq)
		{
			bool ok = r.status == AuthResult::Status::kOk;
			if (!ok)
			{
				Log(LogLevel::kWarning, "auth", "%s: write check failed topic=%s: %s",
				    AuthStatusCode(r.status), ch.sub_topic.c_str(), r.detail.c_str());
				ch.write_failed_ms = NowMs();
			}
			Perm p = !ok ? Perm::kFailed : Perm::kNo;
			if (write & kAuthBroadcast)
				ch.write_broadcast = ok && (r.write_ok & kAuthBroadcast) ? Perm::kYes : p;
			if (write & kAuthPresence)
			{
				ch.write_presence = ok && (r.write_ok & kAuthPresence) ? Perm::kYes : p;
				if (ok && ch.read_presence == Perm::kUnknown)
					ch.read_presence = (r.read_ok & kAuthPresence) ? Perm::kYes : Perm::kNo;
			}
		}
		/* else: asked with an older token; the held messages ask again */
	}
	else
	{
		ch.token_check_out = false;
		if (seq == ch.auth_seq)
			OnTokenChecked(ch, r, read);
		else
		{
			/* refreshed again meanwhile: one check for the newest claims */
			ch.token_check_out = true;
			Authorize(ch, TokenReadBits(ch), 0);
		}
	}
	ReleaseHeld(topic);
}

void
Session::OnJoinChecked(Channel &ch, const AuthResult &r)
{
	ch.joining = false;
	std::string reason;
	switch (r.status)
	{
	case AuthResult::Status::kOk:
		break;
	case AuthResult::Status::kDbUnavailable:
		reason = "UnableToConnectToProject: Realtime was unable to connect to the project database";
		break;
	case AuthResult::Status::kQueryCanceled:
		reason = "QueryCanceled: " + r.detail;
		break;
	case AuthResult::Status::kMissingPartition:
		reason = "MissingPartition: Realtime was unable to find the expected messages partition";
		break;
	default:
		Log(LogLevel::kWarning, "auth", "%s: read check topic=%s: %s", AuthStatusCode(r.status),
		    ch.sub_topic.c_str(), r.detail.c_str());
		break; /* a policy that raises refuses (PROTOCOL.md 3.5) */
	}
	if (r.status == AuthResult::Status::kOk)
	{
		ch.read_broadcast = (r.read_ok & kAuthBroadcast) ? Perm::kYes : Perm::kNo;
		if (ch.presence)
			ch.read_presence = (r.read_ok & kAuthPresence) ? Perm::kYes : Perm::kNo;
	}
	bool readable = ch.read_broadcast == Perm::kYes || ch.read_presence == Perm::kYes;
	if (reason.empty() && !readable)
		reason = "Unauthorized: You do not have permissions to read from this Channel topic: " +
		         ch.sub_topic;
	if (!reason.empty())
	{
		ReplyLater(ch.join_ref, ch.join_msg_ref, ch.topic, ErrorReason(reason));
		/* never joined: no phx_close; messages it held are answered as for no channel */
		std::deque<Inbound> held = std::move(ch.held);
		held_total_ -= ch.held_bytes;
		std::string topic = ch.topic;
		channels_.erase(topic);
		for (Inbound &m : held)
			HandleMessage(m);
		return;
	}
	FinishJoin(ch);
}

void
Session::OnTokenChecked(Channel &ch, const AuthResult &r, uint8_t read)
{
	std::string why;
	switch (r.status)
	{
	case AuthResult::Status::kOk:
		break;
	case AuthResult::Status::kQueryCanceled:
		why = "Query was cancelled, please try again";
		break;
	case AuthResult::Status::kPolicyError:
		Log(LogLevel::kWarning, "auth", "RlsPolicyError: read check topic=%s: %s",
		    ch.sub_topic.c_str(), r.detail.c_str());
		why = "You do not have permissions to read from this Channel topic: " + ch.sub_topic;
		break;
	default:
		why = "Realtime was unable to connect to the project database";
		break;
	}
	if (why.empty())
	{
		Perm b = (r.read_ok & kAuthBroadcast) ? Perm::kYes : Perm::kNo;
		/* not asked: it was unknown at the refresh, anything since came with these claims */
		Perm p = ch.read_presence;
		if (read & kAuthPresence)
			p = (r.read_ok & kAuthPresence) ? Perm::kYes : Perm::kNo;
		if ((ch.read_broadcast == Perm::kYes && b != Perm::kYes) ||
		    (ch.read_presence == Perm::kYes && p != Perm::kYes))
			why = "You no longer have permission to read from this Channel topic: " + ch.sub_topic;
		else if (b != Perm::kYes && p != Perm::kYes)
			why = "You do not have permissions to read from this Channel topic: " + ch.sub_topic;
		ch.read_broadcast = b;
		ch.read_presence = p;
	}
	if (!why.empty())
		ShutdownChannel(ch, why);
}

void
Session::FinishJoin(Channel &ch)
{
	Channel *c = &ch;
	const std::string sub_topic = c->sub_topic;
	shard_.registry().Add(c->routing_key, this, c);
	if (!counted_user_)
	{
		counted_user_ = true; /* a connected user from its first join until it closes */
		tenant_->users.fetch_add(1, std::memory_order_relaxed);
	}
	Metrics().joins_ok.Add();
	Metrics().channels.Add();
	Reply(c->join_ref, c->join_msg_ref, c->topic, c->join_response);
	c->join_response.clear();
	c->join_response.shrink_to_fit();
	if (c->presence && c->Reads(DeliveryKind::kPresence))
	{
		if (!CountPresenceEvent())
		{
			ShutdownChannel(*c, "Too many presence messages per second");
			return;
		}
		Push(*c, "presence_state", tenant_->presence.State(c->routing_key));
	}
	if (!c->any_changes)
		return;
	PgChangesEngine *engine = tenant_->changes;
	if (!c->pc_error && engine == nullptr)
		c->pc_error = "Postgres Changes are not available: this server runs without a database "
		              "and ring (--db, --ring-path)";
	if (c->pc_error)
	{
		Push(*c, "system", SystemPayload("postgres_changes", "error", *c->pc_error, sub_topic));
		c->pc_error.reset();
		return;
	}
	auto ref = std::make_shared<ChannelRef>();
	ref->shard = shard_.index();
	ref->session_id = id_;
	ref->gen = c->gen;
	ref->topic = c->topic;
	c->pg_changes = ref;
	PgJoinRequest req;
	req.channel = std::move(ref);
	req.sub_topic = sub_topic;
	req.role = c->claims.role;
	req.claims_json = c->claims.claims_json;
	req.sub = c->claims.sub;
	req.entries = c->pg_entries;
	engine->Join(std::move(req));
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
	std::deque<Inbound> held = std::move(it->second->held);
	it->second->held.clear();
	held_total_ -= it->second->held_bytes;
	it->second->held_bytes = 0;
	for (Inbound &m : held)
		HandleMessage(m);
}

void
Session::CloseChannel(Channel &ch)
{
	/* phx_close carries the join_ref as both join_ref and ref (PROTOCOL.md 2.2) */
	SendControl(MakeFrame(Opcode::kText,
	                      EncodeText(vsn_, ch.join_ref, ch.join_ref, ch.topic, "phx_close", "{}")));
	shard_.registry().Remove(ch.routing_key, this);
	Metrics().channels.Sub();
	if (ch.presence_tracked)
		Untrack(ch);
	if (ch.pg_changes != nullptr && tenant_->changes != nullptr)
		tenant_->changes->Leave(id_, ch.gen);
	/* ended while a check was out: what it held is answered as for a channel that is gone */
	std::deque<Inbound> held = std::move(ch.held);
	held_total_ -= ch.held_bytes;
	std::string topic = ch.topic;
	channels_.erase(topic); /* ch is gone after this line */
	for (Inbound &m : held)
		HandleMessage(m);
}

void
Session::ShutdownChannel(Channel &ch, std::string_view message)
{
	Push(ch, "system", SystemPayload("system", "error", message, ch.sub_topic));
	CloseChannel(ch);
}

void
Session::ExpireChannels(int64_t now_s)
{
	std::vector<Channel *> expired;
	for (auto &[topic, ch] : channels_)
	{
		if (ch->claims.exp <= now_s && !ch->joining)
			expired.push_back(ch.get());
	}
	for (Channel *ch : expired)
		ShutdownChannel(*ch, "Token has expired " + std::to_string(now_s - ch->claims.exp) +
		                         " seconds ago");
}

void
Session::HandleLeave(Inbound &m, Channel *ch)
{
	if (ch == nullptr)
	{
		Reply(std::nullopt, m.ref, m.topic, kOkEmpty);
		return;
	}
	Reply(ch->join_ref, m.ref, m.topic, kOkEmpty);
	CloseChannel(*ch);
}

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
	if (ch.is_private && tenant_->authorizer != nullptr)
	{
		/*
		 * Private: read again with the new claims (the channel keeps its
		 * current rights until the answer); writes are asked again lazily.
		 */
		ch.auth_seq++;
		ch.write_broadcast = ch.write_presence = Perm::kUnknown;
		/* one check out at a time: a flood of refreshes must not flood the database */
		if (!ch.token_check_out)
		{
			ch.token_check_out = true;
			Authorize(ch, TokenReadBits(ch), 0);
		}
	}
	/* postgres_changes follow the new claims: RLS may now show other rows */
	if (ch.pg_changes != nullptr && tenant_->changes != nullptr)
	{
		PgJoinRequest req;
		req.channel = ch.pg_changes;
		req.sub_topic = ch.sub_topic;
		req.role = ch.claims.role;
		req.claims_json = ch.claims.claims_json;
		req.sub = ch.claims.sub;
		req.entries = ch.pg_entries;
		tenant_->changes->Rejoin(std::move(req));
	}
}

/*
 * Whether a private channel may write for ext now; false also when a check
 * was started (m is then held until it answers) or the answer was no.
 */
bool
Session::MayWrite(Inbound &m, Channel &ch, uint8_t ext)
{
	if (!ch.is_private)
		return true;
	Perm &p = ext == kAuthPresence ? ch.write_presence : ch.write_broadcast;
	if (p == Perm::kFailed && NowMs() - ch.write_failed_ms >= kWriteRetryMs)
		p = Perm::kUnknown;
	if (p != Perm::kUnknown)
		return p == Perm::kYes;
	if (tenant_->authorizer == nullptr)
		return false;
	/* presence also needs its read right to see the diffs (PROTOCOL.md 5.4) */
	uint8_t read = ext == kAuthPresence && ch.read_presence == Perm::kUnknown ? kAuthPresence : 0;
	ch.checking = true;
	Authorize(ch, read, ext);
	Hold(ch, m);
	return false;
}

void
Session::HandleBroadcast(Inbound &m, Channel &ch)
{
	/* a private channel without the right drops silently, even with ack (PROTOCOL.md 4.2) */
	if (!MayWrite(m, ch, kAuthBroadcast))
	{
		if (!ch.checking)
			Metrics().Drop(DropReason::kNotAuthorized);
		return;
	}
	const TenantConfig &cfg = tenant_->config();
	size_t size = m.user_broadcast ? m.user_payload.size() : m.payload.size();
	if (size > static_cast<size_t>(cfg.max_payload_bytes))
	{
		Metrics().Drop(DropReason::kPayloadTooLarge);
		if (ch.ack)
			Reply(ch.join_ref, m.ref, m.topic,
			      R"({"status":"error","response":"payload_size_exceeded"})");
		return;
	}

	std::shared_ptr<Delivery> d = m.user_broadcast
	                                  ? MakeUserBroadcast(ch.routing_key, ch.topic, m.user_event,
	                                                      m.encoding, m.user_payload, "")
	                                  : MakeTextBroadcast(ch.routing_key, ch.topic, m.payload);
	d->exclude_session = ch.self ? 0 : id_;
	d->tenant = tenant_;
	shard_.hub().Publish(d, shard_.index());
	if (ch.ack)
		Reply(ch.join_ref, m.ref, m.topic, kOkEmpty);
}

void
Session::HandlePresence(Inbound &m, Channel &ch)
{
	rapidjson::Document doc;
	json::Parse(doc, m.payload);
	std::optional<std::string_view> ev = json::String(doc, "event");
	if (!ev)
	{
		Reply(ch.join_ref, m.ref, m.topic, kOkEmpty); /* no event: nothing to do */
		return;
	}
	std::string event(*ev);
	for (char &c : event)
		c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
	/* a private track first learns its rights; this push waits for them (PROTOCOL.md 5.4) */
	if (event == "track" && ch.is_private)
	{
		bool ask =
		    ch.write_presence == Perm::kUnknown ||
		    (ch.write_presence == Perm::kFailed && NowMs() - ch.write_failed_ms >= kWriteRetryMs);
		if (ask && !MayWrite(m, ch, kAuthPresence) && ch.checking)
			return;
	}
	/* the client's window (PROTOCOL.md 5.5): more pushes end the channel, no reply */
	const TenantConfig &cfg = tenant_->config();
	int64_t now = NowMs();
	if (ch.presence_window_end_ms == 0 || now > ch.presence_window_end_ms)
	{
		ch.presence_window_end_ms = now + cfg.client_presence_window_ms;
		ch.presence_window_count = 0;
	}
	if (ch.presence_window_count >= cfg.max_client_presence_events_per_window)
	{
		ShutdownChannel(ch, "Client presence rate limit exceeded");
		return;
	}
	ch.presence_window_count++;
	if (event == "track")
	{
		const rapidjson::Value *payload = json::Member(doc, "payload");
		rapidjson::Value empty(rapidjson::kObjectType);
		if (payload == nullptr || payload->IsNull())
			payload = &empty;
		if (!payload->IsObject())
		{
			Reply(
			    ch.join_ref, m.ref, m.topic,
			    R"({"status":"error","response":{"reason":"Presence track payload must be a map"}})");
			return;
		}
		Track(m, ch, *payload);
	}
	else if (event == "untrack")
	{
		if (ch.presence_tracked)
			Untrack(ch);
		Reply(ch.join_ref, m.ref, m.topic, kOkEmpty);
	}
	else
	{
		Log(LogLevel::kInfo, "shard", "UnknownPresenceEvent: %s session=%llu", event.c_str(),
		    static_cast<unsigned long long>(id_));
		Reply(ch.join_ref, m.ref, m.topic, R"({"status":"error","response":{}})");
	}
}

void
Session::Track(const Inbound &m, Channel &ch, const rapidjson::Value &payload)
{
	std::string meta = json::Stringify(payload);
	if (meta.size() + ch.presence_key.size() >
	    static_cast<size_t>(tenant_->config().max_payload_bytes))
	{
		ShutdownChannel(ch, "Track message size exceeded");
		return;
	}
	if (ch.is_private && ch.write_presence != Perm::kYes)
	{
		/* refused, or the check failed (HandlePresence asked already) */
		Reply(ch.join_ref, m.ref, m.topic, R"({"status":"error","response":{}})");
		return;
	}
	if (!CountPresenceEvent())
	{
		ShutdownChannel(ch, "Too many presence messages per second");
		return;
	}
	std::string diff = tenant_->presence.Track(ch.routing_key, ch.presence_key, id_, ch.gen, meta);
	ch.presence = true; /* a track turns presence on for the channel (PROTOCOL.md 5.1) */
	ch.presence_tracked = true;
	Reply(ch.join_ref, m.ref, m.topic, kOkEmpty);
	if (!diff.empty())
	{
		std::shared_ptr<Delivery> d =
		    MakeTextEvent(ch.routing_key, ch.topic, "presence_diff", diff);
		d->kind = DeliveryKind::kPresence;
		d->tenant = tenant_;
		shard_.hub().Publish(d, shard_.index());
	}
}

/* Count one presence event for the tenant; false when its average is over the limit. */
bool
Session::CountPresenceEvent()
{
	RateCounter &rate = tenant_->presence_rate;
	int64_t now = NowMs();
	if (rate.Average(now) > tenant_->config().max_presence_events_per_second)
		return false;
	rate.Add(now);
	return true;
}

void
Session::Untrack(Channel &ch)
{
	ch.presence_tracked = false;
	std::string diff = tenant_->presence.Untrack(ch.routing_key, id_, ch.gen);
	if (diff.empty())
		return;
	std::shared_ptr<Delivery> d = MakeTextEvent(ch.routing_key, ch.topic, "presence_diff", diff);
	d->kind = DeliveryKind::kPresence;
	d->tenant = tenant_;
	shard_.hub().Publish(d, shard_.index());
}

} // namespace rt::fanout
