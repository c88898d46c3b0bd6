/*
 * encode.hpp
 *	  The body of a realtime logical message, and its JSON rendering.
 *
 * realtime.send() (any backend) writes one transactional logical message with
 * prefix "realtime" whose body is encoded by EncodeMessageBody; the output
 * plugin "realtime" (a walsender, a SQL decoding session or the decoder
 * worker) decodes it with DecodeMessageBody after the commit.
 *
 * Body layout (version 2), in the field encoding of rt_ring.h (RtFieldWriter:
 * integers little-endian, a byte field is a u32 little-endian length followed
 * by that many bytes, no terminator, no padding):
 *
 *   u32    version   2 (kMessageBodyVersion); a decoder also reads version 1
 *                    (written before 0.2.0: no stored_at) and skips others
 *   u32    flags     RT_MSG_PRIVATE (rt_ring.h): private channel; others 0
 *   bytes  topic     channel topic without "realtime:", non-empty
 *   bytes  event     broadcast event name, non-empty
 *   bytes  id        message id, a UUID in its 36-character text form
 *   bytes  payload   the payload as JSON text (jsonb output form), an object
 *                    that always has a top-level "id"
 *   u64    stored_at the inserted_at of the message's row of realtime.messages
 *                    in Unix microseconds (UTC), or 0 when no row was kept
 *
 * Topic and event are in the database encoding (UTF-8 for realtime). The
 * payload is the exact text clients receive, so the decoder copies it and
 * never parses it. The ring's RT_REC_MESSAGE payload (rt_ring.h) is the same
 * flags, then the commit LSN and time, then these four byte fields and
 * stored_at in this order.
 *
 * LSN_FORMAT_ARGS is not C++ (AssertVariableIsOfTypeMacro): print the two
 * halves with static_cast<uint32>.
 *
 * Include after postgres.h, lib/stringinfo.h, access/xlogdefs.h and
 * datatype/timestamp.h (STYLE.md B7: PG headers first).
 */
#ifndef RT_EXT_ENCODE_HPP
#define RT_EXT_ENCODE_HPP

#include <string_view>

#include "rt_ring_fields.h"

namespace rt::ext
{

/* Prefix of the logical messages realtime.send() writes */
constexpr const char *kMessagePrefix = "realtime";

constexpr uint32 kMessageBodyVersion = 2;
constexpr uint32 kMessageFlagPrivate = RT_MSG_PRIVATE;

/* A decoded message body; the views point into the decoded buffer */
struct MessageBody
{
	bool is_private;          /* flags & kMessageFlagPrivate */
	std::string_view topic;   /* non-empty */
	std::string_view event;   /* non-empty */
	std::string_view id;      /* UUID text */
	std::string_view payload; /* JSON text */
	uint64 stored_at_us = 0;  /* the row's inserted_at (Unix us), 0: not stored */
};

/* Bytes EncodeMessageBody appends for these fields */
uint64 MessageBodySize(const MessageBody &m);

/* Append the version 2 body of m to out; MessageBodySize(m) must fit a palloc */
void EncodeMessageBody(StringInfo out, const MessageBody &m);

/* Decode a body; false if malformed, of another version, with unknown flags or empty fields */
bool DecodeMessageBody(const char *data, Size len, MessageBody *m);

/*
 * Append the one-line JSON form of a message, as the output plugin prints it:
 * {"type":"message","topic":…,"event":…,"private":…,"id":…,"payload":<JSON>,
 *  "commit_lsn":"X/X","commit_time":"YYYY-MM-DDTHH:MM:SS.ffffff+00:00"}
 */
void AppendMessageJson(StringInfo out, const MessageBody &m, XLogRecPtr commit_lsn,
                       TimestampTz commit_time);

/*
 * Append the ring form of a message: one byte RT_REC_MESSAGE (the record type
 * for the decoder worker's write callback), then the RT_REC_MESSAGE payload of
 * rt_ring.h (flags, commit LSN, commit time in Unix microseconds, topic,
 * event, id, payload, stored_at).
 */
void AppendMessageRing(StringInfo out, const MessageBody &m, XLogRecPtr commit_lsn,
                       TimestampTz commit_time);

/* The commit fields every JSON line ends with, and the closing brace */
void AppendCommitJson(StringInfo out, XLogRecPtr commit_lsn, TimestampTz commit_time);

/* A commit time as the ring carries it: microseconds since the Unix epoch */
uint64 UnixMicros(TimestampTz t);

} // namespace rt::ext

#endif /* RT_EXT_ENCODE_HPP */
