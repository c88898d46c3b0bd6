/*
 * tenant.hpp: one tenant's runtime (PROTOCOL.md 1.3, 9.1) and the set of them.
 *
 * Folder tenancy/: config (flags, environment and the --config file; main
 * thread), this tenant (one tenant's components, limits and counters) and
 * rate_counter (the sliding windows of the per-tenant limits; any thread).
 *
 * A Tenant owns its database health check, authorizer, Postgres Changes
 * engine, ring reader, presence and rate counters. The main thread starts and
 * stops its components; shards read its counters and the components' thread-
 * safe entry points. Sessions and requests hold a shared_ptr to their tenant,
 * so a tenant removed by a reload lives until its last socket is gone.
 * Routing keys carry the tenant's key prefix: deliveries never cross tenants.
 */
#pragma once

#include "broadcast/message_store.hpp"
#include "tenancy/config.hpp"
#include "ops/metrics.hpp"
#include "presence/presence_state.hpp"
#include "tenancy/rate_counter.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rt::fanout
{

class Hub;
class DbHealth;
class Authorizer;
class PgChangesEngine;
class RingReader;
class StartupCheck;

/* What one shard counts for one tenant: written by that shard's thread only. */
struct TenantShard
{
	ShardMetrics metrics;
	LocalRate events;            /* channel events: the tenant's rate (PROTOCOL.md 3.7) */
	uint64_t ring_lost_told = 0; /* the ring reader's lost records this shard has told of */
};

class Tenant : public std::enable_shared_from_this<Tenant>
{
public:
	Tenant(TenantConfig config, Hub &hub);
	~Tenant();
	Tenant(const Tenant &) = delete;
	Tenant &operator=(const Tenant &) = delete;

	/* Main thread: start the components (health, authorizer, changes, ring, start-up check). */
	void Start();
	/* Main thread: stop them; the tenant's sockets must be gone or going. */
	void Stop();

	const TenantConfig &
	config() const
	{
		return config_;
	}
	const std::string &
	id() const
	{
		return config_.external_id;
	}
	/* The key of a room of this tenant (PROTOCOL.md 3.1): public and private differ. */
	std::string RoutingKey(std::string_view sub_topic, bool is_private) const;
	/* /healthz: started, and its database answers (when it has one). */
	bool Ready() const;
	/* The tenant's events per second over the last minute (every shard's counts). */
	double EventsAverage(int64_t now_ms) const;
	TenantShard &
	shard(int index)
	{
		return *shards_[static_cast<size_t>(index)];
	}
	const TenantShard &
	shard(int index) const
	{
		return *shards_[static_cast<size_t>(index)];
	}
	size_t
	shard_count() const
	{
		return shards_.size();
	}

	/* components, set by Start (null when not configured) */
	PgChangesEngine *changes = nullptr;
	Authorizer *authorizer = nullptr;
	MessageStore *store = nullptr; /* persisted broadcasts (broadcast/message_store.hpp) */
	StoreMetrics store_metrics;
	const RingReader *ring = nullptr;
	AuthMetrics auth_metrics;
	PresenceStore presence; /* every topic of the tenant (PROTOCOL.md 5) */
	RateCounter presence_rate;
	/* limits (PROTOCOL.md 9.1): sockets that joined a channel; joins; REST requests */
	std::atomic<int64_t> users{0};
	RateCounter join_rate;
	RateCounter http_rate;
	/* the events average is at or over the limit: set by shard 0 once a second */
	std::atomic<bool> events_limited{false};
	std::atomic<bool> db_ok{false};
	std::atomic<int64_t> sessions{0};       /* open sockets of this tenant */
	std::atomic<uint64_t> inbox_dropped{0}; /* its deliveries a full shard inbox refused */
	std::atomic<bool> draining{false};      /* removed or changed: no new sockets */

private:
	TenantConfig config_;
	Hub &hub_;
	std::string key_prefix_; /* id and instance: a restarted tenant's rooms are new ones */
	std::vector<std::unique_ptr<TenantShard>> shards_;
	std::atomic<bool> started_{false};
	std::unique_ptr<DbHealth> health_;
	std::unique_ptr<Authorizer> authorizer_;
	std::unique_ptr<MessageStore> store_;
	std::unique_ptr<PgChangesEngine> changes_;
	std::unique_ptr<RingReader> ring_;
	std::unique_ptr<StartupCheck> check_;
};

/* The configured tenants; replaced whole by a reload (Hub::SetTenants). */
struct TenantSet
{
	std::vector<std::shared_ptr<Tenant>> list;

	/* By exact id, or null. */
	std::shared_ptr<Tenant> Find(std::string_view id) const;
	/* By a Host's first label, ignoring ASCII case (a Host is case-insensitive), or null. */
	std::shared_ptr<Tenant> FindLabel(std::string_view label) const;
	/*
	 * The tenant a request's Host names (PROTOCOL.md 1.3); with exactly one
	 * tenant configured and no match, that tenant (section 0). Null: unknown.
	 */
	std::shared_ptr<Tenant> Resolve(std::string_view host) const;
	/*
	 * Log that host names no tenant, with the configured ids and the proxy hint.
	 * Any thread; at most one line a second (the rest are counted into the next
	 * one): a client sending bad Hosts cannot flood the log. The host is
	 * client text: non-printable bytes are escaped.
	 */
	void LogUnknownHost(const char *component, std::string_view host) const;
	/* "a, b": for log lines */
	std::string Ids() const;
};

/* The first label of a Host header, without the port (PROTOCOL.md 1.3). */
std::string_view TenantIdOfHost(std::string_view host);

} // namespace rt::fanout
