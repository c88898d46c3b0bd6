/*
 * private_client.cpp: private channel and presence benchmark (bench/private.sh,
 * `make bench-private`, docs/PERFORMANCE.md). Not a test.
 *
 * One process, one thread, one run per invocation (the script alternates them).
 *
 * --mode join (--private 0|1): --clients channels of --users users over sockets
 * of --per-socket channels each. Channel c belongs to user c mod U and joins
 * realtime:user:<uuid of that user> (private or public) with that user's token
 * (line u of --tokens, HS256, role authenticated, sub = the uuid) as
 * access_token, broadcast ack:true self:false; a socket never holds one topic
 * twice (per-socket <= users). Once every socket is open, all joins are written
 * at once; the run measures each join's reply latency and joins/s = clients /
 * (last ok reply - first join written). Then every channel sends one broadcast
 * (for a private channel the first one, which waits for the write check) and
 * the run measures each ack's latency the same way.
 *
 * --mode presence | fanout: --clients sockets, one channel each, all in the
 * public room realtime:presence-bench, presence enabled with key c<i>,
 * broadcast self:true. Once all joined (and the initial presence_state frames
 * are in), every channel sends at once one track with meta {"i":<i>}
 * (presence) or one broadcast with payload {"i":<i>} (fanout, the baseline).
 * The run ends when every client has seen all N keys (the joins of
 * presence_state and presence_diff) or all N broadcasts; it reports the time
 * from the first send until the last client is complete, the per-client
 * completion p50/p99, and the frames delivered.
 *
 * One "result key=value ..." line on stdout; the CPU time (ms) that each --watch
 * pid (name=pid) used in each phase, from /proc/<pid>/stat (all its threads).
 */
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.hpp"
#include "histogram.hpp"
#include "ws_client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rt::bench
{
namespace
{

constexpr size_t kRxChunk = 64 * 1024;
const char *const kRoom = "realtime:presence-bench";

struct Options : Endpoint
{
	std::string mode = "join";
	std::string tokens_file;
	int clients = 1000;
	int users = 100;
	int per_socket = 20;
	bool priv = false;
	double timeout = 120;
	std::vector<Watch> watch;
};

/* One channel (join mode: many per socket; presence/fanout: one per socket). */
struct Chan
{
	int conn = 0;
	int user = 0;
	std::string topic;
	std::string join_ref;
	int64_t join_sent = 0, join_ok = 0, push_sent = 0, push_ok = 0;
	bool failed = false;
	std::vector<uint64_t> seen; /* presence/fanout: bitset over senders */
	int seen_count = 0;
	int64_t complete_ns = 0;
};

struct Conn
{
	Fd fd;
	RxBuffer rx{kRxChunk};
	std::vector<int> chans; /* by join_ref - 1 */
	bool closed = false;
};

class Bench
{
public:
	explicit Bench(const Options &o) : o_(o) {}

	int
	Run()
	{
		std::vector<std::string> tokens;
		{
			std::ifstream f(o_.tokens_file);
			std::string line;
			while (std::getline(f, line))
				if (!line.empty())
					tokens.push_back(line);
		}
		if (int(tokens.size()) < o_.users)
			Die("--tokens has fewer lines than --users");
		bool join_mode = o_.mode == "join";
		int per_socket = join_mode ? o_.per_socket : 1;
		if (join_mode && per_socket > o_.users)
			Die("--per-socket must not exceed --users (one topic once per socket)");
		int sockets = (o_.clients + per_socket - 1) / per_socket;
		ep_ = Fd(epoll_create1(EPOLL_CLOEXEC));
		chans_.resize(size_t(o_.clients));
		for (int s = 0; s < sockets; s++)
		{
			auto c = std::make_unique<Conn>();
			std::string leftover;
			c->fd = OpenWebSocket(
			    o_.host, o_.port,
			    o_.path + "?apikey=" + tokens[size_t(s % o_.users)] + "&vsn=2.0.0", leftover);
			c->rx.Load(leftover);
			int fl = fcntl(c->fd.Get(), F_GETFL);
			fcntl(c->fd.Get(), F_SETFL, fl | O_NONBLOCK);
			epoll_event ev{};
			ev.events = EPOLLIN;
			ev.data.u32 = uint32_t(s);
			if (epoll_ctl(ep_.Get(), EPOLL_CTL_ADD, c->fd.Get(), &ev) != 0)
				Die(std::string("epoll_ctl: ") + strerror(errno));
			conns_.push_back(std::move(c));
		}
		for (int i = 0; i < o_.clients; i++)
		{
			Chan &ch = chans_[size_t(i)];
			ch.conn = i / per_socket;
			ch.user = i % o_.users;
			ch.join_ref = std::to_string(conns_[size_t(ch.conn)]->chans.size() + 1);
			conns_[size_t(ch.conn)]->chans.push_back(i);
			ch.topic = join_mode ? "realtime:user:" + UserUuid(ch.user) : kRoom;
			if (!join_mode)
				ch.seen.assign(size_t(o_.clients + 63) / 64, 0);
		}
		return join_mode ? RunJoin(tokens) : RunPresence(tokens);
	}

private:
	std::string
	JoinFrame(int i, const std::string &jwt)
	{
		const Chan &ch = chans_[size_t(i)];
		bool join_mode = o_.mode == "join";
		std::string cfg = join_mode ? R"({"broadcast":{"self":false,"ack":true},)"
		                              R"("presence":{"enabled":false},"postgres_changes":[],)"
		                            : R"({"broadcast":{"self":true,"ack":false},)"
		                              R"("presence":{"enabled":true,"key":"c)" +
		                                  std::to_string(i) + R"("},"postgres_changes":[],)";
		cfg += std::string(R"("private":)") + (join_mode && o_.priv ? "true" : "false") + "}";
		std::string out;
		AppendClientFrame(out, kOpText,
		                  "[\"" + ch.join_ref + "\",\"" + ch.join_ref + "\",\"" + ch.topic +
		                      R"(","phx_join",{"config":)" + cfg + R"(,"access_token":")" + jwt +
		                      "\"}]",
		                  masks_.Next());
		return out;
	}

	std::string
	PushFrame(int i, const char *what)
	{
		const Chan &ch = chans_[size_t(i)];
		std::string body = std::string(R"({"type":")") + what + R"(","event":")" +
		                   (std::strcmp(what, "presence") == 0 ? "track" : "b") +
		                   R"(","payload":{"i":)" + std::to_string(i) + "}}";
		std::string out;
		AppendClientFrame(out, kOpText,
		                  "[\"" + ch.join_ref + "\",\"p" + ch.join_ref + "\",\"" + ch.topic +
		                      "\",\"" + what + "\"," + body + "]",
		                  masks_.Next());
		return out;
	}

	/* Write every socket's frames (one write per socket), stamping each channel. */
	template <typename Frame, typename Stamp>
	void
	SendAll(Frame frame, Stamp stamp)
	{
		for (size_t s = 0; s < conns_.size(); s++)
		{
			std::string out;
			for (int i : conns_[s]->chans)
				out += frame(i);
			int64_t now = MonoNs();
			for (int i : conns_[s]->chans)
				stamp(chans_[size_t(i)], now);
			if (!WriteAll(conns_[s]->fd.Get(), out))
				Die(std::string("write: ") + strerror(errno));
		}
	}

	/* Read until done() or the timeout; false on timeout. */
	template <typename Done>
	bool
	Pump(Done done)
	{
		int64_t deadline = MonoNs() + int64_t(o_.timeout * kNsPerSec);
		std::vector<epoll_event> events(512);
		while (!done())
		{
			if (MonoNs() > deadline)
				return false;
			int n = epoll_wait(ep_.Get(), events.data(), int(events.size()), 20);
			if (n < 0 && errno != EINTR)
				Die(std::string("epoll_wait: ") + strerror(errno));
			for (int k = 0; k < n; k++)
				ReadSome(int(events[size_t(k)].data.u32));
		}
		return true;
	}

	/* Keep reading until nothing arrived for quiet_ms. */
	void
	Quiet(int quiet_ms)
	{
		std::vector<epoll_event> events(512);
		for (;;)
		{
			int n = epoll_wait(ep_.Get(), events.data(), int(events.size()), quiet_ms);
			if (n <= 0)
				return;
			for (int k = 0; k < n; k++)
				ReadSome(int(events[size_t(k)].data.u32));
		}
	}

	static std::string
	Ms(double ns)
	{
		char b[32];
		std::snprintf(b, sizeof(b), "%.2f", ns / 1e6);
		return b;
	}

	/* The fields of one round started at t0 in which n channels got their answer
	 * (sent and done: the Chan members it sets): " RATE=n/s NAME_p50_ms=...
	 * NAME_p99_ms=... NAME_max_ms=...", the rate up to the last answer. */
	std::string
	RoundFields(const char *rate, const std::string &name, int n, int64_t t0, int64_t Chan::*sent,
	            int64_t Chan::*done) const
	{
		int64_t last = 0;
		Histogram lat;
		for (const Chan &ch : chans_)
			if (ch.*done)
			{
				lat.Add(ch.*done - ch.*sent);
				last = std::max(last, ch.*done);
			}
		char b[64];
		std::snprintf(b, sizeof(b), "%.0f", last > t0 ? n * 1e9 / double(last - t0) : 0.0);
		return std::string(" ") + rate + "=" + b + " " + name + "_p50_ms=" + Ms(lat.Quantile(0.5)) +
		       " " + name + "_p99_ms=" + Ms(lat.Quantile(0.99)) + " " + name +
		       "_max_ms=" + Ms(double(lat.Max()));
	}

	int
	RunJoin(const std::vector<std::string> &tokens)
	{
		CpuWindow cpu(o_.watch);
		int64_t t0 = MonoNs();
		SendAll([&](int i) { return JoinFrame(i, tokens[size_t(chans_[size_t(i)].user)]); },
		        [](Chan &ch, int64_t now) { ch.join_sent = now; });
		bool ok = Pump([&] { return joined_ + failed_ >= o_.clients; });
		std::string join_cpu = cpu.Report("join");
		std::string line = "result mode=join private=" + std::to_string(o_.priv) +
		                   " clients=" + std::to_string(o_.clients) +
		                   " sockets=" + std::to_string(conns_.size()) +
		                   " joined=" + std::to_string(joined_) +
		                   " refused=" + std::to_string(failed_) + " timeout=" + (ok ? "0" : "1");
		line += RoundFields("joins_per_s", "join", joined_, t0, &Chan::join_sent, &Chan::join_ok) +
		        join_cpu;
		if (!ok || failed_ > 0)
		{
			std::printf("%s\n", line.c_str());
			return 1;
		}
		Quiet(100);

		cpu.Start();
		int64_t t2 = MonoNs();
		SendAll([&](int i) { return PushFrame(i, "broadcast"); },
		        [](Chan &ch, int64_t now) { ch.push_sent = now; });
		ok = Pump([&] { return acked_ >= o_.clients; });
		line += " acked=" + std::to_string(acked_) + " ack_timeout=" + (ok ? "0" : "1") +
		        RoundFields("acks_per_s", "ack", acked_, t2, &Chan::push_sent, &Chan::push_ok) +
		        cpu.Report("ack");
		Quiet(200);
		line += " broadcasts_received=" + std::to_string(broadcasts_) +
		        " other=" + std::to_string(other_);
		std::printf("%s\n", line.c_str());
		return ok ? 0 : 1;
	}

	int
	RunPresence(const std::vector<std::string> &tokens)
	{
		bool presence = o_.mode == "presence";
		SendAll([&](int i) { return JoinFrame(i, tokens[size_t(chans_[size_t(i)].user)]); },
		        [](Chan &ch, int64_t now) { ch.join_sent = now; });
		if (!Pump([&] { return joined_ + failed_ >= o_.clients; }) || failed_ > 0)
			Die("joining failed: " + std::to_string(joined_) + " joined, " +
			    std::to_string(failed_) + " refused");
		Quiet(300); /* the (empty) presence_state pushes */
		for (Chan &ch : chans_)
		{
			std::fill(ch.seen.begin(), ch.seen.end(), 0);
			ch.seen_count = 0;
		}
		frames_ = 0;
		counting_ = true;
		CpuWindow cpu(o_.watch);
		int64_t t0 = MonoNs();
		SendAll([&](int i) { return PushFrame(i, presence ? "presence" : "broadcast"); },
		        [](Chan &ch, int64_t now) { ch.push_sent = now; });
		bool ok = Pump([&] { return complete_ >= o_.clients; });
		int64_t t1 = 0;
		Histogram done;
		uint64_t seen = 0;
		for (const Chan &ch : chans_)
		{
			seen += uint64_t(ch.seen_count);
			if (ch.complete_ns)
			{
				done.Add(ch.complete_ns - t0);
				t1 = std::max(t1, ch.complete_ns);
			}
		}
		std::string cpu_report = cpu.Report("run");
		uint64_t frames = frames_;
		Quiet(300);
		char b[64];
		std::snprintf(b, sizeof(b), "%.0f", t1 > t0 ? double(seen) * 1e9 / double(t1 - t0) : 0.0);
		std::printf("result mode=%s clients=%d complete=%d timeout=%d all_ms=%s client_p50_ms=%s "
		            "client_p99_ms=%s seen=%llu expected=%llu seen_per_s=%s frames=%llu "
		            "frames_after=%llu acks=%d%s other=%llu\n",
		            o_.mode.c_str(), o_.clients, complete_, ok ? 0 : 1,
		            Ms(t1 > t0 ? double(t1 - t0) : 0).c_str(), Ms(done.Quantile(0.5)).c_str(),
		            Ms(done.Quantile(0.99)).c_str(), (unsigned long long)seen,
		            (unsigned long long)(uint64_t(o_.clients) * uint64_t(o_.clients)), b,
		            (unsigned long long)frames, (unsigned long long)(frames_ - frames), acked_,
		            cpu_report.c_str(), (unsigned long long)other_);
		return ok ? 0 : 1;
	}

	void
	ReadSome(int s)
	{
		Conn &c = *conns_[size_t(s)];
		if (c.closed)
			return;
		const char *why = ReadFrames(c.fd.Get(), c.rx, kRxChunk, masks_,
		                             [&](uint8_t opcode, std::string_view m, int64_t now)
		                             {
			                             if (opcode == kOpText)
				                             OnMessage(c, m, now);
			                             else
				                             other_++;
			                             return true;
		                             });
		if (why != nullptr)
		{
			c.closed = true;
			epoll_ctl(ep_.Get(), EPOLL_CTL_DEL, c.fd.Get(), nullptr);
			Die(std::string(why) + " on socket " + std::to_string(s) + " (closed by the server)");
		}
	}

	Chan *
	ChanOf(Conn &c, std::string_view join_ref)
	{
		int k = std::atoi(std::string(join_ref).c_str());
		if (k < 1 || size_t(k) > c.chans.size())
			return nullptr;
		return &chans_[size_t(c.chans[size_t(k - 1)])];
	}

	void
	OnMessage(Conn &c, std::string_view m, int64_t now)
	{
		TextHead h;
		if (!ParseTextHead(m, h))
		{
			other_++;
			return;
		}
		if (h.event == "phx_reply")
		{
			Chan *ch = ChanOf(c, h.join_ref);
			bool ok = m.find(R"("status":"ok")") != std::string_view::npos;
			if (ch == nullptr)
			{
				if (h.topic != "phoenix")
					other_++;
				return;
			}
			if (h.ref == h.join_ref)
			{
				if (ok && !ch->join_ok)
				{
					ch->join_ok = now;
					joined_++;
				}
				else if (!ok && !ch->failed)
				{
					ch->failed = true;
					failed_++;
					if (failed_ <= 3)
						std::fprintf(stderr, "private_client: join refused: %.*s\n",
						             int(std::min<size_t>(m.size(), 300)), m.data());
				}
			}
			else if (ok && !ch->push_ok)
			{
				ch->push_ok = now;
				acked_++;
			}
			else if (!ok && other_++ < 3)
				std::fprintf(stderr, "private_client: push refused: %.*s\n",
				             int(std::min<size_t>(m.size(), 300)), m.data());
			return;
		}
		if (h.event == "broadcast")
		{
			broadcasts_++;
			if (counting_ && o_.mode == "fanout")
			{
				frames_++;
				uint64_t i = 0;
				if (ReadNumberAfter(m, R"("payload":{"i":)", i))
					Mark(c, i, now);
			}
			return;
		}
		if (h.event == "presence_diff" || h.event == "presence_state")
		{
			if (!counting_)
				return;
			frames_++;
			/* presence_state: every key; presence_diff: the keys under "joins" */
			std::string_view body = m;
			if (h.event == "presence_diff")
			{
				size_t j = m.find(R"("joins":)"), l = m.find(R"("leaves":)");
				if (j == std::string_view::npos)
					return;
				body = m.substr(j, l != std::string_view::npos && l > j ? l - j : m.npos);
			}
			for (size_t at = body.find(R"(":{"metas":)"); at != std::string_view::npos;
			     at = body.find(R"(":{"metas":)", at + 1))
			{
				size_t q = body.rfind('"', at - 1);
				if (q == std::string_view::npos || q + 1 >= at || body[q + 1] != 'c')
					continue;
				uint64_t i = 0;
				std::string_view key = body.substr(q + 2, at - q - 2);
				auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), i);
				if (ec == std::errc() && p == key.data() + key.size())
					Mark(c, i, now);
			}
			return;
		}
		if (h.event == "system" && m.find(R"("status":"error")") != std::string_view::npos)
			Die("system error: " + std::string(m.substr(0, 300)));
		other_++;
	}

	void
	Mark(Conn &c, uint64_t i, int64_t now)
	{
		if (i >= uint64_t(o_.clients) || c.chans.empty())
			return;
		Chan &ch = chans_[size_t(c.chans[0])];
		uint64_t bit = uint64_t(1) << (i % 64);
		if (ch.seen[i / 64] & bit)
			return;
		ch.seen[i / 64] |= bit;
		if (++ch.seen_count == o_.clients)
		{
			ch.complete_ns = now;
			complete_++;
		}
	}

	const Options &o_;
	Fd ep_;
	MaskSource masks_;
	std::vector<std::unique_ptr<Conn>> conns_;
	std::vector<Chan> chans_;
	int joined_ = 0, failed_ = 0, acked_ = 0, complete_ = 0;
	uint64_t broadcasts_ = 0, other_ = 0, frames_ = 0;
	bool counting_ = false;
};

Options
ParseArgs(int argc, char **argv)
{
	Options o;
	for (int i = 1; i < argc; i++)
	{
		std::string a = argv[i];
		auto next = [&]() -> std::string
		{
			if (i + 1 >= argc)
				Die("missing value after " + a);
			return argv[++i];
		};
		if (a == "--port" || a == "--host" || a == "--path")
			EndpointOption(a, next().c_str(), o, kNoExtra);
		else if (a == "--mode")
			o.mode = next();
		else if (a == "--tokens")
			o.tokens_file = next();
		else if (a == "--clients")
			o.clients = std::atoi(next().c_str());
		else if (a == "--users")
			o.users = std::atoi(next().c_str());
		else if (a == "--per-socket")
			o.per_socket = std::atoi(next().c_str());
		else if (a == "--private")
			o.priv = next() == "1";
		else if (a == "--timeout")
			o.timeout = std::atof(next().c_str());
		else if (a == "--watch")
		{
			Watch w;
			if (!ParseWatch(next(), &w))
				Die("--watch wants name=pid");
			o.watch.push_back(w);
		}
		else
			Die("unknown option " + a);
	}
	if (o.port <= 0 || o.tokens_file.empty() || o.clients <= 0 || o.users <= 0 ||
	    o.per_socket <= 0 || (o.mode != "join" && o.mode != "presence" && o.mode != "fanout"))
		Die("usage: private_client --port N --tokens FILE [--mode join|presence|fanout] "
		    "[--private 0|1] [--clients N] [--users U] [--per-socket K] [--timeout S] "
		    "[--watch name=pid]...");
	return o;
}

} // namespace
} // namespace rt::bench

int
main(int argc, char **argv)
{
	rt::bench::g_program_name = "private_client";
	rt::bench::Options o = rt::bench::ParseArgs(argc, argv);
	rt::bench::RaiseFdLimit();
	return rt::bench::RunOrReport(
	    [&]
	    {
		    rt::bench::Bench b(o);
		    return b.Run();
	    });
}
