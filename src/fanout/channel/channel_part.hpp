/*
 * channel_part.hpp: what a feature of a channel is to the socket that carries
 * it (ChannelPart), and what the socket offers its parts (ChannelHost).
 *
 * A phx_join's config asks for features: broadcast, presence,
 * postgres_changes, a private channel. Each is one ChannelPart with the same
 * small interface (join, joined, inbound push, token refresh, leave); the
 * session only routes messages to its parts and owns what they share (the
 * channel's topic, token and join, the send queue). A new feature adds a part
 * and a state member of Channel (channel.hpp), not lines in session.cpp.
 *
 * Shard thread only: parts run inside the socket's callbacks and reach the
 * world through their ChannelHost (the Session), never through a wsi.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/json.hpp"
#include "channel/loss_notice.hpp"

namespace rt::fanout
{

struct Channel;
struct Config;
struct Delivery;
struct Frame;
class Hub;
struct Inbound;
struct ShardMetrics;
class Tenant;

/* The phx_reply payload of a request that succeeded with nothing to say. */
inline constexpr std::string_view kReplyOkEmpty = R"({"status":"ok","response":{}})";

/* The phx_reply payload of a refused request: {"status":"error","response":{"reason":...}}. */
inline std::string
ReplyErrorReason(std::string_view reason)
{
	std::string out = R"({"status":"error","response":{"reason":)";
	json::AppendQuoted(out, reason);
	out += "}}";
	return out;
}

/* What the socket of a channel does for its parts. */
class ChannelHost
{
public:
	/* A function any thread may call: its argument runs on the socket's shard, if it still exists.
	 */
	using Poster = std::function<void(std::function<void(ChannelHost &)>)>;

	virtual uint64_t session_id() const = 0;
	virtual int shard_index() const = 0;
	virtual Tenant &tenant() const = 0;
	/* The server's settings (flags). */
	virtual const Config &config() const = 0;
	/* The hub of every shard (any thread may post to a shard through it). */
	virtual Hub &hub() const = 0;
	/* The upgrade's x-* headers as a JSON object, for RLS (request.headers). */
	virtual const std::string &headers_json() const = 0;
	/* This socket's counters for its tenant on this shard. */
	virtual ShardMetrics &Metrics() = 0;
	virtual Poster MakePoster() = 0;

	/* A phx_reply on the channel to the message with this ref. */
	virtual void ReplyTo(const Channel &ch, const std::optional<std::string> &ref,
	                     std::string_view payload_json) = 0;
	/* A push of event on the channel, to this client only. */
	virtual void PushTo(const Channel &ch, std::string_view event,
	                    std::string_view payload_json) = 0;
	/* Whether the socket speaks vsn 1.0.0 (else 2.0.0): which frame of a Delivery it takes. */
	virtual bool UsesV1() const = 0;
	/* A fan-out frame for this client on ch, under the send queue's caps (a drop is a loss). */
	virtual void SendFrame(Channel &ch, std::shared_ptr<const Frame> frame, LossPart part) = 0;
	/* ch missed n messages of part: told now or within a second (PROTOCOL.md 3.10). */
	virtual void NoteLost(Channel &ch, LossPart part, LossReason reason, uint64_t n,
	                      int64_t now_ms) = 0;
	/* Fan a delivery out to every shard, as the tenant's (the sender's shard first). */
	virtual void Publish(std::shared_ptr<Delivery> d) = 0;
	/* End the channel with a system error; ch is gone afterwards. */
	virtual void ShutdownChannel(Channel &ch, std::string_view message) = 0;

	/* Keep m until the channel's check answers (Channel::Busy). */
	virtual void Hold(Channel &ch, Inbound &m) = 0;
	/* Handle what the channel of topic held, now that it is no longer busy. */
	virtual void ReleaseHeld(const std::string &topic) = 0;
	/* The joined channel of topic with this generation, or nullptr (left, joined again). */
	virtual Channel *FindChannel(const std::string &topic, uint64_t gen) = 0;
	/* A join that waited (kWaiting) is decided: refused with refusal, or joined if empty. */
	virtual void JoinDecided(Channel &ch, const std::string &refusal) = 0;

protected:
	~ChannelHost() = default;
};

/* How a part takes a join. */
enum class JoinStep
{
	kDone,    /* configured; the join may be answered */
	kWaiting, /* asked something (a read check): the answer calls JoinDecided */
	kRefused, /* the join is refused with JoinConfig::refusal */
};

/* The join being configured, as its parts see it. */
struct JoinConfig
{
	const rapidjson::Value *config = nullptr; /* the join payload's "config", if any */
	std::string response; /* members of the ok reply's "response" object, comma-separated */
	std::string refusal;  /* with kRefused: the reply's reason */

	/* config.<name> (a part's options), or nullptr when absent. */
	const rapidjson::Value *
	Options(const char *name) const
	{
		return config ? json::Member(*config, name) : nullptr;
	}
};

/*
 * One feature of a channel. Parts are stateless (one instance serves every
 * channel); what a channel needs remembered lives in its Channel.
 */
class ChannelPart
{
public:
	/* event: the inbound event this part handles ("broadcast", "presence"), or empty */
	explicit ChannelPart(std::string_view event = {}) : event_(event) {}
	virtual ~ChannelPart() = default;
	std::string_view
	Event() const
	{
		return event_;
	}
	/* A phx_join: read this part's options; the channel is not joined yet. */
	virtual JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) = 0;
	/* The join was answered ok; false when the part ended the channel. */
	virtual bool
	Joined(ChannelHost &, Channel &)
	{
		return true;
	}
	/* An inbound message of this part's Event() on a joined channel. */
	virtual void
	Push(ChannelHost &, Channel &, Inbound &)
	{
	}
	/* The channel's verified access_token and claims were replaced. */
	virtual void
	TokenRefreshed(ChannelHost &, Channel &)
	{
	}
	/* The channel ends (leave, replaced, shut down, socket closed). */
	virtual void
	Leave(ChannelHost &, Channel &)
	{
	}

private:
	std::string_view event_;
};

} // namespace rt::fanout
