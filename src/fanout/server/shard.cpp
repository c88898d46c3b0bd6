/*
 * shard.cpp: a libwebsockets context, its service thread and the protocol
 * callback that drives sessions and HTTP requests.
 *
 * Every function here runs on the shard's own thread except Start, Stop
 * (main thread) and Post (any thread).
 */
#include "server/shard.hpp"

#include "server/connect_check.hpp"
#include "server/http_api.hpp"
#include "server/listener.hpp"
#include "base/log.hpp"
#include "channel/session.hpp"
#include "db/ring_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <ev.h>
#include <future>
#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

namespace rt::fanout
{

namespace
{

constexpr int64_t kTimerTickMs = 1000;
constexpr int64_t kSweepEveryMs = 5000;
constexpr int64_t kHeadTimeoutMs = 10000;  /* a request head must arrive within this */
constexpr size_t kMaxInbox = 1 << 16;      /* deliveries waiting for a shard */
constexpr size_t kDrainBatch = 4096;       /* deliveries handled per wake-up */
constexpr size_t kMaxInboxLost = 4096;     /* refused deliveries kept to tell of */
constexpr size_t kMaxReadbuf = 2048;       /* lws_adopt_socket_vhost_readbuf's limit */
constexpr uint64_t kTrimAfterCloses = 256; /* sockets closed before freed memory goes back */

/* The part of a channel that a routing-key delivery of kind k is for. */
LossPart
PartOf(DeliveryKind k)
{
	return k == DeliveryKind::kPresence ? LossPart::kPresence : LossPart::kBroadcast;
}

/* d without its bytes, as a loss to tell of: whom it was for, not what it said. */
std::shared_ptr<const Delivery>
WithoutBytes(const Delivery &d, LossReason reason)
{
	auto lost = std::make_shared<Delivery>();
	lost->routing_key = d.routing_key;
	lost->tenant = d.tenant;
	lost->kind = d.kind;
	lost->exclude_session = d.exclude_session;
	lost->from_database = d.from_database;
	lost->lost = reason;
	for (const ChannelPush &p : d.pushes)
	{
		ChannelPush whom;
		whom.session_id = p.session_id;
		whom.gen = p.gen;
		whom.topic = p.topic;
		lost->pushes.push_back(std::move(whom));
	}
	return lost;
}

/* Copy the request head without %0A/%0D escapes in its request line; false if it had none. */
bool
StripEncodedLineBreaks(std::string_view head, std::string &out)
{
	size_t eol = head.find("\r\n");
	std::string_view line = head.substr(0, eol);
	bool found = false;
	out.clear();
	for (size_t i = 0; i < line.size(); i++)
	{
		if (line[i] == '%' && i + 2 < line.size() && line[i + 1] == '0' &&
		    (line[i + 2] == 'a' || line[i + 2] == 'A' || line[i + 2] == 'd' || line[i + 2] == 'D'))
		{
			found = true;
			i += 2;
			continue;
		}
		out += line[i];
	}
	if (found)
		out.append(head.substr(line.size()));
	return found;
}

/*
 * No lws validity timers: the idle sweep and the client's heartbeats do that job, and lws
 * 4.1 keeps each socket's timer in one sorted list (re-sorted on every frame received:
 * O(sockets) each, half the CPU at 18,000 sockets).
 */
const lws_retry_bo_t kNoValidityChecks = {nullptr, 0, 0, 0, 0, 0};

/*
 * lws reads a socket rx_buffer_size + LWS_PRE bytes at a time (at most 4 KB) and holds a
 * buffer that size for every socket. 1 KB reads made a client that sends fast (a publisher
 * at 10,000 msg/s) take one loop turn per 7 messages: bench-broadcast p99 4 ms -> 20-60 ms.
 * 2 KB (+1 KB a socket, 5.3 KB in all) brings most of it back; 4 KB all of it, at 7.3 KB
 * a socket (docs/PERFORMANCE.md). tx_packet_size must be set with it: at 0, lws limits
 * every send() to the rx buffer size and copies the rest of a write into its own buffer.
 */
constexpr size_t kRxBufferBytes = 2048 - LWS_PRE;
const struct lws_protocols kProtocols[] = {
    {"realtime", Shard::Callback, sizeof(SessionSlot), kRxBufferBytes, 0, nullptr, kCoalesceBytes},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0}, /* terminator */
};

} // namespace

Shard::Shard(int index, const Config &config, Hub &hub) : index_(index), config_(config), hub_(hub)
{
	timer_.shard = this;
}

Shard::~Shard() { Stop(); }

bool
Shard::Start()
{
	std::promise<bool> started;
	std::future<bool> result = started.get_future();
	thread_ = std::thread(
	    [this, &started]()
	    {
		    try
		    {
			    listen_fd_ = OpenListenSocket(config_.host, config_.port);
			    if (listen_fd_ < 0)
			    {
				    Log(LogLevel::kError, "shard", "shard %d: cannot listen on %s:%d: %s", index_,
				        config_.host.c_str(), config_.port, strerror(errno));
				    started.set_value(false);
				    return;
			    }
			    struct lws_context_creation_info info;
			    memset(&info, 0, sizeof(info)); /* lws 4.1: zero everything we do not set */
			    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we listen ourselves: listener.hpp */
			    info.protocols = kProtocols;
			    info.user = this;
			    info.count_threads = 1;
			    info.max_http_header_data = 16384; /* long JWTs in the query string */
			    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
			    info.timeout_secs = 30;
			    info.retry_and_idle_policy = &kNoValidityChecks;
			    /* libev on epoll: lws's own loop is poll(), whose every wake-up costs a
			     * pass over all sockets (18,000 idle ones: 1,300 connects/s, not 11,000) */
			    loop_ = ev_loop_new(static_cast<unsigned>(EVBACKEND_EPOLL) |
			                        static_cast<unsigned>(EVFLAG_NOENV));
			    /* once a loop turn, before it polls: what the turn queued leaves */
			    ev_prepare_init(&prepare_, PrepareCb);
			    prepare_.data = this;
			    if (loop_ != nullptr)
				    ev_prepare_start(loop_, &prepare_);
			    void *loops[] = {loop_};
			    info.options |= LWS_SERVER_OPTION_LIBEV;
			    info.foreign_loops = loops;
			    struct lws_context *ctx = loop_ != nullptr ? lws_create_context(&info) : nullptr;
			    {
				    /* other threads read context_ under the inbox lock (Post, Stop) */
				    std::lock_guard<std::mutex> lock(inbox_mu_);
				    context_ = ctx;
			    }
			    /* the lws loop watches two descriptors of ours: listener and gate */
			    lws_sock_file_fd_type lfd, gfd;
			    lfd.filefd = listen_fd_;
			    vhost_ = ctx ? lws_get_vhost_by_name(ctx, "default") : nullptr;
			    bool gate_ok = gate_.Init();
			    gfd.filefd = gate_.fd();
			    if (vhost_ == nullptr || !gate_ok ||
			        (listener_wsi_ = lws_adopt_descriptor_vhost(
			             vhost_, LWS_ADOPT_RAW_FILE_DESC, lfd, "realtime", nullptr)) == nullptr ||
			        lws_adopt_descriptor_vhost(vhost_, LWS_ADOPT_RAW_FILE_DESC, gfd, "realtime",
			                                   nullptr) == nullptr)
			    {
				    Log(LogLevel::kError, "shard", "shard %d: cannot create the lws context",
				        index_);
				    started.set_value(false);
				    return;
			    }
			    ArmTimer();
			    started.set_value(true);
			    Run();
		    }
		    catch (const std::exception &e)
		    {
			    /* a bug: log it; the process goes down with the failed shard */
			    Log(LogLevel::kError, "shard", "shard %d crashed: %s", index_, e.what());
			    std::abort();
		    }
	    });
	return result.get();
}

void
Shard::Run()
{
	/* until Stop: its lws_cancel_service wakes the loop, which then breaks (Callback) */
	while (!stop_.load(std::memory_order_acquire))
		ev_run(loop_, 0);
	struct lws_context *ctx;
	{
		std::lock_guard<std::mutex> lock(inbox_mu_);
		ctx = context_;
		context_ = nullptr;
	}
	lws_context_destroy(ctx); /* also closes the adopted listener and gate descriptors */
	ev_prepare_stop(loop_, &prepare_);
	ev_loop_destroy(loop_);
	loop_ = nullptr;
	listen_fd_ = -1;
	for (auto &[due, d] : delayed_)
	{
		if (d.fd >= 0)
			close(d.fd);
	}
	delayed_.clear();
}

void
Shard::Stop()
{
	if (!thread_.joinable())
		return;
	stop_.store(true, std::memory_order_release);
	{
		std::lock_guard<std::mutex> lock(inbox_mu_);
		if (context_ != nullptr)
			lws_cancel_service(context_);
	}
	thread_.join();
}

void
Shard::Post(std::shared_ptr<const Delivery> d)
{
	std::lock_guard<std::mutex> lock(inbox_mu_);
	if (inbox_.size() >= kMaxInbox && !d->task)
	{
		/* this shard is not keeping up: its subscribers lose this message, nobody else;
		 * they are told once it catches up (past kMaxInboxLost, counted only) */
		if (d->tenant)
			d->tenant->inbox_dropped.fetch_add(1, std::memory_order_relaxed);
		if (inbox_lost_.size() < kMaxInboxLost && !d->lost)
			inbox_lost_.push_back(WithoutBytes(*d, LossReason::kShardBehind));
		if (inbox_dropped_.fetch_add(1, std::memory_order_relaxed) % 10000 == 0)
			Log(LogLevel::kWarning, "shard",
			    "shard %d inbox full: dropping deliveries (%llu so far)", index_,
			    static_cast<unsigned long long>(inbox_dropped_.load(std::memory_order_relaxed)));
		return;
	}
	inbox_.push_back(std::move(d));
	/* one wake-up per batch: the loop drains everything queued so far */
	if (!wake_pending_.exchange(true, std::memory_order_acq_rel) && context_ != nullptr)
		lws_cancel_service(context_);
}

void
Shard::DrainInbox()
{
	/* a bounded batch per wake-up, so sockets and timers are served in between */
	std::vector<std::shared_ptr<const Delivery>> batch;
	{
		std::lock_guard<std::mutex> lock(inbox_mu_);
		size_t n = std::min(inbox_.size(), kDrainBatch);
		batch.assign(std::make_move_iterator(inbox_.begin()),
		             std::make_move_iterator(inbox_.begin() + static_cast<ptrdiff_t>(n)));
		inbox_.erase(inbox_.begin(), inbox_.begin() + static_cast<ptrdiff_t>(n));
		if (inbox_.size() < kMaxInbox && !inbox_lost_.empty())
		{
			/* room again: tell the channels what the full inbox refused */
			for (auto &lost : inbox_lost_)
				batch.push_back(std::move(lost));
			inbox_lost_.clear();
		}
		if (inbox_.empty())
			wake_pending_.store(false, std::memory_order_release);
		else if (context_ != nullptr)
			lws_cancel_service(context_); /* more left: come back on the next turn */
	}
	for (const auto &d : batch)
		Deliver(*d);
}

void
Shard::DeliverPushes(const Delivery &d)
{
	/*
	 * Channels that get the same bytes (same topic, ids and variant, e.g. the
	 * tabs of one user) share one frame; the rest differ in their head only.
	 */
	std::unordered_map<std::string, QueuedFrame *> frames;
	std::string key, payload;
	int64_t now = NowMs();
	for (const ChannelPush &p : d.pushes)
	{
		auto it = sessions_.find(p.session_id);
		if (it == sessions_.end())
			continue;
		Session *s = it->second;
		Channel *ch = s->FindChannel(p.topic, p.gen);
		if (ch == nullptr)
			continue; /* left or joined again since */
		bool system = std::string_view(p.event) == "system";
		if (system)
		{
			/* control traffic: never dropped for a slow reader, carries the join_ref */
			s->SendControl(MakeFrame(Opcode::kText, EncodeText(s->vsn(), ch->join_ref, std::nullopt,
			                                                   p.topic, p.event, p.head)));
			if (p.ready)
				ReplicationReadyPart::Confirmed(*s, *ch); /* after "Subscribed to PostgreSQL" */
			continue;
		}
		/* over the events limit, changes are dropped (PROTOCOL.md 9.1) */
		TenantShard &ts = s->tenant().shard(index_);
		if (s->tenant().events_limited.load(std::memory_order_relaxed))
		{
			ts.metrics.Drop(DropReason::kRateLimited);
			s->NoteLost(*ch, LossPart::kPostgresChanges, LossReason::kEventsLimit, 1, now);
			continue;
		}
		key.assign(1, s->vsn() == Vsn::k1 ? '1' : '2');
		key += p.topic;
		key += '\0';
		key += p.head;
		key += '\0';
		key += std::to_string(p.shared);
		QueuedFrame *&q = frames[key];
		if (q == nullptr)
		{
			payload = p.head;
			if (p.shared >= 0 && static_cast<size_t>(p.shared) < d.shared.size())
				payload += d.shared[static_cast<size_t>(p.shared)];
			payload += p.tail;
			q = NewQueuedFrame(
			    MakeFrame(Opcode::kText, EncodeText(s->vsn(), std::nullopt, std::nullopt, p.topic,
			                                        p.event, payload)));
		}
		s->EnqueueFanout(q, now, *ch, LossPart::kPostgresChanges);
		ts.events.Add(now);
		ts.metrics.Out(Primitive::kPostgresChanges, 1, q->frame->bytes.size());
	}
	for (auto &[k, q] : frames)
		DropIfUnused(q);
}

uint64_t
Shard::WaitHttp(struct lws *wsi)
{
	uint64_t id = next_http_wait_++;
	http_waiting_[id] = wsi;
	return id;
}

struct lws *
Shard::WaitingHttp(uint64_t id) const
{
	auto it = http_waiting_.find(id);
	return it == http_waiting_.end() ? nullptr : it->second;
}

void
Shard::ForgetHttp(uint64_t id)
{
	http_waiting_.erase(id);
}

Session *
Shard::FindSession(uint64_t id) const
{
	auto it = sessions_.find(id);
	return it == sessions_.end() ? nullptr : it->second;
}

void
Shard::Deliver(const Delivery &d)
{
	if (d.task)
	{
		d.task(*this);
		return;
	}
	if (d.lost)
	{
		NoteDeliveryLost(d, *d.lost);
		return;
	}
	if (d.routing_key.empty())
	{
		DeliverPushes(d);
		return;
	}
	const std::vector<Subscriber> *subs = registry_.Find(d.routing_key);
	if (subs == nullptr)
		return;
	if (!d.tenant)
		return; /* every routing-key delivery names its tenant */
	TenantShard &ts = d.tenant->shard(index_);
	int64_t now = NowMs();
	if (d.tenant->events_limited.load(std::memory_order_relaxed) && d.from_database)
	{
		/* a database broadcast over the limit is dropped, and said to be (PROTOCOL.md 3.10) */
		NoteDeliveryLost(d, LossReason::kEventsLimit);
		return;
	}
	if (d.tenant->events_limited.load(std::memory_order_relaxed))
	{
		/* over the tenant's events limit: each channel this reaches ends (PROTOCOL.md 3.7) */
		std::vector<std::pair<Session *, std::string>> ended;
		for (const Subscriber &sub : *subs)
			if (sub.session->id() != d.exclude_session && sub.channel->Reads(d.kind))
				ended.emplace_back(sub.session, sub.channel->topic);
		for (auto &[s, topic] : ended)
			s->ShutdownTopic(topic, "Too many messages per second");
		return;
	}
	QueuedFrame *q1 = nullptr, *q2 = nullptr;
	uint64_t n1 = 0, n2 = 0;
	const LossPart part = PartOf(d.kind);
	for (const Subscriber &sub : *subs)
	{
		Session *s = sub.session;
		if (s->id() == d.exclude_session)
			continue;
		if (sub.channel->replay.buffering)
		{
			/* joining with replay: kept until the stored messages are out (replay_part.hpp) */
			const std::shared_ptr<const Frame> &f = s->vsn() == Vsn::k1 ? d.v1 : d.v2;
			if (d.kind == DeliveryKind::kBroadcast && f)
				ReplayPart::Wait(*s, *sub.channel, f, d.message_id);
			continue;
		}
		if (!sub.channel->Reads(d.kind))
			continue;
		if (!d.message_id.empty() && !sub.channel->replay.replayed_ids.empty() &&
		    ReplayPart::Replayed(*sub.channel, d.message_id))
			continue; /* it was replayed to this channel (PROTOCOL.md 4.5) */
		if (s->vsn() == Vsn::k1)
		{
			if (!d.v1)
				continue;
			if (q1 == nullptr)
				q1 = NewQueuedFrame(d.v1);
			s->EnqueueFanout(q1, now, *sub.channel, part);
			n1++;
		}
		else
		{
			if (!d.v2)
				continue;
			if (q2 == nullptr)
				q2 = NewQueuedFrame(d.v2);
			s->EnqueueFanout(q2, now, *sub.channel, part);
			n2++;
		}
	}
	ts.events.Add(now, n1 + n2);
	Primitive p = d.kind == DeliveryKind::kPresence ? Primitive::kPresence : Primitive::kBroadcast;
	ts.metrics.Out(p, n1 + n2,
	               n1 * (d.v1 ? d.v1->bytes.size() : 0) + n2 * (d.v2 ? d.v2->bytes.size() : 0));
	DropIfUnused(q1);
	DropIfUnused(q2);
}

/* Records the tenants' ring readers lost since the last second: every channel is told
 * (PROTOCOL.md 3.10). */
void
Shard::TellStreamLosses(int64_t now)
{
	std::shared_ptr<const TenantSet> set = hub_.tenants();
	if (!set)
		return;
	for (const auto &t : set->list)
	{
		TenantShard &ts = t->shard(index_);
		uint64_t lost = t->ring != nullptr ? t->ring->lost() : 0;
		if (lost <= ts.ring_lost_told)
			continue;
		uint64_t n = lost - ts.ring_lost_told;
		ts.ring_lost_told = lost;
		for (auto &[id, s] : sessions_)
			if (&s->tenant() == t.get())
				s->NoteStreamLost(n, now);
	}
}

void
Shard::NoteDeliveryLost(const Delivery &d, LossReason reason)
{
	int64_t now = NowMs();
	if (d.routing_key.empty())
	{
		for (const ChannelPush &p : d.pushes)
		{
			auto it = sessions_.find(p.session_id);
			Channel *ch = it == sessions_.end() ? nullptr : it->second->FindChannel(p.topic, p.gen);
			if (ch != nullptr)
				it->second->NoteLost(*ch, LossPart::kPostgresChanges, reason, 1, now);
		}
		return;
	}
	const std::vector<Subscriber> *subs = registry_.Find(d.routing_key);
	if (subs == nullptr)
		return;
	for (const Subscriber &sub : *subs)
	{
		if (sub.session->id() == d.exclude_session)
			continue;
		if (sub.channel->replay.buffering && d.kind == DeliveryKind::kBroadcast)
			ReplayPart::WaitLost(*sub.channel, reason); /* told after its replay */
		else if (sub.channel->Reads(d.kind))
			sub.session->NoteLost(*sub.channel, PartOf(d.kind), reason, 1, now);
	}
}

uint64_t
Shard::NextSessionId()
{
	return (static_cast<uint64_t>(index_ + 1) << 48) | next_session_seq_++;
}

void
Shard::PrepareCb(struct ev_loop *, ev_prepare *w, int)
{
	static_cast<Shard *>(w->data)->FlushWrites();
}

void
Shard::MarkForWrite(uint64_t session_id)
{
	write_marked_.push_back(session_id);
}

void
Shard::FlushWrites()
{
	if (write_marked_.empty())
		return;
	write_batch_.swap(write_marked_); /* a write queues nothing, but stay safe if one did */
	for (uint64_t id : write_batch_)
	{
		/* by id: a session closed since it was marked is simply gone */
		auto it = sessions_.find(id);
		if (it != sessions_.end())
			it->second->FlushWrites();
	}
	write_batch_.clear();
}

void
Shard::AddSession(Session *s)
{
	sessions_[s->id()] = s;
	ShardMetrics &m = s->tenant().shard(index_).metrics;
	m.connections.Add();
	m.connections_total.Add();
}

void
Shard::RemoveSession(Session *s)
{
	if (sessions_.erase(s->id()) > 0)
	{
		s->tenant().shard(index_).metrics.connections.Sub();
		closed_since_trim_++;
	}
}

void
Shard::DisconnectTenant(const Tenant *tenant)
{
	std::vector<Session *> of;
	for (auto &[id, s] : sessions_)
		if (&s->tenant() == tenant)
			of.push_back(s);
	for (Session *s : of)
		s->ServerDisconnect();
}

void
Shard::SendLater(uint64_t session_id, std::shared_ptr<const Frame> frame, int64_t due_ms)
{
	delayed_.emplace(due_ms, Delayed{session_id, std::move(frame), -1, {}});
	ArmTimer();
}

void
Shard::OnAcceptable()
{
	int fd;
	int64_t now = NowMs();
	while ((fd = AcceptOne(listen_fd_)) >= 0)
		gate_.Add(fd, now);
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
	{
		/*
		 * Out of descriptors: the listener stays readable, and accepting again
		 * at once would spin. Stop watching it until the next timer tick.
		 */
		Log(LogLevel::kWarning, "shard", "shard %d: cannot accept: %s; pausing for a second",
		    index_, strerror(errno));
		lws_rx_flow_control(listener_wsi_, 0);
		listener_paused_ = true;
	}
}

void
Shard::OnHead(int fd, HeadStatus st, const UpgradeRequest &req, std::string_view head)
{
	if (st == HeadStatus::kMalformed)
	{
		Reject(fd, 400, R"({"error":"Bad request"})");
		return;
	}
	accepted_.erase(fd);
	if (req.websocket)
	{
		/* the tenant from the Host (PROTOCOL.md 1.3) */
		std::shared_ptr<const TenantSet> set = hub_.tenants();
		std::shared_ptr<Tenant> tenant = set ? set->Resolve(req.host) : nullptr;
		if (tenant && tenant->draining.load(std::memory_order_acquire))
			tenant = nullptr; /* removed by a reload a moment ago */
		ConnectCheck c = CheckConnect(req, tenant ? &tenant->config() : nullptr,
		                              static_cast<int64_t>(time(nullptr)));
		if (c.status == 403 && !tenant && !c.body.empty() && set)
			set->LogUnknownHost("shard", req.host);
		/* then the tenant's limits (PROTOCOL.md 1.4 rows 5 and 6) */
		if (c.status == 0 && tenant->users.load(std::memory_order_relaxed) >=
		                         static_cast<int64_t>(tenant->config().max_concurrent_users))
		{
			c.status = 429;
			c.body = R"({"error":"Too many connected users"})";
		}
		else if (c.status == 0 &&
		         tenant->join_rate.Average(NowMs()) >= tenant->config().max_joins_per_second)
		{
			c.status = 429;
			c.body = R"({"error":"Too many joins per second"})";
		}
		if (c.status != 0)
		{
			Reject(fd, c.status, c.body);
			return;
		}
		c.tenant = std::move(tenant);
		accepted_.emplace(fd, std::move(c));
	}
	/*
	 * lws 4.1 treats a %0A or %0D in the URL as the end of the request line, so
	 * a token pasted with a newline (which upstream accepts: it strips
	 * whitespace) would break its parse. Hand lws a copy of the head without
	 * those escapes; every other request is read by lws from the socket itself.
	 */
	std::string cleaned;
	if (req.websocket && StripEncodedLineBreaks(head, cleaned) && cleaned.size() <= kMaxReadbuf)
	{
		/* consume the head we peeked at: lws gets the cleaned copy instead */
		std::string sink(head.size(), '\0');
		if (recv(fd, sink.data(), sink.size(), MSG_DONTWAIT) == static_cast<ssize_t>(head.size()))
		{
			if (lws_adopt_socket_vhost_readbuf(vhost_, fd, cleaned.data(), cleaned.size()) ==
			    nullptr)
				accepted_.erase(fd);
			return;
		}
	}
	/* lws now reads the request we only peeked at; on failure it closes fd */
	if (lws_adopt_socket_vhost(vhost_, fd) == nullptr)
		accepted_.erase(fd);
}

void
Shard::Reject(int fd, int status, const std::string &body)
{
	Log(LogLevel::kInfo, "shard", "connect refused status=%d %s", status, body.c_str());
	std::string type = body.empty() ? "" : "application/json";
	std::string response = HttpResponse(status, type, body, true);
	int backoff = config_.connect_error_backoff_ms;
	if (backoff > 0)
	{
		/*
		 * Upstream sleeps before answering to slow reconnect storms. A loop must
		 * not sleep: the socket waits on the shard timer, outside lws.
		 */
		delayed_.emplace(NowMs() + backoff, Delayed{0, nullptr, fd, std::move(response)});
		ArmTimer();
		return;
	}
	DrainSocket(fd);
	ssize_t ignored = send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)ignored;
	close(fd);
}

void
Shard::ArmTimer()
{
	if (context_ == nullptr)
		return;
	int64_t now = NowMs();
	int64_t next = now + kTimerTickMs;
	if (!delayed_.empty() && delayed_.begin()->first < next)
		next = delayed_.begin()->first;
	lws_usec_t us = static_cast<lws_usec_t>(next > now ? next - now : 0) * 1000;
	lws_sul_schedule(context_, 0, &timer_.sul, TimerCb, us);
}

void
Shard::TimerCb(lws_sorted_usec_list_t *sul)
{
	reinterpret_cast<TimerSul *>(sul)->shard->OnTimer();
}

void
Shard::OnTimer()
{
	int64_t now = NowMs();
	if (listener_paused_)
	{
		lws_rx_flow_control(listener_wsi_, 1);
		listener_paused_ = false;
	}
	while (!delayed_.empty() && delayed_.begin()->first <= now)
	{
		Delayed d = std::move(delayed_.begin()->second);
		delayed_.erase(delayed_.begin());
		if (d.fd >= 0)
		{
			/* a refused upgrade whose back-off is over: answer and hang up */
			DrainSocket(d.fd);
			ssize_t ignored =
			    send(d.fd, d.response.data(), d.response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)ignored;
			close(d.fd);
			continue;
		}
		auto it = sessions_.find(d.session_id);
		if (it != sessions_.end())
		{
			it->second->DelayedReplyDue();
			it->second->SendControl(std::move(d.frame));
		}
	}
	/* channels whose token expired end now (PROTOCOL.md 3.6), checked once a second */
	/* the tenant's events average, over every shard's counts (PROTOCOL.md 3.7) */
	if (index_ == 0)
	{
		if (std::shared_ptr<const TenantSet> set = hub_.tenants())
			for (const auto &t : set->list)
				t->events_limited.store(t->EventsAverage(now) >= t->config().max_events_per_second,
				                        std::memory_order_relaxed);
	}
	int64_t now_s = static_cast<int64_t>(time(nullptr));
	if (now_s != last_expiry_check_s_)
	{
		last_expiry_check_s_ = now_s;
		for (auto &[id, s] : sessions_)
			s->ExpireChannels(now_s);
		TellStreamLosses(now);
		for (auto &[id, s] : sessions_)
			if (s->loss_pending())
				s->FlushLossNotices(now);
		if (closed_since_trim_ >= kTrimAfterCloses)
		{
			/* after a wave of closes, give the freed pages back (glibc keeps them otherwise) */
			closed_since_trim_ = 0;
			malloc_trim(0);
		}
	}
	if (now - last_sweep_ms_ >= kSweepEveryMs)
	{
		last_sweep_ms_ = now;
		gate_.Expire(now, kHeadTimeoutMs);
		for (auto &[id, s] : sessions_)
		{
			if (now - s->last_rx_ms() > config_.idle_timeout_ms)
				s->RequestClose(LWS_CLOSE_STATUS_NORMAL, "idle timeout");
		}
	}
	ArmTimer();
}

int
Shard::Callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	auto *slot = static_cast<SessionSlot *>(user);
	struct lws_context *ctx = lws_get_context(wsi);
	Shard *shard = ctx ? static_cast<Shard *>(lws_context_user(ctx)) : nullptr;
	if (shard == nullptr)
		return 0;

	try
	{
		switch (reason)
		{
		case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
			if (shard->stop_.load(std::memory_order_acquire))
				ev_break(shard->loop_, EVBREAK_ALL);
			else
				shard->DrainInbox();
			return 0;

		case LWS_CALLBACK_RAW_RX_FILE:
			/* one of our two descriptors is readable: the listener or the gate */
			if (lws_get_socket_fd(wsi) == shard->listen_fd_)
				shard->OnAcceptable();
			else
				shard->gate_.Poll(
				    [shard](int fd, HeadStatus st, const UpgradeRequest &req, std::string_view head)
				    { shard->OnHead(fd, st, req, head); });
			return 0;

		case LWS_CALLBACK_RAW_CLOSE_FILE:
			return 0;

		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			/* checked before lws saw it (OnHead); anything else is not ours to upgrade */
			return shard->accepted_.count(lws_get_socket_fd(wsi)) ? 0 : -1;

		case LWS_CALLBACK_ESTABLISHED:
		{
			auto it = shard->accepted_.find(lws_get_socket_fd(wsi));
			if (it == shard->accepted_.end())
				return -1;
			ConnectCheck c = std::move(it->second);
			shard->accepted_.erase(it);
			if (c.tenant->draining.load(std::memory_order_acquire))
				return -1; /* its tenant was removed while the upgrade went on */
			auto s = std::make_unique<Session>(*shard, wsi, std::move(c.tenant),
			                                   shard->NextSessionId(), c.vsn, std::move(c.claims),
			                                   std::move(c.token), std::move(c.headers_json));
			slot->session = s.release(); /* owned by the slot until CLOSED */
			shard->AddSession(slot->session);
			return 0;
		}

		case LWS_CALLBACK_RECEIVE:
			if (slot == nullptr || slot->session == nullptr)
				return -1;
			return slot->session->OnReceive(static_cast<const char *>(in), len);

		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (slot == nullptr || slot->session == nullptr)
				return 0;
			return slot->session->OnWritable();

		case LWS_CALLBACK_CLOSED:
			if (slot != nullptr && slot->session != nullptr)
			{
				shard->RemoveSession(slot->session);
				std::unique_ptr<Session> gone(slot->session);
				slot->session = nullptr;
			}
			return 0;

		case LWS_CALLBACK_HTTP:
			return HttpOnRequest(*shard, wsi, slot, static_cast<const char *>(in));

		case LWS_CALLBACK_HTTP_BODY:
			return HttpOnBody(*shard, wsi, slot, static_cast<const char *>(in), len);

		case LWS_CALLBACK_HTTP_BODY_COMPLETION:
			return HttpOnBodyComplete(*shard, wsi, slot);

		case LWS_CALLBACK_HTTP_WRITEABLE:
			return HttpOnWritable(*shard, wsi, slot);

		case LWS_CALLBACK_CLOSED_HTTP:
		case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
			HttpFree(*shard, slot);
			return 0;

		default:
			return 0;
		}
	}
	catch (const std::exception &e)
	{
		/* a bug in one connection's handling closes that connection only */
		Log(LogLevel::kError, "shard", "callback reason=%d: %s", static_cast<int>(reason),
		    e.what());
		return -1;
	}
}

} // namespace rt::fanout
