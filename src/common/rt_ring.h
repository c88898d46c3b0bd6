/*
 * rt_ring.h: THE shared-memory ring between the database and the sidecar, and
 * the limits both sides agree on.
 *
 * One writer (the decoder background worker, C++17 inside PostgreSQL) appends
 * records to a file mapped MAP_SHARED; N readers (realtime-fanout's ring reader
 * threads, C++20, possibly another OS user in the server's group) copy them
 * out. This header is the format alone: limits, constants, the shared
 * structs with their offsets asserted, record payload layouts, and the size
 * arithmetic both sides must agree on. The code that touches a ring lives in
 * its own headers, each including this one:
 *
 *   rt_ring_access.h  atomics, header validation, futex word, slot liveness
 *   rt_ring_writer.h  the writer (the decoder worker, src/extension/ring_writer.cpp)
 *   rt_ring_reader.h  a reader (src/fanout/db/ring_reader.cpp, test tools)
 *   rt_ring_fields.h  the field codec of record payloads (encoders, decoders)
 *
 * All of them compile as C11, C++17 (-fno-exceptions, after the Postgres
 * headers) and C++20, and include only <stdint.h>, <stddef.h> and each other.
 * Every function in them is pure over the mapped memory: no syscalls, no
 * clock, no allocation. Callers pass the time (milliseconds of
 * CLOCK_MONOTONIC, which is system-wide and so comparable across processes of
 * one host and time namespace) and do the futex calls themselves
 * (RtRingWriterNotify, RtRingReaderPrepareWait).
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
 *   u64   stored_at_us   inserted_at of its realtime.messages row, microseconds
 *                        since the Unix epoch (UTC); 0 when none was kept.
 *                        Absent in records of extensions before 0.2.0.
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

#endif /* RT_RING_H */
