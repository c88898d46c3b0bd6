/*
 * bench_util.hpp: the helpers that bench/load_client.cpp, bench/db_latency.cpp,
 * bench/changes_client.cpp and bench/private_client.cpp share: fatal errors
 * under the program's name (set once in main), numeric option values, the uuid
 * of a bench user, the CPU time of this process (getrusage) and of another
 * (/proc/<pid>/stat), a "name=pid" process to watch and the CPU of watched ones over a
 * phase (CpuWindow), and the options that say
 * where a client connects (Endpoint). Header-only.
 */
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include "ws_client.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace rt::bench
{

/* The name Die prefixes its message with; main sets it first thing. */
inline const char *g_program_name = "bench";

/* Print "<program>: msg" on stderr and exit with status 2. */
[[noreturn]] inline void
Die(const std::string &msg)
{
	std::fprintf(stderr, "%s: %s\n", g_program_name, msg.c_str());
	std::exit(2);
}

/* A positive number for option `name`, or Die. */
inline double
ParseDouble(const char *name, const char *v)
{
	char *end = nullptr;
	double d = std::strtod(v, &end);
	if (end == v || *end != '\0' || !(d > 0))
		Die(std::string("bad value for ") + name + ": " + v);
	return d;
}

/* Where a bench client connects: the options they all take (an Options struct
 * derives from it). secret and db only for the clients that sign their own
 * tokens or talk to Postgres too (EndpointOption's `extra`). */
struct Endpoint
{
	std::string host = "127.0.0.1";
	int port = 0; /* the sidecar */
	std::string path = "/realtime/v1/websocket";
	std::string secret; /* HS256 key for the client's own tokens */
	std::string db;     /* libpq conninfo */
};

enum EndpointExtra : unsigned
{
	kNoExtra = 0,
	kWithSecret = 1,
	kWithDb = 2,
};

/* Option `a` with value `v` into e, if it is one of --host, --port, --path and
 * (as `extra` allows) --secret, --db; false for any other option. */
inline bool
EndpointOption(std::string_view a, const char *v, Endpoint &e, unsigned extra)
{
	if (a == "--host")
		e.host = v;
	else if (a == "--port")
		e.port = int(ParseDouble("--port", v));
	else if (a == "--path")
		e.path = v;
	else if (a == "--secret" && (extra & kWithSecret) != 0)
		e.secret = v;
	else if (a == "--db" && (extra & kWithDb) != 0)
		e.db = v;
	else
		return false;
	return true;
}

/* The uuid of user u (0-based), as the tokens' sub and the table rows carry it. */
inline std::string
UserUuid(int u)
{
	char buf[40];
	std::snprintf(buf, sizeof(buf), "00000000-0000-4000-8000-%012x", unsigned(u + 1));
	return buf;
}

/* CPU time (user + system) so far, in ns, of getrusage's `who`
 * (RUSAGE_SELF: this process; RUSAGE_THREAD: the calling thread). */
inline int64_t
RusageCpuNs(int who)
{
	rusage ru{};
	getrusage(who, &ru);
	return (int64_t(ru.ru_utime.tv_sec) + ru.ru_stime.tv_sec) * kNsPerSec +
	       (int64_t(ru.ru_utime.tv_usec) + ru.ru_stime.tv_usec) * 1000;
}

/* CPU time (user + system) of this process so far, in ns. */
inline int64_t
ProcessCpuNs()
{
	return RusageCpuNs(RUSAGE_SELF);
}

/* CPU ticks (user + system) of a process so far, from /proc; -1 if gone. */
inline int64_t
ProcTicks(int pid)
{
	std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
	std::string s;
	if (!std::getline(f, s))
		return -1;
	size_t at = s.rfind(')');
	if (at == std::string::npos)
		return -1;
	/* after "(comm) ": state is field 1, utime 12, stime 13 */
	const char *p = s.c_str() + at + 2;
	int64_t ut = 0, st = 0;
	for (int field = 1; field <= 13 && *p; field++)
	{
		if (field == 12)
			ut = std::strtoll(p, nullptr, 10);
		if (field == 13)
			st = std::strtoll(p, nullptr, 10);
		p = std::strchr(p, ' ');
		if (p == nullptr)
			break;
		p++;
	}
	return ut + st;
}

/* Raise the soft limit on open files to the hard one (many sockets). */
inline void
RaiseFdLimit()
{
	rlimit nofile{};
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max)
	{
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
}

/* A process whose CPU time a run reports (--watch name=pid). */
struct Watch
{
	std::string name;
	int pid = 0;
};

/* "name=pid" into *w; false without an '='. */
inline bool
ParseWatch(std::string_view v, Watch *w)
{
	size_t eq = v.find('=');
	if (eq == std::string_view::npos)
		return false;
	w->name = std::string(v.substr(0, eq));
	w->pid = std::atoi(std::string(v.substr(eq + 1)).c_str());
	return true;
}

/* CPU used by the watched pids (and this process) over one phase. */
class CpuWindow
{
public:
	explicit CpuWindow(const std::vector<Watch> &w) : watch_(w) { Start(); }
	void
	Start()
	{
		ticks_.clear();
		for (const Watch &w : watch_)
			ticks_.push_back(ProcTicks(w.pid));
		self_ = ProcessCpuNs();
	}
	/* " <prefix>_<name>_cpu_ms=N ..." */
	std::string
	Report(const std::string &prefix) const
	{
		static const long hz = sysconf(_SC_CLK_TCK);
		std::string out;
		for (size_t i = 0; i < watch_.size(); i++)
		{
			int64_t now = ProcTicks(watch_[i].pid);
			out += " " + prefix + "_" + watch_[i].name + "_cpu_ms=" +
			       (now < 0 || ticks_[i] < 0 ? std::string("nan")
			                                 : std::to_string((now - ticks_[i]) * 1000 / hz));
		}
		out +=
		    " " + prefix + "_client_cpu_ms=" + std::to_string((ProcessCpuNs() - self_) / 1000000);
		return out;
	}

private:
	const std::vector<Watch> &watch_;
	std::vector<int64_t> ticks_;
	int64_t self_ = 0;
};

/* main's body: run f, and report an exception escaping it as "<program>: what" with
 * exit status 2. */
template <class F>
int
RunOrReport(F &&f)
{
	try
	{
		return f();
	}
	catch (const std::exception &e)
	{
		std::fprintf(stderr, "%s: %s\n", g_program_name, e.what());
		return 2;
	}
}

} // namespace rt::bench
