/*
 * config.cpp: command line and environment parsing (main thread only).
 *
 * Flags win over environment variables, which win over defaults. Unknown
 * flags and malformed numbers are errors: a typo must not start a server
 * with a silently different setting.
 */
#include "tenancy/config.hpp"

#include "tenancy/limit_profiles.hpp"

#include "base/json.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <array>
#include <fstream>
#include <span>
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
ReadFile(const std::string &what, const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in.is_open())
		return Bad(what + ": cannot open " + path + ": " + strerror(errno));
	std::ostringstream text;
	text << in.rdbuf();
	if (in.bad())
		return Bad(what + ": cannot read " + path);
	if (text.str().empty())
		return Bad(what + ": " + path + " is empty");
	return text.str();
}

/* --jwt-jwks: the JSON itself, or "@path" for a file holding it. */
Result<std::string>
ReadJwks(const std::string &what, const std::string &value)
{
	if (!value.starts_with("@"))
		return value;
	return ReadFile(what, value.substr(1));
}

/* A tenant id is the first DNS label of a Host: letters, digits, '-' and '_'. */
bool
ValidTenantId(std::string_view id)
{
	if (id.empty() || id.size() > 63)
		return false;
	for (char ch : id)
		if (!isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_')
			return false;
	return true;
}

/* One integer option: a flag, an environment variable and, for a tenant limit, its key in a
 * --config entry's "limits" */
struct IntOption
{
	const char *flag;
	const char *env;
	long long lo, hi;
	int *target;
	const char *key = nullptr;
	bool given = false; /* set by a flag, a variable or a key: a profile leaves it */
};

/* Profile p's values for the limits not given otherwise */
void
ApplyProfile(const LimitProfile &p, std::span<IntOption> limits)
{
	for (IntOption &o : limits)
		if (std::optional<long long> v = o.key != nullptr ? p.Value(o.key) : std::nullopt;
		    v && !o.given)
			*o.target = static_cast<int>(*v);
}

/*
 * The limits a tenant may set (PROTOCOL.md 9.1): as flags and environment variables (the
 * defaults of every tenant) and as keys of a --config entry's "limits", with one range.
 */
std::array<IntOption, 10>
LimitOptions(TenantConfig &t, int &payload_kb)
{
	/* one limit a line */
	/* clang-format off */
	return {{
	    {"--max-channels-per-client", "MAX_CHANNELS_PER_CLIENT", 1, 100000, &t.max_channels_per_client, "max_channels_per_client"},
	    {"--max-concurrent-users", "TENANT_MAX_CONCURRENT_USERS", 1, 100000000, &t.max_concurrent_users, "max_concurrent_users"},
	    {"--max-joins-per-second", "TENANT_MAX_JOINS_PER_SECOND", 1, 100000000, &t.max_joins_per_second, "max_joins_per_second"},
	    {"--max-events-per-second", "TENANT_MAX_EVENTS_PER_SECOND", 1, 1000000000, &t.max_events_per_second, "max_events_per_second"},
	    {"--max-bytes-per-second", "TENANT_MAX_BYTES_PER_SECOND", 1, 2000000000, &t.max_bytes_per_second, "max_bytes_per_second"},
	    {"--max-client-presence-events", "MAX_CLIENT_PRESENCE_EVENTS_PER_WINDOW", 1, 1000000, &t.max_client_presence_events_per_window, "max_client_presence_events_per_window"},
	    {"--client-presence-window-ms", "CLIENT_PRESENCE_WINDOW_MS", 1, 3600000, &t.client_presence_window_ms, "client_presence_window_ms"},
	    {"--max-presence-events-per-second", "MAX_PRESENCE_EVENTS_PER_SECOND", 1, 100000000, &t.max_presence_events_per_second, "max_presence_events_per_second"},
	    {"--max-payload-kb", "MAX_PAYLOAD_SIZE_IN_KB", 1, 64 << 10, &payload_kb, "max_payload_size_in_kb"},
	    {"--max-replay-messages", "MAX_REPLAY_MESSAGES", 1, 100000, &t.max_replay_messages, "max_replay_messages"},
	}};
	/* clang-format on */
}

} // namespace

std::vector<std::pair<const char *, long long>>
LimitsInForce(const TenantConfig &t)
{
	TenantConfig copy = t;
	int payload_kb = (t.max_payload_bytes - RT_PAYLOAD_SLACK_BYTES) / 1000;
	std::vector<std::pair<const char *, long long>> out;
	for (const IntOption &o : LimitOptions(copy, payload_kb))
		out.emplace_back(o.key, *o.target);
	return out;
}

std::string
LimitsText(const TenantConfig &t)
{
	std::string s;
	for (const auto &[key, value] : LimitsInForce(t))
	{
		if (!s.empty())
			s += ' ';
		s += key;
		s += '=';
		s += std::to_string(value);
	}
	return s;
}

namespace
{

/* A --config entry's "limits" object, over the limits of the entry's tenant */
Result<bool>
ParseLimits(const rapidjson::Value &v, const std::string &where, std::span<IntOption> limits)
{
	if (!v.IsObject())
		return Bad(where + ".limits: an object is expected");
	for (auto l = v.MemberBegin(); l != v.MemberEnd(); ++l)
	{
		std::string name(l->name.GetString(), l->name.GetStringLength());
		if (name == "profile")
			continue; /* ParseTenantEntry applied it first */
		IntOption *found = nullptr;
		for (IntOption &x : limits)
			if (name == x.key)
				found = &x;
		if (found == nullptr)
			return Bad(where + ".limits: unknown key \"" + name + "\"");
		if (!l->value.IsInt64() || l->value.GetInt64() < found->lo ||
		    l->value.GetInt64() > found->hi)
			return Bad(where + ".limits." + name + ": an integer from " +
			           std::to_string(found->lo) + " to " + std::to_string(found->hi) +
			           " is expected");
		*found->target = static_cast<int>(l->value.GetInt64());
		found->given = true;
	}
	return true;
}

/* A --config entry's "limits": {"profile": NAME}, or "" when it names none */
Result<std::string>
EntryProfile(const rapidjson::Value &entry, const std::string &where)
{
	const rapidjson::Value *limits = json::Member(entry, "limits");
	const rapidjson::Value *profile =
	    limits != nullptr && limits->IsObject() ? json::Member(*limits, "profile") : nullptr;
	if (profile == nullptr)
		return std::string();
	std::string name = profile->IsString() ? profile->GetString() : "";
	if (FindLimitProfile(name) == nullptr)
		return Bad(where + ".limits.profile: one of " + LimitProfileNames() + " is expected");
	return name;
}

/* A --config entry's "jwt_jwks": the JWKS object, or "@file" holding it */
Result<std::string>
ParseJwksMember(const rapidjson::Value &v, const std::string &where)
{
	if (v.IsString())
		return ReadJwks(where + ".jwt_jwks", std::string(v.GetString(), v.GetStringLength()));
	if (v.IsObject())
		return json::Stringify(v);
	return Bad(where + ".jwt_jwks: an object or \"@file\" is expected");
}

/* What a --config entry says besides its limits, JWKS and validators */
struct TenantEntry
{
	TenantConfig &t;
	std::string jwks, validators;
	std::span<IntOption> limits;
};

/* One member of a --config entry */
Result<bool>
ParseTenantMember(const std::string &key, const rapidjson::Value &v, const std::string &where,
                  TenantEntry &e)
{
	auto str = [&](std::string &out) -> Result<bool>
	{
		if (!v.IsString())
			return Bad(where + "." + key + ": a string is expected");
		out.assign(v.GetString(), v.GetStringLength());
		return true;
	};
	if (key == "external_id")
		return str(e.t.external_id);
	if (key == "db")
		return str(e.t.db_conninfo);
	if (key == "ring_path")
	{
		e.t.ring_path_from_db = false;
		return str(e.t.ring_path);
	}
	if (key == "jwt_secret")
		return str(e.t.jwt_secret);
	if (key == "jwt_jwks")
	{
		Result<std::string> r = ParseJwksMember(v, where);
		if (!r.ok())
			return r.error();
		e.jwks = std::move(r.value());
		return true;
	}
	if (key == "jwt_claim_validators")
	{
		if (!v.IsObject())
			return Bad(where + ".jwt_claim_validators: an object is expected");
		e.validators = json::Stringify(v);
		return true;
	}
	if (key == "suspended")
	{
		if (!v.IsBool())
			return Bad(where + ".suspended: true or false is expected");
		e.t.suspended = v.GetBool();
		return true;
	}
	if (key == "limits")
		return ParseLimits(v, where, e.limits);
	return Bad(where + ": unknown key \"" + key +
	           "\" (known: external_id, db, ring_path, jwt_secret, jwt_jwks, "
	           "jwt_claim_validators, suspended, limits)");
}

/* One entry of the file's "tenants" array. */
Result<TenantConfig>
ParseTenant(const rapidjson::Value &v, size_t index, const TenantConfig &defaults)
{
	std::string where = "tenants[" + std::to_string(index) + "]";
	if (!v.IsObject())
		return Bad(where + ": not an object");
	TenantConfig t = defaults;
	t.external_id.clear();
	t.db_conninfo.clear();
	t.ring_path.clear();
	t.jwt_secret.clear();
	t.ring_path_from_db = true;
	int payload_kb = (defaults.max_payload_bytes - RT_PAYLOAD_SLACK_BYTES) / 1000;
	std::array<IntOption, 10> limits = LimitOptions(t, payload_kb);
	Result<std::string> profile = EntryProfile(v, where);
	if (!profile.ok())
		return profile.error();
	if (!profile.value().empty())
	{
		ApplyProfile(*FindLimitProfile(profile.value()), limits);
		t.limits_profile = profile.value();
	}
	TenantEntry e{t, {}, {}, limits};
	for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m)
	{
		std::string key(m->name.GetString(), m->name.GetStringLength());
		Result<bool> ok = ParseTenantMember(key, m->value, where, e);
		if (!ok.ok())
			return ok.error();
	}
	if (!ValidTenantId(t.external_id))
		return Bad(where + ".external_id: required, a DNS label (letters, digits, '-', '_')");
	where = "tenant " + t.external_id;
	if (t.jwt_secret.empty() && e.jwks.empty())
		return Bad(where + ": jwt_secret or jwt_jwks is required");
	if (t.db_conninfo.empty())
		t.ring_path_from_db = false;
	t.max_payload_bytes = payload_kb * 1000 + RT_PAYLOAD_SLACK_BYTES;
	Result<JwtKeys> keys = MakeJwtKeys(t.jwt_secret, e.jwks, e.validators);
	if (!keys.ok())
		return Bad(where + ": " + keys.error().message);
	t.jwt_keys = std::move(keys.value());
	/* what a reload compares: the entry, and the JWKS a file held */
	t.source = json::Stringify(v) + e.jwks;
	return t;
}

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
	       "  --config FILE                   the tenants, as JSON (README): {\"tenants\":[...]};\n"
	       "                                  SIGHUP reloads it. Without it, one tenant from\n"
	       "                                  --db, --ring-path, --jwt-* and the --max-* flags\n"
	       "                                  (which are then the file's default limits)\n"
	       "  --tenant-id ID                  that one tenant's id (default realtime) [TENANT_ID]\n"
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
	       "                                  realtime.ring_path): realtime.send() messages;\n"
	       "                                  without it, asked of the database [RING_PATH]\n"
	       "  --ui                            serve the demo (/) and the inspector (/inspector)\n"
	       "                                  pages: anyone who reaches the port may load them\n"
	       "                                  (they hold no key); off by default\n"
	       "  --ui-dir DIR                    where the pages are (default " RT_UI_DIR ")\n"
	       "                                  [UI_DIR]\n"
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
	       "  --max-replay-messages N         the largest replay a join gets (default 25, as\n"
	       "                                  upstream's clamp) [MAX_REPLAY_MESSAGES]\n"
	       "  --limits PROFILE                the limits above start from a profile: upstream,\n"
	       "                                  free, pro, team (Supabase's plan quotas) or\n"
	       "                                  unlimited; a --max-* flag wins over it. Default:\n"
	       "                                  unlimited for one tenant from the flags, upstream\n"
	       "                                  for --config tenants [LIMITS_PROFILE]\n"
	       "  --idle-timeout-ms MS            close sockets silent this long (default 60000)\n"
	       "                                  [IDLE_TIMEOUT_MS]\n"
	       "  --send-queue-kb N               per-socket send queue before messages are dropped\n"
	       "                                  (default 16384) [SEND_QUEUE_KB]\n"
	       "  --slow-client-close-ms MS       a socket dropping messages this long is closed\n"
	       "                                  (default 5000) [SLOW_CLIENT_CLOSE_MS]\n"
	       "  --slow-client-grace-ms MS       then this long to read its loss notices and the\n"
	       "                                  close (its queue is freed at once; default 30000)\n"
	       "                                  [SLOW_CLIENT_GRACE_MS]\n"
	       "  --replication-ready-timeout-ms MS  a channel joined with replication_ready that\n"
	       "                                  is not ready by then ends (default 60000)\n"
	       "                                  [REPLICATION_READY_TIMEOUT_MS]\n"
	       "  --log-level LEVEL               debug, info, warning or error (default info) "
	       "[LOG_LEVEL]\n"
	       "  --check                         diagnose --db and --ring-path (or every tenant of\n"
	       "                                  --config): print each problem with its fix (or\n"
	       "                                  ok:), exit 1 on an error\n"
	       "  --help                          this text\n";
}

namespace
{

/* One string option: a flag and an environment variable */
struct StrOption
{
	const char *flag;
	const char *env;
	std::string *target;
};

/* Every option of the command line, pointing into the Command being built */
struct Options
{
	Options(Config &c, TenantConfig &t)
	    : send_queue_kb(static_cast<int>(c.send_queue_bytes >> 10)),
	      limits(LimitOptions(t, payload_kb)),
	      /* one option a line */
	      /* clang-format off */
	      ints{{
	          {"--port", "PORT", 1, 65535, &c.port},
	          {"--shards", "SHARDS", 0, 256, &c.shards},
	          {"--connect-error-backoff-ms", "CONNECT_ERROR_BACKOFF_MS", 0, 600000, &c.connect_error_backoff_ms},
	          {"--channel-error-backoff-ms", "CHANNEL_ERROR_BACKOFF_MS", 0, 600000, &c.channel_error_backoff_ms},
	          {"--max-frame-bytes", "MAX_FRAME_BYTES", 1024, 64 << 20, &c.max_frame_bytes},
	          {"--idle-timeout-ms", "IDLE_TIMEOUT_MS", 1000, 3600000, &c.idle_timeout_ms},
	          {"--send-queue-kb", "SEND_QUEUE_KB", 64, 1 << 20, &send_queue_kb},
	          {"--slow-client-close-ms", "SLOW_CLIENT_CLOSE_MS", 100, 3600000, &c.slow_client_close_ms},
	          {"--slow-client-grace-ms", "SLOW_CLIENT_GRACE_MS", 1000, 3600000, &c.slow_client_grace_ms},
	          {"--replication-ready-timeout-ms", "REPLICATION_READY_TIMEOUT_MS", 100, 3600000, &c.replication_ready_timeout_ms},
	      }},
	      /* clang-format on */
	      strs{{
	          {"--host", "HOST", &c.host},
	          {"--config", "REALTIME_CONFIG", &c.config_file},
	          {"--tenant-id", "TENANT_ID", &t.external_id},
	          {"--db", "DB_URL", &t.db_conninfo},
	          {"--ring-path", "RING_PATH", &t.ring_path},
	          {"--jwt-secret", "API_JWT_SECRET", &t.jwt_secret},
	          {"--jwt-jwks", "JWT_JWKS", &jwks_arg},
	          {"--jwt-claim-validators", "JWT_CLAIM_VALIDATORS", &validators_arg},
	          {"--metrics-jwt-secret", "METRICS_JWT_SECRET", &c.metrics_jwt_secret},
	          {"--log-level", "LOG_LEVEL", &c.log_level},
	          {"--limits", "LIMITS_PROFILE", &profile_arg},
	          {"--ui-dir", "UI_DIR", &c.ui_dir},
	      }}
	{
	}
	Options(const Options &) = delete;
	Options &operator=(const Options &) = delete;

	std::string jwks_arg, validators_arg, profile_arg;
	int payload_kb = RT_DEFAULT_MAX_PAYLOAD_KB;
	int send_queue_kb;
	bool tenant_flag = false; /* --db, --ring-path, --jwt-*: not with --config */
	std::array<IntOption, 10> limits;
	std::array<IntOption, 10> ints;
	std::array<StrOption, 12> strs;
};

/* An integer option's value, or false when out of its range */
bool
SetInt(IntOption &o, std::string_view value)
{
	long long n = 0;
	if (!ParseInt(value, o.lo, o.hi, n))
		return false;
	*o.target = static_cast<int>(n);
	o.given = true;
	return true;
}

/* The environment first, so that flags override it */
Result<bool>
ApplyEnvironment(Options &o)
{
	for (std::span<IntOption> group :
	     {std::span<IntOption>(o.ints), std::span<IntOption>(o.limits)})
		for (IntOption &opt : group)
		{
			const char *v = getenv(opt.env);
			if (v != nullptr && !SetInt(opt, v))
				return Bad(std::string("invalid value for ") + opt.env + ": " + v);
		}
	for (StrOption &opt : o.strs)
	{
		const char *v = getenv(opt.env);
		if (v != nullptr)
			*opt.target = v;
	}
	return true;
}

/* The flag at argv[i] and its value (--flag=value or --flag value) */
struct FlagCursor
{
	int argc;
	char **argv;
	int &i;
	std::string_view name, value;
	bool has_value = false;

	FlagCursor(int argc_in, char **argv_in, int &i_in) : argc(argc_in), argv(argv_in), i(i_in)
	{
		std::string_view a = argv[i];
		name = a;
		if (auto eq = a.find('='); eq != std::string_view::npos && a.starts_with("--"))
		{
			name = a.substr(0, eq);
			value = a.substr(eq + 1);
			has_value = true;
		}
	}
	/* The value: after '=', or the next argument (consumed) */
	bool
	Take()
	{
		if (has_value)
			return true;
		if (i + 1 >= argc)
			return false;
		value = argv[++i];
		return true;
	}
};

/* One option of the table; true when the flag is one of them, err set when its value is bad */
bool
MatchOption(FlagCursor &f, Options &o, std::string &err)
{
	for (std::span<IntOption> group :
	     {std::span<IntOption>(o.ints), std::span<IntOption>(o.limits)})
		for (IntOption &opt : group)
			if (f.name == opt.flag)
			{
				if (!f.Take() || !SetInt(opt, f.value))
					err = std::string("invalid value for ") + opt.flag;
				return true;
			}
	for (StrOption &opt : o.strs)
		if (f.name == opt.flag)
		{
			if (!f.Take())
			{
				err = std::string("missing value for ") + opt.flag;
				return true;
			}
			*opt.target = std::string(f.value);
			o.tenant_flag = o.tenant_flag || f.name == "--db" || f.name == "--ring-path" ||
			                f.name.starts_with("--jwt-");
			return true;
		}
	return false;
}

/* The options of `realtime-fanout token` */
bool
MatchTokenOption(FlagCursor &f, Command &cmd)
{
	long long n = 0;
	if (f.name == "--role" && f.Take())
		cmd.token_role = std::string(f.value);
	else if (f.name == "--sub" && f.Take())
		cmd.token_sub = std::string(f.value);
	else if (f.name == "--ttl" && f.Take() && ParseInt(f.value, 1, 100LL * 365 * 86400, n))
		cmd.token_ttl_s = n;
	else
		return false;
	return true;
}

/* argv after the program name (and "token"): false with err set on a bad option */
Result<bool>
ParseFlags(int argc, char **argv, int i, Options &o, Command &cmd)
{
	for (; i < argc; i++)
	{
		std::string_view a = argv[i];
		if (a == "--help" || a == "-h")
		{
			cmd.kind = Command::Kind::kHelp;
			return true;
		}
		if (a == "--check" && cmd.kind == Command::Kind::kServe)
		{
			cmd.kind = Command::Kind::kCheck;
			continue;
		}
		if (a == "--ui")
		{
			cmd.config.ui = true;
			continue;
		}
		FlagCursor f(argc, argv, i);
		std::string err;
		bool matched = MatchOption(f, o, err);
		if (!err.empty())
			return Bad(err);
		if (!matched && cmd.kind == Command::Kind::kToken)
			matched = MatchTokenOption(f, cmd);
		if (!matched)
			return Bad("unknown option " + std::string(a) + " (see --help)");
	}
	return true;
}

/* The tenants: from --config, or the one the flags describe */
Result<bool>
ResolveTenants(Command &cmd, Options &o)
{
	Config &c = cmd.config;
	TenantConfig &t = c.tenant_defaults;
	if (!c.config_file.empty())
	{
		if (o.tenant_flag)
			return Bad("--db, --ring-path and --jwt-* are set per tenant in --config " +
			           c.config_file);
		t.db_conninfo.clear();
		t.ring_path.clear();
		t.jwt_secret.clear();
		Result<std::vector<TenantConfig>> tenants = LoadTenantsFile(c.config_file, t);
		if (!tenants.ok())
			return tenants.error();
		c.tenants = std::move(tenants.value());
		return true;
	}
	if (!ValidTenantId(t.external_id))
		return Bad("invalid --tenant-id " + t.external_id +
		           " (a DNS label: letters, digits, '-', '_')");
	/* --check looks at the database and the ring only: no keys needed */
	if (t.jwt_secret.empty() && o.jwks_arg.empty() && cmd.kind != Command::Kind::kCheck)
		return Bad("--jwt-secret (or API_JWT_SECRET) or --jwt-jwks (or JWT_JWKS) is required");
	Result<std::string> jwks = ReadJwks("--jwt-jwks", o.jwks_arg);
	if (!jwks.ok())
		return jwks.error();
	Result<JwtKeys> keys = MakeJwtKeys(t.jwt_secret, jwks.value(), o.validators_arg);
	if (!keys.ok())
		return Bad(keys.error().message);
	TenantConfig one = t;
	one.jwt_keys = std::move(keys.value());
	/* no --ring-path: the database says where its ring is, as for a --config tenant */
	one.ring_path_from_db = one.ring_path.empty() && !one.db_conninfo.empty();
	c.tenants.push_back(std::move(one));
	return true;
}

/* What the flags leave to check once they are all read */
Result<bool>
Validate(Command &cmd, Options &o)
{
	Config &c = cmd.config;
	TenantConfig &t = c.tenant_defaults;
	/* one self-hosted application: nothing in its way; a file's tenants: upstream's defaults */
	std::string profile = !o.profile_arg.empty()  ? o.profile_arg
	                      : c.config_file.empty() ? "unlimited"
	                                              : "upstream";
	const LimitProfile *p = FindLimitProfile(profile);
	if (p == nullptr)
		return Bad("invalid --limits " + profile + " (one of " + LimitProfileNames() + ")");
	ApplyProfile(*p, o.limits);
	t.limits_profile = profile;
	t.max_payload_bytes = o.payload_kb * 1000 + RT_PAYLOAD_SLACK_BYTES;
	c.send_queue_bytes = static_cast<size_t>(o.send_queue_kb) << 10;
	if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warning" &&
	    c.log_level != "error")
		return Bad("invalid --log-level " + c.log_level);
	if (cmd.kind == Command::Kind::kToken)
	{
		if (t.jwt_secret.empty())
			return Bad("token: --jwt-secret (or API_JWT_SECRET) is required");
		if (cmd.token_role.empty())
			return Bad("token: --role is required");
		return true;
	}
	Result<bool> tenants = ResolveTenants(cmd, o);
	if (!tenants.ok())
		return tenants.error();
	if (!c.metrics_jwt_secret.empty())
	{
		Result<JwtKeys> mk = MakeJwtKeys(c.metrics_jwt_secret, "", "");
		if (!mk.ok())
			return Bad(mk.error().message);
		c.metrics_keys = std::move(mk.value());
	}
	return true;
}

} // namespace

Result<Command>
ParseCommandLine(int argc, char **argv)
{
	Command cmd;
	Options o(cmd.config, cmd.config.tenant_defaults);
	Result<bool> env = ApplyEnvironment(o);
	if (!env.ok())
		return env.error();
	int i = 1;
	if (argc > 1 && strcmp(argv[1], "token") == 0)
	{
		cmd.kind = Command::Kind::kToken;
		i = 2;
	}
	Result<bool> flags = ParseFlags(argc, argv, i, o, cmd);
	if (!flags.ok())
		return flags.error();
	if (cmd.kind == Command::Kind::kHelp)
		return cmd;
	Result<bool> valid = Validate(cmd, o);
	if (!valid.ok())
		return valid.error();
	return cmd;
}

bool
SameTenantId(std::string_view a, std::string_view b)
{
	auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
	if (a.size() != b.size())
		return false;
	for (size_t i = 0; i < a.size(); i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* Deepest nesting of arrays and objects accepted in the --config file. */
constexpr int kMaxConfigNesting = 64;

Result<std::vector<TenantConfig>>
LoadTenantsFile(const std::string &path, const TenantConfig &defaults)
{
	Result<std::string> text = ReadFile("--config", path);
	if (!text.ok())
		return text.error();
	/*
	 * RapidJSON's default parse and every serialization of an entry recurse
	 * once per level: a file nesting a million arrays would overflow the stack
	 * (at a SIGHUP, of the running server). Real files nest a few levels.
	 */
	if (!json::NestingWithin(text.value(), kMaxConfigNesting))
		return Bad("--config " + path + ": arrays and objects nest deeper than " +
		           std::to_string(kMaxConfigNesting) + " levels");
	rapidjson::Document doc;
	doc.Parse<rapidjson::kParseIterativeFlag>(text.value().data(), text.value().size());
	if (doc.HasParseError())
		return Bad("--config " + path + ": invalid JSON at offset " +
		           std::to_string(doc.GetErrorOffset()) + ": " +
		           rapidjson::GetParseError_En(doc.GetParseError()));
	if (!doc.IsObject())
		return Bad("--config " + path + ": an object {\"tenants\":[...]} is expected");
	const rapidjson::Value *list = nullptr;
	for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m)
	{
		std::string key(m->name.GetString(), m->name.GetStringLength());
		if (key != "tenants")
			return Bad("--config " + path + ": unknown key \"" + key +
			           "\" (server-wide settings are flags)");
		list = &m->value;
	}
	if (list == nullptr || !list->IsArray() || list->Empty())
		return Bad("--config " + path + ": \"tenants\" must be a non-empty array");
	std::vector<TenantConfig> out;
	for (rapidjson::SizeType i = 0; i < list->Size(); i++)
	{
		Result<TenantConfig> t = ParseTenant((*list)[i], i, defaults);
		if (!t.ok())
			return Bad("--config " + path + ": " + t.error().message);
		for (const TenantConfig &o : out)
			if (SameTenantId(o.external_id, t.value().external_id)) /* Hosts ignore case */
				return Bad("--config " + path + ": tenant " + o.external_id + " appears twice");
		out.push_back(std::move(t.value()));
	}
	return out;
}

} // namespace rt::fanout
