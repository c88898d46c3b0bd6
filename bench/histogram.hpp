/*
 * histogram.hpp: a fixed-size log-linear histogram of latencies in
 * nanoseconds for bench/load_client.cpp. One per receiver thread, merged by
 * the main thread after joining them; not thread-safe.
 */
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace rt::bench
{

/*
 * Log-linear latency histogram: exact below 256 ns, then 128 sub-buckets per
 * power of two (relative error under 0.8 %), so ten million samples cost
 * one increment each and a few kilobytes.
 */
class Histogram
{
public:
	void
	Add(int64_t ns)
	{
		counts_[Index(ns < 0 ? 0 : uint64_t(ns))]++;
		total_++;
		max_ = std::max(max_, ns);
	}
	void
	Merge(const Histogram &o)
	{
		for (size_t i = 0; i < counts_.size(); i++)
			counts_[i] += o.counts_[i];
		total_ += o.total_;
		max_ = std::max(max_, o.max_);
	}
	/* Value (ns) below which a fraction q of the samples lie. */
	double
	Quantile(double q) const
	{
		if (total_ == 0)
			return 0;
		uint64_t rank = uint64_t(std::ceil(q * double(total_)));
		rank = std::max<uint64_t>(rank, 1);
		uint64_t seen = 0;
		for (size_t i = 0; i < counts_.size(); i++)
		{
			seen += counts_[i];
			if (seen >= rank)
				return Middle(i);
		}
		return double(max_);
	}
	int64_t
	Max() const
	{
		return max_;
	}
	uint64_t
	Total() const
	{
		return total_;
	}

private:
	static constexpr int kSubBits = 7;
	static constexpr size_t kLinear = size_t(1) << (kSubBits + 1); /* 256 exact buckets */
	static constexpr size_t kBuckets = kLinear + (64 - kSubBits) * (size_t(1) << kSubBits);

	static size_t
	Index(uint64_t v)
	{
		if (v < kLinear)
			return size_t(v);
		int msb = 63 - __builtin_clzll(v);
		int shift = msb - kSubBits; /* v >> shift lies in [128, 255] */
		return kLinear + size_t(shift - 1) * (size_t(1) << kSubBits) +
		       size_t((v >> shift) - (uint64_t(1) << kSubBits));
	}
	static double
	Middle(size_t i)
	{
		if (i < kLinear)
			return double(i);
		size_t k = i - kLinear;
		int shift = int(k >> kSubBits) + 1;
		uint64_t low = ((k & ((size_t(1) << kSubBits) - 1)) + (uint64_t(1) << kSubBits)) << shift;
		return double(low) + double(uint64_t(1) << shift) / 2;
	}

	std::array<uint64_t, kBuckets> counts_{};
	uint64_t total_ = 0;
	int64_t max_ = 0;
};
} // namespace rt::bench
