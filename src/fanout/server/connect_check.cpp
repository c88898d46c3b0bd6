/*
 * connect_check.cpp: WebSocket upgrade checks (shard thread).
 */
#include "server/connect_check.hpp"

#include "base/json.hpp"

#include <cstring>

namespace rt::fanout
{

std::string
ErrorBody(std::string_view message)
{
	std::string out = R"({"error":)";
	json::AppendQuoted(out, message);
	out += "}";
	return out;
}

namespace
{

const char *
StatusText(int status)
{
	switch (status)
	{
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

} // namespace

std::string
HeaderValue(struct lws *wsi, enum lws_token_indexes token)
{
	int len = lws_hdr_total_length(wsi, token);
	if (len <= 0)
		return {};
	std::string out(static_cast<size_t>(len) + 1, '\0');
	int n = lws_hdr_copy(wsi, out.data(), len + 1, token);
	if (n < 0)
		return {};
	out.resize(static_cast<size_t>(n));
	return out;
}

std::string
CustomHeaderValue(struct lws *wsi, const char *name_with_colon)
{
	int nlen = static_cast<int>(strlen(name_with_colon));
	int len = lws_hdr_custom_length(wsi, name_with_colon, nlen);
	if (len <= 0)
		return {};
	std::string out(static_cast<size_t>(len) + 1, '\0');
	int n = lws_hdr_custom_copy(wsi, out.data(), len + 1, name_with_colon, nlen);
	if (n < 0)
		return {};
	out.resize(static_cast<size_t>(n));
	return out;
}

std::string
HttpResponse(int status, std::string_view content_type, std::string_view body, bool close)
{
	std::string out = "HTTP/1.1 " + std::to_string(status) + " " + StatusText(status) + "\r\n";
	if (!content_type.empty())
	{
		out += "content-type: ";
		out += content_type;
		out += "\r\n";
	}
	out += "content-length: " + std::to_string(body.size()) + "\r\n";
	out += "access-control-allow-origin: *\r\n";
	if (close)
		out += "connection: close\r\n";
	out += "\r\n";
	out += body;
	return out;
}

ConnectCheck
CheckConnect(const UpgradeRequest &req, const TenantConfig *tenant, int64_t now)
{
	ConnectCheck c;
	const std::string &path = req.path;
	if (path != "/realtime/v1/websocket" && path != "/socket/websocket" &&
	    path != "/realtime/v1/websocket/" && path != "/socket/websocket/")
	{
		c.status = 404;
		c.body = ErrorBody("Not found");
		return c;
	}

	/* vsn is checked by the transport before anything else: 403, empty body */
	std::optional<Vsn> vsn =
	    ParseVsn(req.vsn ? std::optional<std::string_view>(*req.vsn) : std::nullopt);
	if (!vsn)
	{
		c.status = 403;
		return c;
	}
	c.vsn = *vsn;

	/* the tenant (PROTOCOL.md 1.4 rows 1 and 2; 403 for an unknown one: section 0) */
	if (tenant == nullptr)
	{
		c.status = 403;
		c.body = R"({"error":"Tenant not found","code":"TenantNotFound"})";
		return c;
	}
	if (tenant->suspended)
	{
		c.status = 403;
		c.body = ErrorBody("Realtime was disabled for this tenant");
		return c;
	}

	/* x-api-key header wins over the apikey query parameter */
	c.token = !req.x_api_key.empty() ? req.x_api_key : req.apikey.value_or("");
	c.headers_json = req.x_headers_json;
	if (c.token.empty())
	{
		c.status = 401;
		c.body = ErrorBody("API key is missing");
		return c;
	}

	Result<JwtClaims> claims = VerifyJwt(c.token, tenant->jwt_keys, now);
	if (!claims.ok())
	{
		c.status = 401;
		/* the HTTP error says only "Token has expired", without the seconds */
		const std::string &m = claims.error().message;
		c.body = ErrorBody(m.starts_with("Token has expired") ? "Token has expired" : m);
		return c;
	}
	c.claims = std::move(claims.value());
	return c;
}

} // namespace rt::fanout
