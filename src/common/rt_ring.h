/*
 * rt_ring.h: THE shared-memory ring between the database and the sidecar, and
 * the limits both sides agree on.
 *
 * One writer (the decoder background worker, C++17 inside PostgreSQL) appends
 * records to a file mapped MAP_SHARED; N readers (realtime-fanout's ring reader
 * threads, C++20, possibly another OS user in the server's group) copy them
 * out. This is the only header both sides include; it compiles as C11, C++17
 * (-fno-exceptions, after the Postgres headers) and C++20, and includes only
 * <stdint.h> and <stddef.h>.
 *
 * Every function here is pure over the mapped memory: no syscalls, no clock,
 * no allocation. Callers pass the time (milliseconds of CLOCK_MONOTONIC, which
 * is system-wide and so comparable across processes of one host and time
 * namespace) and do the futex calls themselves (RtRingWriterNotify,
 * RtRingReaderPrepareWait).
 *
 * Layout of the file:
 *
 *   [0, header_size)                       RtRingHeader (4096 bytes in 1.x)
 *   [header_size, header_size + capacity)  data area, capacity a power of two
 *
 * Positions are 64-bit byte counts since the ring was created; they never wrap
 * (2^64 bytes is centuries at any rate) and a position maps to data offset
 * pos & (capacity - 1). [tail_pos, write_pos) holds valid records, at most
 * capacity bytes. A record is a 16-byte RtRingRecordHeader plus its payload,
 * padded to 8 bytes; it never straddles the end of the data area: the writer
 * fills the rest with a PAD record, or leaves fewer than 16 bytes that readers
 * skip as implicit padding.
 *
 * Trust. The writer keeps its positions, sequence numbers and the ring's
 * geometry in its own process memory (RtRingWriter) and only stores them to
 * the shared header: readers need the file read-write (their slot lives in
 * it), so anything they can write is validated or clamped before the writer
 * uses it, and nothing in the shared file can make the server write outside
 * the mapping. Readers likewise copy the geometry once, at open, and validate
 * every length, type and position they read afterwards, so a corrupt or
 * hostile ring never makes them read outside the mapping either.
 *
 * Memory ordering (one writer, per ARCHITECTURE.md "Backpressure and loss"):
 *   writer: copy the record; RT_STORE_RELEASE(write_pos)
 *   writer, before overwriting old bytes: RT_STORE_RELEASE(tail_pos);
 *           RT_FENCE_RELEASE() (orders the tail store before the data stores)
 *   reader: RT_LOAD_ACQUIRE(write_pos); copy the record out; RT_FENCE_ACQUIRE();
 *           re-read tail_pos; drop the copy if the writer passed its position
 *   reader: RT_STORE_RELEASE(slot.read_pos) after the copy, so the writer that
 *           acquire-loads it never overwrites bytes still being read
 */
#ifndef RT_RING_H
#define RT_RING_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * Limits both sides agree on, so that a message the database accepts is one
 * the sidecar will deliver.
 * ------------------------------------------------------------------------ */

/* upstream's default tenant limit, max_payload_size_in_kb (PROTOCOL.md 9.1) */
#define RT_DEFAULT_MAX_PAYLOAD_KB 3000

/* upstream measures the whole push with 500 bytes of slack (PROTOCOL.md 4.2) */
#define RT_PAYLOAD_SLACK_BYTES 500

/* the largest WebSocket message accepted (PROTOCOL.md 1.2) */
#define RT_MAX_FRAME_BYTES 5000000

/* ------------------------------------------------------------------------
 * Portability: static assertions and atomics
 * ------------------------------------------------------------------------ */

#ifdef __cplusplus
#define RT_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define RT_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* unused: Clang warns about unused static inline functions of a main file */
#define RT_INLINE static inline __attribute__((unused))

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
 * Format constants
 * ------------------------------------------------------------------------ */

#define RT_RING_MAGIC 0x47525452u /* "RTRG" in memory on little-endian hosts */
#define RT_RING_VERSION_MAJOR 1   /* readers refuse any other major */
#define RT_RING_VERSION_MINOR 1   /* additions that 1.0 readers may ignore (1.1: decoded_lsn) */
#define RT_RING_HEADER_SIZE 4096  /* 1.x header; data starts at header_size */
#define RT_RING_MAX_HEADER_SIZE (1u << 20)
#define RT_RING_SLOTS 16 /* reader slots in a 1.x header */
#define RT_RING_MIN_CAPACITY 4096u
#define RT_RING_MAX_CAPACITY (UINT64_C(1) << 40)
#define RT_RING_ALIGN 8
#define RT_RING_RECORD_HEADER_SIZE 16

/*
 * Record types. 0 is never valid, so a zeroed (never written) area is always
 * rejected instead of being read as an empty record.
 */
#define RT_REC_PAD 1     /* filler up to the end of the data area; no sequence number */
#define RT_REC_MESSAGE 2 /* realtime.send / broadcast_changes, one logical message */
#define RT_REC_CHANGE 3  /* one committed row change */
#define RT_REC_GAP 4     /* the writer skipped records: payload RtRingGapPayload */
#define RT_REC_TYPE_MAX 4

/* Why the writer skipped records (RtRingGapPayload.reason) */
#define RT_GAP_TOO_LARGE 1    /* record over the ring's maximum record size */
#define RT_GAP_MAX_LAG 2      /* dropped before the ring, past realtime.max_lag_bytes */
#define RT_GAP_WRITER_ERROR 3 /* the writer failed to encode or lost records */

/* Reader slot states (low 8 bits of RtRingSlot.owner; the rest is the generation) */
#define RT_SLOT_FREE 0
#define RT_SLOT_CLAIMING 1 /* claimed, being filled in; not yet protected by the writer */
#define RT_SLOT_LIVE 2
#define RT_SLOT_STATE(owner) ((uint32_t)((owner)&0xffu))
#define RT_SLOT_GENERATION(owner) ((owner) >> 8)
#define RT_SLOT_OWNER(generation, state) (((uint64_t)(generation) << 8) | (uint64_t)(state))

/* Results (function return values, never stored in shared memory) */
#define RT_RING_OK 0           /* done; for RtRingReadNext: a record was copied out */
#define RT_RING_EMPTY 1        /* reader: nothing new; wait on the futex */
#define RT_RING_FULL 2         /* writer: would overwrite bytes a live reader has not read */
#define RT_RING_TOO_LARGE 3    /* writer: record over RtRingMaxPayload(capacity) */
#define RT_RING_BUFFER_SMALL 4 /* reader: info->length bytes needed; nothing consumed */
#define RT_RING_EVICTED 5      /* reader: the writer reclaimed our slot; reattach */
#define RT_RING_CLOSED 6       /* reader: the writer retired this file; open the path again */
#define RT_RING_RESET 7        /* reader: the ring was initialised again under us; reopen */
#define RT_RING_CORRUPT 8      /* reader: invalid bytes; skipped to write_pos */
#define RT_RING_BAD_MAGIC 9    /* not a ring, or not initialised yet */
#define RT_RING_BAD_VERSION 10 /* another major version */
#define RT_RING_BAD_LAYOUT 11  /* header size, slot count, capacity or mapping size wrong */
#define RT_RING_NO_SLOT 12     /* reader: all slots are taken */
#define RT_RING_BAD_ARGUMENT 13

/* RtRingReaderAttach start positions */
#define RT_RING_START_LATEST 0 /* at write_pos: only what is written from now on */
#define RT_RING_START_OLDEST 1 /* at tail_pos: everything still in the ring */
#define RT_RING_START_RESUME 2 /* where this reader was (after RT_RING_EVICTED) */

/* ------------------------------------------------------------------------
 * Shared structures. Fixed-width fields, explicit padding, native byte order
 * (both sides run on one host). No bool, enum, pointer or size_t.
 * ------------------------------------------------------------------------ */

/* One reader's slot: 64 bytes, its own cache line. */
typedef struct RtRingSlot
{
	uint64_t owner;        /* generation << 8 | RT_SLOT_*; one word so claim/reclaim is one CAS */
	uint64_t read_pos;     /* next byte to read; the writer keeps [read_pos, write_pos) */
	uint64_t heartbeat_ms; /* CLOCK_MONOTONIC ms of the last sign of life */
	uint64_t records_read; /* reader statistics, for realtime.stats() */
	uint64_t records_lost; /* records this reader saw missing (sequence gaps) */
	uint64_t attached_ms;  /* CLOCK_MONOTONIC ms of the claim */
	uint32_t pid;          /* for diagnostics only; liveness is the heartbeat */
	uint32_t reserved0;
	uint64_t reserved1;
} RtRingSlot;

/*
 * The header, at offset 0 of the file. Lines are grouped by who writes them so
 * that readers polling write_pos do not share a cache line with readers
 * counting sleepers.
 */
typedef struct RtRingHeader
{
	/* 0: identity; written by RtRingWriterInit, magic last (release) */
	uint32_t magic;
	uint16_t version_major;
	uint16_t version_minor;
	uint32_t header_size; /* data area offset; >= RT_RING_HEADER_SIZE, multiple of 64 */
	uint32_t slot_count;  /* RT_RING_SLOTS */
	uint64_t capacity;    /* data area bytes, a power of two */
	uint64_t epoch;       /* chosen by the writer at init; changes if re-initialised */
	uint32_t closed;      /* 1: the writer retired this file (a new one replaces it) */
	uint32_t reserved0;
	uint8_t reserved1[24];

	/* 64: the writer's hot line; readers poll write_pos and tail_pos */
	uint64_t write_pos; /* end of the last published record */
	uint64_t tail_pos;  /* oldest valid byte; moved forward before overwriting */
	uint64_t next_seq;  /* sequence number of the next record (first is 1); stored before
	                     * write_pos, write_seq after it: equal values bracket a consistent
	                     * (write_pos, next seq) pair for a reader attaching at the end */
	uint64_t write_seq;
	uint64_t records_written;   /* records appended (PAD excluded) */
	uint64_t records_dropped;   /* records overwritten before a live reader released them */
	uint64_t bytes_dropped;     /* their bytes */
	uint64_t records_too_large; /* appends refused with RT_RING_TOO_LARGE */

	/* 128: writer status */
	uint64_t records_skipped;     /* records announced lost by GAP records */
	uint64_t writer_heartbeat_ms; /* CLOCK_MONOTONIC ms; stale = no decoder */
	uint64_t corrupt_resets;      /* times the writer found its own data corrupt */
	uint32_t writer_pid;
	uint32_t reserved2;
	uint64_t decoded_lsn; /* 1.1: every transaction that committed before this WAL position
	                       * is in the ring (stored after its records are published) */
	uint8_t reserved3[24];

	/* 192: wake-ups. The writer bumps futex after publishing (FUTEX_WAKE without
	 * FUTEX_PRIVATE_FLAG: other processes wait on it); waiting readers count
	 * themselves in sleepers so an idle writer can skip the syscall. */
	uint32_t futex;
	uint32_t sleepers;
	uint8_t reserved4[56];

	/* 256: reader slots */
	RtRingSlot slots[RT_RING_SLOTS];

	/* 1280: free for later minor versions */
	uint8_t reserved5[RT_RING_HEADER_SIZE - 256 - RT_RING_SLOTS * 64];
} RtRingHeader;

/* A record's first 16 bytes; the payload follows, the whole padded to 8. */
typedef struct RtRingRecordHeader
{
	uint32_t length; /* payload bytes, header and padding excluded */
	uint16_t type;   /* RT_REC_* */
	uint16_t flags;  /* type-specific; none defined in 1.0, readers ignore unknown ones */
	uint64_t seq;    /* 1, 2, 3... over MESSAGE, CHANGE and GAP records; 0 for PAD */
} RtRingRecordHeader;

/* Payload of a RT_REC_GAP record. The GAP's own seq is preceded by `skipped`
 * sequence numbers that were never written, so readers count them as lost by
 * the usual sequence check; this says why. */
typedef struct RtRingGapPayload
{
	uint64_t skipped;
	uint32_t reason; /* RT_GAP_* */
	uint32_t reserved;
} RtRingGapPayload;

/*
 * Payload of a RT_REC_MESSAGE record (realtime.send, realtime.broadcast_changes),
 * written once by the output plugin and read by the sidecar, as RtField values
 * in this order:
 *   u32   flags          RT_MSG_PRIVATE, RT_MSG_BINARY
 *   u64   commit_lsn     LSN of the commit record of its transaction
 *   u64   commit_time_us commit time, microseconds since the Unix epoch (UTC)
 *   bytes topic          the sub_topic, without "realtime:" (PROTOCOL.md 3.1)
 *   bytes event
 *   bytes id             the message's uuid as text (meta.id for clients)
 *   bytes payload        JSON text; raw bytes when RT_MSG_BINARY
 * Readers ignore fields after these (a later minor version may add some).
 */
#define RT_MSG_PRIVATE 0x1u /* deliver to the private room of the topic only */
#define RT_MSG_BINARY 0x2u  /* payload is bytes (send_binary), not JSON */

/*
 * Payload of a RT_REC_CHANGE record: one committed INSERT, UPDATE or DELETE of
 * a table in the publication, written once by the output plugin with every
 * value already rendered as the JSON text clients receive (to_jsonb's form),
 * and read by the sidecar, which picks columns and values per subscriber
 * without re-encoding them. RtField values in this order:
 *   u32   flags          RT_CHG_* below
 *   u64   commit_lsn     LSN of the commit record of its transaction
 *   u64   commit_time_us commit time, microseconds since the Unix epoch (UTC)
 *   u32   relid          the table's pg_class OID
 *   u32   action         RT_CHG_INSERT, RT_CHG_UPDATE or RT_CHG_DELETE
 *   bytes schema
 *   bytes table
 *   u32   ncolumns       the table's columns in attribute order, dropped and
 *                        generated ones left out; then for each:
 *     u32   col_flags    RT_COL_PK: part of the primary key
 *     u32   attnum
 *     bytes name
 *     bytes type         pg_type.typname (int4, text, _text, ...)
 *     bytes new          its value in `record` (INSERT, UPDATE) as JSON
 *                        text; empty when it has none there (DELETE, or an
 *                        unchanged TOAST value the old row does not have)
 *     bytes old          its value in `old_record` (UPDATE, DELETE): the
 *                        replica identity columns, every column with
 *                        RT_CHG_IDENTITY_FULL; empty when not there
 * A JSON value is never empty text, so an empty field only means "absent".
 * Readers ignore fields after the columns (a later minor version may add some).
 */
#define RT_CHG_RLS 0x1u           /* the table has row level security enabled */
#define RT_CHG_IDENTITY_FULL 0x2u /* REPLICA IDENTITY FULL: old values are the whole row */
#define RT_CHG_TOO_LARGE 0x4u     /* over 1 MiB of values: those over 64 bytes left out */
#define RT_CHG_INSERT 1u
#define RT_CHG_UPDATE 2u
#define RT_CHG_DELETE 3u
#define RT_COL_PK 0x1u

/* An unversioned layout change must fail to compile. */
RT_STATIC_ASSERT(sizeof(RtRingSlot) == 64, "RtRingSlot size");
RT_STATIC_ASSERT(offsetof(RtRingSlot, owner) == 0, "RtRingSlot.owner");
RT_STATIC_ASSERT(offsetof(RtRingSlot, read_pos) == 8, "RtRingSlot.read_pos");
RT_STATIC_ASSERT(offsetof(RtRingSlot, heartbeat_ms) == 16, "RtRingSlot.heartbeat_ms");
RT_STATIC_ASSERT(offsetof(RtRingSlot, records_read) == 24, "RtRingSlot.records_read");
RT_STATIC_ASSERT(offsetof(RtRingSlot, records_lost) == 32, "RtRingSlot.records_lost");
RT_STATIC_ASSERT(offsetof(RtRingSlot, attached_ms) == 40, "RtRingSlot.attached_ms");
RT_STATIC_ASSERT(offsetof(RtRingSlot, pid) == 48, "RtRingSlot.pid");
RT_STATIC_ASSERT(offsetof(RtRingSlot, reserved0) == 52, "RtRingSlot.reserved0");
RT_STATIC_ASSERT(offsetof(RtRingSlot, reserved1) == 56, "RtRingSlot.reserved1");

RT_STATIC_ASSERT(sizeof(RtRingHeader) == RT_RING_HEADER_SIZE, "RtRingHeader size");
RT_STATIC_ASSERT(offsetof(RtRingHeader, magic) == 0, "RtRingHeader.magic");
RT_STATIC_ASSERT(offsetof(RtRingHeader, version_major) == 4, "RtRingHeader.version_major");
RT_STATIC_ASSERT(offsetof(RtRingHeader, version_minor) == 6, "RtRingHeader.version_minor");
RT_STATIC_ASSERT(offsetof(RtRingHeader, header_size) == 8, "RtRingHeader.header_size");
RT_STATIC_ASSERT(offsetof(RtRingHeader, slot_count) == 12, "RtRingHeader.slot_count");
RT_STATIC_ASSERT(offsetof(RtRingHeader, capacity) == 16, "RtRingHeader.capacity");
RT_STATIC_ASSERT(offsetof(RtRingHeader, epoch) == 24, "RtRingHeader.epoch");
RT_STATIC_ASSERT(offsetof(RtRingHeader, closed) == 32, "RtRingHeader.closed");
RT_STATIC_ASSERT(offsetof(RtRingHeader, reserved0) == 36, "RtRingHeader.reserved0");
RT_STATIC_ASSERT(offsetof(RtRingHeader, reserved1) == 40, "RtRingHeader.reserved1");
RT_STATIC_ASSERT(offsetof(RtRingHeader, write_pos) == 64, "RtRingHeader.write_pos");
RT_STATIC_ASSERT(offsetof(RtRingHeader, tail_pos) == 72, "RtRingHeader.tail_pos");
RT_STATIC_ASSERT(offsetof(RtRingHeader, next_seq) == 80, "RtRingHeader.next_seq");
RT_STATIC_ASSERT(offsetof(RtRingHeader, write_seq) == 88, "RtRingHeader.write_seq");
RT_STATIC_ASSERT(offsetof(RtRingHeader, records_written) == 96, "RtRingHeader.records_written");
RT_STATIC_ASSERT(offsetof(RtRingHeader, records_dropped) == 104, "RtRingHeader.records_dropped");
RT_STATIC_ASSERT(offsetof(RtRingHeader, bytes_dropped) == 112, "RtRingHeader.bytes_dropped");
RT_STATIC_ASSERT(offsetof(RtRingHeader, records_too_large) == 120,
                 "RtRingHeader.records_too_large");
RT_STATIC_ASSERT(offsetof(RtRingHeader, records_skipped) == 128, "RtRingHeader.records_skipped");
RT_STATIC_ASSERT(offsetof(RtRingHeader, writer_heartbeat_ms) == 136,
                 "RtRingHeader.writer_heartbeat_ms");
RT_STATIC_ASSERT(offsetof(RtRingHeader, corrupt_resets) == 144, "RtRingHeader.corrupt_resets");
RT_STATIC_ASSERT(offsetof(RtRingHeader, writer_pid) == 152, "RtRingHeader.writer_pid");
RT_STATIC_ASSERT(offsetof(RtRingHeader, reserved2) == 156, "RtRingHeader.reserved2");
RT_STATIC_ASSERT(offsetof(RtRingHeader, decoded_lsn) == 160, "RtRingHeader.decoded_lsn");
RT_STATIC_ASSERT(offsetof(RtRingHeader, reserved3) == 168, "RtRingHeader.reserved3");
RT_STATIC_ASSERT(offsetof(RtRingHeader, futex) == 192, "RtRingHeader.futex");
RT_STATIC_ASSERT(offsetof(RtRingHeader, sleepers) == 196, "RtRingHeader.sleepers");
RT_STATIC_ASSERT(offsetof(RtRingHeader, reserved4) == 200, "RtRingHeader.reserved4");
RT_STATIC_ASSERT(offsetof(RtRingHeader, slots) == 256, "RtRingHeader.slots");
RT_STATIC_ASSERT(offsetof(RtRingHeader, reserved5) == 1280, "RtRingHeader.reserved5");

RT_STATIC_ASSERT(sizeof(RtRingRecordHeader) == RT_RING_RECORD_HEADER_SIZE, "record header size");
RT_STATIC_ASSERT(offsetof(RtRingRecordHeader, length) == 0, "RtRingRecordHeader.length");
RT_STATIC_ASSERT(offsetof(RtRingRecordHeader, type) == 4, "RtRingRecordHeader.type");
RT_STATIC_ASSERT(offsetof(RtRingRecordHeader, flags) == 6, "RtRingRecordHeader.flags");
RT_STATIC_ASSERT(offsetof(RtRingRecordHeader, seq) == 8, "RtRingRecordHeader.seq");

RT_STATIC_ASSERT(sizeof(RtRingGapPayload) == 16, "RtRingGapPayload size");
RT_STATIC_ASSERT(offsetof(RtRingGapPayload, skipped) == 0, "RtRingGapPayload.skipped");
RT_STATIC_ASSERT(offsetof(RtRingGapPayload, reason) == 8, "RtRingGapPayload.reason");
RT_STATIC_ASSERT(offsetof(RtRingGapPayload, reserved) == 12, "RtRingGapPayload.reserved");

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
 * Helpers
 * ------------------------------------------------------------------------ */

/* Round n up to a multiple of 8 */
RT_INLINE uint64_t
RtRingAlign(uint64_t n)
{
	return (n + (RT_RING_ALIGN - 1)) & ~(uint64_t)(RT_RING_ALIGN - 1);
}

/* Whole record size (header + payload, padded) for a payload of n bytes */
RT_INLINE uint64_t
RtRingRecordSize(uint64_t payload_len)
{
	return RtRingAlign(RT_RING_RECORD_HEADER_SIZE + payload_len);
}

/* Largest whole record: a quarter of the capacity */
RT_INLINE uint64_t
RtRingMaxRecord(uint64_t capacity)
{
	return capacity / 4;
}

/* Largest payload an append accepts for this capacity */
RT_INLINE uint64_t
RtRingMaxPayload(uint64_t capacity)
{
	return RtRingMaxRecord(capacity) - RT_RING_RECORD_HEADER_SIZE;
}

/* Whether a capacity is acceptable: a power of two within the limits */
RT_INLINE int
RtRingCapacityValid(uint64_t capacity)
{
	return capacity >= RT_RING_MIN_CAPACITY && capacity <= RT_RING_MAX_CAPACITY &&
	       (capacity & (capacity - 1)) == 0;
}

/* Bytes of file needed for a ring of this capacity */
RT_INLINE uint64_t
RtRingFileSize(uint64_t capacity)
{
	return (uint64_t)RT_RING_HEADER_SIZE + capacity;
}

/* The futex word, for FUTEX_WAIT / FUTEX_WAKE (never FUTEX_PRIVATE_FLAG) */
RT_INLINE uint32_t *
RtRingFutexWord(RtRingHeader *hdr)
{
	return &hdr->futex;
}

/* A result code's name, for logs */
RT_INLINE const char *
RtRingResultName(int result)
{
	switch (result)
	{
	case RT_RING_OK:
		return "ok";
	case RT_RING_EMPTY:
		return "empty";
	case RT_RING_FULL:
		return "full";
	case RT_RING_TOO_LARGE:
		return "too large";
	case RT_RING_BUFFER_SMALL:
		return "buffer too small";
	case RT_RING_EVICTED:
		return "evicted";
	case RT_RING_CLOSED:
		return "closed";
	case RT_RING_RESET:
		return "reset";
	case RT_RING_CORRUPT:
		return "corrupt";
	case RT_RING_BAD_MAGIC:
		return "bad magic";
	case RT_RING_BAD_VERSION:
		return "unsupported version";
	case RT_RING_BAD_LAYOUT:
		return "bad layout";
	case RT_RING_NO_SLOT:
		return "no free reader slot";
	case RT_RING_BAD_ARGUMENT:
		return "bad argument";
	}
	return "unknown";
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

	__builtin_memset(w, 0, sizeof(*w));
	w->hdr = h;
	w->data = (uint8_t *)base + RT_RING_HEADER_SIZE;
	w->capacity = capacity;
	w->mask = capacity - 1;
	w->reader_timeout_ms = reader_timeout_ms;
	w->next_seq = 1;

	RT_STORE_RELEASE(&h->magic, RT_RING_MAGIC);
	return RT_RING_OK;
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

	__builtin_memset(w, 0, sizeof(*w));
	w->hdr = h;
	w->data = (uint8_t *)base + RT_RING_HEADER_SIZE;
	w->capacity = capacity;
	w->mask = capacity - 1;
	w->reader_timeout_ms = reader_timeout_ms;
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
 * The writer's decoded_lsn (0 before a 1.1 writer set one). Load it before
 * RtRingReadNext: when that then returns RT_RING_EMPTY, the reader has read
 * every record of the transactions that committed before it.
 */
RT_INLINE uint64_t
RtRingDecodedLsn(const RtRingHeader *hdr)
{
	return RT_LOAD_ACQUIRE(&hdr->decoded_lsn);
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
	RtRingHeader *h = r->hdr;
	uint64_t max_record = RtRingMaxRecord(r->capacity);

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
		uint64_t wp = RT_LOAD_ACQUIRE(&h->write_pos);
		uint64_t tail, off, room, size, seq, tail2;
		const RtRingRecordHeader *rh;
		uint32_t len;
		uint16_t type, flags;

		if (wp == r->pos)
		{
			RtRingReaderStorePos(r);
			return RtRingReaderEndState(r);
		}
		/*
		 * tail is loaded after write_pos, so with an honest writer tail >= wp -
		 * capacity; it may be past this wp (the writer went on meanwhile), which
		 * the lapped case handles: the next round's write_pos is past it again.
		 */
		tail = RT_LOAD_ACQUIRE(&h->tail_pos);
		if (wp < r->pos || wp % RT_RING_ALIGN != 0 || tail % RT_RING_ALIGN != 0)
		{
			int end = RtRingReaderEndState(r);

			if (end != RT_RING_EMPTY)
				return end;
			goto corrupt;
		}
		if (r->pos < tail)
		{
			/* lapped: what was in [pos, tail) is gone; the next seq tells how much */
			r->pos = tail;
			continue;
		}
		if (wp - r->pos > r->capacity)
			goto corrupt; /* more than a ring ahead of a valid position */
		off = r->pos & r->mask;
		room = r->capacity - off;
		if (room < RT_RING_RECORD_HEADER_SIZE)
		{
			/* implicit padding at the end of the data area */
			if (room > wp - r->pos)
				goto recheck_corrupt;
			r->pos += room;
			continue;
		}
		rh = (const RtRingRecordHeader *)(r->data + off);
		len = RT_LOAD_RELAXED(&rh->length);
		type = RT_LOAD_RELAXED(&rh->type);
		flags = RT_LOAD_RELAXED(&rh->flags);
		seq = RT_LOAD_RELAXED(&rh->seq);
		size = RtRingRecordSize(len);
		if (type == 0 || type > RT_REC_TYPE_MAX || size > room || size > wp - r->pos ||
		    (type != RT_REC_PAD && size > max_record))
			goto recheck_corrupt;
		if (type == RT_REC_PAD)
		{
			r->pos += size;
			continue;
		}
		if (len > buf_cap)
		{
			/* make sure the length was not read from bytes being overwritten */
			RT_FENCE_ACQUIRE();
			if (r->pos < RT_LOAD_RELAXED(&h->tail_pos))
				continue;
			info->seq = seq;
			info->pos = r->pos;
			info->lost = 0;
			info->length = len;
			info->type = type;
			info->flags = flags;
			RtRingReaderStorePos(r);
			return RT_RING_BUFFER_SMALL;
		}
		if (len > 0)
			__builtin_memcpy(buf, r->data + off + RT_RING_RECORD_HEADER_SIZE, len);
		/* the copy is good only if the writer did not start overwriting it */
		RT_FENCE_ACQUIRE();
		tail2 = RT_LOAD_RELAXED(&h->tail_pos);
		if (r->pos < tail2)
			continue;
		if (seq == 0 || (r->expected_seq != 0 && seq < r->expected_seq))
			goto corrupt; /* sequence numbers only go up */

		info->seq = seq;
		info->pos = r->pos;
		info->lost = r->expected_seq != 0 ? seq - r->expected_seq : 0;
		info->length = len;
		info->type = type;
		info->flags = flags;
		r->expected_seq = seq + 1;
		r->pos += size;
		r->records_read++;
		RtRingReaderStorePos(r);
		RT_STORE_RELAXED(&h->slots[r->slot].records_read, r->records_read);
		if (info->lost != 0)
		{
			r->records_lost += info->lost;
			RT_STORE_RELAXED(&h->slots[r->slot].records_lost, r->records_lost);
		}
		return RT_RING_OK;

	recheck_corrupt:
		/* invalid bytes under our position: overwritten meanwhile (lapped), or corrupt */
		RT_FENCE_ACQUIRE();
		if (r->pos < RT_LOAD_RELAXED(&h->tail_pos))
			continue;
	corrupt:
		wp = RT_LOAD_ACQUIRE(&h->write_pos);
		r->pos = wp % RT_RING_ALIGN == 0 ? wp : RtRingAlign(wp);
		RtRingReaderStorePos(r);
		return RT_RING_CORRUPT;
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

/* ------------------------------------------------------------------------
 * Record payload fields: u32 little-endian length + bytes, and little-endian
 * fixed-width integers. Every put and get is bounds-checked; a failure is
 * sticky (failed = 1), so an encoder or decoder checks once at the end.
 * ------------------------------------------------------------------------ */

typedef struct RtFieldWriter
{
	uint8_t *buf;
	uint32_t cap;
	uint32_t len;
	uint32_t failed;
} RtFieldWriter;

typedef struct RtFieldReader
{
	const uint8_t *buf;
	uint32_t len;
	uint32_t pos;
	uint32_t failed;
} RtFieldReader;

/* Start writing fields into buf (cap bytes) */
RT_INLINE void
RtFieldWriterInit(RtFieldWriter *w, void *buf, uint32_t cap)
{
	w->buf = (uint8_t *)buf;
	w->cap = buf == NULL ? 0 : cap;
	w->len = 0;
	w->failed = 0;
}

/* Start reading fields from buf (len bytes) */
RT_INLINE void
RtFieldReaderInit(RtFieldReader *r, const void *buf, uint32_t len)
{
	r->buf = (const uint8_t *)buf;
	r->len = buf == NULL ? 0 : len;
	r->pos = 0;
	r->failed = 0;
}

/* Bytes needed to encode a field of n bytes */
RT_INLINE uint64_t
RtFieldSize(uint64_t n)
{
	return 4 + n;
}

/* Append an unsigned integer of `width` bytes, little-endian */
RT_INLINE int
RtFieldPutUint(RtFieldWriter *w, uint64_t v, uint32_t width)
{
	uint32_t i;

	if (w->failed || w->cap - w->len < width)
	{
		w->failed = 1;
		return 0;
	}
	for (i = 0; i < width; i++)
		w->buf[w->len + i] = (uint8_t)(v >> (8 * i));
	w->len += width;
	return 1;
}

RT_INLINE int
RtFieldPutU32(RtFieldWriter *w, uint32_t v)
{
	return RtFieldPutUint(w, v, 4);
}

RT_INLINE int
RtFieldPutU64(RtFieldWriter *w, uint64_t v)
{
	return RtFieldPutUint(w, v, 8);
}

/* Append a length-prefixed field (n bytes at p) */
RT_INLINE int
RtFieldPutBytes(RtFieldWriter *w, const void *p, uint32_t n)
{
	if (w->failed || (n > 0 && p == NULL) || w->cap - w->len < 4 || w->cap - w->len - 4 < n)
	{
		w->failed = 1;
		return 0;
	}
	RtFieldPutU32(w, n);
	if (n > 0)
		__builtin_memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 1;
}

/* Read an unsigned integer of `width` bytes, little-endian; 0 on failure */
RT_INLINE uint64_t
RtFieldGetUint(RtFieldReader *r, uint32_t width)
{
	uint64_t v = 0;
	uint32_t i;

	if (r->failed || r->pos > r->len || r->len - r->pos < width)
	{
		r->failed = 1;
		return 0;
	}
	for (i = 0; i < width; i++)
		v |= (uint64_t)r->buf[r->pos + i] << (8 * i);
	r->pos += width;
	return v;
}

RT_INLINE int
RtFieldGetU32(RtFieldReader *r, uint32_t *out)
{
	uint32_t v = (uint32_t)RtFieldGetUint(r, 4);

	if (r->failed)
		return 0;
	*out = v;
	return 1;
}

RT_INLINE int
RtFieldGetU64(RtFieldReader *r, uint64_t *out)
{
	uint64_t v = RtFieldGetUint(r, 8);

	if (r->failed)
		return 0;
	*out = v;
	return 1;
}

/*
 * Read a length-prefixed field: *p points into the reader's buffer (no copy),
 * *n is its length. On failure *p is NULL, *n 0 and nothing more can be read.
 */
RT_INLINE int
RtFieldGetBytes(RtFieldReader *r, const uint8_t **p, uint32_t *n)
{
	uint32_t len = 0;

	*p = NULL;
	*n = 0;
	if (!RtFieldGetU32(r, &len))
		return 0;
	if (r->len - r->pos < len)
	{
		r->failed = 1;
		return 0;
	}
	*p = r->buf + r->pos;
	*n = len;
	r->pos += len;
	return 1;
}

/* Whether every byte was consumed and nothing failed */
RT_INLINE int
RtFieldReaderDone(const RtFieldReader *r)
{
	return !r->failed && r->pos == r->len;
}

#endif /* RT_RING_H */
