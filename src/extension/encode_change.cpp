/*
 * encode_change.cpp
 *	  Collect a row change once; write it as a JSON line or a ring record
 *	  (see encode_change.hpp, and rt_ring.h for the ring layout).
 *
 * The per-change work is what cannot be cached: deforming the tuples and
 * rendering their values. Names, types, key membership and output functions
 * come from the relation's cached RelMeta; integers and text are rendered
 * here without a call through the type's output function.
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlogdefs.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "replication/reorderbuffer.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/jsonfuncs.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/uuid.h"
}

#include "encode.hpp"
#include "encode_change.hpp"
#include "rt_ring_fields.h"

namespace rt::ext
{

namespace
{

/* Append one non-null value as to_jsonb renders it (rel_meta.hpp, ValueKind) */
void
AppendValueJson(StringInfo out, Datum value, const ColumnMeta &col)
{
	static const int kUtc = 0;
	char *str;

	switch (col.kind)
	{
	case ValueKind::kBool:
		appendStringInfoString(out, DatumGetBool(value) ? "true" : "false");
		return;
	case ValueKind::kInt2:
	case ValueKind::kInt4:
	case ValueKind::kInt8:
		enlargeStringInfo(out, MAXINT8LEN + 1);
		if (col.kind == ValueKind::kInt8)
			out->len += pg_lltoa(DatumGetInt64(value), out->data + out->len);
		else
			out->len +=
			    pg_ltoa(col.kind == ValueKind::kInt2 ? DatumGetInt16(value) : DatumGetInt32(value),
			            out->data + out->len);
		return;
	case ValueKind::kJsonb:
	{
		Jsonb *jb = DatumGetJsonbP(value);

		(void)JsonbToCString(out, &jb->root, VARSIZE(jb));
		return;
	}
	case ValueKind::kDateTime:
	case ValueKind::kTimestampTz:
	{
		char buf[MAXDATELEN + 1];

		/* timestamptz in UTC whatever the decoding session's TimeZone */
		appendStringInfoChar(out, '"');
		appendStringInfoString(
		    out, JsonEncodeDateTime(buf, value, col.base_type,
		                            col.kind == ValueKind::kTimestampTz ? &kUtc : nullptr));
		appendStringInfoChar(out, '"');
		return;
	}
	case ValueKind::kText:
	{
		text *t = DatumGetTextPP(value);

		AppendJsonEscaped(out, VARDATA_ANY(t), static_cast<int>(VARSIZE_ANY_EXHDR(t)));
		return;
	}
	case ValueKind::kUuid:
	{
		static const char kHex[] = "0123456789abcdef";
		const pg_uuid_t *u = DatumGetUUIDP(value);
		char *p;

		/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as uuid_out writes it */
		enlargeStringInfo(out, 38);
		p = out->data + out->len;
		*p++ = '"';
		for (int i = 0; i < UUID_LEN; i++)
		{
			if (i == 4 || i == 6 || i == 8 || i == 10)
				*p++ = '-';
			*p++ = kHex[u->data[i] >> 4];
			*p++ = kHex[u->data[i] & 0xF];
		}
		*p++ = '"';
		out->len += 38;
		out->data[out->len] = '\0';
		return;
	}
	case ValueKind::kArray:
		appendStringInfoString(out, TextDatumGetCString(DirectFunctionCall1(array_to_json, value)));
		return;
	case ValueKind::kComposite:
		appendStringInfoString(out, TextDatumGetCString(DirectFunctionCall1(row_to_json, value)));
		return;
	case ValueKind::kNumber:
	case ValueKind::kJson:
	case ValueKind::kString:
		break;
	}
	str = OutputFunctionCall(const_cast<FmgrInfo *>(&col.out), value);
	if (col.kind == ValueKind::kJson ||
	    (col.kind == ValueKind::kNumber && IsValidJsonNumber(str, static_cast<int>(strlen(str)))))
		appendStringInfoString(out, str); /* NaN and infinities fall through to strings */
	else
		AppendJsonEscaped(out, str, static_cast<int>(strlen(str)));
	pfree(str);
}

/* A varlena value that was not logged (unchanged TOAST): only a pointer on disk */
bool
IsUnchangedToast(const ColumnMeta &col, Datum value)
{
	return col.attlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value));
}

/* A deformed tuple */
struct Row
{
	Datum *values;
	bool *isnull;
};

Row
Deform(HeapTuple tuple, TupleDesc desc)
{
	Row row{nullptr, nullptr};

	if (tuple == nullptr)
		return row;
	row.values = static_cast<Datum *>(palloc(sizeof(Datum) * Max(desc->natts, 1)));
	row.isnull = static_cast<bool *>(palloc(sizeof(bool) * Max(desc->natts, 1)));
	heap_deform_tuple(tuple, desc, row.values, row.isnull);
	return row;
}

/* Render column col of row into c->text, an unlogged TOAST value from old if it has one */
ChangeSpan
RenderValue(ChangeData *c, const ColumnMeta &col, const Row &row, const Row &old)
{
	int i = col.attnum - 1;
	Datum value = row.values[i];
	bool isnull = row.isnull[i];
	ChangeSpan span;

	if (!isnull && IsUnchangedToast(col, value))
	{
		if (old.values == nullptr || old.isnull[i] || IsUnchangedToast(col, old.values[i]))
			return ChangeSpan{-1, 0};
		value = old.values[i];
	}
	span.off = c->text.len;
	if (isnull)
		appendStringInfoString(&c->text, "null");
	else
		AppendValueJson(&c->text, value, col);
	span.len = c->text.len - span.off;
	c->values_bytes += static_cast<uint64>(span.len);
	return span;
}

/* Append {"col":value,...} of the columns that have a value in spans */
void
AppendRowJson(StringInfo out, const ChangeData &c, const ChangeSpan *spans)
{
	bool first = true;

	appendStringInfoChar(out, '{');
	for (int i = 0; i < c.meta->ncolumns; i++)
	{
		const ColumnMeta &col = c.meta->columns[i];

		if (spans[i].off < 0)
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		appendBinaryStringInfo(out, col.name_json, col.name_json_len);
		appendStringInfoChar(out, ':');
		appendBinaryStringInfo(out, c.text.data + spans[i].off, spans[i].len);
	}
	appendStringInfoChar(out, '}');
}

/* Bytes of one optional span as a byte field */
uint64
SpanFieldSize(ChangeSpan v)
{
	return RtFieldSize(v.off < 0 ? 0 : static_cast<uint32>(v.len));
}

void
PutSpan(RtFieldWriter *w, const ChangeData &c, ChangeSpan v)
{
	if (v.off < 0)
		RtFieldPutBytes(w, "", 0);
	else
		RtFieldPutBytes(w, c.text.data + v.off, static_cast<uint32>(v.len));
}

} // namespace

void
CollectChange(Relation rel, ReorderBufferChange *change, ChangeData *c)
{
	TupleDesc desc = RelationGetDescr(rel);
	const RelMeta *meta = GetRelMeta(rel);
	HeapTuple newtuple =
	    change->data.tp.newtuple != nullptr ? &change->data.tp.newtuple->tuple : nullptr;
	HeapTuple oldtuple =
	    change->data.tp.oldtuple != nullptr ? &change->data.tp.oldtuple->tuple : nullptr;
	Row newrow;
	Row oldrow;
	Row none{nullptr, nullptr};

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
		newtuple = nullptr;
		break;
	default:
		elog(ERROR, "unexpected change action %d", static_cast<int>(change->action));
	}
	c->flags = (meta->rls ? RT_CHG_RLS : 0) | (meta->full ? RT_CHG_IDENTITY_FULL : 0);
	c->meta = meta;
	c->new_value = static_cast<ChangeSpan *>(palloc(sizeof(ChangeSpan) * Max(meta->ncolumns, 1)));
	c->old_value = static_cast<ChangeSpan *>(palloc(sizeof(ChangeSpan) * Max(meta->ncolumns, 1)));
	c->values_bytes = 0;
	initStringInfo(&c->text);
	newrow = Deform(newtuple, desc);
	oldrow = Deform(oldtuple, desc);

	for (int i = 0; i < meta->ncolumns; i++)
	{
		const ColumnMeta &col = meta->columns[i];

		c->new_value[i] = ChangeSpan{-1, 0};
		c->old_value[i] = ChangeSpan{-1, 0};
		/* record: the new row, unchanged TOAST values from the old one */
		if (newrow.values != nullptr)
			c->new_value[i] = RenderValue(c, col, newrow, oldrow);
		/*
		 * old_record: the replica identity (the whole row when FULL); for an
		 * UPDATE that did not log the old row, the identity of the new one
		 */
		if (c->action == RT_CHG_INSERT || !(meta->full || col.identity))
			continue;
		if (oldrow.values != nullptr)
			c->old_value[i] = RenderValue(c, col, oldrow, none);
		else if (newrow.values != nullptr && col.identity)
		{
			/* the same text as in record, rendered from the same row: share it */
			c->old_value[i] = c->new_value[i];
			if (c->old_value[i].off >= 0)
				c->values_bytes += static_cast<uint64>(c->old_value[i].len);
		}
	}

	/* upstream's max_record_bytes: an oversized change keeps only its small values */
	if (c->values_bytes > kMaxChangeValueBytes)
	{
		c->flags |= RT_CHG_TOO_LARGE;
		for (int i = 0; i < meta->ncolumns; i++)
		{
			if (c->new_value[i].len > kTooLargeKeptValueBytes)
				c->new_value[i] = ChangeSpan{-1, 0};
			if (c->old_value[i].len > kTooLargeKeptValueBytes)
				c->old_value[i] = ChangeSpan{-1, 0};
		}
	}
}

void
AppendChangeJson(StringInfo out, const ChangeData &c, XLogRecPtr commit_lsn,
                 TimestampTz commit_time)
{
	appendStringInfoString(out, c.action == RT_CHG_INSERT   ? "{\"type\":\"INSERT\""
	                            : c.action == RT_CHG_UPDATE ? "{\"type\":\"UPDATE\""
	                                                        : "{\"type\":\"DELETE\"");
	appendBinaryStringInfo(out, c.meta->json_head, c.meta->json_head_len);
	if ((c.flags & RT_CHG_TOO_LARGE) != 0)
		appendStringInfoString(out, ",\"too_large\":true");
	if (c.action != RT_CHG_DELETE)
	{
		appendStringInfoString(out, ",\"record\":");
		AppendRowJson(out, c, c.new_value);
	}
	if (c.action != RT_CHG_INSERT)
	{
		appendStringInfoString(out, ",\"old_record\":");
		AppendRowJson(out, c, c.old_value);
	}
	AppendCommitJson(out, commit_lsn, commit_time);
}

void
AppendChangeRing(StringInfo out, const ChangeData &c, XLogRecPtr commit_lsn,
                 TimestampTz commit_time)
{
	const RelMeta *meta = c.meta;
	uint64 size =
	    1 + 4 + 8 + 8 + 4 + 4 + RtFieldSize(meta->schema_len) + RtFieldSize(meta->table_len) + 4;
	RtFieldWriter w;

	for (int i = 0; i < meta->ncolumns; i++)
		size += 4 + 4 + RtFieldSize(meta->columns[i].name_len) +
		        RtFieldSize(meta->columns[i].type_len) + SpanFieldSize(c.new_value[i]) +
		        SpanFieldSize(c.old_value[i]);
	if (size >= MaxAllocSize)
		elog(ERROR, "realtime ring record of %llu bytes is too large",
		     static_cast<unsigned long long>(size));
	enlargeStringInfo(out, static_cast<int>(size));
	RtFieldWriterInit(&w, out->data + out->len, static_cast<uint32>(size));
	RtFieldPutUint(&w, RT_REC_CHANGE, 1);
	RtFieldPutU32(&w, c.flags);
	RtFieldPutU64(&w, commit_lsn);
	RtFieldPutU64(&w, UnixMicros(commit_time));
	RtFieldPutU32(&w, meta->relid);
	RtFieldPutU32(&w, c.action);
	RtFieldPutBytes(&w, meta->schema, static_cast<uint32>(meta->schema_len));
	RtFieldPutBytes(&w, meta->table, static_cast<uint32>(meta->table_len));
	RtFieldPutU32(&w, static_cast<uint32>(meta->ncolumns));
	for (int i = 0; i < meta->ncolumns; i++)
	{
		const ColumnMeta &col = meta->columns[i];

		RtFieldPutU32(&w, col.pk ? RT_COL_PK : 0);
		RtFieldPutU32(&w, static_cast<uint32>(col.attnum));
		RtFieldPutBytes(&w, col.name, static_cast<uint32>(col.name_len));
		RtFieldPutBytes(&w, col.type, static_cast<uint32>(col.type_len));
		PutSpan(&w, c, c.new_value[i]);
		PutSpan(&w, c, c.old_value[i]);
	}
	if (w.failed || w.len != size)
		elog(ERROR, "realtime ring record encoding failed");
	out->len += static_cast<int>(size);
	out->data[out->len] = '\0';
}

} // namespace rt::ext
