/*
 * worker.cpp
 *	  The decoder background worker: decodes slot "realtime" into the ring.
 *
 * One process, started by the postmaster once recovery is over and restarted
 * a few seconds after it exits with an ERROR. It connects to the database of
 * realtime.database, creates the logical slot "realtime" (output plugin
 * "realtime") if missing, maps the ring (ring_writer.hpp), publishes its
 * latch for committing backends (xact_wakeup.cpp) and loops: each turn
 * decodes the WAL from the slot up to the flushed position, as PostgreSQL's
 * pg_logical_slot_get_changes does (logicalfuncs.c), with the output plugin in
 * format "ring" and write callbacks that append each record to the ring.
 *
 * Backpressure (ARCHITECTURE.md "Backpressure and loss"). With a live reader,
 * an append that would overwrite what it has not read (RT_RING_FULL) stops
 * the turn: the rest of the turn's output is discarded and the slot is
 * confirmed only up to the commit of the transaction that did not fit, so the
 * slot keeps its WAL and the next turn decodes it again, skipping the records
 * of that transaction already in the ring. Once the slot keeps more than
 * realtime.max_lag_bytes of WAL (from its restart point), appends are forced:
 * the ring overwrites, counts the loss, and readers see the gap. With no live
 * reader appends never block, so the slot always advances and an absent
 * sidecar never piles up WAL. Nothing here ever waits for a reader or blocks
 * a backend. A reader that stops heartbeating is reclaimed after 5 s
 * (ring_writer.cpp) and no longer holds the writer back.
 *
 * A record appended but not yet confirmed when the worker dies is decoded
 * again by its successor: delivery across a worker crash is at least once.
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

/*
 * What one turn's write callback needs, and what survives from a stalled turn
 * to the next: the commit LSN of the transaction that did not fit and how many
 * of its records are already in the ring.
 */
struct TurnState
{
	bool force;               /* append over unread records (max lag exceeded) */
	bool stalled;             /* a live reader is behind: drop the rest of this turn */
	XLogRecPtr cur_commit;    /* commit LSN of the transaction being written */
	uint64 cur_index;         /* index of its next record */
	XLogRecPtr stall_commit;  /* the transaction that did not fit */
	uint64 stall_written;     /* how many of its records are in the ring */
	XLogRecPtr resume_commit; /* from the previous turn: skip ... */
	uint64 resume_written;    /* ... this many records of that transaction */
	uint64 appended;          /* records appended this turn */
	uint64 forced;            /* of which over unread records */
	uint64 too_large;         /* replaced by a GAP record */
};

TurnState turn;
XLogRecPtr decoded_upto = InvalidXLogRecPtr; /* end of the last turn that finished */

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

/* Publish counters for realtime.stats() */
void
PublishCounters(XLogRecPtr confirmed, bool stalled)
{
	rt::ext::RealtimeShared *shared = rt::ext::Shared();

	SpinLockAcquire(&shared->mutex);
	shared->counters.turns++;
	shared->counters.records_appended += turn.appended;
	shared->counters.forced += turn.forced;
	shared->counters.too_large += turn.too_large;
	if (stalled)
		shared->counters.stalls++;
	if (confirmed != InvalidXLogRecPtr)
		shared->counters.confirmed = confirmed;
	SpinLockRelease(&shared->mutex);
}

/*
 * One turn: decode everything from the slot up to the flushed WAL into the
 * ring (or up to the transaction that does not fit), confirm, release.
 */
void
DecodeTurn(void)
{
	XLogRecPtr flush = GetFlushRecPtr(nullptr);
	bool retry = turn.resume_commit != InvalidXLogRecPtr;
	ResourceOwner old_owner;
	LogicalDecodingContext *ctx;
	XLogRecPtr confirmed;
	XLogRecPtr confirm;
	XLogRecPtr restart;
	uint64 lag;
	XLogReaderRoutine routine;
	List *options;
	int saved_log_level;

	if (flush <= decoded_upto && !retry)
		return;

	/*
	 * Starting a decoding context logs "starting logical decoding" and the
	 * consistent point at LOG: once per walsender, but once per turn here.
	 * Quiet them at the default level; a DEBUG level set by the operator stays.
	 */
	saved_log_level = log_min_messages;
	if (log_min_messages == LOG)
		log_min_messages = WARNING;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	old_owner = CurrentResourceOwner;
	ReplicationSlotAcquire(kSlotName, true);

	/*
	 * The lag that matters for max_lag_bytes is the WAL kept for the slot,
	 * from its restart point: one large transaction holds its WAL back to its
	 * start while its commit, the confirmed position, is near the end.
	 */
	SpinLockAcquire(&MyReplicationSlot->mutex);
	confirmed = MyReplicationSlot->data.confirmed_flush;
	restart = MyReplicationSlot->data.restart_lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	lag = flush > restart ? flush - restart : 0;

	/* with no live reader RtRingAppend never refuses: force only matters for a live one */
	turn.force = lag > static_cast<uint64>(realtime_max_lag_bytes);
	turn.stalled = false;
	turn.cur_commit = InvalidXLogRecPtr;
	turn.cur_index = 0;
	turn.appended = 0;
	turn.forced = 0;
	turn.too_large = 0;

	/*
	 * read_local_xlog_page, as pg_logical_slot_get_changes: the loop stops at
	 * the flush position read above, so it only waits (briefly) for the tail of
	 * a record the WAL writer flushed in part. (The _no_wait variant stores its
	 * end-of-WAL flag through reader->private_data, which logical decoding
	 * uses for its context.)
	 */
	routine.page_read = read_local_xlog_page;
	routine.segment_open = wal_segment_open;
	routine.segment_close = wal_segment_close;
	options = list_make1(
	    makeDefElem(pstrdup("format"), reinterpret_cast<Node *>(makeString(pstrdup("ring"))), -1));
	ctx = CreateDecodingContext(InvalidXLogRecPtr, options, false, &routine, RingPrepareWrite,
	                            RingWrite, nullptr);

	/* start at the slot's restart point; transactions already confirmed are skipped */
	XLogBeginRead(ctx->reader, MyReplicationSlot->data.restart_lsn);
	while (!turn.stalled && ctx->reader->EndRecPtr < flush)
	{
		char *errm = nullptr;
		XLogRecord *record = XLogReadRecord(ctx->reader, &errm);

		if (errm != nullptr)
			elog(ERROR, "could not find record for logical decoding: %s", errm);
		if (record != nullptr)
			LogicalDecodingProcessRecord(ctx, ctx->reader);
		CHECK_FOR_INTERRUPTS();
	}
	if (turn.appended > 0 || turn.too_large > 0)
		rt::ext::RingNotify();

	/*
	 * A stalled turn confirms up to the commit of the transaction that did
	 * not fit: decoding starts there again (its commit is not before the new
	 * start, so it is not skipped) and the records already written are skipped.
	 */
	if (turn.stalled)
	{
		confirm = turn.stall_commit;
		turn.resume_commit = turn.stall_commit;
		turn.resume_written = turn.stall_written;
	}
	else
	{
		confirm = ctx->reader->EndRecPtr;
		turn.resume_commit = InvalidXLogRecPtr;
		turn.resume_written = 0;
		decoded_upto = confirm;
	}
	if (confirm != InvalidXLogRecPtr && confirm > confirmed)
	{
		LogicalConfirmReceivedLocation(confirm);
		/* as the SQL functions do: saved at the next checkpoint */
		ReplicationSlotMarkDirty();
	}
	else
		confirm = confirmed;

	FreeDecodingContext(ctx);
	ReplicationSlotRelease();
	/* decoding may have clobbered the resource owner (reorderbuffer.c) */
	CurrentResourceOwner = old_owner;
	CommitTransactionCommand();
	/* the caches hold entries read under historic snapshots */
	InvalidateSystemCaches();
	log_min_messages = saved_log_level;

	PublishCounters(confirm, turn.stalled);
	if (turn.stalled)
		ereport(
		    DEBUG1,
		    (errmsg("realtime decoder paused for a ring reader; the slot keeps %llu bytes of WAL",
		            static_cast<unsigned long long>(lag))));
}

} // namespace

/* Before each record: start it afresh in ctx->out */
static void
RingPrepareWrite(LogicalDecodingContext *ctx, XLogRecPtr, TransactionId, bool)
{
	resetStringInfo(ctx->out);
}

/* After each record: append it to the ring (see the file header for FULL) */
static void
RingWrite(LogicalDecodingContext *ctx, XLogRecPtr, TransactionId, bool)
{
	RtRingWriter *w = rt::ext::Ring();
	const uint8 *data = reinterpret_cast<const uint8 *>(ctx->out->data);
	uint32 len = static_cast<uint32>(ctx->out->len);
	RtFieldReader r;
	uint32 flags = 0;
	uint64 commit = 0;
	uint64 index;
	uint64 now;
	int rc;

	if (turn.stalled)
		return; /* decoded again next turn */
	if (len < 1 || data[0] != RT_REC_MESSAGE)
		elog(ERROR, "unexpected ring record from the output plugin");
	RtFieldReaderInit(&r, data + 1, len - 1);
	if (!RtFieldGetU32(&r, &flags) || !RtFieldGetU64(&r, &commit))
		elog(ERROR, "malformed ring record from the output plugin");

	if (commit != turn.cur_commit)
	{
		turn.cur_commit = commit;
		turn.cur_index = 0;
	}
	index = turn.cur_index++;
	if (commit == turn.resume_commit && index < turn.resume_written)
		return; /* appended by the turn that stalled on this transaction */

	now = rt::ext::MonotonicMs();
	rc = RtRingAppend(w, RT_REC_MESSAGE, 0, data + 1, len - 1, now, turn.force);
	if (rc == RT_RING_TOO_LARGE)
	{
		/* readers see one record lost; counted in the header by the append */
		rc = RtRingAppendGap(w, 1, RT_GAP_TOO_LARGE, now, turn.force);
		if (rc == RT_RING_OK)
			turn.too_large++;
	}
	else if (rc == RT_RING_OK)
		turn.appended++;
	if (rc == RT_RING_FULL)
	{
		turn.stalled = true;
		turn.stall_commit = commit;
		turn.stall_written = index;
		return;
	}
	if (rc != RT_RING_OK)
		elog(ERROR, "ring append failed: %s", RtRingResultName(rc));
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
	MemoryContext turn_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(realtime_database, nullptr, 0);
	pgstat_report_appname("realtime decoder");
	AllowOwnPlugin();

	before_shmem_exit(WorkerShmemExit, 0);
	SpinLockAcquire(&shared->mutex);
	shared->decoder_latch = MyLatch;
	shared->decoder_pid = MyProcPid;
	SpinLockRelease(&shared->mutex);

	rt::ext::RingOpen();
	EnsureSlot();
	ereport(LOG, (errmsg("realtime decoder started on database \"%s\", ring \"%s\"",
	                     realtime_database, realtime_ring_path)));

	turn_cxt =
	    AllocSetContextCreate(TopMemoryContext, "realtime decoder turn", ALLOCSET_DEFAULT_SIZES);
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
		old = MemoryContextSwitchTo(turn_cxt);
		DecodeTurn();
		MemoryContextSwitchTo(old);
		MemoryContextReset(turn_cxt);

		/* a stalled turn retries at the next wake-up or timeout */
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
