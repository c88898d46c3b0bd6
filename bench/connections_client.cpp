/*
 * connections_client.cpp: connection scale (bench/connections.sh). N idle sockets, each
 * as @supabase/realtime-js 2.119.0 holds one: vsn 2.0.0, one channel joined, a heartbeat
 * every --heartbeat-ms (the client's 25 s). Per cycle:
 *   connect   every socket upgrades and joins one topic; the time until all are joined
 *   hold      --hold-ms of idleness with heartbeats (each answered), then the sidecar's RSS
 *   fan-out   one broadcast (kind 3, as realtime-js sends it) from one more socket joined
 *             with self:false; the time until all N have it (each must, exactly once)
 *   close     every socket closes; once /metrics says none is left, the sidecar's RSS
 * --cycles times, so that a leak shows as RSS that climbs from cycle to cycle.
 *
 * One line per cycle and a summary, "k=v" (bench/connections.sh reads them); a lost
 * join, heartbeat reply or broadcast is a "!!" line and exit status 1.
 */
#include "bench_util.hpp"
#include "ws_client.hpp"

#include <fcntl.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <vector>

namespace rt::bench
{
namespace
{

struct Options : Endpoint
{
	int connections = 1000;
	int cycles = 3;
	int hold_ms = 1000;       /* idle time per cycle (the first: max(this, heartbeat)) */
	int heartbeat_ms = 25000; /* realtime-js's heartbeatIntervalMs */
	int sidecar_pid = 0;
	bool baseline = false; /* the server is bench/baseline_server: no /metrics */
	std::string topic = "connections-bench";
};

struct Conn
{
	Fd fd;
	RxBuffer rx{4096};
	bool closed = false;
	bool joined = false;
	int broadcasts = 0;
	int64_t next_heartbeat_ns = 0;
	uint64_t heartbeat_ref = 0;
};

/* VmRSS of a process in KiB; -1 if it is gone. */
long
RssKb(int pid)
{
	std::ifstream f("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(f, line))
		if (line.compare(0, 6, "VmRSS:") == 0)
			return std::atol(line.c_str() + 6);
	return -1;
}

/* One HTTP/1.1 request on a fresh connection (Connection: close); the whole response. */
std::string
Http(const Options &o, const std::string &method, const std::string &target,
     const std::string &headers, const std::string &body)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		throw std::runtime_error(std::string("socket: ") + strerror(errno));
	Fd owned(fd);
	timeval tv{10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_port = htons(uint16_t(o.port));
	inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr);
	if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
		throw std::runtime_error(std::string("connect: ") + strerror(errno));
	std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + o.host +
	                  "\r\nConnection: close\r\n" + headers +
	                  "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
	if (!WriteAll(fd, req))
		throw std::runtime_error("http write failed");
	std::string resp;
	char buf[8192];
	for (;;)
	{
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		resp.append(buf, size_t(n));
	}
	return resp;
}

/* The sidecar's realtime_connections_connected gauge (summed over tenants); -1 if unknown. */
long
ConnectedNow(const Options &o)
{
	std::string m = Http(o, "GET", "/metrics", "", "");
	long sum = -1;
	for (size_t at = m.find("\nrealtime_connections_connected"); at != std::string::npos;
	     at = m.find("\nrealtime_connections_connected", at + 1))
	{
		size_t sp = m.find(' ', at + 1), nl = m.find('\n', at + 1);
		if (sp == std::string::npos || sp > nl)
			continue;
		sum = std::max(sum, 0L) + std::atol(m.c_str() + sp + 1);
	}
	return sum;
}

class Bench : public FrameReceiver<Bench, Conn, 4096>
{
	friend class FrameReceiver<Bench, Conn, 4096>;

public:
	explicit Bench(const Options &o)
	    : o_(o), jwt_(MintJwt(o.secret)), target_(o.path + "?apikey=" + jwt_ + "&vsn=2.0.0")
	{
		ep_ = epoll_create1(EPOLL_CLOEXEC);
		if (ep_ < 0)
			throw std::runtime_error("epoll_create1 failed");
	}
	~Bench() { close(ep_); }

	/*
	 * One cycle of n sockets (cycle 0: the warm-up, whose line says "warmup=1"); false if
	 * anything was lost (said in a "!!" line).
	 */
	bool
	Cycle(int cycle, int n, long rss_idle_kb)
	{
		n_ = n;
		/* n subscribers and, last, the sender of the broadcast (self:false: not its own) */
		std::vector<Conn> conns(static_cast<size_t>(n) + 1);
		conns_ = &conns;
		joined_ = 0;
		bool ok = true;
		int64_t t0 = MonoNs();
		/* a storm, as after a deploy: kWindow upgrades in flight at a time */
		std::vector<PendingUpgrade> window;
		for (size_t at = 0; at < conns.size(); at += window.size())
		{
			window.clear();
			for (size_t i = at; i < conns.size() && window.size() < kWindow; i++)
			{
				/* loopback still: 127.0.0.1, .2, ... a few thousand sockets each */
				std::string source = "127.0.0." + std::to_string(1 + i / kPerSource);
				window.push_back(StartUpgrade(o_.host, o_.port, target_, source.c_str()));
			}
			for (size_t k = 0; k < window.size(); k++)
				Open(conns[at + k], at + k, window[k]);
		}
		ok &= WaitFor([&] { return joined_ == n_ + 1; }, 30000, "joined");
		double connect_s = double(MonoNs() - t0) / kNsPerSec;
		int hold = cycle == 1 ? std::max(o_.hold_ms, o_.heartbeat_ms + 1000) : o_.hold_ms;
		uint64_t hb_sent0 = hb_sent_, hb_ok0 = hb_ok_;
		Serve(int64_t(hold) * 1000000);
		/* the heartbeats sent last get their replies */
		ok &= WaitFor([&] { return hb_ok_ == hb_sent_; }, 10000, "heartbeat replies");
		long rss_joined_kb = RssKb(o_.sidecar_pid);

		broadcasts_ = 0;
		std::string push, out;
		AppendUserPush(push, "1", "2", "realtime:" + o_.topic, "scale",
		               R"({"cycle":)" + std::to_string(cycle) + "}");
		AppendClientFrame(out, kOpBinary, push, masks_.Next());
		int64_t tb = MonoNs();
		if (!WriteAll(conns.back().fd.Get(), out))
		{
			std::printf("!! the broadcast could not be sent\n");
			ok = false;
		}
		ok &= WaitFor([&] { return broadcasts_ >= n_; }, 10000, "broadcasts");
		double fanout_ms = double(MonoNs() - tb) / 1e6;
		int dup = 0;
		for (const Conn &c : conns)
			dup += c.broadcasts > 1;
		if (dup > 0)
		{
			std::printf("!! %d sockets had the broadcast more than once\n", dup);
			ok = false;
		}

		if (closed_by_server_ > 0)
		{
			std::printf("!! %d sockets were closed by the sidecar\n", closed_by_server_);
			ok = false;
			closed_by_server_ = 0;
		}
		conns.clear(); /* closes every socket */
		conns_ = nullptr;
		int64_t tc = MonoNs();
		long left = 0;
		if (o_.baseline)
			Sleep(1000); /* no /metrics: a second for the closes to be seen */
		else
			while (MonoNs() - tc < 30 * kNsPerSec && (left = ConnectedNow(o_)) != 0)
				Sleep(50);
		double close_s = double(MonoNs() - tc) / kNsPerSec;
		Sleep(1500); /* the sidecar returns freed memory on its next timer tick */
		long rss_closed_kb = RssKb(o_.sidecar_pid);
		if (left != 0)
		{
			std::printf("!! %ld connections still open on the sidecar 30 s after closing\n", left);
			ok = false;
		}
		double per_conn_b = 1024.0 * double(rss_joined_kb - rss_idle_kb) / double(std::max(1, n));
		std::printf("%scycle=%d connections=%d joined=%d connect_s=%.3f connects_per_s=%.0f "
		            "heartbeats=%llu heartbeat_replies=%llu rss_idle_kb=%ld rss_joined_kb=%ld "
		            "per_conn_b=%.0f received=%d fanout_ms=%.1f close_s=%.2f rss_closed_kb=%ld "
		            "failed=%d\n",
		            cycle == 0 ? "warmup=1 " : "", cycle, n, joined_, connect_s,
		            double(joined_) / std::max(connect_s, 1e-9),
		            (unsigned long long)(hb_sent_ - hb_sent0),
		            (unsigned long long)(hb_ok_ - hb_ok0), rss_idle_kb, rss_joined_kb, per_conn_b,
		            broadcasts_, fanout_ms, close_s, rss_closed_kb, ok ? 0 : 1);
		std::fflush(stdout);
		return ok;
	}

private:
	void
	Open(Conn &c, size_t i, PendingUpgrade &up)
	{
		std::string leftover;
		c.fd = FinishUpgrade(up, leftover);
		c.rx.Load(leftover);
		fcntl(c.fd.Get(), F_SETFL, fcntl(c.fd.Get(), F_GETFL) | O_NONBLOCK);
		std::string out;
		AppendClientFrame(out, kOpText, JoinMessage("realtime:" + o_.topic, jwt_), masks_.Next());
		if (!WriteAll(c.fd.Get(), out))
			throw std::runtime_error("join write failed");
		c.next_heartbeat_ns = MonoNs() + int64_t(o_.heartbeat_ms) * 1000000;
		epoll_event ev{};
		ev.events = EPOLLIN;
		ev.data.u64 = i;
		if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd.Get(), &ev) != 0)
			throw std::runtime_error("epoll_ctl failed");
		Consume(c, MonoNs());
	}

	/* Serve the sockets until done() or ms pass; false (and a "!!" line) on the latter. */
	template <typename F>
	bool
	WaitFor(F &&done, int ms, const char *what)
	{
		int64_t until = MonoNs() + int64_t(ms) * 1000000;
		while (!done() && MonoNs() < until)
			Serve(10 * 1000000);
		if (done())
			return true;
		std::printf("!! not all %s within %d ms (joined %d, heartbeat replies %llu of %llu, "
		            "broadcasts %d of %d)\n",
		            what, ms, joined_, (unsigned long long)hb_ok_, (unsigned long long)hb_sent_,
		            broadcasts_, n_);
		return false;
	}

	/* Read what arrives and send the heartbeats that are due, for ns nanoseconds. */
	void
	Serve(int64_t ns)
	{
		int64_t until = MonoNs() + ns;
		epoll_event evs[256];
		for (int64_t now = MonoNs(); now < until; now = MonoNs())
		{
			int wait_ms = int(std::min<int64_t>((until - now) / 1000000, 100));
			int n = epoll_wait(ep_, evs, 256, std::max(wait_ms, 1));
			for (int k = 0; k < n; k++)
				ReadSome((*conns_)[evs[k].data.u64]);
			if (MonoNs() - heartbeats_checked_ns_ >= 100 * 1000000)
			{
				heartbeats_checked_ns_ = MonoNs();
				Heartbeats(heartbeats_checked_ns_);
			}
		}
	}

	void
	Heartbeats(int64_t now)
	{
		for (Conn &c : *conns_)
		{
			if (c.closed || now < c.next_heartbeat_ns)
				continue;
			c.next_heartbeat_ns = now + int64_t(o_.heartbeat_ms) * 1000000;
			c.heartbeat_ref = ++next_ref_;
			std::string out;
			AppendClientFrame(out, kOpText,
			                  R"([null,")" + std::to_string(c.heartbeat_ref) +
			                      R"(","phoenix","heartbeat",{}])",
			                  masks_.Next());
			if (WriteAll(c.fd.Get(), out))
				hb_sent_++;
		}
	}

	void
	OnMessage(Conn &c, uint8_t opcode, std::string_view m, int64_t)
	{
		UserBroadcast b;
		if (opcode == kOpBinary && DecodeUserBroadcast(m, b))
		{
			if (b.event == "scale")
			{
				c.broadcasts++;
				broadcasts_ += c.broadcasts == 1;
			}
			return;
		}
		TextHead h;
		if (opcode != kOpText || !ParseTextHead(m, h))
			return;
		bool ok = m.find(R"("status":"ok")") != std::string_view::npos;
		if (h.event == "phx_reply" && h.topic == "phoenix" && ok &&
		    h.ref == std::to_string(c.heartbeat_ref))
			hb_ok_++;
		else if (h.event == "phx_reply" && h.ref == "1" && ok && !c.joined)
		{
			c.joined = true;
			joined_++;
		}
		else if (h.event == "broadcast" && m.find(R"("event":"scale")") != std::string_view::npos)
		{
			c.broadcasts++;
			broadcasts_ += c.broadcasts == 1;
		}
	}

	void
	MarkClosed(Conn &c, const char *why)
	{
		if (why == nullptr || c.closed)
			return;
		c.closed = true;
		if (closed_by_server_++ == 0)
			std::printf("!! a socket was closed by the sidecar: %s\n", why);
	}

	static void
	Sleep(int ms)
	{
		timespec ts{ms / 1000, long(ms % 1000) * 1000000};
		nanosleep(&ts, nullptr);
	}

	static constexpr size_t kWindow = 64;      /* upgrades in flight */
	static constexpr size_t kPerSource = 4000; /* sockets per loopback source address */

	const Options &o_;
	std::string jwt_;
	std::string target_; /* the upgrade's path and query, as realtime-js builds it */
	int ep_ = -1;
	std::vector<Conn> *conns_ = nullptr;
	int n_ = 0; /* sockets of the current cycle */
	int joined_ = 0;
	int broadcasts_ = 0;
	uint64_t hb_sent_ = 0, hb_ok_ = 0, next_ref_ = 1;
	int closed_by_server_ = 0; /* sockets the sidecar closed: none should be */
	int64_t heartbeats_checked_ns_ = 0;
};

/* sockets of the warm-up cycle: enough closes for the sidecar to give memory back */
constexpr int kWarmup = 300;

Options
ParseOptions(int argc, char **argv)
{
	Options o;
	for (int i = 1; i < argc; i++)
	{
		std::string_view a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
		if (v == nullptr)
			Die("missing value for " + std::string(a));
		if (EndpointOption(a, v, o, kWithSecret))
			;
		else if (a == "--connections")
			o.connections = int(ParseDouble("--connections", v));
		else if (a == "--cycles")
			o.cycles = int(ParseDouble("--cycles", v));
		else if (a == "--hold-ms")
			o.hold_ms = int(ParseDouble("--hold-ms", v));
		else if (a == "--heartbeat-ms")
			o.heartbeat_ms = int(ParseDouble("--heartbeat-ms", v));
		else if (a == "--sidecar-pid")
			o.sidecar_pid = int(ParseDouble("--sidecar-pid", v));
		else if (a == "--topic")
			o.topic = v;
		else if (a == "--baseline")
			o.baseline = std::string_view(v) == "1";
		else
			Die("unknown option " + std::string(a));
		i++;
	}
	if (o.port == 0 || o.secret.empty() || o.sidecar_pid == 0)
		Die("usage: connections_client --port P --secret S --sidecar-pid PID [--connections N] "
		    "[--cycles C] [--hold-ms MS] [--heartbeat-ms MS] [--host H] [--topic T] [--baseline "
		    "1]");
	return o;
}

int
Run(int argc, char **argv)
{
	Options o = ParseOptions(argc, argv);
	RaiseFdLimit();
	rlimit nofile{};
	getrlimit(RLIMIT_NOFILE, &nofile);
	std::printf("client_fd_limit=%llu\n", (unsigned long long)nofile.rlim_cur);
	if (rlim_t(o.connections) + 64 > nofile.rlim_cur)
		Die("--connections " + std::to_string(o.connections) + " needs more open files than " +
		    std::to_string(nofile.rlim_cur));
	Bench bench(o);
	/* the idle figure is a sidecar that has served and closed sockets (lazy start-up
	 * allocations made, freed memory given back), not one that never saw a client */
	bool ok = bench.Cycle(0, kWarmup, RssKb(o.sidecar_pid));
	long rss_idle_kb = RssKb(o.sidecar_pid);
	std::printf("rss_idle_kb=%ld\n", rss_idle_kb);
	for (int c = 1; c <= o.cycles; c++)
		ok &= bench.Cycle(c, o.connections, rss_idle_kb);
	return ok ? 0 : 1;
}

} // namespace
} // namespace rt::bench

int
main(int argc, char **argv)
{
	rt::bench::g_program_name = "connections_client";
	return rt::bench::RunOrReport([&] { return rt::bench::Run(argc, argv); });
}
