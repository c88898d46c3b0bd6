/*
 * hub.hpp: the set of shards and the cross-shard fan-out of one message.
 *
 * Folder server/: the process and its sockets. main.cpp starts the tenants
 * and the shards; shard (one libwebsockets context and thread per core, owning
 * its sessions), listener (each shard's own SO_REUSEPORT socket),
 * handshake_gate and upgrade_request (a connection's request head, read before
 * libwebsockets owns it), connect_check (JWT and tenant at connect), http_api
 * (the REST endpoints, /healthz and /metrics) and this hub.
 * Threads: the main thread, one thread per shard; the hub is called from any.
 *
 * Publish runs on any thread (a shard's loop, the HTTP handler, later the ring
 * reader): the message is already serialized into immutable frames; each shard
 * gets one shared reference through its inbox and fans out to its own
 * subscribers. Messages from one publisher keep their order on every shard.
 */
#pragma once

#include "tenancy/config.hpp"
#include "channel/loss_notice.hpp"
#include "protocol/frame.hpp"

#include "tenancy/tenant.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace rt::fanout
{

class Shard;

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
	bool ready = false;     /* "Subscribed to PostgreSQL": the channel's changes flow */
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
	std::string routing_key;        /* Tenant::RoutingKey(sub_topic, private) */
	std::shared_ptr<Tenant> tenant; /* whose message (routing-key deliveries; pushes: may be) */
	DeliveryKind kind = DeliveryKind::kBroadcast;
	uint64_t exclude_session = 0;    /* the sender, when self is false; 0: nobody */
	std::shared_ptr<const Frame> v1; /* for vsn 1.0.0 sockets; null: not deliverable to them */
	std::shared_ptr<const Frame> v2; /* for vsn 2.0.0 sockets */
	std::vector<ChannelPush> pushes; /* when routing_key is empty */
	std::vector<std::string> shared;
	std::function<void(Shard &)> task; /* when set: run on the shard, nothing else */
	bool from_database = false;        /* realtime.send(): over the events limit it is a loss */
	std::string message_id; /* a stored message's id (meta.id): a replaying channel skips it */
	/* set: the message was not serialized; each channel it would reach notes this loss */
	std::optional<LossReason> lost;
};

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

	/* The current tenants (any thread): a snapshot that stays valid while held. */
	std::shared_ptr<const TenantSet> tenants() const;
	/* Main thread: replace the tenant set (start and drain around it: main.cpp). */
	void SetTenants(std::shared_ptr<const TenantSet> set);
	size_t tenant_count() const;

	bool
	Ready() const
	{
		return ready_.load(std::memory_order_acquire);
	}
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
	mutable std::mutex tenants_mu_;
	std::shared_ptr<const TenantSet> tenants_;
};

} // namespace rt::fanout
