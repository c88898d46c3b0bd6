/*
 * config.hpp: the sidecar's immutable configuration, from flags and environment.
 *
 * Main thread builds it once; every thread then reads it without locks.
 */
#pragma once

#include "auth/auth_jwt.hpp"
#include "base/result.hpp"
#include "rt_ring.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#ifndef RT_UI_DIR
#define RT_UI_DIR "/usr/local/share/realtime/ui"
#endif

namespace rt::fanout
{

class StaticUi;

/*
 * One tenant (PROTOCOL.md 9.1): its database, ring, keys and limits. From the
 * --config file's "tenants" array, or from the flags (one tenant).
 */
struct TenantConfig
{
	std::string external_id = "realtime"; /* the Host's first label (PROTOCOL.md 1.3) */
	std::string db_conninfo;              /* empty: no database features */
	std::string ring_path;                /* the extension's realtime.ring_path; empty: no ring */
	bool ring_path_from_db = false;       /* ring_path not given: SHOW realtime.ring_path */
	std::string jwt_secret;               /* HS256/384/512 shared secret (also signs `token`) */
	JwtKeys jwt_keys; /* secret + JWKS + claim validators: what tokens verify with */
	bool suspended = false;
	int max_payload_bytes = RT_DEFAULT_MAX_PAYLOAD_KB * 1000 + RT_PAYLOAD_SLACK_BYTES;
	int max_channels_per_client = 100;
	/* tenant limits (PROTOCOL.md 9.1), upstream's defaults; rates are 60 s averages */
	int max_concurrent_users = 200;                /* sockets that joined a channel */
	int max_joins_per_second = 100;                /* joins of all sockets */
	int max_events_per_second = 100;               /* messages from and to clients on channels */
	int max_bytes_per_second = 100000;             /* kept and shown, not enforced (as upstream) */
	int max_client_presence_events_per_window = 5; /* presence pushes per channel ... */
	int client_presence_window_ms = 30000;         /* ... in this window (PROTOCOL.md 5.5) */
	int max_presence_events_per_second = 1000;     /* tracks and states, 60 s average */
	int max_replay_messages = 25; /* the largest replay.limit a join gets (upstream: 25) */
	std::string limits_profile = "upstream"; /* the profile the limits started from */
	std::string source; /* its entry in the file, as JSON: a reload restarts it when changed */
};

struct Config
{
	std::string host = "127.0.0.1"; /* listen address */
	int port = 4000;
	std::string config_file; /* --config: the tenants; empty: one tenant from the flags */
	std::vector<TenantConfig> tenants;
	std::string metrics_jwt_secret; /* set: GET /metrics needs a Bearer JWT signed with it */
	JwtKeys metrics_keys;           /* ... as keys */
	int shards = 0;                 /* 0: one per core */
	int connect_error_backoff_ms = 2000;
	int channel_error_backoff_ms = 5000;
	int max_frame_bytes = RT_MAX_FRAME_BYTES; /* largest WebSocket message accepted */
	int idle_timeout_ms = 60000;
	size_t send_queue_bytes = 16u << 20; /* per-connection cap before dropping */
	size_t send_queue_items = 65536;
	int slow_client_close_ms = 5000;  /* dropping for this long closes the socket */
	int slow_client_grace_ms = 30000; /* ... after its loss notices and close frame, or this */
	int replication_ready_timeout_ms = 60000; /* config.broadcast.replication_ready (3.8) */
	int max_http_body_bytes = 8 << 20;
	std::string log_level = "info";
	bool ui = false;                          /* --ui: serve the pages (static_ui.hpp) */
	std::string ui_dir = RT_UI_DIR;           /* where they are (make install puts them) */
	std::shared_ptr<const StaticUi> ui_files; /* loaded at start-up when ui */
	/* the limits given by flags: the single tenant's, and the defaults of the file's tenants */
	TenantConfig tenant_defaults;
};

/* a and b are one tenant id ignoring ASCII case: a Host is case-insensitive (RFC 9110 4.2.3). */
bool SameTenantId(std::string_view a, std::string_view b);

/*
 * Read the --config file: {"tenants":[...]} (README). Limits not given take
 * defaults'. Unknown keys, duplicate ids and tenants without keys are errors.
 */
Result<std::vector<TenantConfig>> LoadTenantsFile(const std::string &path,
                                                  const TenantConfig &defaults);

/*
 * The limits in force for tenant t, as "key=value ..." with the keys of a --config entry's
 * "limits" (max_concurrent_users=200 max_joins_per_second=100 ...): the start-up line and
 * /metrics show them, so that a benchmark can check what it asked for.
 */
std::vector<std::pair<const char *, long long>> LimitsInForce(const TenantConfig &t);
std::string LimitsText(const TenantConfig &t);

/* What the command line asked for. */
struct Command
{
	enum class Kind
	{
		kServe,
		kHelp,
		kToken, /* mint a JWT: realtime-fanout token --role R --jwt-secret S */
		kCheck, /* diagnose the database and the ring, print the problems, exit */
	} kind = Kind::kServe;
	Config config;
	std::string token_role;
	std::string token_sub;
	int64_t token_ttl_s = 3600 * 24 * 365;
};

/* Parse argv, with environment variables as defaults (PORT, DB_URL, ...). */
Result<Command> ParseCommandLine(int argc, char **argv);

/* The --help text: every option and its environment variable. */
const char *UsageText();

} // namespace rt::fanout
