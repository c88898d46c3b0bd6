/*
 * hub.hpp: the set of shards and the cross-shard fan-out of one message.
 *
 * Publish runs on any thread (a shard's loop, the HTTP handler, later the ring
 * reader): the message is already serialized into immutable frames; each shard
 * gets one shared reference through its inbox and fans out to its own
 * subscribers. Messages from one publisher keep their order on every shard.
 */
#pragma once

#include "config.hpp"
#include "frame.hpp"

#include "metrics.hpp"
#include "presence_state.hpp"
#include "rate_counter.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace rt::fanout
{

class Shard;
class PgChangesEngine;
class Authorizer;
class RingReader;

/*
 * A push to one channel of one session (postgres_changes, system): its
 * shard finds the channel again by session id, topic and join generation
 * (gone or re-joined: dropped). The payload is head + shared[shared] + tail,
 * so channels that differ only in `ids` share the bytes of `data`.
 */
struct ChannelPush
{
	uint64_t session_id = 0;
	uint64_t gen = 0;
	std::string topic;
	const char *event = ""; /* static string */
	std::string head;       /* the payload's start, or all of it */
	int32_t shared = -1;    /* index into Delivery::shared; -1: none */
	std::string_view tail;  /* static string */
};

/* What a routing-key delivery is: private channels read each only with its permission. */
enum class DeliveryKind : uint8_t
{
	kBroadcast,
	kPresence, /* presence_diff */
};

/*
 * One message for every subscriber of a routing key, pushes to named
 * channels, or a task for the shard's thread (an answer from another thread).
 */
struct Delivery
{
	std::string routing_key; /* RoutingKey(sub_topic, private) */
	DeliveryKind kind = DeliveryKind::kBroadcast;
	uint64_t exclude_session = 0;    /* the sender, when self is false; 0: nobody */
	std::shared_ptr<const Frame> v1; /* for vsn 1.0.0 sockets; null: not deliverable to them */
	std::shared_ptr<const Frame> v2; /* for vsn 2.0.0 sockets */
	std::vector<ChannelPush> pushes; /* when routing_key is empty */
	std::vector<std::string> shared;
	std::function<void(Shard &)> task; /* when set: run on the shard, nothing else */
};

/* Public and private channels of one name are different rooms (PROTOCOL.md 3.1). */
std::string RoutingKey(std::string_view sub_topic, bool is_private);

class Hub
{
public:
	explicit Hub(const Config &config);
	~Hub();

	/* Start every shard's thread; false if a shard could not listen. */
	bool Start();
	/* Stop and join every shard. */
	void Stop();

	/*
	 * Fan out to all shards. from_shard is the calling shard's index (it
	 * delivers inline, without a queue hop) or -1 from other threads.
	 */
	void Publish(const std::shared_ptr<const Delivery> &d, int from_shard);
	/* Queue d for one shard (any thread). */
	void PostTo(int shard, std::shared_ptr<const Delivery> d);
	/* Run task on a shard's thread (any thread); never dropped for a full inbox. */
	void PostTask(int shard, std::function<void(Shard &)> task);

	/* Postgres Changes, when a database and a ring are configured; set before Start. */
	PgChangesEngine *changes = nullptr;
	/* RLS checks of private channels, when a database is configured; set before Start. */
	Authorizer *authorizer = nullptr;
	/* The ring reader, when a ring is configured (for /metrics); set before Start. */
	const RingReader *ring = nullptr;
	/* The authorizer's checks, counted by the authorizer (metrics.hpp). */
	AuthMetrics auth_metrics;
	/* Presence of every topic, shared by the shards (PROTOCOL.md 5). */
	PresenceStore presence;
	/* presence events of the tenant: tracks and presence_state pushes (PROTOCOL.md 5.5) */
	RateCounter presence_rate;
	/* tenant limits (PROTOCOL.md 9.1): sockets that joined a channel; joins; events */
	std::atomic<int64_t> users{0};
	RateCounter join_rate;
	RateCounter http_rate; /* REST broadcast requests */
	/* the events average is at or over the limit: set by shard 0 once a second */
	std::atomic<bool> events_limited{false};
	/* The tenant's events per second over the last minute (every shard's LocalRate). */
	double EventsAverage(int64_t now_ms) const;

	bool
	Ready() const
	{
		return ready_.load(std::memory_order_acquire);
	}
	/* Set by the database health check; /healthz needs it (when a database is configured). */
	std::atomic<bool> db_ok{false};

	const Config &
	config() const
	{
		return config_;
	}
	const std::vector<std::unique_ptr<Shard>> &
	shards() const
	{
		return shards_;
	}

private:
	const Config &config_;
	std::vector<std::unique_ptr<Shard>> shards_;
	std::atomic<bool> ready_{false};
};

} // namespace rt::fanout
