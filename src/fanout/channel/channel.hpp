/*
 * channel.hpp: one joined channel of a socket (PROTOCOL.md 3): what every
 * channel has (topic, join, token) and one state member per part
 * (channel_part.hpp) that the join asked for.
 *
 * Shard thread only: owned by its Session; the shard's registry and the
 * fan-out read it through the Session that owns it.
 */
#pragma once

#include "auth/auth_jwt.hpp"
#include "auth/private_part.hpp"
#include "broadcast/broadcast_part.hpp"
#include "broadcast/replay_part.hpp"
#include "broadcast/replication_ready_part.hpp"
#include "channel/loss_notice.hpp"
#include "postgres_changes/pg_changes_part.hpp"
#include "presence/presence_part.hpp"
#include "protocol/protocol.hpp"
#include "server/hub.hpp"

#include <cstdint>
#include <vector>
#include <optional>
#include <string>

namespace rt::fanout
{

struct Channel
{
	std::string topic; /* "realtime:<sub_topic>" as joined */
	std::string sub_topic;
	std::string routing_key;
	std::optional<std::string> join_ref;
	bool is_private = false;
	std::string token; /* this channel's JWT (join payload, else the socket's) */
	JwtClaims claims;  /* its verified claims; exp ends the channel (PROTOCOL.md 3.6) */
	uint64_t gen = 0;  /* join generation, unique per process: pushes find this join */

	/* the parts' state (channel_part.hpp) */
	BroadcastChannel broadcast;
	ReplayChannel replay;
	ReplicationReadyChannel replication_ready;
	PresenceChannel presence;
	PgChangesChannel pg_changes;
	PrivateChannel rights; /* public channels: everything allowed */

	/* what it missed and has not been told yet (loss_notice.hpp) */
	LossNotice lost;

	/*
	 * While the join's read check or a write check is out, this channel's later
	 * messages wait here in order (Phoenix handles one message of a channel at
	 * a time; the shard does not wait).
	 */
	bool joining = false;
	bool checking = false;
	bool in_registry = false;  /* the shard routes deliveries to it (a replaying join: early) */
	std::vector<Inbound> held; /* (a std::deque would hold 576 bytes even empty) */
	size_t held_bytes = 0;

	/* the join, until it is answered */
	std::optional<std::string> join_msg_ref;
	std::string join_response;

	bool
	Busy() const
	{
		return joining || checking;
	}
	/* Whether this channel receives deliveries of that kind. */
	bool
	Reads(DeliveryKind k) const
	{
		return (k == DeliveryKind::kPresence ? rights.read_presence : rights.read_broadcast) ==
		       Perm::kYes;
	}
};

} // namespace rt::fanout
