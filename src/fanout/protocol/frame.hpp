/*
 * frame.hpp: immutable WebSocket frames and their shard-local references.
 *
 * A message is serialized once into a Frame: the complete server-to-client
 * WebSocket frame, header included (server frames are unmasked, so the header
 * depends only on opcode and length). Every subscriber's socket is then
 * written from the same bytes.
 *
 * Across shards a Frame travels as std::shared_ptr<const Frame>: one atomic
 * reference per shard. Inside a shard each subscriber's queue holds a
 * QueuedFrame with a plain, non-atomic count, so fan-out to N subscribers
 * costs no atomic operation and no allocation per subscriber.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace rt::fanout
{

enum class Opcode : uint8_t
{
	kText = 1,
	kBinary = 2,
};

struct Frame
{
	std::string bytes; /* header + payload, ready for the socket */
	size_t header_len = 0;

	std::string_view
	payload() const
	{
		return std::string_view(bytes).substr(header_len);
	}
};

/* Build a final, unmasked frame carrying payload. */
inline std::shared_ptr<const Frame>
MakeFrame(Opcode op, std::string_view payload)
{
	auto f = std::make_shared<Frame>();
	uint8_t h[10];
	size_t n = 0;
	uint64_t len = payload.size();
	h[n++] = static_cast<uint8_t>(0x80 | static_cast<uint8_t>(op));
	if (len < 126)
		h[n++] = static_cast<uint8_t>(len);
	else if (len <= 0xffff)
	{
		h[n++] = 126;
		h[n++] = static_cast<uint8_t>(len >> 8);
		h[n++] = static_cast<uint8_t>(len);
	}
	else
	{
		h[n++] = 127;
		for (int i = 7; i >= 0; i--)
			h[n++] = static_cast<uint8_t>(len >> (8 * i));
	}
	f->bytes.reserve(n + payload.size());
	f->bytes.append(reinterpret_cast<const char *>(h), n);
	f->bytes.append(payload);
	f->header_len = n;
	return f;
}

/*
 * Shard-local reference to a Frame. Created with refs = 0 by NewQueuedFrame;
 * each queue that holds it adds one; ReleaseQueuedFrame deletes it with the
 * last. Only the owning shard's thread touches it.
 */
struct QueuedFrame
{
	std::shared_ptr<const Frame> frame;
	uint32_t refs = 0;
	bool control = false; /* a reply or notice (SendQueue::PushControl): kept by Truncate */
};

/* The one place QueuedFrame is allocated (intrusive count: no unique_ptr owner). */
inline QueuedFrame *
NewQueuedFrame(std::shared_ptr<const Frame> f)
{
	return new QueuedFrame{std::move(f), 0, false};
}

inline void
RetainQueuedFrame(QueuedFrame *q)
{
	q->refs++;
}

inline void
ReleaseQueuedFrame(QueuedFrame *q)
{
	if (--q->refs == 0)
		delete q;
}

/* Delete a frame nobody took (refs still 0), e.g. no subscriber matched. */
inline void
DropIfUnused(QueuedFrame *q)
{
	if (q != nullptr && q->refs == 0)
		delete q;
}

} // namespace rt::fanout
