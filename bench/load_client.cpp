/*
 * load_client.cpp: broadcast load generator for realtime-fanout and for the
 * baseline server (bench/broadcast.sh, docs/PERFORMANCE.md). Not a test.
 *
 * One process. The main thread mints an HS256 JWT, connects S subscribers and
 * one publisher over plain TCP sockets with a minimal RFC 6455 client of its
 * own (client frames masked), and joins them all to one channel as
 * @supabase/realtime-js 2.119.0 does with its defaults (URL with apikey and
 * vsn=2.0.0, broadcast self:false ack:false, presence disabled, heartbeat
 * every 25 s); unlike Node's ws it offers no permessage-deflate, which the
 * server does not negotiate anyway (PROTOCOL.md 1.2). It then publishes:
 * binary kind-3 frames at a fixed rate for T seconds, each payload carrying
 * its CLOCK_MONOTONIC send time and a sequence number. Receiver threads own
 * disjoint sets of subscribers (one epoll each), decode kind-4 deliveries,
 * check per-subscriber order and record latency (receive time minus the
 * send stamp; CLOCK_MONOTONIC is system-wide, so this also holds across
 * processes). The outcome is one "result key=value ..." line on stdout.
 *
 * Threads: main (connect, join, publish, report); --threads receivers.
 * Nothing is shared between receivers; the main thread reads their counters
 * only after joining them.
 */
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.hpp"
#include "histogram.hpp"
#include "ws_client.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rt::bench
{

constexpr int64_t kHeartbeatNs = 25 * kNsPerSec; /* realtime-js heartbeatIntervalMs */
constexpr size_t kRxChunk = 64 * 1024;           /* bytes asked of one read() */
constexpr std::string_view kJoinRef = "1";       /* first join on a fresh socket */

/* Command-line settings. */
struct Options : Endpoint
{
	std::string channel = "bench";
	std::string event = "bench";
	int subs = 100;
	double rate = 10000;   /* messages per second from the publisher */
	double seconds = 10;   /* publishing time */
	int pad = 64;          /* bytes of "pad" in each payload */
	int threads = 1;       /* receiver threads */
	double drain = 5;      /* seconds to wait for stragglers after publishing */
	int stalled = 0;       /* more subscribers that join and then never read */
	double join_wait = 20; /* seconds to wait for every join reply */
};

/* Counters of one receiver thread (or of the whole run once merged). */
struct Stats
{
	Histogram latency;
	uint64_t delivered = 0;    /* kind-4 frames with a readable seq */
	uint64_t gaps = 0;         /* seq jumps forward: messages not (yet) seen */
	uint64_t out_of_order = 0; /* seq below one already seen */
	uint64_t bad = 0;          /* kind-4 frames we could not read */
	uint64_t other = 0;        /* text or other binary frames after the join */
	uint64_t closed = 0;       /* connections the server closed */
	int64_t last_rx_ns = 0;

	void
	Merge(const Stats &o)
	{
		latency.Merge(o.latency);
		delivered += o.delivered;
		gaps += o.gaps;
		out_of_order += o.out_of_order;
		bad += o.bad;
		other += o.other;
		closed += o.closed;
		last_rx_ns = std::max(last_rx_ns, o.last_rx_ns);
	}
};

/* Run-wide state the main thread publishes to receivers. */
struct Shared
{
	std::atomic<int> joined{0};
	std::atomic<int> join_failed{0};
	std::atomic<bool> publishing_done{false};
	std::atomic<uint64_t> published{0};
	std::atomic<int64_t> publish_end_ns{0};
	int64_t drain_ns = 0;
};

/* One WebSocket connection (a subscriber, or the publisher). */
struct Conn
{
	Fd fd;
	RxBuffer rx{kRxChunk};
	bool joined = false;
	bool closed = false;
	uint64_t next_ref = 2; /* "1" was the join */
	int64_t next_heartbeat_ns = 0;
	uint64_t next_seq = 0; /* seq expected next */
	uint64_t delivered = 0;
};

/* Send one text frame the way realtime-js does (masked). */
bool
SendText(Conn &c, MaskSource &masks, std::string_view text)
{
	std::string out;
	AppendClientFrame(out, kOpText, text, masks.Next());
	return WriteAll(c.fd.Get(), out);
}

/* realtime-js heartbeat on topic "phoenix". */
bool
SendHeartbeat(Conn &c, MaskSource &masks)
{
	std::string text =
	    R"([null,")" + std::to_string(c.next_ref++) + R"(","phoenix","heartbeat",{}])";
	return SendText(c, masks, text);
}

/* Connect and upgrade as realtime-js does; bytes past the 101 stay in c.rx. */
void
ConnectWebSocket(Conn &c, const Options &o, const std::string &jwt)
{
	std::string leftover;
	c.fd = OpenWebSocket(o.host, o.port, o.path + "?apikey=" + jwt + "&vsn=2.0.0", leftover);
	c.rx.Load(leftover);
}

/* Handles frames for one thread's connections. */
class Receiver : public FrameReceiver<Receiver, Conn, kRxChunk>
{
	friend class FrameReceiver<Receiver, Conn, kRxChunk>;

public:
	Receiver(const Options &o, Shared &shared, std::vector<std::unique_ptr<Conn>> conns)
	    : o_(o), shared_(shared), conns_(std::move(conns)), topic_("realtime:" + o.channel)
	{
	}

	/* Thread body: epoll over our subscribers until every message arrived or
	 * the drain deadline passed. */
	void
	Run()
	{
		ep_ = Fd(epoll_create1(EPOLL_CLOEXEC));
		if (ep_.Get() < 0)
			Die(std::string("epoll_create1: ") + strerror(errno));
		for (auto &c : conns_)
		{
			epoll_event ev{};
			ev.events = EPOLLIN;
			ev.data.ptr = c.get();
			if (epoll_ctl(ep_.Get(), EPOLL_CTL_ADD, c->fd.Get(), &ev) != 0)
				Die(std::string("epoll_ctl: ") + strerror(errno));
			/* bytes that came with the 101 response */
			Consume(*c, MonoNs());
		}
		std::vector<epoll_event> events(512);
		int64_t last_housekeeping = 0;
		for (;;)
		{
			int n = epoll_wait(ep_.Get(), events.data(), int(events.size()), 20);
			if (n < 0 && errno != EINTR)
				Die(std::string("epoll_wait: ") + strerror(errno));
			for (int i = 0; i < n; i++)
				ReadSome(*static_cast<Conn *>(events[size_t(i)].data.ptr));
			int64_t now = MonoNs();
			if (now - last_housekeeping < 10000000)
				continue;
			last_housekeeping = now;
			for (auto &c : conns_)
			{
				if (!c->closed && c->joined && now >= c->next_heartbeat_ns)
				{
					SendHeartbeat(*c, masks_);
					c->next_heartbeat_ns = now + kHeartbeatNs;
				}
			}
			if (Finished(now))
				break;
		}
		cpu_ns_ = RusageCpuNs(RUSAGE_THREAD);
	}

	const Stats &
	GetStats() const
	{
		return stats_;
	}
	int64_t
	CpuNs() const
	{
		return cpu_ns_;
	}
	std::vector<std::unique_ptr<Conn>> &
	Conns()
	{
		return conns_;
	}

private:
	/* True once publishing is over and all expected deliveries are in, or the
	 * drain time has run out, or every connection is gone. */
	bool
	Finished(int64_t now)
	{
		if (!shared_.publishing_done.load(std::memory_order_acquire))
			return false;
		uint64_t published = shared_.published.load();
		bool all = true;
		for (auto &c : conns_)
			if (!c->closed && c->delivered < published)
				all = false;
		return all || now > shared_.publish_end_ns.load() + shared_.drain_ns;
	}

	/* why: nullptr while the connection lives */
	void
	MarkClosed(Conn &c, const char *why)
	{
		if (why == nullptr || c.closed)
			return;
		c.closed = true;
		stats_.closed++;
		if (stats_.closed <= 3)
			std::fprintf(stderr, "load_client: subscriber connection closed by server (%s)\n", why);
		epoll_ctl(ep_.Get(), EPOLL_CTL_DEL, c.fd.Get(), nullptr); /* EOF stays readable */
		shutdown(c.fd.Get(), SHUT_RDWR);
	}

	void
	OnMessage(Conn &c, uint8_t opcode, std::string_view m, int64_t now)
	{
		if (opcode == kOpBinary && !m.empty() && m[0] == 4)
		{
			OnUserBroadcast(c, m, now);
			return;
		}
		if (opcode == kOpText && !c.joined)
		{
			TextHead h;
			if (ParseTextHead(m, h) && h.event == "phx_reply" && h.ref == "1")
			{
				if (m.find(R"("status":"ok")") != std::string_view::npos)
				{
					c.joined = true;
					c.next_heartbeat_ns = now + kHeartbeatNs;
					shared_.joined.fetch_add(1);
				}
				else
				{
					std::fprintf(stderr, "load_client: join refused: %.*s\n", int(m.size()),
					             m.data());
					shared_.join_failed.fetch_add(1);
				}
				return;
			}
		}
		/* heartbeat replies, system messages: counted, the first few shown */
		if (stats_.other++ < 3)
			std::fprintf(stderr, "load_client: other frame (opcode %d): %.*s\n", opcode,
			             int(std::min<size_t>(m.size(), 300)), m.data());
	}

	/* Kind 4; the payload is {"t":<ns>,"seq":<n>,"pad":"..."} */
	void
	OnUserBroadcast(Conn &c, std::string_view m, int64_t now)
	{
		UserBroadcast b;
		if (!DecodeUserBroadcast(m, b) || b.encoding != 1 || b.topic != topic_ ||
		    b.event != o_.event)
		{
			stats_.bad++;
			return;
		}
		std::string_view payload = b.payload.substr(0, 64); /* stamp and seq lead the object */
		uint64_t t = 0, seq = 0;
		if (!ReadNumberAfter(payload, R"({"t":)", t) || !ReadNumberAfter(payload, R"("seq":)", seq))
		{
			stats_.bad++;
			return;
		}
		stats_.latency.Add(now - int64_t(t));
		stats_.delivered++;
		stats_.last_rx_ns = now;
		c.delivered++;
		if (seq == c.next_seq)
			c.next_seq++;
		else if (seq > c.next_seq)
		{
			stats_.gaps += seq - c.next_seq;
			c.next_seq = seq + 1;
		}
		else
			stats_.out_of_order++;
	}

	const Options &o_;
	Shared &shared_;
	std::vector<std::unique_ptr<Conn>> conns_;
	std::string topic_;
	Fd ep_;
	Stats stats_;
	int64_t cpu_ns_ = 0;
};

/* Blocking read of frames on the publisher (or a stalled subscriber) until its join reply
 * arrives. */
void
AwaitJoin(Conn &c, double timeout_s)
{
	int64_t deadline = MonoNs() + int64_t(timeout_s * kNsPerSec);
	for (;;)
	{
		while (c.rx.begin < c.rx.end)
		{
			ServerFrame f;
			int r = ParseServerFrame(c.rx.bytes.data() + c.rx.begin, c.rx.end - c.rx.begin, f);
			if (r < 0)
				Die("publisher: malformed frame from server");
			if (r == 0)
				break;
			c.rx.begin += f.total;
			std::string_view m(reinterpret_cast<const char *>(f.payload), f.len);
			TextHead h;
			if (f.opcode == kOpText && ParseTextHead(m, h) && h.event == "phx_reply" &&
			    h.ref == "1")
			{
				if (m.find(R"("status":"ok")") == std::string_view::npos)
					Die("publisher join refused: " + std::string(m));
				c.joined = true;
				std::memmove(c.rx.bytes.data(), c.rx.bytes.data() + c.rx.begin,
				             c.rx.end - c.rx.begin);
				c.rx.end -= c.rx.begin;
				c.rx.begin = 0;
				return;
			}
		}
		if (MonoNs() > deadline)
			Die("publisher: no join reply in time");
		if (c.rx.begin == c.rx.end)
			c.rx.begin = c.rx.end = 0;
		ssize_t n = recv(c.fd.Get(), c.rx.bytes.data() + c.rx.end, c.rx.bytes.size() - c.rx.end, 0);
		if (n <= 0)
			Die("publisher: connection closed or timed out before the join reply");
		c.rx.end += size_t(n);
	}
}

/* Counters of the publishing loop. */
struct PublishResult
{
	uint64_t published = 0;
	int64_t start_ns = 0;
	int64_t end_ns = 0;
	int64_t max_lag_ns = 0; /* worst delay of a send behind its schedule */
	uint64_t self_deliveries = 0;
	bool failed = false;
};

/* Drop (but look at) whatever the server sent the publisher. */
void
DrainPublisher(Conn &c, PublishResult &r)
{
	for (;;)
	{
		if (c.rx.end == c.rx.bytes.size())
			c.rx.begin = c.rx.end = 0; /* only replies arrive here; keep no partial */
		ssize_t n = recv(c.fd.Get(), c.rx.bytes.data() + c.rx.end, c.rx.bytes.size() - c.rx.end,
		                 MSG_DONTWAIT);
		if (n <= 0)
			return;
		c.rx.end += size_t(n);
		while (c.rx.begin < c.rx.end)
		{
			ServerFrame f;
			if (ParseServerFrame(c.rx.bytes.data() + c.rx.begin, c.rx.end - c.rx.begin, f) <= 0)
				break;
			c.rx.begin += f.total;
			if (f.opcode == kOpBinary && f.len > 0 && f.payload[0] == 4)
				r.self_deliveries++;
		}
		if (c.rx.begin == c.rx.end)
			c.rx.begin = c.rx.end = 0;
	}
}

/*
 * Publish kind-3 frames at o.rate for o.seconds. Message i is due at
 * start + i / rate; whatever is due is stamped with the current time and
 * written at once, then the thread sleeps to the next due time. Stamps are
 * the real send time; max_lag_ns says how far behind schedule we ever were.
 */
PublishResult
Publish(Conn &c, const Options &o)
{
	PublishResult r;
	MaskSource masks;
	const std::string topic = "realtime:" + o.channel;
	const std::string pad(size_t(o.pad), 'x');
	const double interval_ns = double(kNsPerSec) / o.rate;
	const uint64_t total = uint64_t(std::llround(o.rate * o.seconds));
	std::string out, payload, frame;
	int flags = fcntl(c.fd.Get(), F_GETFL);
	fcntl(c.fd.Get(), F_SETFL, flags & ~O_NONBLOCK);

	r.start_ns = MonoNs();
	int64_t next_heartbeat = r.start_ns + kHeartbeatNs;
	while (r.published < total)
	{
		int64_t now = MonoNs();
		uint64_t due =
		    std::min<uint64_t>(total, uint64_t(double(now - r.start_ns) / interval_ns) + 1);
		out.clear();
		for (int burst = 0; r.published < due && burst < 1000; burst++)
		{
			uint64_t seq = r.published;
			int64_t scheduled = r.start_ns + int64_t(double(seq) * interval_ns);
			r.max_lag_ns = std::max(r.max_lag_ns, now - scheduled);
			std::string ref = std::to_string(c.next_ref++);
			payload = R"({"t":)" + std::to_string(now) + R"(,"seq":)" + std::to_string(seq) +
			          R"(,"pad":")" + pad + R"("})";
			frame.clear();
			AppendUserPush(frame, kJoinRef, ref, topic, o.event, payload);
			AppendClientFrame(out, kOpBinary, frame, masks.Next());
			r.published++;
		}
		if (!WriteAll(c.fd.Get(), out))
		{
			std::fprintf(stderr, "load_client: publisher write failed: %s\n", strerror(errno));
			r.failed = true;
			break;
		}
		DrainPublisher(c, r);
		if (now >= next_heartbeat)
		{
			SendHeartbeat(c, masks);
			next_heartbeat = now + kHeartbeatNs;
		}
		if (r.published < due)
			continue; /* behind: no sleep */
		int64_t wake = r.start_ns + int64_t(double(r.published) * interval_ns);
		timespec ts{time_t(wake / kNsPerSec), long(wake % kNsPerSec)};
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR)
		{
		}
	}
	r.end_ns = MonoNs();
	return r;
}

/* What a stalled subscriber got once it reads again: the server should have told it of
 * the loss and closed it (PROTOCOL.md 3.10, docs/OPERATIONS.md slow clients). */
struct StalledOutcome
{
	uint64_t delivered = 0;
	bool told = false;        /* a `system` loss notice (reason slow_client) */
	bool closed = false;      /* the server closed the socket */
	bool close_frame = false; /* ... with a WebSocket close frame (code and reason) */
};

/* (Out of line: inlined into ReadFrames, GCC 12 warns of a moved-from string.) */
[[gnu::noinline]] void
NoteStalled(StalledOutcome &out, uint8_t opcode, std::string_view m)
{
	if (opcode == kOpBinary && m.starts_with('\x04'))
		out.delivered++;
	else if (opcode == kOpText && m.find("\"system\"") != std::string_view::npos &&
	         m.find("slow_client") != std::string_view::npos)
		out.told = true;
}

StalledOutcome
ReadStalled(Conn &c, MaskSource &masks, double timeout_s)
{
	StalledOutcome out;
	fcntl(c.fd.Get(), F_SETFL, fcntl(c.fd.Get(), F_GETFL) | O_NONBLOCK);
	int64_t deadline = MonoNs() + int64_t(timeout_s * kNsPerSec);
	auto on_message = [&](uint8_t opcode, std::string_view m, int64_t)
	{
		NoteStalled(out, opcode, m);
		return true;
	};
	while (!out.closed && MonoNs() < deadline)
	{
		const char *why = ReadFrames(c.fd.Get(), c.rx, kRxChunk, masks, on_message);
		if (why != nullptr)
		{
			out.closed = true;
			out.close_frame = std::string_view(why) == "close frame";
		}
		else
			usleep(1000);
	}
	return out;
}

/* Polite close: a masked close frame with code 1000, then FIN. */
void
CloseConn(Conn &c, MaskSource &masks)
{
	if (c.closed)
		return;
	std::string out;
	AppendClientFrame(out, kOpClose, std::string_view("\x03\xe8", 2), masks.Next());
	send(c.fd.Get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(c.fd.Get(), SHUT_WR);
}

void
Usage()
{
	std::fprintf(stderr, "usage: load_client --port N --secret S [--host 127.0.0.1] [--subs 100]\n"
	                     "         [--rate 10000] [--seconds 10] [--pad 64] [--threads 1]\n"
	                     "         [--channel bench] [--event bench] [--drain 5] [--stalled 0]\n"
	                     "         [--path /realtime/v1/websocket]\n"
	                     "       load_client --free-port   (print a free loopback TCP port)\n");
	std::exit(2);
}

Options
ParseArgs(int argc, char **argv)
{
	Options o;
	for (int i = 1; i < argc; i++)
	{
		std::string_view a = argv[i];
		if (a == "--free-port")
		{
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			sockaddr_in addr{};
			addr.sin_family = AF_INET;
			addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			socklen_t len = sizeof(addr);
			if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
			    getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0)
				Die("cannot find a free port");
			std::printf("%d\n", ntohs(addr.sin_port));
			close(fd);
			std::exit(0);
		}
		if (i + 1 >= argc)
			Usage();
		const char *v = argv[++i];
		if (EndpointOption(a, v, o, kWithSecret))
			continue;
		if (a == "--channel")
			o.channel = v;
		else if (a == "--event")
			o.event = v;
		else if (a == "--subs")
			o.subs = int(ParseDouble("--subs", v));
		else if (a == "--rate")
			o.rate = ParseDouble("--rate", v);
		else if (a == "--seconds")
			o.seconds = ParseDouble("--seconds", v);
		else if (a == "--pad")
			o.pad = std::atoi(v);
		else if (a == "--threads")
			o.threads = int(ParseDouble("--threads", v));
		else if (a == "--drain")
			o.drain = ParseDouble("--drain", v);
		else if (a == "--stalled")
			o.stalled = std::atoi(v);
		else
			Usage();
	}
	if (o.port <= 0 || o.secret.empty() || o.pad < 0 || o.threads < 1)
		Usage();
	if (("realtime:" + o.channel).size() > 255 || o.event.size() > 255)
		Die("channel or event too long for a binary frame");
	return o;
}

int
Main(int argc, char **argv)
{
	Options o = ParseArgs(argc, argv);
	RaiseFdLimit();
	const std::string jwt = MintJwt(o.secret);
	const std::string topic = "realtime:" + o.channel;
	const std::string join = JoinMessage(topic, jwt);
	MaskSource masks;
	Shared shared;
	shared.drain_ns = int64_t(o.drain * kNsPerSec);

	/* Connect and join every subscriber, blocking, then hand them to receivers. */
	int threads = std::min(o.threads, o.subs);
	std::vector<std::vector<std::unique_ptr<Conn>>> groups(static_cast<size_t>(threads));
	for (int i = 0; i < o.subs; i++)
	{
		auto c = std::make_unique<Conn>();
		ConnectWebSocket(*c, o, jwt);
		if (!SendText(*c, masks, join))
			Die(std::string("join write: ") + strerror(errno));
		fcntl(c->fd.Get(), F_SETFL, fcntl(c->fd.Get(), F_GETFL) | O_NONBLOCK);
		groups[size_t(i % threads)].push_back(std::move(c));
	}
	Conn pub;
	ConnectWebSocket(pub, o, jwt);
	if (!SendText(pub, masks, join))
		Die("publisher join write failed");
	/* the stalled ones: joined like the others, then never read until the end */
	std::vector<std::unique_ptr<Conn>> stalled;
	for (int i = 0; i < o.stalled; i++)
	{
		auto c = std::make_unique<Conn>();
		ConnectWebSocket(*c, o, jwt);
		if (!SendText(*c, masks, join))
			Die("stalled subscriber join write failed");
		AwaitJoin(*c, o.join_wait);
		stalled.push_back(std::move(c));
	}

	std::vector<std::unique_ptr<Receiver>> receivers;
	std::vector<std::thread> pool;
	for (auto &g : groups)
		receivers.push_back(std::make_unique<Receiver>(o, shared, std::move(g)));
	for (auto &r : receivers)
		pool.emplace_back([&r] { r->Run(); });
	AwaitJoin(pub, o.join_wait);

	int64_t join_deadline = MonoNs() + int64_t(o.join_wait * kNsPerSec);
	while (shared.joined.load() + shared.join_failed.load() < o.subs && MonoNs() < join_deadline)
		usleep(1000);
	if (shared.joined.load() < o.subs)
	{
		std::fprintf(stderr, "load_client: only %d of %d subscribers joined (%d refused)\n",
		             shared.joined.load(), o.subs, shared.join_failed.load());
		std::_Exit(3);
	}
	std::fprintf(stderr,
	             "load_client: %d subscribers + 1 publisher joined %s; publishing %.0f msg/s "
	             "for %.1f s\n",
	             o.subs, topic.c_str(), o.rate, o.seconds);

	int64_t cpu_before = ProcessCpuNs();
	PublishResult pr = Publish(pub, o);
	shared.published.store(pr.published);
	shared.publish_end_ns.store(pr.end_ns);
	shared.publishing_done.store(true, std::memory_order_release);
	for (auto &t : pool)
		t.join();
	int64_t wall_end = MonoNs();
	int64_t cpu_used = ProcessCpuNs() - cpu_before;

	StalledOutcome st_all;
	uint64_t st_told = 0, st_closed = 0, st_close_frame = 0;
	for (auto &c : stalled)
	{
		StalledOutcome st = ReadStalled(*c, masks, 10);
		st_all.delivered += st.delivered;
		st_told += st.told;
		st_closed += st.closed;
		st_close_frame += st.close_frame;
	}

	Stats total;
	int64_t receiver_cpu = 0;
	for (auto &r : receivers)
	{
		total.Merge(r->GetStats());
		receiver_cpu += r->CpuNs();
		for (auto &c : r->Conns())
			CloseConn(*c, masks);
	}
	CloseConn(pub, masks);

	uint64_t expected = pr.published * uint64_t(o.subs);
	uint64_t lost = expected > total.delivered ? expected - total.delivered : 0;
	int64_t span = std::max<int64_t>(1, std::max(total.last_rx_ns, pr.end_ns) - pr.start_ns);
	double wall = double(wall_end - pr.start_ns) / kNsPerSec;
	auto ms = [](double ns) { return ns / 1e6; };
	std::printf(
	    "result subs=%d rate=%.0f seconds=%.1f pad=%d threads=%d published=%" PRIu64
	    " publish_rate=%.1f expected=%" PRIu64 " delivered=%" PRIu64 " lost=%" PRIu64
	    " gaps=%" PRIu64 " out_of_order=%" PRIu64 " bad=%" PRIu64 " other=%" PRIu64
	    " closed=%" PRIu64 " self=%" PRIu64
	    " deliveries_per_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f"
	    " max_ms=%.3f pub_lag_max_ms=%.3f client_cpu_pct=%.0f receiver_cpu_pct=%.0f"
	    " receiver_ns_per_delivery=%.0f stalled=%d stalled_delivered=%" PRIu64
	    " stalled_told=%" PRIu64 " stalled_closed=%" PRIu64 " stalled_close_frame=%" PRIu64 "\n",
	    o.subs, o.rate, o.seconds, o.pad, threads, pr.published,
	    double(pr.published) * kNsPerSec / double(std::max<int64_t>(1, pr.end_ns - pr.start_ns)),
	    expected, total.delivered, lost, total.gaps, total.out_of_order, total.bad, total.other,
	    total.closed, pr.self_deliveries, double(total.delivered) * kNsPerSec / double(span),
	    ms(total.latency.Quantile(0.5)), ms(total.latency.Quantile(0.9)),
	    ms(total.latency.Quantile(0.99)), ms(total.latency.Quantile(0.999)),
	    ms(double(total.latency.Max())), ms(double(pr.max_lag_ns)),
	    100.0 * double(cpu_used) / kNsPerSec / wall,
	    100.0 * double(receiver_cpu) / kNsPerSec / wall,
	    double(receiver_cpu) / double(std::max<uint64_t>(1, total.delivered)), o.stalled,
	    st_all.delivered, st_told, st_closed, st_close_frame);
	std::fflush(stdout);
	return pr.failed ? 4 : 0;
}

} // namespace rt::bench

int
main(int argc, char **argv)
{
	rt::bench::g_program_name = "load_client";
	return rt::bench::RunOrReport([&] { return rt::bench::Main(argc, argv); });
}
