/*
 * send.cpp
 *	  realtime.send(): broadcast a message from SQL, on commit only.
 *
 * Runs in any backend that calls realtime.send(), inside the caller's
 * transaction. The message is a transactional logical message (prefix
 * "realtime", body in encode.hpp): WAL decoding hands it to the output plugin
 * only if and when the transaction commits, in commit order; a rolled back
 * transaction or savepoint never delivers it.
 *
 * As upstream's send, it never aborts the caller: a bad argument, a payload
 * over realtime.max_message_bytes or a caller who may not INSERT the row into
 * realtime.messages is a WARNING "WarnSendingBroadcastMessage: <reason>" and
 * nothing is sent. The right to send is the right to insert the row under RLS.
 * Roles RLS does not apply to (superusers, BYPASSRLS roles, the table owner)
 * only need the INSERT privilege, a catalog check. For the others the INSERT
 * itself runs as the caller, with realtime.topic set, in a subtransaction that
 * is rolled back: exactly the policies a real insert would meet, triggers
 * included. The row is kept instead when realtime.persist_messages says so
 * (by default for private messages: clients replay them, PROTOCOL.md 4.5):
 * it commits with the caller, and the message still reaches the sidecar in
 * commit order through the ring, with the row's id.
 *
 * realtime.broadcast_changes() is SQL (sql/realtime.sql) on top of this.
 */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/rls.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <string_view>

#include "encode.hpp"
#include "guc.hpp"

extern "C"
{
	PG_FUNCTION_INFO_V1(realtime_send);
}

namespace
{

/* Every reason not to send is this WARNING; the caller's transaction goes on */
void
WarnNotSent(int sqlerrcode, const char *reason)
{
	ereport(WARNING, (errcode(sqlerrcode), errmsg("WarnSendingBroadcastMessage: %s", reason)));
}

/* A random (version 4) UUID, as gen_random_uuid() makes it */
pg_uuid_t *
NewUuid(void)
{
	pg_uuid_t *uuid = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));

	if (!pg_strong_random(uuid->data, UUID_LEN))
		ereport(ERROR,
		        (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random values")));
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40; /* version 4 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80; /* variant RFC 4122 */
	return uuid;
}

/* payload || {"id": id}: upstream adds the message id to payloads without one */
Jsonb *
AddId(Jsonb *payload, const char *id)
{
	JsonbParseState *state = nullptr;
	JsonbValue key;
	JsonbValue val;
	Jsonb *id_object;

	key.type = jbvString;
	key.val.string.val = const_cast<char *>("id");
	key.val.string.len = 2;
	val.type = jbvString;
	val.val.string.val = const_cast<char *>(id);
	val.val.string.len = static_cast<int>(strlen(id));
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
	pushJsonbValue(&state, WJB_KEY, &key);
	pushJsonbValue(&state, WJB_VALUE, &val);
	id_object = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, nullptr));
	return DatumGetJsonbP(
	    DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(payload), JsonbPGetDatum(id_object)));
}

/* INSERT of one broadcast row as the caller; prepared once per backend */
SPIPlanPtr insert_plan = nullptr;

/*
 * Insert the row into realtime.messages as the current user, with
 * realtime.topic = topic and inserted_at = at (UTC), in a subtransaction: kept
 * if keep, else rolled back
 * (the authorization probe). Any error is a WARNING and false, except a query
 * cancel, which goes on (as PL/pgSQL's WHEN OTHERS does not catch it either).
 */
bool
InsertRow(pg_uuid_t *id, Jsonb *payload, text *event, text *topic, bool is_private, bool keep,
          TimestampTz at)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = false;

	BeginInternalSubTransaction(nullptr);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		int nestlevel = NewGUCNestLevel();
		Datum values[6];
		char nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
		int rc;

		/* RLS policies read the topic with realtime.topic(); restored below */
		(void)set_config_option("realtime.topic", text_to_cstring(topic), PGC_USERSET,
		                        PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (insert_plan == nullptr)
		{
			Oid types[6] = {UUIDOID, JSONBOID, TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID};
			SPIPlanPtr plan = SPI_prepare(
			    "INSERT INTO realtime.messages (id, payload, event, topic, private, extension, "
			    "inserted_at) VALUES ($1, $2, $3, $4, $5, 'broadcast', "
			    "pg_catalog.timezone('utc', $6))",
			    6, types);

			if (plan == nullptr)
				elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed");
			insert_plan = plan;
		}
		values[0] = UUIDPGetDatum(id);
		values[1] = JsonbPGetDatum(payload);
		values[2] = PointerGetDatum(event);
		values[3] = PointerGetDatum(topic);
		values[4] = BoolGetDatum(is_private);
		values[5] = TimestampTzGetDatum(at);
		rc = SPI_execute_plan(insert_plan, values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute_plan returned %s", SPI_result_code_string(rc));
		SPI_finish();
		AtEOXact_GUC(true, nestlevel);

		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		WarnNotSent(edata->sqlerrcode, edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return ok;
}

/*
 * Whether the current user may send this message (see the file header);
 * *stored_at_us is the kept row's inserted_at (Unix us), 0 when none is kept.
 */
bool
MaySend(pg_uuid_t *id, Jsonb *payload, text *event, text *topic, bool is_private,
        uint64 *stored_at_us)
{
	/* clock_timestamp(): the time of the send, not of its transaction's start */
	TimestampTz now = GetCurrentTimestamp();

	Oid nsp = get_namespace_oid("realtime", true);
	Oid relid = OidIsValid(nsp) ? get_relname_relid("messages", nsp) : InvalidOid;

	if (!OidIsValid(relid))
	{
		WarnNotSent(ERRCODE_UNDEFINED_TABLE, "relation \"realtime.messages\" does not exist");
		return false;
	}
	if (realtime_persist_messages == kPersistAll ||
	    (is_private && realtime_persist_messages == kPersistPrivate))
	{
		if (!InsertRow(id, payload, event, topic, is_private, true, now))
			return false;
		*stored_at_us = rt::ext::UnixMicros(now);
		return true;
	}
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return InsertRow(id, payload, event, topic, is_private, false, now);
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
	{
		WarnNotSent(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for table messages");
		return false;
	}
	return true;
}

/* A text argument that must be given and non-empty; warns and returns null if not */
text *
RequiredText(FunctionCallInfo fcinfo, int argno, const char *name)
{
	text *t;

	if (PG_ARGISNULL(argno))
	{
		WarnNotSent(ERRCODE_NULL_VALUE_NOT_ALLOWED, psprintf("%s must not be null", name));
		return nullptr;
	}
	t = PG_GETARG_TEXT_PP(argno);
	if (VARSIZE_ANY_EXHDR(t) == 0)
	{
		WarnNotSent(ERRCODE_INVALID_PARAMETER_VALUE, psprintf("%s must not be empty", name));
		return nullptr;
	}
	return t;
}

} // namespace

/*
 * realtime.send(payload jsonb, event text, topic text, private boolean DEFAULT false)
 * returns void. Not STRICT: NULL arguments are warnings, as upstream.
 */
Datum
realtime_send(PG_FUNCTION_ARGS)
{
	text *topic;
	text *event;
	Jsonb *payload;
	bool is_private;
	pg_uuid_t *id;
	char *id_text;
	StringInfoData payload_text;
	StringInfoData body;
	rt::ext::MessageBody m;

	/* Checked in upstream's order of effects: arguments, size, then the right to send */
	if ((topic = RequiredText(fcinfo, 2, "topic")) == nullptr ||
	    (event = RequiredText(fcinfo, 1, "event")) == nullptr)
		PG_RETURN_VOID();
	if (PG_ARGISNULL(0))
	{
		WarnNotSent(ERRCODE_NULL_VALUE_NOT_ALLOWED, "payload must not be null");
		PG_RETURN_VOID();
	}
	payload = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_OBJECT(payload))
	{
		WarnNotSent(ERRCODE_INVALID_PARAMETER_VALUE, "payload must be a JSON object");
		PG_RETURN_VOID();
	}
	if (PG_ARGISNULL(3))
	{
		WarnNotSent(ERRCODE_NULL_VALUE_NOT_ALLOWED, "private must not be null");
		PG_RETURN_VOID();
	}
	is_private = PG_GETARG_BOOL(3);
	if (RecoveryInProgress())
	{
		WarnNotSent(ERRCODE_READ_ONLY_SQL_TRANSACTION, "cannot send during recovery");
		PG_RETURN_VOID();
	}
	/* As upstream, whose INSERT fails there: the same for every role */
	if (XactReadOnly)
	{
		WarnNotSent(ERRCODE_READ_ONLY_SQL_TRANSACTION, "cannot send in a read-only transaction");
		PG_RETURN_VOID();
	}

	id = NewUuid();
	id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
	if (getKeyJsonValueFromContainer(&payload->root, "id", 2, nullptr) == nullptr)
		payload = AddId(payload, id_text);

	/* The limit applies to the JSON text clients receive, "id" included */
	initStringInfo(&payload_text);
	(void)JsonbToCString(&payload_text, &payload->root, VARSIZE(payload));
	if (payload_text.len > realtime_max_message_bytes)
	{
		WarnNotSent(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
		            psprintf("payload of %d bytes exceeds realtime.max_message_bytes (%d)",
		                     payload_text.len, realtime_max_message_bytes));
		PG_RETURN_VOID();
	}

	m.is_private = is_private;
	m.topic = std::string_view(VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic));
	m.event = std::string_view(VARDATA_ANY(event), VARSIZE_ANY_EXHDR(event));
	m.id = std::string_view(id_text);
	m.payload = std::string_view(payload_text.data, payload_text.len);
	if (rt::ext::MessageBodySize(m) >= MaxAllocSize)
	{
		WarnNotSent(ERRCODE_PROGRAM_LIMIT_EXCEEDED, "message is too large");
		PG_RETURN_VOID();
	}

	if (!MaySend(id, payload, event, topic, is_private, &m.stored_at_us))
		PG_RETURN_VOID();

	/* Outside any subtransaction of ours: it lives and dies with the caller's */
	initStringInfo(&body);
	rt::ext::EncodeMessageBody(&body, m);
	(void)LogLogicalMessage(rt::ext::kMessagePrefix, body.data, body.len, true);
	PG_RETURN_VOID();
}
