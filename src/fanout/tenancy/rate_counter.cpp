/*
 * rate_counter.cpp: the sliding average of rate_counter.hpp.
 */
#include "tenancy/rate_counter.hpp"

namespace rt::fanout
{

void
RateCounter::Add(int64_t now_ms, uint64_t n)
{
	int64_t id = now_ms / kBucketMs;
	size_t slot = static_cast<size_t>(id % kBuckets);
	std::lock_guard<std::mutex> lock(mu_);
	if (ids_[slot] != id)
	{
		ids_[slot] = id; /* a bucket from a minute ago: start it over */
		counts_[slot] = 0;
	}
	counts_[slot] += n;
}

double
RateCounter::Average(int64_t now_ms) const
{
	int64_t id = now_ms / kBucketMs;
	uint64_t sum = 0;
	std::lock_guard<std::mutex> lock(mu_);
	for (size_t i = 0; i < counts_.size(); i++)
	{
		if (id - ids_[i] < kBuckets)
			sum += counts_[i];
	}
	return static_cast<double>(sum) * 1000.0 / static_cast<double>(kBuckets * kBucketMs);
}

void
LocalRate::Add(int64_t now_ms, uint64_t n)
{
	int64_t id = now_ms / RateCounter::kBucketMs;
	size_t slot = static_cast<size_t>(id % RateCounter::kBuckets);
	if (ids_[slot].load(std::memory_order_relaxed) != id)
	{
		/* a bucket from a minute ago: start it over (count first, then whose it is) */
		counts_[slot].store(0, std::memory_order_relaxed);
		ids_[slot].store(id, std::memory_order_release);
	}
	counts_[slot].store(counts_[slot].load(std::memory_order_relaxed) + n,
	                    std::memory_order_relaxed);
}

uint64_t
LocalRate::Sum(int64_t now_ms) const
{
	int64_t id = now_ms / RateCounter::kBucketMs;
	uint64_t sum = 0;
	for (size_t i = 0; i < counts_.size(); i++)
	{
		if (id - ids_[i].load(std::memory_order_acquire) < RateCounter::kBuckets)
			sum += counts_[i].load(std::memory_order_relaxed);
	}
	return sum;
}

} // namespace rt::fanout
