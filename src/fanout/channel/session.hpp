/*
 * session.hpp: one WebSocket connection and the Phoenix channels it joined.
 *
 * Shard thread only. Created in LWS_CALLBACK_ESTABLISHED after the connect
 * checks passed, destroyed in LWS_CALLBACK_CLOSED. Never referenced from
 * another thread: cross-shard messages name a session by its id.
 */
#pragma once

#include "auth/auth_jwt.hpp"
#include "auth/authorizer.hpp"
#include "server/hub.hpp"
#include "base/json.hpp"
#include "postgres_changes/pg_changes_engine.hpp"
#include "protocol/frame.hpp"
#include "protocol/protocol.hpp"
#include "channel/send_queue.hpp"

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

/* A permission of a private channel (PROTOCOL.md 8): not asked yet, or the answer. */
enum class Perm : int8_t
{
	kUnknown,
	kNo,
	kYes,
	kFailed, /* the check failed (database, policy error): asked again after a pause */
};

/* One joined channel of a session (PROTOCOL.md 3). */
struct Channel
{
	std::string topic; /* "realtime:<sub_topic>" as joined */
	std::string sub_topic;
	std::string routing_key;
	std::optional<std::string> join_ref;
	bool is_private = false;
	bool self = false;
	bool ack = false;
	bool presence = false;
	std::string token; /* this channel's JWT (join payload, else the socket's) */
	JwtClaims claims;  /* its verified claims; exp ends the channel (PROTOCOL.md 3.6) */
	uint64_t gen = 0;  /* join generation, unique per process: pushes find this join */
	std::shared_ptr<const ChannelRef> pg_changes; /* set when it has postgres_changes */
	std::vector<PgJoinEntry> pg_entries;          /* ... and these are its entries */

	/* presence (PROTOCOL.md 5) */
	std::string presence_key; /* config.presence.key, or a UUID made at join */
	bool presence_tracked = false;
	int64_t presence_window_end_ms = 0; /* the client's presence window (5.5) */
	int presence_window_count = 0;

	/* private channels: what RLS allowed (public channels: everything) */
	Perm read_broadcast = Perm::kYes;
	Perm read_presence = Perm::kYes;
	Perm write_broadcast = Perm::kYes;
	Perm write_presence = Perm::kYes;
	int64_t write_failed_ms = 0;  /* when a write check last failed */
	uint64_t auth_seq = 0;        /* bumped by a new token: answers for older claims are stale */
	bool token_check_out = false; /* a refresh's read check is out (its answer asks again) */

	/*
	 * While the join's read check or a write check is out, this channel's later
	 * messages wait here in order (Phoenix handles one message of a channel at
	 * a time; the shard does not wait).
	 */
	bool joining = false;
	bool checking = false;
	std::deque<Inbound> held;
	size_t held_bytes = 0;

	/* the join, until its read check answers */
	std::optional<std::string> join_msg_ref;
	std::string join_response;
	std::optional<std::string> pc_error;
	bool any_changes = false;

	bool
	Busy() const
	{
		return joining || checking;
	}
	/* Whether this channel receives deliveries of that kind. */
	bool
	Reads(DeliveryKind k) const
	{
		return (k == DeliveryKind::kPresence ? read_presence : read_broadcast) == Perm::kYes;
	}
};

/* Longest topic and ref we accept: what a binary frame can carry (PROTOCOL.md 2.3). */
constexpr size_t kMaxTopicBytes = 255;
constexpr size_t kMaxRefBytes = 255;
/* Refused joins whose delayed reply is pending, per socket; more are not answered. */
constexpr int kMaxDelayedReplies = 16;

class Session
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

	/* Fan-out: queue a shard-local frame, subject to the send-queue caps. */
	void EnqueueFanout(QueuedFrame *f, int64_t now_ms);
	/* A reply or push for this client only. */
	void SendControl(std::shared_ptr<const Frame> frame);

	uint64_t
	id() const
	{
		return id_;
	}
	Tenant &
	tenant() const
	{
		return *tenant_;
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
	/* End every channel whose token expired (shard timer, once a second). */
	void ExpireChannels(int64_t now_s);
	/* The channel joined as topic with this generation, if it is still there. */
	const Channel *FindChannel(const std::string &topic, uint64_t gen) const;
	/* The authorizer answered a check of the channel joined as topic with gen. */
	void OnAuthorized(const std::string &topic, uint64_t gen, uint64_t seq, uint8_t read,
	                  uint8_t write, const AuthResult &r);
	/* A delayed reply (ReplyLater) was handed back by the shard timer. */
	void
	DelayedReplyDue()
	{
		delayed_replies_--;
	}

private:
	void HandleMessage(Inbound &m);
	void HandleJoin(Inbound &m);
	void HandleLeave(Inbound &m, Channel *ch);
	void HandleBroadcast(Inbound &m, Channel &ch);
	void HandleAccessToken(Inbound &m, Channel &ch);
	void HandlePresence(Inbound &m, Channel &ch);
	bool MayWrite(Inbound &m, Channel &ch, uint8_t ext);
	void Track(const Inbound &m, Channel &ch, const rapidjson::Value &payload);
	void Untrack(Channel &ch);
	bool CountPresenceEvent();
	void FinishJoin(Channel &ch);
	void OnJoinChecked(Channel &ch, const AuthResult &r);
	void OnTokenChecked(Channel &ch, const AuthResult &r, uint8_t read);
	/* Ask the authorizer; the answer comes back as OnAuthorized on this shard. */
	void Authorize(Channel &ch, uint8_t read, uint8_t write);
	void Hold(Channel &ch, Inbound &m);
	void ReleaseHeld(const std::string &topic);
	void Reply(const std::optional<std::string> &join_ref, const std::optional<std::string> &ref,
	           std::string_view topic, std::string_view payload_json);
	void ReplyLater(const std::optional<std::string> &join_ref,
	                const std::optional<std::string> &ref, std::string_view topic,
	                std::string_view payload_json);
	void Push(const Channel &ch, std::string_view event, std::string_view payload_json);
	void CloseChannel(Channel &ch);
	void ShutdownChannel(Channel &ch, std::string_view message);
	void WakeWriter();
	int WriteSome();

	/* this socket's counters for its tenant on this shard */
	ShardMetrics &Metrics();

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
	size_t head_offset_ = 0;    /* bytes of the queue's front frame already written */
	int delayed_replies_ = 0;   /* ReplyLater frames waiting on the shard timer */
	size_t held_total_ = 0;     /* bytes held by all channels (Session::Hold) */
	bool counted_user_ = false; /* counts in Tenant::users (joined a channel) */
	bool close_when_flushed_ = false;
	bool logged_malformed_ = false; /* log the first bad frame at info, later ones at debug */
	uint16_t close_code_ = 0;
	const char *close_reason_ = "";
};

} // namespace rt::fanout
