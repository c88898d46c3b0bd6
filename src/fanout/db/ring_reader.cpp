/*
 * ring_reader.cpp: follows the ring file on its own thread (see ring_reader.hpp).
 *
 * The reader copies each record out of shared memory before looking at it
 * (rt_ring.h validates positions and lengths), decodes MESSAGE and CHANGE
 * records and calls their sinks; it sleeps on the ring's futex when there is nothing to read,
 * with a timeout so that heartbeats and Stop() are never late.
 */
#include "db/ring_reader.hpp"

#include "base/log.hpp"
#include "rt_ring_fields.h"
#include "rt_ring_reader.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <linux/futex.h>
#include <memory>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace rt::fanout
{

namespace
{

constexpr int kRetryMs = 500;           /* file missing or not initialised yet */
constexpr int kWaitMs = 200;            /* longest futex sleep */
constexpr uint64_t kHeartbeatMs = 1000; /* well within the writer's reader timeout */

uint64_t
MonotonicMs()
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

/* FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the writer is another process. */
void
FutexWait(uint32_t *word, uint32_t val, int ms)
{
	timespec ts{ms / 1000, (ms % 1000) * 1000000L};
	syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, nullptr, 0);
}

std::string_view
View(const uint8_t *p, uint32_t n)
{
	return std::string_view(reinterpret_cast<const char *>(p), n);
}

} // namespace

struct RingReader::State
{
	RtRingReader r;
	std::vector<uint8_t> buf = std::vector<uint8_t>(64 * 1024);
	RingChange change; /* reused: its column vector keeps its capacity */
};

bool
DecodeRingMessage(const void *payload, uint32_t len, RingMessage &out)
{
	RtFieldReader f;
	RtFieldReaderInit(&f, payload, len);
	uint32_t flags = 0;
	const uint8_t *p[4] = {};
	uint32_t n[4] = {};
	RtFieldGetU32(&f, &flags);
	RtFieldGetU64(&f, &out.commit_lsn);
	RtFieldGetU64(&f, &out.commit_time_us);
	for (int i = 0; i < 4; i++)
		RtFieldGetBytes(&f, &p[i], &n[i]);
	if (f.failed)
		return false;
	/* absent from records of extensions before 0.2.0 */
	out.stored_at_us = 0;
	if (f.pos + 8 <= f.len)
		RtFieldGetU64(&f, &out.stored_at_us);
	out.is_private = (flags & RT_MSG_PRIVATE) != 0;
	out.binary = (flags & RT_MSG_BINARY) != 0;
	out.topic = View(p[0], n[0]);
	out.event = View(p[1], n[1]);
	out.id = View(p[2], n[2]);
	out.payload = View(p[3], n[3]);
	return !out.topic.empty() && !out.event.empty();
}

RingReader::~RingReader() { Stop(); }

/* Commits before lsn are all delivered (records come in commit order) */
void
RingReader::AdvanceConsumed(uint64_t lsn)
{
	if (lsn > consumed_lsn_.load(std::memory_order_relaxed))
		consumed_lsn_.store(lsn, std::memory_order_release);
}

void
RingReader::Start()
{
	thread_ = std::thread(
	    [this]()
	    {
		    try
		    {
			    Run();
		    }
		    catch (const std::exception &e)
		    {
			    Log(LogLevel::kError, "ring", "reader crashed: %s", e.what());
			    std::abort();
		    }
	    });
}

void
RingReader::Stop()
{
	stop_.store(true, std::memory_order_release);
	cv_.notify_all();
	if (thread_.joinable())
		thread_.join();
}

bool
RingReader::Sleep(int ms)
{
	std::unique_lock<std::mutex> lock(mu_);
	return !cv_.wait_for(lock, std::chrono::milliseconds(ms),
	                     [this] { return stop_.load(std::memory_order_acquire); });
}

bool
RingReader::OpenAndAttach()
{
	int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st
	{
	};
	if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(RT_RING_HEADER_SIZE))
	{
		close(fd);
		return false;
	}
	size_t len = static_cast<size_t>(st.st_size);
	/* readers write their own slot (position, heartbeat): read-write mapping */
	void *map = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return false;
	auto state = std::make_unique<State>();
	int rc = RtRingReaderOpen(&state->r, map, len);
	if (rc == RT_RING_OK)
		rc = RtRingReaderAttach(&state->r, static_cast<uint32_t>(getpid()), MonotonicMs(),
		                        RT_RING_START_LATEST);
	if (rc != RT_RING_OK)
	{
		if (rc != RT_RING_BAD_MAGIC) /* not initialised yet is normal at start */
			Log(LogLevel::kWarning, "ring", "cannot attach to %s: %s", path_.c_str(),
			    RtRingResultName(rc));
		munmap(map, len);
		return false;
	}
	map_ = map;
	map_len_ = len;
	state_ = state.release();
	attached_.store(true, std::memory_order_relaxed);
	Log(LogLevel::kInfo, "ring", "attached to %s slot=%u", path_.c_str(), state_->r.slot);
	return true;
}

void
RingReader::Close()
{
	if (state_ != nullptr)
	{
		RtRingReaderDetach(&state_->r);
		std::unique_ptr<State> gone(state_);
		state_ = nullptr;
	}
	if (map_ != nullptr)
		munmap(map_, map_len_);
	map_ = nullptr;
	attached_.store(false, std::memory_order_relaxed);
}

/* A record was read: count what was lost before it and hand it to its sink. */
void
RingReader::Deliver(const RtRingRecordInfo &info)
{
	if (info.lost > 0)
	{
		lost_.fetch_add(info.lost, std::memory_order_relaxed);
		Log(LogLevel::kWarning, "ring", "gap: %llu records lost before seq %llu",
		    static_cast<unsigned long long>(info.lost), static_cast<unsigned long long>(info.seq));
	}
	if (info.type == RT_REC_MESSAGE)
	{
		RingMessage m;
		if (DecodeRingMessage(state_->buf.data(), info.length, m))
		{
			messages_.fetch_add(1, std::memory_order_relaxed);
			AdvanceConsumed(m.commit_lsn);
			sink_(m);
		}
		else
			Log(LogLevel::kWarning, "ring", "malformed message record seq=%llu",
			    static_cast<unsigned long long>(info.seq));
	}
	else if (info.type == RT_REC_CHANGE)
	{
		if (DecodeRingChange(state_->buf.data(), info.length, state_->change))
		{
			changes_.fetch_add(1, std::memory_order_relaxed);
			AdvanceConsumed(state_->change.commit_lsn);
			if (change_sink_)
				change_sink_(state_->change,
				             std::string_view(reinterpret_cast<const char *>(state_->buf.data()),
				                              info.length));
		}
		else
			Log(LogLevel::kWarning, "ring", "malformed change record seq=%llu",
			    static_cast<unsigned long long>(info.seq));
	}
	/* GAP: counted above */
}

/* The read returned no record: wait, grow the buffer, reattach or reopen. */
void
RingReader::OnNotRead(int rc, const RtRingRecordInfo &info, uint64_t decoded, uint64_t now)
{
	RtRingReader &r = state_->r;
	switch (rc)
	{
	case RT_RING_EMPTY:
	{
		uint32_t val = 0;
		AdvanceConsumed(decoded);
		if (RtRingReaderPrepareWait(&r, &val))
		{
			FutexWait(RtRingFutexWord(r.hdr), val, kWaitMs);
			RtRingReaderFinishWait(&r);
		}
		break;
	}
	case RT_RING_BUFFER_SMALL:
		state_->buf.resize(info.length);
		break;
	case RT_RING_EVICTED:
		/* the writer thought us dead: take a slot again where we were */
		Log(LogLevel::kWarning, "ring", "slot reclaimed by the writer: reattaching");
		if (RtRingReaderAttach(&r, static_cast<uint32_t>(getpid()), now, RT_RING_START_RESUME) !=
		    RT_RING_OK)
			Close();
		break;
	case RT_RING_CORRUPT:
		Log(LogLevel::kError, "ring", "corrupt record skipped in %s", path_.c_str());
		break;
	default: /* CLOSED, RESET or anything unexpected: open the path again */
		Log(LogLevel::kInfo, "ring", "ring %s: %s; reopening", path_.c_str(), RtRingResultName(rc));
		Close();
		break;
	}
}

void
RingReader::Run()
{
	uint64_t last_beat = 0;
	bool logged_missing = false;
	while (!stop_.load(std::memory_order_acquire))
	{
		if (state_ == nullptr)
		{
			if (!OpenAndAttach())
			{
				if (!logged_missing)
					Log(LogLevel::kInfo, "ring", "waiting for the ring at %s", path_.c_str());
				logged_missing = true;
				if (!Sleep(kRetryMs))
					break;
				continue;
			}
			logged_missing = false;
		}
		RtRingReader &r = state_->r;
		uint64_t now = MonotonicMs();
		if (now - last_beat >= kHeartbeatMs)
		{
			RtRingReaderHeartbeat(&r, now);
			last_beat = now;
		}
		RtRingRecordInfo info{};
		/* before the read: an EMPTY result then means all of it was read */
		uint64_t decoded = RtRingDecodedLsn(r.hdr);
		int rc = RtRingReadNext(&r, state_->buf.data(), static_cast<uint32_t>(state_->buf.size()),
		                        &info);
		uint64_t written = RT_LOAD_ACQUIRE(&r.hdr->write_pos);
		lag_bytes_.store(written > r.pos ? written - r.pos : 0, std::memory_order_relaxed);
		if (rc == RT_RING_OK)
			Deliver(info);
		else
			OnNotRead(rc, info, decoded, now);
	}
	Close();
}

} // namespace rt::fanout
