/*
 * metrics.cpp: Prometheus text for GET /metrics (any shard's thread).
 */
#include "ops/metrics.hpp"

#include "server/hub.hpp"
#include "postgres_changes/pg_changes_engine.hpp"
#include "db/ring_reader.hpp"
#include "server/shard.hpp"

#include <cstdio>
#include <vector>

namespace rt::fanout
{

namespace
{

const char *const kPrimitiveNames[kPrimitives] = {"broadcast", "presence", "postgres_changes",
                                                  "control"};
const char *const kDropNames[kDropReasons] = {
    "slow_client",  "payload_too_large", "not_authorized", "held_overflow",
    "rate_limited", "malformed",         "unknown_event",  "not_stored"};
/* AuthResult::Status, in its order */
const char *const kAuthStatusNames[6] = {
    "ok", "policy_error", "query_canceled", "missing_partition", "db_unavailable", "error"};

class Writer
{
public:
	explicit Writer(std::string &out) : out_(out) {}

	void
	Head(const char *name, const char *type, const char *help)
	{
		out_ += "# HELP ";
		out_ += name;
		out_ += ' ';
		out_ += help;
		out_ += "\n# TYPE ";
		out_ += name;
		out_ += ' ';
		out_ += type;
		out_ += '\n';
	}
	void
	Line(const char *name, const std::string &labels, uint64_t v)
	{
		out_ += name;
		if (!labels.empty())
		{
			out_ += '{';
			out_ += labels;
			out_ += '}';
		}
		out_ += ' ';
		out_ += std::to_string(v);
		out_ += '\n';
	}
	void
	Value(const char *name, const char *type, const char *help, uint64_t v)
	{
		Head(name, type, help);
		Line(name, "", v);
	}

private:
	std::string &out_;
};

std::string
Label(const char *key, const char *value)
{
	std::string l = key;
	l += "=\"";
	l += value;
	l += '"';
	return l;
}

} // namespace

void
AuthMetrics::Answered(int status, int64_t latency_us)
{
	if (status >= 0 && static_cast<size_t>(status) < answered.size())
		answered[static_cast<size_t>(status)].Add();
	double s = static_cast<double>(latency_us) / 1e6;
	size_t b = 0;
	while (b < kBuckets.size() && s > kBuckets[b])
		b++;
	latency[b].Add();
	latency_sum_us.Add(static_cast<uint64_t>(latency_us < 0 ? 0 : latency_us));
}

namespace
{

/* One tenant's shard counters, added up. */
void
SumShards(const Tenant &t, ShardMetrics &sum)
{
	for (size_t k = 0; k < t.shard_count(); k++)
	{
		const ShardMetrics &m = t.shard(static_cast<int>(k)).metrics;
		sum.connections.Add(m.connections.Get());
		sum.connections_total.Add(m.connections_total.Get());
		sum.channels.Add(m.channels.Get());
		sum.joins_ok.Add(m.joins_ok.Get());
		sum.joins_refused.Add(m.joins_refused.Get());
		for (size_t i = 0; i < kPrimitives; i++)
		{
			sum.in_messages[i].Add(m.in_messages[i].Get());
			sum.in_bytes[i].Add(m.in_bytes[i].Get());
			sum.out_messages[i].Add(m.out_messages[i].Get());
			sum.out_bytes[i].Add(m.out_bytes[i].Get());
		}
		for (size_t i = 0; i < kDropReasons; i++)
			sum.dropped[i].Add(m.dropped[i].Get());
		for (size_t p = 0; p < kLossParts; p++)
			for (size_t r = 0; r < kLossReasons; r++)
				sum.lost[p][r].Add(m.lost[p][r].Get());
	}
}

} // namespace

namespace
{

/* One scrape: every tenant's figures, one metric family after the other */
class Scrape
{
public:
	explicit Scrape(const Hub &hub) : tenants_(TenantsOf(hub)), sums_(tenants_.size()), w_(out_)
	{
		for (size_t t = 0; t < tenants_.size(); t++)
		{
			SumShards(*tenants_[t], sums_[t]);
			tl_.push_back(Label("tenant", tenants_[t]->id().c_str()));
		}
		out_.reserve(8192 * (tenants_.size() + 1));
	}

	std::string
	Render()
	{
		Connections();
		Limits();
		Messages();
		Presence();
		Ring();
		PostgresChanges();
		Authorizer();
		Store();
		return std::move(out_);
	}

private:
	static std::vector<std::shared_ptr<Tenant>>
	TenantsOf(const Hub &hub)
	{
		std::shared_ptr<const TenantSet> set = hub.tenants();
		return set ? set->list : std::vector<std::shared_ptr<Tenant>>{};
	}

	/* tenant="<id>",key="value" */
	std::string
	With(size_t t, const char *key, const char *value) const
	{
		return tl_[t] + "," + Label(key, value);
	}

	void
	Limits()
	{
		const char *name = "realtime_tenant_limit";
		w_.Head(name, "gauge", "The limits in force, by the key of a --config entry's limits.");
		for (size_t t = 0; t < tenants_.size(); t++)
			for (const auto &[key, value] : LimitsInForce(tenants_[t]->config()))
				w_.Line(name, With(t, "limit", key), static_cast<uint64_t>(value));
	}

	void
	Connections()
	{
		struct
		{
			const char *name, *type, *help;
			Counter ShardMetrics::*field;
		} plain[] = {
		    {"realtime_connections_connected", "gauge", "WebSocket connections open now.",
		     &ShardMetrics::connections},
		    {"realtime_connections_total", "counter", "WebSocket connections accepted.",
		     &ShardMetrics::connections_total},
		    {"realtime_channels_joined", "gauge", "Channels joined now, over all connections.",
		     &ShardMetrics::channels},
		};
		for (const auto &f : plain)
		{
			w_.Head(f.name, f.type, f.help);
			for (size_t t = 0; t < tenants_.size(); t++)
				w_.Line(f.name, tl_[t], (sums_[t].*f.field).Get());
		}
		w_.Head("realtime_channel_joins_total", "counter", "Channel joins answered, by result.");
		for (size_t t = 0; t < tenants_.size(); t++)
		{
			w_.Line("realtime_channel_joins_total", With(t, "result", "ok"),
			        sums_[t].joins_ok.Get());
			w_.Line("realtime_channel_joins_total", With(t, "result", "refused"),
			        sums_[t].joins_refused.Get());
		}
	}

	void
	Messages()
	{
		struct
		{
			const char *name, *help;
			std::array<Counter, kPrimitives> ShardMetrics::*c;
		} per_primitive[] = {
		    {"realtime_messages_in_total", "Messages received from clients, by primitive.",
		     &ShardMetrics::in_messages},
		    {"realtime_bytes_in_total", "Bytes of messages received from clients, by primitive.",
		     &ShardMetrics::in_bytes},
		    {"realtime_messages_out_total", "Messages queued to clients, by primitive.",
		     &ShardMetrics::out_messages},
		    {"realtime_bytes_out_total",
		     "Bytes queued to clients (WebSocket frames), by primitive.", &ShardMetrics::out_bytes},
		};
		for (const auto &f : per_primitive)
		{
			w_.Head(f.name, "counter", f.help);
			for (size_t t = 0; t < tenants_.size(); t++)
				for (size_t i = 0; i < kPrimitives; i++)
					w_.Line(f.name, With(t, "primitive", kPrimitiveNames[i]),
					        (sums_[t].*f.c)[i].Get());
		}
		w_.Head("realtime_messages_dropped_total", "counter",
		        "Messages not delivered, by reason (shard_inbox_full: a shard fell behind).");
		for (size_t t = 0; t < tenants_.size(); t++)
		{
			for (size_t i = 0; i < kDropReasons; i++)
				w_.Line("realtime_messages_dropped_total", With(t, "reason", kDropNames[i]),
				        sums_[t].dropped[i].Get());
			w_.Line("realtime_messages_dropped_total", With(t, "reason", "shard_inbox_full"),
			        tenants_[t]->inbox_dropped.load(std::memory_order_relaxed));
		}
		const char *lost = "realtime_channel_messages_lost_total";
		w_.Head(lost, "counter",
		        "Messages a channel missed and was told of by a system message, by extension and "
		        "reason.");
		for (size_t t = 0; t < tenants_.size(); t++)
			for (size_t p = 0; p < kLossParts; p++)
				for (size_t r = 0; r < kLossReasons; r++)
					w_.Line(lost,
					        With(t, "extension", LossPartName(static_cast<LossPart>(p))) + "," +
					            Label("reason", LossReasonName(static_cast<LossReason>(r))),
					        sums_[t].lost[p][r].Get());
	}

	void
	Presence()
	{
		w_.Head("realtime_presence_topics", "gauge", "Topics with at least one tracked presence.");
		for (size_t t = 0; t < tenants_.size(); t++)
			w_.Line("realtime_presence_topics", tl_[t], tenants_[t]->presence.topics());
	}

	void
	Ring()
	{
		struct
		{
			const char *name, *type, *help;
			uint64_t (*get)(const RingReader &);
		} ring_families[] = {
		    {"realtime_ring_attached", "gauge", "1 when the sidecar reads the ring.",
		     [](const RingReader &r) -> uint64_t { return r.attached() ? 1 : 0; }},
		    {"realtime_ring_messages_total", "counter",
		     "Broadcast messages read from the ring (realtime.send).",
		     [](const RingReader &r) -> uint64_t { return r.messages(); }},
		    {"realtime_ring_changes_total", "counter",
		     "Row changes read from the ring (Postgres Changes).",
		     [](const RingReader &r) -> uint64_t { return r.changes(); }},
		    {"realtime_ring_records_lost_total", "counter",
		     "Ring records overwritten before the sidecar read them (gaps).",
		     [](const RingReader &r) -> uint64_t { return r.lost(); }},
		    {"realtime_ring_lag_bytes", "gauge",
		     "Bytes written to the ring and not yet read by the sidecar.",
		     [](const RingReader &r) -> uint64_t { return r.lag_bytes(); }},
		};
		for (const auto &f : ring_families)
		{
			bool head = false;
			for (size_t t = 0; t < tenants_.size(); t++)
			{
				const RingReader *ring = tenants_[t]->ring;
				if (ring == nullptr)
					continue;
				if (!head)
					w_.Head(f.name, f.type, f.help);
				head = true;
				w_.Line(f.name, tl_[t], f.get(*ring));
			}
		}
	}

	void
	PostgresChanges()
	{
		bool head = false;
		for (size_t t = 0; t < tenants_.size(); t++)
		{
			const PgChangesEngine *engine = tenants_[t]->changes;
			if (engine == nullptr)
				continue;
			if (!head)
				w_.Head("realtime_postgres_changes_delivered_total", "counter",
				        "Postgres Changes pushes to channels.");
			head = true;
			w_.Line("realtime_postgres_changes_delivered_total", tl_[t], engine->delivered());
		}
	}

	/* The message stores (broadcast/message_store.hpp): persisted broadcasts. */
	void
	Store()
	{
		std::vector<size_t> with;
		for (size_t t = 0; t < tenants_.size(); t++)
			if (tenants_[t]->store != nullptr)
				with.push_back(t);
		if (with.empty())
			return;
		w_.Head("realtime_store_messages_total", "counter",
		        "Persisted broadcasts written to realtime.messages, by result.");
		for (size_t t : with)
		{
			const StoreMetrics &m = tenants_[t]->store_metrics;
			w_.Line("realtime_store_messages_total", With(t, "result", "stored"),
			        m.stored.load(std::memory_order_relaxed));
			w_.Line("realtime_store_messages_total", With(t, "result", "failed"),
			        m.failed.load(std::memory_order_relaxed));
		}
		w_.Head("realtime_store_batches_total", "counter",
		        "COPY batches the message store ran (one round trip each).");
		for (size_t t : with)
			w_.Line("realtime_store_batches_total", tl_[t],
			        tenants_[t]->store_metrics.batches.load(std::memory_order_relaxed));
		w_.Head("realtime_store_queue", "gauge", "Persisted broadcasts waiting to be written.");
		for (size_t t : with)
			w_.Line("realtime_store_queue", tl_[t],
			        tenants_[t]->store_metrics.queued.load(std::memory_order_relaxed));
	}

	void
	Authorizer()
	{
		std::vector<size_t> authed;
		for (size_t t = 0; t < tenants_.size(); t++)
			if (tenants_[t]->authorizer != nullptr)
				authed.push_back(t);
		if (authed.empty())
			return;
		w_.Head("realtime_authorizer_checks_total", "counter",
		        "Private-channel authorization checks answered, by status.");
		for (size_t t : authed)
		{
			const AuthMetrics &a = tenants_[t]->auth_metrics;
			for (size_t i = 0; i < a.answered.size(); i++)
				w_.Line("realtime_authorizer_checks_total", With(t, "status", kAuthStatusNames[i]),
				        a.answered[i].Get());
		}
		w_.Head("realtime_authorizer_queue", "gauge",
		        "Authorization checks submitted and not answered yet.");
		for (size_t t : authed)
		{
			const AuthMetrics &a = tenants_[t]->auth_metrics;
			uint64_t answered = 0;
			for (size_t i = 0; i < a.answered.size(); i++)
				answered += a.answered[i].Get();
			uint64_t submitted = a.submitted.load(std::memory_order_relaxed);
			w_.Line("realtime_authorizer_queue", tl_[t],
			        submitted > answered ? submitted - answered : 0);
		}
		w_.Head("realtime_authorizer_latency_seconds", "histogram",
		        "Time from submitting a check to its answer.");
		for (size_t t : authed)
			LatencyHistogram(t, tenants_[t]->auth_metrics);
	}

	void
	LatencyHistogram(size_t t, const AuthMetrics &a)
	{
		uint64_t cum = 0;
		char le[32];
		for (size_t b = 0; b < a.latency.size(); b++)
		{
			cum += a.latency[b].Get();
			if (b < AuthMetrics::kBuckets.size())
				snprintf(le, sizeof(le), "%g", AuthMetrics::kBuckets[b]);
			else
				snprintf(le, sizeof(le), "+Inf");
			w_.Line("realtime_authorizer_latency_seconds_bucket", With(t, "le", le), cum);
		}
		char sumtxt[64];
		snprintf(sumtxt, sizeof(sumtxt), "%.6f", static_cast<double>(a.latency_sum_us.Get()) / 1e6);
		out_ += "realtime_authorizer_latency_seconds_sum{" + tl_[t] + "} " + sumtxt + "\n";
		w_.Line("realtime_authorizer_latency_seconds_count", tl_[t], cum);
	}

	std::vector<std::shared_ptr<Tenant>> tenants_;
	std::vector<ShardMetrics> sums_;
	std::vector<std::string> tl_; /* tenant="<id>" */
	std::string out_;
	Writer w_;
};

} // namespace

std::string
RenderMetrics(const Hub &hub)
{
	return Scrape(hub).Render();
}

} // namespace rt::fanout
