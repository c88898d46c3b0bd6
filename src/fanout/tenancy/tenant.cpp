/*
 * tenant.cpp: see tenant.hpp. Start/Stop on the main thread; the rest on any.
 */
#include "tenancy/tenant.hpp"

#include "auth/authorizer.hpp"
#include "broadcast/broadcast.hpp"
#include "broadcast/persist.hpp"
#include "db/db_health.hpp"
#include "ops/diagnostics.hpp"
#include "server/hub.hpp"
#include "base/json.hpp"
#include "base/log.hpp"
#include "postgres_changes/pg_changes_engine.hpp"
#include "protocol/protocol.hpp"
#include "db/ring_reader.hpp"
#include "server/shard.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <cstdio>

namespace rt::fanout
{

namespace
{

std::atomic<uint64_t> g_next_instance{1};

/* SHOW realtime.ring_path of the tenant's database, or "" (logged). */
std::string
AskRingPath(const std::string &id, const std::string &conninfo)
{
	const char *keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
	const char *vals[] = {conninfo.c_str(), "5", "realtime-fanout ring_path", nullptr};
	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	std::string path;
	if (PQstatus(conn) != CONNECTION_OK)
	{
		Log(LogLevel::kWarning, "tenant",
		    "%s: cannot ask the database for realtime.ring_path (%s): no ring until "
		    "a reload; set ring_path in the file to skip the question",
		    id.c_str(), PQerrorMessage(conn));
		PQfinish(conn);
		return path;
	}
	PGresult *r = PQexec(conn, "SHOW realtime.ring_path");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
	{
		path = PQgetvalue(r, 0, 0);
		if (!path.empty() && path[0] != '/')
		{
			/* relative to the data directory, as the extension opens it */
			PGresult *dd = PQexec(conn, "SHOW data_directory");
			if (PQresultStatus(dd) == PGRES_TUPLES_OK && PQntuples(dd) == 1)
				path = std::string(PQgetvalue(dd, 0, 0)) + "/" + path;
			PQclear(dd);
		}
	}
	else
		Log(LogLevel::kWarning, "tenant",
		    "%s: SHOW realtime.ring_path failed (%s): is the extension preloaded? no ring",
		    id.c_str(), PQerrorMessage(conn));
	PQclear(r);
	PQfinish(conn);
	return path;
}

} // namespace

Tenant::Tenant(TenantConfig config, Hub &hub)
    : config_(std::move(config)), hub_(hub),
      key_prefix_(config_.external_id + "/" + std::to_string(g_next_instance.fetch_add(1)) + ":")
{
	for (size_t i = 0; i < hub.shards().size(); i++)
		shards_.push_back(std::make_unique<TenantShard>());
}

Tenant::~Tenant() { Stop(); }

std::string
Tenant::RoutingKey(std::string_view sub_topic, bool is_private) const
{
	std::string key = key_prefix_;
	key += is_private ? "private:" : "public:";
	key.append(sub_topic);
	return key;
}

bool
Tenant::Ready() const
{
	return started_.load(std::memory_order_acquire) &&
	       (config_.db_conninfo.empty() || db_ok.load(std::memory_order_acquire));
}

double
Tenant::EventsAverage(int64_t now_ms) const
{
	uint64_t sum = 0;
	for (const auto &s : shards_)
		sum += s->events.Sum(now_ms);
	return static_cast<double>(sum) * 1000.0 /
	       static_cast<double>(RateCounter::kBuckets * RateCounter::kBucketMs);
}

void
Tenant::Start()
{
	const TenantConfig &c = config_;
	const char *id = c.external_id.c_str();
	if (c.db_conninfo.empty())
	{
		Log(LogLevel::kWarning, "tenant",
		    "%s: no database: its database features are off, /healthz does not wait for "
		    "one",
		    id);
	}
	else
	{
		health_ = std::make_unique<DbHealth>(c.db_conninfo, db_ok);
		health_->Start();
		/* private channels: RLS on realtime.messages, asked over its own connection */
		authorizer_ = std::make_unique<Authorizer>(c.db_conninfo, &auth_metrics);
		authorizer = authorizer_.get();
		authorizer_->Start();
		/* persisted broadcasts: rows of realtime.messages, written in batches */
		store_ = std::make_unique<MessageStore>(c.db_conninfo, &store_metrics);
		store = store_.get();
		store_->Start();
	}
	std::string ring_path = c.ring_path;
	if (ring_path.empty() && c.ring_path_from_db)
	{
		ring_path = AskRingPath(c.external_id, c.db_conninfo);
		if (!ring_path.empty())
			Log(LogLevel::kInfo, "tenant", "%s: the database's ring is %s", id, ring_path.c_str());
	}
	/* Postgres Changes need both: subscriptions are checked in the database, changes come by ring
	 */
	if (!c.db_conninfo.empty() && !ring_path.empty())
	{
		changes_ = std::make_unique<PgChangesEngine>(c.db_conninfo, hub_, weak_from_this());
		changes = changes_.get();
	}
	/* what is wrong with the database and the ring, logged once; never delays the listen */
	if (!c.db_conninfo.empty())
	{
		check_ = std::make_unique<StartupCheck>(
		    c.db_conninfo, ring_path, hub_.config().config_file.empty() ? "" : c.external_id);
		check_->Start();
	}
	/* messages from realtime.send(): serialized once here, fanned out by every shard */
	if (!ring_path.empty())
	{
		std::weak_ptr<Tenant> weak = weak_from_this();
		ring_ = std::make_unique<RingReader>(
		    ring_path,
		    [this, weak](const RingMessage &m)
		    {
			    /* over the tenant's events limit, database broadcasts are dropped (4.8): the
			     * channels they would reach are told (PROTOCOL.md 3.10) */
			    if (events_limited.load(std::memory_order_relaxed))
			    {
				    auto lost = std::make_shared<Delivery>();
				    lost->routing_key = RoutingKey(m.topic, m.is_private);
				    lost->tenant = weak.lock();
				    lost->from_database = true;
				    lost->lost = LossReason::kEventsLimit;
				    hub_.Publish(lost, -1);
				    return;
			    }
			    std::string meta = StoredMeta(m.id, static_cast<int64_t>(m.stored_at_us));
			    auto d = MakeUserBroadcast(
			        RoutingKey(m.topic, m.is_private), "realtime:" + std::string(m.topic), m.event,
			        m.binary ? kEncodingBinary : kEncodingJson, m.payload, meta);
			    d->tenant = weak.lock();
			    d->from_database = true;
			    d->message_id = m.id;
			    hub_.Publish(d, -1);
		    },
		    changes_ ? RingReader::ChangeSink(
		                   [this](const RingChange &, std::string_view raw)
		                   { changes_->OnChange(raw.data(), static_cast<uint32_t>(raw.size())); })
		             : nullptr);
		ring = ring_.get();
		if (changes_)
		{
			changes_->SetReader(ring_.get());
			changes_->Start();
		}
		ring_->Start();
	}
	started_.store(true, std::memory_order_release);
	Log(LogLevel::kInfo, "tenant", "%s: started (database %s, ring %s%s)", id,
	    c.db_conninfo.empty() ? "none" : "yes", ring_path.empty() ? "none" : ring_path.c_str(),
	    c.suspended ? ", suspended" : "");
	Log(LogLevel::kInfo, "tenant", "%s: limits %s (profile %s)", id, LimitsText(c).c_str(),
	    c.limits_profile.c_str());
}

void
Tenant::Stop()
{
	if (!started_.exchange(false))
		return;
	if (authorizer_)
		authorizer_->Stop(); /* its last answers still reach running shards */
	if (store_)
		store_->Stop(); /* as the authorizer's */
	if (changes_)
		changes_->Stop(); /* first: the ring reader may be waiting for it */
	if (ring_)
		ring_->Stop();
	if (health_)
		health_->Stop();
	if (check_)
		check_->Join();
	Log(LogLevel::kInfo, "tenant", "%s: stopped", config_.external_id.c_str());
}

std::string_view
TenantIdOfHost(std::string_view host)
{
	if (host.starts_with("["))
	{
		/* an IPv6 literal: its first "label" is what precedes the first ':' inside */
		host.remove_prefix(1);
		return host.substr(0, host.find_first_of(":]"));
	}
	host = host.substr(0, host.find(':'));
	return host.substr(0, host.find('.'));
}

std::shared_ptr<Tenant>
TenantSet::Find(std::string_view id) const
{
	for (const auto &t : list)
		if (t->id() == id)
			return t;
	return nullptr;
}

std::shared_ptr<Tenant>
TenantSet::FindLabel(std::string_view label) const
{
	for (const auto &t : list)
		if (SameTenantId(t->id(), label))
			return t;
	return nullptr;
}

std::shared_ptr<Tenant>
TenantSet::Resolve(std::string_view host) const
{
	/* a Host is case-insensitive (RFC 9110 4.2.3): "A.example.com" names tenant "a" */
	std::shared_ptr<Tenant> t = FindLabel(TenantIdOfHost(host));
	if (t == nullptr && list.size() == 1)
		return list[0];
	return t; /* the caller refuses a draining one */
}

std::string
TenantSet::Ids() const
{
	std::string out;
	for (const auto &t : list)
	{
		if (!out.empty())
			out += ", ";
		out += t->id();
	}
	return out;
}

void
TenantSet::LogUnknownHost(const char *component, std::string_view host) const
{
	static std::atomic<int64_t> last_ms{0};
	static std::atomic<uint64_t> suppressed{0};
	int64_t now = NowMs();
	int64_t last = last_ms.load(std::memory_order_relaxed);
	if (now - last < 1000 || !last_ms.compare_exchange_strong(last, now))
	{
		suppressed.fetch_add(1, std::memory_order_relaxed);
		return;
	}
	std::string shown;
	for (unsigned char c : host.substr(0, 256))
	{
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			shown += static_cast<char>(c);
		else
		{
			char esc[8];
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			shown += esc;
		}
	}
	Log(LogLevel::kWarning, component,
	    "no tenant for Host \"%s\" (configured: %s): the tenant is the Host's first label; a "
	    "proxy in front must preserve the Host header (%llu more such requests since the last "
	    "line)",
	    shown.c_str(), Ids().c_str(),
	    static_cast<unsigned long long>(suppressed.exchange(0, std::memory_order_relaxed)));
}

} // namespace rt::fanout
