/*
 * rel_meta.cpp
 *	  Per-relation encoding metadata for the output plugin (see rel_meta.hpp).
 *
 * The cache is an HTAB in CacheMemoryContext keyed by relid; each entry owns a
 * small memory context with its strings and output functions, deleted when
 * the entry is rebuilt. Invalidation callbacks only mark entries stale (they
 * may run while an entry is in use); the next lookup rebuilds it.
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/bitmapset.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
}

#include "rel_cache.hpp"
#include "rel_meta.hpp"

namespace
{

struct MetaEntry
{
	Oid relid; /* hash key */
	bool valid;
	MemoryContext cxt; /* owns meta's strings and columns; nullptr before the first build */
	rt::ext::RelMeta meta;
};

HTAB *meta_cache = nullptr;

} // namespace

extern "C"
{
	static void MetaRelcacheInvalidate(Datum arg, Oid relid);
	static void MetaSyscacheInvalidate(Datum arg, int cacheid, uint32 hashvalue);
}

/* A relation changed (InvalidOid: all of them): its entry is stale */
static void
MetaRelcacheInvalidate(Datum, Oid relid)
{
	rt::ext::MarkRelEntriesStale<MetaEntry>(meta_cache, relid);
}

/* A type or a schema changed (a rename shows in every line): all entries are stale */
static void
MetaSyscacheInvalidate(Datum arg, int, uint32)
{
	MetaRelcacheInvalidate(arg, InvalidOid);
}

namespace
{

HTAB *
MetaCache(void)
{
	HASHCTL ctl;

	if (meta_cache != nullptr)
		return meta_cache;
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(MetaEntry);
	ctl.hcxt = CacheMemoryContext;
	meta_cache =
	    hash_create("realtime relation encoding", 128, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(MetaRelcacheInvalidate, 0);
	CacheRegisterSyscacheCallback(TYPEOID, MetaSyscacheInvalidate, 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, MetaSyscacheInvalidate, 0);
	return meta_cache;
}

rt::ext::ValueKind
KindOf(Oid base)
{
	using rt::ext::ValueKind;

	switch (base)
	{
	case BOOLOID:
		return ValueKind::kBool;
	case INT2OID:
		return ValueKind::kInt2;
	case INT4OID:
		return ValueKind::kInt4;
	case INT8OID:
		return ValueKind::kInt8;
	case FLOAT4OID:
	case FLOAT8OID:
	case NUMERICOID:
		return ValueKind::kNumber;
	case JSONOID:
		return ValueKind::kJson;
	case JSONBOID:
		return ValueKind::kJsonb;
	case DATEOID:
	case TIMESTAMPOID:
		return ValueKind::kDateTime;
	case TIMESTAMPTZOID:
		return ValueKind::kTimestampTz;
	case TEXTOID:
	case VARCHAROID:
		return ValueKind::kText;
	case UUIDOID:
		return ValueKind::kUuid;
	default:
		break;
	}
	if (OidIsValid(get_element_type(base)))
		return ValueKind::kArray;
	if (type_is_rowtype(base))
		return ValueKind::kComposite;
	return ValueKind::kString;
}

/* A copy of the JSON string of str in the current context */
const char *
JsonString(const char *str, int *len)
{
	StringInfoData buf;

	initStringInfo(&buf);
	rt::ext::AppendJsonEscaped(&buf, str, static_cast<int>(strlen(str)));
	*len = buf.len;
	return buf.data;
}

/* pg_type.typname, as PROTOCOL.md 6.4 gives types (int4, _text, ...), copied */
const char *
TypeName(Oid typid)
{
	HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	const char *name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	name = pstrdup(NameStr(reinterpret_cast<Form_pg_type>(GETSTRUCT(tup))->typname));
	ReleaseSysCache(tup);
	return name;
}

/* Fill meta for rel; allocations in the current context (the entry's) */
void
BuildMeta(Relation rel, rt::ext::RelMeta *meta)
{
	TupleDesc desc = RelationGetDescr(rel);
	Bitmapset *pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	Bitmapset *identity = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
	StringInfoData head;
	bool first;

	meta->relid = RelationGetRelid(rel);
	meta->rls = rel->rd_rel->relrowsecurity;
	meta->full = rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL;
	meta->natts = desc->natts;
	meta->schema = get_namespace_name(RelationGetNamespace(rel));
	meta->schema_len = static_cast<int>(strlen(meta->schema));
	meta->table = pstrdup(RelationGetRelationName(rel));
	meta->table_len = static_cast<int>(strlen(meta->table));
	meta->ncolumns = 0;
	meta->columns = static_cast<rt::ext::ColumnMeta *>(
	    palloc0(sizeof(rt::ext::ColumnMeta) * Max(desc->natts, 1)));

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		rt::ext::ColumnMeta *col;
		Oid outfunc;
		bool isvarlena;

		if (att->attisdropped || att->attgenerated)
			continue;
		col = &meta->columns[meta->ncolumns++];
		col->attnum = att->attnum;
		col->attlen = att->attlen;
		col->pk = bms_is_member(att->attnum - FirstLowInvalidHeapAttributeNumber, pk);
		col->identity = bms_is_member(att->attnum - FirstLowInvalidHeapAttributeNumber, identity);
		col->base_type = getBaseType(att->atttypid);
		col->kind = KindOf(col->base_type);
		getTypeOutputInfo(col->base_type, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &col->out, CurrentMemoryContext);
		col->name = pstrdup(NameStr(att->attname));
		col->name_len = static_cast<int>(strlen(col->name));
		col->name_json = JsonString(col->name, &col->name_json_len);
		col->type = TypeName(att->atttypid);
		col->type_len = static_cast<int>(strlen(col->type));
	}

	initStringInfo(&head);
	appendStringInfoString(&head, ",\"schema\":");
	rt::ext::AppendJsonEscaped(&head, meta->schema, meta->schema_len);
	appendStringInfoString(&head, ",\"table\":");
	rt::ext::AppendJsonEscaped(&head, meta->table, meta->table_len);
	appendStringInfo(&head, ",\"relid\":%u,\"rls\":%s,\"columns\":[", meta->relid,
	                 meta->rls ? "true" : "false");
	for (int i = 0; i < meta->ncolumns; i++)
	{
		const rt::ext::ColumnMeta &col = meta->columns[i];

		appendStringInfoString(&head, i == 0 ? "{\"name\":" : ",{\"name\":");
		appendBinaryStringInfo(&head, col.name_json, col.name_json_len);
		appendStringInfoString(&head, ",\"type\":");
		rt::ext::AppendJsonEscaped(&head, col.type, col.type_len);
		appendStringInfoChar(&head, '}');
	}
	appendStringInfoString(&head, "],\"pk\":[");
	first = true;
	for (int i = 0; i < meta->ncolumns; i++)
	{
		if (!meta->columns[i].pk)
			continue;
		if (!first)
			appendStringInfoChar(&head, ',');
		first = false;
		appendBinaryStringInfo(&head, meta->columns[i].name_json, meta->columns[i].name_json_len);
	}
	appendStringInfoChar(&head, ']');
	meta->json_head = head.data;
	meta->json_head_len = head.len;
}

/* JSON's two-character escape of a control character, quote or backslash; nullptr: use \u00XX */
const char *
JsonShortEscape(unsigned char c)
{
	static const char kChars[] = "\b\f\n\r\t\"\\";
	static const char *const kEscapes[] = {"\\b", "\\f", "\\n", "\\r", "\\t", "\\\"", "\\\\"};
	const char *hit = c != 0 ? strchr(kChars, c) : nullptr;

	return hit != nullptr ? kEscapes[hit - kChars] : nullptr;
}

} // namespace

namespace rt::ext
{

void
AppendJsonEscaped(StringInfo out, const char *str, int len)
{
	int run = 0; /* start of the pending run of characters copied as they are */

	appendStringInfoChar(out, '"');
	for (int i = 0; i < len; i++)
	{
		unsigned char c = static_cast<unsigned char>(str[i]);
		const char *esc;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (i > run)
			appendBinaryStringInfo(out, str + run, i - run);
		run = i + 1;
		esc = JsonShortEscape(c);
		if (esc == nullptr)
		{
			appendStringInfo(out, "\\u%04x", static_cast<int>(c));
			continue;
		}
		appendBinaryStringInfo(out, esc, 2);
	}
	if (len > run)
		appendBinaryStringInfo(out, str + run, len - run);
	appendStringInfoChar(out, '"');
}

const RelMeta *
GetRelMeta(Relation rel)
{
	HTAB *cache = MetaCache();
	Oid relid = RelationGetRelid(rel);
	MetaEntry *entry;
	bool found;
	MemoryContext old;

	entry = static_cast<MetaEntry *>(hash_search(cache, &relid, HASH_ENTER, &found));
	if (!found)
	{
		entry->valid = false;
		entry->cxt = nullptr;
	}
	/* the callbacks cover every change; the attribute count is a cheap second check */
	if (entry->valid && entry->meta.natts == RelationGetDescr(rel)->natts)
		return &entry->meta;

	/* Not valid until filled in: an ERROR below leaves it to be built again */
	entry->valid = false;
	if (entry->cxt != nullptr)
		MemoryContextDelete(entry->cxt);
	entry->cxt = AllocSetContextCreate(CacheMemoryContext, "realtime relation encoding",
	                                   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(entry->cxt);
	BuildMeta(rel, &entry->meta);
	MemoryContextSwitchTo(old);
	entry->valid = true;
	return &entry->meta;
}

} // namespace rt::ext
