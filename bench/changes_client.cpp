/*
 * changes_client.cpp: Postgres Changes delivery benchmark (bench/changes.sh,
 * `make bench-changes`, docs/PERFORMANCE.md). Not a test.
 *
 * One process. The main thread opens U x C WebSocket connections to the
 * sidecar: C clients per user ("tabs of one login"), user u using line u of
 * --tokens (an HS256 token with role authenticated and sub = the user's uuid,
 * from `realtime-fanout token`) both as apikey and access_token. Each
 * connection joins two channels the way realtime-js does:
 *   realtime:rls    postgres_changes [{event INSERT, schema public, table <rls table>}]
 *   realtime:norls  postgres_changes [{event INSERT, schema public, table <norls table>}]
 * (with --filter 1 each also carries filter user_id=eq.<its user's uuid>), and
 * waits until every channel got its phx_reply ok and its system message
 * "Subscribed to PostgreSQL" (status ok).
 *
 * Then, for each run of --plan ("rls:1000 norls:20 ..."), it inserts rows into
 * that table over one libpq connection at the run's rate for --seconds: every
 * --tick-ms it sends one autocommit multi-row INSERT with the rows due by then
 * (row k of the run: user k mod U, columns run, seq = k, sent_us =
 * CLOCK_MONOTONIC in microseconds when the statement is handed to libpq),
 * keeping up to --max-inflight statements in flight (pipeline mode, a Sync
 * per statement). Receiver threads (epoll, disjoint connections) parse every
 * postgres_changes message, take the record's run, seq and sent_us, and
 * check each delivery against what should arrive: with RLS (or a filter) row k
 * goes to exactly the C connections of user k mod U, without either to all
 * U x C. The run's measuring window (CPU figures) ends when every expected
 * delivery arrived or --drain seconds after the last statement was answered;
 * deliveries are then still counted until all are in and none arrived for
 * 1 s, or none arrived for 5 s (at most --settle s; "backlog_s": the last one
 * after the drain), so a backlog does not spill into the next run. One
 * "result key=value ..." line per run on stdout:
 *   expected, delivered (distinct), late (of them, after the drain),
 *   lost = expected - delivered (never arrived), dup (a row
 *   again on the same connection), foreign (a row on a connection that must
 *   not see it), stale (another run's rows), bad (unreadable);
 *   deliveries_per_s = delivered / (last delivery - first statement sent);
 *   p50/p90/p99/max of receive time - sent_us (the receive time taken once per
 *   read(); one clock, system-wide): statement, commit, decoding, the ring,
 *   the engine's RLS check, the sidecar's push, the socket;
 *   send_rate (rows/s actually sent), send_lag_max_ms (how far the inserter
 *   fell behind its schedule: the database did not keep up), stmt_p99_ms
 *   (statement round trip); and the CPU (% of one core) of each --watch pid
 *   over the run.
 *
 * Threads: main (connect, insert, report); --threads receivers. A run's
 * state is handed to the receivers through an atomic pointer and a
 * generation counter each receiver acknowledges, so the main thread reads a
 * run's counters only once no receiver can still touch them.
 */
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.hpp"
#include "histogram.hpp"
#include "ws_client.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
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
constexpr size_t kRxChunk = 64 * 1024;
constexpr int kTables = 2; /* 0: the RLS table, 1: the table without RLS */
const char *const kTopic[kTables] = {"realtime:rls", "realtime:norls"};
const char *const kTableKind[kTables] = {"rls", "norls"};

struct Step
{
	int table = 0;
	double rate = 0; /* rows/s */
	int round = 0;
};

/* Command-line settings. */
struct Options : Endpoint
{
	std::string tokens_file;
	std::string table[kTables] = {"bench_rls", "bench_norls"};
	int users = 100;
	int clients_per_user = 10;
	int threads = 1;
	bool filter = false;
	std::vector<Step> plan;
	double seconds = 10;
	double drain = 10;
	double tick_ms = 10;
	int max_inflight = 8;
	double join_timeout = 120;
	double settle = 120;
	double p99_limit_ms = 1000;
	std::vector<Watch> watch;
};

/* One run: what its deliveries are checked against, and what they gave. */
struct RunState
{
	uint64_t id = 0;
	int table = 0;
	bool to_owner_only = false; /* RLS or a filter: a row goes to its user's clients only */
	uint64_t rows = 0;          /* rows of this run */
	int64_t start_ns = 0;
	std::vector<std::vector<uint64_t>> seen; /* per connection: bitset over seq */
	struct PerThread
	{
		Histogram latency;
		uint64_t delivered = 0, dup = 0, foreign = 0, stale = 0, bad = 0, other_table = 0;
		int64_t last_rx_ns = 0;
	};
	std::vector<PerThread> per_thread;
	std::atomic<uint64_t> delivered{0}; /* progress for the main thread */
};

struct Shared
{
	std::atomic<RunState *> run{nullptr};
	std::atomic<uint64_t> gen{0};
	std::atomic<bool> stop{false};
	std::atomic<int> replies{0};      /* channels joined (phx_reply ok) */
	std::atomic<int> subscribed{0};   /* channels with "Subscribed to PostgreSQL" */
	std::atomic<int> failures{0};     /* refused joins, error system messages, closed sockets */
	std::atomic<uint64_t> changes{0}; /* postgres_changes messages, of any run */
};

struct Conn
{
	int index = 0; /* global, for Run::seen */
	int user = 0;
	Fd fd;
	RxBuffer rx{kRxChunk};
	bool closed = false;
	uint64_t next_ref = 3; /* "1" and "2" were the joins */
	int64_t next_heartbeat_ns = 0;
};

std::string
JoinChanges(const Options &o, int t, const std::string &ref, const std::string &jwt, int user)
{
	std::string change = R"({"event":"INSERT","schema":"public","table":")" + o.table[t] + "\"";
	if (o.filter)
		change += R"(,"filter":"user_id=eq.)" + UserUuid(user) + "\"";
	change += "}";
	return "[\"" + ref + "\",\"" + ref + "\",\"" + kTopic[t] +
	       R"(","phx_join",{"config":{"broadcast":{"self":false,"ack":false},)"
	       R"("presence":{"enabled":false},"postgres_changes":[)" +
	       change + R"(],"private":false},"access_token":")" + jwt + "\"}]";
}

class Receiver : public FrameReceiver<Receiver, Conn, kRxChunk>
{
	friend class FrameReceiver<Receiver, Conn, kRxChunk>;

public:
	Receiver(const Options &o, Shared &shared, int slot, std::vector<std::unique_ptr<Conn>> conns)
	    : o_(o), shared_(shared), slot_(slot), conns_(std::move(conns))
	{
	}

	void
	Run()
	{
		ep_ = Fd(epoll_create1(EPOLL_CLOEXEC));
		if (ep_.Get() < 0)
			Die(std::string("epoll_create1: ") + strerror(errno));
		int64_t now = MonoNs();
		for (auto &c : conns_)
		{
			epoll_event ev{};
			ev.events = EPOLLIN;
			ev.data.ptr = c.get();
			if (epoll_ctl(ep_.Get(), EPOLL_CTL_ADD, c->fd.Get(), &ev) != 0)
				Die(std::string("epoll_ctl: ") + strerror(errno));
			c->next_heartbeat_ns = now + kHeartbeatNs;
			Consume(*c, now);
		}
		std::vector<epoll_event> events(512);
		int64_t last_housekeeping = 0;
		while (!shared_.stop.load(std::memory_order_relaxed))
		{
			uint64_t gen = shared_.gen.load(std::memory_order_acquire);
			run_ = shared_.run.load(std::memory_order_acquire);
			int n = epoll_wait(ep_.Get(), events.data(), int(events.size()), 20);
			if (n < 0 && errno != EINTR)
				Die(std::string("epoll_wait: ") + strerror(errno));
			for (int i = 0; i < n; i++)
				ReadSome(*static_cast<Conn *>(events[size_t(i)].data.ptr));
			acked_.store(gen, std::memory_order_release);
			now = MonoNs();
			if (now - last_housekeeping < 10000000)
				continue;
			last_housekeeping = now;
			for (auto &c : conns_)
				if (!c->closed && now >= c->next_heartbeat_ns)
				{
					std::string out;
					AppendClientFrame(out, kOpText,
					                  R"([null,")" + std::to_string(c->next_ref++) +
					                      R"(","phoenix","heartbeat",{}])",
					                  masks_.Next());
					WriteAll(c->fd.Get(), out);
					c->next_heartbeat_ns = now + kHeartbeatNs;
				}
		}
		acked_.store(UINT64_MAX, std::memory_order_release);
		for (auto &c : conns_)
		{
			std::string out;
			AppendClientFrame(out, kOpClose, std::string_view("\x03\xe8", 2), masks_.Next());
			send(c->fd.Get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}

	uint64_t
	Acked() const
	{
		return acked_.load(std::memory_order_acquire);
	}
	uint64_t
	Other() const
	{
		return other_;
	}

private:
	/* why: nullptr while the connection lives */
	void
	MarkClosed(Conn &c, const char *why)
	{
		if (why == nullptr || c.closed)
			return;
		c.closed = true;
		if (shared_.failures.fetch_add(1) < 3)
			std::fprintf(stderr, "changes_client: connection %d closed by the server (%s)\n",
			             c.index, why);
		epoll_ctl(ep_.Get(), EPOLL_CTL_DEL, c.fd.Get(), nullptr);
		shutdown(c.fd.Get(), SHUT_RDWR);
	}

	void
	OnMessage(Conn &c, uint8_t /* opcode: text only */, std::string_view m, int64_t now)
	{
		TextHead h;
		if (!ParseTextHead(m, h))
		{
			Other(m);
			return;
		}
		if (h.event == "postgres_changes")
		{
			shared_.changes.fetch_add(1, std::memory_order_relaxed);
			OnChange(c, h.topic, m, now);
			return;
		}
		if (h.event == "phx_reply" && (h.ref == "1" || h.ref == "2"))
		{
			if (m.find(R"("status":"ok")") != std::string_view::npos)
				shared_.replies.fetch_add(1);
			else
			{
				if (shared_.failures.fetch_add(1) < 3)
					std::fprintf(stderr, "changes_client: join refused: %.*s\n",
					             int(std::min<size_t>(m.size(), 400)), m.data());
			}
			return;
		}
		if (h.event == "system")
		{
			if (m.find("Subscribed to PostgreSQL") != std::string_view::npos &&
			    m.find(R"("status":"ok")") != std::string_view::npos)
				shared_.subscribed.fetch_add(1);
			else if (shared_.failures.fetch_add(1) < 3)
				std::fprintf(stderr, "changes_client: system message: %.*s\n",
				             int(std::min<size_t>(m.size(), 400)), m.data());
			return;
		}
		Other(m);
	}

	void
	Other(std::string_view m)
	{
		/* heartbeat replies are expected every 25 s; anything else is shown */
		if (m.find(R"("phoenix","phx_reply")") != std::string_view::npos)
			return;
		if (other_++ < 3)
			std::fprintf(stderr, "changes_client: other frame: %.*s\n",
			             int(std::min<size_t>(m.size(), 300)), m.data());
	}

	void
	OnChange(Conn &c, std::string_view topic, std::string_view m, int64_t now)
	{
		RunState *r = run_;
		if (r == nullptr)
			return; /* between runs: a late tail, counted as stale by nobody */
		RunState::PerThread &st = r->per_thread[size_t(slot_)];
		size_t rec = m.find(R"("record":)");
		uint64_t run_id = 0, seq = 0, sent_us = 0;
		if (rec == std::string_view::npos)
		{
			st.bad++;
			return;
		}
		std::string_view record = m.substr(rec);
		if (!ReadNumberAfter(record, R"("run":)", run_id) ||
		    !ReadNumberAfter(record, R"("seq":)", seq) ||
		    !ReadNumberAfter(record, R"("sent_us":)", sent_us))
		{
			st.bad++;
			return;
		}
		if (run_id != r->id)
		{
			st.stale++;
			return;
		}
		if (topic != kTopic[r->table])
		{
			st.other_table++;
			return;
		}
		if (seq >= r->rows)
		{
			st.bad++;
			return;
		}
		if (r->to_owner_only && int(seq % uint64_t(o_.users)) != c.user)
		{
			st.foreign++;
			return;
		}
		uint64_t &word = r->seen[size_t(c.index)][seq / 64];
		uint64_t bit = uint64_t(1) << (seq % 64);
		if (word & bit)
		{
			st.dup++;
			return;
		}
		word |= bit;
		st.delivered++;
		st.latency.Add(now - int64_t(sent_us) * 1000);
		st.last_rx_ns = now;
		r->delivered.fetch_add(1, std::memory_order_relaxed);
	}

	const Options &o_;
	Shared &shared_;
	int slot_;
	std::vector<std::unique_ptr<Conn>> conns_;
	Fd ep_;
	RunState *run_ = nullptr;
	std::atomic<uint64_t> acked_{0};
	uint64_t other_ = 0;
};

/* What the inserter saw. */
struct InsertStats
{
	uint64_t sent = 0, acked = 0, errors = 0;
	int64_t start_ns = 0, end_ns = 0, max_lag_ns = 0;
	Histogram stmt;
	std::string first_error;
};

void
Quiet(void *, const PGresult *)
{
}

/*
 * Rows of the run are due at start + k / rate; every tick (and whenever a
 * statement slot frees up) all rows due so far go out in one INSERT, stamped
 * with the time it is handed to libpq. At most --max-inflight statements in
 * flight; then the inserter waits and send_lag grows.
 */
InsertStats
InsertRows(const Options &o, PGconn *pg, const RunState &run, double rate)
{
	InsertStats st;
	std::deque<int64_t> inflight;
	const double per_ns = rate / double(kNsPerSec);
	const int64_t tick_ns = int64_t(o.tick_ms * 1e6);
	const std::string stmt = std::string("ins_") + kTableKind[run.table];
	const std::string run_s = std::to_string(run.id), users_s = std::to_string(o.users);
	uint64_t next_row = 0, last = run.rows;
	st.start_ns = run.start_ns;
	const int64_t give_up_ns = st.start_ns + int64_t((o.seconds + o.drain) * kNsPerSec);
	int64_t next_send_ns = st.start_ns;
	bool want_write = false;
	for (;;)
	{
		int64_t now = MonoNs();
		if (now > give_up_ns && next_row < last)
		{
			std::fprintf(stderr, "changes_client: only %" PRIu64 " of %" PRIu64 " rows sent\n",
			             next_row, run.rows);
			last = next_row;
		}
		uint64_t due = std::min<uint64_t>(last, uint64_t(double(now - st.start_ns) * per_ns));
		if (due > next_row && now >= next_send_ns && inflight.size() < size_t(o.max_inflight))
		{
			int64_t stamp = MonoNs();
			int64_t scheduled = st.start_ns + int64_t(double(next_row + 1) / per_ns);
			st.max_lag_ns = std::max(st.max_lag_ns, stamp - scheduled - tick_ns);
			std::string first = std::to_string(next_row), count = std::to_string(due - next_row),
			            us = std::to_string(stamp / 1000);
			const char *values[5] = {run_s.c_str(), first.c_str(), count.c_str(), us.c_str(),
			                         users_s.c_str()};
			if (!PQsendQueryPrepared(pg, stmt.c_str(), 5, values, nullptr, nullptr, 0) ||
			    !PQpipelineSync(pg))
				Die(std::string("insert: ") + PQerrorMessage(pg));
			inflight.push_back(stamp);
			st.sent += due - next_row;
			next_row = due;
			next_send_ns = stamp + tick_ns;
			int f = PQflush(pg);
			if (f < 0)
				Die(std::string("PQflush: ") + PQerrorMessage(pg));
			want_write = f == 1;
		}
		if (next_row >= last && st.end_ns == 0)
			st.end_ns = MonoNs();
		if (next_row >= last && inflight.empty())
			break;
		int64_t wait_ns = tick_ns;
		if (next_row < last && inflight.size() < size_t(o.max_inflight))
		{
			/* the next send: a tick after the last one, once a row is due */
			int64_t row_due = st.start_ns + int64_t(double(next_row + 1) / per_ns);
			wait_ns = std::clamp<int64_t>(std::max(next_send_ns, row_due) - MonoNs(), 0, tick_ns);
		}
		pollfd p{PQsocket(pg), short(POLLIN | (want_write ? POLLOUT : 0)), 0};
		timespec ts{time_t(wait_ns / kNsPerSec), long(wait_ns % kNsPerSec)};
		int n = ppoll(&p, 1, &ts, nullptr);
		if (n < 0 && errno != EINTR)
			Die(std::string("ppoll: ") + strerror(errno));
		if (n <= 0)
			continue;
		if (p.revents & POLLOUT)
		{
			int f = PQflush(pg);
			if (f < 0)
				Die(std::string("PQflush: ") + PQerrorMessage(pg));
			want_write = f == 1;
		}
		if (!PQconsumeInput(pg))
			Die(std::string("inserting connection: ") + PQerrorMessage(pg));
		while (!inflight.empty() && !PQisBusy(pg))
		{
			PGresult *r = PQgetResult(pg);
			if (r == nullptr)
				continue;
			switch (PQresultStatus(r))
			{
			case PGRES_PIPELINE_SYNC:
				st.stmt.Add(MonoNs() - inflight.front());
				inflight.pop_front();
				st.acked++;
				break;
			case PGRES_COMMAND_OK:
			case PGRES_TUPLES_OK:
				break;
			default:
				if (st.errors++ == 0)
					st.first_error = PQresultErrorMessage(r);
			}
			PQclear(r);
		}
	}
	return st;
}

/* Hand run r (or none) to the receivers and wait until each has seen it. */
void
Publish(Shared &shared, std::vector<std::unique_ptr<Receiver>> &rx, RunState *r)
{
	shared.run.store(r, std::memory_order_release);
	uint64_t gen = shared.gen.fetch_add(1, std::memory_order_acq_rel) + 1;
	for (auto &x : rx)
		while (x->Acked() < gen)
			usleep(1000);
}

void
Usage()
{
	std::fprintf(
	    stderr,
	    "usage: changes_client --port N --db CONNINFO --tokens FILE --plan 'rls:R norls:R ...'\n"
	    "         [--users 100] [--clients-per-user 10] [--filter 0|1] [--seconds 10]\n"
	    "         [--drain 10] [--tick-ms 10] [--max-inflight 8] [--threads 1]\n"
	    "         [--rls-table bench_rls] [--norls-table bench_norls] [--join-timeout 120]\n"
	    "         [--settle 120] [--p99-limit-ms 1000]\n"
	    "         [--watch NAME=PID ...] [--host 127.0.0.1] [--path /realtime/v1/websocket]\n"
	    "  --plan: steps TABLE:ROWS_PER_S; \"|\" starts a new round. Within a round, a step\n"
	    "  is skipped once a lower rate of its table lost rows or had p99 over the limit\n"
	    "  FILE: one token per line, line u for user u (sub = uuid of user u, see UserUuid)\n"
	    "  tables: (user_id uuid, run int8, seq int8, sent_us int8, body text, ...)\n");
	std::exit(2);
}

Options
ParseArgs(int argc, char **argv)
{
	Options o;
	for (int i = 1; i < argc; i++)
	{
		std::string_view a = argv[i];
		if (i + 1 >= argc)
			Usage();
		const char *v = argv[++i];
		if (EndpointOption(a, v, o, kWithDb))
			continue;
		if (a == "--tokens")
			o.tokens_file = v;
		else if (a == "--rls-table")
			o.table[0] = v;
		else if (a == "--norls-table")
			o.table[1] = v;
		else if (a == "--users")
			o.users = int(ParseDouble("--users", v));
		else if (a == "--clients-per-user")
			o.clients_per_user = int(ParseDouble("--clients-per-user", v));
		else if (a == "--threads")
			o.threads = int(ParseDouble("--threads", v));
		else if (a == "--filter")
			o.filter = std::string_view(v) == "1";
		else if (a == "--seconds")
			o.seconds = ParseDouble("--seconds", v);
		else if (a == "--drain")
			o.drain = ParseDouble("--drain", v);
		else if (a == "--tick-ms")
			o.tick_ms = ParseDouble("--tick-ms", v);
		else if (a == "--max-inflight")
			o.max_inflight = int(ParseDouble("--max-inflight", v));
		else if (a == "--join-timeout")
			o.join_timeout = ParseDouble("--join-timeout", v);
		else if (a == "--settle")
			o.settle = ParseDouble("--settle", v);
		else if (a == "--p99-limit-ms")
			o.p99_limit_ms = ParseDouble("--p99-limit-ms", v);
		else if (a == "--watch")
		{
			Watch w;
			if (!ParseWatch(v, &w))
				Usage();
			o.watch.push_back(w);
		}
		else if (a == "--plan")
		{
			std::string_view p = v;
			int round = 0;
			while (!p.empty())
			{
				size_t sp = p.find(' ');
				std::string item(p.substr(0, sp));
				p = sp == std::string_view::npos ? std::string_view() : p.substr(sp + 1);
				if (item.empty())
					continue;
				if (item == "|")
				{
					if (!o.plan.empty() && o.plan.back().round == round)
						round++; /* a round starts at its first step */
					continue;
				}
				size_t colon = item.find(':');
				if (colon == std::string::npos)
					Usage();
				std::string kind = item.substr(0, colon);
				Step s;
				if (kind == "rls")
					s.table = 0;
				else if (kind == "norls")
					s.table = 1;
				else
					Usage();
				s.rate = ParseDouble("--plan rate", item.c_str() + colon + 1);
				s.round = round;
				o.plan.push_back(s);
			}
		}
		else
			Usage();
	}
	if (o.port <= 0 || o.db.empty() || o.tokens_file.empty() || o.plan.empty() ||
	    o.max_inflight < 1 || o.threads < 1)
		Usage();
	for (const std::string &t : o.table)
		for (char ch : t)
			if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'))
				Die("table names: letters, digits and _ only");
	return o;
}

int
Main(int argc, char **argv)
{
	Options o = ParseArgs(argc, argv);
	std::vector<std::string> tokens;
	{
		std::ifstream f(o.tokens_file);
		std::string line;
		while (std::getline(f, line))
			if (!line.empty())
				tokens.push_back(line);
	}
	if (int(tokens.size()) < o.users)
		Die("--tokens has " + std::to_string(tokens.size()) + " tokens for " +
		    std::to_string(o.users) + " users");

	PGconn *pg = PQconnectdb(o.db.c_str());
	if (PQstatus(pg) != CONNECTION_OK)
		Die("connect to the database: " + std::string(PQerrorMessage(pg)));
	PQsetNoticeReceiver(pg, Quiet, nullptr);
	for (int t = 0; t < kTables; t++)
	{
		/* $1 run, $2 first seq, $3 count, $4 sent_us, $5 users */
		std::string sql = "INSERT INTO public." + o.table[t] +
		                  " (user_id, run, seq, sent_us, body) SELECT "
		                  "('00000000-0000-4000-8000-' || lpad(to_hex((s % $5::int8)::int + 1), "
		                  "12, '0'))::uuid, $1::int8, s, $4::int8, 'change ' || s "
		                  "FROM generate_series($2::int8, $2::int8 + $3::int8 - 1) AS s";
		std::string name = std::string("ins_") + kTableKind[t];
		PGresult *r = PQprepare(pg, name.c_str(), sql.c_str(), 5, nullptr);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			Die("prepare " + sql + ": " + PQresultErrorMessage(r));
		PQclear(r);
	}

	/* connect and join everything */
	const int total = o.users * o.clients_per_user;
	Shared shared;
	std::vector<std::vector<std::unique_ptr<Conn>>> parts(size_t(o.threads));
	MaskSource masks;
	int64_t t0 = MonoNs();
	for (int i = 0; i < total; i++)
	{
		auto c = std::make_unique<Conn>();
		c->index = i;
		c->user = i / o.clients_per_user;
		const std::string &jwt = tokens[size_t(c->user)];
		std::string leftover;
		c->fd = OpenWebSocket(o.host, o.port, o.path + "?apikey=" + jwt + "&vsn=2.0.0", leftover);
		c->rx.Load(leftover);
		std::string out;
		for (int t = 0; t < kTables; t++)
			AppendClientFrame(out, kOpText, JoinChanges(o, t, std::to_string(t + 1), jwt, c->user),
			                  masks.Next());
		if (!WriteAll(c->fd.Get(), out))
			Die(std::string("join write: ") + strerror(errno));
		int fl = fcntl(c->fd.Get(), F_GETFL);
		fcntl(c->fd.Get(), F_SETFL, fl | O_NONBLOCK);
		parts[size_t(i % o.threads)].push_back(std::move(c));
	}
	std::vector<std::unique_ptr<Receiver>> rx;
	std::vector<std::thread> threads;
	for (int k = 0; k < o.threads; k++)
		rx.push_back(std::make_unique<Receiver>(o, shared, k, std::move(parts[size_t(k)])));
	for (auto &r : rx)
		threads.emplace_back([&r] { r->Run(); });
	const int channels = total * kTables;
	int64_t deadline = t0 + int64_t(o.join_timeout * kNsPerSec);
	while (shared.subscribed.load() < channels)
	{
		if (shared.failures.load() > 0 || MonoNs() > deadline)
			Die("subscribing failed: " + std::to_string(shared.replies.load()) + " joined, " +
			    std::to_string(shared.subscribed.load()) + " subscribed of " +
			    std::to_string(channels) + " channels, " + std::to_string(shared.failures.load()) +
			    " failures");
		usleep(10000);
	}
	std::fprintf(
	    stderr,
	    "changes_client: %d connections (%d users x %d), %d channels subscribed in %.1f s%s\n",
	    total, o.users, o.clients_per_user, channels, double(MonoNs() - t0) / 1e9,
	    o.filter ? " (with filter user_id=eq.<uuid>)" : "");
	/* the sidecar's RLS connection exists now (fallback_application_name realtime_rls) */
	{
		PGresult *r = PQexec(pg, "SELECT pid FROM pg_catalog.pg_stat_activity "
		                         "WHERE application_name = 'realtime_rls'");
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			for (int i = 0; i < PQntuples(r); i++)
				o.watch.push_back({PQntuples(r) == 1 ? std::string("rls_backend")
				                                     : "rls_backend" + std::to_string(i + 1),
				                   std::atoi(PQgetvalue(r, i, 0))});
		PQclear(r);
	}
	if (PQsetnonblocking(pg, 1) != 0 || !PQenterPipelineMode(pg))
		Die(std::string("pipeline mode: ") + PQerrorMessage(pg));
	std::printf("subscribed connections=%d channels=%d seconds=%.1f\n", total, channels,
	            double(MonoNs() - t0) / 1e9);
	std::fflush(stdout);

	uint64_t run_base = uint64_t(MonoNs() / 1000) % 1000000000 * 1000;
	int status = 0;
	double failed_at[kTables] = {0, 0}; /* lowest failed rate in the current round */
	int round = -1;
	for (size_t k = 0; k < o.plan.size(); k++)
	{
		const Step &step = o.plan[k];
		if (step.round != round)
		{
			round = step.round;
			failed_at[0] = failed_at[1] = 0;
		}
		if (failed_at[step.table] > 0 && step.rate > failed_at[step.table])
		{
			std::printf("skip table=%s rate=%.0f round=%d (%.0f rows/s failed in this round)\n",
			            kTableKind[step.table], step.rate, round + 1, failed_at[step.table]);
			std::fflush(stdout);
			continue;
		}
		auto run = std::make_unique<RunState>();
		run->id = run_base + k + 1;
		run->table = step.table;
		run->to_owner_only = step.table == 0 || o.filter;
		run->rows = uint64_t(std::llround(step.rate * o.seconds));
		run->seen.assign(size_t(total), std::vector<uint64_t>((run->rows + 63) / 64, 0));
		run->per_thread.resize(size_t(o.threads));
		const uint64_t expected =
		    run->rows * uint64_t(run->to_owner_only ? o.clients_per_user : total);
		Publish(shared, rx, run.get());

		std::vector<int64_t> ticks0;
		for (const Watch &w : o.watch)
			ticks0.push_back(ProcTicks(w.pid));
		int64_t cpu0 = ProcessCpuNs();
		double load1 = 0;
		if (FILE *f = std::fopen("/proc/loadavg", "r"))
		{
			if (std::fscanf(f, "%lf", &load1) != 1)
				load1 = 0;
			std::fclose(f);
		}
		run->start_ns = MonoNs();
		InsertStats ins = InsertRows(o, pg, *run, step.rate);
		int64_t wait_until = MonoNs() + int64_t(o.drain * kNsPerSec);
		while (MonoNs() < wait_until && run->delivered.load() < expected)
			usleep(1000);
		if (run->delivered.load() >= expected)
			usleep(100000); /* a little longer, to see duplicates and strays */
		int64_t end_ns = MonoNs();
		std::vector<int64_t> ticks1;
		for (const Watch &w : o.watch)
			ticks1.push_back(ProcTicks(w.pid));
		int64_t cpu1 = ProcessCpuNs();
		const uint64_t at_drain = run->delivered.load();
		/* let a backlog drain before the next run, still counting it: until every
		 * expected delivery is in and nothing arrived for 1 s, or nothing arrived for
		 * 5 s (the engine can pause that long on a large backlog), at most --settle s */
		int64_t settle_start = MonoNs();
		uint64_t seen = shared.changes.load();
		int64_t quiet_since = settle_start;
		for (;;)
		{
			int64_t quiet = MonoNs() - quiet_since;
			bool complete = run->delivered.load() >= expected;
			if ((complete && quiet >= kNsPerSec) || quiet >= 5 * kNsPerSec ||
			    MonoNs() - settle_start >= int64_t(o.settle * kNsPerSec))
				break;
			usleep(50000);
			uint64_t now_seen = shared.changes.load();
			if (now_seen != seen)
			{
				seen = now_seen;
				quiet_since = MonoNs();
			}
		}
		double settle_s = double(quiet_since - settle_start) / 1e9;
		Publish(shared, rx, nullptr);

		RunState::PerThread sum;
		for (auto &p : run->per_thread)
		{
			sum.latency.Merge(p.latency);
			sum.delivered += p.delivered;
			sum.dup += p.dup;
			sum.foreign += p.foreign;
			sum.stale += p.stale;
			sum.bad += p.bad;
			sum.other_table += p.other_table;
			sum.last_rx_ns = std::max(sum.last_rx_ns, p.last_rx_ns);
		}
		uint64_t lost = expected > sum.delivered ? expected - sum.delivered : 0;
		uint64_t late = sum.delivered - std::min(sum.delivered, at_drain);
		double span_s = double(std::max<int64_t>(1, sum.last_rx_ns - run->start_ns)) / 1e9;
		double send_span_s = double(std::max<int64_t>(1, ins.end_ns - ins.start_ns)) / 1e9;
		double wall_s = double(end_ns - run->start_ns) / 1e9;
		auto ms = [](double ns) { return ns / 1e6; };
		std::string watch;
		static const long hz = sysconf(_SC_CLK_TCK);
		for (size_t w = 0; w < o.watch.size(); w++)
		{
			char buf[96];
			if (ticks0[w] < 0 || ticks1[w] < 0)
				std::snprintf(buf, sizeof(buf), " %s_cpu_pct=nan", o.watch[w].name.c_str());
			else
				std::snprintf(buf, sizeof(buf), " %s_cpu_pct=%.0f", o.watch[w].name.c_str(),
				              100.0 * double(ticks1[w] - ticks0[w]) / double(hz) / wall_s);
			watch += buf;
		}
		std::printf(
		    "result table=%s rate=%.0f filter=%d seconds=%.1f rows=%" PRIu64 " sent=%" PRIu64
		    " send_rate=%.1f send_lag_max_ms=%.1f stmts=%" PRIu64 " stmt_errors=%" PRIu64
		    " stmt_p99_ms=%.1f expected=%" PRIu64 " delivered=%" PRIu64 " late=%" PRIu64
		    " lost=%" PRIu64 " dup=%" PRIu64 " foreign=%" PRIu64 " stale=%" PRIu64 " bad=%" PRIu64
		    " deliveries_per_s=%.0f p50_ms=%.2f"
		    " p90_ms=%.2f p99_ms=%.2f max_ms=%.2f backlog_s=%.1f round=%d"
		    " client_cpu_pct=%.0f%s load1=%.2f\n",
		    kTableKind[step.table], step.rate, o.filter ? 1 : 0, o.seconds, run->rows, ins.sent,
		    double(ins.sent) / send_span_s, ms(double(ins.max_lag_ns)), ins.acked, ins.errors,
		    ms(ins.stmt.Quantile(0.99)), expected, sum.delivered, late, lost, sum.dup, sum.foreign,
		    sum.stale + sum.other_table, sum.bad, double(sum.delivered) / span_s,
		    ms(sum.latency.Quantile(0.5)), ms(sum.latency.Quantile(0.9)),
		    ms(sum.latency.Quantile(0.99)), ms(double(sum.latency.Max())), settle_s, round + 1,
		    100.0 * double(cpu1 - cpu0) / 1e9 / wall_s, watch.c_str(), load1);
		std::fflush(stdout);
		if (lost > 0 || late > 0 || sum.dup > 0 || sum.foreign > 0 ||
		    sum.latency.Quantile(0.99) >= o.p99_limit_ms * 1e6)
			failed_at[step.table] =
			    failed_at[step.table] > 0 ? std::min(failed_at[step.table], step.rate) : step.rate;
		if (ins.errors > 0)
		{
			std::fprintf(stderr, "changes_client: %" PRIu64 " statement(s) failed; first: %s\n",
			             ins.errors, ins.first_error.c_str());
			status = 4;
		}
		if (shared.failures.load() > 0)
		{
			std::fprintf(stderr, "changes_client: connections failed during the run\n");
			status = 4;
			break;
		}
	}
	shared.stop.store(true);
	for (auto &t : threads)
		t.join();
	PQfinish(pg);
	return status;
}

} // namespace
} // namespace rt::bench

int
main(int argc, char **argv)
{
	rt::bench::g_program_name = "changes_client";
	return rt::bench::RunOrReport([&] { return rt::bench::Main(argc, argv); });
}
