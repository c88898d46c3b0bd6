/*
 * log.cpp: line-oriented stderr logger shared by every thread.
 *
 * Any thread: a line is formatted into a local buffer and written with one
 * write(2), so lines from shards never interleave.
 */
#include "base/log.hpp"

#include <libwebsockets.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <unistd.h>

namespace rt::fanout
{

namespace
{

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char *
LevelName(LogLevel level)
{
	switch (level)
	{
	case LogLevel::kDebug:
		return "debug";
	case LogLevel::kInfo:
		return "info";
	case LogLevel::kWarning:
		return "warning";
	case LogLevel::kError:
		return "error";
	}
	return "?";
}

void
VLog(LogLevel level, std::string_view component, const char *fmt, va_list ap)
{
	char line[2048];
	timespec ts{};
	clock_gettime(CLOCK_REALTIME, &ts);
	tm t{};
	gmtime_r(&ts.tv_sec, &t);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %.*s ",
	                 t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
	                 ts.tv_nsec / 1000000, LevelName(level), static_cast<int>(component.size()),
	                 component.data());
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n), fmt, ap);
	size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/* lws hands us lines that already end in a newline */
	while (len > 0 && line[len - 1] == '\n')
		len--;
	line[len++] = '\n';
	ssize_t ignored = write(STDERR_FILENO, line, len);
	(void)ignored;
}

void
LwsEmit(int level, const char *line)
{
	LogLevel l = (level & LLL_ERR) ? LogLevel::kError : LogLevel::kWarning;
	if (!LogEnabled(l))
		return;
	Log(l, "lws", "%s", line);
}

} // namespace

void
SetLogLevel(LogLevel level)
{
	g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool
LogEnabled(LogLevel level)
{
	return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void
Log(LogLevel level, std::string_view component, const char *fmt, ...)
{
	if (!LogEnabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	VLog(level, component, fmt, ap);
	va_end(ap);
}

void
InstallLwsLogHook()
{
	lws_set_log_level(LLL_ERR | LLL_WARN, LwsEmit);
}

} // namespace rt::fanout
