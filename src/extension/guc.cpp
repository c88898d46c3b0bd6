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

#include <climits>

#include "guc.hpp"
#include "rt_ring.h"

/*
 * Upstream's default tenant limit is max_payload_size_in_kb = 3000, with
 * kB = 1000 bytes (PROTOCOL.md section 9.1); the same number of bytes here.
 */
static constexpr int kDefaultMaxMessageBytes = RT_DEFAULT_MAX_PAYLOAD_KB * 1000;

/* Upper bound: a message must fit in one palloc (MaxAllocSize, 1 GB - 1) */
static constexpr int kMaxMaxMessageBytes = 0x3fffffff;

/*
 * 64 MB: the largest record is a quarter of the ring (rt_ring.h), so the
 * default 3 MB message fits with room to spare. The largest power of two an
 * int holds is 1 GB.
 */
static constexpr int kDefaultRingSize = 64 * 1024 * 1024;
static constexpr int kMaxRingSize = 1024 * 1024 * 1024;

/* How far the slot may fall behind a stalled live reader before records are dropped */
static constexpr int kDefaultMaxLagBytes = 256 * 1024 * 1024;

char *realtime_database = nullptr;
char *realtime_publication = nullptr;
int realtime_max_message_bytes = kDefaultMaxMessageBytes;
int realtime_persist_messages = kPersistPrivate;
char *realtime_topic = nullptr;
char *realtime_ring_path = nullptr;
int realtime_ring_size = kDefaultRingSize;
int realtime_ring_file_mode = 0660;
int realtime_max_lag_bytes = kDefaultMaxLagBytes;
int realtime_decoder_naptime = 200;
int realtime_message_retention = 3 * 24 * 60;
int realtime_janitor_naptime = 60000;

/*
 * on = every message, as when the setting was a boolean (whose other spellings
 * stay hidden aliases); "all" is one too, but SET needs it quoted (a keyword).
 */
static const struct config_enum_entry kPersistOptions[] = {
    {"off", kPersistOff, false}, {"private", kPersistPrivate, false},
    {"on", kPersistAll, false},  {"all", kPersistAll, true},
    {"true", kPersistAll, true}, {"yes", kPersistAll, true},
    {"1", kPersistAll, true},    {"false", kPersistOff, true},
    {"no", kPersistOff, true},   {"0", kPersistOff, true},
    {nullptr, 0, false}};

extern "C"
{
	static bool CheckObjectName(char **newval, void **extra, GucSource source);
	static bool CheckRingPath(char **newval, void **extra, GucSource source);
	static bool CheckRingSize(int *newval, void **extra, GucSource source);
	static bool CheckFileMode(int *newval, void **extra, GucSource source);
	static const char *ShowFileMode(void);
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

/* Check hook: the ring path must be given */
static bool
CheckRingPath(char **newval, void **, GucSource)
{
	if (*newval == nullptr || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("The ring path must not be empty.");
		return false;
	}
	return true;
}

/* Check hook: the ring's data area is a power of two within rt_ring.h's limits */
static bool
CheckRingSize(int *newval, void **, GucSource)
{
	if (!RtRingCapacityValid(static_cast<uint64_t>(*newval)))
	{
		GUC_check_errdetail("The ring size must be a power of two of at least %u bytes.",
		                    RT_RING_MIN_CAPACITY);
		return false;
	}
	return true;
}

/* Check hook: permission bits only, and the owner can read and write */
static bool
CheckFileMode(int *newval, void **, GucSource)
{
	if ((*newval & 0600) != 0600)
	{
		GUC_check_errdetail("The owner must be able to read and write the ring file.");
		return false;
	}
	return true;
}

/* Show the file mode in octal, as unix_socket_permissions does */
static const char *
ShowFileMode(void)
{
	static char buf[12];

	snprintf(buf, sizeof(buf), "%04o", realtime_ring_file_mode);
	return buf;
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

	DefineCustomEnumVariable(
	    "realtime.persist_messages",
	    "Which realtime.send() messages are stored in realtime.messages.",
	    "private (the default): private messages, which clients can replay; on: every one, as "
	    "upstream; off: none. Delivery never depends on it.",
	    &realtime_persist_messages, kPersistPrivate, kPersistOptions, PGC_USERSET, 0, nullptr,
	    nullptr, nullptr);

	/*
	 * Not a setting of ours: the sidecar (set_config) and RLS policies (through
	 * realtime.topic()) use it to pass the channel topic. It must be defined,
	 * because the reserved prefix below rejects unknown realtime.* names.
	 */
	DefineCustomStringVariable(
	    "realtime.topic", "Topic of the channel being authorized, for RLS policies.",
	    "Set by the sidecar with set_config(); read with realtime.topic().", &realtime_topic, "",
	    PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);

	/* The ring is created by the decoder worker at start; readers follow the path */
	DefineCustomStringVariable(
	    "realtime.ring_path", "File of the ring the decoder worker writes and the sidecar reads.",
	    "A relative path is relative to the data directory. Pass the same path to "
	    "realtime-fanout --ring-path.",
	    &realtime_ring_path, "pg_realtime.ring", PGC_POSTMASTER, 0, CheckRingPath, nullptr,
	    nullptr);

	DefineCustomIntVariable("realtime.ring_size", "Size of the ring's data area, in bytes.",
	                        "A power of two; the largest record is a quarter of it.",
	                        &realtime_ring_size, kDefaultRingSize, RT_RING_MIN_CAPACITY,
	                        kMaxRingSize, PGC_POSTMASTER, GUC_UNIT_BYTE, CheckRingSize, nullptr,
	                        nullptr);

	DefineCustomIntVariable(
	    "realtime.ring_file_mode", "Permissions of the ring file the decoder worker creates.",
	    "Readers need read-write access (their slot lives in the file); 0660 lets a sidecar in "
	    "the server's group attach.",
	    &realtime_ring_file_mode, 0660, 0600, 0777, PGC_POSTMASTER, 0, CheckFileMode, nullptr,
	    ShowFileMode);

	DefineCustomIntVariable(
	    "realtime.max_lag_bytes",
	    "How far the decoder may fall behind a live reader that does not keep up, in bytes.",
	    "Past it the decoder overwrites what the reader has not read (counted; readers see the "
	    "gap) so that WAL does not pile up.",
	    &realtime_max_lag_bytes, kDefaultMaxLagBytes, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_BYTE,
	    nullptr, nullptr, nullptr);

	DefineCustomIntVariable("realtime.decoder_naptime",
	                        "Longest sleep of the decoder worker between two looks at the WAL.",
	                        "Commits wake it at once; this bounds the delay of asynchronous "
	                        "commits and of ring heartbeats.",
	                        &realtime_decoder_naptime, 200, 10, 60000, PGC_SIGHUP, GUC_UNIT_MS,
	                        nullptr, nullptr, nullptr);

	/* The janitor's knobs (janitor.cpp): taken on reload */
	DefineCustomIntVariable(
	    "realtime.message_retention", "How long rows of realtime.messages are kept.",
	    "The janitor drops a day's partition once all of it is older than this; rows with an "
	    "expiry (persisted with a TTL) go earlier. The default is upstream's 3 days.",
	    &realtime_message_retention, 3 * 24 * 60, 60, INT_MAX, PGC_SIGHUP, GUC_UNIT_MIN, nullptr,
	    nullptr, nullptr);

	DefineCustomIntVariable("realtime.janitor_naptime",
	                        "Time between two passes of the janitor worker over realtime.messages.",
	                        "Each pass creates the coming days' partitions, deletes expired rows "
	                        "and drops partitions past realtime.message_retention.",
	                        &realtime_janitor_naptime, 60000, 100, 24 * 3600 * 1000, PGC_SIGHUP,
	                        GUC_UNIT_MS, nullptr, nullptr, nullptr);

	MarkGUCPrefixReserved("realtime");
}

} // namespace rt::ext
