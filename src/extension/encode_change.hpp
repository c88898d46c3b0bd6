/*
 * encode_change.hpp
 *	  A committed row change, collected once and written as a JSON line or a
 *	  ring record.
 *
 * Runs in whichever process decodes WAL with the output plugin "realtime",
 * from its change callback, in the per-change memory context (reset after
 * the change). The relation's columns, names and output functions come from
 * rel_meta.hpp's cache; each value is rendered once, as to_jsonb renders it
 * (PROTOCOL.md 6.4 step 7), into one buffer that both writers copy from.
 *
 * Include after postgres.h, fmgr.h, lib/stringinfo.h, access/xlogdefs.h,
 * datatype/timestamp.h, utils/rel.h and replication/reorderbuffer.h.
 */
#ifndef RT_EXT_ENCODE_CHANGE_HPP
#define RT_EXT_ENCODE_CHANGE_HPP

#include "rel_meta.hpp"

namespace rt::ext
{

/* Upstream's max_record_bytes: a change with more value bytes is "Payload Too Large" */
constexpr uint64 kMaxChangeValueBytes = 1048576;
/* ... and then keeps only the values of at most this many bytes (PROTOCOL.md 6.4) */
constexpr int kTooLargeKeptValueBytes = 64;

/* A piece of ChangeData.text; off < 0: absent */
struct ChangeSpan
{
	int off;
	int len;
};

/* A row change (INSERT, UPDATE or DELETE) of a published table */
struct ChangeData
{
	uint32 action;         /* RT_CHG_INSERT, RT_CHG_UPDATE, RT_CHG_DELETE (rt_ring.h) */
	uint32 flags;          /* RT_CHG_RLS, RT_CHG_IDENTITY_FULL, RT_CHG_TOO_LARGE */
	const RelMeta *meta;   /* the relation's columns, one span of each array per column */
	ChangeSpan *new_value; /* JSON text in "record"; absent for DELETE and unlogged TOAST */
	ChangeSpan *old_value; /* JSON text in "old_record": the replica identity */
	uint64 values_bytes;   /* JSON text of all values */
	StringInfoData text;   /* the values the spans point into */
};

/*
 * Collect a change of rel. "record" (new_value) holds every column of the new
 * row, a value that was not logged (unchanged TOAST) taken from the old row
 * if it has one and left out otherwise; "old_record" (old_value) holds the
 * replica identity columns of the old row (all of them with REPLICA IDENTITY
 * FULL), or for an UPDATE that did not log the old row the identity columns
 * of the new one. Over kMaxChangeValueBytes of values, RT_CHG_TOO_LARGE is set
 * and only values of at most kTooLargeKeptValueBytes stay.
 */
void CollectChange(Relation rel, ReorderBufferChange *change, ChangeData *c);

/*
 * Append the one-line JSON form of a change, as the output plugin prints it:
 * {"type":"INSERT","schema":…,"table":…,"relid":N,"rls":bool,
 *  "columns":[{"name":…,"type":…},…],"pk":[<column names>],("too_large":true,)
 *  "record":{…} (INSERT, UPDATE),"old_record":{…} (UPDATE, DELETE),
 *  "commit_lsn":…,"commit_time":…}
 */
void AppendChangeJson(StringInfo out, const ChangeData &c, XLogRecPtr commit_lsn,
                      TimestampTz commit_time);

/*
 * Append the ring form of a change: one byte RT_REC_CHANGE, then the
 * RT_REC_CHANGE payload of rt_ring.h.
 */
void AppendChangeRing(StringInfo out, const ChangeData &c, XLogRecPtr commit_lsn,
                      TimestampTz commit_time);

} // namespace rt::ext

#endif /* RT_EXT_ENCODE_CHANGE_HPP */
