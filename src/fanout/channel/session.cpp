/*
 * session.cpp: one connection (PROTOCOL.md 2): receiving and decoding
 * frames, the bounded send queue and its coalesced writes, replies, closing.
 * What the messages mean is session_channels.cpp's.
 *
 * Shard thread only.
 */
#include "channel/session.hpp"

#include "base/json.hpp"
#include "base/log.hpp"
#include "server/hub.hpp"
#include "server/shard.hpp"
#include "tenancy/tenant.hpp"

#include <algorithm>
#include <atomic>
#include <utility>
#include <ctime>
#include <vector>

namespace rt::fanout
{

Session::Session(Shard &shard, struct lws *wsi, std::shared_ptr<Tenant> tenant, uint64_t id,
                 Vsn vsn, JwtClaims claims, std::string token, std::string headers_json)
    : shard_(shard), wsi_(wsi), tenant_(std::move(tenant)), id_(id), vsn_(vsn),
      claims_(std::move(claims)), token_(std::move(token)), headers_json_(std::move(headers_json)),
      last_rx_ms_(NowMs()), queue_(shard.config().send_queue_bytes, shard.config().send_queue_items,
                                   shard.config().slow_client_close_ms)
{
	tenant_->sessions.fetch_add(1, std::memory_order_relaxed);
}
const Channel *
Session::FindChannel(const std::string &topic, uint64_t gen) const
{
	auto it = channels_.find(topic);
	return it != channels_.end() && it->second->gen == gen ? it->second.get() : nullptr;
}

Channel *
Session::FindChannel(const std::string &topic, uint64_t gen)
{
	return const_cast<Channel *>(std::as_const(*this).FindChannel(topic, gen));
}

int
Session::shard_index() const
{
	return shard_.index();
}

ChannelHost::Poster
Session::MakePoster()
{
	Hub &hub = shard_.hub();
	int shard = shard_.index();
	uint64_t session = id_;
	return [&hub, shard, session](std::function<void(ChannelHost &)> fn)
	{
		hub.PostTask(shard,
		             [session, fn = std::move(fn)](Shard &sh)
		             {
			             if (Session *s = sh.FindSession(session))
				             fn(*s);
		             });
	};
}

void
Session::Publish(std::shared_ptr<Delivery> d)
{
	d->tenant = tenant_;
	shard_.hub().Publish(d, shard_.index());
}

void
Session::WakeWriter()
{
	/*
	 * Writes wait for the end of the loop turn (Shard::FlushWrites, before libev polls
	 * again): everything the turn queued for this socket (a drained inbox batch, replies to
	 * what the client sent) leaves in one write. Writing inline, per message, measured 3.5x
	 * slower; asking lws for a writable callback instead costs a loop turn and two epoll_ctl
	 * per socket (docs/PERFORMANCE.md).
	 */
	if (!write_marked_)
	{
		write_marked_ = true;
		shard_.MarkForWrite(id_);
	}
}

void
Session::FlushWrites()
{
	write_marked_ = false;
	if (close_requested_ || close_when_flushed_ || lws_partial_buffered(wsi_))
	{
		/* a close goes through the writable callback; lws still holds bytes: wait for it */
		lws_callback_on_writable(wsi_);
		return;
	}
	if (WriteSome() < 0)
	{
		RequestClose(LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "write failed");
		return;
	}
	if (!queue_.Empty())
		lws_callback_on_writable(wsi_); /* (a write lws buffered has asked for one already) */
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

const Config &
Session::config() const
{
	return shard_.config();
}

Hub &
Session::hub() const
{
	return shard_.hub();
}

void
Session::SendFrame(Channel &ch, std::shared_ptr<const Frame> frame, LossPart part)
{
	Metrics().Out(part == LossPart::kPresence ? Primitive::kPresence : Primitive::kBroadcast, 1,
	              frame->bytes.size());
	QueuedFrame *q = NewQueuedFrame(std::move(frame));
	EnqueueFanout(q, NowMs(), ch, part);
	DropIfUnused(q);
}

void
Session::EnqueueFanout(QueuedFrame *f, int64_t now_ms, Channel &ch, LossPart part)
{
	if (close_requested_ || closing_slow_)
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
			Log(LogLevel::kWarning, "shard", "slow client: dropping messages session=%llu",
			    static_cast<unsigned long long>(id_));
		NoteLost(ch, part, LossReason::kSlowClient, 1, now_ms);
		break;
	case EnqueueResult::kClose:
		CloseSlow(ch, part, now_ms);
		break;
	}
}

/*
 * The socket kept its queue full for slow_client_close_ms. The messages still queued for it
 * are dropped (counted on the channel that overflowed: the queue does not know the others';
 * replies and earlier notices stay), each channel's loss notice goes next and then close 1008
 * "client too slow". A client that reads again within slow_client_grace_ms gets them after what its
 * socket already holds, so it learns what it missed (PROTOCOL.md 3.10); lws closes one that never
 * reads when that time is up. Either way the queue it held is freed at once: waiting costs the
 * socket and its session, no queue.
 */
void
Session::CloseSlow(Channel &ch, LossPart part, int64_t now_ms)
{
	uint64_t gone = 1 + queue_.Truncate(head_offset_ > 0); /* + the one refused */
	Metrics().Drop(DropReason::kSlowClient, gone);
	Metrics().Lost(part, LossReason::kSlowClient, gone);
	ch.lost.Add(part, LossReason::kSlowClient, gone);
	Log(LogLevel::kWarning, "shard", "slow client closed session=%llu dropped=%llu",
	    static_cast<unsigned long long>(id_),
	    static_cast<unsigned long long>(queue_.dropped() + gone - 1));
	closing_slow_ = true;
	loss_pending_ = false;
	for (auto &[topic, c] : channels_)
		while (c->lost.Pending())
			PushTo(*c, "system", c->lost.Take(c->sub_topic, now_ms));
	CloseWhenFlushed(LWS_CLOSE_STATUS_POLICY_VIOLATION, "client too slow");
	int grace_s = std::max(1, (shard_.config().slow_client_grace_ms + 999) / 1000);
	lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, grace_s);
}

void
Session::NoteLost(Channel &ch, LossPart part, LossReason reason, uint64_t n, int64_t now_ms)
{
	Metrics().Lost(part, reason, n);
	ch.lost.Add(part, reason, n);
	if (ch.lost.Due(now_ms))
		PushTo(ch, "system", ch.lost.Take(ch.sub_topic, now_ms));
	if (ch.lost.Pending())
		loss_pending_ = true;
}

void
Session::NoteStreamLost(uint64_t n, int64_t now_ms)
{
	for (auto &[topic, ch] : channels_)
	{
		NoteLost(*ch, LossPart::kBroadcast, LossReason::kRingGap, n, now_ms);
		if (ch->pg_changes.any)
			NoteLost(*ch, LossPart::kPostgresChanges, LossReason::kRingGap, n, now_ms);
	}
}

void
Session::FlushLossNotices(int64_t now_ms)
{
	loss_pending_ = false;
	for (auto &[topic, ch] : channels_)
	{
		if (!ch->lost.Pending())
			continue;
		if (ch->lost.Due(now_ms))
			PushTo(*ch, "system", ch->lost.Take(ch->sub_topic, now_ms));
		loss_pending_ = loss_pending_ || ch->lost.Pending();
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
			PushTo(*ch, "system", kPayload);
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
		RefuseMalformed(msg, r.error().message);
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

/*
 * A frame the codec refused is dropped, counted and logged; the socket stays open
 * (PROTOCOL.md 1.6). When its ref can still be read, the sender is told why at
 * once rather than left to time out.
 */
void
Session::RefuseMalformed(std::string_view frame, const std::string &why)
{
	Metrics().Drop(DropReason::kMalformed);
	/* the first bad frame of a socket is worth a line; a flood of them is not */
	Log(logged_malformed_ ? LogLevel::kDebug : LogLevel::kInfo, "shard",
	    "MalformedWebSocketMessage: %s session=%llu", why.c_str(),
	    static_cast<unsigned long long>(id_));
	logged_malformed_ = true;
	std::optional<Envelope> env = SalvageEnvelope(frame, rx_binary_, vsn_);
	if (!env || env->ref->size() > kMaxRefBytes || env->topic.size() > kMaxTopicBytes ||
	    (env->join_ref && env->join_ref->size() > kMaxRefBytes))
		return;
	Reply(env->join_ref, env->ref, env->topic,
	      ReplyErrorReason("MalformedWebSocketMessage: " + why));
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
Session::ReplyTo(const Channel &ch, const std::optional<std::string> &ref,
                 std::string_view payload_json)
{
	Reply(ch.join_ref, ref, ch.topic, payload_json);
}

void
Session::PushTo(const Channel &ch, std::string_view event, std::string_view payload_json)
{
	SendControl(MakeFrame(
	    Opcode::kText, EncodeText(vsn_, ch.join_ref, std::nullopt, ch.topic, event, payload_json)));
}

} // namespace rt::fanout
