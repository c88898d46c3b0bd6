/*
 * authorizer_db.cpp: see authorizer_db.hpp. Runs on the authorizer thread.
 *
 * Pipeline discipline: a check is BEGIN, its statements and a sync, then
 * ROLLBACK and a sync. A sync never ends an explicit transaction block, so
 * nothing a check inserts can be committed: ROLLBACK ends it, whether its
 * statements succeeded or an error skipped the rest of them (an aborted block
 * waits for it). Without BEGIN, the ROLLBACK of an implicit transaction would
 * work as well but logs a WARNING ("there is no transaction in progress") in
 * the server log for every check.
 *
 * The connection is non-blocking: a round writes everything while reading
 * whatever the server already answered (neither side's socket buffer can fill
 * up and stall the other), and a stop request or a silent link ends the wait.
 */
#include "auth/authorizer_db.hpp"

#include "base/log.hpp"
#include "postgres_changes/pg_sqlstate.hpp"
#include "base/uuid.hpp"

#include <poll.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <string_view>

namespace rt::fanout
{

namespace
{

constexpr const char *kStatementTimeout = "5s";
/*
 * No byte from the server for this long while a round waits: the link is
 * dead. Every statement ends within statement_timeout, so an answer is due.
 */
constexpr int kSilenceMs = 10000;
constexpr int kPollMs = 100; /* how often a wait looks at the stop flag */

/* The read check's probe rows, inserted as the connection's own role. */
constexpr const char *kProbeSql =
    "INSERT INTO realtime.messages (id, topic, extension, inserted_at, updated_at) "
    "SELECT p.id, $2, p.ext, pg_catalog.now() AT TIME ZONE 'utc', "
    "pg_catalog.now() AT TIME ZONE 'utc' "
    "FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.uuid[]), "
    "pg_catalog.unnest($3::pg_catalog.text[])) AS p(id, ext)";

/* The user's context, local to the check's transaction (PROTOCOL.md 8). */
constexpr const char *kContextSql = "SELECT pg_catalog.set_config('role', $1, true), "
                                    "pg_catalog.set_config('realtime.topic', $2, true), "
                                    "pg_catalog.set_config('request.jwt.claims', $3, true), "
                                    "pg_catalog.set_config('request.jwt.claim.sub', $4, true), "
                                    "pg_catalog.set_config('request.jwt.claim.role', $1, true), "
                                    "pg_catalog.set_config('request.headers', $5, true)";

/*
 * The probe rows the user's SELECT policies let through. inserted_at is the
 * probes' own (now() is the transaction's start): only today's partition is
 * scanned, not every daily one.
 */
constexpr const char *kReadSql =
    "SELECT extension FROM realtime.messages WHERE id = ANY ($1::pg_catalog.uuid[]) "
    "AND inserted_at = pg_catalog.now() AT TIME ZONE 'utc'";

/* The write probe, as the user: INSERT policies decide; id and private from defaults. */
constexpr const char *kWriteSql =
    "INSERT INTO realtime.messages (topic, extension, inserted_at, updated_at) "
    "VALUES ($1, $2, pg_catalog.now() AT TIME ZONE 'utc', pg_catalog.now() AT TIME ZONE 'utc')";

/*
 * The stored broadcasts of a replaying join (PROTOCOL.md 4.5), as the user (its
 * SELECT policies decide), in the read check's transaction: the newest $3 since
 * $2 (unix ms), oldest first, with their inserted_at in unix us, and how many
 * there are since then (counted up to $4, without reading their payloads). The
 * read check's probe rows are not private: never among them. The index
 * messages_topic_inserted_at_index serves both ranges.
 */
#define RT_REPLAY_RANGE                                                                            \
	"FROM realtime.messages WHERE topic = $1 AND extension = 'broadcast' AND private IS TRUE "     \
	"AND inserted_at >= pg_catalog.to_timestamp($2::pg_catalog.int8 / 1000.0) AT TIME ZONE 'utc' " \
	"AND inserted_at < (pg_catalog.now() AT TIME ZONE 'utc') + interval '1 minute' "               \
	"AND (expires_at IS NULL OR expires_at > pg_catalog.now() AT TIME ZONE 'utc') "
constexpr const char *kReplaySql =
    "SELECT id::text, event, payload::text, binary_payload, n.count, "
    "(EXTRACT(epoch FROM inserted_at) * 1000000)::pg_catalog.int8 "
    "FROM (SELECT id, event, payload, binary_payload, inserted_at " RT_REPLAY_RANGE
    "ORDER BY inserted_at DESC, id DESC LIMIT $3) newest, "
    "(SELECT pg_catalog.count(*) FROM (SELECT 1 " RT_REPLAY_RANGE "LIMIT $4) c) n "
    "ORDER BY inserted_at, id";
#undef RT_REPLAY_RANGE
/* stored messages counted beyond the limit, for the notice of what was not replayed */
constexpr const char *kReplayCountCap = "100000";

constexpr const char *kPartitionsSql = "SELECT realtime.create_messages_partitions()";

constexpr std::array<uint8_t, 2> kExts = {kAuthBroadcast, kAuthPresence};

/* What a statement of a check is, to judge its error. */
enum class Stmt : uint8_t
{
	kBegin,
	kProbe,
	kContext,
	kRead,
	kReplay,
	kWrite,
	kRollback
};

void
QuietNotices(void *, const PGresult *)
{
}

bool
IsOk(const PGresult *r)
{
	return r != nullptr &&
	       (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK);
}

std::string_view
Field(const PGresult *r, int code)
{
	const char *v = PQresultErrorField(r, code);
	return v == nullptr ? std::string_view() : std::string_view(v);
}

const char *
ExtName(uint8_t bit)
{
	return bit == kAuthBroadcast ? "broadcast" : "presence";
}

uint8_t
ExtBit(std::string_view name)
{
	for (uint8_t bit : kExts)
		if (name == ExtName(bit))
			return bit;
	return 0;
}

/*
 * A statement's error, judged as PROTOCOL.md section 8 says: 42501 from the
 * user's statements is a denial (the bit stays 0); a timeout, a missing
 * partition; else the policy (or the context: a role that does not exist)
 * raised. BEGIN, the probe insert and ROLLBACK run as the connection's role: their
 * other errors are ours, not the policy's.
 */
void
Judge(AuthResult &res, Stmt kind, const PGresult *r)
{
	std::string_view state = Field(r, PG_DIAG_SQLSTATE);
	if (kind == Stmt::kReplay)
	{
		/* the read check stands; the join is refused with UnableToReplayMessages */
		res.replay_failed = true;
		res.detail = PostgrexErrorText(r);
		return;
	}
	if (state == "42501" && (kind == Stmt::kContext || kind == Stmt::kRead || kind == Stmt::kWrite))
		return;
	if (res.status != AuthResult::Status::kOk)
		return; /* the first error stands */
	if (state == "57014")
		res.status = AuthResult::Status::kQueryCanceled;
	else if (state == "23514" && Field(r, PG_DIAG_TABLE_NAME) == "messages")
		res.status = AuthResult::Status::kMissingPartition;
	else if (kind == Stmt::kBegin || kind == Stmt::kProbe || kind == Stmt::kRollback)
		res.status = AuthResult::Status::kError;
	else
		res.status = AuthResult::Status::kPolicyError;
	res.detail = PostgrexErrorText(r);
}

/* The replay query's rows (kReplaySql), oldest first; rows without a payload are skipped. */
void
TakeReplayRows(AuthResult &res, const PGresult *r)
{
	for (int row = 0; row < PQntuples(r); row++)
	{
		res.replay_stored = std::strtoull(PQgetvalue(r, row, 4), nullptr, 10);
		ReplayRow out;
		out.id = PQgetvalue(r, row, 0);
		out.event = PQgetvalue(r, row, 1);
		out.inserted_us = std::strtoll(PQgetvalue(r, row, 5), nullptr, 10);
		if (!PQgetisnull(r, row, 2))
			out.payload = PQgetvalue(r, row, 2);
		else if (!PQgetisnull(r, row, 3))
		{
			size_t n = 0;
			unsigned char *bytes =
			    PQunescapeBytea(reinterpret_cast<const unsigned char *>(PQgetvalue(r, row, 3)), &n);
			if (bytes == nullptr)
				continue;
			out.payload.assign(reinterpret_cast<const char *>(bytes), n);
			out.binary = true;
			PQfreemem(bytes);
		}
		else
			continue;
		res.replay_rows.push_back(std::move(out));
	}
}

} // namespace

AuthorizerDb::~AuthorizerDb() { Disconnect(); }

void
AuthorizerDb::Disconnect()
{
	PQclear(cur_);
	cur_ = nullptr;
	if (conn_ != nullptr)
		PQfinish(conn_);
	conn_ = nullptr;
}

bool
AuthorizerDb::Fail(std::string &err)
{
	/* libpq's text spans lines: one line for the log */
	err.clear();
	for (const char *p = conn_ != nullptr ? PQerrorMessage(conn_) : "not connected"; *p; p++)
	{
		bool space = *p == '\n' || *p == '\t' || *p == ' ';
		if (!space)
			err += *p;
		else if (!err.empty() && err.back() != ' ')
			err += ' ';
	}
	while (!err.empty() && err.back() == ' ')
		err.pop_back();
	if (err.empty())
		err = "connection lost";
	Disconnect();
	return false;
}

bool
AuthorizerDb::Connect(std::string &err)
{
	if (conn_ != nullptr)
	{
		if (PQstatus(conn_) == CONNECTION_OK)
			return true;
		Disconnect();
	}
	/* connect_timeout first: the conninfo's own value, if any, overrides it */
	const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name", nullptr};
	const char *vals[] = {"5", conninfo_.c_str(), "realtime_connect", nullptr};
	conn_ = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn_) != CONNECTION_OK)
		return Fail(err);
	PQsetNoticeReceiver(conn_, QuietNotices, nullptr);
	std::string setup = std::string("SET statement_timeout = '") + kStatementTimeout + "'";
	PGresult *r = PQexec(conn_, setup.c_str());
	bool ok = IsOk(r);
	PQclear(r);
	if (!ok)
	{
		Fail(err);
		err = setup + ": " + err;
		return false;
	}
	struct
	{
		const char *name, *sql;
		int nparams;
	} stmts[] = {{"rt_auth_probe", kProbeSql, 3},    {"rt_auth_context", kContextSql, 5},
	             {"rt_auth_read", kReadSql, 1},      {"rt_auth_write", kWriteSql, 2},
	             {"rt_auth_replay", kReplaySql, 4},  {"rt_auth_begin", "BEGIN", 0},
	             {"rt_auth_rollback", "ROLLBACK", 0}};
	for (const auto &s : stmts)
	{
		r = PQprepare(conn_, s.name, s.sql, s.nparams, nullptr);
		ok = IsOk(r);
		std::string why = ok ? std::string() : PostgrexErrorText(r);
		PQclear(r);
		if (!ok)
		{
			Disconnect();
			err = std::string("preparing ") + s.name + ": " + why;
			return false;
		}
	}
	if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1)
	{
		Disconnect();
		err = "cannot enter non-blocking pipeline mode";
		return false;
	}
	return true;
}

/* Send what libpq holds, reading answers meanwhile; false on a broken link or stop. */
bool
AuthorizerDb::Flush(const std::atomic<bool> &stop)
{
	auto last = std::chrono::steady_clock::now();
	for (;;)
	{
		int f = PQflush(conn_);
		if (f == 0)
			return true;
		if (f < 0 || stop.load(std::memory_order_relaxed))
			return false;
		pollfd p = {PQsocket(conn_), POLLIN | POLLOUT, 0};
		int n = poll(&p, 1, kPollMs);
		if (n < 0 && errno != EINTR)
			return false;
		if (n > 0)
		{
			last = std::chrono::steady_clock::now();
			if ((p.revents & POLLIN) != 0 && PQconsumeInput(conn_) != 1)
				return false;
		}
		else if (std::chrono::steady_clock::now() - last > std::chrono::milliseconds(kSilenceMs))
			return false;
	}
}

/* Wait until the socket has input and take it in; false on a broken link, silence or stop. */
bool
AuthorizerDb::WaitInput(const std::atomic<bool> &stop)
{
	auto start = std::chrono::steady_clock::now();
	for (;;)
	{
		if (stop.load(std::memory_order_relaxed))
			return false;
		pollfd p = {PQsocket(conn_), POLLIN, 0};
		int n = poll(&p, 1, kPollMs);
		if (n < 0 && errno != EINTR)
			return false;
		if (n > 0)
			return PQconsumeInput(conn_) == 1;
		if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(kSilenceMs))
			return false;
	}
}

/*
 * The next statement's result in pipeline order (owned here until the next
 * call), or a sync; false when the link broke.
 */
bool
AuthorizerDb::Next(const std::atomic<bool> &stop, PGresult *&out)
{
	PQclear(cur_);
	cur_ = nullptr;
	while (PQisBusy(conn_))
		if (!WaitInput(stop))
			return false;
	cur_ = PQgetResult(conn_);
	if (cur_ == nullptr || PQstatus(conn_) == CONNECTION_BAD)
		return false;
	/* a statement's results end with a null; a sync's do not */
	if (PQresultStatus(cur_) != PGRES_PIPELINE_SYNC)
		for (;;)
		{
			while (PQisBusy(conn_))
				if (!WaitInput(stop))
					return false;
			PGresult *extra = PQgetResult(conn_);
			if (extra == nullptr)
				break;
			PQclear(extra);
		}
	out = cur_;
	return true;
}

namespace
{

/* The read probes' ids and extensions as array literals, per check; resets every result */
void
BuildProbes(std::span<AuthCheck> checks, std::vector<std::string> &ids,
            std::vector<std::string> &exts)
{
	std::string uuid;
	for (size_t i = 0; i < checks.size(); i++)
	{
		AuthCheck &c = checks[i];
		c.result = AuthResult{};
		if (c.req->read == 0)
			continue;
		ids[i] = "{";
		exts[i] = "{";
		for (uint8_t bit : kExts)
		{
			if ((c.req->read & bit) == 0)
				continue;
			uuid = NewUuid();
			if (ids[i].size() > 1)
			{
				ids[i] += ',';
				exts[i] += ',';
			}
			ids[i] += uuid;
			exts[i] += ExtName(bit);
		}
		ids[i] += '}';
		exts[i] += '}';
	}
}

} // namespace

/* Queue every check's statements: begin, probe, context, read or write, rollback */
bool
AuthorizerDb::SendChecks(std::span<const AuthCheck> checks, const std::vector<std::string> &ids,
                         const std::vector<std::string> &exts, AuthRoundStats &stats)
{
	auto send = [&](const char *stmt, int n, const char *const *vals)
	{
		stats.statements++;
		return PQsendQueryPrepared(conn_, stmt, n, vals, nullptr, nullptr, 0) == 1;
	};
	auto sync = [&]()
	{
		stats.syncs++;
		return PQpipelineSync(conn_) == 1;
	};
	for (size_t i = 0; i < checks.size(); i++)
	{
		const AuthCheck &c = checks[i];
		const AuthRequest &q = *c.req;
		if (c.result.status != AuthResult::Status::kOk)
			continue;
		const char *ctx[] = {q.role.c_str(), q.sub_topic.c_str(), q.claims_json.c_str(),
		                     q.sub.empty() ? nullptr : q.sub.c_str(), q.headers_json.c_str()};
		if (q.read != 0)
		{
			const char *probe[] = {ids[i].c_str(), q.sub_topic.c_str(), exts[i].c_str()};
			const char *read[] = {ids[i].c_str()};
			std::string since = q.replay ? std::to_string(q.replay->since_ms) : "";
			std::string limit = q.replay ? std::to_string(q.replay->limit) : "";
			const char *replay[] = {q.sub_topic.c_str(), since.c_str(), limit.c_str(),
			                        kReplayCountCap};
			if (!send("rt_auth_begin", 0, nullptr) || !send("rt_auth_probe", 3, probe) ||
			    !send("rt_auth_context", 5, ctx) || !send("rt_auth_read", 1, read) ||
			    (q.replay && !send("rt_auth_replay", 4, replay)) || !sync() ||
			    !send("rt_auth_rollback", 0, nullptr) || !sync())
				return false;
		}
		for (uint8_t bit : kExts)
		{
			if ((q.write & bit) == 0)
				continue;
			const char *write[] = {q.sub_topic.c_str(), ExtName(bit)};
			if (!send("rt_auth_begin", 0, nullptr) || !send("rt_auth_context", 5, ctx) ||
			    !send("rt_auth_write", 2, write) || !sync() ||
			    !send("rt_auth_rollback", 0, nullptr) || !sync())
				return false;
		}
	}
	return true;
}

/* Read the answers in the order sent; false: the link broke */
bool
AuthorizerDb::ReadAnswers(std::span<AuthCheck> checks, const std::atomic<bool> &stop)
{
	auto group = [&](AuthResult &res, std::initializer_list<Stmt> kinds, uint8_t bit)
	{
		for (Stmt kind : kinds)
		{
			PGresult *r = nullptr;
			if (!Next(stop, r))
				return false;
			ExecStatusType st = PQresultStatus(r);
			if (st == PGRES_PIPELINE_ABORTED)
				continue;
			if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR)
			{
				Judge(res, kind, r);
				continue;
			}
			if (kind == Stmt::kRead && st == PGRES_TUPLES_OK)
				for (int row = 0; row < PQntuples(r); row++)
					res.read_ok |= ExtBit(PQgetvalue(r, row, 0));
			else if (kind == Stmt::kReplay && st == PGRES_TUPLES_OK)
				TakeReplayRows(res, r);
			else if (kind == Stmt::kWrite && st == PGRES_COMMAND_OK)
				res.write_ok |= bit;
		}
		PGresult *s = nullptr;
		return Next(stop, s) && PQresultStatus(s) == PGRES_PIPELINE_SYNC;
	};
	for (AuthCheck &c : checks)
	{
		if (c.result.status != AuthResult::Status::kOk)
			continue; /* nothing was sent */
		if (c.req->read != 0)
		{
			bool read_ok =
			    c.req->replay
			        ? group(
			              c.result,
			              {Stmt::kBegin, Stmt::kProbe, Stmt::kContext, Stmt::kRead, Stmt::kReplay},
			              0)
			        : group(c.result, {Stmt::kBegin, Stmt::kProbe, Stmt::kContext, Stmt::kRead}, 0);
			if (!read_ok || !group(c.result, {Stmt::kRollback}, 0))
				return false;
		}
		for (uint8_t bit : kExts)
			if ((c.req->write & bit) != 0 &&
			    (!group(c.result, {Stmt::kBegin, Stmt::kContext, Stmt::kWrite}, bit) ||
			     !group(c.result, {Stmt::kRollback}, 0)))
				return false;
		c.result.read_ok &= c.req->read;
		if (c.result.status != AuthResult::Status::kOk)
		{
			c.result.read_ok = c.result.write_ok = 0;
			c.result.replay_rows.clear();
		}
	}
	return true;
}

bool
AuthorizerDb::Run(std::span<AuthCheck> checks, const std::atomic<bool> &stop, AuthRoundStats &stats,
                  std::string &err)
{
	stats = AuthRoundStats{};
	stats.requests = checks.size();
	if (!Connect(err))
		return false;
	std::vector<std::string> ids(checks.size()), exts(checks.size());
	BuildProbes(checks, ids, exts);
	if (!SendChecks(checks, ids, exts, stats) || !Flush(stop) || !ReadAnswers(checks, stop))
		return Fail(err);
	return true;
}

bool
AuthorizerDb::CreatePartitions(const std::atomic<bool> &stop, std::string &err, bool &lost)
{
	lost = false;
	if (!Connect(err))
	{
		lost = true;
		return false;
	}
	if (PQsendQueryParams(conn_, kPartitionsSql, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1 ||
	    PQpipelineSync(conn_) != 1 || !Flush(stop))
	{
		lost = true;
		return Fail(err);
	}
	PGresult *r = nullptr;
	if (!Next(stop, r))
	{
		lost = true;
		return Fail(err);
	}
	bool ok = IsOk(r);
	if (!ok)
		err = PostgrexErrorText(r);
	PGresult *s = nullptr;
	if (!Next(stop, s) || PQresultStatus(s) != PGRES_PIPELINE_SYNC)
	{
		lost = true;
		return Fail(err);
	}
	return ok;
}

} // namespace rt::fanout
