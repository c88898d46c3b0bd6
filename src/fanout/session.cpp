/*
 * session.cpp: Phoenix channel protocol for one connection (PROTOCOL.md 2-4).
 *
 * Shard thread only. Inbound messages are decoded, dispatched by event and
 * answered through the connection's bounded send queue; broadcasts are
 * serialized once here and handed to the Hub for every shard.
 */
#include "session.hpp"

#include "broadcast.hpp"
#include "hub.hpp"
#include "json.hpp"
#include "log.hpp"
#include "pg_changes_engine.hpp"
#include "pg_changes_params.hpp"
#include "shard.hpp"

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

Session::Session(Shard &shard, struct lws *wsi, uint64_t id, Vsn vsn, JwtClaims claims,
                 std::string token)
    : shard_(shard), wsi_(wsi), id_(id), vsn_(vsn), claims_(std::move(claims)),
      token_(std::move(token)), last_rx_ms_(NowMs()),
      queue_(shard.config().send_queue_bytes, shard.config().send_queue_items,
             shard.config().slow_client_close_ms)
{
}

Session::~Session()
{
	bool pg_changes = false;
	for (auto &[topic, ch] : channels_)
	{
		shard_.registry().Remove(ch->routing_key, this);
		pg_changes = pg_changes || ch->pg_changes != nullptr;
	}
	if (pg_changes && shard_.hub().changes != nullptr)
		shard_.hub().changes->Leave(id_, 0);
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
	return 0;
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
		HandleMessage(r.value());
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
	if (m.event == "phx_join")
	{
		HandleJoin(m);
		return;
	}
	auto it = channels_.find(m.topic);
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
	if (m.event == "broadcast")
		HandleBroadcast(m, ch);
	else if (m.event == "access_token")
		HandleAccessToken(m, ch);
	else if (m.event == "presence")
		/* presence arrives with its own issue; refuse honestly until then */
		Reply(ch.join_ref, m.ref, m.topic, R"({"status":"error","response":{}})");
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

	rapidjson::Document doc;
	json::Parse(doc, m.payload); /* DecodeText made sure it is an object */
	const rapidjson::Value *config = json::Member(doc, "config");
	const rapidjson::Value *broadcast = config ? json::Member(*config, "broadcast") : nullptr;
	const rapidjson::Value *presence = config ? json::Member(*config, "presence") : nullptr;

	/* a second join of the same topic replaces the first (Phoenix) */
	auto old = channels_.find(m.topic);
	if (old != channels_.end())
		CloseChannel(*old->second);

	if (channels_.size() >= static_cast<size_t>(shard_.config().max_channels_per_client))
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
	Result<JwtClaims> claims = VerifyJwt(token, shard_.config().jwt_secret, NowSeconds());
	if (!claims.ok())
	{
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason(std::string(JwtErrorPrefix(claims.error().code)) + ": " +
		                       claims.error().message));
		return;
	}

	bool is_private = config ? json::Bool(*config, "private").value_or(false) : false;
	if (is_private)
	{
		/* private channels need RLS authorization, which is not built yet: refuse */
		ReplyLater(m.join_ref, m.ref, m.topic,
		           ErrorReason("Unauthorized: You do not have permissions to read from this "
		                       "Channel topic: " +
		                       sub_topic));
		return;
	}

	auto ch = std::make_unique<Channel>();
	ch->topic = m.topic;
	ch->sub_topic = sub_topic;
	ch->routing_key = RoutingKey(sub_topic, is_private);
	ch->join_ref = m.join_ref;
	ch->is_private = is_private;
	if (broadcast)
	{
		ch->self = json::Bool(*broadcast, "self").value_or(false);
		ch->ack = json::Bool(*broadcast, "ack").value_or(false);
	}
	if (presence)
		ch->presence = json::Bool(*presence, "enabled").value_or(false);

	/* echo every postgres_changes entry with its id, keys unchanged (PROTOCOL.md 3.4) */
	std::string response = R"({"status":"ok","response":{"postgres_changes":[)";
	bool any_changes = false;
	const rapidjson::Value *pc = config ? json::Member(*config, "postgres_changes") : nullptr;
	std::optional<std::string> pc_error; /* the first entry's parameter error */
	std::vector<PgJoinEntry> pc_entries;
	if (pc && pc->IsArray())
	{
		for (const rapidjson::Value &entry : pc->GetArray())
		{
			if (entry.IsNull())
				continue; /* null entries are dropped (PROTOCOL.md 3.2) */
			if (!pc_error)
			{
				/* upstream's words, never retried (PROTOCOL.md 6.6) */
				Result<PgChangesParams> parsed = ParsePgChangesParams(entry);
				if (!parsed.ok())
					pc_error = parsed.error().message;
				else if (std::optional<Error> bad = CheckPgChangesText(parsed.value()))
					pc_error = bad->message;
				else
					pc_entries.push_back(PgJoinEntry{0, std::move(parsed.value())});
			}
			if (!entry.IsObject())
				continue;
			std::string compact = json::Stringify(entry);
			if (any_changes)
				response += ',';
			any_changes = true;
			uint32_t id = ParamsId(compact);
			if (!pc_error)
				pc_entries.back().id = id;
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

	Channel *c = ch.get();
	c->token = std::move(token);
	c->claims = std::move(claims.value());
	c->gen = g_channel_gen.fetch_add(1, std::memory_order_relaxed);
	channels_.emplace(m.topic, std::move(ch));
	shard_.registry().Add(c->routing_key, this, c);
	Reply(c->join_ref, m.ref, m.topic, response);
	if (c->presence)
		Push(*c, "presence_state", "{}");
	if (!any_changes)
		return;
	PgChangesEngine *engine = shard_.hub().changes;
	if (!pc_error && engine == nullptr)
		pc_error = "Postgres Changes are not available: this server runs without a database "
		           "and ring (--db, --ring-path)";
	if (pc_error)
	{
		Push(*c, "system", SystemPayload("postgres_changes", "error", *pc_error, sub_topic));
		return;
	}
	auto ref = std::make_shared<ChannelRef>();
	ref->shard = shard_.index();
	ref->session_id = id_;
	ref->gen = c->gen;
	ref->topic = c->topic;
	c->pg_changes = ref;
	c->pg_entries = pc_entries;
	PgJoinRequest req;
	req.channel = std::move(ref);
	req.sub_topic = sub_topic;
	req.role = c->claims.role;
	req.claims_json = c->claims.claims_json;
	req.sub = c->claims.sub;
	req.entries = std::move(pc_entries);
	engine->Join(std::move(req));
}

void
Session::CloseChannel(Channel &ch)
{
	/* phx_close carries the join_ref as both join_ref and ref (PROTOCOL.md 2.2) */
	SendControl(MakeFrame(Opcode::kText,
	                      EncodeText(vsn_, ch.join_ref, ch.join_ref, ch.topic, "phx_close", "{}")));
	shard_.registry().Remove(ch.routing_key, this);
	if (ch.pg_changes != nullptr && shard_.hub().changes != nullptr)
		shard_.hub().changes->Leave(id_, ch.gen);
	channels_.erase(ch.topic); /* ch is gone after this line */
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
		if (ch->claims.exp <= now_s)
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
	Result<JwtClaims> claims = VerifyJwt(*tok, shard_.config().jwt_secret, NowSeconds());
	if (!claims.ok())
	{
		ShutdownChannel(ch, claims.error().message);
		return;
	}
	ch.token = std::string(*tok);
	ch.claims = std::move(claims.value());
	/* postgres_changes follow the new claims: RLS may now show other rows */
	if (ch.pg_changes != nullptr && shard_.hub().changes != nullptr)
	{
		PgJoinRequest req;
		req.channel = ch.pg_changes;
		req.sub_topic = ch.sub_topic;
		req.role = ch.claims.role;
		req.claims_json = ch.claims.claims_json;
		req.sub = ch.claims.sub;
		req.entries = ch.pg_entries;
		shard_.hub().changes->Rejoin(std::move(req));
	}
}

void
Session::HandleBroadcast(Inbound &m, Channel &ch)
{
	const Config &cfg = shard_.config();
	size_t size = m.user_broadcast ? m.user_payload.size() : m.payload.size();
	if (size > static_cast<size_t>(cfg.max_payload_bytes))
	{
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
	shard_.hub().Publish(d, shard_.index());
	if (ch.ack)
		Reply(ch.join_ref, m.ref, m.topic, kOkEmpty);
}

} // namespace rt::fanout
