/*
 * guc.hpp
 *	  Configuration parameters (GUCs) of the realtime extension.
 *
 * Defined by GucInit() from _PG_init, that is in the postmaster while it loads
 * shared_preload_libraries; backends and workers inherit the definitions by fork.
 * The variables are read by whichever process runs the code that needs them.
 */
#ifndef RT_EXT_GUC_HPP
#define RT_EXT_GUC_HPP

extern char *realtime_database;        /* realtime.database: database of the decoder worker */
extern char *realtime_publication;     /* realtime.publication: tables whose changes are sent */
extern int realtime_max_message_bytes; /* realtime.max_message_bytes: realtime.send() limit */
extern int realtime_persist_messages;  /* realtime.persist_messages: which sends are stored */
extern char *realtime_topic;           /* realtime.topic: channel topic for RLS, set per check */
extern char *realtime_ring_path;       /* realtime.ring_path: the ring file (data dir relative) */
extern int realtime_ring_size;         /* realtime.ring_size: data area bytes, a power of two */
extern int realtime_ring_file_mode;    /* realtime.ring_file_mode: mode of a new ring file */
extern int realtime_max_lag_bytes;     /* realtime.max_lag_bytes: pause limit before dropping */
extern int realtime_decoder_naptime;   /* realtime.decoder_naptime: longest worker sleep, ms */
extern int realtime_message_retention; /* realtime.message_retention: minutes rows are kept */
extern int realtime_janitor_naptime;   /* realtime.janitor_naptime: ms between janitor passes */

/* realtime.persist_messages: which realtime.send() messages become rows of realtime.messages */
enum PersistMessages
{
	kPersistOff,     /* none: ring only */
	kPersistPrivate, /* private ones (the default): they can be replayed (PROTOCOL.md 4.5) */
	kPersistAll      /* on: every one, as upstream */
};

namespace rt::ext
{

/* Define every realtime.* GUC and reserve the prefix; call once from _PG_init */
void GucInit(void);

} // namespace rt::ext

#endif /* RT_EXT_GUC_HPP */
