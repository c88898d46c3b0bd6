/*
 * upgrade_request.hpp: the parts of an HTTP request head that the connect
 * checks need, parsed from the raw bytes before libwebsockets sees them.
 *
 * Any thread; pure. Reading the head ourselves lets a refused upgrade be
 * answered after a delay (CONNECT_ERROR_BACKOFF_MS) without holding an lws
 * connection open, which lws 4.1 cannot do for an upgrade request.
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace rt::fanout
{

struct UpgradeRequest
{
	std::string method;
	std::string path;                  /* without the query string */
	bool websocket = false;            /* "Upgrade: websocket" present */
	std::optional<std::string> vsn;    /* query "vsn", URL-decoded */
	std::optional<std::string> apikey; /* query "apikey", URL-decoded */
	std::string x_api_key;             /* header "x-api-key" */
	std::string host;                  /* header "Host" */
	/* the x-* headers as a JSON object, names lower-cased: RLS sees it as request.headers */
	std::string x_headers_json = "{}";
};

enum class HeadStatus
{
	kIncomplete, /* no blank line yet */
	kComplete,
	kMalformed,
};

/*
 * Parse an HTTP/1.x request head (request line and headers up to the blank
 * line) at the start of bytes. head_len receives the head's length.
 */
HeadStatus ParseRequestHead(std::string_view bytes, UpgradeRequest &out, size_t &head_len);

} // namespace rt::fanout
