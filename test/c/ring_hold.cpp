/*
 * ring_hold.cpp: a ring reader that attaches and then does not read, for the
 * end-to-end test of realtime.max_lag_bytes (test/e2e/18_max_lag.test.mjs).
 *
 *   ring_hold RING_PATH
 *
 * It attaches to the ring at RING_PATH as a reader (at the latest position)
 * and prints one JSON line on stdout, {"ready": true, ...}. From then on it
 * keeps heartbeating, so the writer treats it as a live reader that must not
 * be overwritten, but reads nothing. On SIGUSR1 it reads everything available
 * (until the ring is empty) and prints one JSON line with what it read since
 * it attached: records read, records lost (the sequence gaps it saw, the sum
 * of RtRingRecordInfo.lost) and GAP records; then it holds again. SIGTERM or
 * SIGINT detaches and exits 0. Errors go to stderr, exit status 1.
 *
 * Only rt_ring.h's reader API: this is a test tool, not a second sidecar.
 * One thread: signals are blocked and taken with sigtimedwait, whose timeout
 * paces the heartbeats.
 */
#include "rt_ring_reader.h"
#include "base/clock.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace
{

/* Heartbeat period: well within the writer's 5 s reader timeout (ring_writer.cpp) */
constexpr int kBeatMs = 200;

using rt::fanout::NowMs;

/* What the reader saw since it attached */
struct Totals
{
	uint64_t read = 0;     /* records copied out (MESSAGE, CHANGE and GAP) */
	uint64_t lost = 0;     /* sum of info.lost: sequence numbers never seen */
	uint64_t gaps = 0;     /* GAP records */
	uint64_t skipped = 0;  /* records those GAP records announced */
	uint64_t messages = 0; /* MESSAGE records */
	uint64_t corrupt = 0;  /* RT_RING_CORRUPT results */
	uint64_t bytes = 0;    /* payload bytes copied out */
};

/* Read until nothing is left; returns the result that ended the drain */
int
Drain(RtRingReader *r, std::vector<uint8_t> &buf, Totals &t)
{
	uint64_t last_beat = NowMs();

	for (;;)
	{
		RtRingRecordInfo info{};
		int rc = RtRingReadNext(r, buf.data(), static_cast<uint32_t>(buf.size()), &info);
		uint64_t now = NowMs();

		/* a long drain must not look like a dead reader */
		if (now - last_beat >= kBeatMs)
		{
			RtRingReaderHeartbeat(r, now);
			last_beat = now;
		}
		if (rc == RT_RING_BUFFER_SMALL)
		{
			buf.resize(info.length);
			continue;
		}
		if (rc == RT_RING_CORRUPT)
		{
			t.corrupt++;
			continue;
		}
		if (rc != RT_RING_OK)
			return rc; /* EMPTY at the end; CLOSED, RESET or EVICTED are reported */
		t.read++;
		t.lost += info.lost;
		t.bytes += info.length;
		if (info.type == RT_REC_MESSAGE)
			t.messages++;
		else if (info.type == RT_REC_GAP)
		{
			RtRingGapPayload gap{};
			if (info.length >= sizeof(gap))
				std::memcpy(&gap, buf.data(), sizeof(gap));
			t.gaps++;
			t.skipped += gap.skipped;
		}
	}
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc != 2)
	{
		std::fprintf(stderr, "usage: %s RING_PATH\n", argv[0]);
		return 1;
	}
	const char *path = argv[1];

	/* blocked before anything else: the test may signal as soon as it sees "ready" */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
	{
		std::perror("sigprocmask");
		return 1;
	}

	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
	{
		std::fprintf(stderr, "ring_hold: open %s: %s\n", path, std::strerror(errno));
		return 1;
	}
	struct stat st
	{
	};
	if (fstat(fd, &st) != 0)
	{
		std::fprintf(stderr, "ring_hold: stat %s: %s\n", path, std::strerror(errno));
		close(fd);
		return 1;
	}
	size_t len = static_cast<size_t>(st.st_size);
	/* read-write: the reader's slot (position, heartbeat) lives in the file */
	void *map = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
	{
		std::fprintf(stderr, "ring_hold: mmap %s: %s\n", path, std::strerror(errno));
		return 1;
	}

	RtRingReader r;
	int rc = RtRingReaderOpen(&r, map, len);
	if (rc == RT_RING_OK)
		rc = RtRingReaderAttach(&r, static_cast<uint32_t>(getpid()), NowMs(), RT_RING_START_LATEST);
	if (rc != RT_RING_OK)
	{
		std::fprintf(stderr, "ring_hold: cannot attach to %s: %s\n", path, RtRingResultName(rc));
		munmap(map, len);
		return 1;
	}
	/* expected_seq 0 would mean a loss before the first read could not be counted */
	std::printf("{\"ready\": true, \"pid\": %d, \"slot\": %u, \"pos\": %llu, "
	            "\"expected_seq\": %llu, \"capacity\": %llu}\n",
	            static_cast<int>(getpid()), r.slot, static_cast<unsigned long long>(r.pos),
	            static_cast<unsigned long long>(r.expected_seq),
	            static_cast<unsigned long long>(r.capacity));
	std::fflush(stdout);

	std::vector<uint8_t> buf(1 << 20);
	Totals t;
	int status = 0;
	for (;;)
	{
		timespec wait{0, kBeatMs * 1000000L};
		int sig = sigtimedwait(&set, nullptr, &wait);

		RtRingReaderHeartbeat(&r, NowMs());
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGUSR1)
		{
			int end = Drain(&r, buf, t);

			std::printf(
			    "{\"read\": %llu, \"lost\": %llu, \"gaps\": %llu, \"skipped\": %llu, "
			    "\"messages\": %llu, \"bytes\": %llu, \"corrupt\": %llu, \"pos\": %llu, "
			    "\"end\": \"%s\"}\n",
			    static_cast<unsigned long long>(t.read), static_cast<unsigned long long>(t.lost),
			    static_cast<unsigned long long>(t.gaps), static_cast<unsigned long long>(t.skipped),
			    static_cast<unsigned long long>(t.messages),
			    static_cast<unsigned long long>(t.bytes),
			    static_cast<unsigned long long>(t.corrupt), static_cast<unsigned long long>(r.pos),
			    RtRingResultName(end));
			std::fflush(stdout);
			if (end != RT_RING_EMPTY)
			{
				status = 1; /* closed, reset or evicted: no longer a reader to hold with */
				break;
			}
			continue;
		}
		if (sig < 0 && errno != EAGAIN && errno != EINTR)
		{
			std::perror("sigtimedwait");
			status = 1;
			break;
		}
		if (!RtRingReaderOwnsSlot(&r))
		{
			std::fprintf(stderr, "ring_hold: the writer reclaimed the slot\n");
			status = 1;
			break;
		}
	}
	RtRingReaderDetach(&r);
	munmap(map, len);
	return status;
}
