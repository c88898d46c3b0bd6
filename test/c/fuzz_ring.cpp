/*
 * fuzz_ring.cpp: libFuzzer target for the ring reader (src/common/rt_ring.h) over
 * arbitrary ring bytes, as a corrupt file or a hostile writer could leave them.
 *
 * Single-threaded. Built by `make fuzz-build` (clang, ASan, UBSan) into build/fuzz/;
 * scripts/fuzz.sh runs it from test/c/corpus/ring (the README's test command for a
 * bounded time, `make fuzz` longer).
 * The first input byte picks a mode:
 *   0: the input is the whole mapped file (header included): open, attach, read
 *   1: a valid header, then the input as the data area and the positions
 *   2: as 1, then the writer appends and forces over the damaged data
 * The ring lives in a heap block of exactly its mapped size, so AddressSanitizer
 * reports any access outside it. Besides crashes, it traps when a returned record
 * does not fit the caller's buffer or the reader's position leaves what it read.
 */
#include "fuzz_check.hpp"
#include "rt_ring_fields.h"
#include "rt_ring_reader.h"
#include "rt_ring_writer.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace
{

using rt::fuzz::Check;

/* Read from the input: little-endian integer of n bytes, 0 past the end */
uint64_t
Take(const uint8_t *&p, size_t &left, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && left > 0; i++, left--)
		v |= static_cast<uint64_t>(*p++) << (8 * i);
	return v;
}

/* Read everything readable; also decode each payload as length-prefixed fields */
void
Drain(RtRingReader *r, uint32_t buf_cap)
{
	uint8_t *buf = static_cast<uint8_t *>(std::malloc(buf_cap == 0 ? 1 : buf_cap));
	RtRingRecordInfo info;

	for (int i = 0; i < 512; i++)
	{
		uint64_t before = r->pos;
		int rc = RtRingReadNext(r, buf, buf_cap, &info);

		if (rc == RT_RING_OK)
		{
			RtFieldReader fr;
			const uint8_t *f;
			uint32_t n;
			uint64_t u;

			Check(info.length <= buf_cap);
			Check(info.type == RT_REC_MESSAGE || info.type == RT_REC_CHANGE ||
			      info.type == RT_REC_GAP);
			Check(info.seq != 0);
			Check(r->pos > info.pos && r->pos - info.pos <= RtRingMaxRecord(r->capacity));
			RtFieldReaderInit(&fr, buf, info.length);
			while (RtFieldGetBytes(&fr, &f, &n))
				Check(f >= buf && f + n <= buf + info.length);
			RtFieldReaderInit(&fr, buf, info.length);
			while (RtFieldGetU64(&fr, &u))
				;
			continue;
		}
		if (rc == RT_RING_BUFFER_SMALL)
		{
			/* PAD or a lap may have been skipped; the record itself is not consumed */
			Check(info.length > buf_cap);
			Check(info.pos == r->pos && r->pos >= before);
			buf_cap = info.length;
			std::free(buf);
			buf = static_cast<uint8_t *>(std::malloc(buf_cap));
			continue;
		}
		if (rc == RT_RING_CORRUPT)
			continue; /* resynchronised at write_pos; go on */
		break;        /* EMPTY, CLOSED, RESET, EVICTED */
	}
	std::free(buf);
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t mode = data[0] % 3;
	const uint8_t *p = data + 1;
	size_t left = size - 1;

	if (mode == 0)
	{
		/* the whole file: usually refused at open, sometimes a plausible header */
		uint64_t map_len = (left + 63) / 64 * 64;
		if (map_len < RT_RING_HEADER_SIZE)
			map_len = RT_RING_HEADER_SIZE;
		void *base = std::aligned_alloc(64, map_len);
		std::memset(base, 0, map_len);
		std::memcpy(base, p, left);
		RtRingReader r;
		if (RtRingReaderOpen(&r, base, map_len) == RT_RING_OK)
		{
			Check(r.data + r.capacity <= static_cast<uint8_t *>(base) + map_len);
			if (RtRingReaderAttach(&r, 1, 1000, RT_RING_START_OLDEST) == RT_RING_OK)
				Drain(&r, 256);
		}
		std::free(base);
		return 0;
	}

	/* a valid header of capacity 4, 8 or 16 KiB; the input fills data and positions */
	const uint64_t cap = RT_RING_MIN_CAPACITY << (Take(p, left, 1) % 3);
	const uint64_t map_len = RtRingFileSize(cap);
	void *base = std::aligned_alloc(64, map_len);
	RtRingWriter w;
	RtRingReader r;

	std::memset(base, 0, map_len);
	Check(RtRingWriterInit(&w, base, map_len, cap, 7, 1, 1000, 500) == RT_RING_OK);
	RtRingHeader *h = w.hdr;
	uint64_t wp = Take(p, left, 4);
	uint64_t tail = Take(p, left, 4);
	uint32_t buf_cap = static_cast<uint32_t>(Take(p, left, 2));
	uint8_t *area = static_cast<uint8_t *>(base) + RT_RING_HEADER_SIZE;
	std::memcpy(area, p, left < cap ? left : cap);
	p += left < cap ? left : cap;
	left -= left < cap ? left : cap;
	h->write_pos = wp;
	h->tail_pos = tail;

	Check(RtRingReaderOpen(&r, base, map_len) == RT_RING_OK);
	Check(RtRingReaderAttach(&r, 2, 1000, RT_RING_START_OLDEST) == RT_RING_OK);
	Drain(&r, buf_cap);

	if (mode == 2)
	{
		/* the writer resumes over the damaged ring and appends: it must stay in bounds */
		RtRingWriter w2;
		if (RtRingWriterResume(&w2, base, map_len, 8, 1, 1000, 500) == RT_RING_OK)
		{
			/* the reader's slot may hold anything too */
			h->slots[r.slot].read_pos = Take(p, left, 8);
			for (int i = 0; i < 64; i++)
			{
				uint8_t payload[300];
				uint32_t len = static_cast<uint32_t>(Take(p, left, 2) % sizeof(payload));
				std::memset(payload, i, len);
				int rc = RtRingAppend(&w2, RT_REC_MESSAGE, 0, payload, len, 1000 + i, i % 2);
				Check(rc == RT_RING_OK || rc == RT_RING_FULL);
				Check(w2.tail_pos <= w2.write_pos && w2.write_pos - w2.tail_pos <= cap);
			}
			if (r.attached || RtRingReaderAttach(&r, 2, 1000, RT_RING_START_RESUME) == RT_RING_OK)
				Drain(&r, 512);
		}
	}
	std::free(base);
	return 0;
}
