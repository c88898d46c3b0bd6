/*
 * rate_counter.hpp: events per second as a sliding average (PROTOCOL.md 9.1).
 *
 * Upstream buckets counts every 5 s over 12 buckets: the limit triggers when
 * the 60 s average reaches the value and releases when it falls below. Any
 * thread (one mutex; used for events that are rare next to broadcasts).
 */
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

namespace rt::fanout
{

class RateCounter
{
public:
	static constexpr int kBuckets = 12;
	static constexpr int64_t kBucketMs = 5000;

	/* Count n events at now_ms (monotonic). */
	void Add(int64_t now_ms, uint64_t n = 1);
	/* Events per second over the last kBuckets * kBucketMs, the current bucket included. */
	double Average(int64_t now_ms) const;

private:
	mutable std::mutex mu_;
	std::array<uint64_t, kBuckets> counts_{};
	std::array<int64_t, kBuckets> ids_{}; /* which bucket (now_ms / kBucketMs) each count is */
};

/*
 * The same buckets with one writing thread (a shard's): relaxed atomics, no
 * lock, so the hot path pays a load and a store. Sum may run on any thread;
 * it sees each bucket whole.
 */
class LocalRate
{
public:
	void Add(int64_t now_ms, uint64_t n = 1);
	/* Events of the last kBuckets * kBucketMs, the current bucket included. */
	uint64_t Sum(int64_t now_ms) const;

private:
	std::array<std::atomic<uint64_t>, RateCounter::kBuckets> counts_{};
	std::array<std::atomic<int64_t>, RateCounter::kBuckets> ids_{};
};

} // namespace rt::fanout
