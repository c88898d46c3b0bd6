/*
 * test_ring.cpp: unit tests of the shared-memory ring format (src/common/rt_ring.h).
 *
 * Single-threaded CMocka program; some tests fork a reader process that shares a
 * MAP_SHARED mapping of a temporary file with the writer (this process) and sleeps
 * on the ring's futex, as realtime-fanout will. The child never calls CMocka: it
 * reports through its exit status. Single-process tests map the ring into a buffer of
 * exactly its size, so AddressSanitizer (make DEBUG=1) catches any read past it.
 */
#include "rt_ring_fields.h"
#include "rt_ring_reader.h"
#include "rt_ring_writer.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

namespace
{

constexpr uint64_t kCap = 4096;      /* small rings wrap often */
constexpr uint64_t kTimeoutMs = 500; /* reader heartbeat timeout given to the writer */
constexpr uint64_t kT0 = 1000000;    /* a fake CLOCK_MONOTONIC ms for pure tests */
constexpr uint32_t kPid = 4242;

uint64_t
NowMs()
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

/* A ring in private memory of exactly its file size (ASan sees any overrun). */
struct HeapRing
{
	explicit HeapRing(uint64_t capacity = kCap) : size(RtRingFileSize(capacity))
	{
		base = std::aligned_alloc(64, size);
		std::memset(base, 0, size);
	}
	~HeapRing() { std::free(base); }
	HeapRing(const HeapRing &) = delete;
	HeapRing &operator=(const HeapRing &) = delete;
	RtRingHeader *
	hdr() const
	{
		return static_cast<RtRingHeader *>(base);
	}

	uint64_t size;
	void *base;
};

/* Writer w on ring (capacity kCap, one reader slot, as kPid at kT0) and reader
 * r attached to it as kPid at the latest record. */
void
StartWriterAndReader(const HeapRing &ring, RtRingWriter *w, RtRingReader *r)
{
	assert_int_equal(RtRingWriterInit(w, ring.base, ring.size, kCap, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_OK);
	assert_int_equal(RtRingReaderOpen(r, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(r, kPid, kT0, RT_RING_START_LATEST), RT_RING_OK);
}

/* A ring in a MAP_SHARED mapping of an (already unlinked) temporary file. */
struct SharedRing
{
	explicit SharedRing(uint64_t capacity) : size(RtRingFileSize(capacity))
	{
		char path[] = "/tmp/test_ring.XXXXXX";
		int fd = mkstemp(path);

		if (fd < 0)
			return;
		unlink(path);
		if (ftruncate(fd, static_cast<off_t>(size)) == 0)
		{
			void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED)
				base = p;
		}
		close(fd);
	}
	~SharedRing()
	{
		if (base != nullptr)
			munmap(base, size);
	}
	SharedRing(const SharedRing &) = delete;
	SharedRing &operator=(const SharedRing &) = delete;
	RtRingHeader *
	hdr() const
	{
		return static_cast<RtRingHeader *>(base);
	}

	uint64_t size;
	void *base = nullptr;
};

/* Cross-process futex calls: no FUTEX_PRIVATE_FLAG */
long
FutexWait(uint32_t *word, uint32_t val, int timeout_ms)
{
	struct timespec ts;

	ts.tv_sec = timeout_ms / 1000;
	ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
	return syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, nullptr, 0);
}

void
FutexWake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

/* Notify after publishing; wake only if someone may sleep */
void
Publish(RtRingWriter *w)
{
	if (RtRingWriterNotify(w) != 0)
		FutexWake(RtRingFutexWord(w->hdr));
}

/* Payload for sequence number seq: its length varies (0 included) and its bytes too */
uint32_t
LenFor(uint64_t seq, uint32_t max_len)
{
	uint64_t x = seq * 0x9E3779B97F4A7C15ull;
	uint32_t len = static_cast<uint32_t>((x >> 40) % (max_len + 1));

	if (seq % 97 == 0)
		return max_len;
	if (seq % 89 == 0)
		return 0;
	return len;
}

uint8_t
ByteFor(uint64_t seq, uint32_t i)
{
	return static_cast<uint8_t>(seq * 131 + i * 7 + (i >> 8) + (seq >> 8));
}

void
FillPayload(std::vector<uint8_t> &buf, uint64_t seq, uint32_t len)
{
	buf.resize(len);
	for (uint32_t i = 0; i < len; i++)
		buf[i] = ByteFor(seq, i);
}

bool
PayloadOk(const uint8_t *buf, uint64_t seq, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		if (buf[i] != ByteFor(seq, i))
			return false;
	return true;
}

/* Append the payload of `seq` (the writer's next seq), asserting success */
void
AppendSeq(RtRingWriter *w, uint32_t len, uint64_t now, int force)
{
	std::vector<uint8_t> p;

	FillPayload(p, w->next_seq, len);
	assert_int_equal(RtRingAppend(w, RT_REC_MESSAGE, 0, p.data(), len, now, force), RT_RING_OK);
}

/* Read one record and check it is seq `seq` with its expected payload of `len` bytes */
void
ExpectRecord(RtRingReader *r, uint64_t seq, uint32_t len, uint64_t lost)
{
	std::vector<uint8_t> buf(kCap);
	RtRingRecordInfo info;

	assert_int_equal(RtRingReadNext(r, buf.data(), static_cast<uint32_t>(buf.size()), &info),
	                 RT_RING_OK);
	assert_int_equal(info.seq, seq);
	assert_int_equal(info.length, len);
	assert_int_equal(info.lost, lost);
	assert_true(PayloadOk(buf.data(), seq, len));
}

int
ReadOne(RtRingReader *r, RtRingRecordInfo *info)
{
	static uint8_t buf[kCap];

	return RtRingReadNext(r, buf, sizeof(buf), info);
}

/* Wait up to 5 s for child pid; kill it if it hangs. Returns its exit status or -1. */
int
WaitChild(pid_t pid)
{
	for (int i = 0; i < 5000; i++)
	{
		int status = 0;
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, nullptr, 0);
	return -1;
}

/* Parent side: wait until `n` readers are live (the forked child attached) */
void
WaitLiveReaders(RtRingWriter *w, uint32_t n)
{
	uint32_t live = 0;

	for (int i = 0; i < 5000 && live < n; i++)
	{
		RtRingWriterOldestNeeded(w, NowMs(), &live);
		if (live < n)
			usleep(1000);
	}
	assert_int_equal(live, n);
}

/* --------------------------------------------------------------------- */

void
TestLayoutAndInit(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingHeader *h = ring.hdr();

	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, kCap, 77, kPid, kT0, kTimeoutMs),
	                 RT_RING_OK);
	assert_int_equal(h->magic, RT_RING_MAGIC);
	assert_int_equal(h->version_major, RT_RING_VERSION_MAJOR);
	assert_int_equal(h->version_minor, RT_RING_VERSION_MINOR);
	assert_int_equal(h->header_size, 4096);
	assert_int_equal(h->slot_count, RT_RING_SLOTS);
	assert_int_equal(h->capacity, kCap);
	assert_int_equal(h->epoch, 77);
	assert_int_equal(h->write_pos, 0);
	assert_int_equal(h->tail_pos, 0);
	assert_int_equal(h->next_seq, 1);
	assert_int_equal(h->write_seq, 1);
	assert_int_equal(h->writer_pid, kPid);
	assert_int_equal(RtRingMaxPayload(kCap), 1008);
	assert_int_equal(RtRingRecordSize(0), 16);
	assert_int_equal(RtRingRecordSize(1), 24);
	assert_int_equal(RtRingRecordSize(8), 24);

	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(r.capacity, kCap);
	assert_int_equal(RtRingReaderAttach(&r, kPid + 1, kT0, RT_RING_START_LATEST), RT_RING_OK);
	RtRingRecordInfo info;
	assert_int_equal(ReadOne(&r, &info), RT_RING_EMPTY);

	/* init refuses what it cannot lay out */
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, 3000, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_BAD_LAYOUT);
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, 2048, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_BAD_LAYOUT);
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size - 8, kCap, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_BAD_LAYOUT);
	assert_int_equal(RtRingWriterInit(&w, static_cast<uint8_t *>(ring.base) + 8, ring.size - 8,
	                                  kCap, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_BAD_ARGUMENT);
	assert_string_equal(RtRingResultName(RT_RING_FULL), "full");
}

void
TestVersionAndMagicRefused(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingHeader *h = ring.hdr();

	/* not initialised yet: zero magic */
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_MAGIC);
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, kCap, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_OK);

	h->magic = 0x12345678;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_MAGIC);
	h->magic = RT_RING_MAGIC;

	h->version_major = 2;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_VERSION);
	h->version_major = 0;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_VERSION);
	h->version_major = RT_RING_VERSION_MAJOR;

	/* a later minor is fine: it only adds what a 1.0 reader may ignore */
	h->version_minor = 9;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_OK);
	h->version_minor = RT_RING_VERSION_MINOR;

	h->header_size = 2048;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_LAYOUT);
	h->header_size = 4096 + 8;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_LAYOUT);
	h->header_size = 8192; /* plausible, but the data area no longer fits the mapping */
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_LAYOUT);
	h->header_size = RT_RING_HEADER_SIZE;

	h->slot_count = 8;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_LAYOUT);
	h->slot_count = RT_RING_SLOTS;

	h->capacity = kCap + 8;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_LAYOUT);
	h->capacity = kCap * 2; /* bigger than the mapping */
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_LAYOUT);
	h->capacity = UINT64_C(1) << 63;
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_BAD_LAYOUT);
	h->capacity = kCap;

	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size - 1), RT_RING_BAD_LAYOUT);
	assert_int_equal(RtRingReaderOpen(&r, ring.base, 100), RT_RING_BAD_LAYOUT);
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_OK);
}

void
TestBasicReadWrite(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingRecordInfo info;
	uint8_t small[4];
	uint8_t buf[64];

	StartWriterAndReader(ring, &w, &r);

	assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 5, "hello", 5, kT0, 0), RT_RING_OK);
	assert_int_equal(RtRingAppend(&w, RT_REC_CHANGE, 0, "", 0, kT0, 0), RT_RING_OK);
	assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, "0123456789", 10, kT0, 0), RT_RING_OK);
	assert_int_equal(w.hdr->write_pos, 24 + 16 + 32);
	assert_int_equal(w.hdr->records_written, 3);
	/* writers cannot append PAD or GAP directly, nor unknown types */
	assert_int_equal(RtRingAppend(&w, RT_REC_PAD, 0, "", 0, kT0, 0), RT_RING_BAD_ARGUMENT);
	assert_int_equal(RtRingAppend(&w, RT_REC_GAP, 0, "", 0, kT0, 0), RT_RING_BAD_ARGUMENT);
	assert_int_equal(RtRingAppend(&w, 9, 0, "", 0, kT0, 0), RT_RING_BAD_ARGUMENT);

	assert_int_equal(RtRingReadNext(&r, buf, sizeof(buf), &info), RT_RING_OK);
	assert_int_equal(info.seq, 1);
	assert_int_equal(info.type, RT_REC_MESSAGE);
	assert_int_equal(info.flags, 5);
	assert_int_equal(info.length, 5);
	assert_int_equal(info.lost, 0);
	assert_memory_equal(buf, "hello", 5);

	assert_int_equal(RtRingReadNext(&r, buf, sizeof(buf), &info), RT_RING_OK);
	assert_int_equal(info.seq, 2);
	assert_int_equal(info.type, RT_REC_CHANGE);
	assert_int_equal(info.length, 0);

	/* too small a buffer: the size is reported and nothing is consumed */
	assert_int_equal(RtRingReadNext(&r, small, sizeof(small), &info), RT_RING_BUFFER_SMALL);
	assert_int_equal(info.length, 10);
	assert_int_equal(info.seq, 3);
	assert_int_equal(RtRingReadNext(&r, buf, sizeof(buf), &info), RT_RING_OK);
	assert_int_equal(info.seq, 3);
	assert_memory_equal(buf, "0123456789", 10);

	assert_int_equal(RtRingReadNext(&r, buf, sizeof(buf), &info), RT_RING_EMPTY);
	assert_int_equal(w.hdr->slots[r.slot].read_pos, w.write_pos);
	assert_int_equal(w.hdr->slots[r.slot].records_read, 3);

	/* too large: a distinct, counted result; the largest allowed one goes through */
	std::vector<uint8_t> big(RtRingMaxPayload(kCap) + 1, 0xab);
	assert_int_equal(
	    RtRingAppend(&w, RT_REC_MESSAGE, 0, big.data(), static_cast<uint32_t>(big.size()), kT0, 0),
	    RT_RING_TOO_LARGE);
	assert_int_equal(w.hdr->records_too_large, 1);
	assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, big.data(),
	                              static_cast<uint32_t>(big.size() - 1), kT0, 0),
	                 RT_RING_OK);
	std::vector<uint8_t> out(kCap);
	assert_int_equal(RtRingReadNext(&r, out.data(), kCap, &info), RT_RING_OK);
	assert_int_equal(info.length, RtRingMaxPayload(kCap));
	assert_int_equal(info.lost, 0);
	assert_memory_equal(out.data(), big.data(), info.length);
	RtRingReaderDetach(&r);
	assert_int_equal(RT_SLOT_STATE(w.hdr->slots[0].owner), RT_SLOT_FREE);
}

/* Records that end exactly at the end, leave 8 bytes (implicit padding) or need a PAD */
void
TestPaddingAtTheEnd(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;

	StartWriterAndReader(ring, &w, &r);

	/* 7 records of 584 bytes end at 4088: 8 bytes left, less than a record header */
	for (int i = 0; i < 7; i++)
		AppendSeq(&w, 568, kT0, 0);
	assert_int_equal(w.write_pos, 4088);
	for (uint64_t s = 1; s <= 7; s++)
		ExpectRecord(&r, s, 568, 0);
	AppendSeq(&w, 100, kT0, 0); /* starts at offset 0 of the next lap */
	assert_int_equal(w.write_pos, 4096 + 120);
	ExpectRecord(&r, 8, 100, 0);

	/* fill to 64 bytes before the end, then a record of 72 needs a PAD record of 64 */
	while (w.write_pos % kCap + 1008 + 16 <= kCap - 64)
		AppendSeq(&w, 1008, kT0, 0);
	while (w.write_pos % kCap != kCap - 64)
		AppendSeq(&w, static_cast<uint32_t>(kCap - 64 - w.write_pos % kCap - 16), kT0, 0);
	uint64_t before = w.write_pos;
	AppendSeq(&w, 56, kT0, 0);
	assert_int_equal(w.write_pos, before + 64 + 72);
	RtRingRecordHeader pad;
	std::memcpy(&pad, w.data + (before & w.mask), sizeof(pad));
	assert_int_equal(pad.type, RT_REC_PAD);
	assert_int_equal(pad.length, 48);
	assert_int_equal(pad.seq, 0);

	/* the reader sees every record and nothing of the PAD */
	RtRingRecordInfo info;
	uint64_t last = 0;
	int rc;
	while ((rc = ReadOne(&r, &info)) == RT_RING_OK)
	{
		assert_int_equal(info.lost, 0);
		assert_int_not_equal(info.type, RT_REC_PAD);
		last = info.seq;
	}
	assert_int_equal(rc, RT_RING_EMPTY);
	assert_int_equal(last, w.next_seq - 1);
}

/* Same process, interleaved: many laps with varied sizes, every byte checked */
void
TestWrapManyTimes(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	std::vector<uint8_t> payload;
	std::vector<uint8_t> buf(kCap);
	RtRingRecordInfo info;
	const uint32_t max_len = static_cast<uint32_t>(RtRingMaxPayload(kCap));
	uint64_t read = 0;

	StartWriterAndReader(ring, &w, &r);

	for (uint64_t seq = 1; seq <= 20000; seq++)
	{
		uint32_t len = LenFor(seq, max_len);
		int rc;

		FillPayload(payload, seq, len);
		while ((rc = RtRingAppend(&w, RT_REC_MESSAGE, 0, payload.data(), len, kT0, 0)) ==
		       RT_RING_FULL)
		{
			/* drain a few to make room, as the sidecar would */
			for (int k = 0; k < 3; k++)
			{
				assert_int_equal(RtRingReadNext(&r, buf.data(), kCap, &info), RT_RING_OK);
				read++;
				assert_int_equal(info.seq, read);
				assert_int_equal(info.lost, 0);
				assert_int_equal(info.length, LenFor(read, max_len));
				assert_true(PayloadOk(buf.data(), read, info.length));
			}
		}
		assert_int_equal(rc, RT_RING_OK);
	}
	while (RtRingReadNext(&r, buf.data(), kCap, &info) == RT_RING_OK)
	{
		read++;
		assert_int_equal(info.seq, read);
		assert_int_equal(info.lost, 0);
		assert_true(PayloadOk(buf.data(), read, info.length));
	}
	assert_int_equal(read, 20000);
	assert_true(w.write_pos > 500 * kCap); /* hundreds of laps */
	assert_int_equal(w.hdr->records_dropped, 0);
}

/* Child side of the two-process wrap test: returns its exit status */
int
ChildReader(void *base, uint64_t size, uint64_t total, uint32_t max_len, bool allow_loss)
{
	RtRingReader r;
	RtRingRecordInfo info;
	std::vector<uint8_t> buf(max_len);
	uint64_t received = 0, lost = 0, last = 0;

	if (RtRingReaderOpen(&r, base, size) != RT_RING_OK)
		return 10;
	if (RtRingReaderAttach(&r, static_cast<uint32_t>(getpid()), NowMs(), RT_RING_START_LATEST) !=
	    RT_RING_OK)
		return 11;
	while (last < total)
	{
		int rc = RtRingReadNext(&r, buf.data(), max_len, &info);

		if (rc == RT_RING_EMPTY)
		{
			uint32_t val;

			RtRingReaderHeartbeat(&r, NowMs());
			if (RtRingReaderPrepareWait(&r, &val))
			{
				FutexWait(RtRingFutexWord(r.hdr), val, 100);
				RtRingReaderFinishWait(&r);
			}
			continue;
		}
		if (rc != RT_RING_OK)
			return 20 + rc;
		if (info.seq <= last || info.seq > total)
			return 13;
		if (info.length != LenFor(info.seq, max_len) ||
		    !PayloadOk(buf.data(), info.seq, info.length))
			return 14; /* a torn or wrong copy */
		if (!allow_loss && info.lost != 0)
			return 15;
		if (last != 0 && info.seq - last - 1 != info.lost)
			return 16;
		lost += info.lost;
		received++;
		last = info.seq;
		if (allow_loss && (received & 255) == 0)
			usleep(200); /* now and then a slow reader, surely lapped by a forcing writer */
	}
	/* attached before the first append, so the baseline is seq 1 even if lapped at once */
	if (received + lost != total)
		return 17;
	if (r.hdr->slots[r.slot].records_lost != lost)
		return 18;
	RtRingReaderDetach(&r);
	return 0;
}

/* Writer here, reader in a forked process, futex wake-ups between them */
void
TestTwoProcessWrap(void **)
{
	const uint64_t cap = 64 * 1024;
	const uint64_t total = 20000;
	const uint32_t max_len = 2000;
	SharedRing ring(cap);
	RtRingWriter w;
	std::vector<uint8_t> payload;
	auto start = std::chrono::steady_clock::now();

	assert_non_null(ring.base);
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, cap, 2,
	                                  static_cast<uint32_t>(getpid()), NowMs(), 2000),
	                 RT_RING_OK);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(ChildReader(ring.base, ring.size, total, max_len, false));

	WaitLiveReaders(&w, 1);
	uint64_t fulls = 0;
	for (uint64_t seq = 1; seq <= total; seq++)
	{
		uint32_t len = LenFor(seq, max_len);
		int rc;

		FillPayload(payload, seq, len);
		while ((rc = RtRingAppend(&w, RT_REC_MESSAGE, 0, payload.data(), len, NowMs(), 0)) ==
		       RT_RING_FULL)
		{
			/* the decoder would pause here; the reader must not be left asleep */
			fulls++;
			Publish(&w);
			sched_yield();
		}
		assert_int_equal(rc, RT_RING_OK);
		if (seq % 16 == 0)
			Publish(&w); /* one wake-up per batch, as per commit */
	}
	Publish(&w);
	assert_int_equal(WaitChild(pid), 0);
	assert_int_equal(w.hdr->records_dropped, 0);
	assert_true(w.write_pos > 100 * cap);
	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	print_message("# two-process wrap: %llu records, %llu laps, %llu FULL retries, %.3f s\n",
	              static_cast<unsigned long long>(total),
	              static_cast<unsigned long long>(w.write_pos / cap),
	              static_cast<unsigned long long>(fulls), secs);
	assert_true(secs < 1.0);
}

/* A forcing writer laps a slow reader in another process: no torn copy, exact accounting */
void
TestTwoProcessLapping(void **)
{
	const uint64_t cap = 16 * 1024;
	const uint64_t total = 20000;
	const uint32_t max_len = 600;
	SharedRing ring(cap);
	RtRingWriter w;
	std::vector<uint8_t> payload;

	assert_non_null(ring.base);
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, cap, 3,
	                                  static_cast<uint32_t>(getpid()), NowMs(), 2000),
	                 RT_RING_OK);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(ChildReader(ring.base, ring.size, total, max_len, true));

	WaitLiveReaders(&w, 1);
	for (uint64_t seq = 1; seq <= total; seq++)
	{
		uint32_t len = LenFor(seq, max_len);

		FillPayload(payload, seq, len);
		assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, payload.data(), len, NowMs(), 1),
		                 RT_RING_OK);
		if (seq % 8 == 0)
			Publish(&w);
	}
	Publish(&w);
	assert_int_equal(WaitChild(pid), 0);
	uint64_t lost = w.hdr->slots[0].records_lost;
	print_message("# two-process lapping: reader lost %llu of %llu, writer counted %llu dropped\n",
	              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(total),
	              static_cast<unsigned long long>(w.hdr->records_dropped));
	assert_true(lost > 0);
	/* a record copied but not yet released when overwritten counts on the writer side only */
	assert_true(w.hdr->records_dropped >= lost);
}

/* A reader in another process sleeps on the futex and the writer's wake reaches it */
void
TestFutexWakeCrossProcess(void **)
{
	SharedRing ring(kCap);
	RtRingWriter w;

	assert_non_null(ring.base);
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, kCap, 4,
	                                  static_cast<uint32_t>(getpid()), NowMs(), 2000),
	                 RT_RING_OK);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
	{
		RtRingReader r;
		RtRingRecordInfo info;
		uint8_t buf[64];
		uint32_t val;

		if (RtRingReaderOpen(&r, ring.base, ring.size) != RT_RING_OK ||
		    RtRingReaderAttach(&r, static_cast<uint32_t>(getpid()), NowMs(),
		                       RT_RING_START_LATEST) != RT_RING_OK)
			_exit(10);
		if (!RtRingReaderPrepareWait(&r, &val))
			_exit(11);
		uint64_t t0 = NowMs();
		long rc = FutexWait(RtRingFutexWord(r.hdr), val, 5000); /* only a wake ends it early */
		RtRingReaderFinishWait(&r);
		if (rc != 0 && errno != EAGAIN)
			_exit(12);
		if (NowMs() - t0 > 900)
			_exit(13);
		if (RtRingReadNext(&r, buf, sizeof(buf), &info) != RT_RING_OK || info.length != 4 ||
		    std::memcmp(buf, "ping", 4) != 0)
			_exit(14);
		_exit(0);
	}
	WaitLiveReaders(&w, 1);
	for (int i = 0; i < 5000 && RT_LOAD_ACQUIRE(&w.hdr->sleepers) == 0; i++)
		usleep(200);
	assert_int_equal(w.hdr->sleepers, 1);
	usleep(20000); /* let it reach FUTEX_WAIT */
	assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, "ping", 4, NowMs(), 0), RT_RING_OK);
	assert_int_not_equal(RtRingWriterNotify(&w), 0);
	FutexWake(RtRingFutexWord(w.hdr));
	assert_int_equal(WaitChild(pid), 0);
	assert_int_equal(w.hdr->sleepers, 0);
}

/* A lapped reader learns exactly how many records it lost */
void
TestLappedReaderExactGap(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingRecordInfo info;

	StartWriterAndReader(ring, &w, &r);

	for (int i = 0; i < 10; i++)
		AppendSeq(&w, 100, kT0, 0); /* 120 bytes each */
	for (uint64_t s = 1; s <= 3; s++)
		ExpectRecord(&r, s, 100, 0);

	/* FULL leaves everything as it was */
	int rc;
	std::vector<uint8_t> p(100, 1);
	while ((rc = RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 100, kT0, 0)) == RT_RING_OK)
		;
	assert_int_equal(rc, RT_RING_FULL);
	uint64_t wp = w.hdr->write_pos, seq = w.hdr->next_seq, tail = w.hdr->tail_pos;
	assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 100, kT0, 0), RT_RING_FULL);
	assert_int_equal(w.hdr->write_pos, wp);
	assert_int_equal(w.hdr->next_seq, seq);
	assert_int_equal(w.hdr->tail_pos, tail);
	assert_true(tail <= 360); /* only what the reader has read was overwritten */
	assert_int_equal(w.hdr->records_dropped, 0);

	/* the caller's max lag is exceeded: force 100 more */
	for (int i = 0; i < 100; i++)
		assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 100, kT0, 1), RT_RING_OK);
	uint64_t dropped = w.hdr->records_dropped;
	assert_true(dropped > 0);
	assert_int_equal(w.hdr->bytes_dropped, dropped * 120);

	assert_int_equal(ReadOne(&r, &info), RT_RING_OK);
	assert_int_equal(info.lost, info.seq - 4);
	assert_int_equal(info.lost, dropped); /* writer and reader agree, exactly */
	assert_int_equal(info.pos, w.hdr->tail_pos);
	assert_int_equal(w.hdr->slots[r.slot].records_lost, dropped);
	uint64_t last = info.seq;
	while ((rc = ReadOne(&r, &info)) == RT_RING_OK)
	{
		assert_int_equal(info.lost, 0);
		assert_int_equal(info.seq, last + 1);
		last = info.seq;
	}
	assert_int_equal(rc, RT_RING_EMPTY);
	assert_int_equal(last, w.next_seq - 1);

	/* caught up: plain appends work again */
	assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 100, kT0, 0), RT_RING_OK);
}

/* With no live reader the writer overwrites freely and counts no drops */
void
TestNoReaderOverwritesFreely(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingRecordInfo info;

	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, kCap, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_OK);
	for (uint64_t s = 1; s <= 1000; s++)
		AppendSeq(&w, LenFor(s, 500), kT0, 0);
	assert_int_equal(w.hdr->records_dropped, 0);
	assert_true(w.hdr->tail_pos > 0);

	/* a reader that starts at the oldest record gets a contiguous suffix */
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(&r, kPid, kT0, RT_RING_START_OLDEST), RT_RING_OK);
	uint64_t first = 0, last = 0;
	while (ReadOne(&r, &info) == RT_RING_OK)
	{
		if (first == 0)
			first = info.seq;
		else
			assert_int_equal(info.seq, last + 1);
		assert_int_equal(info.lost, 0);
		last = info.seq;
	}
	assert_true(first > 1);
	assert_int_equal(last, 1000);
}

/* A reader without heartbeat is reclaimed; a live one keeps its protection */
void
TestDeadReaderReclaimed(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader live, dead;
	RtRingRecordInfo info;
	uint32_t n = 0;

	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, kCap, 1, kPid, kT0, kTimeoutMs),
	                 RT_RING_OK);
	assert_int_equal(RtRingReaderOpen(&live, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(RtRingReaderOpen(&dead, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(&live, 1, kT0, RT_RING_START_LATEST), RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(&dead, 2, kT0, RT_RING_START_LATEST), RT_RING_OK);
	assert_int_not_equal(live.slot, dead.slot);
	uint64_t dead_owner = w.hdr->slots[dead.slot].owner;
	assert_int_equal(RT_SLOT_STATE(dead_owner), RT_SLOT_LIVE);

	for (int i = 0; i < 5; i++)
		AppendSeq(&w, 100, kT0, 0);
	ExpectRecord(&dead, 1, 100, 0);
	RtRingWriterOldestNeeded(&w, kT0 + kTimeoutMs, &n);
	assert_int_equal(n, 2); /* exactly at the timeout: still live */

	/* time passes; only `live` heartbeats */
	RtRingReaderHeartbeat(&live, kT0 + 400);
	RtRingReaderHeartbeat(&live, kT0 + 800);
	uint64_t oldest = RtRingWriterOldestNeeded(&w, kT0 + 800, &n);
	assert_int_equal(n, 1);
	assert_int_equal(oldest, 0); /* live has read nothing */
	assert_int_equal(RT_SLOT_STATE(w.hdr->slots[dead.slot].owner), RT_SLOT_FREE);
	assert_int_equal(RT_SLOT_GENERATION(w.hdr->slots[dead.slot].owner),
	                 RT_SLOT_GENERATION(dead_owner));
	assert_int_equal(RT_SLOT_STATE(w.hdr->slots[live.slot].owner), RT_SLOT_LIVE);

	/* the live reader still holds the writer back */
	int rc;
	std::vector<uint8_t> p(100, 7);
	while ((rc = RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 100, kT0 + 800, 0)) == RT_RING_OK)
		;
	assert_int_equal(rc, RT_RING_FULL);

	/* the evicted reader is told, re-attaches where it was, and counts what it lost */
	assert_int_equal(ReadOne(&dead, &info), RT_RING_EVICTED);
	assert_int_equal(ReadOne(&dead, &info), RT_RING_BAD_ARGUMENT); /* not attached */
	RtRingReaderHeartbeat(&dead, kT0 + 900);                       /* not ours: no effect */
	for (int i = 0; i < 40; i++)
		assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 100, kT0 + 800, 1),
		                 RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(&dead, 2, kT0 + 900, RT_RING_START_RESUME), RT_RING_OK);
	assert_true(RT_SLOT_GENERATION(dead.owner) > RT_SLOT_GENERATION(dead_owner));
	assert_int_equal(ReadOne(&dead, &info), RT_RING_OK);
	assert_int_equal(info.lost, info.seq - 2);
	assert_true(info.lost > 0);

	/* slot exhaustion and release */
	std::vector<RtRingReader> many(RT_RING_SLOTS);
	int attached = 0;
	for (auto &m : many)
	{
		assert_int_equal(RtRingReaderOpen(&m, ring.base, ring.size), RT_RING_OK);
		if (RtRingReaderAttach(&m, 3, kT0 + 900, RT_RING_START_LATEST) == RT_RING_OK)
			attached++;
	}
	assert_int_equal(attached, RT_RING_SLOTS - 2);
	RtRingReader extra;
	assert_int_equal(RtRingReaderOpen(&extra, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(&extra, 3, kT0 + 900, RT_RING_START_LATEST),
	                 RT_RING_NO_SLOT);
	RtRingReaderDetach(&live);
	assert_int_equal(RtRingReaderAttach(&extra, 3, kT0 + 900, RT_RING_START_LATEST), RT_RING_OK);
}

/* A GAP record consumes the skipped sequence numbers and says why */
void
TestGapRecord(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingRecordInfo info;
	RtRingGapPayload gap;

	StartWriterAndReader(ring, &w, &r);
	AppendSeq(&w, 10, kT0, 0);
	assert_int_equal(RtRingAppendGap(&w, 5, RT_GAP_TOO_LARGE, kT0, 0), RT_RING_OK);
	AppendSeq(&w, 10, kT0, 0);
	assert_int_equal(w.hdr->records_skipped, 5);
	assert_int_equal(w.hdr->next_seq, 9);

	ExpectRecord(&r, 1, 10, 0);
	assert_int_equal(RtRingReadNext(&r, &gap, sizeof(gap), &info), RT_RING_OK);
	assert_int_equal(info.type, RT_REC_GAP);
	assert_int_equal(info.seq, 7);
	assert_int_equal(info.lost, 5);
	assert_int_equal(gap.skipped, 5);
	assert_int_equal(gap.reason, RT_GAP_TOO_LARGE);
	ExpectRecord(&r, 8, 10, 0);
	assert_int_equal(r.records_lost, 5);
}

/* Retired and re-initialised rings are reported as such */
void
TestClosedAndReset(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingRecordInfo info;
	uint32_t val;

	StartWriterAndReader(ring, &w, &r);
	AppendSeq(&w, 10, kT0, 0);
	RtRingWriterClose(&w);
	ExpectRecord(&r, 1, 10, 0); /* what is left is still delivered */
	assert_int_equal(ReadOne(&r, &info), RT_RING_CLOSED);
	assert_int_equal(RtRingReaderPrepareWait(&r, &val), 0); /* never sleep on a closed ring */
	assert_int_equal(w.hdr->sleepers, 0);
	RtRingReader late;
	assert_int_equal(RtRingReaderOpen(&late, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(&late, kPid, kT0, RT_RING_START_LATEST), RT_RING_CLOSED);

	/* initialised again under the reader: a new epoch */
	assert_int_equal(RtRingWriterInit(&w, ring.base, ring.size, kCap, 2, kPid, kT0, kTimeoutMs),
	                 RT_RING_OK);
	assert_int_equal(ReadOne(&r, &info), RT_RING_RESET);
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_OK);
	assert_int_equal(RtRingReaderAttach(&r, kPid, kT0, RT_RING_START_LATEST), RT_RING_OK);
	AppendSeq(&w, 10, kT0, 0);
	ExpectRecord(&r, 1, 10, 0);
}

/* A restarted writer takes the ring over with its readers and sequence numbers */
void
TestWriterResume(void **)
{
	HeapRing ring;
	RtRingWriter w, w2;
	RtRingReader r;
	RtRingRecordInfo info;

	StartWriterAndReader(ring, &w, &r);
	for (int i = 0; i < 50; i++)
		AppendSeq(&w, 100, kT0, 1);
	ExpectRecord(&r, 1 + w.hdr->records_dropped, 100, w.hdr->records_dropped);

	assert_int_equal(RtRingWriterResume(&w2, ring.base, ring.size, 99, kPid + 1, kT0, kTimeoutMs),
	                 RT_RING_OK);
	assert_int_equal(w2.write_pos, w.write_pos);
	assert_int_equal(w2.tail_pos, w.tail_pos);
	assert_int_equal(w2.next_seq, 51);
	assert_int_equal(w2.records_dropped, w.records_dropped);
	assert_int_equal(w.hdr->epoch, 1);
	AppendSeq(&w2, 100, kT0, 0);
	uint64_t last = 0;
	while (ReadOne(&r, &info) == RT_RING_OK)
	{
		assert_int_equal(info.lost, 0);
		last = info.seq;
	}
	assert_int_equal(last, 51);

	/* inconsistent positions: re-initialised with the new epoch, readers told */
	w.hdr->tail_pos = w.hdr->write_pos + 8;
	assert_int_equal(RtRingWriterResume(&w2, ring.base, ring.size, 100, kPid + 1, kT0, kTimeoutMs),
	                 RT_RING_OK);
	assert_int_equal(w2.hdr->epoch, 100);
	assert_int_equal(w2.write_pos, 0);
	assert_int_equal(w2.capacity, kCap);
	assert_int_equal(ReadOne(&r, &info), RT_RING_RESET);

	/* garbage header: re-initialised with the largest capacity that fits */
	std::memset(ring.base, 0x5a, RT_RING_HEADER_SIZE);
	assert_int_equal(RtRingWriterResume(&w2, ring.base, ring.size, 101, kPid + 1, kT0, kTimeoutMs),
	                 RT_RING_OK);
	assert_int_equal(w2.capacity, kCap);
	assert_int_equal(RtRingReaderOpen(&r, ring.base, ring.size), RT_RING_OK);
}

/* Corrupt or hostile bytes are rejected, never read past (run under ASan) */
void
TestCorruptRingRejected(void **)
{
	HeapRing ring;
	RtRingWriter w;
	RtRingReader r;
	RtRingRecordInfo info;
	RtRingHeader *h = ring.hdr();

	StartWriterAndReader(ring, &w, &r);

	struct Case
	{
		const char *what;
		uint32_t length;
		uint16_t type;
	} cases[] = {
	    {"huge length", 0xfffffff0u, RT_REC_MESSAGE},
	    {"length past write_pos", 200, RT_REC_MESSAGE},
	    {"over a quarter of the capacity", 2000, RT_REC_MESSAGE},
	    {"type 0", 10, 0},
	    {"unknown type", 10, 99},
	    {"PAD past write_pos", 3000, RT_REC_PAD},
	};
	for (const Case &c : cases)
	{
		uint64_t pos = w.write_pos;
		AppendSeq(&w, 10, kT0, 0);
		AppendSeq(&w, 10, kT0, 0);
		auto *rh = reinterpret_cast<RtRingRecordHeader *>(w.data + (pos & w.mask));
		RtRingRecordHeader saved = *rh;
		rh->length = c.length;
		rh->type = c.type;
		print_message("# corrupt: %s\n", c.what);
		assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
		assert_int_equal(r.pos, w.write_pos); /* resynchronised */
		*rh = saved; /* or the writer's own walk would find it later (tested below) */
		AppendSeq(&w, 10, kT0, 0);
		assert_int_equal(ReadOne(&r, &info), RT_RING_OK);
		assert_int_equal(info.lost, 2); /* the two records skipped */
	}

	/* a record whose end would straddle the data area's end */
	while ((w.write_pos & w.mask) != kCap - 64)
		AppendSeq(
		    &w,
		    static_cast<uint32_t>(std::min<uint64_t>(kCap - 64 - (w.write_pos & w.mask) - 16, 200)),
		    kT0, 0);
	while (ReadOne(&r, &info) == RT_RING_OK)
		;
	{
		uint64_t pos = w.write_pos;
		AppendSeq(&w, 40, kT0, 0); /* 56 bytes at kCap - 64 */
		AppendSeq(&w, 40, kT0, 0); /* the next lap */
		auto *rh = reinterpret_cast<RtRingRecordHeader *>(w.data + (pos & w.mask));
		RtRingRecordHeader saved = *rh;
		rh->length = 100; /* 120 bytes from kCap - 64 */
		assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
		*rh = saved;
	}

	/* sequence numbers going backwards, or 0 */
	{
		uint64_t pos = w.write_pos;
		AppendSeq(&w, 10, kT0, 0);
		reinterpret_cast<RtRingRecordHeader *>(w.data + (pos & w.mask))->seq = 1;
		assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
		pos = w.write_pos;
		AppendSeq(&w, 10, kT0, 0);
		reinterpret_cast<RtRingRecordHeader *>(w.data + (pos & w.mask))->seq = 0;
		assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
		AppendSeq(&w, 10, kT0, 0);
		assert_int_equal(ReadOne(&r, &info), RT_RING_OK); /* seq-only damage: the walk is fine */
		assert_int_equal(w.corrupt_resets, 0);
	}

	/* hostile header positions */
	AppendSeq(&w, 10, kT0, 0);
	uint64_t saved_wp = h->write_pos, saved_tail = h->tail_pos;
	h->write_pos = saved_wp + 4; /* unaligned */
	assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
	h->write_pos = saved_wp;
	r.pos = saved_wp - 32;
	h->tail_pos = saved_wp + 8; /* tail past write_pos */
	assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
	r.pos = saved_wp - 32;
	h->tail_pos = saved_tail;
	h->write_pos = saved_wp + 16 * kCap; /* more than a ring ahead of tail */
	assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
	h->write_pos = 8; /* behind the reader, same epoch */
	assert_int_equal(ReadOne(&r, &info), RT_RING_CORRUPT);
	assert_int_equal(r.pos, 8);
	h->write_pos = saved_wp;
	h->tail_pos = saved_tail;
	r.pos = saved_wp;
	r.expected_seq = 0;
	h->slots[r.slot].read_pos = saved_wp;

	/* the geometry is read once, at open: a later capacity change is ignored */
	h->capacity = UINT64_C(1) << 40;
	AppendSeq(&w, 10, kT0, 0);
	assert_int_equal(ReadOne(&r, &info), RT_RING_OK);
	h->capacity = kCap;

	/* hostile slot positions cannot steer the writer out of bounds */
	h->slots[r.slot].read_pos = UINT64_MAX - 7;
	for (int i = 0; i < 100; i++)
		assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, "x", 1, kT0, 0), RT_RING_OK);
	h->slots[r.slot].read_pos = 0; /* before tail: clamped to tail, holds it */
	std::vector<uint8_t> p(500, 3);
	int rc;
	while ((rc = RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 500, kT0, 0)) == RT_RING_OK)
		;
	assert_int_equal(rc, RT_RING_FULL);

	/* the writer's own data corrupted (readers can write the file): it drops, stays in bounds */
	auto *oldest = reinterpret_cast<RtRingRecordHeader *>(w.data + (w.tail_pos & w.mask));
	oldest->length = 0x7fffffff;
	uint64_t resets = w.corrupt_resets;
	assert_int_equal(RtRingAppend(&w, RT_REC_MESSAGE, 0, p.data(), 500, kT0, 1), RT_RING_OK);
	assert_int_equal(w.corrupt_resets, resets + 1);
	assert_int_equal(h->corrupt_resets, resets + 1);
	assert_int_equal(ReadOne(&r, &info), RT_RING_OK); /* lapped to the new tail */
	assert_int_equal(info.seq, w.next_seq - 1);
}

/* Length-prefixed fields: round trip and every bound */
void
TestFieldHelpers(void **)
{
	uint8_t buf[32];
	RtFieldWriter fw;
	RtFieldReader fr;
	const uint8_t *p;
	uint32_t n, u32;
	uint64_t u64;

	RtFieldWriterInit(&fw, buf, sizeof(buf));
	assert_true(RtFieldPutBytes(&fw, "topic", 5));
	assert_true(RtFieldPutBytes(&fw, nullptr, 0));
	assert_true(RtFieldPutU32(&fw, 0x01020304u));
	assert_true(RtFieldPutU64(&fw, 0x1122334455667788ull));
	assert_int_equal(fw.len, 9 + 4 + 4 + 8);
	assert_int_equal(buf[0], 5); /* little-endian length */
	assert_int_equal(buf[1], 0);
	assert_int_equal(buf[13], 0x04);
	assert_int_equal(buf[16], 0x01);
	assert_int_equal(buf[17], 0x88);
	assert_int_equal(RtFieldSize(5), 9);

	/* 7 bytes left: a field of 3 fits exactly, then nothing more, and failure sticks */
	assert_false(RtFieldPutBytes(&fw, "abcd", 4));
	assert_true(fw.failed);
	assert_false(RtFieldPutBytes(&fw, "", 0));
	fw.failed = 0;
	assert_true(RtFieldPutBytes(&fw, "abc", 3));
	assert_int_equal(fw.len, sizeof(buf));
	assert_false(RtFieldPutU32(&fw, 1));
	assert_false(RtFieldPutBytes(&fw, nullptr, 0));
	RtFieldWriterInit(&fw, buf, sizeof(buf));
	assert_false(RtFieldPutBytes(&fw, nullptr, 1)); /* NULL with a length */

	RtFieldReaderInit(&fr, buf, sizeof(buf));
	RtFieldWriterInit(&fw, buf, sizeof(buf));
	RtFieldPutBytes(&fw, "topic", 5);
	RtFieldPutBytes(&fw, nullptr, 0);
	RtFieldPutU32(&fw, 0x01020304u);
	RtFieldPutU64(&fw, 0x1122334455667788ull);
	RtFieldPutBytes(&fw, "abc", 3);
	assert_true(RtFieldGetBytes(&fr, &p, &n));
	assert_int_equal(n, 5);
	assert_memory_equal(p, "topic", 5);
	assert_true(RtFieldGetBytes(&fr, &p, &n));
	assert_int_equal(n, 0);
	assert_true(RtFieldGetU32(&fr, &u32));
	assert_int_equal(u32, 0x01020304u);
	assert_true(RtFieldGetU64(&fr, &u64));
	assert_int_equal(u64, 0x1122334455667788ull);
	assert_true(RtFieldGetBytes(&fr, &p, &n));
	assert_memory_equal(p, "abc", 3);
	assert_true(RtFieldReaderDone(&fr));
	assert_false(RtFieldGetU32(&fr, &u32)); /* past the end */
	assert_false(RtFieldReaderDone(&fr));

	/* a length prefix larger than what is left */
	RtFieldReaderInit(&fr, buf, 8); /* "topic" needs 9 */
	assert_false(RtFieldGetBytes(&fr, &p, &n));
	assert_null(p);
	assert_int_equal(n, 0);
	assert_false(RtFieldGetU32(&fr, &u32)); /* sticky */
	uint8_t evil[8] = {0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd'};
	RtFieldReaderInit(&fr, evil, sizeof(evil));
	assert_false(RtFieldGetBytes(&fr, &p, &n));
	/* a truncated prefix, an empty buffer, and an integer cut short */
	RtFieldReaderInit(&fr, evil, 3);
	assert_false(RtFieldGetBytes(&fr, &p, &n));
	RtFieldReaderInit(&fr, nullptr, 0);
	assert_true(RtFieldReaderDone(&fr));
	assert_false(RtFieldGetBytes(&fr, &p, &n));
	RtFieldReaderInit(&fr, evil, 7);
	assert_false(RtFieldGetU64(&fr, &u64));
	/* an exactly full field */
	uint8_t exact[6] = {2, 0, 0, 0, 'h', 'i'};
	RtFieldReaderInit(&fr, exact, sizeof(exact));
	assert_true(RtFieldGetBytes(&fr, &p, &n));
	assert_int_equal(n, 2);
	assert_true(RtFieldReaderDone(&fr));
}

} // namespace

int
main()
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestLayoutAndInit),        cmocka_unit_test(TestVersionAndMagicRefused),
	    cmocka_unit_test(TestBasicReadWrite),       cmocka_unit_test(TestPaddingAtTheEnd),
	    cmocka_unit_test(TestWrapManyTimes),        cmocka_unit_test(TestTwoProcessWrap),
	    cmocka_unit_test(TestTwoProcessLapping),    cmocka_unit_test(TestFutexWakeCrossProcess),
	    cmocka_unit_test(TestLappedReaderExactGap), cmocka_unit_test(TestNoReaderOverwritesFreely),
	    cmocka_unit_test(TestDeadReaderReclaimed),  cmocka_unit_test(TestGapRecord),
	    cmocka_unit_test(TestClosedAndReset),       cmocka_unit_test(TestWriterResume),
	    cmocka_unit_test(TestCorruptRingRejected),  cmocka_unit_test(TestFieldHelpers),
	};
	return cmocka_run_group_tests_name("ring", tests, nullptr, nullptr);
}
