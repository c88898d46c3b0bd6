/*
 * private_part.hpp: the private-channel part (PROTOCOL.md 8): RLS on
 * realtime.messages decides what a channel joined with config.private may
 * read (checked at join, and again for a new token) and write (checked at the
 * first broadcast or track, by the parts that write).
 *
 * Shard thread only, through the socket's ChannelHost. The checks run on the
 * tenant's Authorizer thread; each answer comes back to the socket's shard
 * through the host's Poster, and the channel's messages wait meanwhile
 * (Channel::Busy, ChannelHost::Hold).
 */
#pragma once

#include "auth/authorizer.hpp"
#include "channel/channel_part.hpp"

#include <cstdint>
#include <string>

namespace rt::fanout
{

/* A permission of a private channel (PROTOCOL.md 8): not asked yet, or the answer. */
enum class Perm : int8_t
{
	kUnknown,
	kNo,
	kYes,
	kFailed, /* the check failed (database, policy error): asked again after a pause */
};

/* What RLS allowed a channel (public channels: everything). */
struct PrivateChannel
{
	Perm read_broadcast = Perm::kYes;
	Perm read_presence = Perm::kYes;
	Perm write_broadcast = Perm::kYes;
	Perm write_presence = Perm::kYes;
	int64_t write_failed_ms = 0;  /* when a write check last failed */
	uint64_t seq = 0;             /* bumped by a new token: answers for older claims are stale */
	bool token_check_out = false; /* a refresh's read check is out (its answer asks again) */
};

class PrivatePart final : public ChannelPart
{
public:
	JoinStep Join(ChannelHost &host, Channel &ch, JoinConfig &join) override;
	void TokenRefreshed(ChannelHost &host, Channel &ch) override;

	/*
	 * Whether the channel may write for ext (kAuthBroadcast, kAuthPresence)
	 * now; false also when a check was started (m is then held until it
	 * answers, ch.checking is set) or the answer was no.
	 */
	static bool MayWrite(ChannelHost &host, Channel &ch, Inbound &m, uint8_t ext);
	/* Whether a track on ch must first ask its presence write right. */
	static bool MustAskPresenceWrite(const Channel &ch);

private:
	/* Ask the authorizer; the answer comes back as Answered on the socket's shard. */
	static void Authorize(ChannelHost &host, Channel &ch, uint8_t read, uint8_t write,
	                      bool replay = false);
	static void Answered(ChannelHost &host, const std::string &topic, uint64_t gen, uint64_t seq,
	                     uint8_t read, uint8_t write, const AuthResult &r);
	static void JoinChecked(ChannelHost &host, Channel &ch, const AuthResult &r);
	static void WriteChecked(Channel &ch, uint64_t seq, uint8_t write, const AuthResult &r);
	static void TokenChecked(ChannelHost &host, Channel &ch, const AuthResult &r, uint8_t read);
};

} // namespace rt::fanout
