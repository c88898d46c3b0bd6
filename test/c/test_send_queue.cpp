/*
 * test_send_queue.cpp: unit tests of the bounded per-connection send queue
 * (src/fanout/send_queue.cpp) and of shard-local frame references.
 *
 * Single-threaded CMocka program. The queue must never grow past its caps,
 * must count what it drops, must ask for a close only after a sustained
 * episode, and must release every frame reference it took.
 */
#include "protocol/frame.hpp"
#include "channel/send_queue.hpp"

#include <memory>
#include <string>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

using rt::fanout::EnqueueResult;
using rt::fanout::MakeFrame;
using rt::fanout::NewQueuedFrame;
using rt::fanout::Opcode;
using rt::fanout::QueuedFrame;
using rt::fanout::ReleaseQueuedFrame;
using rt::fanout::RetainQueuedFrame;
using rt::fanout::SendQueue;

namespace
{

/* A frame whose wire size is exactly n bytes (2-byte header for n < 128). */
std::shared_ptr<const rt::fanout::Frame>
FrameOfSize(size_t n)
{
	return MakeFrame(Opcode::kText, std::string(n - 2, 'x'));
}

/* Hold one reference of our own so we can watch the queue's. */
QueuedFrame *
Held(size_t n)
{
	QueuedFrame *q = NewQueuedFrame(FrameOfSize(n));
	RetainQueuedFrame(q);
	return q;
}

void
TestFrameHeaders(void **)
{
	/* server frames: FIN + opcode, unmasked, 7/16/64-bit lengths */
	auto small = MakeFrame(Opcode::kText, "hi");
	assert_int_equal(small->bytes.size(), 4);
	assert_int_equal(static_cast<uint8_t>(small->bytes[0]), 0x81);
	assert_int_equal(static_cast<uint8_t>(small->bytes[1]), 2);
	assert_true(small->payload() == "hi");

	auto mid = MakeFrame(Opcode::kBinary, std::string(126, 'a'));
	assert_int_equal(static_cast<uint8_t>(mid->bytes[0]), 0x82);
	assert_int_equal(static_cast<uint8_t>(mid->bytes[1]), 126);
	assert_int_equal(static_cast<uint8_t>(mid->bytes[2]), 0);
	assert_int_equal(static_cast<uint8_t>(mid->bytes[3]), 126);
	assert_int_equal(mid->header_len, 4);

	auto big = MakeFrame(Opcode::kText, std::string(70000, 'b'));
	assert_int_equal(static_cast<uint8_t>(big->bytes[1]), 127);
	assert_int_equal(big->header_len, 10);
	uint64_t len = 0;
	for (int i = 2; i < 10; i++)
		len = (len << 8) | static_cast<uint8_t>(big->bytes[i]);
	assert_int_equal(len, 70000);
	assert_int_equal(big->payload().size(), 70000);
}

/* Pushing f at time now_ms gives `want`. */
void
ExpectPush(SendQueue &q, QueuedFrame *f, int64_t now_ms, EnqueueResult want)
{
	assert_int_equal(static_cast<int>(q.Push(f, now_ms)), static_cast<int>(want));
}

/* Pop all that is queued, then drop the test's own reference to f. */
void
DrainAndRelease(SendQueue &q, QueuedFrame *f)
{
	while (!q.Empty())
		q.Pop();
	ReleaseQueuedFrame(f);
}

void
TestQueuesWithinCaps(void **)
{
	SendQueue q(1000, 10, 5000);
	QueuedFrame *f = Held(100);
	for (int i = 0; i < 10; i++)
		ExpectPush(q, f, 0, EnqueueResult::kQueued);
	assert_int_equal(q.size(), 10);
	assert_int_equal(q.bytes(), 1000);
	assert_int_equal(f->refs, 11); /* ours + one per queued copy */
	/* the byte cap is reached: the next one is dropped and counted */
	ExpectPush(q, f, 0, EnqueueResult::kDropped);
	assert_int_equal(q.dropped(), 1);
	assert_int_equal(q.size(), 10);
	assert_int_equal(f->refs, 11);
	while (!q.Empty())
		q.Pop();
	assert_int_equal(q.bytes(), 0);
	assert_int_equal(f->refs, 1);
	ReleaseQueuedFrame(f);
}

void
TestItemCap(void **)
{
	SendQueue q(1 << 20, 3, 5000);
	QueuedFrame *f = Held(10);
	for (int i = 0; i < 3; i++)
		q.Push(f, 0);
	ExpectPush(q, f, 0, EnqueueResult::kDropped);
	assert_int_equal(q.size(), 3);
	DrainAndRelease(q, f);
}

void
TestDropNoticeOncePerEpisode(void **)
{
	SendQueue q(100, 100, 5000);
	QueuedFrame *f = Held(60);
	q.Push(f, 0);
	assert_false(q.TakeDropNotice());
	q.Push(f, 1); /* dropped: first of an episode */
	assert_true(q.TakeDropNotice());
	q.Push(f, 2); /* still the same episode */
	assert_false(q.TakeDropNotice());
	assert_int_equal(q.dropped(), 2);
	/* catching up to half the cap ends the episode; the next drop tells again */
	q.Pop();
	q.Push(f, 3);
	q.Push(f, 4);
	assert_true(q.TakeDropNotice());
	DrainAndRelease(q, f);
}

void
TestCloseAfterSustainedDrops(void **)
{
	SendQueue q(100, 100, 5000);
	QueuedFrame *f = Held(100);
	q.Push(f, 0);
	ExpectPush(q, f, 10, EnqueueResult::kDropped);
	ExpectPush(q, f, 4000, EnqueueResult::kDropped);
	/* still full 5 s after the first drop: the client is to be closed */
	ExpectPush(q, f, 5010, EnqueueResult::kClose);
	DrainAndRelease(q, f);
}

void
TestControlFramesBypassSoftCapOnly(void **)
{
	SendQueue q(100, 10, 5000);
	QueuedFrame *f = Held(100);
	q.Push(f, 0);
	/* replies still go out past the soft cap ... */
	assert_int_equal(static_cast<int>(q.PushControl(f)), static_cast<int>(EnqueueResult::kQueued));
	assert_int_equal(q.bytes(), 200);
	/* ... but never past twice the cap: a client that stops reading is closed */
	assert_int_equal(static_cast<int>(q.PushControl(f)), static_cast<int>(EnqueueResult::kClose));
	DrainAndRelease(q, f);
}

void
TestDestructorReleases(void **)
{
	QueuedFrame *f = Held(50);
	{
		SendQueue q(1000, 100, 5000);
		q.Push(f, 0);
		q.Push(f, 0);
		assert_int_equal(f->refs, 3);
	}
	assert_int_equal(f->refs, 1); /* ASan reports a leak or double free otherwise */
	ReleaseQueuedFrame(f);
}

void
TestTruncateKeepsFrontAndControl(void **)
{
	SendQueue q(1000, 100, 5000);
	QueuedFrame *a = Held(10), *b = Held(20), *c = Held(30);
	q.Push(a, 0);
	q.Push(b, 0);
	assert_true(q.PushControl(c) == EnqueueResult::kQueued); /* a notice: it stays */
	q.Push(b, 0);
	assert_int_equal(q.Truncate(true), 2); /* a is partly written: it stays too */
	assert_int_equal(q.size(), 2);
	assert_int_equal(q.bytes(), a->frame->bytes.size() + c->frame->bytes.size());
	assert_ptr_equal(q.Front(), a);
	assert_int_equal(b->refs, 1);
	q.Pop();
	assert_ptr_equal(q.Front(), c);
	assert_int_equal(q.Truncate(false), 0);
	q.Pop();
	assert_true(q.Empty());
	q.Push(a, 0);
	assert_int_equal(q.Truncate(false), 1);
	assert_true(q.Empty());
	assert_int_equal(q.bytes(), 0);
	assert_int_equal(a->refs, 1);
	ExpectPush(q, b, 0, EnqueueResult::kQueued); /* usable again */
	q.Pop();
	ReleaseQueuedFrame(a);
	ReleaseQueuedFrame(b);
	ReleaseQueuedFrame(c);
}

void
TestOversizedSingleFrameDropped(void **)
{
	/* one frame larger than the whole cap can never be queued */
	SendQueue q(100, 100, 5000);
	QueuedFrame *f = Held(101);
	ExpectPush(q, f, 0, EnqueueResult::kDropped);
	assert_true(q.Empty());
	ReleaseQueuedFrame(f);
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestFrameHeaders),
	    cmocka_unit_test(TestQueuesWithinCaps),
	    cmocka_unit_test(TestItemCap),
	    cmocka_unit_test(TestDropNoticeOncePerEpisode),
	    cmocka_unit_test(TestCloseAfterSustainedDrops),
	    cmocka_unit_test(TestControlFramesBypassSoftCapOnly),
	    cmocka_unit_test(TestDestructorReleases),
	    cmocka_unit_test(TestTruncateKeepsFrontAndControl),
	    cmocka_unit_test(TestOversizedSingleFrameDropped),
	};
	return cmocka_run_group_tests_name("send_queue", tests, nullptr, nullptr);
}
