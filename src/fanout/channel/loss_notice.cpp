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

/* Per reason, in LossReason's order: its /metrics label and what the notice says of it
 * (upstream's text where upstream has one). */
struct ReasonText
{
	const char *name;
	const char *text;
};
constexpr ReasonText kReasons[kLossReasons] = {
    {"events_limit", "Too many messages per second"},
    {"slow_client", "the client is not reading fast enough"},
    {"shard_behind", "the server fell behind"},
    {"ring_gap", "the database stream lost messages before they were read"},
    {"rls_unknown", "the database could not be asked whether the subscriber may see them"},
    {"replay_limit", "more stored messages than the replay limit"},
    {"replay_wait", "too many live messages while the replay was read"},
};

const char *
LossReasonText(LossReason r)
{
	return kReasons[static_cast<size_t>(r)].text;
}

bool
AnyLost(const LossCounts &c)
{
	for (uint64_t n : c)
		if (n > 0)
			return true;
	return false;
}

} // namespace

const char *
LossReasonName(LossReason r)
{
	return kReasons[static_cast<size_t>(r)].name;
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
		if (AnyLost(c))
			return true;
	return false;
}

std::string
LossNotice::Take(std::string_view sub_topic, int64_t now_ms)
{
	for (size_t p = 0; p < kLossParts; p++)
	{
		LossCounts &c = counts_[p];
		if (!AnyLost(c))
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
