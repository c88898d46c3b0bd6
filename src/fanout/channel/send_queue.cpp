/*
 * send_queue.cpp: bounded per-connection queue (shard thread only).
 */
#include "channel/send_queue.hpp"

namespace rt::fanout
{

SendQueue::~SendQueue()
{
	for (QueuedFrame *f : items_)
		ReleaseQueuedFrame(f);
}

EnqueueResult
SendQueue::Push(QueuedFrame *f, int64_t now_ms)
{
	size_t len = f->frame->bytes.size();
	if (bytes_ + len > max_bytes_ || items_.size() >= max_items_)
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
	if (bytes_ + len > 2 * max_bytes_ || items_.size() >= 2 * max_items_)
		return EnqueueResult::kClose;
	return Append(f, len);
}

/* Keep a reference to f (len bytes) at the back of the queue. */
EnqueueResult
SendQueue::Append(QueuedFrame *f, size_t len)
{
	RetainQueuedFrame(f);
	items_.push_back(f);
	bytes_ += len;
	return EnqueueResult::kQueued;
}

void
SendQueue::Pop()
{
	QueuedFrame *f = items_.front();
	items_.pop_front();
	bytes_ -= f->frame->bytes.size();
	ReleaseQueuedFrame(f);
	/* the episode ends once the client has caught up to half the cap */
	if (episode_start_ms_ >= 0 && bytes_ <= max_bytes_ / 2 && items_.size() <= max_items_ / 2)
		episode_start_ms_ = -1;
}

bool
SendQueue::TakeDropNotice()
{
	bool n = notice_pending_;
	notice_pending_ = false;
	return n;
}

} // namespace rt::fanout
