/*
 * diagnostics.hpp: what is wrong with a tenant's database for this sidecar,
 * each problem with the exact fix (realtime-fanout --check, and once at start).
 *
 * Diagnose() connects over libpq with the tenant's conninfo (its own
 * connection, closed before it returns) and looks at: the connection, wal_level,
 * shared_preload_libraries, output_plugin_libraries (where the build has it),
 * the extension and its version, realtime.database, the publication, the ring
 * path and file, and the decoder worker. Any thread; it shares nothing.
 */
#pragma once

#include <string>
#include <thread>
#include <vector>

namespace rt::fanout
{

struct Config;

enum class Severity
{
	kError,   /* the sidecar cannot do its work: --check exits 1 */
	kWarning, /* a feature is off or a path of use fails */
};

struct Problem
{
	Severity severity;
	std::string code; /* short stable word: wal_level, preload, ring_path, ... */
	std::string text; /* one line: what is wrong and the exact fix */
};

struct Diagnosis
{
	std::vector<Problem> problems;
	std::string summary; /* what was found in order, for the "ok:" line */
};

const char *SeverityName(Severity s);

/* conninfo (key=value or URI) as key=value, without the password; the parse error if invalid */
std::string ConninfoForDisplay(const std::string &conninfo);

/* Run every check against the database of conninfo for a sidecar reading ring_path ("" none) */
Diagnosis Diagnose(const std::string &conninfo, const std::string &ring_path,
                   bool ring_from_db = false);

/* realtime-fanout --check: one line per problem on stdout, "ok: ..." when there is none; 1 on
 * any error, else 0 */
int RunCheckCommand(const Config &config);

/* The same checks once on their own thread at start; each problem logged at its level. */
class StartupCheck
{
public:
	/* tenant: prefixes its log lines ("" none) */
	StartupCheck(std::string conninfo, std::string ring_path, std::string tenant);
	~StartupCheck();
	void Start();
	void Join(); /* waits for the check to end (at most the connect and statement timeouts) */

private:
	std::string conninfo_;
	std::string ring_path_;
	std::string tenant_;
	std::thread thread_;
};

} // namespace rt::fanout
