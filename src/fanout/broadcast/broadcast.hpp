/*
 * broadcast.hpp: a broadcast serialized once, in the frames each kind of
 * subscriber receives (PROTOCOL.md 2.4).
 *
 * Folder broadcast/: this serializer and broadcast_part (the channel part
 * that handles the join's config.broadcast and client broadcast pushes: self,
 * ack, private write rights). The serializer is any thread; the part runs on the shard thread.
 *
 * Any thread; pure. Used by client pushes (session.cpp), the REST endpoints
 * (http_api.cpp) and, later, messages from the database.
 */
#pragma once

#include "server/hub.hpp"

#include <memory>
#include <string_view>

namespace rt::fanout
{

/*
 * A user broadcast (kind-3 push, REST single message, database message):
 * vsn 2 gets binary kind 4; vsn 1 gets the text form when the payload is
 * JSON and nothing when it is bytes. meta_json may be empty.
 */
std::shared_ptr<Delivery> MakeUserBroadcast(std::string routing_key, std::string_view topic,
                                            std::string_view event, uint8_t encoding,
                                            std::string_view payload, std::string_view meta_json);

/* A text broadcast (text push, REST batch): payload_json is the whole broadcast payload. */
std::shared_ptr<Delivery> MakeTextBroadcast(std::string routing_key, std::string_view topic,
                                            std::string_view payload_json);

/* A server event for every subscriber of a routing key (presence_diff): text frames. */
std::shared_ptr<Delivery> MakeTextEvent(std::string routing_key, std::string_view topic,
                                        std::string_view event, std::string_view payload_json);

} // namespace rt::fanout
