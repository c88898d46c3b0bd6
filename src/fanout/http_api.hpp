/*
 * http_api.hpp: plain HTTP on the WebSocket port: /healthz and the REST
 * broadcast endpoints (PROTOCOL.md 4.6, 4.7).
 *
 * Shard thread: called from the lws protocol callback of the shard that
 * accepted the connection.
 */
#pragma once

#include <libwebsockets.h>

#include <cstddef>
#include <string>

namespace rt::fanout
{

class Shard;
struct SessionSlot;

/* One HTTP request being received (POST bodies arrive in pieces). */
struct HttpRequest
{
	std::string path;
	std::string token;   /* Bearer token or apikey header */
	bool single = false; /* POST /api/broadcast/:topic/events/:event (PROTOCOL.md 4.7) */
	std::string topic;   /* single: sub_topic */
	std::string event;   /* single: event */
	bool is_private = false;
	bool binary = false; /* single: application/octet-stream body */
	std::string body;
	bool too_large = false;
};

int HttpOnRequest(Shard &shard, struct lws *wsi, SessionSlot *slot, const char *uri);
int HttpOnBody(Shard &shard, struct lws *wsi, SessionSlot *slot, const char *in, size_t len);
int HttpOnBodyComplete(Shard &shard, struct lws *wsi, SessionSlot *slot);
void HttpFree(SessionSlot *slot);

} // namespace rt::fanout
