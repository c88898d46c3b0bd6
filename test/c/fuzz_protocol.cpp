/*
 * fuzz_protocol.cpp: libFuzzer target for the Phoenix codec (src/fanout/protocol/protocol.cpp).
 *
 * Single-threaded. Built by `make fuzz-build` (clang, ASan, UBSan) into build/fuzz/;
 * scripts/fuzz.sh runs it from test/c/corpus/protocol (the README's test command for a
 * bounded time, `make fuzz` longer).
 * Each input is tried as a v1 and a v2 text frame and as a binary frame. Besides
 * crashes and sanitizer reports, it traps when an accepted frame does not
 * survive re-encoding, or when a kind-3 push would not give valid JSON text to
 * a vsn 1.0.0 subscriber, or when the envelope salvaged from a refused frame
 * would not make a reply that parses.
 */
#include "fuzz_check.hpp"
#include "base/json.hpp"
#include "protocol/protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace
{

using namespace rt::fanout;

using rt::fuzz::Check;

/* A refused frame: what SalvageEnvelope takes from it must make a reply that parses. */
void
Refused(std::string_view frame, bool binary, Vsn vsn)
{
	std::optional<Envelope> e = SalvageEnvelope(frame, binary, vsn);
	if (!e)
		return;
	Check(e->ref.has_value());
	std::string reply = EncodeText(vsn, e->join_ref, e->ref, e->topic, "phx_reply",
	                               R"({"status":"error","response":{}})");
	rapidjson::Document doc;
	Check(json::Parse(doc, reply));
	Result<Inbound> back = DecodeText(reply, vsn);
	Check(back.ok() && back.value().ref == e->ref && back.value().topic == e->topic);
}

/* Decode, re-encode, decode again: the same message must come back. */
void
TextRoundTrip(std::string_view frame, Vsn vsn)
{
	Result<Inbound> r = DecodeText(frame, vsn);
	if (!r.ok())
	{
		Check(r.error().code == ErrorCode::kMalformedMessage);
		Refused(frame, false, vsn);
		return;
	}
	const Inbound &m = r.value();
	Check(!m.user_broadcast && m.payload.size() >= 2 && m.payload.front() == '{');
	std::string again = EncodeText(vsn, m.join_ref, m.ref, m.topic, m.event, m.payload);
	Result<Inbound> r2 = DecodeText(again, vsn);
	Check(r2.ok());
	const Inbound &m2 = r2.value();
	Check(m2.ref == m.ref && m2.topic == m.topic && m2.event == m.event && m2.payload == m.payload);
	/* v1 never sends join_ref back. */
	Check(vsn == Vsn::k1 ? !m2.join_ref.has_value() : m2.join_ref == m.join_ref);
}

/* An accepted kind-3 push must be re-sendable as kind 4 and as v1 text. */
void
Binary(std::string_view frame)
{
	Result<Inbound> r = DecodeBinary(frame);
	if (!r.ok())
	{
		Check(r.error().code == ErrorCode::kMalformedMessage);
		Refused(frame, true, Vsn::k2);
		return;
	}
	const Inbound &m = r.value();
	Check(m.user_broadcast && m.event == "broadcast" &&
	      (m.encoding == kEncodingBinary || m.encoding == kEncodingJson));
	Result<std::string> k4 =
	    EncodeUserBroadcast(m.topic, m.user_event, "", m.encoding, m.user_payload);
	Check(k4.ok());
	Check(k4.value().size() == 5 + m.topic.size() + m.user_event.size() + m.user_payload.size());
	if (m.encoding == kEncodingJson)
	{
		std::string text = EncodeText(Vsn::k1, std::nullopt, std::nullopt, m.topic, m.event,
		                              UserBroadcastPayload(m.user_event, m.user_payload, ""));
		rapidjson::Document doc;
		Check(json::Parse(doc, text));
	}
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view in(reinterpret_cast<const char *>(data), size);
	TextRoundTrip(in, Vsn::k1);
	TextRoundTrip(in, Vsn::k2);
	Binary(in);
	(void)ParseVsn(in);
	return 0;
}
