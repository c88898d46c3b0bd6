/*
 * db_latency.cpp: commit-to-client latency of realtime.send() against
 * NOTIFY -> LISTEN (bench/db_latency.sh, docs/PERFORMANCE.md), and the
 * delivery sink of bench/send_cost.sh. Not a test.
 *
 * One process, one mode per run. It subscribes one WebSocket client to
 * realtime:<topic> on the sidecar (the join realtime-js sends, vsn 2.0.0, so
 * broadcasts arrive as kind-4 frames) and opens one libpq connection that
 * LISTENs on <channel>; both stay attached whatever the mode, so the two modes
 * run under the same conditions. The main thread then issues, at a fixed rate
 * for T seconds, one autocommit statement per message over --conns libpq
 * connections in pipeline mode (each statement followed by its own Sync, so
 * each is its own transaction; default synchronous_commit):
 *   send:   select realtime.send($1::jsonb, 'e', <topic>)  $1 = {"t":<us>,"s":<seq>,"r":<run>}
 *   notify: select pg_notify(<channel>, $1)               $1 = "<run>:<seq>:<us>"
 * where <us> is CLOCK_MONOTONIC in microseconds when the statement is handed
 * to libpq. A message is sent on the connection with the fewest statements in
 * flight; when all have --max-inflight in flight, sending waits: the database
 * does not keep up, send_rate falls below the rate and pub_lag_max_ms grows,
 * while the stamps stay the real send times (so a backlog held back in the
 * client does not count as latency; one queued in the pipelines does). What
 * is not sent by seconds + drain is given up and counted as "unsent". The receiver of that mode
 * takes the time once per read() and records now - t: statement, commit (WAL flush), then delivery
 * (decoder worker, ring, sidecar, WebSocket; or the NOTIFY queue, the listening backend, libpq).
 * Same clock, same stamping, same sender for both modes. The outcome is one "result key=value ..."
 * line on stdout; the exit status is 4 when a statement failed or went unanswered and 5 when a
 * committed message did not arrive, arrived twice or out of its connection's order (each
 * payload names its sending connection: one connection commits in the order it sends).
 *
 * --sink instead only counts what the two receivers get until SIGINT or
 * SIGTERM, then prints "sink ws_received=N notify_received=N": the attached
 * clients of bench/send_cost.sh (without --port: the LISTEN one only).
 *
 * Threads: main (send, report); one WebSocket receiver; one LISTEN receiver.
 * Receivers own their counters; main reads them after joining them, and
 * only the atomic "received" counters while they run.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.hpp"
#include "histogram.hpp"
#include "ws_client.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rt::bench
{
namespace
{

constexpr int64_t kHeartbeatNs = 25 * kNsPerSec; /* realtime-js heartbeatIntervalMs */
constexpr int kPollMs = 50;                      /* receivers look at the stop flag this often */

std::atomic<bool> g_signalled{false};

void
OnSignal(int)
{
	g_signalled.store(true);
}

enum class Mode
{
	kSend,
	kNotify,
	kSink,
};

/* Command-line settings. */
struct Options : Endpoint
{
	Mode mode = Mode::kSend;
	std::string topic = "dblat";
	std::string channel = "dblat";
	double rate = 1000;
	double seconds = 10;
	double drain = 5;
	int conns = 8;         /* sending connections */
	int max_inflight = 16; /* statements in flight per sending connection */
	double late_ms = 5;    /* a delivery slower than this is "late" */
	uint64_t run_id = 0;
	bool write =
	    false;         /* each statement also updates a row of bench_lat (own row per connection) */
	bool priv = false; /* the WebSocket receiver joins the private room of the topic */
};

/* What one receiver saw of the messages of this run. */
struct RxStats
{
	Histogram latency;
	std::vector<uint8_t> seen;     /* per seq: received yet */
	std::vector<int64_t> last_seq; /* per sending connection: the highest seq received */
	uint64_t unique = 0;           /* distinct seqs of this run */
	uint64_t dup = 0;              /* a seq received again */
	uint64_t stale = 0;            /* another run's messages */
	uint64_t bad = 0;              /* unreadable, or seq or connection out of range */
	uint64_t misordered = 0;       /* a seq below one received before from the same connection */
	uint64_t late = 0;             /* latency above --late-ms */
	std::atomic<uint64_t> received{0};

	void
	Record(uint64_t run, uint64_t seq, uint64_t t_us, uint64_t conn, int64_t now, const Options &o)
	{
		received.fetch_add(1, std::memory_order_relaxed);
		if (run != o.run_id)
		{
			stale++;
			return;
		}
		if (seq >= seen.size() || conn >= last_seq.size())
		{
			bad++;
			return;
		}
		if (seen[seq])
		{
			dup++;
			return;
		}
		seen[seq] = 1;
		unique++;
		/* one connection commits in the order it sends: so must they arrive */
		if (int64_t(seq) < last_seq[conn])
			misordered++;
		else
			last_seq[conn] = int64_t(seq);
		int64_t ns = now - int64_t(t_us) * 1000;
		latency.Add(ns);
		if (double(ns) > o.late_ms * 1e6)
			late++;
	}
};

PGconn *
Connect(const Options &o)
{
	PGconn *c = PQconnectdb(o.db.c_str());
	if (PQstatus(c) != CONNECTION_OK)
		Die("connect to the database (" + o.db + "): " + PQerrorMessage(c));
	return c;
}

void
Exec(PGconn *c, const std::string &sql)
{
	PGresult *r = PQexec(c, sql.c_str());
	ExecStatusType st = PQresultStatus(r);
	std::string err = PQresultErrorMessage(r);
	PQclear(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		Die(sql + ": " + err);
}

/* The LISTEN side: one connection, notifications "<run>:<seq>:<us>". */
class ListenReceiver
{
public:
	ListenReceiver(const Options &o, RxStats &stats) : o_(o), stats_(stats)
	{
		conn_ = Connect(o);
		Exec(conn_, "LISTEN " + Quoted(o.channel));
	}
	~ListenReceiver() { PQfinish(conn_); }
	ListenReceiver(const ListenReceiver &) = delete;
	ListenReceiver &operator=(const ListenReceiver &) = delete;

	void
	Run(const std::atomic<bool> &stop)
	{
		pollfd p{PQsocket(conn_), POLLIN, 0};
		while (!stop.load(std::memory_order_relaxed))
		{
			int n = poll(&p, 1, kPollMs);
			if (n < 0 && errno != EINTR)
				Die(std::string("poll: ") + strerror(errno));
			if (n <= 0)
				continue;
			if (!PQconsumeInput(conn_))
				Die(std::string("LISTEN connection: ") + PQerrorMessage(conn_));
			int64_t now = MonoNs(); /* once per read, as for the WebSocket */
			while (PGnotify *nf = PQnotifies(conn_))
			{
				OnNotify(nf->extra, now);
				PQfreemem(nf);
			}
		}
	}

private:
	static std::string
	Quoted(const std::string &ident)
	{
		std::string q = "\"";
		for (char ch : ident)
		{
			if (ch == '"')
				q += '"';
			q += ch;
		}
		return q + "\"";
	}

	void
	OnNotify(std::string_view extra, int64_t now)
	{
		uint64_t v[4] = {0, 0, 0, 0}; /* run:seq:time:connection */
		const char *p = extra.data(), *end = extra.data() + extra.size();
		for (int i = 0; i < 4; i++)
		{
			auto [q, ec] = std::from_chars(p, end, v[i]);
			if (ec != std::errc() || (i < 3 && (q == end || *q != ':')))
			{
				stats_.received.fetch_add(1, std::memory_order_relaxed);
				stats_.bad++;
				return;
			}
			p = q + 1;
		}
		stats_.Record(v[0], v[1], v[2], v[3], now, o_);
	}

	const Options &o_;
	RxStats &stats_;
	PGconn *conn_ = nullptr;
};

/* The sidecar side: one WebSocket subscriber of realtime:<topic>. */
class WsReceiver
{
public:
	WsReceiver(const Options &o, RxStats &stats) : o_(o), stats_(stats)
	{
		jwt_ = MintJwt(o.secret);
		topic_ = "realtime:" + o.topic;
		std::string leftover;
		fd_ = OpenWebSocket(o.host, o.port, o.path + "?apikey=" + jwt_ + "&vsn=2.0.0", leftover);
		rx_.assign(leftover.begin(), leftover.end());
		timeval tv{0, kPollMs * 1000};
		setsockopt(fd_.Get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		std::string out;
		AppendClientFrame(out, kOpText, JoinMessage(topic_, jwt_, o.priv), masks_.Next());
		if (!WriteAll(fd_.Get(), out))
			Die(std::string("join write: ") + strerror(errno));
		int64_t deadline = MonoNs() + 20 * kNsPerSec;
		while (!joined_)
		{
			if (MonoNs() > deadline)
				Die("no reply to the WebSocket join in 20 s");
			if (!ReadOnce())
				Die("the sidecar closed the WebSocket before the join reply");
		}
	}

	void
	Run(const std::atomic<bool> &stop)
	{
		int64_t next_heartbeat = MonoNs() + kHeartbeatNs;
		while (!stop.load(std::memory_order_relaxed))
		{
			if (!ReadOnce())
				Die("the sidecar closed the WebSocket");
			int64_t now = MonoNs();
			if (now >= next_heartbeat)
			{
				std::string out;
				AppendClientFrame(out, kOpText,
				                  R"([null,")" + std::to_string(next_ref_++) +
				                      R"(","phoenix","heartbeat",{}])",
				                  masks_.Next());
				WriteAll(fd_.Get(), out);
				next_heartbeat = now + kHeartbeatNs;
			}
		}
	}

	uint64_t
	Other() const
	{
		return other_;
	}

	/* Polite close: a close frame with code 1000. */
	void
	Close()
	{
		std::string out;
		AppendClientFrame(out, kOpClose, std::string_view("\x03\xe8", 2), masks_.Next());
		send(fd_.Get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
		shutdown(fd_.Get(), SHUT_WR);
	}

private:
	/* One recv() (or its timeout), then every complete frame; false on EOF or error. */
	bool
	ReadOnce()
	{
		char buf[65536];
		ssize_t n = recv(fd_.Get(), buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		if (n <= 0)
			return false;
		int64_t now = MonoNs();
		rx_.insert(rx_.end(), buf, buf + n);
		size_t at = 0;
		while (at < rx_.size())
		{
			ServerFrame f;
			int r = ParseServerFrame(rx_.data() + at, rx_.size() - at, f);
			if (r < 0)
				Die("malformed WebSocket frame from the sidecar");
			if (r == 0)
				break;
			at += f.total;
			if (!OnFrame(f, now))
				return false;
		}
		rx_.erase(rx_.begin(), rx_.begin() + long(at));
		return true;
	}

	bool
	OnFrame(const ServerFrame &f, int64_t now)
	{
		std::string_view data(reinterpret_cast<const char *>(f.payload), f.len);
		switch (f.opcode)
		{
		case kOpPing:
		{
			std::string out;
			AppendClientFrame(out, kOpPong, data, masks_.Next());
			WriteAll(fd_.Get(), out);
			return true;
		}
		case kOpClose:
			return false;
		case kOpPong:
			return true;
		case kOpContinuation:
			fragments_.append(data);
			if (f.fin)
			{
				std::string whole = std::move(fragments_);
				fragments_.clear();
				OnMessage(fragment_opcode_, whole, now);
			}
			return true;
		default:
			if (!f.fin)
			{
				fragment_opcode_ = f.opcode;
				fragments_.assign(data);
				return true;
			}
			OnMessage(f.opcode, data, now);
			return true;
		}
	}

	void
	OnMessage(uint8_t opcode, std::string_view m, int64_t now)
	{
		UserBroadcast b;
		if (opcode == kOpBinary && DecodeUserBroadcast(m, b))
		{
			uint64_t run = 0, seq = 0, t = 0, conn = 0;
			if (b.encoding != 1 || b.topic != topic_ ||
			    !ReadNumberAfter(b.payload, R"("r":)", run) ||
			    !ReadNumberAfter(b.payload, R"("s":)", seq) ||
			    !ReadNumberAfter(b.payload, R"("t":)", t) ||
			    !ReadNumberAfter(b.payload, R"("c":)", conn))
			{
				stats_.received.fetch_add(1, std::memory_order_relaxed);
				stats_.bad++;
				return;
			}
			stats_.Record(run, seq, t, conn, now, o_);
			return;
		}
		TextHead h;
		if (!joined_ && opcode == kOpText && ParseTextHead(m, h) && h.event == "phx_reply" &&
		    h.ref == "1")
		{
			if (m.find(R"("status":"ok")") == std::string_view::npos)
				Die("join refused: " + std::string(m));
			joined_ = true;
			return;
		}
		if (other_++ < 3) /* heartbeat replies, system messages */
			std::fprintf(stderr, "db_latency: other frame (opcode %d): %.*s\n", opcode,
			             int(std::min<size_t>(m.size(), 300)), m.data());
	}

	const Options &o_;
	RxStats &stats_;
	std::string jwt_, topic_;
	Fd fd_;
	MaskSource masks_;
	std::vector<unsigned char> rx_;
	std::string fragments_;
	uint8_t fragment_opcode_ = 0;
	bool joined_ = false;
	uint64_t next_ref_ = 2;
	uint64_t other_ = 0;
};

/* One sending connection in pipeline mode. */
struct Sender
{
	PGconn *conn = nullptr;
	std::deque<int64_t> stamps; /* send time (ns) of each statement in flight */
	bool want_write = false;    /* libpq has unsent bytes */
};

/* What the sending side saw. */
struct SendStats
{
	uint64_t sent = 0;
	uint64_t unsent = 0;   /* not sent by seconds + drain: the database did not keep up */
	uint64_t acked = 0;    /* Syncs answered */
	uint64_t errors = 0;   /* statements that failed */
	uint64_t warnings = 0; /* notices: realtime.send's WarnSendingBroadcastMessage */
	Histogram ack;         /* statement round trip: stamp -> commit acknowledged */
	int64_t start_ns = 0, end_ns = 0;
	int64_t max_lag_ns = 0; /* worst delay of a send behind its schedule */
	size_t max_inflight = 0;
	std::string first_error;
};

void
CountNotice(void *arg, const PGresult *)
{
	static_cast<SendStats *>(arg)->warnings++;
}

/* Read whatever results arrived on s; count them. */
void
DrainResults(Sender &s, SendStats &st)
{
	if (!PQconsumeInput(s.conn))
		Die(std::string("sending connection: ") + PQerrorMessage(s.conn));
	while (!s.stamps.empty() && !PQisBusy(s.conn))
	{
		PGresult *r = PQgetResult(s.conn);
		if (r == nullptr)
			continue; /* end of one statement's results; its Sync follows */
		switch (PQresultStatus(r))
		{
		case PGRES_PIPELINE_SYNC:
			st.ack.Add(MonoNs() - s.stamps.front());
			s.stamps.pop_front();
			st.acked++;
			break;
		case PGRES_TUPLES_OK:
		case PGRES_COMMAND_OK:
			break;
		default:
			if (st.errors++ == 0)
				st.first_error = PQresultErrorMessage(r);
			break;
		}
		PQclear(r);
	}
}

void
Flush(Sender &s)
{
	int f = PQflush(s.conn);
	if (f < 0)
		Die(std::string("PQflush: ") + PQerrorMessage(s.conn));
	s.want_write = f == 1;
}

/*
 * Message i is due at start + i / rate; whatever is due is stamped with the
 * current time and handed to the least busy connection at once. Then wait in
 * poll() for results or the next due time. After the last one, wait for
 * every acknowledgement.
 */
SendStats
SendAll(const Options &o, std::vector<Sender> &senders, const std::string &stmt_name)
{
	SendStats st;
	for (auto &s : senders)
		PQsetNoticeReceiver(s.conn, CountNotice, &st);
	const double interval_ns = double(kNsPerSec) / o.rate;
	const uint64_t total = uint64_t(std::llround(o.rate * o.seconds));
	const std::string run = std::to_string(o.run_id);
	std::string payload;
	std::vector<pollfd> pfds(senders.size());
	st.start_ns = MonoNs();
	const int64_t give_up_ns = st.start_ns + int64_t((o.seconds + o.drain) * kNsPerSec);
	uint64_t last = total; /* messages to send; fewer if the database cannot keep up */
	for (;;)
	{
		int64_t now = MonoNs();
		if (st.sent < last && now > give_up_ns)
		{
			std::fprintf(stderr,
			             "db_latency: only %" PRIu64 " of %" PRIu64
			             " sent after %.1f s: giving up\n",
			             st.sent, total, o.seconds + o.drain);
			last = st.sent;
		}
		uint64_t due =
		    std::min<uint64_t>(last, uint64_t(double(now - st.start_ns) / interval_ns) + 1);
		while (st.sent < due)
		{
			Sender *best = &senders[0];
			for (auto &s : senders)
				if (s.stamps.size() < best->stamps.size())
					best = &s;
			if (best->stamps.size() >= size_t(o.max_inflight))
				break; /* everything is backed up: wait for results */
			int64_t stamp = MonoNs();
			int64_t scheduled = st.start_ns + int64_t(double(st.sent) * interval_ns);
			st.max_lag_ns = std::max(st.max_lag_ns, stamp - scheduled);
			std::string us = std::to_string(stamp / 1000), seq = std::to_string(st.sent);
			std::string conn = std::to_string(best - senders.data());
			if (o.mode == Mode::kSend)
				payload =
				    R"({"t":)" + us + R"(,"s":)" + seq + R"(,"r":)" + run + R"(,"c":)" + conn + "}";
			else
				payload = run + ":" + seq + ":" + us + ":" + conn;
			const char *values[1] = {payload.c_str()};
			if (!PQsendQueryPrepared(best->conn, stmt_name.c_str(), 1, values, nullptr, nullptr,
			                         0) ||
			    !PQpipelineSync(best->conn))
				Die(std::string("send: ") + PQerrorMessage(best->conn));
			best->stamps.push_back(stamp);
			st.max_inflight = std::max(st.max_inflight, best->stamps.size());
			st.sent++;
			Flush(*best);
		}
		size_t inflight = 0;
		for (auto &s : senders)
			inflight += s.stamps.size();
		if (st.sent >= last && st.end_ns == 0)
			st.end_ns = MonoNs();
		if (st.sent >= last && inflight == 0)
			break;
		if (st.sent >= last && MonoNs() > st.end_ns + int64_t(o.drain * kNsPerSec))
		{
			std::fprintf(stderr, "db_latency: %zu statements still unanswered after the drain\n",
			             inflight);
			break;
		}
		for (size_t i = 0; i < senders.size(); i++)
			pfds[i] = {PQsocket(senders[i].conn),
			           short(POLLIN | (senders[i].want_write ? POLLOUT : 0)), 0};
		int64_t wait_ns = 0;
		if (st.sent < total)
			wait_ns = std::max<int64_t>(0, st.start_ns + int64_t(double(st.sent) * interval_ns) -
			                                   MonoNs());
		else
			wait_ns = 10000000;
		timespec ts{time_t(wait_ns / kNsPerSec), long(wait_ns % kNsPerSec)};
		int n = ppoll(pfds.data(), pfds.size(), &ts, nullptr);
		if (n < 0 && errno != EINTR)
			Die(std::string("ppoll: ") + strerror(errno));
		for (size_t i = 0; n > 0 && i < senders.size(); i++)
		{
			if (pfds[i].revents & POLLOUT)
				Flush(senders[i]);
			if (pfds[i].revents & (POLLIN | POLLERR | POLLHUP))
				DrainResults(senders[i], st);
		}
	}
	st.unsent = total - st.sent;
	return st;
}

void
Usage()
{
	std::fprintf(stderr,
	             "usage: db_latency --mode send|notify --port N --secret S --db CONNINFO\n"
	             "         [--rate 1000] [--seconds 10] [--drain 5] [--conns 8]\n"
	             "         [--max-inflight 16] [--late-ms 5] [--topic dblat] [--channel dblat]\n"
	             "         [--run-id N] [--host 127.0.0.1] [--path /realtime/v1/websocket]\n"
	             "         [--write 1]   (each statement also updates row <connection> of\n"
	             "         bench_lat(id int primary key, n int), which must exist)\n"
	             "       db_latency --sink [--port N --secret S] --db CONNINFO [--topic T]\n"
	             "         [--channel C] [--private 1]   (count deliveries until SIGINT/SIGTERM;\n"
	             "         without --port, LISTEN only; --private 1: of the private room)\n");
	std::exit(2);
}

Options
ParseArgs(int argc, char **argv)
{
	Options o;
	bool mode_given = false;
	for (int i = 1; i < argc; i++)
	{
		std::string_view a = argv[i];
		if (a == "--sink")
		{
			o.mode = Mode::kSink;
			mode_given = true;
			continue;
		}
		if (i + 1 >= argc)
			Usage();
		const char *v = argv[++i];
		if (EndpointOption(a, v, o, kWithSecret | kWithDb))
			continue;
		if (a == "--mode")
		{
			std::string_view m = v;
			if (m == "send")
				o.mode = Mode::kSend;
			else if (m == "notify")
				o.mode = Mode::kNotify;
			else
				Usage();
			mode_given = true;
		}
		else if (a == "--topic")
			o.topic = v;
		else if (a == "--channel")
			o.channel = v;
		else if (a == "--rate")
			o.rate = ParseDouble("--rate", v);
		else if (a == "--seconds")
			o.seconds = ParseDouble("--seconds", v);
		else if (a == "--drain")
			o.drain = ParseDouble("--drain", v);
		else if (a == "--conns")
			o.conns = int(ParseDouble("--conns", v));
		else if (a == "--max-inflight")
			o.max_inflight = int(ParseDouble("--max-inflight", v));
		else if (a == "--late-ms")
			o.late_ms = ParseDouble("--late-ms", v);
		else if (a == "--run-id")
			o.run_id = uint64_t(ParseDouble("--run-id", v));
		else if (a == "--write")
			o.write = std::string_view(v) == "1";
		else if (a == "--private")
			o.priv = std::string_view(v) == "1";
		else
			Usage();
	}
	bool need_ws = o.mode != Mode::kSink || o.port != 0; /* a sink may go without */
	if (!mode_given || (need_ws && (o.port <= 0 || o.secret.empty())) || o.db.empty() ||
	    o.conns < 1 || o.max_inflight < 1)
		Usage();
	if (("realtime:" + o.topic).size() > 255)
		Die("topic too long");
	if (o.run_id == 0)
		o.run_id = uint64_t(MonoNs() / 1000) ^ (uint64_t(getpid()) << 40);
	o.run_id &= (uint64_t(1) << 53) - 1; /* exact in a JSON number */
	return o;
}

int
RunSink(const Options &o)
{
	RxStats ws_stats, pg_stats;
	std::atomic<bool> stop{false};
	std::unique_ptr<WsReceiver> ws;
	if (o.port != 0)
		ws = std::make_unique<WsReceiver>(o, ws_stats);
	ListenReceiver listen(o, pg_stats);
	std::thread tw;
	if (ws)
		tw = std::thread([&] { ws->Run(stop); });
	std::thread tl([&] { listen.Run(stop); });
	std::fprintf(stderr, "db_latency: sink on %s%s and LISTEN %s\n", ws ? "realtime:" : "",
	             ws ? o.topic.c_str() : "no WebSocket", o.channel.c_str());
	while (!g_signalled.load())
		usleep(20000);
	stop.store(true);
	if (ws)
	{
		tw.join();
		ws->Close();
	}
	tl.join();
	std::printf("sink ws_received=%" PRIu64 " notify_received=%" PRIu64 "\n",
	            ws_stats.received.load(), pg_stats.received.load());
	return 0;
}

int
RunLatency(const Options &o)
{
	const uint64_t total = uint64_t(std::llround(o.rate * o.seconds));
	RxStats ws_stats, pg_stats;
	RxStats &mine = o.mode == Mode::kSend ? ws_stats : pg_stats;
	mine.seen.assign(total, 0);
	mine.last_seq.assign(size_t(o.conns), -1);
	std::atomic<bool> stop{false};
	WsReceiver ws(o, ws_stats);
	ListenReceiver listen(o, pg_stats);

	const std::string stmt = "db_latency";
	std::vector<Sender> senders(size_t(o.conns));
	for (size_t k = 0; k < senders.size(); k++)
	{
		Sender &s = senders[k];
		s.conn = Connect(o);
		std::string sql = o.mode == Mode::kSend
		                      ? "select realtime.send($1::jsonb, 'e', '" + o.topic + "')"
		                      : "select pg_notify('" + o.channel + "', $1)";
		/* both modes then write WAL and wait for its flush, as a trigger's transaction does */
		if (o.write)
			sql = "with w as (update bench_lat set n = n + 1 where id = " + std::to_string(k + 1) +
			      " returning 1) " + sql + " from w";
		if (o.topic.find('\'') != std::string::npos || o.channel.find('\'') != std::string::npos)
			Die("no quotes in --topic or --channel, please");
		PGresult *r = PQprepare(s.conn, stmt.c_str(), sql.c_str(), 1, nullptr);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			Die("prepare " + sql + ": " + PQresultErrorMessage(r));
		PQclear(r);
		if (PQsetnonblocking(s.conn, 1) != 0 || !PQenterPipelineMode(s.conn))
			Die(std::string("pipeline mode: ") + PQerrorMessage(s.conn));
	}
	std::thread tw([&] { ws.Run(stop); });
	std::thread tl([&] { listen.Run(stop); });
	std::fprintf(stderr,
	             "db_latency: run %" PRIu64 ": %s at %.0f msg/s for %.1f s over %d connection(s)\n",
	             o.run_id, o.mode == Mode::kSend ? "realtime.send" : "pg_notify", o.rate, o.seconds,
	             o.conns);

	int64_t cpu_before = ProcessCpuNs();
	SendStats st = SendAll(o, senders, stmt);
	/* wait for the deliveries of everything that was acknowledged */
	int64_t deadline = MonoNs() + int64_t(o.drain * kNsPerSec);
	while (MonoNs() < deadline && mine.received.load() < st.acked)
		usleep(1000);
	if (mine.received.load() >= st.acked)
		usleep(200000); /* a little longer, to see duplicates */
	stop.store(true);
	tw.join();
	tl.join();
	int64_t wall_end = MonoNs();
	int64_t cpu_used = ProcessCpuNs() - cpu_before;
	ws.Close();
	for (auto &s : senders)
		PQfinish(s.conn);
	if (st.errors > 0)
		std::fprintf(stderr, "db_latency: %" PRIu64 " statement(s) failed; first: %s\n", st.errors,
		             st.first_error.c_str());

	RxStats &other = o.mode == Mode::kSend ? pg_stats : ws_stats;
	uint64_t ok = st.acked - std::min(st.acked, st.errors);
	uint64_t lost = ok > mine.unique ? ok - mine.unique : 0;
	auto ms = [](double ns) { return ns / 1e6; };
	double send_span = double(std::max<int64_t>(1, st.end_ns - st.start_ns));
	std::printf("result mode=%s rate=%.0f seconds=%.1f conns=%d sent=%" PRIu64 " unsent=%" PRIu64
	            " send_rate=%.1f"
	            " acked=%" PRIu64 " errors=%" PRIu64 " warnings=%" PRIu64 " received=%" PRIu64
	            " lost=%" PRIu64 " dup=%" PRIu64 " misordered=%" PRIu64 " stale=%" PRIu64
	            " bad=%" PRIu64 " foreign=%" PRIu64 " late_over_%gms=%" PRIu64
	            " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f"
	            " max_ms=%.3f ack_p50_ms=%.3f ack_p99_ms=%.3f pub_lag_max_ms=%.3f max_inflight=%zu"
	            " client_cpu_pct=%.0f\n",
	            o.mode == Mode::kSend ? "send" : "notify", o.rate, o.seconds, o.conns, st.sent,
	            st.unsent, double(st.sent) * kNsPerSec / send_span, st.acked, st.errors,
	            st.warnings, mine.unique, lost, mine.dup, mine.misordered, mine.stale, mine.bad,
	            other.received.load(), o.late_ms, mine.late, ms(mine.latency.Quantile(0.5)),
	            ms(mine.latency.Quantile(0.9)), ms(mine.latency.Quantile(0.99)),
	            ms(mine.latency.Quantile(0.999)), ms(double(mine.latency.Max())),
	            ms(st.ack.Quantile(0.5)), ms(st.ack.Quantile(0.99)), ms(double(st.max_lag_ns)),
	            st.max_inflight,
	            100.0 * double(cpu_used) / double(std::max<int64_t>(1, wall_end - st.start_ns)));
	std::fflush(stdout);
	if (st.acked != st.sent || st.errors != 0)
		return 4;
	/* what was committed must arrive, once, in each connection's order */
	return lost == 0 && mine.dup == 0 && mine.misordered == 0 && mine.bad == 0 ? 0 : 5;
}

} // namespace
} // namespace rt::bench

int
main(int argc, char **argv)
{
	using namespace rt::bench;
	g_program_name = "db_latency";
	struct sigaction sa = {};
	sa.sa_handler = OnSignal;
	sigaction(SIGINT, &sa, nullptr);
	sigaction(SIGTERM, &sa, nullptr);
	return RunOrReport(
	    [&]
	    {
		    Options o = ParseArgs(argc, argv);
		    return o.mode == Mode::kSink ? RunSink(o) : RunLatency(o);
	    });
}
