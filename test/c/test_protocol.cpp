/*
 * test_protocol.cpp: unit tests of the Phoenix codec (src/fanout/protocol.cpp).
 *
 * Single-threaded CMocka program. Byte-exact expectations for every frame we
 * emit, the envelope rules of PROTOCOL.md 2.1-2.3 for every frame we accept,
 * and the hostile inputs a public socket will see (bad UTF-8, truncated
 * binary headers, 100k-deep nesting).
 */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
/* cmocka.h 1.1 has no extern "C" guard of its own. */
extern "C"
{
#include <cmocka.h>
}

#include "base/json.hpp"
#include "protocol/protocol.hpp"

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

using rt::fanout::DecodeBinary;
using rt::fanout::DecodeText;
using rt::fanout::EncodeText;
using rt::fanout::EncodeUserBroadcast;
using rt::fanout::Envelope;
using rt::fanout::ErrorCode;
using rt::fanout::Inbound;
using rt::fanout::kMaxJsonDepth;
using rt::fanout::ParseVsn;
using rt::fanout::Result;
using rt::fanout::SalvageEnvelope;
using rt::fanout::UserBroadcastPayload;
using rt::fanout::Vsn;
namespace json = rt::fanout::json;

namespace
{

using namespace std::string_literals;

/* Bytes made readable for a failure message. */
std::string
Printable(std::string_view s)
{
	std::string out;
	for (unsigned char c : s)
	{
		if (c >= 0x20 && c < 0x7f)
			out += static_cast<char>(c);
		else
		{
			char buf[8];
			std::snprintf(buf, sizeof buf, "\\x%02x", c);
			out += buf;
		}
	}
	return out;
}

/* Compare byte strings (embedded NULs included) and show both on failure. */
#define ASSERT_BYTES(got, want)                                                                    \
	do                                                                                             \
	{                                                                                              \
		std::string got_ = (got);                                                                  \
		std::string want_ = (want);                                                                \
		if (got_ != want_)                                                                         \
		{                                                                                          \
			print_error("got:  %s\nwant: %s\n", Printable(got_).c_str(),                           \
			            Printable(want_).c_str());                                                 \
			fail();                                                                                \
		}                                                                                          \
	} while (0)

#define ASSERT_OK(r)                                                                               \
	do                                                                                             \
	{                                                                                              \
		if (!(r).ok())                                                                             \
		{                                                                                          \
			print_error("unexpected error: %s\n", (r).error().message.c_str());                    \
			fail();                                                                                \
		}                                                                                          \
	} while (0)

/* Frame must be dropped as malformed. */
#define ASSERT_MALFORMED(r)                                                                        \
	do                                                                                             \
	{                                                                                              \
		auto r_ = (r);                                                                             \
		assert_false(r_.ok());                                                                     \
		assert_int_equal(static_cast<int>(r_.error().code),                                        \
		                 static_cast<int>(ErrorCode::kMalformedMessage));                          \
	} while (0)

/* A kind-3 frame built the way realtime-js 2.119.0 _encodeUserBroadcastPush does. */
std::string
Kind3(std::string_view join_ref, std::string_view ref, std::string_view topic,
      std::string_view event, std::string_view meta, uint8_t encoding, std::string_view payload)
{
	std::string f;
	f += '\x03';
	f += static_cast<char>(join_ref.size());
	f += static_cast<char>(ref.size());
	f += static_cast<char>(topic.size());
	f += static_cast<char>(event.size());
	f += static_cast<char>(meta.size());
	f += static_cast<char>(encoding);
	f += join_ref;
	f += ref;
	f += topic;
	f += event;
	f += meta;
	f += payload;
	return f;
}

/* A v2 frame whose payload field is the given JSON text. */
std::string
V2With(std::string_view payload)
{
	return "[\"1\",\"2\",\"t\",\"e\","s + std::string(payload) + "]";
}

std::string
Repeat(char c, size_t n)
{
	return std::string(n, c);
}

/* ---- vsn 2.0.0 text ---------------------------------------------------- */

void
TestV2DecodeBasic(void **)
{
	auto r = DecodeText(R"(["3","7","realtime:room1","broadcast",)"
	                    R"({"type":"broadcast","event":"cursor","payload":{"x":1,"y":2}}])",
	                    Vsn::k2);
	ASSERT_OK(r);
	const Inbound &m = r.value();
	assert_true(m.join_ref.has_value());
	ASSERT_BYTES(*m.join_ref, "3");
	ASSERT_BYTES(*m.ref, "7");
	ASSERT_BYTES(m.topic, "realtime:room1");
	ASSERT_BYTES(m.event, "broadcast");
	ASSERT_BYTES(m.payload, R"({"type":"broadcast","event":"cursor","payload":{"x":1,"y":2}})");
	assert_false(m.user_broadcast);
	assert_true(m.user_event.empty());
	assert_true(m.user_payload.empty());
}

void
TestV2Nulls(void **)
{
	auto r = DecodeText(R"([null,"4","phoenix","heartbeat",{}])", Vsn::k2);
	ASSERT_OK(r);
	assert_false(r.value().join_ref.has_value());
	ASSERT_BYTES(*r.value().ref, "4");
	ASSERT_BYTES(r.value().payload, "{}");

	auto n = DecodeText(R"([null,null,"t","e",{}])", Vsn::k2);
	ASSERT_OK(n);
	assert_false(n.value().join_ref.has_value());
	assert_false(n.value().ref.has_value());

	/* An empty string is a string, not an absent ref. */
	auto e = DecodeText(R"(["","","","",{}])", Vsn::k2);
	ASSERT_OK(e);
	assert_true(e.value().join_ref.has_value() && e.value().join_ref->empty());
	assert_true(e.value().ref.has_value() && e.value().ref->empty());
	assert_true(e.value().topic.empty() && e.value().event.empty());
}

void
TestV2WhitespaceCompacted(void **)
{
	auto r = DecodeText(" \t[ \"1\" , \"2\" ,\n\"t\" , \"e\" , { \"a\" : [ 1 , 2 ] , \"b\" : { } ,"
	                    " \"c\" : \"x y\" } ] \r\n",
	                    Vsn::k2);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().payload, R"({"a":[1,2],"b":{},"c":"x y"})");
}

void
TestV2ExtraElements(void **)
{
	auto r = DecodeText(
	    R"(["1","2","t","e",{"a":1},"x",5,null,{"deep":[1,{"a":true}]},[],false,-1.5])", Vsn::k2);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().payload, R"({"a":1})");
	ASSERT_BYTES(r.value().topic, "t");
}

void
TestV2ShortArrays(void **)
{
	for (const char *f : {"[]", R"(["1"])", R"(["1","2"])", R"(["1","2","t"])",
	                      R"(["1","2","t","e"])", R"([null,null,"t","e"])"})
		ASSERT_MALFORMED(DecodeText(f, Vsn::k2));
}

void
TestV2WrongTypes(void **)
{
	const char *bad[] = {
	    /* join_ref */
	    R"([1,"2","t","e",{}])",
	    R"([true,"2","t","e",{}])",
	    R"([{},"2","t","e",{}])",
	    R"([[],"2","t","e",{}])",
	    /* ref */
	    R"(["1",2,"t","e",{}])",
	    R"(["1",[],"t","e",{}])",
	    R"(["1",{"a":1},"t","e",{}])",
	    /* topic */
	    R"(["1","2",null,"e",{}])",
	    R"(["1","2",1,"e",{}])",
	    R"(["1","2",["t"],"e",{}])",
	    R"(["1","2",{},"e",{}])",
	    /* event */
	    R"(["1","2","t",null,{}])",
	    R"(["1","2","t",false,{}])",
	    R"(["1","2","t",{},{}])",
	    /* payload: Phoenix payloads are maps */
	    R"(["1","2","t","e",null])",
	    R"(["1","2","t","e",[]])",
	    R"(["1","2","t","e","{}"])",
	    R"(["1","2","t","e",1])",
	    R"(["1","2","t","e",true])",
	    /* root */
	    R"({"topic":"t","event":"e","payload":{},"ref":null})",
	    R"("x")",
	    "1",
	    "null",
	};
	for (const char *f : bad)
		ASSERT_MALFORMED(DecodeText(f, Vsn::k2));
}

/* ---- vsn 1.0.0 text ---------------------------------------------------- */

void
TestV1DecodeBasic(void **)
{
	auto r = DecodeText(R"({"topic":"realtime:room1","event":"phx_join",)"
	                    R"("payload":{"config":{"private":false}},"ref":"1","join_ref":"1"})",
	                    Vsn::k1);
	ASSERT_OK(r);
	ASSERT_BYTES(*r.value().join_ref, "1");
	ASSERT_BYTES(*r.value().ref, "1");
	ASSERT_BYTES(r.value().topic, "realtime:room1");
	ASSERT_BYTES(r.value().event, "phx_join");
	ASSERT_BYTES(r.value().payload, R"({"config":{"private":false}})");

	/* Any key order; join_ref absent and null both read as nullopt. */
	auto a = DecodeText(R"({"ref":null,"payload":{},"event":"e","topic":"t"})", Vsn::k1);
	ASSERT_OK(a);
	assert_false(a.value().join_ref.has_value());
	assert_false(a.value().ref.has_value());
	ASSERT_BYTES(a.value().topic, "t");

	auto n =
	    DecodeText(R"({"topic":"t","event":"e","payload":{},"ref":"9","join_ref":null})", Vsn::k1);
	ASSERT_OK(n);
	assert_false(n.value().join_ref.has_value());
	ASSERT_BYTES(*n.value().ref, "9");
}

void
TestV1MissingFields(void **)
{
	const char *fields[] = {R"("topic":"t")", R"("event":"e")", R"("payload":{})", R"("ref":"1")"};
	for (size_t skip = 0; skip < 4; ++skip)
	{
		std::string f = "{";
		for (size_t i = 0; i < 4; ++i)
		{
			if (i == skip)
				continue;
			if (f.size() > 1)
				f += ',';
			f += fields[i];
		}
		f += R"(,"join_ref":"1"})";
		ASSERT_MALFORMED(DecodeText(f, Vsn::k1));
	}
	ASSERT_MALFORMED(DecodeText("{}", Vsn::k1));
}

void
TestV1WrongTypes(void **)
{
	const char *bad[] = {
	    R"({"topic":1,"event":"e","payload":{},"ref":"1"})",
	    R"({"topic":null,"event":"e","payload":{},"ref":"1"})",
	    R"({"topic":"t","event":null,"payload":{},"ref":"1"})",
	    R"({"topic":"t","event":["e"],"payload":{},"ref":"1"})",
	    R"({"topic":"t","event":"e","payload":[],"ref":"1"})",
	    R"({"topic":"t","event":"e","payload":"x","ref":"1"})",
	    R"({"topic":"t","event":"e","payload":null,"ref":"1"})",
	    R"({"topic":"t","event":"e","payload":{},"ref":1})",
	    R"({"topic":"t","event":"e","payload":{},"ref":{}})",
	    R"({"topic":"t","event":"e","payload":{},"ref":"1","join_ref":1})",
	    R"({"topic":"t","event":"e","payload":{},"ref":"1","join_ref":[]})",
	    R"(["1","2","t","e",{}])",
	    R"("x")",
	};
	for (const char *f : bad)
		ASSERT_MALFORMED(DecodeText(f, Vsn::k1));
}

void
TestV1UnknownAndDuplicateKeys(void **)
{
	/* Unknown keys are skipped whatever they hold; a repeated key: the last one wins. */
	auto r = DecodeText(R"({"topic":"a","x":{"payload":{"deep":1},"topic":"no"},"topic":"b",)"
	                    R"("event":"e","payload":{"p":1},"payload":{"q":2},"ref":"1","z":[[1]]})",
	                    Vsn::k1);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().topic, "b");
	ASSERT_BYTES(r.value().payload, R"({"q":2})");

	/* Envelope names inside the payload are payload. */
	auto p = DecodeText(
	    R"({"topic":"t","event":"e","payload":{"topic":"inner","ref":5,"payload":[]},"ref":"1"})",
	    Vsn::k1);
	ASSERT_OK(p);
	ASSERT_BYTES(p.value().topic, "t");
	ASSERT_BYTES(p.value().payload, R"({"topic":"inner","ref":5,"payload":[]})");
}

/* ---- JSON validity, shared by both vsns -------------------------------- */

void
TestInvalidJson(void **)
{
	const std::string bad[] = {
	    "",
	    " ",
	    "[",
	    R"(["1","2","t","e",{})",
	    R"(["1","2","t","e",{}]])",
	    R"(["1","2","t","e",{}] x)",
	    R"(["1","2","t","e",{}][])",
	    R"(["1","2","t","e",{},])",
	    R"(["1","2","t","e",{"a":1,}])",
	    R"(['1','2','t','e',{}])",
	    R"(["1","2","t","e",{"a":NaN}])",
	    R"(["1","2","t","e",{/*c*/}])",
	    R"(["1","2","t","e",{"a":01}])",
	    R"(["1","2","t","e",{"a":1.}])",
	    R"(["1","2","t","e",{"a":.5}])",
	    R"(["1","2","t","e",{"a":+1}])",
	    R"(["1","2","t","e",{"a":"\x"}])",
	    "[\"1\",\"2\",\"t\",\"e\",{\"a\":\"line\nbreak\"}]", /* raw control char */
	    "[\"1\",\"2\",\"t\",\"e\",{}]\0junk"s,               /* NUL ends RapidJSON's view */
	    "[\"1\",\"2\",\"t\",\"e\",{}]\0"s,
	    "[\"1\",\"2\",\"t\0\",\"e\",{}]"s,
	};
	for (const std::string &f : bad)
		ASSERT_MALFORMED(DecodeText(f, Vsn::k2));
	ASSERT_MALFORMED(DecodeText("", Vsn::k1));
	ASSERT_MALFORMED(
	    DecodeText("{\"topic\":\"t\",\"event\":\"e\",\"payload\":{},\"ref\":null}\0x"s, Vsn::k1));
}

void
TestEscapesDecoded(void **)
{
	auto r =
	    DecodeText(R"(["1","2","a\"b\\c\/d\n\t\u0001\u00e9\ud83d\ude00","e",)"
	               R"({"s\"k":"q\"b\\c\/d\b\f\n\r\t\u0000\u001f\u007f\u00e9\u2028\ud83d\ude00"}])",
	               Vsn::k2);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().topic, "a\"b\\c/d\n\t\x01\xc3\xa9\xf0\x9f\x98\x80");
	/* Re-escaped by the Writer: control chars as \b \f \n \r \t or \u00XX, the rest raw UTF-8. */
	ASSERT_BYTES(r.value().payload, "{\"s\\\"k\":\"q\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0000\\u001F\x7f"
	                                "\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80\"}");
}

void
TestRawUtf8Kept(void **)
{
	std::string payload =
	    "{\"k\xc3\xa9\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}";
	auto r = DecodeText(V2With(payload), Vsn::k2);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().payload, payload);
}

void
TestInvalidUtf8Rejected(void **)
{
	const std::string bad_strings[] = {
	    "\xff",             /* never valid */
	    "\x80",             /* lone continuation */
	    "\xc0\x80",         /* overlong NUL */
	    "\xc1\xbf",         /* overlong */
	    "\xe0\x80\xaf",     /* overlong '/' */
	    "\xed\xa0\x80",     /* UTF-8-encoded surrogate U+D800 */
	    "\xed\xbf\xbf",     /* U+DFFF */
	    "\xe2\x82",         /* truncated */
	    "\xf4\x90\x80\x80", /* above U+10FFFF */
	    "\xf8\x88\x80\x80\x80",
	    "a\xc3",
	    "\\udc00", /* lone low surrogate escape (RapidJSON would emit ED B0 80) */
	    "\\ud800", /* lone high surrogate escape */
	    "\\ud800x",
	    "\\ud800\\u0041",
	};
	for (const std::string &s : bad_strings)
	{
		/* In each string position: topic, event, refs, payload value and key, ignored extras. */
		ASSERT_MALFORMED(DecodeText("[\"1\",\"2\",\"" + s + "\",\"e\",{}]", Vsn::k2));
		ASSERT_MALFORMED(DecodeText("[\"1\",\"2\",\"t\",\"" + s + "\",{}]", Vsn::k2));
		ASSERT_MALFORMED(DecodeText("[\"" + s + "\",\"2\",\"t\",\"e\",{}]", Vsn::k2));
		ASSERT_MALFORMED(DecodeText("[\"1\",\"" + s + "\",\"t\",\"e\",{}]", Vsn::k2));
		ASSERT_MALFORMED(DecodeText(V2With("{\"a\":\"" + s + "\"}"), Vsn::k2));
		ASSERT_MALFORMED(DecodeText(V2With("{\"" + s + "\":1}"), Vsn::k2));
		ASSERT_MALFORMED(DecodeText(V2With("{},\"" + s + "\""), Vsn::k2));
		ASSERT_MALFORMED(DecodeText("{\"topic\":\"t\",\"event\":\"e\",\"payload\":{\"a\":\"" + s +
		                                "\"},\"ref\":null}",
		                            Vsn::k1));
		ASSERT_MALFORMED(DecodeText(
		    "{\"topic\":\"t\",\"event\":\"e\",\"payload\":{},\"ref\":null,\"x\":\"" + s + "\"}",
		    Vsn::k1));
	}
	/* Outside strings, stray bytes are a syntax error. */
	ASSERT_MALFORMED(DecodeText("\xef\xbb\xbf[\"1\",\"2\",\"t\",\"e\",{}]", Vsn::k2));
}

/* json::Parse (REST bodies, presence state, configs) refuses what DecodeText refuses. */
void
TestJsonParseRefusesSurrogates(void **)
{
	rapidjson::Document doc;
	const std::string bad[] = {
	    "\"\\udc00\"",     "{\"a\":\"x\\uDFFFy\"}",
	    "{\"\\udc00\":1}", "[[{\"a\":[\"\\uDe00\"]}]]",
	    "\"\\ud800\"",     "\"\xed\xa0\x80\"",
	    "5155555501e307",  "{\"a\":[-1234567890e300]}", /* beyond double: RapidJSON made them inf */
	};
	for (const std::string &s : bad)
		assert_false(json::Parse(doc, s));
	const std::string good[] = {
	    "\"\\ud83d\\ude00\"", /* a pair: U+1F600 */
	    "\"\\\\udc00\"",      /* an escaped backslash, then the letters udc00 */
	    "{\"a\":\"\\u00e9\\ud7ff\\ue000\"}",
	    "[1e308,-1.7976931348623157e308,1e-400]",
	};
	for (const std::string &s : good)
	{
		assert_true(json::Parse(doc, s));
		rapidjson::Document again;
		assert_true(json::Parse(again, json::Stringify(doc)));
	}
}

void
TestNumbersVerbatim(void **)
{
	std::string payload =
	    R"({"a":1.50,"b":-0,"c":1e-400,"d":12345678901234567890123,"e":1E-7,"f":0,"g":-12.5e+3})";
	auto r = DecodeText(V2With(payload), Vsn::k2);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().payload, payload);
	/* RapidJSON refuses numbers beyond double range; JSON.stringify never writes them. */
	ASSERT_MALFORMED(DecodeText(V2With(R"({"c":1e400})"), Vsn::k2));
	ASSERT_MALFORMED(DecodeBinary(Kind3("1", "2", "t", "e", "", 1, "-1e400")));
	/* nor those it let through: more significant digits with a smaller exponent (fuzz_protocol) */
	ASSERT_MALFORMED(DecodeText(V2With(R"({"c":33300e306})"), Vsn::k2));
	ASSERT_MALFORMED(DecodeBinary(Kind3("1", "2", "t", "e", "", 1, "-33300e0306")));
	ASSERT_MALFORMED(DecodeText(V2With("{\"c\":1" + std::string(400, '0') + "}"), Vsn::k2));
	ASSERT_OK(DecodeText(V2With("{\"c\":1" + std::string(300, '0') + "}"), Vsn::k2));
}

void
TestPayloadOrderPreserved(void **)
{
	std::string payload =
	    R"({"z":1,"a":2,"m":{"y":1,"b":2,"y2":[3,2,1]},"b":[{"k":"v"},null,true]})";
	auto r = DecodeText(V2With(payload), Vsn::k2);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().payload, payload);
	auto v1 =
	    DecodeText(R"({"topic":"t","event":"e","payload":)" + payload + R"(,"ref":"1"})", Vsn::k1);
	ASSERT_OK(v1);
	ASSERT_BYTES(v1.value().payload, payload);
}

void
TestDeepNesting(void **)
{
	const size_t n = 100000;
	/* Balanced and unbalanced, arrays and objects, in the payload and in ignored places. */
	std::string arrays = Repeat('[', n) + Repeat(']', n);
	std::string objects;
	for (size_t i = 0; i < n; ++i)
		objects += "{\"a\":";
	objects += "1" + Repeat('}', n);
	ASSERT_MALFORMED(DecodeText(V2With("{\"a\":" + arrays + "}"), Vsn::k2));
	ASSERT_MALFORMED(DecodeText(V2With("{\"a\":" + Repeat('[', n)), Vsn::k2));
	ASSERT_MALFORMED(DecodeText(V2With(objects), Vsn::k2));
	ASSERT_MALFORMED(DecodeText(V2With("{}," + arrays), Vsn::k2));
	ASSERT_MALFORMED(DecodeText(Repeat('[', n), Vsn::k2));
	ASSERT_MALFORMED(DecodeText(
	    R"({"topic":"t","event":"e","ref":null,"payload":{"a":)" + arrays + "}}", Vsn::k1));
	ASSERT_MALFORMED(DecodeText(
	    R"({"topic":"t","event":"e","ref":null,"payload":{},"x":)" + arrays + "}", Vsn::k1));

	/* The cap counts the envelope: root array + payload object + k arrays. */
	size_t k = static_cast<size_t>(kMaxJsonDepth) - 2;
	std::string at_cap = "{\"a\":" + Repeat('[', k) + Repeat(']', k) + "}";
	auto ok = DecodeText(V2With(at_cap), Vsn::k2);
	ASSERT_OK(ok);
	ASSERT_BYTES(ok.value().payload, at_cap);
	ASSERT_MALFORMED(
	    DecodeText(V2With("{\"a\":" + Repeat('[', k + 1) + Repeat(']', k + 1) + "}"), Vsn::k2));
}

/* ---- encoding text ----------------------------------------------------- */

void
TestEncodeTextExact(void **)
{
	ASSERT_BYTES(EncodeText(Vsn::k2, "1", "2", "realtime:room1", "phx_reply",
	                        R"({"status":"ok","response":{}})"),
	             R"(["1","2","realtime:room1","phx_reply",{"status":"ok","response":{}}])");
	ASSERT_BYTES(
	    EncodeText(Vsn::k2, std::nullopt, std::nullopt, "realtime:room1", "broadcast", "{}"),
	    R"([null,null,"realtime:room1","broadcast",{}])");
	ASSERT_BYTES(EncodeText(Vsn::k2, std::nullopt, "26", "phoenix", "phx_reply",
	                        R"({"status":"ok","response":{}})"),
	             R"([null,"26","phoenix","phx_reply",{"status":"ok","response":{}}])");
	/* v1 never carries join_ref; a missing ref is null. */
	ASSERT_BYTES(EncodeText(Vsn::k1, "5", "1", "realtime:room1", "phx_reply",
	                        R"({"status":"ok","response":{"postgres_changes":[]}})"),
	             R"({"topic":"realtime:room1","event":"phx_reply",)"
	             R"("payload":{"status":"ok","response":{"postgres_changes":[]}},"ref":"1"})");
	ASSERT_BYTES(EncodeText(Vsn::k1, "5", std::nullopt, "t", "broadcast", "{}"),
	             R"({"topic":"t","event":"broadcast","payload":{},"ref":null})");
}

void
TestEncodeTextEscapes(void **)
{
	std::string nasty = "a\"b\\c/\n\r\t\b\f\x01\x1f\x7f\xc3\xa9\xf0\x9f\x98\x80"s + '\0' + "z";
	std::string quoted = "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001F\x7f\xc3\xa9\xf0\x9f\x98\x80"
	                     "\\u0000z\"";
	ASSERT_BYTES(EncodeText(Vsn::k2, nasty, nasty, nasty, nasty, "{}"),
	             "[" + quoted + "," + quoted + "," + quoted + "," + quoted + ",{}]");
	ASSERT_BYTES(EncodeText(Vsn::k1, std::nullopt, nasty, nasty, nasty, "{}"),
	             "{\"topic\":" + quoted + ",\"event\":" + quoted +
	                 ",\"payload\":{},\"ref\":" + quoted + "}");
}

void
TestTextRoundTrip(void **)
{
	std::string nasty = "q\"\\/\n\x01\xc3\xa9\xf0\x9f\x98\x80"s + '\0';
	std::string payload = R"({"z":[1,2.50,"x\"y"],"a":{"b":null}})";
	for (Vsn vsn : {Vsn::k1, Vsn::k2})
	{
		std::string frame =
		    EncodeText(vsn, "j" + nasty, "r" + nasty, "t" + nasty, "e" + nasty, payload);
		auto r = DecodeText(frame, vsn);
		ASSERT_OK(r);
		if (vsn == Vsn::k2)
			ASSERT_BYTES(*r.value().join_ref, "j" + nasty);
		else
			assert_false(r.value().join_ref.has_value());
		ASSERT_BYTES(*r.value().ref, "r" + nasty);
		ASSERT_BYTES(r.value().topic, "t" + nasty);
		ASSERT_BYTES(r.value().event, "e" + nasty);
		ASSERT_BYTES(r.value().payload, payload);
		/* And back to the same bytes. */
		const Inbound &m = r.value();
		ASSERT_BYTES(EncodeText(vsn, m.join_ref, m.ref, m.topic, m.event, m.payload), frame);
	}
	/* Compact input survives decode + encode byte for byte. */
	std::string compact = R"(["1",null,"realtime:a","broadcast",{"type":"broadcast","n":1e3}])";
	auto c = DecodeText(compact, Vsn::k2);
	ASSERT_OK(c);
	const Inbound &m = c.value();
	ASSERT_BYTES(EncodeText(Vsn::k2, m.join_ref, m.ref, m.topic, m.event, m.payload), compact);
}

/* ---- binary kind 3 ------------------------------------------------------ */

void
TestKind3Basic(void **)
{
	/* What realtime-js sends for channel.send({type:'broadcast',event:'msg',payload:{t:'hi'}}). */
	std::string f = "\x03\x01\x01\x0e\x03\x00\x01"
	                "13realtime:room1msg{\"t\":\"hi\"}"s;
	ASSERT_BYTES(Kind3("1", "3", "realtime:room1", "msg", "", 1, R"({"t":"hi"})"), f);
	auto r = DecodeBinary(f);
	ASSERT_OK(r);
	const Inbound &m = r.value();
	ASSERT_BYTES(*m.join_ref, "1");
	ASSERT_BYTES(*m.ref, "3");
	ASSERT_BYTES(m.topic, "realtime:room1");
	ASSERT_BYTES(m.event, "broadcast");
	assert_true(m.user_broadcast);
	ASSERT_BYTES(m.user_event, "msg");
	assert_int_equal(m.encoding, rt::fanout::kEncodingJson);
	ASSERT_BYTES(m.user_payload, R"({"t":"hi"})");
	assert_true(m.payload.empty());
}

void
TestKind3Metadata(void **)
{
	/* {"persist":true} is what realtime-js puts there; it is checked, then dropped. */
	auto r = DecodeBinary(Kind3("1", "2", "t", "e", R"({"persist":true})", 1, "{}"));
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().user_payload, "{}");
	for (const char *meta : {"[1]", "{", "\"x\"", "1", "{}x", "{\"a\":\"\\udc00\"}"})
		ASSERT_MALFORMED(DecodeBinary(Kind3("1", "2", "t", "e", meta, 1, "{}")));
}

void
TestKind3ZeroLengthFields(void **)
{
	auto r = DecodeBinary("\x03\x00\x00\x00\x00\x00\x00"s);
	ASSERT_OK(r);
	const Inbound &m = r.value();
	/* realtime-js writes `ref ?? ''`: empty means absent. */
	assert_false(m.join_ref.has_value());
	assert_false(m.ref.has_value());
	assert_true(m.topic.empty());
	assert_true(m.user_event.empty());
	assert_int_equal(m.encoding, rt::fanout::kEncodingBinary);
	assert_true(m.user_payload.empty());
	/* JSON encoding needs a JSON value: an empty payload is not one. */
	ASSERT_MALFORMED(DecodeBinary("\x03\x00\x00\x00\x00\x00\x01"s));
}

void
TestKind3MaxLengthFields(void **)
{
	std::string a = Repeat('a', 255), b = Repeat('b', 255), c = Repeat('c', 255),
	            d = Repeat('d', 255);
	std::string meta = "{\"k\":\"" + Repeat('m', 247) + "\"}";
	assert_int_equal(meta.size(), 255);
	std::string payload = Repeat('\xff', 1000);
	auto r = DecodeBinary(Kind3(a, b, c, d, meta, 0, payload));
	ASSERT_OK(r);
	ASSERT_BYTES(*r.value().join_ref, a);
	ASSERT_BYTES(*r.value().ref, b);
	ASSERT_BYTES(r.value().topic, c);
	ASSERT_BYTES(r.value().user_event, d);
	ASSERT_BYTES(r.value().user_payload, payload);
}

void
TestKind3LengthBoundaries(void **)
{
	/* Every field 2 bytes, no payload: the last field ends exactly at the end. */
	std::string exact = Kind3("jj", "rr", "tt", "ee", "{}", 0, "");
	auto r = DecodeBinary(exact);
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().user_event, "ee");
	assert_true(r.value().user_payload.empty());

	/* Any one length one larger runs one byte past the end. */
	for (size_t i = 1; i <= 5; ++i)
	{
		std::string f = exact;
		f[i] = static_cast<char>(f[i] + 1);
		ASSERT_MALFORMED(DecodeBinary(f));
	}
	/* Dropping the last byte does the same. */
	ASSERT_MALFORMED(DecodeBinary(exact.substr(0, exact.size() - 1)));
	/* Lengths of 255 against a short frame. */
	ASSERT_MALFORMED(DecodeBinary("\x03\xff\xff\xff\xff\xff\x00"s));
	ASSERT_MALFORMED(DecodeBinary("\x03\x00\x00\xff\x00\x00\x00tt"s));
}

void
TestKind3Header(void **)
{
	ASSERT_MALFORMED(DecodeBinary(""));
	std::string header = "\x03\x00\x00\x00\x00\x00\x00"s;
	for (size_t n = 1; n < header.size(); ++n)
		ASSERT_MALFORMED(DecodeBinary(header.substr(0, n)));
	ASSERT_OK(DecodeBinary(header));
	for (int enc : {2, 3, 0x7f, 0xff})
		ASSERT_MALFORMED(
		    DecodeBinary(Kind3("1", "2", "t", "e", "", static_cast<uint8_t>(enc), "{}")));
	for (int kind : {0, 1, 2, 4, 5, 0xff})
	{
		std::string f = Kind3("1", "2", "t", "e", "", 1, "{}");
		f[0] = static_cast<char>(kind);
		ASSERT_MALFORMED(DecodeBinary(f));
	}
}

void
TestKind3Payloads(void **)
{
	/* JSON.stringify can give any JSON value; it is kept byte for byte. */
	for (const char *p :
	     {R"({"a":1})", R"("str")", "123", "[1,2]", "null", "true", " {\"a\" : 1.50} "})
	{
		auto r = DecodeBinary(Kind3("1", "2", "t", "e", "", 1, p));
		ASSERT_OK(r);
		ASSERT_BYTES(r.value().user_payload, p);
	}
	const std::string bad[] = {
	    "{",
	    "{\"a\":1}x",
	    "{\"a\":1}\0x"s,
	    "\"\xff\"",
	    "\"\\udc00\"",
	    "\"\\ud800\"",
	    "undefined",
	    Repeat('[', 100000) + Repeat(']', 100000),
	    Repeat('[', static_cast<size_t>(kMaxJsonDepth) + 1) +
	        Repeat(']', static_cast<size_t>(kMaxJsonDepth) + 1),
	};
	for (const std::string &p : bad)
		ASSERT_MALFORMED(DecodeBinary(Kind3("1", "2", "t", "e", "", 1, p)));
	std::string at_cap = Repeat('[', static_cast<size_t>(kMaxJsonDepth)) +
	                     Repeat(']', static_cast<size_t>(kMaxJsonDepth));
	ASSERT_OK(DecodeBinary(Kind3("1", "2", "t", "e", "", 1, at_cap)));

	/* Encoding 0: opaque bytes, NULs and all. */
	std::string bytes = "\x00\xff\xfe{"s;
	auto b = DecodeBinary(Kind3("1", "2", "t", "e", "", 0, bytes));
	ASSERT_OK(b);
	ASSERT_BYTES(b.value().user_payload, bytes);
}

void
TestKind3InvalidUtf8(void **)
{
	for (const std::string &s : {"\xff"s, "\xc0\x80"s, "\xed\xa0\x80"s, "a\xe2\x82"s})
	{
		ASSERT_MALFORMED(DecodeBinary(Kind3(s, "2", "t", "e", "", 1, "{}")));
		ASSERT_MALFORMED(DecodeBinary(Kind3("1", s, "t", "e", "", 1, "{}")));
		ASSERT_MALFORMED(DecodeBinary(Kind3("1", "2", s, "e", "", 1, "{}")));
		ASSERT_MALFORMED(DecodeBinary(Kind3("1", "2", "t", s, "", 1, "{}")));
	}
	auto r = DecodeBinary(Kind3("1", "2", "realtime:\xc3\xa9", "\xf0\x9f\x98\x80", "", 1, "{}"));
	ASSERT_OK(r);
	ASSERT_BYTES(r.value().topic, "realtime:\xc3\xa9");
}

/* ---- binary kind 4 and the broadcast payload ---------------------------- */

void
TestKind4Exact(void **)
{
	auto r = EncodeUserBroadcast("realtime:room1", "msg", "", rt::fanout::kEncodingJson,
	                             R"({"t":"hi"})");
	ASSERT_OK(r);
	ASSERT_BYTES(r.value(), "\x04\x0e\x03\x00\x01realtime:room1msg{\"t\":\"hi\"}"s);

	auto m = EncodeUserBroadcast("realtime:db", "ins", R"({"id":"0c5d"})",
	                             rt::fanout::kEncodingBinary, "\x00\x01\xff"s);
	ASSERT_OK(m);
	ASSERT_BYTES(m.value(), "\x04\x0b\x03\x0d\x00realtime:dbins{\"id\":\"0c5d\"}\x00\x01\xff"s);

	auto e = EncodeUserBroadcast("", "", "", 0, "");
	ASSERT_OK(e);
	ASSERT_BYTES(e.value(), "\x04\x00\x00\x00\x00"s);
}

void
TestKind4Limits(void **)
{
	std::string max = Repeat('x', 255), over = Repeat('x', 256);
	auto ok = EncodeUserBroadcast(max, max, max, 1, Repeat('p', 5000));
	ASSERT_OK(ok);
	assert_int_equal(ok.value().size(), 5 + 3 * 255 + 5000);
	assert_int_equal(static_cast<unsigned char>(ok.value()[1]), 255);
	assert_int_equal(static_cast<unsigned char>(ok.value()[3]), 255);

	Result<std::string> bad[] = {
	    EncodeUserBroadcast(over, "e", "", 1, "{}"),
	    EncodeUserBroadcast("t", over, "", 1, "{}"),
	    EncodeUserBroadcast("t", "e", over, 1, "{}"),
	    EncodeUserBroadcast("t", "e", "", 2, "{}"),
	};
	for (const auto &r : bad)
	{
		assert_false(r.ok());
		assert_int_equal(static_cast<int>(r.error().code),
		                 static_cast<int>(ErrorCode::kInvalidArgument));
	}
}

void
TestUserBroadcastPayload(void **)
{
	ASSERT_BYTES(UserBroadcastPayload("cursor", R"({"x":1,"y":2})", ""),
	             R"({"type":"broadcast","event":"cursor","payload":{"x":1,"y":2}})");
	ASSERT_BYTES(UserBroadcastPayload("cursor", R"("s")", R"({"id":"0c5d"})"),
	             R"({"type":"broadcast","event":"cursor","payload":"s","meta":{"id":"0c5d"}})");
	ASSERT_BYTES(UserBroadcastPayload("a\"b\\\n\xc3\xa9", "[]", ""),
	             "{\"type\":\"broadcast\",\"event\":\"a\\\"b\\\\\\n\xc3\xa9\",\"payload\":[]}");

	/* A kind-3 push re-sent to a v1 subscriber decodes there as text. */
	auto in = DecodeBinary(Kind3("1", "2", "realtime:r", "msg", "", 1, R"({"t":"hi"})"));
	ASSERT_OK(in);
	std::string frame =
	    EncodeText(Vsn::k1, std::nullopt, std::nullopt, in.value().topic, in.value().event,
	               UserBroadcastPayload(in.value().user_event, in.value().user_payload, ""));
	ASSERT_BYTES(
	    frame, R"({"topic":"realtime:r","event":"broadcast",)"
	           R"("payload":{"type":"broadcast","event":"msg","payload":{"t":"hi"}},"ref":null})");
	ASSERT_OK(DecodeText(frame, Vsn::k1));
}

/* ---- vsn negotiation ---------------------------------------------------- */

void
TestParseVsn(void **)
{
	assert_true(ParseVsn(std::nullopt) == Vsn::k1);
	for (const char *v : {"1.0.0", "1.0.5", "1.0.10", "1.0.0+build.7", "1.0.1-rc.1"})
		assert_true(ParseVsn(std::string_view(v)) == Vsn::k1);
	for (const char *v : {"2.0.0", "2.0.3", "2.0.1-rc.1", "2.0.0+sha.abc-1"})
		assert_true(ParseVsn(std::string_view(v)) == Vsn::k2);
	for (const char *v :
	     {"3.0.0",       "2.1.0",    "1.1.0",   "0.9.0",  "0.0.0",      "abc",      "",
	      "1.0",         "2",        "1.0.0.0", "01.0.0", "2.00.0",     "2.0.01",   "2.0.0-rc",
	      "1.0.0-alpha", "2.0.1-01", "2.0.0-",  "2.0.0+", "2.0.0+a..b", " 2.0.0",   "2.0.0 ",
	      "~> 2.0.0",    "v2.0.0",   "2.0.x",   "2.0.-1", "2..0",       "2.0.0-r c"})
	{
		if (ParseVsn(std::string_view(v)).has_value())
		{
			print_error("accepted vsn \"%s\"\n", v);
			fail();
		}
	}
}

/* A refused frame still yields the ref its sender waits on, when it can be read (PROTOCOL.md 1.6).
 */
void
TestSalvageEnvelope(void **)
{
	/* vsn 2.0.0 text: the payload holds a lone surrogate escape (JSON.stringify("\ud800")) */
	std::string v2 =
	    R"(["1","7","realtime:room","broadcast",{"type":"broadcast","payload":{"s":"\ud800"}}])";
	ASSERT_MALFORMED(DecodeText(v2, Vsn::k2));
	std::optional<Envelope> e = SalvageEnvelope(v2, false, Vsn::k2);
	assert_true(e.has_value());
	assert_true(e->join_ref == std::optional<std::string>("1"));
	assert_true(e->ref == std::optional<std::string>("7"));
	ASSERT_BYTES(e->topic, "realtime:room");
	ASSERT_BYTES(e->event, "broadcast");

	/* vsn 1.0.0: realtime-js writes the payload before ref, so the rest is read past it */
	std::string v1 = R"({"topic":"realtime:a","event":"broadcast","payload":{"x":"\ud800",)"
	                 R"("deep":[[[[1e999]]]]},"ref":"9","join_ref":"3"})";
	ASSERT_MALFORMED(DecodeText(v1, Vsn::k1));
	e = SalvageEnvelope(v1, false, Vsn::k1);
	assert_true(e.has_value());
	assert_true(e->ref == std::optional<std::string>("9"));
	assert_true(e->join_ref == std::optional<std::string>("3"));
	ASSERT_BYTES(e->topic, "realtime:a");

	/* invalid UTF-8 inside the payload does not hide the envelope before it */
	std::string raw = "[null,\"2\",\"t\",\"e\",{\"a\":\"\xff\"}]";
	e = SalvageEnvelope(raw, false, Vsn::k2);
	assert_true(e.has_value() && !e->join_ref && e->ref == std::optional<std::string>("2"));

	/* truncated after the event: the four fields were read */
	e = SalvageEnvelope(R"(["1","4","t","e",{"a":)", false, Vsn::k2);
	assert_true(e.has_value() && e->ref == std::optional<std::string>("4"));

	/* nothing to answer: no ref, no topic, wrong root, a bad ref, a bad topic */
	for (std::string bad : {R"(["1",null,"t","e",{"a":"\ud800"}])"s, R"(["1","2")"s,
	                        R"({"ref":"1","topic":"t"})"s, R"(["1","\udc00","t","e",{}])"s,
	                        "[\"1\",\"2\",\"\xc3\",\"e\",{}]"s, ""s, "\"x\""s, Repeat('[', 100000)})
		assert_false(SalvageEnvelope(bad, false, Vsn::k2).has_value());
	assert_false(SalvageEnvelope(R"(["1","2","t","e",{}])", false, Vsn::k1).has_value());
	assert_false(
	    SalvageEnvelope(R"({"topic":"t","payload":{"a":"\ud800"}})", false, Vsn::k1).has_value());

	/* binary kind 3 with a payload that is not JSON: the header tells */
	std::string k3 = Kind3("5", "6", "realtime:b", "cursor", "", 1, "{\"s\":\"\\ud800\"}");
	ASSERT_MALFORMED(DecodeBinary(k3));
	e = SalvageEnvelope(k3, true, Vsn::k2);
	assert_true(e.has_value());
	assert_true(e->join_ref == std::optional<std::string>("5"));
	assert_true(e->ref == std::optional<std::string>("6"));
	ASSERT_BYTES(e->topic, "realtime:b");
	ASSERT_BYTES(e->event, "broadcast");
	/* a header running past the end, another kind, an invalid ref: nothing */
	assert_false(SalvageEnvelope(k3.substr(0, 9), true, Vsn::k2).has_value());
	std::string other = k3;
	other[0] = 4;
	assert_false(SalvageEnvelope(other, true, Vsn::k2).has_value());
	assert_false(
	    SalvageEnvelope(Kind3("5", "\xff", "t", "e", "", 1, "{"), true, Vsn::k2).has_value());
	assert_false(SalvageEnvelope(Kind3("5", "", "t", "e", "", 1, "{"), true, Vsn::k2).has_value());
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestV2DecodeBasic),
	    cmocka_unit_test(TestV2Nulls),
	    cmocka_unit_test(TestV2WhitespaceCompacted),
	    cmocka_unit_test(TestV2ExtraElements),
	    cmocka_unit_test(TestV2ShortArrays),
	    cmocka_unit_test(TestV2WrongTypes),
	    cmocka_unit_test(TestV1DecodeBasic),
	    cmocka_unit_test(TestV1MissingFields),
	    cmocka_unit_test(TestV1WrongTypes),
	    cmocka_unit_test(TestV1UnknownAndDuplicateKeys),
	    cmocka_unit_test(TestInvalidJson),
	    cmocka_unit_test(TestEscapesDecoded),
	    cmocka_unit_test(TestRawUtf8Kept),
	    cmocka_unit_test(TestInvalidUtf8Rejected),
	    cmocka_unit_test(TestNumbersVerbatim),
	    cmocka_unit_test(TestPayloadOrderPreserved),
	    cmocka_unit_test(TestDeepNesting),
	    cmocka_unit_test(TestEncodeTextExact),
	    cmocka_unit_test(TestEncodeTextEscapes),
	    cmocka_unit_test(TestTextRoundTrip),
	    cmocka_unit_test(TestKind3Basic),
	    cmocka_unit_test(TestKind3Metadata),
	    cmocka_unit_test(TestKind3ZeroLengthFields),
	    cmocka_unit_test(TestKind3MaxLengthFields),
	    cmocka_unit_test(TestKind3LengthBoundaries),
	    cmocka_unit_test(TestKind3Header),
	    cmocka_unit_test(TestKind3Payloads),
	    cmocka_unit_test(TestKind3InvalidUtf8),
	    cmocka_unit_test(TestKind4Exact),
	    cmocka_unit_test(TestKind4Limits),
	    cmocka_unit_test(TestUserBroadcastPayload),
	    cmocka_unit_test(TestParseVsn),
	    cmocka_unit_test(TestJsonParseRefusesSurrogates),
	    cmocka_unit_test(TestSalvageEnvelope),
	};
	return cmocka_run_group_tests_name("protocol", tests, nullptr, nullptr);
}
