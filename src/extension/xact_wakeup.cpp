/*
 * xact_wakeup.cpp
 *	  Commit-time wake-up of the decoder worker.
 *
 * Registered in the postmaster from _PG_init, so every backend forked from it
 * runs the callback. A transaction that has an xid wrote WAL (row changes and
 * realtime.send()'s transactional messages both assign one), and so did one
 * that ran COMMIT PREPARED (it has no xid of its own); when it commits,
 * the decoder worker's latch is set so that it decodes at once instead of at
 * its next nap timeout. Latency is then the commit itself, not a polling
 * interval.
 *
 * XACT_EVENT_COMMIT runs after the commit record is written and the
 * transaction can no longer abort: an ERROR there becomes a PANIC (STYLE.md
 * B6). So nothing here can fail: the xid test is done in PRE_COMMIT, and at
 * COMMIT the latch pointer is copied under the spinlock, which is released
 * before SetLatch (which cannot fail either).
 */
extern "C"
{
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogdefs.h"
#include "storage/latch.h"
#include "storage/spin.h"
}

#include "shmem.hpp"
#include "xact_wakeup.hpp"

namespace
{

/* Whether the transaction being committed wrote WAL (set at PRE_COMMIT) */
bool wrote_wal = false;

} // namespace

extern "C"
{
	static void RealtimeXactCallback(XactEvent event, void *arg);
}

/* PRE_COMMIT: remember whether we wrote; COMMIT: wake the decoder; abort: forget */
static void
RealtimeXactCallback(XactEvent event, void *)
{
	rt::ext::RealtimeShared *shared;
	Latch *latch;

	switch (event)
	{
	case XACT_EVENT_PRE_COMMIT:
	case XACT_EVENT_PARALLEL_PRE_COMMIT:
		/*
		 * An xid: it wrote row changes or messages. Or WAL written without
		 * one: COMMIT PREPARED commits a prepared transaction from a
		 * transaction that has none.
		 */
		wrote_wal = TransactionIdIsValid(GetTopTransactionIdIfAny()) || XactLastRecEnd != 0;
		break;
	case XACT_EVENT_COMMIT:
	case XACT_EVENT_PARALLEL_COMMIT:
		shared = rt::ext::Shared();
		if (!wrote_wal || shared == nullptr)
			break;
		wrote_wal = false;
		SpinLockAcquire(&shared->mutex);
		latch = shared->decoder_latch;
		SpinLockRelease(&shared->mutex);
		if (latch != nullptr)
			SetLatch(latch);
		break;
	default:
		wrote_wal = false;
		break;
	}
}

namespace rt::ext
{

void
XactWakeupInit(void)
{
	RegisterXactCallback(RealtimeXactCallback, nullptr);
}

} // namespace rt::ext
