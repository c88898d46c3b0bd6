/*
 * guc.cpp
 *	  Definition of the realtime.* configuration parameters.
 *
 * Runs in the postmaster, from _PG_init, while shared_preload_libraries is
 * processed; every backend and worker inherits the definitions. After the
 * definitions the "realtime" prefix is reserved, so a misspelt realtime.*
 * setting is an error instead of a silently ignored placeholder.
 */
extern "C"
{
#include "postgres.h"

#include "utils/guc.h"
}

#include "guc.hpp"
#include "rt_ring.h"

/*
 * Upstream's default tenant limit is max_payload_size_in_kb = 3000, with
 * kB = 1000 bytes (PROTOCOL.md section 9.1); the same number of bytes here.
 */
static constexpr int kDefaultMaxMessageBytes = RT_DEFAULT_MAX_PAYLOAD_KB * 1000;

/* Upper bound: a message must fit in one palloc (MaxAllocSize, 1 GB - 1) */
static constexpr int kMaxMaxMessageBytes = 0x3fffffff;

char *realtime_database = nullptr;
char *realtime_publication = nullptr;
int realtime_max_message_bytes = kDefaultMaxMessageBytes;
bool realtime_persist_messages = false;
char *realtime_topic = nullptr;

extern "C"
{
	static bool CheckObjectName(char **newval, void **extra, GucSource source);
}

/* Check hook: a database or publication name must be non-empty and fit in a Name */
static bool
CheckObjectName(char **newval, void **, GucSource)
{
	size_t len = *newval ? strlen(*newval) : 0;

	if (len == 0)
	{
		GUC_check_errdetail("The name must not be empty.");
		return false;
	}
	if (len >= NAMEDATALEN)
	{
		GUC_check_errdetail("The name must be shorter than %d bytes.", NAMEDATALEN);
		return false;
	}
	return true;
}

namespace rt::ext
{

void
GucInit(void)
{
	/* The worker connects once at start; another database needs a restart */
	DefineCustomStringVariable(
	    "realtime.database", "Database whose changes and messages the decoder worker streams.",
	    "The decoder worker owns the logical slot \"realtime\" in it.", &realtime_database,
	    "postgres", PGC_POSTMASTER, 0, CheckObjectName, nullptr, nullptr);

	/* A worker knob: taken on reload (SIGHUP) */
	DefineCustomStringVariable("realtime.publication",
	                           "Publication whose tables' row changes are streamed.", nullptr,
	                           &realtime_publication, "supabase_realtime", PGC_SIGHUP, 0,
	                           CheckObjectName, nullptr, nullptr);

	DefineCustomIntVariable(
	    "realtime.max_message_bytes", "Largest payload realtime.send() accepts, in bytes.",
	    "The default, 3000000, is upstream's default tenant limit "
	    "(max_payload_size_in_kb = 3000).",
	    &realtime_max_message_bytes, kDefaultMaxMessageBytes, 1, kMaxMaxMessageBytes, PGC_USERSET,
	    GUC_UNIT_BYTE, nullptr, nullptr, nullptr);

	DefineCustomBoolVariable("realtime.persist_messages",
	                         "Also insert each realtime.send() message into realtime.messages.",
	                         "Delivery never depends on it; the row is for users who query it.",
	                         &realtime_persist_messages, false, PGC_USERSET, 0, nullptr, nullptr,
	                         nullptr);

	/*
	 * Not a setting of ours: the sidecar (set_config) and RLS policies (through
	 * realtime.topic()) use it to pass the channel topic. It must be defined,
	 * because the reserved prefix below rejects unknown realtime.* names.
	 */
	DefineCustomStringVariable(
	    "realtime.topic", "Topic of the channel being authorized, for RLS policies.",
	    "Set by the sidecar with set_config(); read with realtime.topic().", &realtime_topic, "",
	    PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);

	MarkGUCPrefixReserved("realtime");
}

} // namespace rt::ext
