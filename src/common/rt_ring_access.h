/*
 * rt_ring_access.h: how either side touches the shared ring (format in rt_ring.h):
 * the atomics every shared load and store goes through, header validation,
 * the futex word, slot liveness and the writer's decoded LSN. Memory ordering
 * is described at the top of rt_ring.h.
 */

#ifndef RT_RING_ACCESS_H
#define RT_RING_ACCESS_H

#include "rt_ring.h"

/* ------------------------------------------------------------------------
 * Atomics
 * ------------------------------------------------------------------------ */

/*
 * Every load or store of a shared field goes through these (GCC/Clang __atomic
 * builtins, lock-free for the aligned 4- and 8-byte fields used here), so the
 * compiler never tears, fuses or re-reads a shared value: a length is
 * validated and used as one single read.
 */
#define RT_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define RT_LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define RT_LOAD_SEQ_CST(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define RT_STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define RT_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define RT_FETCH_ADD_SEQ_CST(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define RT_FETCH_SUB_SEQ_CST(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
/* strong compare-and-swap; *expected is updated with the current value on failure */
#define RT_CAS(p, expected, desired)                                                               \
	__atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define RT_FENCE_ACQUIRE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define RT_FENCE_RELEASE() __atomic_thread_fence(__ATOMIC_RELEASE)

/* ------------------------------------------------------------------------
 * Shared header access
 * ------------------------------------------------------------------------ */

/* The futex word, for FUTEX_WAIT / FUTEX_WAKE (never FUTEX_PRIVATE_FLAG) */
RT_INLINE uint32_t *
RtRingFutexWord(RtRingHeader *hdr)
{
	return &hdr->futex;
}

/* Whether a slot is live: state live and a heartbeat within timeout_ms of now */
RT_INLINE int
RtRingSlotLive(uint64_t owner, uint64_t heartbeat_ms, uint64_t now_ms, uint64_t timeout_ms)
{
	if (RT_SLOT_STATE(owner) != RT_SLOT_LIVE)
		return 0;
	/* a heartbeat from the future (clock skew, hostile value) counts as fresh */
	return heartbeat_ms >= now_ms || now_ms - heartbeat_ms <= timeout_ms;
}

/*
 * Validate a mapped header: magic, major version, header size, slot count,
 * capacity, and that the data area fits in the mapping. Used by readers at
 * open and by a restarting writer.
 */
RT_INLINE int
RtRingCheckHeader(const void *base, uint64_t map_len, uint64_t *capacity_out,
                  uint32_t *header_size_out)
{
	const RtRingHeader *h = (const RtRingHeader *)base;
	uint32_t header_size;
	uint64_t capacity;

	if (base == NULL || ((uintptr_t)base & 63) != 0)
		return RT_RING_BAD_ARGUMENT;
	if (map_len < RT_RING_HEADER_SIZE)
		return RT_RING_BAD_LAYOUT;
	if (RT_LOAD_ACQUIRE(&h->magic) != RT_RING_MAGIC)
		return RT_RING_BAD_MAGIC;
	if (RT_LOAD_RELAXED(&h->version_major) != RT_RING_VERSION_MAJOR)
		return RT_RING_BAD_VERSION;
	header_size = RT_LOAD_RELAXED(&h->header_size);
	capacity = RT_LOAD_RELAXED(&h->capacity);
	if (header_size < RT_RING_HEADER_SIZE || header_size > RT_RING_MAX_HEADER_SIZE ||
	    header_size % 64 != 0 || RT_LOAD_RELAXED(&h->slot_count) != RT_RING_SLOTS)
		return RT_RING_BAD_LAYOUT;
	if (!RtRingCapacityValid(capacity) || map_len < header_size || capacity > map_len - header_size)
		return RT_RING_BAD_LAYOUT;
	*capacity_out = capacity;
	*header_size_out = header_size;
	return RT_RING_OK;
}

/*
 * The writer's decoded_lsn (0 before a 1.1 writer set one). Load it before
 * RtRingReadNext: when that then returns RT_RING_EMPTY, the reader has read
 * every record of the transactions that committed before it.
 */
RT_INLINE uint64_t
RtRingDecodedLsn(const RtRingHeader *hdr)
{
	return RT_LOAD_ACQUIRE(&hdr->decoded_lsn);
}

#endif /* RT_RING_ACCESS_H */
