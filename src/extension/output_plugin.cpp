/*
 * output_plugin.cpp
 *	  The logical decoding output plugin "realtime".
 *
 * Loaded by name ('realtime') in whichever process decodes WAL: a backend
 * calling pg_logical_slot_get_changes() and friends, a walsender, and (next)
 * the decoder background worker. The callbacks run in that process's decoding
 * loop, after commit, once per change; they are PG zone (STYLE.md B2), and
 * each works in a per-change memory context reset when it returns.
 *
 * It decodes the transactional logical messages with prefix "realtime" that
 * realtime.send() writes, and the INSERT, UPDATE and DELETE of the tables in
 * the publication named by realtime.publication (pub_filter.hpp; only the
 * actions it publishes), and prints each as one line of JSON (encode.hpp).
 * Non-transactional messages, other prefixes, other tables and TRUNCATE (no
 * callback registered) are ignored.
 *
 * Two output formats, chosen by the option "format": "json" (the default) for
 * the SQL decoding functions, one JSON line per message or change; "ring" for
 * the decoder worker (worker.cpp), one ring record per message or change,
 * preceded by its record type byte (encode.hpp, AppendMessageRing and
 * AppendChangeRing), which the worker's write callback appends to the ring.
 * Both forms come from one collection of the change (CollectChange), so the
 * SQL form shows exactly the values the ring carries.
 *
 * PostgreSQL 15.20 as packaged by Debian only loads output plugins named in
 * output_plugin_libraries; its own error (detail and hint) says so when
 * "realtime" is missing there, before any code of this file runs.
 */
extern "C"
{
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "replication/reorderbuffer.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

#include <string_view>
#include <type_traits>

#include "encode.hpp"
#include "encode_change.hpp"
#include "pub_filter.hpp"

namespace
{

/* Per-slot state, in ctx->context */
struct PluginState
{
	MemoryContext change_cxt; /* reset after each callback */
	bool ring;                /* format "ring": binary ring records for the decoder worker */
};

} // namespace

extern "C"
{
	void _PG_output_plugin_init(OutputPluginCallbacks *cb);

	static void RealtimeStartup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
	                            bool is_init);
	static void RealtimeBegin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn);
	static void RealtimeCommit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
	                           XLogRecPtr commit_lsn);
	static void RealtimeChange(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
	                           Relation relation, ReorderBufferChange *change);
	static void RealtimeMessage(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
	                            XLogRecPtr message_lsn, bool transactional, const char *prefix,
	                            Size message_size, const char *message);
}

static_assert(std::is_same_v<decltype(&_PG_output_plugin_init), LogicalOutputPluginInit>,
              "_PG_output_plugin_init has the type PostgreSQL looks up");

/* Register the callbacks; PostgreSQL finds this function by name */
void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = RealtimeStartup;
	cb->begin_cb = RealtimeBegin;
	cb->change_cb = RealtimeChange;
	cb->commit_cb = RealtimeCommit;
	cb->message_cb = RealtimeMessage;
}

/* Options ("format": "json" or "ring"; anything else is an error, as test_decoding's), state */
static void
RealtimeStartup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool)
{
	PluginState *st =
	    static_cast<PluginState *>(MemoryContextAllocZero(ctx->context, sizeof(PluginState)));
	ListCell *option;

	st->change_cxt = AllocSetContextCreate(ctx->context, "realtime change", ALLOCSET_DEFAULT_SIZES);
	ctx->output_plugin_private = st;
	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;

	foreach (option, ctx->output_plugin_options)
	{
		DefElem *elem = static_cast<DefElem *>(lfirst(option));

		Assert(elem->arg == nullptr || IsA(elem->arg, String));
		if (strcmp(elem->defname, "format") == 0 && elem->arg != nullptr &&
		    strcmp(strVal(elem->arg), "json") == 0)
			st->ring = false;
		else if (strcmp(elem->defname, "format") == 0 && elem->arg != nullptr &&
		         strcmp(strVal(elem->arg), "ring") == 0)
			st->ring = true;
		else
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			                errmsg("option \"%s\" = \"%s\" is unknown", elem->defname,
			                       elem->arg ? strVal(elem->arg) : "(null)"),
			                errhint("The output plugin \"realtime\" takes one option, "
			                        "\"format\", \"json\" or \"ring\".")));
	}
	if (st->ring)
		opt->output_type = OUTPUT_PLUGIN_BINARY_OUTPUT;
}

/* Nothing is printed per transaction: each message line carries its commit */
static void
RealtimeBegin(LogicalDecodingContext *, ReorderBufferTXN *)
{
}

static void
RealtimeCommit(LogicalDecodingContext *, ReorderBufferTXN *, XLogRecPtr)
{
}

/* A row change of a published table, decoded after its commit: one line or ring record */
static void
RealtimeChange(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation relation,
               ReorderBufferChange *change)
{
	PluginState *st = static_cast<PluginState *>(ctx->output_plugin_private);
	MemoryContext old;
	rt::ext::PublishedActions published;
	bool wanted;

	old = MemoryContextSwitchTo(st->change_cxt);
	published = rt::ext::RelationPublished(relation);

	switch (change->action)
	{
	case REORDER_BUFFER_CHANGE_INSERT:
		wanted = published.insert;
		break;
	case REORDER_BUFFER_CHANGE_UPDATE:
		wanted = published.update;
		break;
	case REORDER_BUFFER_CHANGE_DELETE:
		wanted = published.del;
		break;
	default:
		wanted = false;
		break;
	}
	if (wanted)
	{
		rt::ext::ChangeData c;

		rt::ext::CollectChange(relation, change, &c);
		OutputPluginPrepareWrite(ctx, true);
		if (st->ring)
			rt::ext::AppendChangeRing(ctx->out, c, txn->final_lsn, txn->xact_time.commit_time);
		else
			rt::ext::AppendChangeJson(ctx->out, c, txn->final_lsn, txn->xact_time.commit_time);
		OutputPluginWrite(ctx, true);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->change_cxt);
}

/* A realtime.send() message, decoded after its commit: one JSON line */
static void
RealtimeMessage(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr message_lsn,
                bool transactional, const char *prefix, Size message_size, const char *message)
{
	PluginState *st = static_cast<PluginState *>(ctx->output_plugin_private);
	MemoryContext old;
	rt::ext::MessageBody m;

	/* Only transactional ones are delivered on commit; others are not ours */
	if (!transactional || strcmp(prefix, rt::ext::kMessagePrefix) != 0)
		return;

	old = MemoryContextSwitchTo(st->change_cxt);
	if (!rt::ext::DecodeMessageBody(message, message_size, &m))
		ereport(WARNING,
		        (errcode(ERRCODE_DATA_CORRUPTED),
		         errmsg("skipping malformed realtime message at %X/%X",
		                static_cast<uint32>(message_lsn >> 32), static_cast<uint32>(message_lsn)),
		         errdetail("Its body is not a version 1 or %u realtime message body.",
		                   rt::ext::kMessageBodyVersion)));
	else
	{
		OutputPluginPrepareWrite(ctx, true);
		if (st->ring)
			rt::ext::AppendMessageRing(ctx->out, m, txn->final_lsn, txn->xact_time.commit_time);
		else
			rt::ext::AppendMessageJson(ctx->out, m, txn->final_lsn, txn->xact_time.commit_time);
		OutputPluginWrite(ctx, true);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->change_cxt);
}
