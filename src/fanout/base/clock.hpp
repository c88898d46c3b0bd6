/*
 * clock.hpp: the monotonic clock every timer and rate of the sidecar uses.
 *
 * Any thread.
 */
#pragma once

#include <cstdint>
#include <ctime>

namespace rt::fanout
{

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
inline int64_t
NowMs()
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

} // namespace rt::fanout
