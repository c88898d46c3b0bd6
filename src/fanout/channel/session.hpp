/*
 * session.hpp: one WebSocket connection and the Phoenix channels it joined.
 *
 * Folder channel/: a connection and its channels. session (the connection:
 * receive, heartbeat, close) and session_channels (join, leave and routing to
 * the parts), channel (one joined channel's state), channel_part (the interface
 * every feature implements: join, joined, push, token refreshed, leave),
 * channel_registry (topic -> subscribers of a shard) and send_queue (the bounded
 * queue of frames of one socket). Shard thread only.
 *
 * The session owns the connection (receive, send queue, close) and routes
 * each message: heartbeats, joins and leaves it answers itself; a channel's
 * events go to the part that handles them (channel_part.hpp), and the parts
 * reach the socket through the ChannelHost it implements.
 *
 * Shard thread only. Created in LWS_CALLBACK_ESTABLISHED after the connect
 * checks passed, destroyed in LWS_CALLBACK_CLOSED. Never referenced from
 * another thread: cross-shard messages name a session by its id.
 */
#pragma once

#include "auth/auth_jwt.hpp"
#include "channel/channel.hpp"
#include "channel/channel_part.hpp"
#include "channel/send_queue.hpp"
#include "protocol/frame.hpp"
#include "protocol/protocol.hpp"

#include <libwebsockets.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace rt::fanout
{

class Shard;

/* Longest topic and ref we accept: what a binary frame can carry (PROTOCOL.md 2.3). */
constexpr size_t kMaxTopicBytes = 255;
constexpr size_t kMaxRefBytes = 255;
/* Refused joins whose delayed reply is pending, per socket; more are not answered. */
constexpr int kMaxDelayedReplies = 16;
/* Largest single write a session assembles (queued frames coalesced, a big frame's piece). */
constexpr size_t kCoalesceBytes = 64 * 1024;

class Session final : public ChannelHost
{
public:
	Session(Shard &shard, struct lws *wsi, std::shared_ptr<Tenant> tenant, uint64_t id, Vsn vsn,
	        JwtClaims claims, std::string token, std::string headers_json);
	~Session();
	Session(const Session &) = delete;
	Session &operator=(const Session &) = delete;

	/* A piece of an incoming WebSocket message; -1 closes the connection. */
	int OnReceive(const char *in, size_t len);
	/* lws says the socket can take data; -1 closes the connection. */
	int OnWritable();
	/*
	 * The shard, at the end of the loop turn that queued frames for this socket: write them
	 * now, coalesced, unless lws still holds bytes of an earlier write; what does not fit
	 * waits for a writable callback (Shard::FlushWrites).
	 */
	void FlushWrites();

	/*
	 * Fan-out: queue a shard-local frame for channel ch, subject to the send-queue caps
	 * (a frame the queue drops is a loss of part for ch).
	 */
	void EnqueueFanout(QueuedFrame *f, int64_t now_ms, Channel &ch, LossPart part);
	/*
	 * Channel ch missed n messages of part for reason: a `system` notice now, or from the
	 * shard's timer once a second has passed since its last (PROTOCOL.md 3.10).
	 */
	void NoteLost(Channel &ch, LossPart part, LossReason reason, uint64_t n,
	              int64_t now_ms) override;
	/* The tenant's database stream lost n records: every channel may have missed them. */
	void NoteStreamLost(uint64_t n, int64_t now_ms);
	/* Shard timer: send the notices that had to wait. */
	void FlushLossNotices(int64_t now_ms);
	bool
	loss_pending() const
	{
		return loss_pending_;
	}
	/* A reply or push for this client only. */
	void SendControl(std::shared_ptr<const Frame> frame);

	uint64_t
	id() const
	{
		return id_;
	}
	Vsn
	vsn() const
	{
		return vsn_;
	}
	struct lws *
	wsi() const
	{
		return wsi_;
	}
	int64_t
	last_rx_ms() const
	{
		return last_rx_ms_;
	}
	/* Close from outside this connection's callback (slow, idle). */
	void RequestClose(uint16_t code, const char *reason);
	/* The tenant's reload: "Server requested disconnect" on every channel, then close 1012. */
	void ServerDisconnect();
	/* End the joined channel of topic with a system error (shard: rate limits). */
	void ShutdownTopic(const std::string &topic, std::string_view message);
	/* Close with code once everything queued (delayed replies too) is written. */
	void CloseWhenFlushed(uint16_t code, const char *reason);
	/* Too slow for too long: drop what is queued, tell every channel, then close 1008. */
	void CloseSlow(Channel &ch, LossPart part, int64_t now_ms);
	/* End every channel whose token expired (shard timer, once a second). */
	void ExpireChannels(int64_t now_s);
	/* The channel joined as topic with this generation, if it is still there. */
	const Channel *FindChannel(const std::string &topic, uint64_t gen) const;
	/* A delayed reply (ReplyLater) was handed back by the shard timer. */
	void
	DelayedReplyDue()
	{
		delayed_replies_--;
	}

	/* ChannelHost: what the channels' parts may ask of this socket */
	uint64_t
	session_id() const override
	{
		return id_;
	}
	int shard_index() const override;
	Tenant &
	tenant() const override
	{
		return *tenant_;
	}
	const Config &config() const override;
	Hub &hub() const override;
	const std::string &
	headers_json() const override
	{
		return headers_json_;
	}
	/* this socket's counters for its tenant on this shard */
	ShardMetrics &Metrics() override;
	Poster MakePoster() override;
	void ReplyTo(const Channel &ch, const std::optional<std::string> &ref,
	             std::string_view payload_json) override;
	void PushTo(const Channel &ch, std::string_view event, std::string_view payload_json) override;
	bool
	UsesV1() const override
	{
		return vsn_ == Vsn::k1;
	}
	void SendFrame(Channel &ch, std::shared_ptr<const Frame> frame, LossPart part) override;
	void Publish(std::shared_ptr<Delivery> d) override;
	void ShutdownChannel(Channel &ch, std::string_view message) override;
	void Hold(Channel &ch, Inbound &m) override;
	void ReleaseHeld(const std::string &topic) override;
	Channel *FindChannel(const std::string &topic, uint64_t gen) override;
	void JoinDecided(Channel &ch, const std::string &refusal) override;

private:
	void HandleMessage(Inbound &m);
	void RefuseMalformed(std::string_view frame, const std::string &why);
	void HandleChannelEvent(Inbound &m, Channel &ch);
	void HandleJoin(Inbound &m);
	bool JoinTopicAllowed(const Inbound &m);
	bool WithinJoinLimits(const Inbound &m);
	std::unique_ptr<Channel> NewChannel(const Inbound &m, const rapidjson::Document &doc);
	void HandleLeave(Inbound &m, Channel *ch);
	void HandleAccessToken(Inbound &m, Channel &ch);
	void FinishJoin(Channel &ch);
	void RefuseJoin(const Inbound &m, std::string_view reason);
	void Reply(const std::optional<std::string> &join_ref, const std::optional<std::string> &ref,
	           std::string_view topic, std::string_view payload_json);
	void ReplyLater(const std::optional<std::string> &join_ref,
	                const std::optional<std::string> &ref, std::string_view topic,
	                std::string_view payload_json);
	void CloseChannel(Channel &ch);
	void EraseChannel(Channel &ch);
	void WakeWriter();
	int WriteSome();

	Shard &shard_;
	struct lws *wsi_;
	std::shared_ptr<Tenant> tenant_;
	uint64_t id_;
	Vsn vsn_;
	JwtClaims claims_;
	std::string token_;
	std::string headers_json_; /* the upgrade's x-* headers, for RLS (request.headers) */
	int64_t last_rx_ms_;
	std::string rx_; /* fragments of the message being received */
	bool rx_binary_ = false;
	std::map<std::string, std::unique_ptr<Channel>> channels_; /* by topic */
	SendQueue queue_;
	bool close_requested_ = false;
	bool loss_pending_ = false; /* a channel's loss notice waits for the timer */
	size_t head_offset_ = 0;    /* bytes of the queue's front frame already written */
	int delayed_replies_ = 0;   /* ReplyLater frames waiting on the shard timer */
	size_t held_total_ = 0;     /* bytes held by all channels (Session::Hold) */
	bool counted_user_ = false; /* counts in Tenant::users (joined a channel) */
	bool close_when_flushed_ = false;
	bool closing_slow_ = false;     /* CloseSlow: loss notices and the close are all it gets */
	bool logged_malformed_ = false; /* log the first bad frame at info, later ones at debug */
	bool write_marked_ = false;     /* in the shard's FlushWrites list */
	uint16_t close_code_ = 0;
	const char *close_reason_ = "";
};

} // namespace rt::fanout
