/*
 * http_api.hpp: plain HTTP on the WebSocket port: /healthz and the REST
 * broadcast endpoints (PROTOCOL.md 4.6, 4.7).
 *
 * Shard thread: called from the lws protocol callback of the shard that
 * accepted the connection.
 */
#pragma once

#include "broadcast/message_store.hpp"
#include "broadcast/persist.hpp"

#include <libwebsockets.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rt::fanout
{

class Shard;
struct SessionSlot;
struct Delivery;
class Tenant;

/* One HTTP request being received (POST bodies arrive in pieces). */
struct HttpRequest
{
	std::shared_ptr<Tenant> tenant; /* from the Host (PROTOCOL.md 1.3); null: refused */
	int refused_status = 0;         /* ... with this answer */
	std::string refused_body;
	std::string path;
	std::string token;   /* Bearer token or apikey header */
	bool single = false; /* POST /api/broadcast/:topic/events/:event (PROTOCOL.md 4.7) */
	std::string topic;   /* single: sub_topic */
	std::string event;   /* single: event */
	bool is_private = false;
	bool binary = false; /* single: application/octet-stream body */
	PersistAsk persist;  /* single: ?persist=true or persist[ttl]=N (broadcast/persist.hpp) */
	StoreRequest stored; /* ... the row it becomes */
	std::string body;
	bool too_large = false;
	std::string headers_json = "{}"; /* for RLS: request.headers */

	/* private topics wait for their write checks (PROTOCOL.md 4.6, 4.7) */
	uint64_t wait_id = 0; /* Shard's key for this request while it waits; 0: not waiting */
	int checks_out = 0;
	std::map<std::string, int> verdicts; /* sub_topic -> AuthResult::Status (int) or -1: denied */
	std::vector<std::shared_ptr<Delivery>> out; /* fanned out in order once all answered */
	std::vector<std::pair<std::string, bool>> out_topics; /* each one's sub_topic, private */
	int status = 0;                                       /* set once answered */
	std::string response;
};

int HttpOnRequest(Shard &shard, struct lws *wsi, SessionSlot *slot, const char *uri);
int HttpOnBody(Shard &shard, struct lws *wsi, SessionSlot *slot, const char *in, size_t len);
int HttpOnBodyComplete(Shard &shard, struct lws *wsi, SessionSlot *slot);
/* A persisted message's row was committed (stored) or not: on the request's shard. */
void HttpOnStored(Shard &shard, uint64_t wait_id, const std::shared_ptr<Delivery> &d, bool stored);
/* The socket can take the answer of a request that waited for the authorizer. */
int HttpOnWritable(Shard &shard, struct lws *wsi, SessionSlot *slot);
void HttpFree(Shard &shard, SessionSlot *slot);

} // namespace rt::fanout
