/*
 * log.hpp: the sidecar's logger (STYLE.md section 8).
 *
 * Folder base/: small pieces every folder uses, none of them knowing about
 * the others: log, json (rapidjson helpers), result, uuid, url and clock. Any
 * thread.
 *
 * Any thread. One line per event on stderr:
 *   2026-11-27T18:40:00.123Z info shard message key=value ...
 * Tokens, keys and payload bodies never go above debug.
 */
#pragma once

#include <string_view>

namespace rt::fanout
{

enum class LogLevel
{
	kDebug = 0,
	kInfo = 1,
	kWarning = 2,
	kError = 3,
};

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

/* printf-style; component is a short word such as "shard", "http", "main". */
void Log(LogLevel level, std::string_view component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Route libwebsockets' own log lines (errors and warnings) through Log. */
void InstallLwsLogHook();

} // namespace rt::fanout
