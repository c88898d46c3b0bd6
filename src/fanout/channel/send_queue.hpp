/*
 * send_queue.hpp: one connection's bounded queue of outgoing frames.
 *
 * Shard thread only. Push never blocks: past the byte or item cap a message is
 * dropped and counted (the client is told once per episode with a `system`
 * message); a client that keeps the queue full for longer than close_after_ms
 * is to be closed. A slow client therefore only ever loses its own messages.
 * Control frames (replies) bypass the soft cap up to twice its size, so a
 * client that stops reading cannot grow the queue without bound either.
 */
#pragma once

#include "protocol/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rt::fanout
{

enum class EnqueueResult
{
	kQueued,
	kDropped,
	kClose,
};

class SendQueue
{
public:
	SendQueue(size_t max_bytes, size_t max_items, int64_t close_after_ms)
	    : max_bytes_(max_bytes), max_items_(max_items), close_after_ms_(close_after_ms)
	{
	}
	~SendQueue();
	SendQueue(const SendQueue &) = delete;
	SendQueue &operator=(const SendQueue &) = delete;

	/* Fan-out message: subject to the caps. Takes a reference when queued. */
	EnqueueResult Push(QueuedFrame *f, int64_t now_ms);
	/* Reply or notice for this client: allowed up to twice the caps. */
	EnqueueResult PushControl(QueuedFrame *f);

	bool
	Empty() const
	{
		return count_ == 0;
	}
	QueuedFrame *
	Front() const
	{
		return ring_[head_];
	}
	/* Remove the front frame after it was written. */
	void Pop();
	/*
	 * Release the fan-out frames a client being closed for slowness will never get: all
	 * but the front one if keep_front (it is partly written) and the control frames
	 * (replies, loss notices: what it is told). Returns how many went.
	 */
	size_t Truncate(bool keep_front);

	size_t
	bytes() const
	{
		return bytes_;
	}
	size_t
	size() const
	{
		return count_;
	}
	uint64_t
	dropped() const
	{
		return dropped_;
	}
	/* True once per drop episode: time to tell the client it lost messages. */
	bool TakeDropNotice();

private:
	EnqueueResult Append(QueuedFrame *f, size_t len);
	void ShrinkIfEmpty();

	/*
	 * A ring of count_ frames from head_: an idle socket's queue holds no heap at all (a
	 * std::deque holds 576 bytes even empty, and the sockets are many), a drained big one
	 * gives its memory back.
	 */
	std::vector<QueuedFrame *> ring_;
	size_t head_ = 0;
	size_t count_ = 0;
	size_t bytes_ = 0;
	size_t max_bytes_;
	size_t max_items_;
	int64_t close_after_ms_;
	uint64_t dropped_ = 0;
	int64_t episode_start_ms_ = -1; /* first drop of the current full episode */
	bool notice_pending_ = false;
};

} // namespace rt::fanout
