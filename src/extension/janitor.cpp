/*
 * janitor.cpp
 *	  The janitor background worker: retention of realtime.messages.
 *
 * One process beside the decoder, so that a long DELETE never delays the
 * decoding of WAL. It connects to the database of realtime.database and,
 * every realtime.janitor_naptime, runs realtime.expire_messages() in a
 * transaction of its own when the extension is installed there: the coming
 * days' partitions, the rows past their expiry (messages persisted with a
 * TTL), the partitions past realtime.message_retention. What it did is added
 * to shared counters (shmem.hpp) that realtime.janitor_stats() reads for
 * realtime.stats().
 *
 * Dropping a partition takes a short exclusive lock on realtime.messages; the
 * pass waits for it at most kLockTimeout, so that a long reader of the table
 * never queues the senders behind the janitor. A pass that fails (that lock,
 * a broken partition) is an ERROR: the process exits and the postmaster
 * starts it again after kRestartSeconds; the counters survive in shared
 * memory.
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include "guc.hpp"
#include "janitor.hpp"
#include "shmem.hpp"

extern "C"
{
	PGDLLEXPORT void realtime_janitor_main(Datum main_arg);
	PG_FUNCTION_INFO_V1(realtime_janitor_stats);

	static void JanitorShmemExit(int code, Datum arg);
}

namespace
{

constexpr int kRestartSeconds = 10;
constexpr const char *kLockTimeout = "1s";

/* What one pass did */
struct PassResult
{
	bool ran = false; /* the extension is installed and expire_messages() ran */
	int64 expired = 0;
	int32 dropped = 0;
};

int64
Int64Column(int column)
{
	bool isnull;
	Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* One transaction: realtime.expire_messages() if the extension is installed here */
PassResult
Pass(void)
{
	PassResult r;
	bool isnull;
	int rc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "realtime janitor pass");

	rc = SPI_execute("SELECT pg_catalog.to_regprocedure('realtime.expire_messages(interval)') "
	                 "IS NOT NULL",
	                 true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "SPI_execute returned %s", SPI_result_code_string(rc));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		rc = SPI_execute("SELECT messages_expired, partitions_dropped::bigint "
		                 "FROM realtime.expire_messages()",
		                 false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "SPI_execute returned %s", SPI_result_code_string(rc));
		r.ran = true;
		r.expired = Int64Column(1);
		r.dropped = static_cast<int32>(Int64Column(2));
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* a worker that never exits reports its table statistics itself: without them
	 * autovacuum would not see the rows it deleted */
	(void)pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, nullptr);
	return r;
}

void
Publish(rt::ext::RealtimeShared *shared, const PassResult &r)
{
	SpinLockAcquire(&shared->mutex);
	shared->janitor.passes += 1;
	shared->janitor.messages_expired += static_cast<uint64>(r.expired);
	shared->janitor.partitions_dropped += static_cast<uint64>(r.dropped);
	shared->janitor.last_pass = GetCurrentTimestamp();
	SpinLockRelease(&shared->mutex);
}

} // namespace

/* on exit, also by ERROR: no janitor is running */
static void
JanitorShmemExit(int, Datum)
{
	rt::ext::RealtimeShared *shared = rt::ext::Shared();

	SpinLockAcquire(&shared->mutex);
	shared->janitor.pid = 0;
	SpinLockRelease(&shared->mutex);
}

void
realtime_janitor_main(Datum)
{
	rt::ext::RealtimeShared *shared = rt::ext::Shared();

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(realtime_database, nullptr, 0);
	pgstat_report_appname("realtime janitor");
	SetConfigOption("TimeZone", "UTC", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", kLockTimeout, PGC_SUSET, PGC_S_OVERRIDE);

	before_shmem_exit(JanitorShmemExit, 0);
	SpinLockAcquire(&shared->mutex);
	shared->janitor.pid = MyProcPid;
	SpinLockRelease(&shared->mutex);
	ereport(LOG, (errmsg("realtime janitor started on database \"%s\"", realtime_database)));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		PassResult r = Pass();

		if (r.ran)
			Publish(shared, r);
		if (r.expired > 0 || r.dropped > 0)
			ereport(DEBUG1, (errmsg("realtime janitor: %lld expired messages deleted, %d "
			                        "partitions dropped",
			                        static_cast<long long>(r.expired), r.dropped)));
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
		                realtime_janitor_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * realtime.janitor_stats(OUT janitor_pid integer, OUT janitor_passes bigint,
 * OUT messages_expired bigint, OUT partitions_dropped bigint,
 * OUT janitor_last_pass_age_ms bigint): the shared counters; pid and age are
 * NULL when no janitor runs / before its first pass.
 */
Datum
realtime_janitor_stats(PG_FUNCTION_ARGS)
{
	rt::ext::RealtimeShared *shared = rt::ext::Shared();
	rt::ext::JanitorCounters c;
	TupleDesc tupdesc;
	Datum values[5];
	bool nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		                errmsg("function returning record called in context that cannot accept "
		                       "type record")));
	SpinLockAcquire(&shared->mutex);
	c = shared->janitor;
	SpinLockRelease(&shared->mutex);

	values[0] = Int32GetDatum(c.pid);
	nulls[0] = c.pid == 0;
	values[1] = Int64GetDatum(static_cast<int64>(c.passes));
	values[2] = Int64GetDatum(static_cast<int64>(c.messages_expired));
	values[3] = Int64GetDatum(static_cast<int64>(c.partitions_dropped));
	values[4] = Int64GetDatum((GetCurrentTimestamp() - c.last_pass) / 1000);
	nulls[4] = c.last_pass == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

namespace rt::ext
{

void
JanitorRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = kRestartSeconds;
	strlcpy(worker.bgw_library_name, "realtime", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "realtime_janitor_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "realtime janitor", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "realtime janitor", BGW_MAXLEN);
	worker.bgw_main_arg = static_cast<Datum>(0);
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

} // namespace rt::ext
