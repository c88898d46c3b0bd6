/*
 * shmem.cpp
 *	  The realtime control block in PostgreSQL shared memory.
 *
 * The hooks run in the postmaster (request) and in the postmaster and every
 * child that attaches shared memory (startup); the block is then read and
 * written by backends (latch pointer) and the decoder worker (everything).
 * Previous hooks are saved and called first, so other extensions keep working.
 */
extern "C"
{
#include "postgres.h"

#include "access/xlogdefs.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
}

#include "shmem.hpp"

namespace
{

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;
rt::ext::RealtimeShared *shared = nullptr;

} // namespace

extern "C"
{
	static void RealtimeShmemRequest(void);
	static void RealtimeShmemStartup(void);
}

/* Ask for the control block's space (postmaster, after shared_preload_libraries) */
static void
RealtimeShmemRequest(void)
{
	if (prev_shmem_request_hook != nullptr)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(rt::ext::RealtimeShared)));
}

/* Find or create the control block; the first process to get here initialises it */
static void
RealtimeShmemStartup(void)
{
	bool found;

	if (prev_shmem_startup_hook != nullptr)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = static_cast<rt::ext::RealtimeShared *>(
	    ShmemInitStruct("realtime", sizeof(rt::ext::RealtimeShared), &found));
	if (!found)
	{
		memset(shared, 0, sizeof(*shared));
		SpinLockInit(&shared->mutex);
		shared->decoder_latch = nullptr;
		shared->decoder_pid = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

namespace rt::ext
{

void
ShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = RealtimeShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = RealtimeShmemStartup;
}

RealtimeShared *
Shared(void)
{
	return shared;
}

} // namespace rt::ext
