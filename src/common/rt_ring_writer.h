/*
 * rt_ring_writer.h: the ring's one writer (the decoder background worker through
 * src/extension/ring_writer.cpp; the unit tests and fuzzer drive it directly).
 * It keeps positions, sequence numbers and geometry in its own memory and only
 * stores them to the shared header (see "Trust" in rt_ring.h).
 */

#ifndef RT_RING_WRITER_H
#define RT_RING_WRITER_H

#include "rt_ring_access.h"

/* ------------------------------------------------------------------------
 * Process-local handles (not shared: pointers and copies are fine here)
 * ------------------------------------------------------------------------ */

/* The writer's state. Shared fields are stored from here, never trusted back. */
typedef struct RtRingWriter
{
	RtRingHeader *hdr;
	uint8_t *data;
	uint64_t capacity;
	uint64_t mask;
	uint64_t reader_timeout_ms; /* a slot without heartbeat for longer is dead */
	uint64_t write_pos;
	uint64_t tail_pos;
	uint64_t next_seq;
	uint64_t records_written;
	uint64_t records_dropped;
	uint64_t bytes_dropped;
	uint64_t records_too_large;
	uint64_t records_skipped;
	uint64_t corrupt_resets;
} RtRingWriter;

/* ------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------ */

/* Store the writer's positions and counters to the shared header (relaxed). */
RT_INLINE void
RtRingWriterPublishCounters(RtRingWriter *w)
{
	RtRingHeader *h = w->hdr;

	RT_STORE_RELAXED(&h->next_seq, w->next_seq);
	RT_STORE_RELAXED(&h->records_written, w->records_written);
	RT_STORE_RELAXED(&h->records_dropped, w->records_dropped);
	RT_STORE_RELAXED(&h->bytes_dropped, w->bytes_dropped);
	RT_STORE_RELAXED(&h->records_too_large, w->records_too_large);
	RT_STORE_RELAXED(&h->records_skipped, w->records_skipped);
	RT_STORE_RELAXED(&h->corrupt_resets, w->corrupt_resets);
}

/* Point a zeroed writer at the ring mapped at base (its geometry from the caller, never the file)
 */
RT_INLINE void
RtRingWriterBind(RtRingWriter *w, void *base, uint64_t capacity, uint64_t reader_timeout_ms)
{
	__builtin_memset(w, 0, sizeof(*w));
	w->hdr = (RtRingHeader *)base;
	w->data = (uint8_t *)base + RT_RING_HEADER_SIZE;
	w->capacity = capacity;
	w->mask = capacity - 1;
	w->reader_timeout_ms = reader_timeout_ms;
}

/*
 * Initialise a new, empty ring in a mapping of map_len bytes at base (the
 * caller zero-filled or just created the file). Readers are refused until the
 * magic, stored last with release, is there. epoch identifies this ring
 * instance (e.g. wall-clock ns ^ pid): readers notice a re-initialisation.
 */
RT_INLINE int
RtRingWriterInit(RtRingWriter *w, void *base, uint64_t map_len, uint64_t capacity, uint64_t epoch,
                 uint32_t writer_pid, uint64_t now_ms, uint64_t reader_timeout_ms)
{
	RtRingHeader *h = (RtRingHeader *)base;
	uint32_t i;

	if (w == NULL || base == NULL || ((uintptr_t)base & 63) != 0)
		return RT_RING_BAD_ARGUMENT;
	if (!RtRingCapacityValid(capacity) || map_len < RtRingFileSize(capacity))
		return RT_RING_BAD_LAYOUT;

	RT_STORE_RELAXED(&h->magic, 0u); /* readers refuse the ring while we fill it in */
	RT_FENCE_RELEASE();
	__builtin_memset((uint8_t *)base + sizeof(h->magic), 0, RT_RING_HEADER_SIZE - sizeof(h->magic));
	h->version_major = RT_RING_VERSION_MAJOR;
	h->version_minor = RT_RING_VERSION_MINOR;
	h->header_size = RT_RING_HEADER_SIZE;
	h->slot_count = RT_RING_SLOTS;
	h->capacity = capacity;
	h->epoch = epoch;
	h->next_seq = 1;
	h->write_seq = 1;
	h->writer_heartbeat_ms = now_ms;
	h->writer_pid = writer_pid;
	for (i = 0; i < RT_RING_SLOTS; i++)
		h->slots[i].owner = RT_SLOT_OWNER(0, RT_SLOT_FREE);

	RtRingWriterBind(w, base, capacity, reader_timeout_ms);
	w->next_seq = 1;

	RT_STORE_RELEASE(&h->magic, RT_RING_MAGIC);
	return RT_RING_OK;
}

/*
 * Take over an existing ring after a writer restart (same file, same server),
 * keeping its readers attached and its positions and sequence numbers. The
 * shared positions are validated; anything odd re-initialises the ring with
 * new_epoch instead (readers then see RT_RING_RESET or RT_RING_EVICTED).
 */
RT_INLINE int
RtRingWriterResume(RtRingWriter *w, void *base, uint64_t map_len, uint64_t new_epoch,
                   uint32_t writer_pid, uint64_t now_ms, uint64_t reader_timeout_ms)
{
	RtRingHeader *h = (RtRingHeader *)base;
	uint64_t capacity = 0;
	uint32_t header_size = 0;
	uint64_t wp, tail, seq;
	int rc;

	rc = RtRingCheckHeader(base, map_len, &capacity, &header_size);
	if (rc == RT_RING_BAD_ARGUMENT)
		return rc;
	if (rc != RT_RING_OK || header_size != RT_RING_HEADER_SIZE ||
	    RT_LOAD_RELAXED(&h->version_minor) != RT_RING_VERSION_MINOR ||
	    RT_LOAD_RELAXED(&h->closed) != 0)
		goto reinit;
	wp = RT_LOAD_RELAXED(&h->write_pos);
	tail = RT_LOAD_RELAXED(&h->tail_pos);
	seq = RT_LOAD_RELAXED(&h->next_seq);
	if (wp % RT_RING_ALIGN != 0 || tail % RT_RING_ALIGN != 0 || tail > wp || wp - tail > capacity ||
	    seq == 0 || seq > UINT64_MAX / 2)
		goto reinit;

	RtRingWriterBind(w, base, capacity, reader_timeout_ms);
	w->write_pos = wp;
	w->tail_pos = tail;
	w->next_seq = seq;
	/* a writer that died between its next_seq and write_seq stores: never reuse a number */
	RT_STORE_RELEASE(&h->write_seq, seq);
	w->records_written = RT_LOAD_RELAXED(&h->records_written);
	w->records_dropped = RT_LOAD_RELAXED(&h->records_dropped);
	w->bytes_dropped = RT_LOAD_RELAXED(&h->bytes_dropped);
	w->records_too_large = RT_LOAD_RELAXED(&h->records_too_large);
	w->records_skipped = RT_LOAD_RELAXED(&h->records_skipped);
	w->corrupt_resets = RT_LOAD_RELAXED(&h->corrupt_resets);
	RT_STORE_RELAXED(&h->writer_pid, writer_pid);
	RT_STORE_RELAXED(&h->writer_heartbeat_ms, now_ms);
	return RT_RING_OK;

reinit:
	if (!RtRingCapacityValid(capacity) || map_len < RtRingFileSize(capacity))
	{
		/* the header says nothing usable: the largest power of two that fits */
		if (map_len < RtRingFileSize(RT_RING_MIN_CAPACITY))
			return RT_RING_BAD_LAYOUT;
		capacity = RT_RING_MIN_CAPACITY;
		while (capacity * 2 <= RT_RING_MAX_CAPACITY && RtRingFileSize(capacity * 2) <= map_len)
			capacity *= 2;
	}
	return RtRingWriterInit(w, base, map_len, capacity, new_epoch, writer_pid, now_ms,
	                        reader_timeout_ms);
}

/*
 * The oldest position a live reader still needs: the minimum read_pos over
 * live slots, clamped to [tail_pos, write_pos]; write_pos when none is live.
 * Slots whose heartbeat is older than the timeout are reclaimed on the way
 * (state back to free, generation kept: the claim bumps it). *live_out, if
 * given, receives the number of live readers.
 */
RT_INLINE uint64_t
RtRingWriterOldestNeeded(RtRingWriter *w, uint64_t now_ms, uint32_t *live_out)
{
	RtRingHeader *h = w->hdr;
	uint64_t oldest = w->write_pos;
	uint32_t live = 0;
	uint32_t i;

	for (i = 0; i < RT_RING_SLOTS; i++)
	{
		RtRingSlot *s = &h->slots[i];
		uint64_t owner = RT_LOAD_ACQUIRE(&s->owner);
		uint32_t state = RT_SLOT_STATE(owner);
		uint64_t hb, pos;

		if (state == RT_SLOT_FREE)
			continue;
		hb = RT_LOAD_ACQUIRE(&s->heartbeat_ms);
		if (!RtRingSlotLive(owner, hb, now_ms, w->reader_timeout_ms))
		{
			/*
			 * Dead (or stuck claiming: the claimant stores a fresh heartbeat
			 * before it goes live, so this only frees a claimant that died or
			 * stalled for longer than the timeout; its final CAS then fails
			 * and it claims again). A CLAIMING slot is never protected.
			 */
			if (state == RT_SLOT_LIVE || (hb < now_ms && now_ms - hb > w->reader_timeout_ms))
				RT_CAS(&s->owner, &owner, RT_SLOT_OWNER(RT_SLOT_GENERATION(owner), RT_SLOT_FREE));
			continue;
		}
		pos = RT_LOAD_ACQUIRE(&s->read_pos);
		/* untrusted: a reader cannot hold back more than the ring, nor the future */
		if (pos < w->tail_pos)
			pos = w->tail_pos;
		if (pos > w->write_pos)
			pos = w->write_pos;
		if (pos < oldest)
			oldest = pos;
		live++;
	}
	if (live_out != NULL)
		*live_out = live;
	return oldest;
}

/*
 * Move tail_pos forward, record by record, to at least need. Records at or
 * after `oldest` (the oldest byte a live reader still needs) are counted as
 * dropped. The data area is writable by readers too, so every record header
 * walked is validated; a bad one drops everything up to write_pos.
 */
RT_INLINE void
RtRingWriterAdvanceTail(RtRingWriter *w, uint64_t need, uint64_t oldest)
{
	uint64_t t = w->tail_pos;
	uint64_t max_record = RtRingMaxRecord(w->capacity);

	while (t < need)
	{
		uint64_t off = t & w->mask;
		uint64_t room = w->capacity - off;
		const RtRingRecordHeader *rh;
		uint32_t len;
		uint16_t type;
		uint64_t size;

		if (room < RT_RING_RECORD_HEADER_SIZE && room <= w->write_pos - t)
		{
			t += room; /* implicit padding */
			continue;
		}
		if (room < RT_RING_RECORD_HEADER_SIZE)
		{
			w->corrupt_resets++;
			t = w->write_pos;
			break;
		}
		rh = (const RtRingRecordHeader *)(w->data + off);
		len = RT_LOAD_RELAXED(&rh->length);
		type = RT_LOAD_RELAXED(&rh->type);
		size = RtRingRecordSize(len);
		if (type == 0 || type > RT_REC_TYPE_MAX || size > room || size > w->write_pos - t ||
		    (type != RT_REC_PAD && size > max_record))
		{
			w->corrupt_resets++;
			t = w->write_pos;
			break;
		}
		if (type != RT_REC_PAD && t >= oldest)
		{
			w->records_dropped++;
			w->bytes_dropped += size;
		}
		t += size;
	}
	w->tail_pos = t;
	RT_STORE_RELEASE(&w->hdr->tail_pos, t);
	/* the tail store must be visible before any byte of the old data changes */
	RT_FENCE_RELEASE();
}

/* Write one record header at data offset off */
RT_INLINE void
RtRingWriteRecordHeader(RtRingWriter *w, uint64_t off, uint32_t len, uint16_t type, uint16_t flags,
                        uint64_t seq)
{
	RtRingRecordHeader *rh = (RtRingRecordHeader *)(w->data + off);

	RT_STORE_RELAXED(&rh->length, len);
	RT_STORE_RELAXED(&rh->type, type);
	RT_STORE_RELAXED(&rh->flags, flags);
	RT_STORE_RELAXED(&rh->seq, seq);
}

/*
 * Append one record whose sequence number is next_seq + seq_skip (the skipped
 * numbers are never written: readers count them as lost). Shared by
 * RtRingAppend and RtRingAppendGap; see RtRingAppend.
 */
RT_INLINE int
RtRingAppendSeq(RtRingWriter *w, uint16_t type, uint16_t flags, const void *payload, uint32_t len,
                uint64_t seq_skip, uint64_t now_ms, int force)
{
	uint64_t size, off, room, pad, need_end, seq;

	if (type == RT_REC_PAD || type == 0 || type > RT_REC_TYPE_MAX || (len > 0 && payload == NULL))
		return RT_RING_BAD_ARGUMENT;
	if ((uint64_t)len > RtRingMaxPayload(w->capacity))
	{
		w->records_too_large++;
		RT_STORE_RELAXED(&w->hdr->records_too_large, w->records_too_large);
		return RT_RING_TOO_LARGE;
	}
	size = RtRingRecordSize(len);
	off = w->write_pos & w->mask;
	room = w->capacity - off;
	pad = size > room ? room : 0; /* never straddle the end: fill it and start at 0 */
	need_end = w->write_pos + pad + size;

	if (need_end - w->tail_pos > w->capacity)
	{
		uint64_t need_tail = need_end - w->capacity;
		uint64_t oldest = RtRingWriterOldestNeeded(w, now_ms, NULL);

		if (need_tail > oldest && !force)
			return RT_RING_FULL;
		RtRingWriterAdvanceTail(w, need_tail, oldest);
		/* a corrupt walk put tail at write_pos: nothing is left to protect */
	}

	if (pad >= RT_RING_RECORD_HEADER_SIZE)
		RtRingWriteRecordHeader(w, off, (uint32_t)(pad - RT_RING_RECORD_HEADER_SIZE), RT_REC_PAD, 0,
		                        0);
	off = (w->write_pos + pad) & w->mask;
	seq = w->next_seq + seq_skip;
	RtRingWriteRecordHeader(w, off, len, type, flags, seq);
	if (len > 0)
		__builtin_memcpy(w->data + off + RT_RING_RECORD_HEADER_SIZE, payload, len);
	if (size - RT_RING_RECORD_HEADER_SIZE > len)
		__builtin_memset(w->data + off + RT_RING_RECORD_HEADER_SIZE + len, 0,
		                 size - RT_RING_RECORD_HEADER_SIZE - len);

	w->next_seq = seq + 1;
	w->records_written++;
	w->write_pos = need_end;
	RtRingWriterPublishCounters(w); /* next_seq before write_pos */
	RT_STORE_RELEASE(&w->hdr->write_pos, need_end);
	RT_STORE_RELEASE(&w->hdr->write_seq, w->next_seq); /* and write_seq after it */
	return RT_RING_OK;
}

/*
 * Append one record (type MESSAGE or CHANGE). Without force, RT_RING_FULL when
 * it would overwrite bytes a live reader has not read: nothing changed; the
 * caller pauses decoding and retries. With force (the caller's max lag is
 * exceeded) it overwrites: tail_pos moves first and what live readers lose is
 * counted. With no live reader it always overwrites freely, counting nothing.
 * RT_RING_TOO_LARGE (counted) for a payload over RtRingMaxPayload(capacity).
 * The caller then calls RtRingWriterNotify and wakes readers if asked.
 */
RT_INLINE int
RtRingAppend(RtRingWriter *w, uint16_t type, uint16_t flags, const void *payload, uint32_t len,
             uint64_t now_ms, int force)
{
	if (type == RT_REC_GAP)
		return RT_RING_BAD_ARGUMENT;
	return RtRingAppendSeq(w, type, flags, payload, len, 0, now_ms, force);
}

/*
 * Tell readers that `skipped` records were dropped before reaching the ring
 * (reason RT_GAP_*): their sequence numbers are consumed, then a GAP record
 * says why. Same FULL/force rules as RtRingAppend.
 */
RT_INLINE int
RtRingAppendGap(RtRingWriter *w, uint64_t skipped, uint32_t reason, uint64_t now_ms, int force)
{
	RtRingGapPayload gap;
	int rc;

	if (skipped > UINT64_MAX / 4)
		return RT_RING_BAD_ARGUMENT;
	gap.skipped = skipped;
	gap.reason = reason;
	gap.reserved = 0;
	rc = RtRingAppendSeq(w, RT_REC_GAP, 0, &gap, (uint32_t)sizeof(gap), skipped, now_ms, force);
	if (rc == RT_RING_OK)
	{
		w->records_skipped += skipped;
		RT_STORE_RELAXED(&w->hdr->records_skipped, w->records_skipped);
	}
	return rc;
}

/*
 * After publishing (once per batch is enough): bump the futex word. Returns
 * nonzero when readers may be sleeping, i.e. the caller should
 * FUTEX_WAKE(RtRingFutexWord(hdr), INT_MAX). A reader that died asleep leaves
 * sleepers too high: that costs a spare wake-up, never a missed one.
 */
RT_INLINE uint32_t
RtRingWriterNotify(RtRingWriter *w)
{
	/* seq_cst pairs with RtRingReaderPrepareWait: either we see its sleeper
	 * count or it sees our new futex value (and the write_pos before it) */
	RT_FETCH_ADD_SEQ_CST(&w->hdr->futex, 1u);
	return RT_LOAD_SEQ_CST(&w->hdr->sleepers);
}

/* The writer is alive */
RT_INLINE void
RtRingWriterHeartbeat(RtRingWriter *w, uint64_t now_ms)
{
	RT_STORE_RELAXED(&w->hdr->writer_heartbeat_ms, now_ms);
}

/*
 * Everything committed before lsn (a WAL position) is now in the ring: call
 * after publishing its records. Never moves back.
 */
RT_INLINE void
RtRingWriterSetDecodedLsn(RtRingWriter *w, uint64_t lsn)
{
	if (lsn > RT_LOAD_RELAXED(&w->hdr->decoded_lsn))
		RT_STORE_RELEASE(&w->hdr->decoded_lsn, lsn);
}

/*
 * Retire this ring (a new file replaces it): readers drain what is left, then
 * get RT_RING_CLOSED. The caller then notifies and wakes.
 */
RT_INLINE void
RtRingWriterClose(RtRingWriter *w)
{
	RT_STORE_RELEASE(&w->hdr->closed, 1u);
}

#endif /* RT_RING_WRITER_H */
