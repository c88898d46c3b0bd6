/*
 * encode.cpp
 *	  Encode and decode the body of a realtime logical message; render messages
 *	  and row changes as JSON lines.
 *
 * EncodeMessageBody runs in the backend calling realtime.send(); the decoding
 * and JSON functions run in whichever process decodes WAL with the output
 * plugin "realtime", in its per-change memory context. Messages are pure
 * functions over memory; row changes also read the catalogs (type names and
 * output functions, under the historic snapshot of decoding) through syscache
 * lookups released before returning, so an ERROR leaks nothing. The layouts
 * are documented in encode.hpp.
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
#include "rt_ring.h"

namespace rt::ext
{

uint64
MessageBodySize(const MessageBody &m)
{
	return 4 + 4 + RtFieldSize(m.topic.size()) + RtFieldSize(m.event.size()) +
	       RtFieldSize(m.id.size()) + RtFieldSize(m.payload.size());
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
	if (!RtFieldGetU32(&r, &version) || version != kMessageBodyVersion)
		return false;
	if (!RtFieldGetU32(&r, &flags) || !GetView(&r, &m->topic) || !GetView(&r, &m->event) ||
	    !GetView(&r, &m->id) || !GetView(&r, &m->payload) || !RtFieldReaderDone(&r))
		return false;
	/* Version 1 defines only the private flag (no binary payloads yet) */
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

/* Append the commit fields shared by every line, and close the object */
static void
AppendCommitJson(StringInfo out, XLogRecPtr commit_lsn, TimestampTz commit_time)
{
	static const int kUtc = 0;
	char timebuf[MAXDATELEN + 1];

	appendStringInfo(out, ",\"commit_lsn\":\"%X/%X\",\"commit_time\":\"",
	                 static_cast<uint32>(commit_lsn >> 32), static_cast<uint32>(commit_lsn));
	appendStringInfoString(
	    out, JsonEncodeDateTime(timebuf, TimestampTzGetDatum(commit_time), TIMESTAMPTZOID, &kUtc));
	appendStringInfoString(out, "\"}");
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

void
AppendMessageRing(StringInfo out, const MessageBody &m, XLogRecPtr commit_lsn,
                  TimestampTz commit_time)
{
	/* TimestampTz counts from 2000-01-01; the ring uses the Unix epoch */
	constexpr int64 kUnixToPostgresUs =
	    static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	uint64 size = 1 + 4 + 8 + 8 + RtFieldSize(m.topic.size()) + RtFieldSize(m.event.size()) +
	              RtFieldSize(m.id.size()) + RtFieldSize(m.payload.size());
	RtFieldWriter w;

	if (size >= MaxAllocSize)
		elog(ERROR, "realtime ring record of %llu bytes is too large",
		     static_cast<unsigned long long>(size));
	enlargeStringInfo(out, static_cast<int>(size));
	RtFieldWriterInit(&w, out->data + out->len, static_cast<uint32>(size));
	RtFieldPutUint(&w, RT_REC_MESSAGE, 1);
	RtFieldPutU32(&w, m.is_private ? RT_MSG_PRIVATE : 0);
	RtFieldPutU64(&w, commit_lsn);
	RtFieldPutU64(&w, static_cast<uint64>(commit_time + kUnixToPostgresUs));
	RtFieldPutBytes(&w, m.topic.data(), static_cast<uint32>(m.topic.size()));
	RtFieldPutBytes(&w, m.event.data(), static_cast<uint32>(m.event.size()));
	RtFieldPutBytes(&w, m.id.data(), static_cast<uint32>(m.id.size()));
	RtFieldPutBytes(&w, m.payload.data(), static_cast<uint32>(m.payload.size()));
	if (w.failed || w.len != size)
		elog(ERROR, "realtime ring record encoding failed");
	out->len += static_cast<int>(size);
	out->data[out->len] = '\0';
}

/* Type name as PROTOCOL.md 6.4 gives it: pg_type.typname (int4, _text, ...) */
static void
AppendTypeName(StringInfo out, Oid typid)
{
	HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	escape_json(out, NameStr(reinterpret_cast<Form_pg_type>(GETSTRUCT(tup))->typname));
	ReleaseSysCache(tup);
}

/*
 * One value as to_jsonb renders it: numbers as numbers (NaN and infinities as
 * strings), booleans, json and jsonb nested, dates and timestamps in ISO 8601
 * (timestamptz in the session's TimeZone), arrays and composites as JSON
 * arrays and objects, anything else as the string of its output function.
 */
static void
AppendValueJson(StringInfo out, Datum value, Oid typid)
{
	Oid base = getBaseType(typid);
	Oid outfunc;
	bool isvarlena;
	char *str;

	switch (base)
	{
	case BOOLOID:
		appendStringInfoString(out, DatumGetBool(value) ? "true" : "false");
		return;
	case JSONBOID:
	{
		Jsonb *jb = DatumGetJsonbP(value);

		(void)JsonbToCString(out, &jb->root, VARSIZE(jb));
		return;
	}
	case DATEOID:
	case TIMESTAMPOID:
	case TIMESTAMPTZOID:
	{
		char buf[MAXDATELEN + 1];

		appendStringInfoChar(out, '"');
		appendStringInfoString(out, JsonEncodeDateTime(buf, value, base, nullptr));
		appendStringInfoChar(out, '"');
		return;
	}
	default:
		break;
	}
	if (OidIsValid(get_element_type(base)))
	{
		appendStringInfoString(out, TextDatumGetCString(DirectFunctionCall1(array_to_json, value)));
		return;
	}
	if (type_is_rowtype(base))
	{
		appendStringInfoString(out, TextDatumGetCString(DirectFunctionCall1(row_to_json, value)));
		return;
	}
	getTypeOutputInfo(base, &outfunc, &isvarlena);
	str = OidOutputFunctionCall(outfunc, value);
	switch (base)
	{
	case INT2OID:
	case INT4OID:
	case INT8OID:
	case FLOAT4OID:
	case FLOAT8OID:
	case NUMERICOID:
		if (IsValidJsonNumber(str, static_cast<int>(strlen(str))))
			appendStringInfoString(out, str);
		else
			escape_json(out, str);
		break;
	case JSONOID:
		appendStringInfoString(out, str);
		break;
	default:
		escape_json(out, str);
		break;
	}
	pfree(str);
}

/* Whether attnum is in a bitmap of RelationGetIndexAttrBitmap */
static bool
InAttrBitmap(const Bitmapset *set, AttrNumber attnum)
{
	return bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, set);
}

/* A varlena value that was not logged (unchanged TOAST): only a pointer on disk */
static bool
IsUnchangedToast(Form_pg_attribute att, Datum value)
{
	return att->attlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value));
}

/*
 * Append {"col":value,...} for the columns of tuple in `only` (nullptr: all),
 * taking unchanged TOAST values from old (if any) and omitting them otherwise.
 */
static void
AppendRowJson(StringInfo out, TupleDesc desc, HeapTuple tuple, HeapTuple old, const Bitmapset *only,
              bool all)
{
	bool first = true;

	appendStringInfoChar(out, '{');
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool isnull;
		Datum value;

		if (att->attisdropped || att->attgenerated || (!all && !InAttrBitmap(only, att->attnum)))
			continue;
		value = heap_getattr(tuple, att->attnum, desc, &isnull);
		if (!isnull && IsUnchangedToast(att, value))
		{
			bool oldnull = true;
			Datum oldvalue =
			    old != nullptr ? heap_getattr(old, att->attnum, desc, &oldnull) : Datum(0);

			if (oldnull || IsUnchangedToast(att, oldvalue))
				continue;
			value = oldvalue;
		}
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		escape_json(out, NameStr(att->attname));
		appendStringInfoChar(out, ':');
		if (isnull)
			appendStringInfoString(out, "null");
		else
			AppendValueJson(out, value, att->atttypid);
	}
	appendStringInfoChar(out, '}');
}

void
AppendChangeJson(StringInfo out, RelationData *rel, ReorderBufferChange *change,
                 XLogRecPtr commit_lsn, TimestampTz commit_time)
{
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple newtuple =
	    change->data.tp.newtuple != nullptr ? &change->data.tp.newtuple->tuple : nullptr;
	HeapTuple oldtuple =
	    change->data.tp.oldtuple != nullptr ? &change->data.tp.oldtuple->tuple : nullptr;
	Bitmapset *pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	Bitmapset *identity = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
	bool full = rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL;
	const char *type;
	bool first;

	switch (change->action)
	{
	case REORDER_BUFFER_CHANGE_INSERT:
		type = "INSERT";
		break;
	case REORDER_BUFFER_CHANGE_UPDATE:
		type = "UPDATE";
		break;
	case REORDER_BUFFER_CHANGE_DELETE:
		type = "DELETE";
		break;
	default:
		elog(ERROR, "unexpected change action %d", static_cast<int>(change->action));
	}

	appendStringInfo(out, "{\"type\":\"%s\",\"schema\":", type);
	escape_json(out, get_namespace_name(RelationGetNamespace(rel)));
	appendStringInfoString(out, ",\"table\":");
	escape_json(out, RelationGetRelationName(rel));
	appendStringInfo(out, ",\"relid\":%u,\"rls\":%s,\"columns\":[", RelationGetRelid(rel),
	                 rel->rd_rel->relrowsecurity ? "true" : "false");
	first = true;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		appendStringInfoString(out, first ? "{\"name\":" : ",{\"name\":");
		first = false;
		escape_json(out, NameStr(att->attname));
		appendStringInfoString(out, ",\"type\":");
		AppendTypeName(out, att->atttypid);
		appendStringInfoChar(out, '}');
	}
	appendStringInfoString(out, "],\"pk\":[");
	first = true;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || !InAttrBitmap(pk, att->attnum))
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		escape_json(out, NameStr(att->attname));
	}
	appendStringInfoChar(out, ']');

	if (change->action != REORDER_BUFFER_CHANGE_DELETE && newtuple != nullptr)
	{
		appendStringInfoString(out, ",\"record\":");
		AppendRowJson(out, desc, newtuple, oldtuple, nullptr, true);
	}
	if (change->action != REORDER_BUFFER_CHANGE_INSERT)
	{
		appendStringInfoString(out, ",\"old_record\":");
		if (oldtuple != nullptr)
			AppendRowJson(out, desc, oldtuple, nullptr, identity, full);
		else if (newtuple != nullptr && change->action == REORDER_BUFFER_CHANGE_UPDATE)
			AppendRowJson(out, desc, newtuple, nullptr, identity, false);
		else
			appendStringInfoString(out, "{}");
	}
	AppendCommitJson(out, commit_lsn, commit_time);
}

} // namespace rt::ext
