/*
 * ring_writer.hpp
 *	  The decoder worker's side of the ring file: map, append, wake readers.
 *
 * A thin shim over rt_ring.h's writer (all append arithmetic lives there and
 * is unit-tested in test/c): this file does the syscalls (open, mmap, futex)
 * and the clock. Runs in the decoder background worker only.
 *
 * Include after postgres.h (STYLE.md B7).
 */
#ifndef RT_EXT_RING_WRITER_HPP
#define RT_EXT_RING_WRITER_HPP

#include "rt_ring_writer.h"

namespace rt::ext
{

/* Milliseconds of CLOCK_MONOTONIC, the clock of ring heartbeats */
uint64 MonotonicMs(void);

/* Microseconds of the same clock */
uint64 MonotonicUs(void);

/*
 * Map the ring at realtime.ring_path: resume a compatible existing ring
 * (readers stay attached across worker restarts), else create a new file
 * under a temporary name, initialise it and rename it over the path, so a
 * file a reader has mapped is never shrunk or re-initialised under it. ERROR
 * on failure (the worker restarts).
 */
void RingOpen(void);

/* Whether RingOpen succeeded in this process */
bool RingIsOpen(void);

/* The writer, for appends (RtRingAppend / RtRingAppendGap) */
RtRingWriter *Ring(void);

/* After a batch of appends: bump the futex word, FUTEX_WAKE if a reader sleeps */
void RingNotify(void);

/*
 * Everything that committed before lsn is in the ring (after its records are
 * published): readers use it to know when a subscription's changes flow
 */
void RingSetDecoded(uint64 lsn);

/* Heartbeat and reclaim of dead reader slots; returns the number of live readers */
uint32 RingMaintain(void);

} // namespace rt::ext

#endif /* RT_EXT_RING_WRITER_HPP */
