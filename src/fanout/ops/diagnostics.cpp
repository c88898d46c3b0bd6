/*
 * diagnostics.cpp: see diagnostics.hpp.
 *
 * Three statements, each constant or parameterized: the settings and the
 * extension in one row (pg_settings, so a setting hidden from this role is a
 * NULL, not an error), the publication, and realtime.stats() with the holder
 * of slot "realtime". A check that needs what an earlier one found missing is
 * skipped: every problem reported is a cause, not a consequence.
 */
#include "ops/diagnostics.hpp"

#include "tenancy/config.hpp"
#include "base/log.hpp"

#include <libpq-fe.h>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>

#ifndef RT_EXTENSION_VERSION
#error "RT_EXTENSION_VERSION (realtime.control's default_version) must be defined by the Makefile"
#endif

namespace rt::fanout
{

namespace
{

using PgConn = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResult = std::unique_ptr<PGresult, decltype(&PQclear)>;

/* The settings and the extension, as this role sees them */
constexpr const char *kSettingsSql =
    "SELECT current_database(), current_user,"
    " (SELECT setting FROM pg_settings WHERE name = 'wal_level'),"
    " (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'),"
    " EXISTS (SELECT 1 FROM pg_settings WHERE name = 'output_plugin_libraries'),"
    " (SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries'),"
    " (SELECT setting FROM pg_settings WHERE name = 'data_directory'),"
    " current_setting('realtime.database', true),"
    " current_setting('realtime.publication', true),"
    " current_setting('realtime.ring_path', true),"
    " (SELECT extversion FROM pg_extension WHERE extname = 'realtime')";

constexpr const char *kPublicationSql =
    "SELECT quote_ident($1::text),"
    " EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1::text),"
    " (SELECT count(*) FROM pg_publication_tables WHERE pubname = $1::text)";

constexpr const char *kWorkerSql =
    "SELECT s.worker_pid,"
    " (SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'realtime')"
    " FROM realtime.stats() s";

constexpr const char *kDefaultPublication = "supabase_realtime";

/* libpq's messages span lines ("...failed: ...\n\tIs the server running..."): one line */
std::string
OneLine(const char *msg)
{
	std::string out;
	bool pending = false; /* a line break or tab run: "; " before the next text */
	for (const char *p = msg; *p != '\0'; p++)
	{
		if (*p == '\n' || *p == '\t' || *p == '\r')
		{
			pending = true;
			continue;
		}
		if (pending)
		{
			while (!out.empty() && out.back() == ' ')
				out.pop_back();
			if (!out.empty() && out.back() != ':' && out.back() != ';')
				out += ';';
			if (!out.empty())
				out += ' ';
			pending = false;
		}
		out += *p;
	}
	return out;
}

/* A conninfo value, single-quoted when it has to be */
void
AppendConninfoValue(std::string &out, const char *v)
{
	bool plain = *v != '\0';
	for (const char *p = v; *p != '\0'; p++)
		if (*p == ' ' || *p == '\'' || *p == '\\' || *p == '=')
			plain = false;
	if (plain)
	{
		out += v;
		return;
	}
	out += '\'';
	for (const char *p = v; *p != '\0'; p++)
	{
		if (*p == '\'' || *p == '\\')
			out += '\\';
		out += *p;
	}
	out += '\'';
}

/* A list setting's elements (SplitDirectoriesString's rules: commas, double quotes) */
std::vector<std::string>
SplitList(const std::string &value)
{
	std::vector<std::string> out;
	size_t i = 0, n = value.size();
	while (i < n)
	{
		while (i < n && (value[i] == ' ' || value[i] == '\t'))
			i++;
		std::string item;
		if (i < n && value[i] == '"')
		{
			for (i++; i < n; i++)
			{
				if (value[i] == '"')
				{
					if (i + 1 < n && value[i + 1] == '"')
						i++;
					else
					{
						i++;
						break;
					}
				}
				item += value[i];
			}
			while (i < n && value[i] != ',')
				i++;
		}
		else
		{
			while (i < n && value[i] != ',')
				item += value[i++];
			while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
				item.pop_back();
		}
		if (!item.empty())
			out.push_back(item);
		if (i < n && value[i] == ',')
			i++;
	}
	return out;
}

/* The list as SET/ALTER SYSTEM take it: bare words, other elements as string literals */
std::string
FormatList(const std::vector<std::string> &items)
{
	std::string out;
	for (const std::string &item : items)
	{
		if (!out.empty())
			out += ", ";
		bool bare = !item.empty() && !(item[0] >= '0' && item[0] <= '9');
		for (char c : item)
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
				bare = false;
		if (bare)
		{
			out += item;
			continue;
		}
		out += '\'';
		for (char c : item)
		{
			if (c == '\'')
				out += '\'';
			out += c;
		}
		out += '\'';
	}
	return out;
}

/* realtime, $libdir/realtime or .../realtime.so: the library this extension loads */
bool
NamesRealtime(const std::vector<std::string> &items)
{
	for (std::string item : items)
	{
		if (size_t slash = item.rfind('/'); slash != std::string::npos)
			item = item.substr(slash + 1);
		if (item.size() > 3 && item.compare(item.size() - 3, 3, ".so") == 0)
			item.resize(item.size() - 3);
		if (item == "realtime")
			return true;
	}
	return false;
}

std::string
Quoted(const std::string &s)
{
	std::string out = "'";
	for (char c : s)
	{
		if (c == '\'')
			out += '\'';
		out += c;
	}
	return out + "'";
}

/* The server's primary message for a failed statement, else libpq's text */
std::string
StatementError(const PGresult *r, PGconn *conn)
{
	if (const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY))
		return primary;
	return OneLine(PQerrorMessage(conn));
}

/* Row 0's column, or nullptr for NULL */
const char *
Col(const PGresult *r, int col)
{
	return PQgetisnull(r, 0, col) ? nullptr : PQgetvalue(r, 0, col);
}

std::string
GroupName(gid_t gid)
{
	if (const struct group *g = getgrgid(gid))
		return g->gr_name;
	return std::to_string(gid);
}

std::string
UserName(uid_t uid)
{
	if (const struct passwd *p = getpwuid(uid))
		return p->pw_name;
	return std::to_string(uid);
}

bool
InGroup(gid_t gid)
{
	if (getegid() == gid)
		return true;
	int n = getgroups(0, nullptr);
	if (n <= 0)
		return false;
	std::vector<gid_t> groups(static_cast<size_t>(n));
	n = getgroups(n, groups.data());
	for (int i = 0; i < n; i++)
		if (groups[static_cast<size_t>(i)] == gid)
			return true;
	return false;
}

bool
SameFile(const std::string &a, const std::string &b)
{
	if (a == b)
		return true;
	struct stat sa, sb;
	return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

class Checker
{
public:
	Checker(const std::string &conninfo, const std::string &ring_path, bool ring_from_db)
	    : conninfo_(conninfo), ring_path_(ring_path), ring_from_db_(ring_from_db)
	{
	}

	Diagnosis
	Run()
	{
		if (!Connect())
			return std::move(d_);
		PgResult s(PQexec(conn_.get(), kSettingsSql), &PQclear);
		if (PQresultStatus(s.get()) != PGRES_TUPLES_OK || PQntuples(s.get()) != 1)
		{
			Add(Severity::kError, "query",
			    "reading the settings of " + where_ +
			        " failed: " + StatementError(s.get(), conn_.get()) +
			        "; fix: connect --db as a role that may read pg_settings and pg_extension");
			return std::move(d_);
		}
		database_ = Col(s.get(), 0);
		role_ = Col(s.get(), 1);
		Summary("database " + database_ + " as " + role_);
		CheckWalLevel(Col(s.get(), 2));
		bool preloaded = CheckPreload(Col(s.get(), 3));
		if (strcmp(PQgetvalue(s.get(), 0, 4), "t") == 0)
			CheckOutputPlugins(Col(s.get(), 5));
		const char *data_directory = Col(s.get(), 6);
		bool installed = CheckExtension(Col(s.get(), 10));
		if (preloaded)
			CheckWorkerDatabase(Col(s.get(), 7));
		const char *publication = Col(s.get(), 8);
		CheckPublication(publication != nullptr ? publication : kDefaultPublication);
		CheckRing(preloaded ? Col(s.get(), 9) : nullptr, data_directory);
		if (preloaded && installed)
			CheckWorker();
		return std::move(d_);
	}

private:
	void
	Add(Severity severity, const char *code, std::string text)
	{
		d_.problems.push_back(Problem{severity, code, std::move(text)});
	}

	void
	Summary(const std::string &part)
	{
		if (!d_.summary.empty())
			d_.summary += ", ";
		d_.summary += part;
	}

	bool
	Connect()
	{
		std::string shown = ConninfoForDisplay(conninfo_);
		where_ = "the database at " + shown;
		/* the expanded conninfo (last) overrides these defaults */
		const char *keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
		const char *vals[] = {"5", "realtime_check", conninfo_.c_str(), nullptr};
		conn_.reset(PQconnectdbParams(keys, vals, 1));
		if (PQstatus(conn_.get()) != CONNECTION_OK)
		{
			Add(Severity::kError, "connect",
			    "cannot connect to " + shown + ": " + OneLine(PQerrorMessage(conn_.get())) +
			        "; fix: start the server or correct --db");
			return false;
		}
		/* a check must not hang on a lock or a busy server */
		PgResult r(PQexec(conn_.get(), "SET statement_timeout = '10s'"), &PQclear);
		return true;
	}

	void
	CheckWalLevel(const char *wal_level)
	{
		if (wal_level == nullptr || strcmp(wal_level, "logical") == 0)
			return;
		Add(Severity::kError, "wal_level",
		    std::string("wal_level is ") + wal_level +
		        ", the decoder worker needs logical; fix: ALTER SYSTEM SET wal_level = logical; "
		        "then restart the server");
	}

	bool
	CheckPreload(const char *preload)
	{
		if (preload == nullptr)
		{
			Add(Severity::kWarning, "settings_hidden",
			    "role " + role_ +
			        " cannot read shared_preload_libraries and data_directory, so the preload "
			        "and a relative ring path were not checked; fix: GRANT pg_read_all_settings "
			        "TO " +
			        role_ + ";");
			return true; /* unknown: let the checks that need it run */
		}
		std::vector<std::string> items = SplitList(preload);
		if (NamesRealtime(items))
		{
			Summary("realtime preloaded");
			return true;
		}
		items.push_back("realtime");
		Add(Severity::kError, "preload",
		    "shared_preload_libraries is " + Quoted(preload) +
		        " and lacks realtime, so the extension cannot load and no decoder worker runs; "
		        "fix: ALTER SYSTEM SET shared_preload_libraries = " +
		        FormatList(items) + "; then restart the server");
		return false;
	}

	void
	CheckOutputPlugins(const char *value)
	{
		if (value == nullptr)
			return;
		std::vector<std::string> items = SplitList(value);
		if (NamesRealtime(items))
			return;
		items.push_back("realtime");
		std::string list = FormatList(items);
		Add(Severity::kWarning, "output_plugin_libraries",
		    "output_plugin_libraries is " + Quoted(value) +
		        " and lacks realtime: the decoder worker does not need it, but SQL sessions "
		        "calling pg_logical_slot_get_changes with plugin realtime do; fix: SET "
		        "output_plugin_libraries = " +
		        list +
		        "; in such a session, or for all: ALTER SYSTEM SET output_plugin_libraries = " +
		        list + "; SELECT pg_reload_conf();");
	}

	bool
	CheckExtension(const char *version)
	{
		if (version == nullptr)
		{
			Add(Severity::kError, "extension_missing",
			    "extension realtime is not installed in database " + database_ +
			        "; fix: CREATE EXTENSION realtime; in database " + database_);
			return false;
		}
		if (strcmp(version, RT_EXTENSION_VERSION) != 0)
		{
			Add(Severity::kError, "extension_version",
			    std::string("extension realtime is at version ") + version + " in database " +
			        database_ +
			        ", this sidecar was built for " RT_EXTENSION_VERSION
			        "; fix: ALTER EXTENSION realtime UPDATE TO '" RT_EXTENSION_VERSION
			        "'; (or run a realtime-fanout built for " +
			        version + ")");
			return true;
		}
		Summary("extension realtime " RT_EXTENSION_VERSION);
		return true;
	}

	void
	CheckWorkerDatabase(const char *worker_db)
	{
		if (worker_db == nullptr || database_ == worker_db)
			return;
		Add(Severity::kError, "database",
		    "realtime.database is " + Quoted(worker_db) +
		        ": the decoder worker streams that database, not " + database_ +
		        " that --db connects to; fix: connect --db to dbname=" + worker_db +
		        ", or ALTER SYSTEM SET realtime.database = " + Quoted(database_) +
		        "; then restart the server");
	}

	void
	CheckPublication(const std::string &name)
	{
		const char *params[] = {name.c_str()};
		PgResult r(
		    PQexecParams(conn_.get(), kPublicationSql, 1, nullptr, params, nullptr, nullptr, 0),
		    &PQclear);
		if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1)
		{
			Add(Severity::kWarning, "query",
			    "looking up publication " + name +
			        " failed: " + StatementError(r.get(), conn_.get()));
			return;
		}
		std::string ident = PQgetvalue(r.get(), 0, 0);
		if (strcmp(PQgetvalue(r.get(), 0, 1), "t") == 0)
		{
			std::string tables = PQgetvalue(r.get(), 0, 2);
			Summary("publication " + ident + " with " + tables +
			        (tables == "1" ? " table" : " tables"));
			return;
		}
		Add(Severity::kWarning, "publication",
		    "publication " + ident + " (realtime.publication) does not exist in database " +
		        database_ + ", so Postgres Changes deliver nothing; fix: CREATE PUBLICATION " +
		        ident + "; ALTER PUBLICATION " + ident + " ADD TABLE schema.table;");
	}

	void
	CheckRing(const char *server_path, const char *data_directory)
	{
		std::string server;
		if (server_path != nullptr)
		{
			server = server_path;
			if (!server.empty() && server[0] != '/' && data_directory != nullptr)
				server = std::string(data_directory) + "/" + server;
		}
		if (ring_path_.empty() && ring_from_db_ && !server.empty())
			ring_path_ = server; /* the sidecar reads the ring the database names */
		if (ring_path_.empty())
		{
			Add(Severity::kWarning, "ring_path",
			    "no --ring-path given, so realtime.send() messages and Postgres Changes do not "
			    "reach clients; fix: start realtime-fanout with --ring-path " +
			        (server.empty() ? std::string("set to realtime.ring_path") : server));
			return;
		}
		std::string target = ring_path_;
		if (!server.empty() && !SameFile(server, ring_path_))
		{
			if (server[0] != '/')
			{
				Add(Severity::kWarning, "ring_path",
				    "realtime.ring_path is " + Quoted(server) +
				        ", relative to the data directory this role cannot read, so --ring-path " +
				        ring_path_ +
				        " was not compared with it; fix: GRANT pg_read_all_settings TO " + role_ +
				        ";");
			}
			else
			{
				Add(Severity::kError, "ring_path",
				    "realtime.ring_path is " + server + " but --ring-path is " + ring_path_ +
				        "; fix: start realtime-fanout with --ring-path " + server +
				        ", or ALTER SYSTEM SET realtime.ring_path = " + Quoted(ring_path_) +
				        "; then restart the server");
				target = server; /* the file the fix points at */
			}
		}
		CheckRingFile(target);
	}

	void
	CheckRingFile(const std::string &path)
	{
		if (access(path.c_str(), R_OK | W_OK) == 0)
		{
			Summary("ring " + path + " readable and writable");
			return;
		}
		int err = errno;
		struct stat st;
		if (err == ENOENT)
		{
			Add(Severity::kError, "ring_missing",
			    "ring file " + path +
			        " does not exist; fix: it appears when the decoder worker starts (see the "
			        "problems above), or correct --ring-path to realtime.ring_path");
			return;
		}
		if (err == EACCES && stat(path.c_str(), &st) != 0)
		{
			/* the file is out of reach: name the first directory this process cannot search */
			std::string dir;
			for (size_t slash = path.find('/', 1); slash != std::string::npos;
			     slash = path.find('/', slash + 1))
			{
				dir = path.substr(0, slash);
				if (access(dir.c_str(), X_OK) != 0)
					break;
			}
			struct stat ds
			{
			};
			std::string owner = stat(dir.c_str(), &ds) == 0
			                        ? UserName(ds.st_uid) + ":" + GroupName(ds.st_gid)
			                        : std::string("unknown");
			char dmode[8];
			snprintf(dmode, sizeof(dmode), "%04o", static_cast<unsigned>(ds.st_mode & 07777));
			Add(Severity::kError, "ring_access",
			    "ring file " + path + " is out of reach of user " + UserName(geteuid()) +
			        ": directory " + dir + " (mode " + dmode + ", owner " + owner +
			        ") cannot be searched; fix: chmod g+x " + dir +
			        " and run realtime-fanout in "
			        "its group, or put realtime.ring_path in a directory this user can reach");
			return;
		}
		if (err != EACCES)
		{
			Add(Severity::kError, "ring_access",
			    "ring file " + path + " cannot be opened: " + strerror(err) +
			        "; fix: make it and its directories reachable by this process");
			return;
		}
		char mode[8];
		snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
		std::string fix;
		if ((st.st_mode & 0060) != 0060)
			fix = "ALTER SYSTEM SET realtime.ring_file_mode = '0660'; then restart the server";
		if (!InGroup(st.st_gid))
			fix += std::string(fix.empty() ? "" : ", and ") + "run realtime-fanout in group " +
			       GroupName(st.st_gid) + " (usermod -aG " + GroupName(st.st_gid) + " " +
			       UserName(geteuid()) + ")";
		if (fix.empty())
			fix = "let user " + UserName(geteuid()) + " reach the directories of " + path;
		Add(Severity::kError, "ring_access",
		    "ring file " + path + " (mode " + mode + ", owner " + UserName(st.st_uid) + ":" +
		        GroupName(st.st_gid) + ") is not readable and writable by user " +
		        UserName(geteuid()) + "; fix: " + fix);
	}

	void
	CheckWorker()
	{
		PgResult r(PQexec(conn_.get(), kWorkerSql), &PQclear);
		if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1)
		{
			Add(Severity::kWarning, "stats",
			    "realtime.stats() failed for role " + role_ + " (" +
			        StatementError(r.get(), conn_.get()) +
			        "), so the decoder worker was not checked; fix: connect --db as a superuser, "
			        "or GRANT USAGE ON SCHEMA realtime TO " +
			        role_ +
			        "; GRANT EXECUTE ON FUNCTION realtime.stats(), realtime.ring_stats() TO " +
			        role_ + ";");
			return;
		}
		const char *worker = Col(r.get(), 0);
		if (worker != nullptr)
		{
			Summary(std::string("decoder worker pid ") + worker);
			return;
		}
		const char *holder = Col(r.get(), 1);
		if (holder != nullptr)
		{
			Add(Severity::kError, "worker",
			    std::string("the decoder worker is not running (realtime.stats() worker_pid is "
			                "null) and slot realtime is held by pid ") +
			        holder + "; fix: SELECT pg_terminate_backend(" + holder +
			        "); the worker retries on its own");
			return;
		}
		Add(Severity::kError, "worker",
		    "the decoder worker is not running (realtime.stats() worker_pid is null) and no "
		    "process holds slot realtime; fix: look for its error in the server log (grep "
		    "realtime), which says what it needs");
	}

	std::string conninfo_;
	std::string ring_path_;
	bool ring_from_db_;
	PgConn conn_{nullptr, &PQfinish};
	Diagnosis d_;
	std::string where_;
	std::string database_;
	std::string role_;
};

} // namespace

const char *
SeverityName(Severity s)
{
	return s == Severity::kError ? "error" : "warning";
}

std::string
ConninfoForDisplay(const std::string &conninfo)
{
	char *err = nullptr;
	PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &err);
	if (opts == nullptr)
	{
		std::string msg = err != nullptr ? OneLine(err) : "out of memory";
		PQfreemem(err);
		return "(invalid conninfo: " + msg + ")";
	}
	std::string out;
	for (PQconninfoOption *o = opts; o->keyword != nullptr; o++)
	{
		if (o->val == nullptr || strcmp(o->keyword, "password") == 0)
			continue;
		if (!out.empty())
			out += ' ';
		out += o->keyword;
		out += '=';
		AppendConninfoValue(out, o->val);
	}
	PQconninfoFree(opts);
	return out.empty() ? "(libpq defaults)" : out;
}

Diagnosis
Diagnose(const std::string &conninfo, const std::string &ring_path, bool ring_from_db)
{
	return Checker(conninfo, ring_path, ring_from_db).Run();
}

int
RunCheckCommand(const Config &config)
{
	/* with --config, every line names its tenant */
	bool prefix = !config.config_file.empty();
	bool failed = false;
	for (const TenantConfig &t : config.tenants)
	{
		std::string p = prefix ? t.external_id + ": " : "";
		if (t.db_conninfo.empty())
		{
			if (prefix)
				printf("%serror db: no \"db\" in %s, nothing to check\n", p.c_str(),
				       config.config_file.c_str());
			else
				printf("error db: no --db given, nothing to check; fix: realtime-fanout --check "
				       "--db CONNINFO [--ring-path PATH]\n");
			failed = true;
			continue;
		}
		Diagnosis d = Diagnose(t.db_conninfo, t.ring_path, t.ring_path_from_db);
		for (const Problem &pr : d.problems)
		{
			printf("%s%s %s: %s\n", p.c_str(), SeverityName(pr.severity), pr.code.c_str(),
			       pr.text.c_str());
			failed = failed || pr.severity == Severity::kError;
		}
		if (d.problems.empty())
			printf("%sok: %s\n", p.c_str(), d.summary.c_str());
	}
	fflush(stdout);
	return failed ? 1 : 0;
}

StartupCheck::StartupCheck(std::string conninfo, std::string ring_path, std::string tenant)
    : conninfo_(std::move(conninfo)), ring_path_(std::move(ring_path)), tenant_(std::move(tenant))
{
}

StartupCheck::~StartupCheck() { Join(); }

void
StartupCheck::Start()
{
	thread_ = std::thread(
	    [this]()
	    {
		    try
		    {
			    Diagnosis d = Diagnose(conninfo_, ring_path_);
			    std::string pre = tenant_.empty() ? "" : "tenant " + tenant_ + ": ";
			    for (const Problem &p : d.problems)
				    Log(p.severity == Severity::kError ? LogLevel::kError : LogLevel::kWarning,
				        "check", "%s%s: %s", pre.c_str(), p.code.c_str(), p.text.c_str());
			    if (d.problems.empty())
				    Log(LogLevel::kInfo, "check", "%sok: %s", pre.c_str(), d.summary.c_str());
		    }
		    catch (const std::exception &e)
		    {
			    Log(LogLevel::kError, "check", "the start-up check failed: %s", e.what());
		    }
	    });
}

void
StartupCheck::Join()
{
	if (thread_.joinable())
		thread_.join();
}

} // namespace rt::fanout
