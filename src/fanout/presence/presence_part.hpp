/*
 * presence_part.hpp: the presence part of a channel (PROTOCOL.md 5): the
 * join's config.presence, the presence_state after the join, track and
 * untrack pushes with their limits, and the leave a closing channel makes.
 *
 * Shard thread only, through the socket's ChannelHost. The presence of all
 * topics of a tenant is one PresenceStore (presence_state.hpp, any shard).
 */
#pragma once

#include "channel/channel_part.hpp"

#include <cstdint>
#include <string>

namespace rt::fanout
{

/* A channel's presence (PROTOCOL.md 5.1). */
struct PresenceChannel
{
	bool enabled = false; /* config.presence.enabled, or turned on by a track */
	std::string key;      /* config.presence.key, or a UUID made at join */
	bool tracked = false;
	int64_t window_end_ms = 0; /* the client's presence window (5.5) */
	int window_count = 0;
};

class PresencePart final : public ChannelPart
{
public:
	PresencePart() : ChannelPart("presence") {}
	JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) override;
	bool Joined(ChannelHost &host, Channel &ch) override;
	void Push(ChannelHost &host, Channel &ch, Inbound &m) override;
	void Leave(ChannelHost &host, Channel &ch) override;

private:
	static void Track(ChannelHost &host, Channel &ch, const Inbound &m,
	                  const rapidjson::Value &payload);
	static void Untrack(ChannelHost &host, Channel &ch);
	static bool WithinClientWindow(ChannelHost &host, Channel &ch);
	static bool CountPresenceEvent(ChannelHost &host);
	static void PublishDiff(ChannelHost &host, const Channel &ch, const std::string &diff);
};

} // namespace rt::fanout
