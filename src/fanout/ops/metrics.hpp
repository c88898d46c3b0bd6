/*
 * metrics.hpp: the sidecar's counters and their Prometheus text (GET /metrics).
 *
 * Folder ops/: what an operator sees: these metrics and diagnostics (the
 * --check run, main thread).
 *
 * Hot-path counters live per shard and are written by that shard's thread
 * only (ShardMetrics): a relaxed load and store, no locked instruction, no
 * shared cache line between shards. The authorizer's are written by its
 * thread only (its answers). RenderMetrics reads everything with relaxed
 * loads: a scrape sees each counter whole, not all of them at one instant.
 */
#pragma once

#include "channel/loss_notice.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace rt::fanout
{

class Hub;

/* A counter or gauge with one writing thread. */
class Counter
{
public:
	void
	Add(uint64_t n = 1)
	{
		v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
	}
	void
	Sub(uint64_t n = 1)
	{
		v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
	}
	uint64_t
	Get() const
	{
		return v_.load(std::memory_order_relaxed);
	}

private:
	std::atomic<uint64_t> v_{0};
};

/* What a message on a socket belongs to. */
enum class Primitive : uint8_t
{
	kBroadcast,
	kPresence,
	kPostgresChanges,
	kControl, /* joins, leaves, replies, heartbeats, system messages, access tokens */
	kCount
};

/* Why a message did not reach a client. */
enum class DropReason : uint8_t
{
	kSlowClient,      /* its send queue was full */
	kPayloadTooLarge, /* over the payload limit (a broadcast push) */
	kNotAuthorized,   /* a private channel without the write right */
	kHeldOverflow,    /* too much waiting behind an authorization check */
	kRateLimited,     /* the tenant's events average is over its limit */
	kMalformed,       /* a frame the codec refused (invalid JSON or Unicode, bad layout) */
	kUnknownEvent,    /* an event no part of the channel handles */
	kNotStored,       /* a broadcast with persist that was not stored (refused or failed) */
	kCount
};

constexpr size_t kPrimitives = static_cast<size_t>(Primitive::kCount);
constexpr size_t kDropReasons = static_cast<size_t>(DropReason::kCount);

struct ShardMetrics
{
	Counter connections; /* gauge */
	Counter connections_total;
	Counter channels; /* gauge: joined channels */
	Counter joins_ok;
	Counter joins_refused;
	std::array<Counter, kPrimitives> in_messages, in_bytes, out_messages, out_bytes;
	std::array<Counter, kDropReasons> dropped;
	/* messages a channel missed and was told of (loss_notice.hpp), by part and reason */
	std::array<std::array<Counter, kLossReasons>, kLossParts> lost;

	void
	In(Primitive p, uint64_t bytes)
	{
		in_messages[static_cast<size_t>(p)].Add();
		in_bytes[static_cast<size_t>(p)].Add(bytes);
	}
	void
	Out(Primitive p, uint64_t messages, uint64_t bytes)
	{
		out_messages[static_cast<size_t>(p)].Add(messages);
		out_bytes[static_cast<size_t>(p)].Add(bytes);
	}
	void
	Drop(DropReason r, uint64_t n = 1)
	{
		dropped[static_cast<size_t>(r)].Add(n);
	}
	void
	Lost(LossPart p, LossReason r, uint64_t n)
	{
		lost[static_cast<size_t>(p)][static_cast<size_t>(r)].Add(n);
	}
};

/* Authorization checks: counted when submitted (any thread) and answered (its thread). */
struct AuthMetrics
{
	static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	                                                    0.1,   0.25,   0.5,   1,    2.5,   5};
	std::atomic<uint64_t> submitted{0};               /* many threads: fetch_add */
	std::array<Counter, 6> answered;                  /* by AuthResult::Status */
	std::array<Counter, kBuckets.size() + 1> latency; /* per bucket, the last is +Inf */
	Counter latency_sum_us;

	void
	Submitted()
	{
		submitted.fetch_add(1, std::memory_order_relaxed);
	}
	/* On the authorizer's thread, with the answer's status and its wait since Submitted. */
	void Answered(int status, int64_t latency_us);
};

/* Every metric of hub (its shards, ring, engines, authorizer) in Prometheus text format 0.0.4. */
std::string RenderMetrics(const Hub &hub);

} // namespace rt::fanout
