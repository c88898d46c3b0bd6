/*
 * ring_reader.hpp: the sidecar's side of the shared-memory ring
 * (src/common/rt_ring.h): one thread that follows the ring file the database
 * writes and hands each decoded message to a sink (the Hub, in main.cpp) and
 * each row change to a change sink.
 *
 * Folder db/: the sidecar's view of the database host. This ring reader
 * (one thread per tenant), ring_change (change records decoded into views,
 * any thread) and db_health (the periodic database check; its own thread).
 *
 * Own thread. Start order does not matter: the reader waits for the file to
 * appear, reattaches when its slot was reclaimed, reopens the path when the
 * writer retires or re-creates the ring, and reports every gap it sees.
 */
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "db/ring_change.hpp"

struct RtRingRecordInfo; /* rt_ring_reader.h */

namespace rt::fanout
{

/* One RT_REC_MESSAGE record, decoded; views into the reader's buffer. */
struct RingMessage
{
	bool is_private = false;
	bool binary = false;
	uint64_t commit_lsn = 0;
	uint64_t commit_time_us = 0;
	std::string_view topic; /* sub_topic */
	std::string_view event;
	std::string_view id;
	std::string_view payload;
	uint64_t stored_at_us = 0; /* its realtime.messages row's inserted_at; 0: not stored */
};

/* Decode a MESSAGE record payload (layout in rt_ring.h); false if malformed. */
bool DecodeRingMessage(const void *payload, uint32_t len, RingMessage &out);

class RingReader
{
public:
	using Sink = std::function<void(const RingMessage &)>;
	/* the decoded record and its payload bytes (valid during the call) */
	using ChangeSink = std::function<void(const RingChange &, std::string_view)>;

	/* Row changes go to change_sink; without one they are counted and dropped. */
	RingReader(std::string path, Sink sink, ChangeSink change_sink = nullptr)
	    : path_(std::move(path)), sink_(std::move(sink)), change_sink_(std::move(change_sink))
	{
	}
	~RingReader();
	RingReader(const RingReader &) = delete;
	RingReader &operator=(const RingReader &) = delete;

	void Start();
	void Stop();

	/* Counters, readable from any thread. */
	uint64_t
	messages() const
	{
		return messages_.load(std::memory_order_relaxed);
	}
	uint64_t
	changes() const
	{
		return changes_.load(std::memory_order_relaxed);
	}
	uint64_t
	lost() const
	{
		return lost_.load(std::memory_order_relaxed);
	}
	/*
	 * Every transaction that committed before this WAL position has been
	 * handed to the sinks (0: none known yet). A subscription registered
	 * before the database's current WAL position was L sees all later
	 * changes once consumed_lsn() >= L.
	 */
	uint64_t
	consumed_lsn() const
	{
		return consumed_lsn_.load(std::memory_order_acquire);
	}
	/* Bytes the writer has published that this reader has not read yet. */
	uint64_t
	lag_bytes() const
	{
		return lag_bytes_.load(std::memory_order_relaxed);
	}
	bool
	attached() const
	{
		return attached_.load(std::memory_order_relaxed);
	}

private:
	void Run();
	void Deliver(const RtRingRecordInfo &info);
	void OnNotRead(int rc, const RtRingRecordInfo &info, uint64_t decoded, uint64_t now);
	void AdvanceConsumed(uint64_t lsn);
	bool OpenAndAttach();
	void Close();
	bool Sleep(int ms); /* false when asked to stop */

	std::string path_;
	Sink sink_;
	ChangeSink change_sink_;
	std::thread thread_;
	std::mutex mu_;
	std::condition_variable cv_;
	std::atomic<bool> stop_{false};
	std::atomic<uint64_t> messages_{0};
	std::atomic<uint64_t> changes_{0};
	std::atomic<uint64_t> consumed_lsn_{0};
	std::atomic<uint64_t> lost_{0};
	std::atomic<uint64_t> lag_bytes_{0};
	std::atomic<bool> attached_{false};

	/* reader-thread state */
	void *map_ = nullptr;
	size_t map_len_ = 0;
	struct State;
	State *state_ = nullptr;
};

} // namespace rt::fanout
