/*
 * connect_check.hpp: the checks a WebSocket upgrade passes before it is
 * accepted, and the HTTP answer when it does not (PROTOCOL.md 1.2-1.5);
 * small helpers to read request headers from lws.
 *
 * CheckConnect is pure (any thread); the lws helpers run on the shard thread
 * that owns the connection.
 */
#pragma once

#include "auth/auth_jwt.hpp"
#include "tenancy/config.hpp"
#include "protocol/protocol.hpp"
#include "server/upgrade_request.hpp"

#include <libwebsockets.h>

#include <memory>
#include <optional>
#include <string>

namespace rt::fanout
{

class Tenant;

struct ConnectCheck
{
	int status = 0;   /* 0: accepted; else the HTTP status of the refusal */
	std::string body; /* refusal body (JSON or empty) */
	Vsn vsn = Vsn::k1;
	std::string token;
	JwtClaims claims;
	std::string headers_json = "{}"; /* the upgrade's x-* headers (PROTOCOL.md 8) */
	std::shared_ptr<Tenant> tenant;  /* accepted: whose socket it is */
};

/* Run the checks in upstream order: path, vsn, token present, token valid. */
/* tenant: what the Host named (null: unknown, PROTOCOL.md 1.3). */
ConnectCheck CheckConnect(const UpgradeRequest &req, const TenantConfig *tenant, int64_t now);

/* {"error": message}: the body of a refused upgrade, and the one realtime-js's httpSend reads */
std::string ErrorBody(std::string_view message);

/* A complete HTTP/1.1 response, ready for a raw write. */
std::string HttpResponse(int status, std::string_view content_type, std::string_view body,
                         bool close);

/* Copy a header; empty when absent. */
std::string HeaderValue(struct lws *wsi, enum lws_token_indexes token);
std::string CustomHeaderValue(struct lws *wsi, const char *name_with_colon);

} // namespace rt::fanout
