/*
 * broadcast.cpp: frames for one broadcast, built once (any thread).
 */
#include "broadcast/broadcast.hpp"

#include "protocol/protocol.hpp"

namespace rt::fanout
{

std::shared_ptr<Delivery>
MakeUserBroadcast(std::string routing_key, std::string_view topic, std::string_view event,
                  uint8_t encoding, std::string_view payload, std::string_view meta_json)
{
	auto d = std::make_shared<Delivery>();
	d->routing_key = std::move(routing_key);
	Result<std::string> bin = EncodeUserBroadcast(topic, event, meta_json, encoding, payload);
	if (bin.ok())
		d->v2 = MakeFrame(Opcode::kBinary, bin.value());
	if (encoding == kEncodingJson)
		d->v1 = MakeFrame(Opcode::kText,
		                  EncodeText(Vsn::k1, std::nullopt, std::nullopt, topic, "broadcast",
		                             UserBroadcastPayload(event, payload, meta_json)));
	return d;
}

std::shared_ptr<Delivery>
MakeTextBroadcast(std::string routing_key, std::string_view topic, std::string_view payload_json)
{
	return MakeTextEvent(std::move(routing_key), topic, "broadcast", payload_json);
}

std::shared_ptr<Delivery>
MakeTextEvent(std::string routing_key, std::string_view topic, std::string_view event,
              std::string_view payload_json)
{
	auto d = std::make_shared<Delivery>();
	d->routing_key = std::move(routing_key);
	d->v2 = MakeFrame(Opcode::kText,
	                  EncodeText(Vsn::k2, std::nullopt, std::nullopt, topic, event, payload_json));
	d->v1 = MakeFrame(Opcode::kText,
	                  EncodeText(Vsn::k1, std::nullopt, std::nullopt, topic, event, payload_json));
	return d;
}

} // namespace rt::fanout
