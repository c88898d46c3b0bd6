/*
 * rel_meta.hpp
 *	  What the output plugin needs to encode a relation's row changes, built
 *	  once per relation and cached.
 *
 * Runs in the process that decodes (output plugin callbacks), under the
 * historic catalog snapshot of the change being decoded. For each column the
 * cache holds its name and type name (raw and as JSON strings), whether it is
 * in the primary key or the replica identity, how its values are rendered and
 * its output function; for the relation, its schema and name and the JSON
 * text every change line of it starts with. Entries are dropped by relcache
 * invalidations of the relation and by any change of pg_type or
 * pg_namespace, as pgoutput's RelationSyncCache is; decoding replays the
 * invalidations of each decoded transaction, so an entry always describes the
 * relation as the change being decoded sees it.
 *
 * Include after postgres.h, fmgr.h and utils/rel.h.
 */
#ifndef RT_EXT_REL_META_HPP
#define RT_EXT_REL_META_HPP

namespace rt::ext
{

/* How a column's values become JSON (to_jsonb's rendering, PROTOCOL.md 6.4 step 7) */
enum class ValueKind : uint8
{
	kBool, /* true / false */
	kInt2, /* decimal, formatted here */
	kInt4,
	kInt8,
	kNumber,      /* float4, float8, numeric: output function; NaN and infinities as strings */
	kJson,        /* json: its text as is */
	kJsonb,       /* jsonb: its text form */
	kDateTime,    /* date, timestamp: ISO 8601 */
	kTimestampTz, /* ISO 8601 in UTC */
	kText,        /* text, varchar: escaped directly from the datum */
	kUuid,        /* formatted here */
	kArray,       /* array_to_json */
	kComposite,   /* row_to_json */
	kString,      /* anything else: the output function's text as a JSON string */
};

/* One column, not dropped, not generated, in attribute order */
struct ColumnMeta
{
	AttrNumber attnum;
	int16 attlen;  /* -1: varlena (may be an unchanged TOAST pointer) */
	bool pk;       /* part of the primary key */
	bool identity; /* part of the replica identity index */
	ValueKind kind;
	Oid base_type;    /* the type, or a domain's base type */
	FmgrInfo out;     /* the base type's output function */
	const char *name; /* attname */
	int name_len;
	const char *name_json; /* attname as a JSON string, quotes included */
	int name_json_len;
	const char *type; /* pg_type.typname of the column's own type (int4, _text, a domain) */
	int type_len;
};

/* One relation */
struct RelMeta
{
	Oid relid;
	bool rls;  /* row level security enabled */
	bool full; /* REPLICA IDENTITY FULL */
	int natts; /* of the descriptor it was built from, dropped columns included */
	const char *schema;
	int schema_len;
	const char *table;
	int table_len;
	int ncolumns;
	ColumnMeta *columns;
	/* ,"schema":…,"table":…,"relid":N,"rls":b,"columns":[…],"pk":[…] of the JSON line */
	const char *json_head;
	int json_head_len;
};

/*
 * The cached description of rel, built on first use. Valid until the next
 * call (an invalidation processed in between may free it).
 */
const RelMeta *GetRelMeta(Relation rel);

/* Append str[0..len) as a JSON string, escaped exactly as PostgreSQL's escape_json */
void AppendJsonEscaped(StringInfo out, const char *str, int len);

} // namespace rt::ext

#endif /* RT_EXT_REL_META_HPP */
