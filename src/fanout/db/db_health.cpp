/*
 * db_health.cpp: periodic "SELECT 1" over libpq (its own thread).
 *
 * The first check runs at once; then every 5 s (every 1 s while failing), so
 * /healthz turns 200 as soon as the database answers and 503 when it stops.
 */
#include "db/db_health.hpp"

#include "base/log.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <memory>

namespace rt::fanout
{

namespace
{

using PgConn = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResult = std::unique_ptr<PGresult, decltype(&PQclear)>;

PgConn
Connect(const std::string &conninfo)
{
	/* later keywords override what the expanded conninfo says */
	const char *keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
	const char *vals[] = {conninfo.c_str(), "5", "realtime_health", nullptr};
	return PgConn(PQconnectdbParams(keys, vals, 1), &PQfinish);
}

} // namespace

DbHealth::~DbHealth() { Stop(); }

void
DbHealth::Start()
{
	thread_ = std::thread([this]() { Run(); });
}

void
DbHealth::Stop()
{
	{
		std::lock_guard<std::mutex> lock(mu_);
		stop_ = true;
	}
	cv_.notify_all();
	if (thread_.joinable())
		thread_.join();
}

void
DbHealth::Run()
{
	PgConn conn(nullptr, &PQfinish);
	bool was_ok = false;
	bool logged_failure = false;
	for (;;)
	{
		/* a connection from before a server restart fails once: try a fresh one at once */
		bool ok = false;
		for (int attempt = 0; attempt < 2 && !ok; attempt++)
		{
			bool fresh = !conn || PQstatus(conn.get()) != CONNECTION_OK;
			if (fresh)
				conn = Connect(conninfo_);
			if (PQstatus(conn.get()) == CONNECTION_OK)
			{
				PgResult r(PQexec(conn.get(), "SELECT 1"), &PQclear);
				ok = PQresultStatus(r.get()) == PGRES_TUPLES_OK;
			}
			if (!ok && fresh)
				break;
			if (!ok)
				conn.reset();
		}
		if (ok != was_ok || (!ok && !logged_failure))
		{
			if (ok)
				Log(LogLevel::kInfo, "db", "database reachable");
			else
				Log(LogLevel::kWarning, "db", "database unreachable: %s",
				    PQerrorMessage(conn.get()));
			logged_failure = !ok;
		}
		was_ok = ok;
		ok_.store(ok, std::memory_order_release);
		if (!ok)
			conn.reset();

		std::unique_lock<std::mutex> lock(mu_);
		if (cv_.wait_for(lock, std::chrono::seconds(ok ? 5 : 1), [this] { return stop_; }))
			return;
	}
}

} // namespace rt::fanout
