/*
 * private_part.cpp: read and write rights of private channels (PROTOCOL.md 8,
 * 3.5-3.6, 5.4), and upstream's words for each way a check can end.
 *
 * Shard thread only; Authorize hands the check to the tenant's Authorizer
 * and never waits for it.
 */
#include "auth/private_part.hpp"

#include "base/clock.hpp"
#include "base/log.hpp"
#include "channel/channel.hpp"
#include "tenancy/tenant.hpp"

namespace rt::fanout
{

namespace
{

/* a write check that failed (database, policy error) is asked again after this */
constexpr int64_t kWriteRetryMs = 2000;

/* The log code of a failed authorization (PROTOCOL.md 9.2). */
const char *
AuthStatusCode(AuthResult::Status st)
{
	switch (st)
	{
	case AuthResult::Status::kPolicyError:
		return "RlsPolicyError";
	case AuthResult::Status::kQueryCanceled:
		return "QueryCanceled";
	case AuthResult::Status::kMissingPartition:
		return "MissingPartition";
	case AuthResult::Status::kDbUnavailable:
		return "UnableToConnectToProject";
	default:
		return "UnableToSetPolicies";
	}
}

/*
 * What a token refresh reads again: broadcast, and presence when it is on or its
 * read right is known (a denied track learns it too): an old token's answer must
 * not outlive the refresh (PROTOCOL.md 3.6, 5.4).
 */
uint8_t
TokenReadBits(const Channel &ch)
{
	bool presence = ch.presence.enabled || ch.rights.read_presence != Perm::kUnknown;
	return kAuthBroadcast | (presence ? kAuthPresence : 0);
}

/* The refusal of a join whose read check ended with r (empty: it may be readable). */
std::string
JoinCheckRefusal(const Channel &ch, const AuthResult &r)
{
	switch (r.status)
	{
	case AuthResult::Status::kOk:
		return {};
	case AuthResult::Status::kDbUnavailable:
		return "UnableToConnectToProject: Realtime was unable to connect to the project database";
	case AuthResult::Status::kQueryCanceled:
		return "QueryCanceled: " + r.detail;
	case AuthResult::Status::kMissingPartition:
		return "MissingPartition: Realtime was unable to find the expected messages partition";
	default:
		Log(LogLevel::kWarning, "auth", "%s: read check topic=%s: %s", AuthStatusCode(r.status),
		    ch.sub_topic.c_str(), r.detail.c_str());
		return {}; /* a policy that raises refuses (PROTOCOL.md 3.5) */
	}
}

/* Why a channel ends after a refresh's read check ended with r (empty: it goes on). */
std::string
TokenCheckFailure(const Channel &ch, const AuthResult &r)
{
	switch (r.status)
	{
	case AuthResult::Status::kOk:
		return {};
	case AuthResult::Status::kQueryCanceled:
		return "Query was cancelled, please try again";
	case AuthResult::Status::kPolicyError:
		Log(LogLevel::kWarning, "auth", "RlsPolicyError: read check topic=%s: %s",
		    ch.sub_topic.c_str(), r.detail.c_str());
		return "You do not have permissions to read from this Channel topic: " + ch.sub_topic;
	default:
		return "Realtime was unable to connect to the project database";
	}
}

} // namespace

/* Private: the read check decides (PROTOCOL.md 8); presence only if it is on now. */
JoinStep
PrivatePart::Join(ChannelHost &host, Channel &ch, JoinConfig &join)
{
	if (!ch.is_private)
		return JoinStep::kDone;
	if (host.tenant().authorizer == nullptr)
	{
		join.refusal =
		    "UnableToConnectToProject: Realtime was unable to connect to the project database";
		return JoinStep::kRefused;
	}
	if (ch.sub_topic.find('\0') != std::string::npos)
	{
		/* no database text holds a NUL: it would end the topic early there */
		join.refusal = "Unauthorized: You do not have permissions to read from this Channel "
		               "topic: " +
		               ch.sub_topic;
		return JoinStep::kRefused;
	}
	PrivateChannel &p = ch.rights;
	p.read_broadcast = p.read_presence = Perm::kUnknown;
	p.write_broadcast = p.write_presence = Perm::kUnknown;
	/* a replay reads the stored messages in the read check's transaction (replay_part.hpp) */
	Authorize(host, ch, kAuthBroadcast | (ch.presence.enabled ? kAuthPresence : 0), 0,
	          ch.replay.requested);
	return JoinStep::kWaiting;
}

/*
 * Private: read again with the new claims (the channel keeps its current
 * rights until the answer); writes are asked again lazily.
 */
void
PrivatePart::TokenRefreshed(ChannelHost &host, Channel &ch)
{
	if (!ch.is_private || host.tenant().authorizer == nullptr)
		return;
	ch.rights.seq++;
	ch.rights.write_broadcast = ch.rights.write_presence = Perm::kUnknown;
	/* one check out at a time: a flood of refreshes must not flood the database */
	if (!ch.rights.token_check_out)
	{
		ch.rights.token_check_out = true;
		Authorize(host, ch, TokenReadBits(ch), 0);
	}
}

bool
PrivatePart::MayWrite(ChannelHost &host, Channel &ch, Inbound &m, uint8_t ext)
{
	if (!ch.is_private)
		return true;
	Perm &p = ext == kAuthPresence ? ch.rights.write_presence : ch.rights.write_broadcast;
	if (p == Perm::kFailed && NowMs() - ch.rights.write_failed_ms >= kWriteRetryMs)
		p = Perm::kUnknown;
	if (p != Perm::kUnknown)
		return p == Perm::kYes;
	if (host.tenant().authorizer == nullptr)
		return false;
	/* presence also needs its read right to see the diffs (PROTOCOL.md 5.4) */
	uint8_t read =
	    ext == kAuthPresence && ch.rights.read_presence == Perm::kUnknown ? kAuthPresence : 0;
	ch.checking = true;
	Authorize(host, ch, read, ext);
	host.Hold(ch, m);
	return false;
}

bool
PrivatePart::MustAskPresenceWrite(const Channel &ch)
{
	Perm p = ch.rights.write_presence;
	return ch.is_private &&
	       (p == Perm::kUnknown ||
	        (p == Perm::kFailed && NowMs() - ch.rights.write_failed_ms >= kWriteRetryMs));
}

void
PrivatePart::Authorize(ChannelHost &host, Channel &ch, uint8_t read, uint8_t write, bool replay)
{
	AuthRequest req;
	req.sub_topic = ch.sub_topic;
	req.role = ch.claims.role;
	req.claims_json = ch.claims.claims_json;
	req.sub = ch.claims.sub;
	req.headers_json = host.headers_json();
	req.read = read;
	req.write = write;
	if (replay)
		req.replay = ReplayQuery{ch.replay.since_ms, ch.replay.limit};
	ChannelHost::Poster post = host.MakePoster();
	uint64_t gen = ch.gen, seq = ch.rights.seq;
	std::string topic = ch.topic;
	req.done = [post, gen, seq, read, write, topic](AuthResult r)
	{
		post([gen, seq, read, write, topic, r = std::move(r)](ChannelHost &h)
		     { Answered(h, topic, gen, seq, read, write, r); });
	};
	host.tenant().authorizer->Submit(std::move(req));
}

/* A check of the channel joined as topic with gen answered (on the socket's shard). */
void
PrivatePart::Answered(ChannelHost &host, const std::string &topic, uint64_t gen, uint64_t seq,
                      uint8_t read, uint8_t write, const AuthResult &r)
{
	Channel *ch = host.FindChannel(topic, gen);
	if (ch == nullptr)
		return; /* left, or joined again since */
	if (ch->joining)
		JoinChecked(host, *ch, r);
	else if (write != 0)
		WriteChecked(*ch, seq, write, r);
	else
	{
		ch->rights.token_check_out = false;
		if (seq == ch->rights.seq)
			TokenChecked(host, *ch, r, read);
		else
		{
			/* refreshed again meanwhile: one check for the newest claims */
			ch->rights.token_check_out = true;
			Authorize(host, *ch, TokenReadBits(*ch), 0);
		}
	}
	host.ReleaseHeld(topic);
}

void
PrivatePart::JoinChecked(ChannelHost &host, Channel &ch, const AuthResult &r)
{
	std::string refusal = JoinCheckRefusal(ch, r);
	if (r.status == AuthResult::Status::kOk)
	{
		ch.rights.read_broadcast = (r.read_ok & kAuthBroadcast) ? Perm::kYes : Perm::kNo;
		if (ch.presence.enabled)
			ch.rights.read_presence = (r.read_ok & kAuthPresence) ? Perm::kYes : Perm::kNo;
	}
	bool readable = ch.rights.read_broadcast == Perm::kYes || ch.rights.read_presence == Perm::kYes;
	/* a replay needs the broadcast read right itself (PROTOCOL.md 3.3 step 11) */
	if (ch.replay.requested && ch.rights.read_broadcast != Perm::kYes)
		readable = false;
	if (refusal.empty() && !readable)
		refusal = "Unauthorized: You do not have permissions to read from this Channel topic: " +
		          ch.sub_topic;
	if (refusal.empty() && ch.replay.requested)
	{
		if (r.replay_failed)
		{
			Log(LogLevel::kWarning, "auth", "UnableToReplayMessages: topic=%s: %s",
			    ch.sub_topic.c_str(), r.detail.c_str());
			refusal = "UnableToReplayMessages: Realtime was unable to replay messages";
		}
		ch.replay.rows = r.replay_rows;
		ch.replay.stored = r.replay_stored;
	}
	host.JoinDecided(ch, refusal);
}

void
PrivatePart::WriteChecked(Channel &ch, uint64_t seq, uint8_t write, const AuthResult &r)
{
	ch.checking = false;
	if (seq != ch.rights.seq)
		return; /* asked with an older token; the held messages ask again */
	bool ok = r.status == AuthResult::Status::kOk;
	if (!ok)
	{
		Log(LogLevel::kWarning, "auth", "%s: write check failed topic=%s: %s",
		    AuthStatusCode(r.status), ch.sub_topic.c_str(), r.detail.c_str());
		ch.rights.write_failed_ms = NowMs();
	}
	Perm p = !ok ? Perm::kFailed : Perm::kNo;
	if (write & kAuthBroadcast)
		ch.rights.write_broadcast = ok && (r.write_ok & kAuthBroadcast) ? Perm::kYes : p;
	if (write & kAuthPresence)
	{
		ch.rights.write_presence = ok && (r.write_ok & kAuthPresence) ? Perm::kYes : p;
		if (ok && ch.rights.read_presence == Perm::kUnknown)
			ch.rights.read_presence = (r.read_ok & kAuthPresence) ? Perm::kYes : Perm::kNo;
	}
}

void
PrivatePart::TokenChecked(ChannelHost &host, Channel &ch, const AuthResult &r, uint8_t read)
{
	std::string why = TokenCheckFailure(ch, r);
	if (why.empty())
	{
		Perm b = (r.read_ok & kAuthBroadcast) ? Perm::kYes : Perm::kNo;
		/* not asked: it was unknown at the refresh, anything since came with these claims */
		Perm p = ch.rights.read_presence;
		if (read & kAuthPresence)
			p = (r.read_ok & kAuthPresence) ? Perm::kYes : Perm::kNo;
		if ((ch.rights.read_broadcast == Perm::kYes && b != Perm::kYes) ||
		    (ch.rights.read_presence == Perm::kYes && p != Perm::kYes))
			why = "You no longer have permission to read from this Channel topic: " + ch.sub_topic;
		else if (b != Perm::kYes && p != Perm::kYes)
			why = "You do not have permissions to read from this Channel topic: " + ch.sub_topic;
		ch.rights.read_broadcast = b;
		ch.rights.read_presence = p;
	}
	if (!why.empty())
		host.ShutdownChannel(ch, why);
}

} // namespace rt::fanout
