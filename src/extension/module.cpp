/*
 * module.cpp
 *	  Entry point of realtime.so: the module magic block and _PG_init.
 *
 * _PG_init runs in the postmaster while it processes shared_preload_libraries
 * (and, on EXEC_BACKEND builds, again in each child it starts). Loading the
 * library any other way (LOAD, a function call, an output plugin request in a
 * server without the preload) is refused: the decoder worker and the shared
 * state it needs can only be set up at postmaster start.
 */
extern "C"
{
#include "postgres.h"

#include "access/xlogdefs.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/spin.h"
}

#include "guc.hpp"
#include "janitor.hpp"
#include "shmem.hpp"
#include "worker.hpp"
#include "xact_wakeup.hpp"

extern "C"
{
	PG_MODULE_MAGIC;

	void _PG_init(void);
}

/* Module load callback: check the preload, then initialise each module */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("realtime must be loaded via \"shared_preload_libraries\""),
		                errhint("Add realtime to \"shared_preload_libraries\" in postgresql.conf, "
		                        "for example shared_preload_libraries = 'realtime', "
		                        "and restart the server.")));

	rt::ext::GucInit();
	rt::ext::ShmemInit();
	rt::ext::WorkerRegister();
	rt::ext::JanitorRegister();
	rt::ext::XactWakeupInit();
}
