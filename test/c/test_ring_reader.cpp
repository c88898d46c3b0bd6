/*
 * test_ring_reader.cpp: unit tests of the sidecar's ring reader
 * (src/fanout/ring_reader.cpp) against the real ring writer of rt_ring.h.
 *
 * The writer runs in the test's main thread over a temp file, the reader on
 * its own thread as in the sidecar: it must wait for the file, attach, decode
 * MESSAGE records in order, count gaps, skip malformed records and keep going.
 */
#include "base/clock.hpp"
#include "db/ring_reader.hpp"
#include "rt_ring_fields.h"
#include "rt_ring_writer.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/futex.h>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

using rt::fanout::DecodeRingMessage;
using rt::fanout::RingMessage;
using rt::fanout::RingReader;

namespace
{

constexpr uint64_t kCapacity = 64 * 1024;

using rt::fanout::NowMs;

/* What the sink saw, copied out of the reader's buffer. */
struct Seen
{
	std::mutex mu;
	std::vector<std::string> lines; /* "topic|event|id|payload|flags" */

	void
	Add(const RingMessage &m)
	{
		std::lock_guard<std::mutex> lock(mu);
		lines.push_back(std::string(m.topic) + "|" + std::string(m.event) + "|" +
		                std::string(m.id) + "|" + std::string(m.payload) + "|" +
		                (m.is_private ? "p" : "") + (m.binary ? "b" : ""));
	}
	size_t
	Count()
	{
		std::lock_guard<std::mutex> lock(mu);
		return lines.size();
	}
};

/* A ring file written by this process. */
struct TestRing
{
	char path[64] = "/tmp/rt_ring_reader_XXXXXX";
	void *map = nullptr;
	size_t len = 0;
	RtRingWriter w{};

	TestRing()
	{
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		len = static_cast<size_t>(RtRingFileSize(kCapacity));
		assert_int_equal(ftruncate(fd, static_cast<off_t>(len)), 0);
		map = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		assert_true(map != MAP_FAILED);
		assert_int_equal(RtRingWriterInit(&w, map, len, kCapacity, 42, getpid(), NowMs(), 5000),
		                 RT_RING_OK);
	}
	~TestRing()
	{
		munmap(map, len);
		unlink(path);
	}
	void
	Wake()
	{
		if (RtRingWriterNotify(&w))
			syscall(SYS_futex, RtRingFutexWord(w.hdr), FUTEX_WAKE, 1 << 30, nullptr, nullptr, 0);
	}
	int
	AppendMessage(const char *topic, const char *event, const char *id, const std::string &payload,
	              uint32_t flags)
	{
		std::vector<uint8_t> buf(payload.size() + 256);
		RtFieldWriter f;
		RtFieldWriterInit(&f, buf.data(), static_cast<uint32_t>(buf.size()));
		RtFieldPutU32(&f, flags);
		RtFieldPutU64(&f, 0x1234);
		RtFieldPutU64(&f, 1767225600000000ull);
		RtFieldPutBytes(&f, topic, static_cast<uint32_t>(strlen(topic)));
		RtFieldPutBytes(&f, event, static_cast<uint32_t>(strlen(event)));
		RtFieldPutBytes(&f, id, static_cast<uint32_t>(strlen(id)));
		RtFieldPutBytes(&f, payload.data(), static_cast<uint32_t>(payload.size()));
		assert_false(f.failed);
		int rc = RtRingAppend(&w, RT_REC_MESSAGE, 0, buf.data(), f.len, NowMs(), 0);
		Wake();
		return rc;
	}
};

bool
WaitFor(const std::function<bool()> &pred, int ms = 3000)
{
	for (int i = 0; i < ms / 5; i++)
	{
		if (pred())
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	}
	return pred();
}

void
TestDecodeRejectsTruncated(void **)
{
	uint8_t buf[256];
	RtFieldWriter f;
	RtFieldWriterInit(&f, buf, sizeof(buf));
	RtFieldPutU32(&f, RT_MSG_PRIVATE);
	RtFieldPutU64(&f, 1);
	RtFieldPutU64(&f, 2);
	RtFieldPutBytes(&f, "room", 4);
	RtFieldPutBytes(&f, "ev", 2);
	RtFieldPutBytes(&f, "id-1", 4);
	RtFieldPutBytes(&f, "{}", 2);
	RingMessage m;
	assert_true(DecodeRingMessage(buf, f.len, m));
	assert_true(m.is_private);
	assert_false(m.binary);
	assert_true(m.topic == "room" && m.event == "ev" && m.id == "id-1" && m.payload == "{}");
	assert_int_equal(m.commit_lsn, 1);
	assert_int_equal(m.stored_at_us, 0); /* a record of before 0.2.0: no stored_at */
	for (uint32_t cut = 0; cut < f.len; cut++)
		assert_false(DecodeRingMessage(buf, cut, m)); /* every truncation is refused */
	/* 0.2.0 appends the row's inserted_at */
	RtFieldPutU64(&f, 1765000000123456ull);
	assert_true(DecodeRingMessage(buf, f.len, m));
	assert_int_equal(m.stored_at_us, 1765000000123456ull);
	assert_true(m.payload == "{}");
}

void
TestWaitsForTheFileThenDelivers(void **)
{
	Seen seen;
	std::string path;
	{
		/* the reader starts first: the file does not exist yet */
		char tmp[] = "/tmp/rt_ring_missing_XXXXXX";
		int fd = mkstemp(tmp);
		close(fd);
		unlink(tmp);
		path = tmp;
	}
	RingReader reader(path, [&seen](const RingMessage &m) { seen.Add(m); });
	reader.Start();
	std::this_thread::sleep_for(std::chrono::milliseconds(100));
	assert_false(reader.attached());

	TestRing ring;
	assert_int_equal(rename(ring.path, path.c_str()), 0);
	strncpy(ring.path, path.c_str(), sizeof(ring.path) - 1);
	assert_true(WaitFor([&] { return reader.attached(); }));
	assert_int_equal(ring.AppendMessage("room1", "ev", "a", R"({"n":1})", 0), RT_RING_OK);
	assert_true(WaitFor([&] { return seen.Count() == 1; }));
	assert_string_equal(seen.lines[0].c_str(), R"(room1|ev|a|{"n":1}|)");
	reader.Stop();
}

void
TestOrderGapsAndMalformed(void **)
{
	TestRing ring;
	Seen seen;
	RingReader reader(ring.path, [&seen](const RingMessage &m) { seen.Add(m); });
	reader.Start();
	assert_true(WaitFor([&] { return reader.attached(); }));

	/* 500 messages through a 64 KiB ring, wrapping several times, in order */
	for (int i = 0; i < 500; i++)
	{
		std::string payload = R"({"i":)" + std::to_string(i) + R"(,"pad":")" +
		                      std::string(static_cast<size_t>(i % 300), 'x') + "\"}";
		int rc;
		while ((rc = ring.AppendMessage("room", "ev", "id", payload, i % 2 ? RT_MSG_PRIVATE : 0)) ==
		       RT_RING_FULL)
			std::this_thread::sleep_for(std::chrono::milliseconds(1)); /* the reader is behind */
		assert_int_equal(rc, RT_RING_OK);
	}
	assert_true(WaitFor([&] { return seen.Count() == 500; }));
	for (int i = 0; i < 500; i++)
	{
		std::string want = R"(room|ev|id|{"i":)" + std::to_string(i);
		assert_true(seen.lines[static_cast<size_t>(i)].starts_with(want));
		assert_true(seen.lines[static_cast<size_t>(i)].ends_with(i % 2 ? "|p" : "|"));
	}
	assert_int_equal(reader.lost(), 0);

	/* a GAP record: the reader counts the skipped records */
	assert_int_equal(RtRingAppendGap(&ring.w, 7, RT_GAP_MAX_LAG, NowMs(), 0), RT_RING_OK);
	/* a malformed MESSAGE payload is skipped; the next one still arrives */
	uint8_t junk[3] = {1, 2, 3};
	assert_int_equal(RtRingAppend(&ring.w, RT_REC_MESSAGE, 0, junk, sizeof(junk), NowMs(), 0),
	                 RT_RING_OK);
	assert_int_equal(ring.AppendMessage("room", "after", "z", "{}", RT_MSG_BINARY), RT_RING_OK);
	assert_true(WaitFor([&] { return seen.Count() == 501; }));
	assert_string_equal(seen.lines[500].c_str(), "room|after|z|{}|b");
	assert_int_equal(reader.lost(), 7);
	assert_int_equal(reader.messages(), 501);
	reader.Stop();
	assert_false(reader.attached());
}

/* consumed_lsn: what the reader has handed on, from record commit LSNs and the writer's decoded_lsn
 */
void
TestConsumedLsn(void **)
{
	TestRing ring;
	Seen seen;
	RingReader reader(ring.path, [&seen](const RingMessage &m) { seen.Add(m); });
	reader.Start();
	assert_true(WaitFor([&] { return reader.attached(); }));
	assert_int_equal(reader.consumed_lsn(), 0);

	/* a record committed at 0x1234 (AppendMessage's commit LSN): commits before it are done */
	assert_int_equal(ring.AppendMessage("room", "ev", "id", "{}", 0), RT_RING_OK);
	ring.Wake();
	assert_true(WaitFor([&] { return reader.consumed_lsn() == 0x1234; }));

	/* the writer decoded up to 0x5000 with nothing more for the ring: once caught up, so is the
	 * reader */
	RtRingWriterSetDecodedLsn(&ring.w, 0x5000);
	ring.Wake();
	assert_true(WaitFor([&] { return reader.consumed_lsn() == 0x5000; }));
	/* never back */
	RtRingWriterSetDecodedLsn(&ring.w, 0x100);
	assert_int_equal(RtRingDecodedLsn(ring.w.hdr), 0x5000);
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	assert_int_equal(reader.consumed_lsn(), 0x5000);
	reader.Stop();
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestDecodeRejectsTruncated),
	    cmocka_unit_test(TestWaitsForTheFileThenDelivers),
	    cmocka_unit_test(TestOrderGapsAndMalformed),
	    cmocka_unit_test(TestConsumedLsn),
	};
	return cmocka_run_group_tests_name("ring_reader", tests, nullptr, nullptr);
}
