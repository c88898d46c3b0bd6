/*
 * main.cpp: realtime-fanout entry point (main thread).
 *
 * Parses the command line, starts the tenants and the shards, then waits for
 * signals: SIGHUP reloads --config, SIGINT/SIGTERM stop everything. `realtime-fanout token`
 * mints a JWT for the quick-start script and for tests.
 */
#include "auth/auth_jwt.hpp"
#include "tenancy/config.hpp"
#include "ops/diagnostics.hpp"
#include "server/hub.hpp"
#include "base/json.hpp"
#include "base/log.hpp"
#include "server/shard.hpp"
#include "server/static_ui.hpp"
#include "tenancy/tenant.hpp"

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <sys/resource.h>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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
	printf("%s\n", rf::SignJwtHs256(claims, cmd.config.tenant_defaults.jwt_secret).c_str());
	return 0;
}

/* Waits until count calls of Done, or the deadline (shards that never run the task). */
struct Latch
{
	std::mutex mu;
	std::condition_variable cv;
	size_t left;

	explicit Latch(size_t n) : left(n) {}
	void
	Done()
	{
		std::lock_guard<std::mutex> lock(mu);
		if (left > 0 && --left == 0)
			cv.notify_all();
	}
	bool
	Wait(std::chrono::milliseconds timeout)
	{
		std::unique_lock<std::mutex> lock(mu);
		return cv.wait_for(lock, timeout, [this] { return left == 0; });
	}
};

/*
 * Removed or changed tenants (PROTOCOL.md 2.6): every channel of them gets
 * "Server requested disconnect" and their sockets close with 1012; once they
 * are gone (or after a few seconds), their components stop, here on the main
 * thread. All at once: a reload changing many tenants waits one drain, not
 * one per tenant (each of them refuses new sockets meanwhile). A tenant object
 * itself lives until its last session lets go.
 */
void
DrainTenants(rf::Hub &hub, const std::vector<std::shared_ptr<rf::Tenant>> &gone)
{
	if (gone.empty())
		return;
	auto latch = std::make_shared<Latch>(hub.shards().size() * gone.size());
	for (const auto &t : gone)
	{
		t->draining.store(true, std::memory_order_release);
		for (size_t i = 0; i < hub.shards().size(); i++)
			hub.PostTask(static_cast<int>(i),
			             [t, latch](rf::Shard &sh)
			             {
				             sh.DisconnectTenant(t.get());
				             latch->Done();
			             });
	}
	latch->Wait(std::chrono::seconds(5));
	/* sockets close once their queue (the system messages) is written */
	auto open = [&gone]
	{
		int64_t n = 0;
		for (const auto &t : gone)
			n += t->sessions.load(std::memory_order_relaxed);
		return n;
	};
	for (int i = 0; i < 100 && open() > 0; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	for (const auto &t : gone)
	{
		int64_t left = t->sessions.load(std::memory_order_relaxed);
		rf::Log(left > 0 ? rf::LogLevel::kWarning : rf::LogLevel::kInfo, "main",
		        "tenant %s: drained (%lld sockets still closing)", t->id().c_str(),
		        static_cast<long long>(left));
		t->Stop();
	}
}

/* SIGHUP: read --config again; start, restart and drain tenants by what changed. */
void
Reload(const rf::Config &config, rf::Hub &hub)
{
	if (config.config_file.empty())
	{
		rf::Log(rf::LogLevel::kWarning, "main", "SIGHUP: no --config file, nothing to reload");
		return;
	}
	rf::Result<std::vector<rf::TenantConfig>> loaded =
	    rf::LoadTenantsFile(config.config_file, config.tenant_defaults);
	if (!loaded.ok())
	{
		rf::Log(rf::LogLevel::kError, "main", "reload refused, the tenants stay as they were: %s",
		        loaded.error().message.c_str());
		return;
	}
	std::shared_ptr<const rf::TenantSet> old = hub.tenants();
	auto kept = std::make_shared<rf::TenantSet>();
	std::vector<rf::TenantConfig> fresh; /* added or changed */
	for (rf::TenantConfig &tc : loaded.value())
	{
		std::shared_ptr<rf::Tenant> o = old->Find(tc.external_id);
		if (o && o->config().source == tc.source)
			kept->list.push_back(o);
		else
			fresh.push_back(std::move(tc));
	}
	std::vector<std::shared_ptr<rf::Tenant>> gone;
	for (const auto &o : old->list)
		if (kept->Find(o->id()) != o)
			gone.push_back(o);
	rf::Log(rf::LogLevel::kInfo, "main", "reload: %zu tenants kept, %zu to drain, %zu to start",
	        kept->list.size(), gone.size(), fresh.size());
	/*
	 * The old instances go first: a changed tenant's ring has one reader at a
	 * time. While they drain they stay in the set, refusing new sockets, so
	 * their Hosts are not taken for another tenant's (a single-tenant set
	 * serves every Host).
	 */
	auto during = std::make_shared<rf::TenantSet>(*kept);
	for (const auto &t : gone)
	{
		t->draining.store(true, std::memory_order_release);
		during->list.push_back(t);
	}
	hub.SetTenants(during);
	DrainTenants(hub, gone);
	auto next = std::make_shared<rf::TenantSet>(*kept);
	for (rf::TenantConfig &tc : fresh)
	{
		auto t = std::make_shared<rf::Tenant>(std::move(tc), hub);
		t->Start();
		next->list.push_back(std::move(t));
	}
	hub.SetTenants(next);
	rf::Log(rf::LogLevel::kInfo, "main", "reload done: tenants %s", next->Ids().c_str());
}

/*
 * Each socket is an open file: the soft limit goes up to the hard one before the shards'
 * lws contexts size their tables by it, and the log says how many sockets that allows.
 */
void
RaiseOpenFiles()
{
	rlimit nofile{};
	if (getrlimit(RLIMIT_NOFILE, &nofile) != 0)
		return;
	if (nofile.rlim_cur < nofile.rlim_max)
	{
		rlimit raised = nofile;
		raised.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			nofile = raised;
	}
	constexpr rlim_t kReserved = 64; /* listeners, gates, database connections, logs */
	rlim_t sockets = nofile.rlim_cur > kReserved ? nofile.rlim_cur - kReserved : 0;
	rf::Log(rf::LogLevel::kInfo, "main",
	        "open files: limit %llu (hard %llu), room for about %llu client sockets",
	        static_cast<unsigned long long>(nofile.rlim_cur),
	        static_cast<unsigned long long>(nofile.rlim_max),
	        static_cast<unsigned long long>(sockets));
}

int
Serve(const rf::Config &config)
{
	RaiseOpenFiles();
	/* block the stop and reload signals in every thread; main waits for them with sigwait */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, nullptr);
	signal(SIGPIPE, SIG_IGN);

	rf::InstallLwsLogHook();
	rf::Hub hub(config);
	auto tenants = std::make_shared<rf::TenantSet>();
	for (const rf::TenantConfig &tc : config.tenants)
	{
		auto t = std::make_shared<rf::Tenant>(tc, hub);
		t->Start();
		tenants->list.push_back(std::move(t));
	}
	hub.SetTenants(tenants);
	if (!hub.Start())
	{
		rf::Log(rf::LogLevel::kError, "main", "could not start: is port %d free?", config.port);
		for (const auto &t : tenants->list)
			t->Stop();
		return 1;
	}
	int sig = 0;
	for (;;)
	{
		sigwait(&set, &sig);
		if (sig != SIGHUP)
			break;
		try
		{
			Reload(config, hub);
		}
		catch (const std::exception &e)
		{
			rf::Log(rf::LogLevel::kError, "main", "reload failed: %s", e.what());
		}
	}
	rf::Log(rf::LogLevel::kInfo, "main", "signal %d: stopping", sig);
	std::shared_ptr<const rf::TenantSet> last = hub.tenants();
	/*
	 * Shutdown drains every tenant at once (PROTOCOL.md 1.6: "Server requested
	 * disconnect", close 1012): clients reconnect at once, to another instance
	 * on the same port if one was started for an upgrade.
	 */
	for (const auto &t : last->list)
	{
		t->draining.store(true, std::memory_order_release);
		for (size_t i = 0; i < hub.shards().size(); i++)
			hub.PostTask(static_cast<int>(i), [t](rf::Shard &sh) { sh.DisconnectTenant(t.get()); });
	}
	for (int i = 0; i < 40; i++)
	{
		int64_t open = 0;
		for (const auto &t : last->list)
			open += t->sessions.load(std::memory_order_relaxed);
		if (open == 0)
			break;
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	}
	for (const auto &t : last->list)
		t->Stop(); /* the authorizers' last answers still reach running shards */
	hub.Stop();
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
		rf::Command &c = cmd.value();
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
		if (c.config.ui)
		{
			std::string err;
			c.config.ui_files = rf::StaticUi::Load(c.config.ui_dir, err);
			if (!c.config.ui_files)
			{
				fprintf(stderr, "realtime-fanout: --ui: %s\n", err.c_str());
				return 2;
			}
			rf::Log(rf::LogLevel::kInfo, "ui", "serving %zu files of %s at / and /inspector",
			        c.config.ui_files->size(), c.config.ui_dir.c_str());
		}
		return Serve(c.config);
	}
	catch (const std::exception &e)
	{
		fprintf(stderr, "realtime-fanout: fatal: %s\n", e.what());
		return 1;
	}
}
