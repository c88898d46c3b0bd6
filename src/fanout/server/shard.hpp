/*
 * shard.hpp: one libwebsockets context and the thread that services it.
 *
 * Debian's libwebsockets has LWS_MAX_SMP 1 (one service thread per context),
 * so the sidecar runs one context per core, all listening on the same port
 * (SO_REUSEPORT); the kernel spreads connections over them. A shard owns every
 * session, channel and registry entry it reaches: no locks on the hot path.
 * Other threads talk to it only through Post() (inbox + lws_cancel_service).
 */
#pragma once

#include "channel/channel_registry.hpp"
#include "tenancy/config.hpp"
#include "protocol/frame.hpp"
#include "server/connect_check.hpp"
#include "server/handshake_gate.hpp"
#include "base/clock.hpp"
#include "server/hub.hpp"
#include "ops/metrics.hpp"

#include <ev.h>
#include <libwebsockets.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace rt::fanout
{

class Session;
struct HttpRequest;

/* What lws keeps per connection: a POD it zero-fills (STYLE.md 9). */
struct SessionSlot
{
	Session *session;  /* WebSocket connections, from ESTABLISHED to CLOSED */
	HttpRequest *http; /* plain HTTP requests (REST, health) */
};

class Shard
{
public:
	Shard(int index, const Config &config, Hub &hub);
	~Shard();

	/* Start the thread; returns once the context listens (true) or failed. */
	bool Start();
	/* Ask the loop to end and join the thread. */
	void Stop();

	/* Any thread: queue a delivery for this shard's subscribers. */
	void Post(std::shared_ptr<const Delivery> d);

	/* --- shard thread only --- */
	void Deliver(const Delivery &d);
	void DeliverPushes(const Delivery &d);
	/* Once a second: the channels of a tenant whose database stream lost records are told. */
	void TellStreamLosses(int64_t now);
	/* Every channel d would have reached notes one message lost for reason. */
	void NoteDeliveryLost(const Delivery &d, LossReason reason);
	/* Send frame to the session with this id at due_ms (monotonic), if it still exists. */
	void SendLater(uint64_t session_id, std::shared_ptr<const Frame> frame, int64_t due_ms);

	int
	index() const
	{
		return index_;
	}
	const Config &
	config() const
	{
		return config_;
	}
	Hub &
	hub()
	{
		return hub_;
	}
	ChannelRegistry &
	registry()
	{
		return registry_;
	}
	uint64_t
	inbox_dropped() const
	{
		return inbox_dropped_.load(std::memory_order_relaxed);
	}
	std::string &
	scratch()
	{
		return scratch_;
	}
	uint64_t NextSessionId();
	/* HTTP requests waiting for the authorizer: a key that stays valid until ForgetHttp. */
	uint64_t WaitHttp(struct lws *wsi);
	struct lws *WaitingHttp(uint64_t id) const;
	void ForgetHttp(uint64_t id);
	/* The session with this id on this shard, or nullptr (closed since). */
	Session *FindSession(uint64_t id) const;
	void AddSession(Session *s);
	void RemoveSession(Session *s);
	/* The session has frames queued: it writes them at the end of this loop turn. */
	void MarkForWrite(uint64_t session_id);
	/*
	 * A reload removed or changed tenant: each of its channels on this shard
	 * gets "Server requested disconnect", then its sockets close with 1012.
	 */
	void DisconnectTenant(const Tenant *tenant);

	/* The lws protocol callback: one for HTTP and WebSocket. */
	static int Callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
	                    size_t len);

private:
	/* once a loop turn: the sessions marked by MarkForWrite write what they queued */
	void FlushWrites();
	static void PrepareCb(struct ev_loop *loop, ev_prepare *w, int revents);
	void Run();
	void OnAcceptable();
	void OnHead(int fd, HeadStatus st, const UpgradeRequest &req, std::string_view head);
	void Reject(int fd, int status, const std::string &body);
	void DrainInbox();
	void OnTimer();
	void ArmTimer();
	static void TimerCb(lws_sorted_usec_list_t *sul);

	int index_;
	const Config &config_;
	Hub &hub_;
	struct lws_context *context_ = nullptr;
	struct ev_loop *loop_ = nullptr; /* libev (epoll) runs the context: Start */
	ev_prepare prepare_{};           /* FlushWrites before each poll */
	struct lws_vhost *vhost_ = nullptr;
	int listen_fd_ = -1;
	struct lws *listener_wsi_ = nullptr; /* the listening socket, adopted as a raw descriptor */
	bool listener_paused_ = false;       /* out of descriptors: not accepting until next tick */
	std::thread thread_;
	std::atomic<bool> stop_{false};

	/* inbox: written by any thread under the mutex, drained by the shard */
	std::mutex inbox_mu_;
	std::deque<std::shared_ptr<const Delivery>> inbox_;
	/* what a full inbox refused, without its bytes: its channels are told (bounded) */
	std::vector<std::shared_ptr<const Delivery>> inbox_lost_;
	std::atomic<bool> wake_pending_{false};
	std::atomic<uint64_t> inbox_dropped_{0};

	/* shard-thread state */
	ChannelRegistry registry_;
	std::unordered_map<uint64_t, Session *> sessions_;
	uint64_t next_session_seq_ = 1;
	std::unordered_map<uint64_t, struct lws *> http_waiting_;
	uint64_t next_http_wait_ = 1;
	std::string scratch_;                              /* coalesced writes */
	std::vector<uint64_t> write_marked_, write_batch_; /* MarkForWrite, by session id */

	HandshakeGate gate_;
	/* upgrades that passed the connect checks, by socket, until ESTABLISHED */
	std::unordered_map<int, ConnectCheck> accepted_;

	struct Delayed
	{
		uint64_t session_id; /* join replies: to this session */
		std::shared_ptr<const Frame> frame;
		int fd; /* connect refusals: this socket (not lws') */
		std::string response;
	};
	std::multimap<int64_t, Delayed> delayed_;
	struct TimerSul
	{
		lws_sorted_usec_list_t sul; /* first member: the callback gets its address */
		Shard *shard;
	} timer_{};
	int64_t last_sweep_ms_ = 0;
	int64_t last_expiry_check_s_ = 0;
	uint64_t closed_since_trim_ = 0; /* sessions removed since the last malloc_trim */
};

} // namespace rt::fanout
