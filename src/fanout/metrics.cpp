/*
 * metrics.cpp: Prometheus text for GET /metrics (any shard's thread).
 */
#include "metrics.hpp"

#include "hub.hpp"
#include "pg_changes_engine.hpp"
#include "ring_reader.hpp"
#include "shard.hpp"

#include <cstdio>

namespace rt::fanout
{

namespace
{

const char *const kPrimitiveNames[kPrimitives] = {"broadcast", "presence", "postgres_changes",
                                                  "control"};
const char *const kDropNames[kDropReasons] = {"slow_client", "payload_too_large", "not_authorized",
                                              "held_overflow", "rate_limited"};
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

std::string
RenderMetrics(const Hub &hub)
{
	ShardMetrics sum;
	uint64_t inbox_dropped = 0;
	for (const auto &s : hub.shards())
	{
		const ShardMetrics &m = s->metrics();
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
		inbox_dropped += s->inbox_dropped();
	}

	std::string out;
	out.reserve(8192);
	Writer w(out);
	w.Value("realtime_connections_connected", "gauge", "WebSocket connections open now.",
	        sum.connections.Get());
	w.Value("realtime_connections_total", "counter", "WebSocket connections accepted.",
	        sum.connections_total.Get());
	w.Value("realtime_channels_joined", "gauge", "Channels joined now, over all connections.",
	        sum.channels.Get());
	w.Head("realtime_channel_joins_total", "counter", "Channel joins answered, by result.");
	w.Line("realtime_channel_joins_total", Label("result", "ok"), sum.joins_ok.Get());
	w.Line("realtime_channel_joins_total", Label("result", "refused"), sum.joins_refused.Get());

	struct
	{
		const char *name, *help;
		const std::array<Counter, kPrimitives> &c;
	} per_primitive[] = {
	    {"realtime_messages_in_total", "Messages received from clients, by primitive.",
	     sum.in_messages},
	    {"realtime_bytes_in_total", "Bytes of messages received from clients, by primitive.",
	     sum.in_bytes},
	    {"realtime_messages_out_total", "Messages queued to clients, by primitive.",
	     sum.out_messages},
	    {"realtime_bytes_out_total", "Bytes queued to clients (WebSocket frames), by primitive.",
	     sum.out_bytes},
	};
	for (const auto &f : per_primitive)
	{
		w.Head(f.name, "counter", f.help);
		for (size_t i = 0; i < kPrimitives; i++)
			w.Line(f.name, Label("primitive", kPrimitiveNames[i]), f.c[i].Get());
	}
	w.Head("realtime_messages_dropped_total", "counter",
	       "Messages not delivered, by reason (shard_inbox_full: a shard fell behind).");
	for (size_t i = 0; i < kDropReasons; i++)
		w.Line("realtime_messages_dropped_total", Label("reason", kDropNames[i]),
		       sum.dropped[i].Get());
	w.Line("realtime_messages_dropped_total", Label("reason", "shard_inbox_full"), inbox_dropped);

	w.Value("realtime_presence_topics", "gauge", "Topics with at least one tracked presence.",
	        hub.presence.topics());

	if (const RingReader *ring = hub.ring)
	{
		w.Value("realtime_ring_attached", "gauge", "1 when the sidecar reads the ring.",
		        ring->attached() ? 1 : 0);
		w.Value("realtime_ring_messages_total", "counter",
		        "Broadcast messages read from the ring (realtime.send).", ring->messages());
		w.Value("realtime_ring_changes_total", "counter",
		        "Row changes read from the ring (Postgres Changes).", ring->changes());
		w.Value("realtime_ring_records_lost_total", "counter",
		        "Ring records overwritten before the sidecar read them (gaps).", ring->lost());
		w.Value("realtime_ring_lag_bytes", "gauge",
		        "Bytes written to the ring and not yet read by the sidecar.", ring->lag_bytes());
	}
	if (const PgChangesEngine *engine = hub.changes)
		w.Value("realtime_postgres_changes_delivered_total", "counter",
		        "Postgres Changes pushes to channels.", engine->delivered());

	if (hub.authorizer != nullptr)
	{
		const AuthMetrics &a = hub.auth_metrics;
		uint64_t answered = 0;
		w.Head("realtime_authorizer_checks_total", "counter",
		       "Private-channel authorization checks answered, by status.");
		for (size_t i = 0; i < a.answered.size(); i++)
		{
			answered += a.answered[i].Get();
			w.Line("realtime_authorizer_checks_total", Label("status", kAuthStatusNames[i]),
			       a.answered[i].Get());
		}
		uint64_t submitted = a.submitted.load(std::memory_order_relaxed);
		w.Value("realtime_authorizer_queue", "gauge",
		        "Authorization checks submitted and not answered yet.",
		        submitted > answered ? submitted - answered : 0);
		const char *h = "realtime_authorizer_latency_seconds";
		w.Head(h, "histogram", "Time from submitting a check to its answer.");
		uint64_t cum = 0;
		char le[32];
		for (size_t b = 0; b < a.latency.size(); b++)
		{
			cum += a.latency[b].Get();
			if (b < AuthMetrics::kBuckets.size())
				snprintf(le, sizeof(le), "%g", AuthMetrics::kBuckets[b]);
			else
				snprintf(le, sizeof(le), "+Inf");
			w.Line("realtime_authorizer_latency_seconds_bucket", Label("le", le), cum);
		}
		char sumtxt[64];
		snprintf(sumtxt, sizeof(sumtxt), "realtime_authorizer_latency_seconds_sum %.6f\n",
		         static_cast<double>(a.latency_sum_us.Get()) / 1e6);
		out += sumtxt;
		w.Line("realtime_authorizer_latency_seconds_count", "", cum);
	}
	return out;
}

} // namespace rt::fanout
