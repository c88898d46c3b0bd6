/*
 * persist.hpp: `persist` on a broadcast (realtime-js 2.119: channel.send({...,
 * persist: true | {ttl}}) as kind-3 metadata, httpSend(..., {persist}) as
 * ?persist=true or persist[ttl]=N): the message becomes a row of
 * realtime.messages (message_store.hpp) that joins replay (replay_part.hpp).
 *
 * A persisted message is delivered once its row is committed, with meta.id =
 * the row's id, and acknowledged then; one that cannot be stored is answered
 * with an error and not delivered: it is delivered if and only if it is
 * stored. The channel's later broadcasts wait behind it, so that one sender's
 * order is kept (BroadcastChannel::outgoing).
 *
 * Pure functions here (any thread); the shard-side flow is in broadcast_part.cpp.
 */
#pragma once

#include "protocol/protocol.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rt::fanout
{

/* What a push or a request asked to be stored. */
struct PersistAsk
{
	bool asked = false;
	bool valid = true;
	int64_t ttl_s = 0; /* 0: kept for the retention (realtime.message_retention) */
};

/* The TTLs accepted: a positive integer of seconds, at most 100 years. */
inline constexpr int64_t kMaxPersistTtl = 3153600000;

/* The refusals, as the sender reads them (phx_reply response.error, HTTP body "error"). */
inline constexpr std::string_view kPersistPublic =
    "UnableToPersistMessage: Persist is not allowed for public channels";
inline constexpr std::string_view kPersistInvalid =
    "UnableToPersistMessage: Persist params are not valid";
inline constexpr std::string_view kPersistVsn1 =
    "UnableToPersistMessage: Persist needs protocol 2.0.0";
inline constexpr std::string_view kPersistFailed =
    "UnableToPersistMessage: Realtime was unable to store the message";
inline constexpr std::string_view kPersistBusy =
    "UnableToPersistMessage: too many messages waiting to be stored on this channel";

/* `persist` of a kind-3 push's metadata, or of a text push's payload object. */
PersistAsk ReadPersist(const Inbound &m);
/* The persist value of JSON text ("true", {"ttl": N}, false, null...). */
PersistAsk PersistFromJson(std::string_view value_json);
/* ?persist=true / persist[ttl]=N (nullptr: absent). */
PersistAsk PersistFromQuery(const char *persist, const char *ttl);

/* The phx_reply payload of a refused or failed persisted push. */
std::string PersistErrorReply(std::string_view why);

/*
 * meta of a stored message as subscribers get it: {"id":"<uuid>","inserted_at":<unix ms>},
 * the row's id and inserted_at (floored to the millisecond: what replay.since takes);
 * without inserted_at when inserted_us is 0 (no row, or a ring record of before 0.2.0).
 */
std::string StoredMeta(std::string_view id, int64_t inserted_us);

} // namespace rt::fanout
