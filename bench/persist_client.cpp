/*
 * persist_client.cpp: persisted broadcast benchmark (bench/persist.sh, `make
 * bench-persist`, docs/PERFORMANCE.md). Not a test.
 *
 * One process, one thread, one run per invocation (the script alternates them).
 * --senders sockets each join their own private topic realtime:persist:<k>
 * (broadcast ack:true self:false) with the token of --tokens' first line, and
 * --receivers sockets per topic join it too. For --seconds, the senders send
 * --rate kind-3 pushes per second in all (round robin, paced every
 * millisecond), payload {"s":k,"n":i}, with metadata {"persist":true}
 * (--persist 1) or none (--persist 0, the baseline: the same path without the
 * store). Each ack is timed from the write of its push to its phx_reply; the
 * receivers count the kind-4 broadcasts they get.
 *
 * One "result key=value ..." line on stdout: sent, acked ok / error, arrived
 * against expected (acked ok x receivers), per_s = acked ok / the time from the
 * first push to the last ack, ack p50/p99/max, and the CPU time of each --watch
 * pid and of this client (run_<name>_cpu_ms). Exit status 1 when anything
 * sent was not acked ok or did not arrive.
 */
#include <fcntl.h>
#include <sys/epoll.h>
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
#include <string>
#include <string_view>
#include <vector>

namespace rt::bench
{
namespace
{

constexpr size_t kRxChunk = 64 * 1024;

struct Options : Endpoint
{
	std::string tokens_file;
	int senders = 20;
	int receivers = 1;
	double rate = 20000;
	double seconds = 5;
	bool persist = true;
	double timeout = 60;
	std::vector<Watch> watch;
};

struct Conn
{
	Fd fd;
	RxBuffer rx{kRxChunk};
	int topic = 0;
	bool sender = false;
	bool joined = false;
	bool closed = false;
	std::vector<int64_t> sent_at; /* sender: write time of push n (ref "n") */
	size_t pending = 0;           /* sender: pushes appended, not yet written */
};

class Bench : public FrameReceiver<Bench, Conn, kRxChunk>
{
	friend class FrameReceiver<Bench, Conn, kRxChunk>;

public:
	explicit Bench(const Options &o) : o_(o) {}

	int
	Run()
	{
		std::ifstream f(o_.tokens_file);
		std::getline(f, token_);
		if (token_.empty())
			Die("--tokens has no token");
		ep_ = Fd(epoll_create1(EPOLL_CLOEXEC));
		for (int k = 0; k < o_.senders; k++)
		{
			Open(k, true);
			for (int r = 0; r < o_.receivers; r++)
				Open(k, false);
		}
		for (auto &c : conns_)
			Write(*c, JoinFrame(c->topic));
		if (!Pump([&] { return joined_ + failed_ >= int(conns_.size()); }) || failed_ > 0)
			Die("joining failed: " + std::to_string(joined_) + " of " +
			    std::to_string(conns_.size()) + " joined");
		for (auto &c : conns_)
			c->sent_at.reserve(size_t(o_.rate * o_.seconds / o_.senders) + 16);

		CpuWindow cpu(o_.watch);
		int64_t t0 = MonoNs();
		int64_t total = int64_t(o_.rate * o_.seconds);
		int64_t sent = 0;
		std::vector<Conn *> senders;
		for (auto &c : conns_)
			if (c->sender)
				senders.push_back(c.get());
		std::vector<std::string> out(senders.size());
		while (sent < total)
		{
			int64_t due = std::min<int64_t>(total, int64_t(double(MonoNs() - t0) * o_.rate / 1e9));
			for (; sent < due; sent++)
			{
				size_t k = size_t(sent) % senders.size();
				AppendPush(out[k], *senders[k]);
			}
			int64_t now = MonoNs();
			for (size_t k = 0; k < senders.size(); k++)
				if (!out[k].empty())
				{
					/* the write time of every push in it */
					Conn &c = *senders[k];
					std::fill(c.sent_at.end() - int64_t(c.pending), c.sent_at.end(), now);
					c.pending = 0;
					Write(c, out[k]);
					out[k].clear();
				}
			Poll(1);
		}
		bool ok = Pump([&] { return acked_ + ack_errors_ >= sent && arrived_ >= expected(); });
		std::string cpu_report = cpu.Report("run");
		int64_t dur = last_ack_ > t0 ? last_ack_ - t0 : 1;
		Poll(300); /* anything late and extra */
		char line[1024];
		std::snprintf(line, sizeof(line),
		              "result persist=%d senders=%d receivers=%d rate=%.0f seconds=%.1f sent=%lld "
		              "acked=%lld ack_errors=%lld arrived=%lld expected=%lld per_s=%.0f "
		              "ack_p50_ms=%.2f ack_p99_ms=%.2f ack_max_ms=%.2f timeout=%d",
		              o_.persist ? 1 : 0, o_.senders, o_.receivers, o_.rate, o_.seconds,
		              (long long)sent, (long long)acked_, (long long)ack_errors_,
		              (long long)arrived_, (long long)expected(),
		              double(acked_) * 1e9 / double(dur), ack_.Quantile(0.5) / 1e6,
		              ack_.Quantile(0.99) / 1e6, double(ack_.Max()) / 1e6, ok ? 0 : 1);
		std::printf("%s%s\n", line, cpu_report.c_str());
		if (!first_error_.empty())
			std::fprintf(stderr, "persist_client: first error reply: %s\n", first_error_.c_str());
		bool complete = ok && ack_errors_ == 0 && acked_ == sent && arrived_ == expected();
		return complete ? 0 : 1;
	}

private:
	int64_t
	expected() const
	{
		return acked_ * o_.receivers;
	}

	std::string
	Topic(int k) const
	{
		return "realtime:persist:" + std::to_string(k);
	}

	void
	Open(int topic, bool sender)
	{
		auto c = std::make_unique<Conn>();
		std::string leftover;
		c->fd =
		    OpenWebSocket(o_.host, o_.port, o_.path + "?apikey=" + token_ + "&vsn=2.0.0", leftover);
		c->rx.Load(leftover);
		c->topic = topic;
		c->sender = sender;
		fcntl(c->fd.Get(), F_SETFL, fcntl(c->fd.Get(), F_GETFL) | O_NONBLOCK);
		epoll_event ev{};
		ev.events = EPOLLIN;
		ev.data.u32 = uint32_t(conns_.size());
		if (epoll_ctl(ep_.Get(), EPOLL_CTL_ADD, c->fd.Get(), &ev) != 0)
			Die(std::string("epoll_ctl: ") + strerror(errno));
		conns_.push_back(std::move(c));
	}

	std::string
	JoinFrame(int topic)
	{
		std::string out;
		AppendClientFrame(
		    out, kOpText,
		    R"(["1","j",")" + Topic(topic) +
		        R"(","phx_join",{"config":{"broadcast":{"self":false,"ack":true},)"
		        R"("presence":{"enabled":false},"postgres_changes":[],"private":true},)"
		        R"("access_token":")" +
		        token_ + R"("}])",
		    masks_.Next());
		return out;
	}

	void
	AppendPush(std::string &out, Conn &c)
	{
		size_t n = c.sent_at.size();
		std::string ref = std::to_string(n);
		std::string payload = R"({"s":)" + std::to_string(c.topic) + R"(,"n":)" + ref + "}";
		std::string push;
		AppendUserPush(push, "1", ref, Topic(c.topic), "m", payload,
		               o_.persist ? R"({"persist":true})" : "");
		AppendClientFrame(out, kOpBinary, push, masks_.Next());
		c.sent_at.push_back(0);
		c.pending++;
	}

	void
	Write(Conn &c, const std::string &data)
	{
		if (!WriteAll(c.fd.Get(), data))
			Die(std::string("write: ") + strerror(errno));
	}

	void
	Poll(int ms)
	{
		epoll_event events[256];
		int n = epoll_wait(ep_.Get(), events, 256, ms);
		if (n < 0 && errno != EINTR)
			Die(std::string("epoll_wait: ") + strerror(errno));
		for (int k = 0; k < n; k++)
			ReadSome(*conns_[events[k].data.u32]);
	}

	template <typename Done>
	bool
	Pump(Done done)
	{
		int64_t deadline = MonoNs() + int64_t(o_.timeout * kNsPerSec);
		while (!done())
		{
			if (MonoNs() > deadline)
				return false;
			Poll(20);
		}
		return true;
	}

	void
	OnMessage(Conn &c, uint8_t opcode, std::string_view m, int64_t now)
	{
		if (opcode == kOpBinary)
		{
			UserBroadcast b;
			if (!c.sender && DecodeUserBroadcast(m, b))
				arrived_++;
			return;
		}
		TextHead h;
		if (!ParseTextHead(m, h) || h.event != "phx_reply")
			return;
		bool ok = m.find(R"("status":"ok")") != std::string_view::npos;
		if (h.ref == "j")
		{
			(ok ? joined_ : failed_)++;
			if (!ok)
				std::fprintf(stderr, "persist_client: join refused: %.*s\n", int(m.size()),
				             m.data());
			return;
		}
		size_t n = std::strtoull(std::string(h.ref).c_str(), nullptr, 10);
		if (!c.sender || n >= c.sent_at.size())
			return;
		if (ok)
		{
			acked_++;
			ack_.Add(now - c.sent_at[n]);
			last_ack_ = std::max(last_ack_, now);
		}
		else
		{
			ack_errors_++;
			if (first_error_.empty())
				first_error_ = std::string(m);
		}
	}

	void
	MarkClosed(Conn &c, const char *why)
	{
		if (why != nullptr && !c.closed)
		{
			c.closed = true;
			std::fprintf(stderr, "persist_client: a connection closed: %s\n", why);
		}
	}

	const Options &o_;
	std::string token_;
	Fd ep_;
	std::vector<std::unique_ptr<Conn>> conns_;
	int joined_ = 0, failed_ = 0;
	int64_t acked_ = 0, ack_errors_ = 0, arrived_ = 0, last_ack_ = 0;
	Histogram ack_;
	std::string first_error_;
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
		else if (a == "--tokens")
			o.tokens_file = next();
		else if (a == "--senders")
			o.senders = int(ParseDouble("--senders", next().c_str()));
		else if (a == "--receivers")
			o.receivers = int(ParseDouble("--receivers", next().c_str()));
		else if (a == "--rate")
			o.rate = ParseDouble("--rate", next().c_str());
		else if (a == "--seconds")
			o.seconds = ParseDouble("--seconds", next().c_str());
		else if (a == "--persist")
			o.persist = next() == "1";
		else if (a == "--timeout")
			o.timeout = ParseDouble("--timeout", next().c_str());
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
	if (o.port <= 0 || o.tokens_file.empty())
		Die("usage: persist_client --port N --tokens FILE [--senders N] [--receivers R] "
		    "[--rate MSGS_PER_S] [--seconds S] [--persist 0|1] [--timeout S] "
		    "[--watch name=pid]...");
	return o;
}

} // namespace
} // namespace rt::bench

int
main(int argc, char **argv)
{
	rt::bench::g_program_name = "persist_client";
	rt::bench::Options o = rt::bench::ParseArgs(argc, argv);
	rt::bench::RaiseFdLimit();
	return rt::bench::RunOrReport(
	    [&]
	    {
		    rt::bench::Bench b(o);
		    return b.Run();
	    });
}
