/*
 * rt_ring_reader.h: a reader of the ring (the sidecar's ring reader thread,
 * src/fanout/db/ring_reader.cpp, and the test tools ring_hold and ring_dump).
 * The geometry is copied and validated once, at open; every length, type and
 * position read afterwards is validated before use.
 */

#ifndef RT_RING_READER_H
#define RT_RING_READER_H

#include "rt_ring_access.h"

/* A reader's state: geometry copied and validated once, at open. */
typedef struct RtRingReader
{
	RtRingHeader *hdr;
	const uint8_t *data;
	uint64_t capacity;
	uint64_t mask;
	uint64_t epoch;
	uint64_t pos;          /* next byte to read */
	uint64_t expected_seq; /* seq of the next record; 0 = unknown (just attached) */
	uint64_t records_read;
	uint64_t records_lost;
	uint64_t owner; /* RT_SLOT_OWNER(generation, RT_SLOT_LIVE) while attached */
	uint32_t slot;
	uint32_t attached; /* 1 while it holds a slot */
} RtRingReader;

/* What RtRingReadNext returns besides the payload bytes */
typedef struct RtRingRecordInfo
{
	uint64_t seq;
	uint64_t pos;    /* ring position of the record */
	uint64_t lost;   /* records missing just before this one (sequence gap), normally 0 */
	uint32_t length; /* payload bytes (also set for RT_RING_BUFFER_SMALL) */
	uint16_t type;
	uint16_t flags;
} RtRingRecordInfo;

/* ------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------ */

/*
 * Validate the ring mapped at base (map_len bytes) and prepare a reader for
 * it; no slot is taken yet. RT_RING_BAD_MAGIC also means "not initialised
 * yet": retry later.
 */
RT_INLINE int
RtRingReaderOpen(RtRingReader *r, void *base, uint64_t map_len)
{
	uint64_t capacity = 0;
	uint32_t header_size = 0;
	int rc;

	if (r == NULL)
		return RT_RING_BAD_ARGUMENT;
	rc = RtRingCheckHeader(base, map_len, &capacity, &header_size);
	if (rc != RT_RING_OK)
		return rc;
	__builtin_memset(r, 0, sizeof(*r));
	r->hdr = (RtRingHeader *)base;
	r->data = (const uint8_t *)base + header_size;
	r->capacity = capacity;
	r->mask = capacity - 1;
	r->epoch = RT_LOAD_RELAXED(&r->hdr->epoch);
	return RT_RING_OK;
}

/*
 * write_pos and the sequence number of the record that will start there.
 * write_seq (stored after write_pos) read first, next_seq (stored before it)
 * last: if they are equal, no append was under way and the pair is consistent,
 * so a reader lapped before its first read still counts its loss exactly.
 * *expected is 0 (unknown: the first record read sets it) if the writer kept
 * appending through every try.
 */
RT_INLINE uint64_t
RtRingReaderLatest(RtRingHeader *h, uint64_t *expected)
{
	uint64_t pos = 0;
	int i;

	for (i = 0; i < 100; i++)
	{
		uint64_t after = RT_LOAD_ACQUIRE(&h->write_seq);
		uint64_t before;

		pos = RT_LOAD_ACQUIRE(&h->write_pos);
		before = RT_LOAD_ACQUIRE(&h->next_seq);
		if (after == before)
		{
			*expected = after;
			return pos;
		}
	}
	*expected = 0;
	return pos;
}

/*
 * Claim a free slot (CAS free -> claiming, fill it in, CAS claiming -> live)
 * and start at `start` (RT_RING_START_*). RT_RING_START_RESUME keeps this
 * reader's position and expected sequence, so a reader evicted for a missed
 * heartbeat re-attaches and counts exactly what it lost meanwhile.
 */
RT_INLINE int
RtRingReaderAttach(RtRingReader *r, uint32_t pid, uint64_t now_ms, int start)
{
	RtRingHeader *h = r->hdr;
	uint32_t i;
	int attempts;

	if (r->attached)
		return RT_RING_BAD_ARGUMENT;
	if (RT_LOAD_RELAXED(&h->epoch) != r->epoch || RT_LOAD_ACQUIRE(&h->magic) != RT_RING_MAGIC)
		return RT_RING_RESET;
	if (RT_LOAD_ACQUIRE(&h->closed) != 0)
		return RT_RING_CLOSED;
	/* a few rounds: the writer may free a claim it judged stale (see OldestNeeded) */
	for (attempts = 0; attempts < 4; attempts++)
	{
		for (i = 0; i < RT_RING_SLOTS; i++)
		{
			RtRingSlot *s = &h->slots[i];
			uint64_t owner = RT_LOAD_ACQUIRE(&s->owner);
			uint64_t claiming, live, pos, expected = r->expected_seq;

			if (RT_SLOT_STATE(owner) != RT_SLOT_FREE)
				continue;
			claiming = RT_SLOT_OWNER(RT_SLOT_GENERATION(owner) + 1, RT_SLOT_CLAIMING);
			if (!RT_CAS(&s->owner, &owner, claiming))
				continue;
			RT_STORE_RELAXED(&s->heartbeat_ms, now_ms);
			RT_STORE_RELAXED(&s->attached_ms, now_ms);
			RT_STORE_RELAXED(&s->pid, pid);
			RT_STORE_RELAXED(&s->records_read, r->records_read);
			RT_STORE_RELAXED(&s->records_lost, r->records_lost);
			if (start == RT_RING_START_RESUME)
				pos = r->pos;
			else if (start == RT_RING_START_OLDEST)
			{
				pos = RT_LOAD_ACQUIRE(&h->tail_pos);
				expected = 0; /* the first record sets the baseline */
			}
			else
				pos = RtRingReaderLatest(h, &expected);
			if (pos % RT_RING_ALIGN != 0)
				pos = RtRingAlign(pos); /* only a corrupt header; read_next resyncs */
			RT_STORE_RELAXED(&s->read_pos, pos);
			live = RT_SLOT_OWNER(RT_SLOT_GENERATION(claiming), RT_SLOT_LIVE);
			if (!RT_CAS(&s->owner, &claiming, live)) /* release: fields before state */
				break;                               /* reclaimed meanwhile: start over */
			r->expected_seq = expected;
			r->pos = pos;
			r->owner = live;
			r->slot = i;
			r->attached = 1;
			return RT_RING_OK;
		}
		if (i == RT_RING_SLOTS)
			return RT_RING_NO_SLOT;
	}
	return RT_RING_NO_SLOT;
}

/* Give the slot back (no-op if the writer already reclaimed it) */
RT_INLINE void
RtRingReaderDetach(RtRingReader *r)
{
	uint64_t owner;

	if (!r->attached)
		return;
	owner = r->owner;
	RT_CAS(&r->hdr->slots[r->slot].owner, &owner,
	       RT_SLOT_OWNER(RT_SLOT_GENERATION(r->owner), RT_SLOT_FREE));
	r->attached = 0;
}

/* The reader is alive; call well within the writer's reader timeout */
RT_INLINE void
RtRingReaderHeartbeat(RtRingReader *r, uint64_t now_ms)
{
	if (r->attached && RT_LOAD_RELAXED(&r->hdr->slots[r->slot].owner) == r->owner)
		RT_STORE_RELEASE(&r->hdr->slots[r->slot].heartbeat_ms, now_ms);
}

/* Whether the slot is still ours; 0 after the writer reclaimed it */
RT_INLINE int
RtRingReaderOwnsSlot(const RtRingReader *r)
{
	return r->attached && RT_LOAD_RELAXED(&r->hdr->slots[r->slot].owner) == r->owner;
}

/* Publish the position (release: our reads of the bytes before it are done) */
RT_INLINE void
RtRingReaderStorePos(RtRingReader *r)
{
	RtRingSlot *s = &r->hdr->slots[r->slot];

	RT_STORE_RELEASE(&s->read_pos, r->pos);
}

/* Why the ring does not go on where we are: reset, closed or plain empty */
RT_INLINE int
RtRingReaderEndState(RtRingReader *r)
{
	if (RT_LOAD_ACQUIRE(&r->hdr->magic) != RT_RING_MAGIC ||
	    RT_LOAD_RELAXED(&r->hdr->epoch) != r->epoch)
		return RT_RING_RESET;
	if (RT_LOAD_ACQUIRE(&r->hdr->closed) != 0)
		return RT_RING_CLOSED;
	return RT_RING_EMPTY;
}

/* Outcomes of one step of RtRingReadNext other than a result code */
#define RT_READ_AGAIN (-1)   /* the position moved (lapped, padding): look again */
#define RT_READ_RECHECK (-2) /* invalid bytes: overwritten meanwhile, or corrupt */
#define RT_READ_CORRUPT (-3) /* invalid bytes: skip to write_pos */

RT_INLINE void
RtRingFillInfo(RtRingRecordInfo *info, uint64_t seq, uint64_t pos, uint64_t lost, uint32_t len,
               uint16_t type, uint16_t flags)
{
	RtRingRecordInfo filled = {seq, pos, lost, len, type, flags};

	*info = filled;
}

/*
 * Find the record header at r->pos against write_pos *wp_out: RT_RING_OK with
 * its data offset in *off_out, the end state when nothing is left, or a step
 * outcome. tail is loaded after write_pos, so with an honest writer tail >= wp
 * - capacity; it may be past this wp (the writer went on meanwhile), which the
 * lapped case handles: the next round's write_pos is past it again.
 */
RT_INLINE int
RtRingReaderLocate(RtRingReader *r, uint64_t *wp_out, uint64_t *off_out)
{
	RtRingHeader *h = r->hdr;
	uint64_t wp = RT_LOAD_ACQUIRE(&h->write_pos);
	uint64_t tail, off, room;

	*wp_out = wp;
	if (wp == r->pos)
	{
		RtRingReaderStorePos(r);
		return RtRingReaderEndState(r);
	}
	tail = RT_LOAD_ACQUIRE(&h->tail_pos);
	if (wp < r->pos || wp % RT_RING_ALIGN != 0 || tail % RT_RING_ALIGN != 0)
	{
		int end = RtRingReaderEndState(r);

		return end != RT_RING_EMPTY ? end : RT_READ_CORRUPT;
	}
	if (r->pos < tail)
	{
		/* lapped: what was in [pos, tail) is gone; the next seq tells how much */
		r->pos = tail;
		return RT_READ_AGAIN;
	}
	if (wp - r->pos > r->capacity)
		return RT_READ_CORRUPT; /* more than a ring ahead of a valid position */
	off = r->pos & r->mask;
	room = r->capacity - off;
	if (room < RT_RING_RECORD_HEADER_SIZE)
	{
		/* implicit padding at the end of the data area */
		if (room > wp - r->pos)
			return RT_READ_RECHECK;
		r->pos += room;
		return RT_READ_AGAIN;
	}
	*off_out = off;
	return RT_RING_OK;
}

/* Count a record returned (and what was lost before it) in the reader and its slot */
RT_INLINE void
RtRingReaderAccount(RtRingReader *r, uint64_t seq, uint64_t size, uint64_t lost)
{
	RtRingSlot *s = &r->hdr->slots[r->slot];

	r->expected_seq = seq + 1;
	r->pos += size;
	r->records_read++;
	RtRingReaderStorePos(r);
	RT_STORE_RELAXED(&s->records_read, r->records_read);
	if (lost != 0)
	{
		r->records_lost += lost;
		RT_STORE_RELAXED(&s->records_lost, r->records_lost);
	}
}

/*
 * Validate the record header at data offset off (below write_pos wp) and copy
 * its payload out: RT_RING_OK, RT_RING_BUFFER_SMALL or a step outcome.
 */
RT_INLINE int
RtRingReaderTake(RtRingReader *r, uint64_t wp, uint64_t off, void *buf, uint32_t buf_cap,
                 RtRingRecordInfo *info)
{
	RtRingHeader *h = r->hdr;
	const RtRingRecordHeader *rh = (const RtRingRecordHeader *)(r->data + off);
	uint32_t len = RT_LOAD_RELAXED(&rh->length);
	uint16_t type = RT_LOAD_RELAXED(&rh->type);
	uint16_t flags = RT_LOAD_RELAXED(&rh->flags);
	uint64_t seq = RT_LOAD_RELAXED(&rh->seq);
	uint64_t size = RtRingRecordSize(len);
	uint64_t room = r->capacity - off;
	uint64_t lost;

	if (type == 0 || type > RT_REC_TYPE_MAX || size > room || size > wp - r->pos ||
	    (type != RT_REC_PAD && size > RtRingMaxRecord(r->capacity)))
		return RT_READ_RECHECK;
	if (type == RT_REC_PAD)
	{
		r->pos += size;
		return RT_READ_AGAIN;
	}
	if (len > buf_cap)
	{
		/* make sure the length was not read from bytes being overwritten */
		RT_FENCE_ACQUIRE();
		if (r->pos < RT_LOAD_RELAXED(&h->tail_pos))
			return RT_READ_AGAIN;
		RtRingFillInfo(info, seq, r->pos, 0, len, type, flags);
		RtRingReaderStorePos(r);
		return RT_RING_BUFFER_SMALL;
	}
	if (len > 0)
		__builtin_memcpy(buf, r->data + off + RT_RING_RECORD_HEADER_SIZE, len);
	/* the copy is good only if the writer did not start overwriting it */
	RT_FENCE_ACQUIRE();
	if (r->pos < RT_LOAD_RELAXED(&h->tail_pos))
		return RT_READ_AGAIN;
	if (seq == 0 || (r->expected_seq != 0 && seq < r->expected_seq))
		return RT_READ_CORRUPT; /* sequence numbers only go up */
	lost = r->expected_seq != 0 ? seq - r->expected_seq : 0;
	RtRingFillInfo(info, seq, r->pos, lost, len, type, flags);
	RtRingReaderAccount(r, seq, size, lost);
	return RT_RING_OK;
}

/* Corrupt bytes under our position: go on at write_pos */
RT_INLINE int
RtRingReaderSkipCorrupt(RtRingReader *r)
{
	uint64_t wp = RT_LOAD_ACQUIRE(&r->hdr->write_pos);

	r->pos = wp % RT_RING_ALIGN == 0 ? wp : RtRingAlign(wp);
	RtRingReaderStorePos(r);
	return RT_RING_CORRUPT;
}

/*
 * Copy the next record's payload into buf (buf_cap bytes) and describe it in
 * *info. Returns RT_RING_OK, RT_RING_EMPTY (also CLOSED / RESET at the end),
 * RT_RING_BUFFER_SMALL (info->length says how much; nothing consumed),
 * RT_RING_EVICTED (RtRingReaderAttach with RT_RING_START_RESUME), or
 * RT_RING_CORRUPT (invalid bytes were skipped: the reader went on at
 * write_pos; the next record's info->lost counts what was skipped if its
 * sequence number is sane). PAD records are skipped. Records lost to a lapping
 * writer or announced by GAP records show as info->lost on the next record
 * returned; the record itself is copied whole or not at all.
 */
RT_INLINE int
RtRingReadNext(RtRingReader *r, void *buf, uint32_t buf_cap, RtRingRecordInfo *info)
{
	if (!r->attached || info == NULL || (buf == NULL && buf_cap > 0))
		return RT_RING_BAD_ARGUMENT;
	if (!RtRingReaderOwnsSlot(r))
	{
		int end = RtRingReaderEndState(r);

		r->attached = 0;
		return end == RT_RING_RESET ? RT_RING_RESET : RT_RING_EVICTED;
	}
	for (;;)
	{
		uint64_t wp = 0, off = 0;
		int rc = RtRingReaderLocate(r, &wp, &off);

		if (rc == RT_RING_OK)
			rc = RtRingReaderTake(r, wp, off, buf, buf_cap, info);
		if (rc == RT_READ_RECHECK)
		{
			/* invalid bytes under our position: overwritten meanwhile (lapped), or corrupt */
			RT_FENCE_ACQUIRE();
			rc = r->pos < RT_LOAD_RELAXED(&r->hdr->tail_pos) ? RT_READ_AGAIN : RT_READ_CORRUPT;
		}
		if (rc == RT_READ_AGAIN)
			continue;
		if (rc == RT_READ_CORRUPT)
			return RtRingReaderSkipCorrupt(r);
		return rc;
	}
}

/*
 * Before sleeping on the futex: count ourselves as a sleeper and read the
 * futex word into *futex_val. Returns 1 if the caller may
 * FUTEX_WAIT(RtRingFutexWord(hdr), *futex_val, timeout) (then it must call
 * RtRingReaderFinishWait), 0 if something is already there to read (nothing
 * to undo). Use a timeout shorter than the heartbeat period.
 */
RT_INLINE int
RtRingReaderPrepareWait(RtRingReader *r, uint32_t *futex_val)
{
	RtRingHeader *h = r->hdr;

	RT_FETCH_ADD_SEQ_CST(&h->sleepers, 1u);
	*futex_val = RT_LOAD_SEQ_CST(&h->futex);
	if (RT_LOAD_ACQUIRE(&h->write_pos) != r->pos || RT_LOAD_ACQUIRE(&h->closed) != 0 ||
	    !RtRingReaderOwnsSlot(r))
	{
		RT_FETCH_SUB_SEQ_CST(&h->sleepers, 1u);
		return 0;
	}
	return 1;
}

/* After FUTEX_WAIT returned (woken, timed out or interrupted) */
RT_INLINE void
RtRingReaderFinishWait(RtRingReader *r)
{
	RT_FETCH_SUB_SEQ_CST(&r->hdr->sleepers, 1u);
}

#endif /* RT_RING_READER_H */
