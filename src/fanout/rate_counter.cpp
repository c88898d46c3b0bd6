/*
 * rate_counter.cpp: the sliding average of rate_counter.hpp.
 */
#include "rate_counter.hpp"

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

} // namespace rt::fanout
