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

/* TimestampTz counts from 2000-01-01; the ring uses the Unix epoch */
static uint64
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
	RtFieldPutU64(&w, UnixMicros(commit_time));
	RtFieldPutBytes(&w, m.topic.data(), static_cast<uint32>(m.topic.size()));
	RtFieldPutBytes(&w, m.event.data(), static_cast<uint32>(m.event.size()));
	RtFieldPutBytes(&w, m.id.data(), static_cast<uint32>(m.id.size()));
	RtFieldPutBytes(&w, m.payload.data(), static_cast<uint32>(m.payload.size()));
	if (w.failed || w.len != size)
		elog(ERROR, "realtime ring record encoding failed");
	out->len += static_cast<int>(size);
	out->data[out->len] = '\0';
}

/* Append a type's name as PROTOCOL.md 6.4 gives it: pg_type.typname (int4, _text, ...) */
static void
AppendTypeName(StringInfo out, Oid typid)
{
	HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	appendStringInfoString(out, NameStr(reinterpret_cast<Form_pg_type>(GETSTRUCT(tup))->typname));
	ReleaseSysCache(tup);
}

/*
 * One value as to_jsonb renders it: numbers as numbers (NaN and infinities as
 * strings), booleans, json and jsonb nested, dates and timestamps in ISO 8601
 * (timestamptz in UTC; inside arrays and composites in the session's
 * TimeZone, which the decoder worker sets to UTC), arrays and composites as JSON
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
		static const int kUtc = 0;
		char buf[MAXDATELEN + 1];

		/* timestamptz in UTC whatever the decoding session's TimeZone */
		appendStringInfoChar(out, '"');
		appendStringInfoString(
		    out, JsonEncodeDateTime(buf, value, base, base == TIMESTAMPTZOID ? &kUtc : nullptr));
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

/* Render one value of tuple into c->text; an absent span if not logged or NULL-less toast */
static ChangeSpan
RenderValue(ChangeData *c, Form_pg_attribute att, TupleDesc desc, HeapTuple tuple, HeapTuple old)
{
	ChangeSpan span;
	bool isnull;
	Datum value = heap_getattr(tuple, att->attnum, desc, &isnull);

	if (!isnull && IsUnchangedToast(att, value))
	{
		/* not logged: the old row may have it (REPLICA IDENTITY FULL) */
		bool oldnull = true;
		Datum oldvalue = old != nullptr ? heap_getattr(old, att->attnum, desc, &oldnull) : Datum(0);

		if (oldnull || IsUnchangedToast(att, oldvalue))
			return ChangeSpan{-1, 0};
		value = oldvalue;
	}
	span.off = c->text.len;
	if (isnull)
		appendStringInfoString(&c->text, "null");
	else
		AppendValueJson(&c->text, value, att->atttypid);
	span.len = c->text.len - span.off;
	c->values_bytes += static_cast<uint64>(span.len);
	return span;
}

void
CollectChange(RelationData *rel, ReorderBufferChange *change, ChangeData *c)
{
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple newtuple =
	    change->data.tp.newtuple != nullptr ? &change->data.tp.newtuple->tuple : nullptr;
	HeapTuple oldtuple =
	    change->data.tp.oldtuple != nullptr ? &change->data.tp.oldtuple->tuple : nullptr;
	Bitmapset *pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	Bitmapset *identity = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
	bool full = rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL;

	switch (change->action)
	{
	case REORDER_BUFFER_CHANGE_INSERT:
		c->action = RT_CHG_INSERT;
		break;
	case REORDER_BUFFER_CHANGE_UPDATE:
		c->action = RT_CHG_UPDATE;
		break;
	case REORDER_BUFFER_CHANGE_DELETE:
		c->action = RT_CHG_DELETE;
		break;
	default:
		elog(ERROR, "unexpected change action %d", static_cast<int>(change->action));
	}
	c->flags = (rel->rd_rel->relrowsecurity ? RT_CHG_RLS : 0) | (full ? RT_CHG_IDENTITY_FULL : 0);
	c->relid = RelationGetRelid(rel);
	c->schema = get_namespace_name(RelationGetNamespace(rel));
	c->table = RelationGetRelationName(rel);
	c->ncolumns = 0;
	c->columns = static_cast<ChangeColumn *>(palloc(sizeof(ChangeColumn) * Max(desc->natts, 1)));
	c->values_bytes = 0;
	initStringInfo(&c->text);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ChangeColumn *col;

		if (att->attisdropped || att->attgenerated)
			continue;
		col = &c->columns[c->ncolumns++];
		col->name = NameStr(att->attname);
		col->attnum = att->attnum;
		col->pk = InAttrBitmap(pk, att->attnum);
		col->type.off = c->text.len;
		AppendTypeName(&c->text, att->atttypid);
		col->type.len = c->text.len - col->type.off;
		col->new_value = ChangeSpan{-1, 0};
		col->old_value = ChangeSpan{-1, 0};

		/* record: the new row, unchanged TOAST values from the old one */
		if (change->action != REORDER_BUFFER_CHANGE_DELETE && newtuple != nullptr)
			col->new_value = RenderValue(c, att, desc, newtuple, oldtuple);
		/*
		 * old_record: the replica identity (the whole row when FULL); for an
		 * UPDATE that did not log the old row, the identity of the new one
		 */
		if (change->action == REORDER_BUFFER_CHANGE_INSERT ||
		    !(full || InAttrBitmap(identity, att->attnum)))
			continue;
		if (oldtuple != nullptr)
			col->old_value = RenderValue(c, att, desc, oldtuple, nullptr);
		else if (newtuple != nullptr && change->action == REORDER_BUFFER_CHANGE_UPDATE &&
		         InAttrBitmap(identity, att->attnum))
			col->old_value = RenderValue(c, att, desc, newtuple, nullptr);
	}

	/* upstream's max_record_bytes: an oversized change keeps only its small values */
	if (c->values_bytes > kMaxChangeValueBytes)
	{
		c->flags |= RT_CHG_TOO_LARGE;
		for (int i = 0; i < c->ncolumns; i++)
		{
			if (c->columns[i].new_value.len > kTooLargeKeptValueBytes)
				c->columns[i].new_value = ChangeSpan{-1, 0};
			if (c->columns[i].old_value.len > kTooLargeKeptValueBytes)
				c->columns[i].old_value = ChangeSpan{-1, 0};
		}
	}
}

/* Append {"col":value,...} of the columns that have a value in the span chosen by pick */
template <typename Pick>
static void
AppendRowJson(StringInfo out, const ChangeData &c, Pick pick)
{
	bool first = true;

	appendStringInfoChar(out, '{');
	for (int i = 0; i < c.ncolumns; i++)
	{
		ChangeSpan v = pick(c.columns[i]);

		if (v.off < 0)
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		escape_json(out, c.columns[i].name);
		appendStringInfoChar(out, ':');
		appendBinaryStringInfo(out, c.text.data + v.off, v.len);
	}
	appendStringInfoChar(out, '}');
}

static const char *
ActionName(uint32 action)
{
	return action == RT_CHG_INSERT ? "INSERT" : action == RT_CHG_UPDATE ? "UPDATE" : "DELETE";
}

void
AppendChangeJson(StringInfo out, const ChangeData &c, XLogRecPtr commit_lsn,
                 TimestampTz commit_time)
{
	bool first;

	appendStringInfo(out, "{\"type\":\"%s\",\"schema\":", ActionName(c.action));
	escape_json(out, c.schema);
	appendStringInfoString(out, ",\"table\":");
	escape_json(out, c.table);
	appendStringInfo(out, ",\"relid\":%u,\"rls\":%s,\"columns\":[", c.relid,
	                 (c.flags & RT_CHG_RLS) != 0 ? "true" : "false");
	for (int i = 0; i < c.ncolumns; i++)
	{
		appendStringInfoString(out, i == 0 ? "{\"name\":" : ",{\"name\":");
		escape_json(out, c.columns[i].name);
		appendStringInfoString(out, ",\"type\":\"");
		/* type names are identifiers: nothing to escape but quotes and backslashes */
		for (int k = 0; k < c.columns[i].type.len; k++)
		{
			char ch = c.text.data[c.columns[i].type.off + k];

			if (ch == '"' || ch == '\\')
				appendStringInfoChar(out, '\\');
			appendStringInfoChar(out, ch);
		}
		appendStringInfoString(out, "\"}");
	}
	appendStringInfoString(out, "],\"pk\":[");
	first = true;
	for (int i = 0; i < c.ncolumns; i++)
	{
		if (!c.columns[i].pk)
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		escape_json(out, c.columns[i].name);
	}
	appendStringInfoChar(out, ']');
	if ((c.flags & RT_CHG_TOO_LARGE) != 0)
		appendStringInfoString(out, ",\"too_large\":true");
	if (c.action != RT_CHG_DELETE)
	{
		appendStringInfoString(out, ",\"record\":");
		AppendRowJson(out, c, [](const ChangeColumn &col) { return col.new_value; });
	}
	if (c.action != RT_CHG_INSERT)
	{
		appendStringInfoString(out, ",\"old_record\":");
		AppendRowJson(out, c, [](const ChangeColumn &col) { return col.old_value; });
	}
	AppendCommitJson(out, commit_lsn, commit_time);
}

/* Bytes of one optional span as a byte field */
static uint64
SpanFieldSize(ChangeSpan v)
{
	return RtFieldSize(v.off < 0 ? 0 : static_cast<uint32>(v.len));
}

static void
PutSpan(RtFieldWriter *w, const ChangeData &c, ChangeSpan v)
{
	if (v.off < 0)
		RtFieldPutBytes(w, "", 0);
	else
		RtFieldPutBytes(w, c.text.data + v.off, static_cast<uint32>(v.len));
}

void
AppendChangeRing(StringInfo out, const ChangeData &c, XLogRecPtr commit_lsn,
                 TimestampTz commit_time)
{
	size_t schema_len = strlen(c.schema);
	size_t table_len = strlen(c.table);
	uint64 size = 1 + 4 + 8 + 8 + 4 + 4 + RtFieldSize(schema_len) + RtFieldSize(table_len) + 4;
	RtFieldWriter w;

	for (int i = 0; i < c.ncolumns; i++)
	{
		const ChangeColumn &col = c.columns[i];

		size += 4 + 4 + RtFieldSize(strlen(col.name)) + RtFieldSize(col.type.len) +
		        SpanFieldSize(col.new_value) + SpanFieldSize(col.old_value);
	}
	if (size >= MaxAllocSize)
		elog(ERROR, "realtime ring record of %llu bytes is too large",
		     static_cast<unsigned long long>(size));
	enlargeStringInfo(out, static_cast<int>(size));
	RtFieldWriterInit(&w, out->data + out->len, static_cast<uint32>(size));
	RtFieldPutUint(&w, RT_REC_CHANGE, 1);
	RtFieldPutU32(&w, c.flags);
	RtFieldPutU64(&w, commit_lsn);
	RtFieldPutU64(&w, UnixMicros(commit_time));
	RtFieldPutU32(&w, c.relid);
	RtFieldPutU32(&w, c.action);
	RtFieldPutBytes(&w, c.schema, static_cast<uint32>(schema_len));
	RtFieldPutBytes(&w, c.table, static_cast<uint32>(table_len));
	RtFieldPutU32(&w, static_cast<uint32>(c.ncolumns));
	for (int i = 0; i < c.ncolumns; i++)
	{
		const ChangeColumn &col = c.columns[i];

		RtFieldPutU32(&w, col.pk ? RT_COL_PK : 0);
		RtFieldPutU32(&w, static_cast<uint32>(col.attnum));
		RtFieldPutBytes(&w, col.name, static_cast<uint32>(strlen(col.name)));
		PutSpan(&w, c, col.type);
		PutSpan(&w, c, col.new_value);
		PutSpan(&w, c, col.old_value);
	}
	if (w.failed || w.len != size)
		elog(ERROR, "realtime ring record encoding failed");
	out->len += static_cast<int>(size);
	out->data[out->len] = '\0';
}

} // namespace rt::ext
