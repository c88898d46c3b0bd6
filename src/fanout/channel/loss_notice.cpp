/*
 * loss_notice.cpp: a channel's missed-message counts and their `system` notice.
 */
#include "channel/loss_notice.hpp"

#include "base/json.hpp"
#include "protocol/protocol.hpp"

namespace rt::fanout
{

namespace
{

/* What the notice says of each reason (upstream's text where upstream has one). */
const char *
LossReasonText(LossReason r)
{
	switch (r)
	{
	case LossReason::kEventsLimit:
		return "Too many messages per second";
	case LossReason::kSlowClient:
		return "the client is not reading fast enough";
	case LossReason::kShardBehind:
		return "the server fell behind";
	case LossReason::kRingGap:
		return "the database stream lost messages before they were read";
	}
	return "";
}

} // namespace

const char *
LossReasonName(LossReason r)
{
	switch (r)
	{
	case LossReason::kEventsLimit:
		return "events_limit";
	case LossReason::kSlowClient:
		return "slow_client";
	case LossReason::kShardBehind:
		return "shard_behind";
	case LossReason::kRingGap:
		return "ring_gap";
	}
	return "";
}

const char *
LossPartName(LossPart p)
{
	switch (p)
	{
	case LossPart::kBroadcast:
		return "broadcast";
	case LossPart::kPresence:
		return "presence";
	case LossPart::kPostgresChanges:
		return "postgres_changes";
	}
	return "";
}

bool
LossNotice::Pending() const
{
	for (const LossCounts &c : counts_)
		for (uint64_t n : c)
			if (n > 0)
				return true;
	return false;
}

std::string
LossNotice::Take(std::string_view sub_topic, int64_t now_ms)
{
	for (size_t p = 0; p < kLossParts; p++)
	{
		LossCounts &c = counts_[p];
		bool any = false;
		for (uint64_t n : c)
			any = any || n > 0;
		if (!any)
			continue;
		std::string payload = LossPayload(static_cast<LossPart>(p), c, sub_topic);
		c = {};
		last_sent_ms_ = now_ms;
		return payload;
	}
	return {};
}

std::string
LossPayload(LossPart part, const LossCounts &counts, std::string_view sub_topic)
{
	uint64_t total = 0;
	std::string why, reasons;
	for (size_t r = 0; r < kLossReasons; r++)
	{
		if (counts[r] == 0)
			continue;
		total += counts[r];
		LossReason reason = static_cast<LossReason>(r);
		if (!why.empty())
			why += "; ";
		why += LossReasonText(reason);
		if (!reasons.empty())
			reasons += ',';
		json::AppendQuoted(reasons, LossReasonName(reason));
		reasons += ':';
		reasons += std::to_string(counts[r]);
	}
	std::string message = std::to_string(total) +
	                      (total == 1 ? " message not delivered: " : " messages not delivered: ") +
	                      why;
	std::string out = SystemPayload(LossPartName(part), "error", message, sub_topic);
	out.pop_back(); /* the closing brace: the counts follow */
	out += R"(,"lost":)";
	out += std::to_string(total);
	out += R"(,"reasons":{)";
	out += reasons;
	out += "}}";
	return out;
}

} // namespace rt::fanout
