/*
 * main.cpp: realtime-fanout entry point (main thread).
 *
 * Parses the command line, starts the shards and the database health check,
 * then waits for SIGINT/SIGTERM and stops everything. `realtime-fanout token`
 * mints a JWT for the quick-start script and for tests.
 */
#include "auth_jwt.hpp"
#include "authorizer.hpp"
#include "broadcast.hpp"
#include "config.hpp"
#include "db_health.hpp"
#include "diagnostics.hpp"
#include "hub.hpp"
#include "json.hpp"
#include "log.hpp"
#include "pg_changes_engine.hpp"
#include "protocol.hpp"
#include "ring_reader.hpp"

#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>

namespace
{

using namespace std::string_literals;
namespace rf = rt::fanout;

int
MintToken(const rf::Command &cmd)
{
	int64_t now = static_cast<int64_t>(time(nullptr));
	std::string claims = R"({"iss":"realtime","role":)";
	rf::json::AppendQuoted(claims, cmd.token_role);
	if (!cmd.token_sub.empty())
	{
		claims += R"(,"sub":)";
		rf::json::AppendQuoted(claims, cmd.token_sub);
	}
	claims += R"(,"iat":)" + std::to_string(now);
	claims += R"(,"exp":)" + std::to_string(now + cmd.token_ttl_s) + "}";
	printf("%s\n", rf::SignJwtHs256(claims, cmd.config.jwt_secret).c_str());
	return 0;
}

int
Serve(const rf::Config &config)
{
	/* block the stop signals in every thread; main waits for them with sigwait */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, nullptr);
	signal(SIGPIPE, SIG_IGN);

	rf::InstallLwsLogHook();
	rf::Hub hub(config);
	std::unique_ptr<rf::DbHealth> health;
	if (config.db_conninfo.empty())
	{
		rf::Log(rf::LogLevel::kWarning, "main",
		        "no --db given: database features are off, /healthz does not wait for one");
	}
	else
	{
		health = std::make_unique<rf::DbHealth>(config.db_conninfo, hub.db_ok);
		health->Start();
	}
	/* private channels: RLS on realtime.messages, asked over its own connection */
	std::unique_ptr<rf::Authorizer> authorizer;
	if (!config.db_conninfo.empty())
	{
		authorizer = std::make_unique<rf::Authorizer>(config.db_conninfo, &hub.auth_metrics);
		hub.authorizer = authorizer.get();
		authorizer->Start();
	}
	/* Postgres Changes need both: subscriptions are checked in the database, changes come by ring
	 */
	std::unique_ptr<rf::PgChangesEngine> changes;
	if (!config.db_conninfo.empty() && !config.ring_path.empty())
	{
		changes = std::make_unique<rf::PgChangesEngine>(config.db_conninfo, hub);
		hub.changes = changes.get();
	}
	if (!hub.Start())
	{
		rf::Log(rf::LogLevel::kError, "main", "could not start: is port %d free?", config.port);
		return 1;
	}
	/* what is wrong with the database and the ring, logged once; never delays the listen */
	std::unique_ptr<rf::StartupCheck> check;
	if (!config.db_conninfo.empty())
	{
		check = std::make_unique<rf::StartupCheck>(config);
		check->Start();
	}
	/* messages from realtime.send(): serialized once here, fanned out by every shard */
	std::unique_ptr<rf::RingReader> ring;
	if (!config.ring_path.empty())
	{
		ring = std::make_unique<rf::RingReader>(
		    config.ring_path,
		    [&hub](const rf::RingMessage &m)
		    {
			    /* over the tenant's events limit, database broadcasts are dropped (4.8) */
			    if (hub.events_limited.load(std::memory_order_relaxed))
				    return;
			    std::string meta = R"({"id":)";
			    rf::json::AppendQuoted(meta, m.id);
			    meta += '}';
			    auto d = rf::MakeUserBroadcast(
			        rf::RoutingKey(m.topic, m.is_private), "realtime:" + std::string(m.topic),
			        m.event, m.binary ? rf::kEncodingBinary : rf::kEncodingJson, m.payload, meta);
			    hub.Publish(d, -1);
		    },
		    changes ? rf::RingReader::ChangeSink(
		                  [&changes](const rf::RingChange &, std::string_view raw)
		                  { changes->OnChange(raw.data(), static_cast<uint32_t>(raw.size())); })
		            : nullptr);
		hub.ring = ring.get();
		if (changes)
		{
			changes->SetReader(ring.get());
			changes->Start();
		}
		ring->Start();
	}
	int sig = 0;
	sigwait(&set, &sig);
	rf::Log(rf::LogLevel::kInfo, "main", "signal %d: stopping", sig);
	if (authorizer)
		authorizer->Stop(); /* its last answers still reach running shards */
	if (changes)
		changes->Stop(); /* first: the ring reader may be waiting for it */
	if (ring)
		ring->Stop();
	hub.Stop();
	if (health)
		health->Stop();
	if (check)
		check->Join();
	return 0;
}

} // namespace

int
main(int argc, char **argv)
{
	try
	{
		rf::Result<rf::Command> cmd = rf::ParseCommandLine(argc, argv);
		if (!cmd.ok())
		{
			fprintf(stderr, "realtime-fanout: %s\n", cmd.error().message.c_str());
			return 2;
		}
		const rf::Command &c = cmd.value();
		if (c.kind == rf::Command::Kind::kHelp)
		{
			fputs(rf::UsageText(), stdout);
			return 0;
		}
		if (c.kind == rf::Command::Kind::kToken)
			return MintToken(c);
		if (c.kind == rf::Command::Kind::kCheck)
			return rf::RunCheckCommand(c.config);
		const std::string &lvl = c.config.log_level;
		rf::SetLogLevel(lvl == "debug"     ? rf::LogLevel::kDebug
		                : lvl == "warning" ? rf::LogLevel::kWarning
		                : lvl == "error"   ? rf::LogLevel::kError
		                                   : rf::LogLevel::kInfo);
		return Serve(c.config);
	}
	catch (const std::exception &e)
	{
		fprintf(stderr, "realtime-fanout: fatal: %s\n", e.what());
		return 1;
	}
}
