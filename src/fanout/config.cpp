/*
 * config.cpp: command line and environment parsing (main thread only).
 *
 * Flags win over environment variables, which win over defaults. Unknown
 * flags and malformed numbers are errors: a typo must not start a server
 * with a silently different setting.
 */
#include "config.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace rt::fanout
{

namespace
{

bool
ParseInt(std::string_view text, long long lo, long long hi, long long &out)
{
	if (text.empty())
		return false;
	std::string s(text);
	char *end = nullptr;
	errno = 0;
	long long v = strtoll(s.c_str(), &end, 10);
	if (errno != 0 || end == s.c_str() || *end != '\0' || v < lo || v > hi)
		return false;
	out = v;
	return true;
}

Error
Bad(std::string msg)
{
	return Error{ErrorCode::kInvalidArgument, std::move(msg)};
}

/* --jwt-jwks: the JSON itself, or "@path" for a file holding it. */
Result<std::string>
ReadJwks(const std::string &value)
{
	if (!value.starts_with("@"))
		return value;
	std::string path = value.substr(1);
	std::ifstream in(path, std::ios::binary);
	if (!in.is_open())
		return Bad("--jwt-jwks: cannot open " + path + ": " + strerror(errno));
	std::ostringstream text;
	text << in.rdbuf();
	if (in.bad())
		return Bad("--jwt-jwks: cannot read " + path);
	if (text.str().empty())
		return Bad("--jwt-jwks: " + path + " is empty");
	return text.str();
}

/* One integer option: from "name" flag or env var. */
struct IntOption
{
	const char *flag;
	const char *env;
	long long lo, hi;
	int *target;
};

} // namespace

const char *
UsageText()
{
	return "usage: realtime-fanout [options]\n"
	       "       realtime-fanout token --role ROLE --jwt-secret SECRET [--sub SUB] [--ttl "
	       "SECONDS]\n"
	       "\n"
	       "Supabase Realtime compatible WebSocket server for the `realtime` PostgreSQL "
	       "extension.\n"
	       "\n"
	       "options (environment variable in brackets):\n"
	       "  --host ADDR                     listen address (default 127.0.0.1) [HOST]\n"
	       "  --port N                        listen port (default 4000) [PORT]\n"
	       "  --db CONNINFO                   libpq connection string of the database [DB_URL]\n"
	       "  --jwt-secret SECRET             HS256/384/512 secret of the project JWTs "
	       "[API_JWT_SECRET]\n"
	       "  --jwt-jwks JSON|@FILE           JWKS {\"keys\":[...]} for RS*, ES*, EdDSA (and oct\n"
	       "                                  HS* keys by kid); this or --jwt-secret is\n"
	       "                                  required [JWT_JWKS]\n"
	       "  --jwt-claim-validators JSON     claims that must equal these strings, e.g.\n"
	       "                                  {\"iss\":\"...\",\"aud\":\"...\"} "
	       "[JWT_CLAIM_VALIDATORS]\n"
	       "  --metrics-jwt-secret SECRET     GET /metrics then needs Authorization: Bearer\n"
	       "                                  <a JWT signed with it>; unset: open\n"
	       "                                  [METRICS_JWT_SECRET]\n"
	       "  --ring-path PATH                the ring file the extension writes (its\n"
	       "                                  realtime.ring_path): realtime.send() messages "
	       "[RING_PATH]\n"
	       "  --shards N                      event-loop threads, one per core by default "
	       "[SHARDS]\n"
	       "  --connect-error-backoff-ms MS   delay before a refused connect is answered\n"
	       "                                  (default 2000) [CONNECT_ERROR_BACKOFF_MS]\n"
	       "  --channel-error-backoff-ms MS   delay before a refused join is answered\n"
	       "                                  (default 5000) [CHANNEL_ERROR_BACKOFF_MS]\n"
	       "  --max-frame-bytes N             largest WebSocket message (default 5000000) "
	       "[MAX_FRAME_BYTES]\n"
	       "  --max-payload-kb N              broadcast payload limit in kB (default 3000)\n"
	       "                                  [MAX_PAYLOAD_SIZE_IN_KB]\n"
	       "  --max-channels-per-client N     channels per socket (default 100) "
	       "[MAX_CHANNELS_PER_CLIENT]\n"
	       "  --max-concurrent-users N        sockets that joined a channel (default 200)\n"
	       "                                  [TENANT_MAX_CONCURRENT_USERS]\n"
	       "  --max-joins-per-second N        joins, 60 s average (default 100)\n"
	       "                                  [TENANT_MAX_JOINS_PER_SECOND]\n"
	       "  --max-events-per-second N       messages from and to clients on channels,\n"
	       "                                  60 s average (default 100)\n"
	       "                                  [TENANT_MAX_EVENTS_PER_SECOND]\n"
	       "  --max-bytes-per-second N        shown in /metrics, not enforced (as upstream)\n"
	       "                                  (default 100000) [TENANT_MAX_BYTES_PER_SECOND]\n"
	       "  --max-client-presence-events N  presence pushes per channel and window (default 5)\n"
	       "                                  [MAX_CLIENT_PRESENCE_EVENTS_PER_WINDOW]\n"
	       "  --client-presence-window-ms MS  that window (default 30000) "
	       "[CLIENT_PRESENCE_WINDOW_MS]\n"
	       "  --max-presence-events-per-second N  presence tracks and states per second,\n"
	       "                                  60 s average (default 1000)\n"
	       "                                  [MAX_PRESENCE_EVENTS_PER_SECOND]\n"
	       "  --idle-timeout-ms MS            close sockets silent this long (default 60000)\n"
	       "                                  [IDLE_TIMEOUT_MS]\n"
	       "  --send-queue-kb N               per-socket send queue before messages are dropped\n"
	       "                                  (default 16384) [SEND_QUEUE_KB]\n"
	       "  --slow-client-close-ms MS       a socket dropping messages this long is closed\n"
	       "                                  (default 5000) [SLOW_CLIENT_CLOSE_MS]\n"
	       "  --log-level LEVEL               debug, info, warning or error (default info) "
	       "[LOG_LEVEL]\n"
	       "  --check                         diagnose --db and --ring-path: print each problem\n"
	       "                                  with its fix (or ok:), exit 1 on an error\n"
	       "  --help                          this text\n";
}

Result<Command>
ParseCommandLine(int argc, char **argv)
{
	Command cmd;
	Config &c = cmd.config;
	std::string jwks_arg, validators_arg;
	int payload_kb = RT_DEFAULT_MAX_PAYLOAD_KB;
	int send_queue_kb = static_cast<int>(c.send_queue_bytes >> 10);
	IntOption ints[] = {
	    {"--port", "PORT", 1, 65535, &c.port},
	    {"--shards", "SHARDS", 0, 256, &c.shards},
	    {"--connect-error-backoff-ms", "CONNECT_ERROR_BACKOFF_MS", 0, 600000,
	     &c.connect_error_backoff_ms},
	    {"--channel-error-backoff-ms", "CHANNEL_ERROR_BACKOFF_MS", 0, 600000,
	     &c.channel_error_backoff_ms},
	    {"--max-frame-bytes", "MAX_FRAME_BYTES", 1024, 64 << 20, &c.max_frame_bytes},
	    {"--max-payload-kb", "MAX_PAYLOAD_SIZE_IN_KB", 1, 64 << 10, &payload_kb},
	    {"--max-channels-per-client", "MAX_CHANNELS_PER_CLIENT", 1, 100000,
	     &c.max_channels_per_client},
	    {"--max-concurrent-users", "TENANT_MAX_CONCURRENT_USERS", 1, 100000000,
	     &c.max_concurrent_users},
	    {"--max-joins-per-second", "TENANT_MAX_JOINS_PER_SECOND", 1, 100000000,
	     &c.max_joins_per_second},
	    {"--max-events-per-second", "TENANT_MAX_EVENTS_PER_SECOND", 1, 1000000000,
	     &c.max_events_per_second},
	    {"--max-bytes-per-second", "TENANT_MAX_BYTES_PER_SECOND", 1, 2000000000,
	     &c.max_bytes_per_second},
	    {"--max-client-presence-events", "MAX_CLIENT_PRESENCE_EVENTS_PER_WINDOW", 1, 1000000,
	     &c.max_client_presence_events_per_window},
	    {"--client-presence-window-ms", "CLIENT_PRESENCE_WINDOW_MS", 1, 3600000,
	     &c.client_presence_window_ms},
	    {"--max-presence-events-per-second", "MAX_PRESENCE_EVENTS_PER_SECOND", 1, 100000000,
	     &c.max_presence_events_per_second},
	    {"--idle-timeout-ms", "IDLE_TIMEOUT_MS", 1000, 3600000, &c.idle_timeout_ms},
	    {"--send-queue-kb", "SEND_QUEUE_KB", 64, 1 << 20, &send_queue_kb},
	    {"--slow-client-close-ms", "SLOW_CLIENT_CLOSE_MS", 100, 3600000, &c.slow_client_close_ms},
	};
	struct StrOption
	{
		const char *flag;
		const char *env;
		std::string *target;
	} strs[] = {
	    {"--host", "HOST", &c.host},
	    {"--db", "DB_URL", &c.db_conninfo},
	    {"--ring-path", "RING_PATH", &c.ring_path},
	    {"--jwt-secret", "API_JWT_SECRET", &c.jwt_secret},
	    {"--jwt-jwks", "JWT_JWKS", &jwks_arg},
	    {"--jwt-claim-validators", "JWT_CLAIM_VALIDATORS", &validators_arg},
	    {"--metrics-jwt-secret", "METRICS_JWT_SECRET", &c.metrics_jwt_secret},
	    {"--log-level", "LOG_LEVEL", &c.log_level},
	};

	/* environment first, so flags override */
	for (IntOption &o : ints)
	{
		const char *v = getenv(o.env);
		long long n = 0;
		if (v == nullptr)
			continue;
		if (!ParseInt(v, o.lo, o.hi, n))
			return Bad(std::string("invalid value for ") + o.env + ": " + v);
		*o.target = static_cast<int>(n);
	}
	for (StrOption &o : strs)
	{
		const char *v = getenv(o.env);
		if (v != nullptr)
			*o.target = v;
	}

	int i = 1;
	if (argc > 1 && strcmp(argv[1], "token") == 0)
	{
		cmd.kind = Command::Kind::kToken;
		i = 2;
	}
	for (; i < argc; i++)
	{
		std::string_view a = argv[i];
		if (a == "--help" || a == "-h")
		{
			cmd.kind = Command::Kind::kHelp;
			return cmd;
		}
		if (a == "--check" && cmd.kind == Command::Kind::kServe)
		{
			cmd.kind = Command::Kind::kCheck;
			continue;
		}
		/* accept --flag=value and --flag value */
		std::string_view name = a, value;
		bool has_value = false;
		if (auto eq = a.find('='); eq != std::string_view::npos && a.starts_with("--"))
		{
			name = a.substr(0, eq);
			value = a.substr(eq + 1);
			has_value = true;
		}
		auto take = [&]() -> bool
		{
			if (has_value)
				return true;
			if (i + 1 >= argc)
				return false;
			value = argv[++i];
			return true;
		};
		bool matched = false;
		for (IntOption &o : ints)
		{
			if (name != o.flag)
				continue;
			long long n = 0;
			if (!take() || !ParseInt(value, o.lo, o.hi, n))
				return Bad(std::string("invalid value for ") + o.flag);
			*o.target = static_cast<int>(n);
			matched = true;
		}
		for (StrOption &o : strs)
		{
			if (name != o.flag)
				continue;
			if (!take())
				return Bad(std::string("missing value for ") + o.flag);
			*o.target = std::string(value);
			matched = true;
		}
		if (!matched && cmd.kind == Command::Kind::kToken)
		{
			long long n = 0;
			if (name == "--role" && take())
				cmd.token_role = std::string(value), matched = true;
			else if (name == "--sub" && take())
				cmd.token_sub = std::string(value), matched = true;
			else if (name == "--ttl" && take() && ParseInt(value, 1, 100LL * 365 * 86400, n))
				cmd.token_ttl_s = n, matched = true;
		}
		if (!matched)
			return Bad("unknown option " + std::string(a) + " (see --help)");
	}
	c.max_payload_bytes = payload_kb * 1000 + RT_PAYLOAD_SLACK_BYTES;
	c.send_queue_bytes = static_cast<size_t>(send_queue_kb) << 10;

	if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warning" &&
	    c.log_level != "error")
		return Bad("invalid --log-level " + c.log_level);
	if (cmd.kind == Command::Kind::kToken)
	{
		if (c.jwt_secret.empty())
			return Bad("token: --jwt-secret (or API_JWT_SECRET) is required");
		if (cmd.token_role.empty())
			return Bad("token: --role is required");
		return cmd;
	}
	/* --check looks at the database and the ring only: no keys needed */
	if (c.jwt_secret.empty() && jwks_arg.empty() && cmd.kind != Command::Kind::kCheck)
		return Bad("--jwt-secret (or API_JWT_SECRET) or --jwt-jwks (or JWT_JWKS) is required");
	Result<std::string> jwks = ReadJwks(jwks_arg);
	if (!jwks.ok())
		return jwks.error();
	Result<JwtKeys> keys = MakeJwtKeys(c.jwt_secret, jwks.value(), validators_arg);
	if (!keys.ok())
		return Bad(keys.error().message);
	c.jwt_keys = std::move(keys.value());
	if (!c.metrics_jwt_secret.empty())
	{
		Result<JwtKeys> mk = MakeJwtKeys(c.metrics_jwt_secret, "", "");
		if (!mk.ok())
			return Bad(mk.error().message);
		c.metrics_keys = std::move(mk.value());
	}
	return cmd;
}

} // namespace rt::fanout
