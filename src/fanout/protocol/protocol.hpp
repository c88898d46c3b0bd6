/*
 * protocol.hpp: the Phoenix codec of PROTOCOL.md section 2, bytes <-> messages.
 *
 * Folder protocol/: bytes <-> Phoenix messages and nothing else. protocol
 * (the vsn 1.0.0 / 2.0.0 codec), envelope (the ref of a frame the codec
 * refused, so it can be answered), frame (the serialized frames one message is
 * sent as) and elixir_inspect (upstream's error texts render values as Elixir's
 * inspect does). Pure functions, any thread.
 *
 * Any thread; pure functions. vsn 1.0.0 is JSON objects in text frames;
 * vsn 2.0.0 is JSON arrays in text frames plus binary kinds 3 (user
 * broadcast push, client to server) and 4 (user broadcast, server to client).
 * Nothing here knows about sessions, channels or WebSocket framing.
 */
#pragma once

#include "base/result.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rt::fanout
{

enum class Vsn : uint8_t
{
	k1, /* 1.0.0: objects */
	k2, /* 2.0.0: arrays + binary */
};

/* Binary kinds of PROTOCOL.md 2.3 that we speak. */
constexpr uint8_t kKindUserBroadcastPush = 3;
constexpr uint8_t kKindUserBroadcast = 4;
/* Kind 3's fixed header: kind, five lengths (join_ref, ref, topic, event, metadata), encoding. */
constexpr size_t kKind3HeaderBytes = 7;
constexpr uint8_t kEncodingBinary = 0;
constexpr uint8_t kEncodingJson = 1;

/*
 * Deepest nesting of arrays/objects accepted in any JSON we decode (a text frame
 * counted from its root, a kind-3 JSON payload from its own root). Parsing is
 * iterative, but code that walks a DOM later (Value::Accept) recurses, so depth
 * is capped here, at the edge, where an attacker's 5 MB of "[" would arrive.
 */
constexpr int kMaxJsonDepth = 256;

/* One decoded client message. */
struct Inbound
{
	std::optional<std::string> join_ref; /* absent or JSON null -> nullopt */
	std::optional<std::string> ref;
	std::string topic;
	std::string event;           /* "broadcast" for kind 3 */
	std::string payload;         /* text frames: the payload as compact JSON text */
	bool user_broadcast = false; /* true when it came as binary kind 3 */
	std::string user_event;      /* kind 3: the user's event name */
	uint8_t encoding = 1;        /* kind 3: kEncodingBinary or kEncodingJson */
	std::string user_payload;    /* kind 3: payload bytes (JSON text when encoding 1) */
	std::string meta;            /* kind 3: the metadata JSON ({"persist": ...}), or empty */
};

/*
 * Decode a text frame. vsn 1: an object with string "topic", "event", object
 * "payload" and "ref" (string or null); "join_ref" optional. vsn 2: an array of
 * at least 5 elements [join_ref, ref, topic, event, payload], extra elements
 * ignored; join_ref/ref string or null, topic/event strings, payload an object.
 * Anything else (invalid JSON or UTF-8, a lone surrogate escape, nesting deeper
 * than kMaxJsonDepth): kMalformedMessage (the caller drops the frame). Numbers
 * in the payload are kept as written; whitespace is dropped.
 */
Result<Inbound> DecodeText(std::string_view frame, Vsn vsn);

/*
 * Decode a binary frame (vsn 2 only). Only kind 3 is accepted: layout
 * kind, join_ref_len, ref_len, topic_len, user_event_len, metadata_len,
 * encoding, then the strings and the payload to the end. Lengths past the end,
 * unknown kinds or encodings: kMalformedMessage. For encoding 1 the payload
 * must be valid JSON (kMalformedMessage otherwise). Metadata (JSON) is kept in meta.
 * join_ref/ref of length 0 -> nullopt (realtime-js writes "" for null);
 * join_ref, ref, topic and user_event must be valid UTF-8 (they are echoed in
 * text frames); non-empty metadata must be a JSON object.
 */
Result<Inbound> DecodeBinary(std::string_view frame);

/* What a refused frame could still tell of its sender's request. */
struct Envelope
{
	std::optional<std::string> join_ref;
	std::optional<std::string> ref;
	std::string topic;
	std::string event;
};

/*
 * The envelope of a frame DecodeText or DecodeBinary refused, read leniently
 * (protocol/envelope.cpp), so that a push with a ref can be answered with an
 * error instead of being left to time out. Text: the fields read before the
 * first syntax error (vsn 1.0.0 by key, vsn 2.0.0 by position); binary: a
 * kind-3 header. nullopt unless a ref and a topic were read and every field
 * taken is valid UTF-8.
 */
std::optional<Envelope> SalvageEnvelope(std::string_view frame, bool binary, Vsn vsn);

/*
 * Encode a text frame. vsn 1: {"topic":..,"event":..,"payload":<payload_json>,"ref":..}
 * (never a join_ref; ref null when absent). vsn 2: [join_ref, ref, topic, event,
 * payload] with null for absent refs. payload_json is inserted verbatim.
 */
std::string EncodeText(Vsn vsn, const std::optional<std::string> &join_ref,
                       const std::optional<std::string> &ref, std::string_view topic,
                       std::string_view event, std::string_view payload_json);

/*
 * Encode binary kind 4: kind, topic_len, user_event_len, metadata_len, encoding,
 * topic, user_event, metadata, payload. A topic, event or metadata longer than
 * 255 bytes, or an encoding other than 0/1, cannot be encoded: kInvalidArgument.
 */
Result<std::string> EncodeUserBroadcast(std::string_view topic, std::string_view user_event,
                                        std::string_view metadata_json, uint8_t encoding,
                                        std::string_view payload);

/*
 * The text-broadcast payload for a user broadcast (PROTOCOL.md 2.4, 4.3):
 * {"type":"broadcast","event":<event>,"payload":<payload_json>[,"meta":<meta_json>]}
 * payload_json and meta_json are inserted verbatim; meta omitted when empty.
 */
std::string UserBroadcastPayload(std::string_view event, std::string_view payload_json,
                                 std::string_view meta_json);

/* Parse the vsn query value: "~> 1.0.0" / "~> 2.0.0" (1.0.x, 2.0.x); absent -> 1. */
std::optional<Vsn> ParseVsn(std::optional<std::string_view> value);

/* A `system` message payload (PROTOCOL.md 2.6): {"extension","status","message","channel"}. */
std::string SystemPayload(std::string_view extension, std::string_view status,
                          std::string_view message, std::string_view sub_topic);

} // namespace rt::fanout
