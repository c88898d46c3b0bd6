/*
 * http_api.hpp: plain HTTP on the WebSocket port: /healthz and the REST
 * broadcast endpoint (PROTOCOL.md 4.6).
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
	std::string token; /* Bearer token or apikey header */
	std::string body;
	bool too_large = false;
};

int HttpOnRequest(Shard &shard, struct lws *wsi, SessionSlot *slot, const char *uri);
int HttpOnBody(Shard &shard, struct lws *wsi, SessionSlot *slot, const char *in, size_t len);
int HttpOnBodyComplete(Shard &shard, struct lws *wsi, SessionSlot *slot);
void HttpFree(SessionSlot *slot);

} // namespace rt::fanout
