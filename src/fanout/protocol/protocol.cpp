/*
 * protocol.cpp: the Phoenix codec of PROTOCOL.md section 2 (see protocol.hpp).
 *
 * Any thread (shard threads decode inbound frames, whoever fans out encodes);
 * pure functions, no shared state.
 *
 * Text frames are decoded in one SAX pass: a RapidJSON Reader (iterative, UTF-8
 * validating) drives a handler that picks out the envelope fields and streams
 * the payload object straight into a Writer appending to Inbound::payload. No
 * DOM is built, the payload is written once, and numbers are copied as written
 * (kParseNumbersAsStringsFlag + RawValue) so 1.50 or 1e-7 survive unchanged.
 */
#include "protocol/protocol.hpp"

#include "base/json.hpp"

#include <cstring>
#include <iterator>

namespace rt::fanout
{

namespace
{

/* kParseFlags keeps iterative parsing and UTF-8 validation; numbers as text. */
constexpr unsigned kSaxFlags = json::kParseFlags | rapidjson::kParseNumbersAsStringsFlag;

/* Binary kind 4: kind + three lengths + encoding (kind 3's header: protocol.hpp). */
constexpr size_t kKind4HeaderBytes = 5;
constexpr size_t kMaxFieldBytes = 255;

Error
Malformed(std::string message)
{
	return Error{ErrorCode::kMalformedMessage, std::move(message)};
}

/*
 * A RapidJSON input stream over a string_view. GenericStringStream would need a
 * terminating NUL and stop at an embedded one; this one reports how far it got
 * so the caller can reject "{...}\0junk".
 */
class ViewStream
{
public:
	using Ch = char;

	explicit ViewStream(std::string_view s)
	    : begin_(s.data()), cur_(s.data()), end_(s.data() + s.size())
	{
	}
	Ch
	Peek() const
	{
		return cur_ == end_ ? '\0' : *cur_;
	}
	Ch
	Take()
	{
		return cur_ == end_ ? '\0' : *cur_++;
	}
	size_t
	Tell() const
	{
		return static_cast<size_t>(cur_ - begin_);
	}
	bool
	AtEnd() const
	{
		return cur_ == end_;
	}

	/* Write side of the stream concept: only used by in-situ parsing, which we never do. */
	Ch *
	PutBegin()
	{
		return nullptr;
	}
	void
	Put(Ch)
	{
	}
	void
	Flush()
	{
	}
	size_t
	PutEnd(Ch *)
	{
		return 0;
	}

private:
	const char *begin_;
	const char *cur_;
	const char *end_;
};

/* A RapidJSON output stream appending to a std::string (no intermediate StringBuffer). */
struct StringSink
{
	using Ch = char;
	std::string *out;

	void
	Put(Ch c)
	{
		out->push_back(c);
	}
	void
	Flush()
	{
	}
};

using SinkWriter = rapidjson::Writer<StringSink>;

/* Append s as a JSON string literal, escaped by RapidJSON's Writer. */
void
AppendQuoted(std::string &out, std::string_view s)
{
	StringSink sink{&out};
	SinkWriter w(sink);
	w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void
AppendRef(std::string &out, const std::optional<std::string> &ref)
{
	if (ref)
		AppendQuoted(out, *ref);
	else
		out += "null";
}

/* Text of a failed parse, for the log line (never the frame's bytes). */
std::string
ParseFailure(const rapidjson::ParseResult &r, const char *handler_reason)
{
	if (r.Code() == rapidjson::kParseErrorTermination && handler_reason != nullptr)
		return handler_reason;
	return std::string("invalid JSON: ") + rapidjson::GetParseError_En(r.Code()) + " at offset " +
	       std::to_string(r.Offset());
}

/* Where the next top-level value of a text frame goes. */
enum class Slot : uint8_t
{
	kIgnore,
	kJoinRef,
	kRef,
	kTopic,
	kEvent,
	kPayload,
};

constexpr unsigned kSeenJoinRef = 1u << 0;
constexpr unsigned kSeenRef = 1u << 1;
constexpr unsigned kSeenTopic = 1u << 2;
constexpr unsigned kSeenEvent = 1u << 3;
constexpr unsigned kSeenPayload = 1u << 4;

/* Fields a frame must carry: v1 may omit join_ref, v2 has all five positions. */
constexpr unsigned kRequiredV1 = kSeenRef | kSeenTopic | kSeenEvent | kSeenPayload;
constexpr unsigned kRequiredV2 = kRequiredV1 | kSeenJoinRef;

Slot
SlotForKey(std::string_view key)
{
	if (key == "topic")
		return Slot::kTopic;
	if (key == "event")
		return Slot::kEvent;
	if (key == "payload")
		return Slot::kPayload;
	if (key == "ref")
		return Slot::kRef;
	if (key == "join_ref")
		return Slot::kJoinRef;
	return Slot::kIgnore;
}

/*
 * SAX handler for a text frame. depth_ counts open containers: 0 before the
 * root, 1 inside the root (where the envelope fields live), 2+ inside a field.
 * Values under the payload field are forwarded to writer_; values under
 * ignored fields (unknown v1 keys, v2 elements past the fifth) are only
 * checked for depth and UTF-8. Returning false stops the Reader at once.
 */
class TextHandler
{
public:
	TextHandler(Vsn vsn, Inbound &msg, size_t frame_size)
	    : vsn_(vsn), msg_(msg), frame_size_(frame_size), sink_{&msg.payload}, writer_(sink_)
	{
	}

	const char *
	Reason() const
	{
		return reason_;
	}
	bool
	Complete() const
	{
		unsigned required = vsn_ == Vsn::k1 ? kRequiredV1 : kRequiredV2;
		return (seen_ & required) == required;
	}

	bool
	Null()
	{
		if (depth_ >= 2)
			return !capturing_ || writer_.Null();
		if (depth_ == 0)
			return Fail("root is not a container");
		switch (NextSlot())
		{
		case Slot::kJoinRef:
			msg_.join_ref.reset();
			seen_ |= kSeenJoinRef;
			return true;
		case Slot::kRef:
			msg_.ref.reset();
			seen_ |= kSeenRef;
			return true;
		case Slot::kIgnore:
			return true;
		default:
			return Fail("topic, event or payload is null");
		}
	}
	bool
	Bool(bool b)
	{
		return Forward([&] { return writer_.Bool(b); });
	}
	/* With kParseNumbersAsStringsFlag only RawNumber is called; the rest satisfy the concept. */
	bool
	Int(int i)
	{
		return Forward([&] { return writer_.Int(i); });
	}
	bool
	Uint(unsigned u)
	{
		return Forward([&] { return writer_.Uint(u); });
	}
	bool
	Int64(int64_t i)
	{
		return Forward([&] { return writer_.Int64(i); });
	}
	bool
	Uint64(uint64_t u)
	{
		return Forward([&] { return writer_.Uint64(u); });
	}
	bool
	Double(double d)
	{
		return Forward([&] { return writer_.Double(d); });
	}
	bool
	RawNumber(const char *s, rapidjson::SizeType n, bool)
	{
		if (!json::RawNumberFinite(s, n))
			return Fail("number beyond double's range");
		return Forward([&] { return writer_.RawValue(s, n, rapidjson::kNumberType); });
	}
	bool
	String(const char *s, rapidjson::SizeType n, bool)
	{
		if (!json::NoSurrogates(s, n))
			return Fail("lone surrogate escape in a string");
		if (depth_ >= 2)
			return !capturing_ || writer_.String(s, n);
		if (depth_ == 0)
			return Fail("root is not a container");
		switch (NextSlot())
		{
		case Slot::kJoinRef:
			msg_.join_ref.emplace(s, n);
			seen_ |= kSeenJoinRef;
			return true;
		case Slot::kRef:
			msg_.ref.emplace(s, n);
			seen_ |= kSeenRef;
			return true;
		case Slot::kTopic:
			msg_.topic.assign(s, n);
			seen_ |= kSeenTopic;
			return true;
		case Slot::kEvent:
			msg_.event.assign(s, n);
			seen_ |= kSeenEvent;
			return true;
		case Slot::kIgnore:
			return true;
		case Slot::kPayload:
			break;
		}
		return Fail("payload is not an object");
	}
	bool
	Key(const char *s, rapidjson::SizeType n, bool)
	{
		if (!json::NoSurrogates(s, n))
			return Fail("lone surrogate escape in a key");
		/* Keys at depth 1 only occur in a v1 root object: they name the envelope fields. */
		if (depth_ == 1)
		{
			key_slot_ = SlotForKey(std::string_view(s, n));
			return true;
		}
		return !capturing_ || writer_.Key(s, n);
	}
	bool
	StartObject()
	{
		if (depth_ >= kMaxJsonDepth)
			return Fail("JSON nested too deeply");
		bool ok = true;
		if (depth_ == 0)
		{
			if (vsn_ != Vsn::k1)
				ok = Fail("vsn 2.0.0 text frame is not an array");
		}
		else if (depth_ == 1)
		{
			Slot slot = NextSlot();
			if (slot == Slot::kPayload)
				ok = BeginPayload();
			else if (slot != Slot::kIgnore)
				ok = Fail("join_ref, ref, topic or event is an object");
		}
		else if (capturing_)
			ok = writer_.StartObject();
		++depth_;
		return ok;
	}
	bool
	EndObject(rapidjson::SizeType)
	{
		--depth_;
		if (!capturing_)
			return true;
		bool ok = writer_.EndObject();
		/* Back inside the root: the payload object just closed. */
		if (depth_ == 1)
		{
			capturing_ = false;
			seen_ |= kSeenPayload;
		}
		return ok;
	}
	bool
	StartArray()
	{
		if (depth_ >= kMaxJsonDepth)
			return Fail("JSON nested too deeply");
		bool ok = true;
		if (depth_ == 0)
		{
			if (vsn_ != Vsn::k2)
				ok = Fail("vsn 1.0.0 text frame is not an object");
		}
		else if (depth_ == 1)
		{
			if (NextSlot() != Slot::kIgnore)
				ok = Fail("an envelope field is an array");
		}
		else if (capturing_)
			ok = writer_.StartArray();
		++depth_;
		return ok;
	}
	bool
	EndArray(rapidjson::SizeType)
	{
		--depth_;
		return !capturing_ || writer_.EndArray();
	}

private:
	/* A scalar: written out inside the payload, checked against its slot directly in the root */
	template <typename Write>
	bool
	Forward(Write write)
	{
		if (depth_ >= 2)
			return !capturing_ || write();
		return Scalar();
	}

	/* The slot of the top-level value that is starting now (called once per value). */
	Slot
	NextSlot()
	{
		if (vsn_ == Vsn::k1)
			return key_slot_;
		static constexpr Slot kPositions[] = {Slot::kJoinRef, Slot::kRef, Slot::kTopic,
		                                      Slot::kEvent, Slot::kPayload};
		size_t i = index_++;
		return i < std::size(kPositions) ? kPositions[i] : Slot::kIgnore;
	}

	/* A bool or number directly inside the root: fine only where it is ignored. */
	bool
	Scalar()
	{
		if (depth_ == 0)
			return Fail("root is not a container");
		return NextSlot() == Slot::kIgnore || Fail("envelope field has the wrong type");
	}

	/*
	 * Start writing the payload object. A repeated v1 "payload" key starts over
	 * (the last one wins, as with the map Jason builds upstream). The payload is
	 * never longer than the frame (the writer drops whitespace and never expands
	 * an escape), so one reservation avoids every reallocation.
	 */
	bool
	BeginPayload()
	{
		msg_.payload.clear();
		msg_.payload.reserve(frame_size_);
		writer_.Reset(sink_);
		capturing_ = true;
		return writer_.StartObject();
	}

	bool
	Fail(const char *reason)
	{
		reason_ = reason;
		return false;
	}

	Vsn vsn_;
	Inbound &msg_;
	size_t frame_size_;
	StringSink sink_;
	SinkWriter writer_;
	int depth_ = 0;
	size_t index_ = 0;              /* v2: position of the next top-level element */
	Slot key_slot_ = Slot::kIgnore; /* v1: slot named by the last top-level key */
	bool capturing_ = false;
	unsigned seen_ = 0;
	const char *reason_ = nullptr;
};

/* SAX handler that only checks: UTF-8 of decoded strings, depth, and the root's type. */
class ValidateHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, ValidateHandler>
{
public:
	bool root_is_object = false;
	const char *reason = nullptr;

	bool
	Default()
	{
		return true;
	}
	bool
	String(const char *s, rapidjson::SizeType n, bool)
	{
		return json::NoSurrogates(s, n) || Fail("lone surrogate escape in a string");
	}
	bool
	Key(const char *s, rapidjson::SizeType n, bool copy)
	{
		return String(s, n, copy);
	}
	bool
	RawNumber(const char *s, rapidjson::SizeType n, bool)
	{
		return json::RawNumberFinite(s, n) || Fail("number beyond double's range");
	}
	bool
	StartObject()
	{
		if (depth_ == 0)
			root_is_object = true;
		return Enter();
	}
	bool
	EndObject(rapidjson::SizeType)
	{
		--depth_;
		return true;
	}
	bool
	StartArray()
	{
		return Enter();
	}
	bool
	EndArray(rapidjson::SizeType)
	{
		--depth_;
		return true;
	}

private:
	bool
	Enter()
	{
		return ++depth_ <= kMaxJsonDepth || Fail("JSON nested too deeply");
	}
	bool
	Fail(const char *why)
	{
		reason = why;
		return false;
	}

	int depth_ = 0;
};

/* Check that text is one complete JSON value (an object if asked); nullopt when it is. */
std::optional<std::string>
CheckJson(std::string_view text, bool want_object)
{
	ViewStream in(text);
	ValidateHandler handler;
	rapidjson::Reader reader;
	rapidjson::ParseResult r = reader.Parse<kSaxFlags>(in, handler);
	if (!r)
		return ParseFailure(r, handler.reason);
	if (!in.AtEnd())
		return std::string("NUL byte after the JSON value");
	if (want_object && !handler.root_is_object)
		return std::string("not a JSON object");
	return std::nullopt;
}

} // namespace

Result<Inbound>
DecodeText(std::string_view frame, Vsn vsn)
{
	Inbound msg;
	ViewStream in(frame);
	TextHandler handler(vsn, msg, frame.size());
	rapidjson::Reader reader;
	rapidjson::ParseResult r = reader.Parse<kSaxFlags>(in, handler);
	if (!r)
		return Malformed(ParseFailure(r, handler.Reason()));
	/* The Reader treats a NUL byte as the end of input; anything after it is junk. */
	if (!in.AtEnd())
		return Malformed("NUL byte after the JSON value");
	if (!handler.Complete())
		return Malformed(vsn == Vsn::k1 ? "vsn 1.0.0 message lacks topic, event, payload or ref"
		                                : "vsn 2.0.0 message has fewer than 5 elements");
	return msg;
}

Result<Inbound>
DecodeBinary(std::string_view frame)
{
	if (frame.empty())
		return Malformed("empty binary frame");
	const auto *b = reinterpret_cast<const unsigned char *>(frame.data());
	if (b[0] != kKindUserBroadcastPush)
		return Malformed("unsupported binary kind " + std::to_string(b[0]));
	if (frame.size() < kKind3HeaderBytes)
		return Malformed("truncated binary header");

	size_t join_ref_len = b[1], ref_len = b[2], topic_len = b[3], event_len = b[4], meta_len = b[5];
	uint8_t encoding = b[6];
	if (encoding != kEncodingBinary && encoding != kEncodingJson)
		return Malformed("unknown payload encoding " + std::to_string(encoding));
	/* At most 7 + 5 * 255 bytes: no overflow to worry about. */
	size_t payload_off =
	    kKind3HeaderBytes + join_ref_len + ref_len + topic_len + event_len + meta_len;
	if (payload_off > frame.size())
		return Malformed("binary field lengths run past the end of the frame");

	size_t off = kKind3HeaderBytes;
	auto take = [&](size_t n)
	{
		std::string_view s = frame.substr(off, n);
		off += n;
		return s;
	};
	std::string_view join_ref = take(join_ref_len);
	std::string_view ref = take(ref_len);
	std::string_view topic = take(topic_len);
	std::string_view user_event = take(event_len);
	std::string_view meta = take(meta_len);
	std::string_view payload = frame.substr(payload_off);

	/* These reappear inside text frames (replies, v1 fan-out): they must be UTF-8. */
	if (!json::ValidUtf8(join_ref) || !json::ValidUtf8(ref) || !json::ValidUtf8(topic) ||
	    !json::ValidUtf8(user_event))
		return Malformed("binary header string is not valid UTF-8");
	/* realtime-js sends {"persist": true | {"ttl": N}} (broadcast/persist.hpp reads it) */
	if (!meta.empty())
	{
		if (auto err = CheckJson(meta, true))
			return Malformed("metadata: " + *err);
	}
	/* Subscribers JSON.parse a kind-4 payload with encoding 1: it must parse. */
	if (encoding == kEncodingJson)
	{
		if (auto err = CheckJson(payload, false))
			return Malformed("payload: " + *err);
	}

	Inbound msg;
	/* realtime-js writes `join_ref ?? ''`: an empty field means there was none. */
	if (!join_ref.empty())
		msg.join_ref.emplace(join_ref);
	if (!ref.empty())
		msg.ref.emplace(ref);
	msg.topic.assign(topic);
	msg.event = "broadcast";
	msg.user_broadcast = true;
	msg.meta.assign(meta);
	msg.user_event.assign(user_event);
	msg.encoding = encoding;
	msg.user_payload.assign(payload);
	return msg;
}

std::string
EncodeText(Vsn vsn, const std::optional<std::string> &join_ref,
           const std::optional<std::string> &ref, std::string_view topic, std::string_view event,
           std::string_view payload_json)
{
	std::string out;
	/* Exact unless a string needs escapes; the punctuation fits in 48 bytes. */
	out.reserve(payload_json.size() + topic.size() + event.size() +
	            (join_ref ? join_ref->size() : 0) + (ref ? ref->size() : 0) + 48);
	if (vsn == Vsn::k1)
	{
		out += "{\"topic\":";
		AppendQuoted(out, topic);
		out += ",\"event\":";
		AppendQuoted(out, event);
		out += ",\"payload\":";
		out += payload_json;
		out += ",\"ref\":";
		AppendRef(out, ref);
		out += '}';
	}
	else
	{
		out += '[';
		AppendRef(out, join_ref);
		out += ',';
		AppendRef(out, ref);
		out += ',';
		AppendQuoted(out, topic);
		out += ',';
		AppendQuoted(out, event);
		out += ',';
		out += payload_json;
		out += ']';
	}
	return out;
}

Result<std::string>
EncodeUserBroadcast(std::string_view topic, std::string_view user_event,
                    std::string_view metadata_json, uint8_t encoding, std::string_view payload)
{
	if (topic.size() > kMaxFieldBytes)
		return Error{ErrorCode::kInvalidArgument, "topic longer than 255 bytes"};
	if (user_event.size() > kMaxFieldBytes)
		return Error{ErrorCode::kInvalidArgument, "event longer than 255 bytes"};
	if (metadata_json.size() > kMaxFieldBytes)
		return Error{ErrorCode::kInvalidArgument, "metadata longer than 255 bytes"};
	if (encoding != kEncodingBinary && encoding != kEncodingJson)
		return Error{ErrorCode::kInvalidArgument, "unknown payload encoding"};

	/*
	 * realtime-js 2.119.0 (_decodeUserBroadcast) reads sizes at bytes 1..3 and
	 * the encoding at byte 4, the strings from byte 5, the payload to the end.
	 */
	std::string out;
	out.reserve(kKind4HeaderBytes + topic.size() + user_event.size() + metadata_json.size() +
	            payload.size());
	out += static_cast<char>(kKindUserBroadcast);
	out += static_cast<char>(topic.size());
	out += static_cast<char>(user_event.size());
	out += static_cast<char>(metadata_json.size());
	out += static_cast<char>(encoding);
	out += topic;
	out += user_event;
	out += metadata_json;
	out += payload;
	return out;
}

std::string
UserBroadcastPayload(std::string_view event, std::string_view payload_json,
                     std::string_view meta_json)
{
	std::string out;
	out.reserve(event.size() + payload_json.size() + meta_json.size() + 56);
	out += "{\"type\":\"broadcast\",\"event\":";
	AppendQuoted(out, event);
	out += ",\"payload\":";
	out += payload_json;
	if (!meta_json.empty())
	{
		out += ",\"meta\":";
		out += meta_json;
	}
	out += '}';
	return out;
}

namespace
{

/* A SemVer numeric identifier: digits, no leading zero unless it is "0". */
bool
NumericId(std::string_view s)
{
	if (s.empty() || (s.size() > 1 && s[0] == '0'))
		return false;
	for (char c : s)
		if (c < '0' || c > '9')
			return false;
	return true;
}

/* Dot-separated non-empty [0-9A-Za-z-] identifiers; numeric ones without leading zeros if asked. */
bool
Identifiers(std::string_view s, bool numeric_no_leading_zero)
{
	size_t start = 0;
	while (true)
	{
		size_t dot = s.find('.', start);
		std::string_view id = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
		if (id.empty())
			return false;
		bool numeric = true;
		for (char c : id)
		{
			bool digit = c >= '0' && c <= '9';
			bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
			if (!digit && !alpha)
				return false;
			numeric = numeric && digit;
		}
		if (numeric && numeric_no_leading_zero && !NumericId(id))
			return false;
		if (dot == std::string_view::npos)
			return true;
		start = dot + 1;
	}
}

} // namespace

/*
 * Phoenix parses vsn with Elixir's Version.parse (strict SemVer 2.0) and
 * matches "~> 1.0.0" / "~> 2.0.0", i.e. >= X.0.0 and < X.1.0-0: so 1.0.7 and
 * 2.0.1-rc.1 match, 2.0.0-rc (below 2.0.0), 2.1.0, 1.0 and 01.0.0 do not.
 */
std::optional<Vsn>
ParseVsn(std::optional<std::string_view> value)
{
	if (!value)
		return Vsn::k1;
	std::string_view v = *value;

	std::string_view build;
	if (size_t plus = v.find('+'); plus != std::string_view::npos)
	{
		build = v.substr(plus + 1);
		if (!Identifiers(build, false))
			return std::nullopt;
		v = v.substr(0, plus);
	}
	bool pre = false;
	if (size_t dash = v.find('-'); dash != std::string_view::npos)
	{
		if (!Identifiers(v.substr(dash + 1), true))
			return std::nullopt;
		pre = true;
		v = v.substr(0, dash);
	}

	size_t d1 = v.find('.');
	size_t d2 = d1 == std::string_view::npos ? d1 : v.find('.', d1 + 1);
	if (d2 == std::string_view::npos)
		return std::nullopt;
	std::string_view major = v.substr(0, d1);
	std::string_view minor = v.substr(d1 + 1, d2 - d1 - 1);
	std::string_view patch = v.substr(d2 + 1);
	if (!NumericId(major) || !NumericId(minor) || !NumericId(patch))
		return std::nullopt;
	if (minor != "0" || (pre && patch == "0"))
		return std::nullopt;
	if (major == "1")
		return Vsn::k1;
	if (major == "2")
		return Vsn::k2;
	return std::nullopt;
}

std::string
SystemPayload(std::string_view extension, std::string_view status, std::string_view message,
              std::string_view sub_topic)
{
	std::string out = R"({"extension":)";
	json::AppendQuoted(out, extension);
	out += R"(,"status":)";
	json::AppendQuoted(out, status);
	out += R"(,"message":)";
	json::AppendQuoted(out, message);
	out += R"(,"channel":)";
	json::AppendQuoted(out, sub_topic);
	out += "}";
	return out;
}

} // namespace rt::fanout
