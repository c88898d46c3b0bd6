/*
 * pg_changes_part.cpp: postgres_changes on a channel (PROTOCOL.md 3.4, 6.6).
 *
 * Shard thread only. Entries are parsed and checked here the way upstream
 * reports their errors (never retried); what needs the database (tables,
 * columns, RLS) is the engine's, after the join reply.
 */
#include "postgres_changes/pg_changes_part.hpp"

#include "channel/channel.hpp"
#include "postgres_changes/pg_changes_params.hpp"
#include "tenancy/tenant.hpp"

namespace rt::fanout
{

namespace
{

/*
 * A stable id for a postgres_changes entry: identical parameter objects get
 * identical ids (PROTOCOL.md 3.4). FNV-1a over the compact JSON, 27 bits.
 */
uint32_t
ParamsId(std::string_view compact)
{
	uint32_t h = 2166136261u;
	for (unsigned char c : compact)
	{
		h ^= c;
		h *= 16777619u;
	}
	return h & 0x7ffffff;
}

/* Keep entry as a subscription unless an earlier one was invalid; the first error is kept. */
void
ParseEntry(PgChangesChannel &pc, const rapidjson::Value &entry)
{
	if (pc.error)
		return;
	/* upstream's words, never retried (PROTOCOL.md 6.6) */
	Result<PgChangesParams> parsed = ParsePgChangesParams(entry);
	if (!parsed.ok())
		pc.error = parsed.error().message;
	else if (std::optional<Error> bad = CheckPgChangesText(parsed.value()))
		pc.error = bad->message;
	else
		pc.entries.push_back(PgJoinEntry{0, std::move(parsed.value())});
}

/* The channel's subscriptions as the engine takes them, with the channel's claims. */
PgJoinRequest
MakeRequest(const Channel &ch)
{
	PgJoinRequest req;
	req.channel = ch.pg_changes.channel;
	req.sub_topic = ch.sub_topic;
	req.role = ch.claims.role;
	req.claims_json = ch.claims.claims_json;
	req.sub = ch.claims.sub;
	req.entries = ch.pg_changes.entries;
	return req;
}

} // namespace

/* Echo every entry with its id, keys unchanged (PROTOCOL.md 3.4); null entries are dropped. */
JoinStep
PgChangesPart::Join(ChannelHost &, Channel &ch, JoinConfig &join)
{
	PgChangesChannel &pc = ch.pg_changes;
	std::string &response = join.response;
	response += R"("postgres_changes":[)";
	const rapidjson::Value *list = join.Options("postgres_changes");
	if (list && list->IsArray())
	{
		for (const rapidjson::Value &entry : list->GetArray())
		{
			if (entry.IsNull())
				continue; /* PROTOCOL.md 3.2 */
			ParseEntry(pc, entry);
			if (!entry.IsObject())
				continue;
			std::string compact = json::Stringify(entry);
			if (pc.any)
				response += ',';
			pc.any = true;
			uint32_t id = ParamsId(compact);
			if (!pc.error)
				pc.entries.back().id = id;
			response += R"({"id":)";
			response += std::to_string(id);
			if (compact.size() > 2)
			{
				response += ',';
				response.append(compact, 1, compact.size() - 1);
			}
			else
				response += '}';
		}
	}
	response += ']';
	if (pc.error)
		pc.entries.clear();
	return JoinStep::kDone;
}

/* Hand the entries to the engine, or tell why there are none to hand. */
bool
PgChangesPart::Joined(ChannelHost &host, Channel &ch)
{
	PgChangesChannel &pc = ch.pg_changes;
	if (!pc.any)
		return true;
	PgChangesEngine *engine = host.tenant().changes;
	if (!pc.error && engine == nullptr)
		pc.error = "Postgres Changes are not available: this server runs without a database "
		           "and ring (--db, --ring-path)";
	if (pc.error)
	{
		host.PushTo(ch, "system",
		            SystemPayload("postgres_changes", "error", *pc.error, ch.sub_topic));
		pc.error.reset();
		return true;
	}
	auto ref = std::make_shared<ChannelRef>();
	ref->shard = host.shard_index();
	ref->session_id = host.session_id();
	ref->gen = ch.gen;
	ref->topic = ch.topic;
	pc.channel = std::move(ref);
	engine->Join(MakeRequest(ch));
	return true;
}

/* The subscriptions follow the new claims: RLS may now show other rows. */
void
PgChangesPart::TokenRefreshed(ChannelHost &host, Channel &ch)
{
	if (ch.pg_changes.channel != nullptr && host.tenant().changes != nullptr)
		host.tenant().changes->Rejoin(MakeRequest(ch));
}

void
PgChangesPart::Leave(ChannelHost &host, Channel &ch)
{
	if (ch.pg_changes.channel != nullptr && host.tenant().changes != nullptr)
		host.tenant().changes->Leave(host.session_id(), ch.gen);
}

} // namespace rt::fanout
