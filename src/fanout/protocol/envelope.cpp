/*
 * envelope.cpp: the envelope of a frame the codec refused (see protocol.hpp).
 *
 * Any thread; pure functions. The frame is read again without the codec's
 * checks, so that a frame refused for its payload still yields the join_ref,
 * ref and topic its sender waits on. What is taken is checked on its own: it
 * is echoed in a text frame and must be valid UTF-8.
 */
#include "base/json.hpp"
#include "protocol/protocol.hpp"

#include <utility>

namespace rt::fanout
{

namespace
{

enum class Field : uint8_t
{
	kNone,
	kJoinRef,
	kRef,
	kTopic,
	kEvent,
};

Field
FieldForKey(std::string_view key)
{
	if (key == "join_ref")
		return Field::kJoinRef;
	if (key == "ref")
		return Field::kRef;
	if (key == "topic")
		return Field::kTopic;
	if (key == "event")
		return Field::kEvent;
	return Field::kNone;
}

bool
Echoable(std::string_view s)
{
	return json::ValidUtf8(s) && json::NoSurrogates(s.data(), s.size());
}

/*
 * A tolerant scanner over a frame's structure: strings end at the first
 * unescaped quote whatever their escapes hold, containers are skipped by
 * counting brackets outside strings, scalars run to the next delimiter.
 * Only the strings directly in the root are decoded, each on its own, so an
 * error anywhere in the payload (a lone surrogate escape, bytes that are not
 * UTF-8, a number out of range, any depth) leaves the envelope readable.
 */
class Scanner
{
public:
	explicit Scanner(std::string_view s) : s_(s) {}

	/* Skip whitespace; the next byte, or 0 at the end. */
	char
	Peek()
	{
		while (pos_ < s_.size() &&
		       (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
			pos_++;
		return pos_ < s_.size() ? s_[pos_] : '\0';
	}
	bool
	Eat(char c)
	{
		if (Peek() != c)
			return false;
		pos_++;
		return true;
	}
	/* A string token, quotes included; nullopt when unterminated or not a string. */
	std::optional<std::string_view>
	StringToken()
	{
		if (Peek() != '"')
			return std::nullopt;
		size_t start = pos_++;
		while (pos_ < s_.size())
		{
			char c = s_[pos_++];
			if (c == '\\')
				pos_++;
			else if (c == '"')
				return s_.substr(start, pos_ - start);
		}
		return std::nullopt;
	}
	/* Skip one value of any kind; false when the frame ends inside it. */
	bool
	SkipValue()
	{
		char c = Peek();
		if (c == '"')
			return StringToken().has_value();
		if (c != '{' && c != '[')
		{
			while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != ']' && s_[pos_] != '}')
				pos_++;
			return pos_ < s_.size();
		}
		size_t depth = 0;
		while (pos_ < s_.size())
		{
			c = s_[pos_];
			if (c == '"')
			{
				if (!StringToken())
					return false;
				continue;
			}
			pos_++;
			if (c == '{' || c == '[')
				depth++;
			else if ((c == '}' || c == ']') && --depth == 0)
				return true;
		}
		return false;
	}

private:
	std::string_view s_;
	size_t pos_ = 0;
};

/* The text a JSON string token stands for, if it is one that may be echoed. */
std::optional<std::string>
Decoded(std::string_view token)
{
	rapidjson::Document doc;
	if (!json::Parse(doc, token) || !doc.IsString())
		return std::nullopt;
	std::string out(doc.GetString(), doc.GetStringLength());
	if (!Echoable(out))
		return std::nullopt;
	return out;
}

/* Fill one envelope field from the value the scanner is at; false when the frame ends. */
bool
TakeField(Scanner &in, Field field, Envelope &env, bool &bad)
{
	if (field == Field::kNone || in.Peek() != '"')
		return in.SkipValue();
	std::optional<std::string_view> token = in.StringToken();
	if (!token)
		return false;
	std::optional<std::string> v = Decoded(*token);
	if (!v)
	{
		bad = true; /* a field we would echo is not valid: answer nothing */
		return true;
	}
	switch (field)
	{
	case Field::kJoinRef:
		env.join_ref = std::move(v);
		break;
	case Field::kRef:
		env.ref = std::move(v);
		break;
	case Field::kTopic:
		env.topic = std::move(*v);
		break;
	case Field::kEvent:
		env.event = std::move(*v);
		break;
	case Field::kNone:
		break;
	}
	return true;
}

std::optional<Envelope>
TextEnvelope(std::string_view frame, Vsn vsn)
{
	static constexpr Field kPositions[] = {Field::kJoinRef, Field::kRef, Field::kTopic,
	                                       Field::kEvent};
	Scanner in(frame);
	Envelope env;
	bool bad = false;
	bool topic = false;
	if (!in.Eat(vsn == Vsn::k2 ? '[' : '{'))
		return std::nullopt;
	for (size_t i = 0; vsn == Vsn::k1 || i < std::size(kPositions); i++)
	{
		Field field = Field::kNone;
		if (vsn == Vsn::k2)
			field = kPositions[i];
		else
		{
			std::optional<std::string_view> key = in.StringToken();
			if (!key || !in.Eat(':'))
				break;
			std::optional<std::string> name = Decoded(*key);
			field = name ? FieldForKey(*name) : Field::kNone;
		}
		topic = topic || (field == Field::kTopic && in.Peek() == '"');
		if (!TakeField(in, field, env, bad) || !in.Eat(','))
			break;
	}
	if (bad || !topic)
		return std::nullopt;
	return env;
}

/* Binary kind 3 (PROTOCOL.md 2.3): the header strings, whatever the payload holds. */
std::optional<Envelope>
BinaryEnvelope(std::string_view frame)
{
	constexpr size_t kHeader = kKind3HeaderBytes;
	if (frame.size() < kHeader || static_cast<uint8_t>(frame[0]) != kKindUserBroadcastPush)
		return std::nullopt;
	const auto *b = reinterpret_cast<const unsigned char *>(frame.data());
	size_t join_ref_len = b[1], ref_len = b[2], topic_len = b[3];
	if (kHeader + join_ref_len + ref_len + topic_len > frame.size())
		return std::nullopt;
	Envelope env;
	if (join_ref_len > 0)
		env.join_ref.emplace(frame.substr(kHeader, join_ref_len));
	if (ref_len > 0)
		env.ref.emplace(frame.substr(kHeader + join_ref_len, ref_len));
	env.topic.assign(frame.substr(kHeader + join_ref_len + ref_len, topic_len));
	env.event = "broadcast";
	return env;
}

} // namespace

std::optional<Envelope>
SalvageEnvelope(std::string_view frame, bool binary, Vsn vsn)
{
	std::optional<Envelope> env = binary ? BinaryEnvelope(frame) : TextEnvelope(frame, vsn);
	if (!env || !env->ref)
		return std::nullopt;
	if (!Echoable(*env->ref) || !Echoable(env->topic) || !Echoable(env->event) ||
	    (env->join_ref && !Echoable(*env->join_ref)))
		return std::nullopt;
	return env;
}

} // namespace rt::fanout
