/*
 * send_queue.cpp: bounded per-connection queue (shard thread only).
 */
#include "channel/send_queue.hpp"

#include <algorithm>

namespace rt::fanout
{

namespace
{
constexpr size_t kKeptSlots = 16; /* ring slots an empty queue keeps */
}

SendQueue::~SendQueue()
{
	for (size_t i = 0; i < count_; i++)
		ReleaseQueuedFrame(ring_[(head_ + i) % ring_.size()]);
}

EnqueueResult
SendQueue::Push(QueuedFrame *f, int64_t now_ms)
{
	size_t len = f->frame->bytes.size();
	if (bytes_ + len > max_bytes_ || count_ >= max_items_)
	{
		dropped_++;
		if (episode_start_ms_ < 0)
		{
			episode_start_ms_ = now_ms;
			notice_pending_ = true;
		}
		else if (now_ms - episode_start_ms_ >= close_after_ms_)
			return EnqueueResult::kClose;
		return EnqueueResult::kDropped;
	}
	return Append(f, len);
}

EnqueueResult
SendQueue::PushControl(QueuedFrame *f)
{
	size_t len = f->frame->bytes.size();
	if (bytes_ + len > 2 * max_bytes_ || count_ >= 2 * max_items_)
		return EnqueueResult::kClose;
	f->control = true;
	return Append(f, len);
}

/* Keep a reference to f (len bytes) at the back of the queue. */
EnqueueResult
SendQueue::Append(QueuedFrame *f, size_t len)
{
	RetainQueuedFrame(f);
	if (count_ == ring_.size())
	{
		/* full: unroll into a ring twice the size */
		std::vector<QueuedFrame *> bigger(std::max<size_t>(4, 2 * ring_.size()));
		for (size_t i = 0; i < count_; i++)
			bigger[i] = ring_[(head_ + i) % ring_.size()];
		ring_.swap(bigger);
		head_ = 0;
	}
	ring_[(head_ + count_) % ring_.size()] = f;
	count_++;
	bytes_ += len;
	return EnqueueResult::kQueued;
}

void
SendQueue::Pop()
{
	QueuedFrame *f = ring_[head_];
	head_ = (head_ + 1) % ring_.size();
	count_--;
	ShrinkIfEmpty();
	bytes_ -= f->frame->bytes.size();
	ReleaseQueuedFrame(f);
	/* the episode ends once the client has caught up to half the cap */
	if (episode_start_ms_ >= 0 && bytes_ <= max_bytes_ / 2 && count_ <= max_items_ / 2)
		episode_start_ms_ = -1;
}

size_t
SendQueue::Truncate(bool keep_front)
{
	size_t kept = 0, gone = 0;
	for (size_t i = 0; i < count_; i++)
	{
		QueuedFrame *f = ring_[(head_ + i) % ring_.size()];
		if ((i == 0 && keep_front) || f->control)
			ring_[(head_ + kept++) % ring_.size()] = f;
		else
		{
			bytes_ -= f->frame->bytes.size();
			ReleaseQueuedFrame(f);
			gone++;
		}
	}
	count_ = kept;
	ShrinkIfEmpty();
	return gone;
}

/* An empty queue starts again at slot 0 and gives a big ring back. */
void
SendQueue::ShrinkIfEmpty()
{
	if (count_ != 0)
		return;
	head_ = 0;
	if (ring_.size() > kKeptSlots)
		std::vector<QueuedFrame *>().swap(ring_);
}

bool
SendQueue::TakeDropNotice()
{
	bool n = notice_pending_;
	notice_pending_ = false;
	return n;
}

} // namespace rt::fanout
