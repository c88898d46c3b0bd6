/*
 * stats.cpp
 *	  realtime.ring_stats(): the ring's header and the decoder's counters, for
 *	  realtime.stats() (sql/realtime.sql adds the slot's lag).
 *
 * Runs in any backend calling it. The ring file is mapped read-only for the
 * call (its header only) and every value is copied out with the atomic loads
 * of rt_ring.h; nothing is written, so a monitoring query never disturbs the
 * writer or the readers. Counters of the decoder worker come from the shared
 * control block (shmem.hpp).
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlogdefs.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/pg_lsn.h"
}

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guc.hpp"
#include "ring_writer.hpp"
#include "shmem.hpp"

extern "C"
{
	PG_FUNCTION_INFO_V1(realtime_ring_stats);
}

namespace
{

constexpr int kColumns = 18;

/* Map the header of the ring at path read-only; nullptr if absent or not a ring */
const RtRingHeader *
MapHeader(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *p;

	if (fd < 0)
		return nullptr;
	if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(RT_RING_HEADER_SIZE))
	{
		close(fd);
		return nullptr;
	}
	p = mmap(nullptr, RT_RING_HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return nullptr;
	if (RT_LOAD_ACQUIRE(&static_cast<const RtRingHeader *>(p)->magic) != RT_RING_MAGIC)
	{
		munmap(p, RT_RING_HEADER_SIZE);
		return nullptr;
	}
	return static_cast<const RtRingHeader *>(p);
}

/* Milliseconds between then and now, never negative */
int64
AgeMs(uint64 now, uint64 then)
{
	return now > then ? static_cast<int64>(now - then) : 0;
}

/* The readers of the ring as a JSON array: live and claiming slots only */
Datum
ReadersJson(const RtRingHeader *h, uint64 now)
{
	StringInfoData buf;
	bool first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < RT_RING_SLOTS; i++)
	{
		const RtRingSlot *s = &h->slots[i];
		uint64 owner = RT_LOAD_ACQUIRE(&s->owner);
		uint64 hb = RT_LOAD_RELAXED(&s->heartbeat_ms);

		if (RT_SLOT_STATE(owner) == RT_SLOT_FREE)
			continue;
		appendStringInfo(&buf,
		                 "%s{\"slot\": %d, \"pid\": %u, \"state\": \"%s\", \"read_pos\": %llu, "
		                 "\"heartbeat_age_ms\": %lld, \"records_read\": %llu, "
		                 "\"records_lost\": %llu}",
		                 first ? "" : ", ", i, RT_LOAD_RELAXED(&s->pid),
		                 RT_SLOT_STATE(owner) == RT_SLOT_LIVE ? "live" : "claiming",
		                 static_cast<unsigned long long>(RT_LOAD_RELAXED(&s->read_pos)),
		                 static_cast<long long>(AgeMs(now, hb)),
		                 static_cast<unsigned long long>(RT_LOAD_RELAXED(&s->records_read)),
		                 static_cast<unsigned long long>(RT_LOAD_RELAXED(&s->records_lost)));
		first = false;
	}
	appendStringInfoChar(&buf, ']');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

Datum
U64(uint64 v)
{
	return Int64GetDatum(static_cast<int64>(v));
}

} // namespace

/*
 * realtime.ring_stats() returns one row: the ring (NULLs when the file is
 * missing or not a ring yet) and the decoder worker's counters.
 */
Datum
realtime_ring_stats(PG_FUNCTION_ARGS)
{
	TupleDesc desc;
	Datum values[kColumns];
	bool nulls[kColumns];
	rt::ext::RealtimeShared *shared = rt::ext::Shared();
	rt::ext::DecoderCounters counters;
	int worker_pid = 0;
	const RtRingHeader *h;
	uint64 now = rt::ext::MonotonicMs();

	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	if (desc->natts != kColumns)
		elog(ERROR, "realtime.ring_stats() must return %d columns", kColumns);

	memset(nulls, true, sizeof(nulls));
	memset(values, 0, sizeof(values));
	memset(&counters, 0, sizeof(counters));
	if (shared != nullptr)
	{
		SpinLockAcquire(&shared->mutex);
		counters = shared->counters;
		worker_pid = shared->decoder_pid;
		SpinLockRelease(&shared->mutex);
	}

	values[0] = CStringGetTextDatum(realtime_ring_path);
	nulls[0] = false;
	h = MapHeader(realtime_ring_path);
	if (h != nullptr)
	{
		values[1] = U64(RT_LOAD_RELAXED(&h->capacity));
		values[2] = U64(RT_LOAD_ACQUIRE(&h->write_pos));
		values[3] = U64(RT_LOAD_ACQUIRE(&h->tail_pos));
		values[4] = U64(RT_LOAD_RELAXED(&h->next_seq));
		values[5] = U64(RT_LOAD_RELAXED(&h->records_written));
		values[6] = U64(RT_LOAD_RELAXED(&h->records_dropped));
		values[7] = U64(RT_LOAD_RELAXED(&h->records_skipped));
		values[8] = U64(RT_LOAD_RELAXED(&h->records_too_large));
		values[9] = Int32GetDatum(static_cast<int32>(RT_LOAD_RELAXED(&h->writer_pid)));
		values[10] = Int64GetDatum(AgeMs(now, RT_LOAD_RELAXED(&h->writer_heartbeat_ms)));
		values[11] = ReadersJson(h, now);
		for (int i = 1; i <= 11; i++)
			nulls[i] = false;
		/* 0 in a ring of a 1.0 writer, or before the first batch */
		values[17] = LSNGetDatum(RtRingDecodedLsn(h));
		nulls[17] = RtRingDecodedLsn(h) == 0;
		munmap(const_cast<RtRingHeader *>(h), RT_RING_HEADER_SIZE);
	}
	values[12] = Int32GetDatum(worker_pid);
	values[13] = U64(counters.turns);
	values[14] = U64(counters.records_appended);
	values[15] = U64(counters.stalls);
	values[16] = U64(counters.forced);
	for (int i = 12; i < 17; i++)
		nulls[i] = false;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
