/*
 * encode.cpp
 *	  Encode and decode the body of a realtime logical message; render messages
 *	  and row changes as JSON lines.
 *
 * EncodeMessageBody runs in the backend calling realtime.send(); the decoding
 * and JSON functions run in whichever process decodes WAL with the output
 * plugin "realtime", in its per-change memory context. They are pure
 * functions over memory. The layouts are documented in encode.hpp; row
 * changes are in encode_change.cpp.
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/xlogdefs.h"
#include "catalog/pg_type.h"
#include "nodes/bitmapset.h"
#include "replication/reorderbuffer.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/jsonfuncs.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include "encode.hpp"
#include "rt_ring_fields.h"

namespace rt::ext
{

uint64
MessageBodySize(const MessageBody &m)
{
	return 4 + 4 + RtFieldSize(m.topic.size()) + RtFieldSize(m.event.size()) +
	       RtFieldSize(m.id.size()) + RtFieldSize(m.payload.size()) + 8;
}

void
EncodeMessageBody(StringInfo out, const MessageBody &m)
{
	uint64 size = MessageBodySize(m);
	RtFieldWriter w;

	/* The caller checked the sizes; anything else is a bug */
	if (size >= MaxAllocSize)
		elog(ERROR, "realtime message body of %llu bytes is too large",
		     static_cast<unsigned long long>(size));
	enlargeStringInfo(out, static_cast<int>(size));
	RtFieldWriterInit(&w, out->data + out->len, static_cast<uint32>(size));
	RtFieldPutU32(&w, kMessageBodyVersion);
	RtFieldPutU32(&w, m.is_private ? kMessageFlagPrivate : 0);
	RtFieldPutBytes(&w, m.topic.data(), static_cast<uint32>(m.topic.size()));
	RtFieldPutBytes(&w, m.event.data(), static_cast<uint32>(m.event.size()));
	RtFieldPutBytes(&w, m.id.data(), static_cast<uint32>(m.id.size()));
	RtFieldPutBytes(&w, m.payload.data(), static_cast<uint32>(m.payload.size()));
	RtFieldPutU64(&w, m.stored_at_us);
	if (w.failed || w.len != size)
		elog(ERROR, "realtime message body encoding failed");
	out->len += static_cast<int>(size);
	out->data[out->len] = '\0';
}

/* Read one byte field into a view */
static bool
GetView(RtFieldReader *r, std::string_view *v)
{
	const uint8_t *p;
	uint32_t n;

	if (!RtFieldGetBytes(r, &p, &n))
		return false;
	*v = std::string_view(reinterpret_cast<const char *>(p), n);
	return true;
}

bool
DecodeMessageBody(const char *data, Size len, MessageBody *m)
{
	RtFieldReader r;
	uint32_t version = 0;
	uint32_t flags = 0;

	/* A body is at most MaxAllocSize; anything longer is not ours */
	if (len >= MaxAllocSize)
		return false;
	RtFieldReaderInit(&r, data, static_cast<uint32_t>(len));
	if (!RtFieldGetU32(&r, &version) || (version != 1 && version != kMessageBodyVersion))
		return false;
	if (!RtFieldGetU32(&r, &flags) || !GetView(&r, &m->topic) || !GetView(&r, &m->event) ||
	    !GetView(&r, &m->id) || !GetView(&r, &m->payload))
		return false;
	m->stored_at_us = 0;
	if (version == kMessageBodyVersion && !RtFieldGetU64(&r, &m->stored_at_us))
		return false;
	if (!RtFieldReaderDone(&r))
		return false;
	/* Versions 1 and 2 define only the private flag (no binary payloads yet) */
	if ((flags & ~kMessageFlagPrivate) != 0)
		return false;
	m->is_private = (flags & kMessageFlagPrivate) != 0;
	return !m->topic.empty() && !m->event.empty() && !m->id.empty() && !m->payload.empty();
}

/* Append a view as a JSON string (escape_json needs a terminated copy) */
static void
AppendJsonString(StringInfo out, std::string_view v)
{
	char *copy = pnstrdup(v.data(), v.size());

	escape_json(out, copy);
	pfree(copy);
}

void
AppendCommitJson(StringInfo out, XLogRecPtr commit_lsn, TimestampTz commit_time)
{
	/* Every change of a transaction ends the same: render it once per transaction */
	static const int kUtc = 0;
	static XLogRecPtr cached_lsn = InvalidXLogRecPtr;
	static TimestampTz cached_time = 0;
	static char cached[128];
	static int cached_len = 0;

	if (commit_lsn != cached_lsn || commit_time != cached_time || cached_len == 0)
	{
		char timebuf[MAXDATELEN + 1];
		int n;

		n = snprintf(
		    cached, sizeof(cached), ",\"commit_lsn\":\"%X/%X\",\"commit_time\":\"%s\"}",
		    static_cast<uint32>(commit_lsn >> 32), static_cast<uint32>(commit_lsn),
		    JsonEncodeDateTime(timebuf, TimestampTzGetDatum(commit_time), TIMESTAMPTZOID, &kUtc));
		if (n < 0 || n >= static_cast<int>(sizeof(cached)))
			elog(ERROR, "commit suffix of %d bytes does not fit", n);
		cached_lsn = commit_lsn;
		cached_time = commit_time;
		cached_len = n;
	}
	appendBinaryStringInfo(out, cached, cached_len);
}

void
AppendMessageJson(StringInfo out, const MessageBody &m, XLogRecPtr commit_lsn,
                  TimestampTz commit_time)
{
	appendStringInfoString(out, "{\"type\":\"message\",\"topic\":");
	AppendJsonString(out, m.topic);
	appendStringInfoString(out, ",\"event\":");
	AppendJsonString(out, m.event);
	appendStringInfoString(out, m.is_private ? ",\"private\":true,\"id\":"
	                                         : ",\"private\":false,\"id\":");
	AppendJsonString(out, m.id);
	/* Verbatim: the payload is the JSON text realtime.send() produced */
	appendStringInfoString(out, ",\"payload\":");
	appendBinaryStringInfo(out, m.payload.data(), static_cast<int>(m.payload.size()));
	AppendCommitJson(out, commit_lsn, commit_time);
}

uint64
UnixMicros(TimestampTz t)
{
	constexpr int64 kUnixToPostgresUs =
	    static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	return static_cast<uint64>(t + kUnixToPostgresUs);
}

void
AppendMessageRing(StringInfo out, const MessageBody &m, XLogRecPtr commit_lsn,
                  TimestampTz commit_time)
{
	uint64 size = 1 + 4 + 8 + 8 + RtFieldSize(m.topic.size()) + RtFieldSize(m.event.size()) +
	              RtFieldSize(m.id.size()) + RtFieldSize(m.payload.size()) + 8;
	RtFieldWriter w;

	if (size >= MaxAllocSize)
		elog(ERROR, "realtime ring record of %llu bytes is too large",
		     static_cast<unsigned long long>(size));
	enlargeStringInfo(out, static_cast<int>(size));
	RtFieldWriterInit(&w, out->data + out->len, static_cast<uint32>(size));
	RtFieldPutUint(&w, RT_REC_MESSAGE, 1);
	RtFieldPutU32(&w, m.is_private ? RT_MSG_PRIVATE : 0);
	RtFieldPutU64(&w, commit_lsn);
	RtFieldPutU64(&w, UnixMicros(commit_time));
	RtFieldPutBytes(&w, m.topic.data(), static_cast<uint32>(m.topic.size()));
	RtFieldPutBytes(&w, m.event.data(), static_cast<uint32>(m.event.size()));
	RtFieldPutBytes(&w, m.id.data(), static_cast<uint32>(m.id.size()));
	RtFieldPutBytes(&w, m.payload.data(), static_cast<uint32>(m.payload.size()));
	RtFieldPutU64(&w, m.stored_at_us);
	if (w.failed || w.len != size)
		elog(ERROR, "realtime ring record encoding failed");
	out->len += static_cast<int>(size);
	out->data[out->len] = '\0';
}

} // namespace rt::ext
