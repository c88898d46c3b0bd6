/*
 * ring_dump: a test tool that follows a ring file with the sidecar's own
 * reader (src/fanout/ring_reader.cpp, ring_change.cpp) and prints every
 * MESSAGE and CHANGE record as one JSON line, in the exact form the output
 * plugin prints through pg_logical_slot_get_changes (format "json"), so that
 * a test can compare what the ring carries with what SQL decoding shows.
 *
 *   ring_dump RING_PATH COUNT TIMEOUT_MS
 *
 * Attaches at the ring's write position, prints "ready" on stderr, then
 * prints records until COUNT have been printed (exit 0) or TIMEOUT_MS pass
 * (exit 1). Gaps are printed as {"type":"gap","lost":N}.
 */
#include "base/json.hpp"
#include "base/log.hpp"
#include "db/ring_reader.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

namespace rf = rt::fanout;

namespace
{

std::mutex mu;
std::condition_variable cv;
long printed = 0;

/* "X/X" as PostgreSQL prints an LSN */
std::string
Lsn(uint64_t lsn)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%X/%X", static_cast<unsigned>(lsn >> 32),
	         static_cast<unsigned>(lsn));
	return buf;
}

/* "YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00", as the plugin's JSON prints commit times */
std::string
Time(uint64_t us)
{
	time_t secs = static_cast<time_t>(us / 1000000);
	tm t{};
	gmtime_r(&secs, &t);
	char buf[64];
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06u", t.tm_year + 1900, t.tm_mon + 1,
	         t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<unsigned>(us % 1000000));
	/* as PostgreSQL prints fractions: no trailing zeros, no point when whole */
	std::string s = buf;
	while (s.back() == '0')
		s.pop_back();
	if (s.back() == '.')
		s.pop_back();
	return s + "+00:00";
}

void
Emit(const std::string &line)
{
	std::lock_guard<std::mutex> lock(mu);
	fputs(line.c_str(), stdout);
	fputc('\n', stdout);
	fflush(stdout);
	printed++;
	cv.notify_all();
}

void
AppendCommit(std::string &out, uint64_t lsn, uint64_t time_us)
{
	out += ",\"commit_lsn\":\"" + Lsn(lsn) + "\",\"commit_time\":\"" + Time(time_us) + "\"}";
}

void
PrintMessage(const rf::RingMessage &m)
{
	std::string out = "{\"type\":\"message\",\"topic\":";
	rf::json::AppendQuoted(out, m.topic);
	out += ",\"event\":";
	rf::json::AppendQuoted(out, m.event);
	out += m.is_private ? ",\"private\":true,\"id\":" : ",\"private\":false,\"id\":";
	rf::json::AppendQuoted(out, m.id);
	out += ",\"payload\":";
	out += m.payload;
	AppendCommit(out, m.commit_lsn, m.commit_time_us);
	Emit(out);
}

template <typename Pick>
void
AppendRow(std::string &out, const rf::RingChange &c, Pick pick)
{
	bool first = true;
	out += '{';
	for (const rf::RingColumn &col : c.columns)
	{
		std::string_view v = pick(col);
		if (v.empty())
			continue;
		if (!first)
			out += ',';
		first = false;
		rf::json::AppendQuoted(out, col.name);
		out += ':';
		out += v;
	}
	out += '}';
}

void
PrintChange(const rf::RingChange &c)
{
	std::string out = "{\"type\":";
	rf::json::AppendQuoted(out, c.type_name());
	out += ",\"schema\":";
	rf::json::AppendQuoted(out, c.schema);
	out += ",\"table\":";
	rf::json::AppendQuoted(out, c.table);
	out += ",\"relid\":" + std::to_string(c.relid) + ",\"rls\":" + (c.rls() ? "true" : "false");
	out += ",\"columns\":[";
	for (size_t i = 0; i < c.columns.size(); i++)
	{
		out += i == 0 ? "{\"name\":" : ",{\"name\":";
		rf::json::AppendQuoted(out, c.columns[i].name);
		out += ",\"type\":";
		rf::json::AppendQuoted(out, c.columns[i].type);
		out += '}';
	}
	out += "],\"pk\":[";
	bool first = true;
	for (const rf::RingColumn &col : c.columns)
	{
		if (!col.pk)
			continue;
		if (!first)
			out += ',';
		first = false;
		rf::json::AppendQuoted(out, col.name);
	}
	out += ']';
	if (c.too_large())
		out += ",\"too_large\":true";
	if (c.action != rf::RingChange::Action::kDelete)
	{
		out += ",\"record\":";
		AppendRow(out, c, [](const rf::RingColumn &col) { return col.new_value; });
	}
	if (c.action != rf::RingChange::Action::kInsert)
	{
		out += ",\"old_record\":";
		AppendRow(out, c, [](const rf::RingColumn &col) { return col.old_value; });
	}
	AppendCommit(out, c.commit_lsn, c.commit_time_us);
	Emit(out);
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc != 4)
	{
		fprintf(stderr, "usage: ring_dump RING_PATH COUNT TIMEOUT_MS\n");
		return 2;
	}
	long count = atol(argv[2]);
	long timeout_ms = atol(argv[3]);
	rf::SetLogLevel(rf::LogLevel::kWarning);
	rf::RingReader reader(argv[1], PrintMessage,
	                      [](const rf::RingChange &c, std::string_view) { PrintChange(c); });
	reader.Start();

	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	while (!reader.attached() && std::chrono::steady_clock::now() < deadline)
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	if (!reader.attached())
	{
		fprintf(stderr, "ring_dump: could not attach to %s\n", argv[1]);
		return 1;
	}
	fprintf(stderr, "ready\n");
	bool done;
	{
		std::unique_lock<std::mutex> lock(mu);
		done = cv.wait_until(lock, deadline, [&] { return printed >= count; });
	}
	reader.Stop();
	if (reader.lost() > 0)
		printf("{\"type\":\"gap\",\"lost\":%llu}\n",
		       static_cast<unsigned long long>(reader.lost()));
	return done ? 0 : 1;
}
