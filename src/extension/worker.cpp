/*
 * worker.cpp
 *	  The decoder background worker: decodes slot "realtime" into the ring.
 *
 * One process, started by the postmaster once recovery is over and restarted
 * a few seconds after it exits with an ERROR. It connects to the database of
 * realtime.database, creates the logical slot "realtime" (output plugin
 * "realtime") if missing, maps the ring (ring_writer.hpp), publishes its
 * latch for committing backends (xact_wakeup.cpp), and then decodes like a
 * walsender (walsender.c, XLogSendLogical): one decoding context for the
 * life of the process, the output plugin in format "ring", a WAL reader that
 * goes on from where it stopped. Each time it is woken (a commit sets its
 * latch, or realtime.decoder_naptime passes) it decodes up to the flushed
 * WAL, appends each record to the ring from the write callback, wakes the
 * readers once at the end (and every millisecond of a long batch), and
 * confirms the slot. One wake-up per record cost a context switch each on a
 * busy host: the woken reader preempted the decoder inside FUTEX_WAKE, and
 * the records behind waited for the decoder to get a CPU back.
 *
 * Backpressure (ARCHITECTURE.md "Backpressure and loss"). With a live reader,
 * an append that would overwrite what it has not read (RT_RING_FULL) waits,
 * in the write callback, for the reader to move on: decoding pauses and the
 * slot, not confirmed meanwhile, keeps its WAL. Once the slot keeps more than
 * realtime.max_lag_bytes of WAL (from its restart point), appends are forced:
 * the ring overwrites, counts the loss, and readers see the gap. With no live
 * reader appends never wait, so the slot always advances and an absent
 * sidecar never piles up WAL. Nothing here ever blocks a backend. A reader
 * that stops heartbeating is reclaimed after 5 s (ring_writer.cpp) and no
 * longer holds the writer back.
 *
 * A restarted worker decodes again from the slot's restart point; records
 * of transactions it already appended (up to the high-water mark kept in
 * shared memory, shmem.hpp) are not appended twice. Only a crash between an
 * append and the update of that mark, or a restart of the whole server,
 * repeats a record: delivery is exactly once across worker restarts, at
 * least once across server crashes.
 */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "storage/standby.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"
}

#include "guc.hpp"
#include "ring_writer.hpp"
#include "rt_ring_fields.h"
#include "shmem.hpp"
#include "worker.hpp"

extern "C"
{
	PGDLLEXPORT void realtime_worker_main(Datum main_arg);

	static void WorkerShmemExit(int code, Datum arg);
	static void RingPrepareWrite(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
	                             bool last_write);
	static void RingWrite(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
	                      bool last_write);
}

namespace
{

constexpr const char *kSlotName = "realtime";
constexpr int kRestartSeconds = 2;
constexpr long kStallPollMs = 10;        /* how often a paused writer looks at its reader */
constexpr uint64 kConfirmEveryMs = 100;  /* confirm the slot at least this often in a long batch */
constexpr uint64 kWakeEveryUs = 1000;    /* wake readers at least this often in a long batch */
constexpr uint64 kSnapshotEveryMs = 100; /* LogStandbySnapshot first backoff step (see below) */
constexpr uint64 kSnapshotBackoffMaxMs = 10000; /* ... and its longest */

/*
 * The write callback's state: which record of which transaction it is at,
 * and what it did since the counters were last published.
 */
struct WriterState
{
	XLogRecPtr cur_commit; /* commit LSN of the transaction being written */
	uint64 cur_index;      /* index of its next record */
	bool notify;           /* appended since readers were last woken */
	uint64 appended;       /* records appended */
	uint64 forced;         /* of which over unread records */
	uint64 too_large;      /* replaced by a GAP record */
	uint64 stalls;         /* times a live reader made it wait */
	bool skip_logged;      /* the current run of forced appends was logged */
};

WriterState writer;
LogicalDecodingContext *decoder = nullptr; /* for the life of the process */

/* Let this process use its own output plugin (Debian's output_plugin_libraries) */
void
AllowOwnPlugin(void)
{
	const char *libs = GetConfigOption("output_plugin_libraries", true, false);
	List *elems = NIL;
	char *copy;
	ListCell *lc;

	if (libs == nullptr)
		return; /* a PostgreSQL without the list accepts any plugin */
	copy = pstrdup(libs);
	if (SplitIdentifierString(copy, ',', &elems))
	{
		foreach (lc, elems)
		{
			if (strcmp(static_cast<const char *>(lfirst(lc)), "realtime") == 0)
				return;
		}
	}
	SetConfigOption("output_plugin_libraries",
	                libs[0] != '\0' ? psprintf("%s, realtime", libs) : "realtime", PGC_SUSET,
	                PGC_S_OVERRIDE);
}

/* Create the logical slot "realtime" with our plugin if it does not exist */
void
EnsureSlot(void)
{
	int rc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	rc = SPI_execute("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = 'realtime'",
	                 true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute returned %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		rc = SPI_execute("SELECT pg_catalog.pg_create_logical_replication_slot('realtime', "
		                 "'realtime')",
		                 false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute returned %s", SPI_result_code_string(rc));
		ereport(LOG, (errmsg("realtime decoder created the logical replication slot \"%s\"",
		                     kSlotName)));
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/* Publish what the writer did since the last call, for realtime.stats() */
void
PublishCounters(bool batch, XLogRecPtr confirmed)
{
	rt::ext::RealtimeShared *shared = rt::ext::Shared();

	SpinLockAcquire(&shared->mutex);
	if (batch)
		shared->counters.turns++;
	shared->counters.records_appended += writer.appended;
	shared->counters.forced += writer.forced;
	shared->counters.too_large += writer.too_large;
	shared->counters.stalls += writer.stalls;
	if (confirmed != InvalidXLogRecPtr)
		shared->counters.confirmed = confirmed;
	SpinLockRelease(&shared->mutex);
	writer.appended = writer.forced = writer.too_large = writer.stalls = 0;
}

/*
 * WAL the slot keeps, from its restart point to the flushed end: what
 * realtime.max_lag_bytes bounds. One large transaction holds the WAL back to
 * its start while its commit, the confirmed position, is near the end.
 */
uint64
SlotLagBytes(void)
{
	XLogRecPtr flush = GetFlushRecPtr(nullptr);
	XLogRecPtr restart;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	restart = MyReplicationSlot->data.restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	return flush > restart ? flush - restart : 0;
}

/*
 * Acquire the slot and create the decoding context that serves every batch,
 * in TopMemoryContext; reading starts at the slot's restart point and
 * transactions committed before its confirmed position are skipped. Like a
 * walsender, decoding runs outside any transaction: the reorder buffer starts
 * one for each transaction it replays and runs its invalidations.
 */
void
StartDecoding(void)
{
	MemoryContext old;
	XLogReaderRoutine routine;
	List *options;

	ReplicationSlotAcquire(kSlotName, true);
	old = MemoryContextSwitchTo(TopMemoryContext);

	/*
	 * read_local_xlog_page, as pg_logical_slot_get_changes: DecodeAvailable
	 * stops at the flush position, so it only waits (briefly) for the tail of
	 * a record the WAL writer flushed in part. (The _no_wait variant stores its
	 * end-of-WAL flag through reader->private_data, which logical decoding
	 * uses for its context.)
	 */
	routine.page_read = read_local_xlog_page;
	routine.segment_open = wal_segment_open;
	routine.segment_close = wal_segment_close;
	options = list_make1(
	    makeDefElem(pstrdup("format"), reinterpret_cast<Node *>(makeString(pstrdup("ring"))), -1));
	decoder = CreateDecodingContext(InvalidXLogRecPtr, options, false, &routine, RingPrepareWrite,
	                                RingWrite, nullptr);
	MemoryContextSwitchTo(old);
	XLogBeginRead(decoder->reader, MyReplicationSlot->data.restart_lsn);
}

/* Tell the slot everything before lsn is in the ring (saved at the next checkpoint) */
XLogRecPtr
Confirm(XLogRecPtr lsn)
{
	XLogRecPtr confirmed;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	confirmed = MyReplicationSlot->data.confirmed_flush;
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (lsn == InvalidXLogRecPtr || lsn <= confirmed)
		return confirmed;
	LogicalConfirmReceivedLocation(lsn);
	ReplicationSlotMarkDirty();
	return lsn;
}

/*
 * The slot's restart point moves only when decoding passes a running-xacts
 * record, and the bgwriter logs one every 15 s: under heavy writes the slot
 * would keep far more WAL than decoding needs, max_lag_bytes would be passed
 * with the ring in step, and records dropped for nothing. So when the slot
 * keeps over a quarter of max_lag_bytes while decoding is caught up (less
 * than half of that WAL is unconfirmed), log one now, flush it, and decode
 * again at once: confirming past it moves the restart point up.
 *
 * The pace is set by bytes, not by a clock: while each record logged moved
 * the restart point, the next may follow as soon as the previous one is
 * decoded and another quarter of max_lag_bytes is kept (at 100 MB/s of WAL a
 * fixed 100 ms would let the slot keep 10 MB more than it needs). A
 * transaction open for long holds the restart point whatever we log: then
 * back off on a clock (100 ms, doubling up to 10 s) instead of logging and
 * flushing records for nothing.
 */
void
MaybeLogSnapshot(XLogRecPtr flush, XLogRecPtr confirmed)
{
	static uint64 last_ms = 0;
	static uint64 interval_ms = kSnapshotEveryMs;
	static XLogRecPtr restart_then = InvalidXLogRecPtr;
	static XLogRecPtr logged_end = InvalidXLogRecPtr;
	uint64 now = rt::ext::MonotonicMs();
	uint64 kept = SlotLagBytes();
	uint64 unconfirmed = flush > confirmed ? flush - confirmed : 0;
	bool waited = now - last_ms >= interval_ms;
	XLogRecPtr restart;

	if (kept <= static_cast<uint64>(realtime_max_lag_bytes) / 4 || unconfirmed * 2 >= kept ||
	    RecoveryInProgress())
		return;
	/* the previous record is not decoded yet: it may still move the restart point */
	if (logged_end != InvalidXLogRecPtr && confirmed < logged_end && !waited)
		return;
	SpinLockAcquire(&MyReplicationSlot->mutex);
	restart = MyReplicationSlot->data.restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (restart_then == InvalidXLogRecPtr || restart > restart_then)
		interval_ms = kSnapshotEveryMs;
	else if (!waited)
		return;
	else
		interval_ms = Min(interval_ms * 2, kSnapshotBackoffMaxMs);
	restart_then = restart;
	last_ms = now;
	logged_end = LogStandbySnapshot();
	XLogFlush(logged_end);
	SetLatch(MyLatch);
}

/*
 * Decode the WAL written since the last call, up to the flushed position:
 * every committed transaction in it goes to the ring (the write callback).
 * Readers are woken at the end, and every kWakeEveryUs of a long batch; the
 * slot is confirmed at the end, and every 100 ms of a long batch so that
 * its WAL can go while a backlog is decoded.
 */
void
DecodeAvailable(void)
{
	XLogRecPtr flush = GetFlushRecPtr(nullptr);
	uint64 last_confirm = rt::ext::MonotonicMs();
	uint64 last_wake = rt::ext::MonotonicUs();
	XLogRecPtr confirmed;
	uint32 n = 0;

	if (decoder->reader->EndRecPtr >= flush)
		return;
	while (decoder->reader->EndRecPtr < flush)
	{
		char *errm = nullptr;
		XLogRecord *record = XLogReadRecord(decoder->reader, &errm);

		if (errm != nullptr)
			elog(ERROR, "could not find record for logical decoding: %s", errm);
		if (record != nullptr)
			LogicalDecodingProcessRecord(decoder, decoder->reader);
		if (writer.notify && (n & 15) == 0 && rt::ext::MonotonicUs() - last_wake >= kWakeEveryUs)
		{
			rt::ext::RingNotify();
			writer.notify = false;
			last_wake = rt::ext::MonotonicUs();
		}
		CHECK_FOR_INTERRUPTS();
		if ((++n & 255) == 0 && rt::ext::MonotonicMs() - last_confirm >= kConfirmEveryMs)
		{
			rt::ext::RingSetDecoded(Confirm(decoder->reader->EndRecPtr));
			(void)rt::ext::RingMaintain();
			last_confirm = rt::ext::MonotonicMs();
		}
	}
	if (writer.notify)
	{
		rt::ext::RingNotify();
		writer.notify = false;
	}
	confirmed = Confirm(decoder->reader->EndRecPtr);
	rt::ext::RingSetDecoded(confirmed);
	PublishCounters(true, confirmed);
	MaybeLogSnapshot(flush, confirmed);
}

/*
 * A live reader has not read the space the next record needs. Wait a little
 * for it (it does not wake us: poll), keep our heartbeat, reclaim its slot
 * if it died, and say whether the slot now keeps more than max_lag_bytes of
 * WAL, in which case the caller appends anyway.
 */
bool
WaitForReader(bool first)
{
	if (first)
	{
		writer.stalls++;
		PublishCounters(false, InvalidXLogRecPtr);
		ereport(DEBUG1, (errmsg("realtime decoder paused for a ring reader; the slot keeps "
		                        "%llu bytes of WAL",
		                        static_cast<unsigned long long>(SlotLagBytes()))));
	}
	rt::ext::RingNotify();
	(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kStallPollMs,
	                PG_WAIT_EXTENSION);
	/* a commit's wake-up may be reset here: the main loop reads the flush position again */
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	(void)rt::ext::RingMaintain();
	return SlotLagBytes() > static_cast<uint64>(realtime_max_lag_bytes);
}

} // namespace

/* Before each record: start it afresh in ctx->out */
static void
RingPrepareWrite(LogicalDecodingContext *ctx, XLogRecPtr, TransactionId, bool)
{
	resetStringInfo(ctx->out);
}

/*
 * After each record: append it to the ring, waiting while a live reader is
 * behind (see the file header), unless this worker or its predecessor
 * already did.
 */
static void
RingWrite(LogicalDecodingContext *ctx, XLogRecPtr, TransactionId, bool)
{
	RtRingWriter *w = rt::ext::Ring();
	rt::ext::RealtimeShared *shared = rt::ext::Shared();
	const uint8 *data = reinterpret_cast<const uint8 *>(ctx->out->data);
	uint32 len = static_cast<uint32>(ctx->out->len);
	RtFieldReader r;
	uint16 type;
	uint32 flags = 0;
	uint64 commit = 0;
	uint64 index;
	bool force = false;
	int rc;

	if (len < 1 || (data[0] != RT_REC_MESSAGE && data[0] != RT_REC_CHANGE))
		elog(ERROR, "unexpected ring record from the output plugin");
	type = data[0];
	/* both record types start with flags and the commit LSN (rt_ring.h) */
	RtFieldReaderInit(&r, data + 1, len - 1);
	if (!RtFieldGetU32(&r, &flags) || !RtFieldGetU64(&r, &commit))
		elog(ERROR, "malformed ring record from the output plugin");

	if (commit != writer.cur_commit)
	{
		writer.cur_commit = commit;
		writer.cur_index = 0;
	}
	index = writer.cur_index++;
	/* only this process writes the mark; commits are decoded in LSN order */
	if (commit < shared->written_commit ||
	    (commit == shared->written_commit && index < shared->written_count))
		return;

	for (bool first = true;; first = false)
	{
		rc = RtRingAppend(w, type, 0, data + 1, len - 1, rt::ext::MonotonicMs(), force);
		if (rc != RT_RING_FULL)
			break;
		force = WaitForReader(first);
	}
	if (force && !writer.skip_logged)
	{
		/* once per episode: the operator must hear that a reader is losing records */
		writer.skip_logged = true;
		ereport(WARNING,
		        (errmsg("realtime decoder is overwriting records a ring reader has not read"),
		         errdetail("The slot keeps %llu bytes of WAL, more than realtime.max_lag_bytes "
		                   "(%d); the reader sees the gap.",
		                   static_cast<unsigned long long>(SlotLagBytes()), realtime_max_lag_bytes),
		         errhint("A sidecar is attached but not keeping up: check its log and load.")));
	}
	else if (!force)
		writer.skip_logged = false;
	if (rc == RT_RING_TOO_LARGE)
	{
		/* readers see one record lost; counted in the header by the append */
		ereport(WARNING,
		        (errmsg("realtime decoder skipped a record of %u bytes, larger than the ring's "
		                "largest record",
		                len - 1),
		         errhint("Raise realtime.ring_size (a record may take a quarter of the ring) or "
		                 "send smaller payloads.")));
		for (bool first = true;; first = false)
		{
			rc = RtRingAppendGap(w, 1, RT_GAP_TOO_LARGE, rt::ext::MonotonicMs(), force);
			if (rc != RT_RING_FULL)
				break;
			force = WaitForReader(first);
		}
		if (rc == RT_RING_OK)
			writer.too_large++;
	}
	else if (rc == RT_RING_OK)
	{
		writer.appended++;
		if (force)
			writer.forced++;
	}
	if (rc != RT_RING_OK)
		elog(ERROR, "ring append failed: %s", RtRingResultName(rc));
	shared->written_commit = commit;
	shared->written_count = index + 1;
	writer.notify = true;
}

/* Unpublish the latch: backends must not set a latch nobody owns */
static void
WorkerShmemExit(int, Datum)
{
	rt::ext::RealtimeShared *shared = rt::ext::Shared();

	SpinLockAcquire(&shared->mutex);
	shared->decoder_latch = nullptr;
	shared->decoder_pid = 0;
	SpinLockRelease(&shared->mutex);
}

/* Entry point of the decoder worker (bgw_function_name) */
void
realtime_worker_main(Datum)
{
	rt::ext::RealtimeShared *shared = rt::ext::Shared();
	MemoryContext reader_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(realtime_database, nullptr, 0);
	pgstat_report_appname("realtime decoder");
	AllowOwnPlugin();
	/* values are rendered once for every client: times in UTC, as upstream shows them */
	SetConfigOption("TimeZone", "UTC", PGC_SUSET, PGC_S_OVERRIDE);

	before_shmem_exit(WorkerShmemExit, 0);
	SpinLockAcquire(&shared->mutex);
	shared->decoder_latch = MyLatch;
	shared->decoder_pid = MyProcPid;
	SpinLockRelease(&shared->mutex);

	rt::ext::RingOpen();
	EnsureSlot();
	StartDecoding();
	ereport(LOG, (errmsg("realtime decoder started on database \"%s\", ring \"%s\"",
	                     realtime_database, realtime_ring_path)));

	/*
	 * Never reset, as a walsender's command context: the WAL reader keeps an
	 * oversized record it decoded in the current context until it reads the
	 * next one (XLogReleasePreviousRecord frees it then).
	 */
	reader_cxt =
	    AllocSetContextCreate(TopMemoryContext, "realtime decoder reader", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		(void)rt::ext::RingMaintain(); /* heartbeat; reclaims dead readers' slots */
		old = MemoryContextSwitchTo(reader_cxt);
		DecodeAvailable();
		MemoryContextSwitchTo(old);

		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
		                realtime_decoder_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

namespace rt::ext
{

void
WorkerRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = kRestartSeconds;
	strlcpy(worker.bgw_library_name, "realtime", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "realtime_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "realtime decoder", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "realtime decoder", BGW_MAXLEN);
	worker.bgw_main_arg = static_cast<Datum>(0);
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

} // namespace rt::ext
