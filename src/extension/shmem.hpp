/*
 * shmem.hpp
 *	  The realtime control block in PostgreSQL shared memory.
 *
 * Requested from the postmaster (shmem_request_hook) and initialised once
 * (shmem_startup_hook). It holds what backends and the decoder worker share:
 * the worker's latch, which committing backends set (xact_wakeup.cpp), and
 * counters for realtime.stats(). Ring data is not here: it lives in the
 * mmap'd ring file, which the sidecar can open (ring_writer.hpp).
 *
 * Include after postgres.h and storage/spin.h (STYLE.md B7).
 */
#ifndef RT_EXT_SHMEM_HPP
#define RT_EXT_SHMEM_HPP

struct Latch;

namespace rt::ext
{

/* Shared counters, written by the decoder worker under the mutex */
struct DecoderCounters
{
	uint64 turns;            /* batches of WAL decoded */
	uint64 records_appended; /* records appended to the ring by this server's workers */
	uint64 stalls;           /* times a live reader made the writer wait */
	uint64 forced;           /* records appended over unread ones past max_lag_bytes */
	uint64 too_large;        /* records over the ring's record limit, replaced by a GAP */
	XLogRecPtr confirmed;    /* last position the worker confirmed on its slot */
};

/* Shared counters of the janitor worker (janitor.cpp), written under the mutex */
struct JanitorCounters
{
	int pid;                   /* 0 while it is not running */
	uint64 passes;             /* passes that ran realtime.expire_messages() */
	uint64 messages_expired;   /* rows deleted past their expiry */
	uint64 partitions_dropped; /* partitions dropped past the retention */
	int64 last_pass;           /* TimestampTz of the end of the last pass, 0 before the first */
};

/* The control block */
struct RealtimeShared
{
	slock_t mutex;            /* protects everything below */
	Latch *decoder_latch;     /* the decoder worker's MyLatch; nullptr while it is not running */
	int decoder_pid;          /* its pid, 0 while not running */
	DecoderCounters counters; /* for realtime.stats() */
	JanitorCounters janitor;  /* for realtime.stats() */

	/*
	 * The decoder's high-water mark: it has appended the first written_count
	 * records of the transaction that committed at written_commit (and all
	 * before). Written by the decoder worker alone, without the mutex, and
	 * read by its successor after a restart so that nothing is appended
	 * twice.
	 */
	XLogRecPtr written_commit;
	uint64 written_count;
};

/* Install the shared memory hooks; call once from _PG_init */
void ShmemInit(void);

/* The control block, attached at backend start; nullptr if the library was not preloaded */
RealtimeShared *Shared(void);

} // namespace rt::ext

#endif /* RT_EXT_SHMEM_HPP */
