/*
 * http_api.cpp: /healthz and POST /api/broadcast (shard thread).
 *
 * Responses are written whole with one raw write and the transaction is then
 * completed, so keep-alive connections serve the next request.
 */
#include "server/http_api.hpp"

#include "auth/auth_jwt.hpp"
#include "auth/authorizer.hpp"
#include "base/uuid.hpp"
#include "broadcast/broadcast.hpp"
#include "broadcast/message_store.hpp"
#include "broadcast/persist.hpp"
#include "tenancy/tenant.hpp"
#include "server/connect_check.hpp"
#include "server/hub.hpp"
#include "base/json.hpp"
#include "base/log.hpp"
#include "ops/metrics.hpp"
#include "server/static_ui.hpp"
#include "protocol/protocol.hpp"
#include "server/shard.hpp"

#include <cstring>
#include <optional>
#include <vector>
#include <ctime>

namespace rt::fanout
{

namespace
{

bool
IsBroadcastPath(std::string_view p)
{
	return p == "/realtime/v1/api/broadcast" || p == "/api/broadcast";
}

/* "<prefix>/api/broadcast/<topic>/events/<event>": split into topic and event. */
bool
ParseSinglePath(std::string_view p, std::string &topic, std::string &event)
{
	for (std::string_view prefix : {"/realtime/v1/api/broadcast/", "/api/broadcast/"})
	{
		if (!p.starts_with(prefix))
			continue;
		std::string_view rest = p.substr(prefix.size());
		size_t ev = rest.rfind("/events/");
		if (ev == std::string_view::npos || ev == 0 || ev + 8 >= rest.size())
			return false;
		topic = std::string(rest.substr(0, ev));
		event = std::string(rest.substr(ev + 8));
		return true;
	}
	return false;
}

/* Write a complete response and finish the HTTP transaction. */
int
Respond(struct lws *wsi, int status, std::string_view body)
{
	std::string r = HttpResponse(status, body.empty() ? "" : "application/json", body, false);
	if (lws_write(wsi, reinterpret_cast<unsigned char *>(r.data()), r.size(), LWS_WRITE_HTTP) < 0)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int
RespondPreflight(struct lws *wsi)
{
	std::string r =
	    "HTTP/1.1 204 No Content\r\n"
	    "access-control-allow-origin: *\r\n"
	    "access-control-allow-methods: GET, POST, OPTIONS\r\n"
	    "access-control-allow-headers: authorization, apikey, content-type, x-client-info\r\n"
	    "content-length: 0\r\n\r\n";
	if (lws_write(wsi, reinterpret_cast<unsigned char *>(r.data()), r.size(), LWS_WRITE_HTTP) < 0)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* "Bearer <jwt>" (scheme case-insensitive) or the apikey header (PROTOCOL.md 4.6). */
std::string
RequestToken(struct lws *wsi)
{
	std::string auth = HeaderValue(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (auth.size() > 7)
	{
		std::string scheme = auth.substr(0, 7);
		for (char &c : scheme)
			c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
		if (scheme == "bearer ")
			return auth.substr(7);
	}
	return CustomHeaderValue(wsi, "apikey:");
}

/*
 * The tenant of a REST request, from its Host (PROTOCOL.md 1.3); on refusal,
 * the answer's status and body (PROTOCOL.md 0 and 4.6).
 */
std::shared_ptr<Tenant>
RequestTenant(Shard &shard, struct lws *wsi, int &status, std::string &body)
{
	std::string host = HeaderValue(wsi, WSI_TOKEN_HOST);
	std::shared_ptr<const TenantSet> set = shard.hub().tenants();
	std::shared_ptr<Tenant> t = set ? set->Resolve(host) : nullptr;
	if (t == nullptr || t->draining.load(std::memory_order_acquire))
	{
		if (set)
			set->LogUnknownHost("http", host);
		status = 403;
		body = R"({"error":"Tenant not found","code":"TenantNotFound"})";
		return nullptr;
	}
	if (t->config().suspended)
	{
		status = 403;
		body = R"({"message":"Tenant is suspended"})";
		return nullptr;
	}
	return t;
}

/* Validate a REST batch into req.out; returns the HTTP status and body (0: go on). */
std::pair<int, std::string>
Broadcast(HttpRequest &req)
{
	const TenantConfig &cfg = req.tenant->config();

	/* the DOM is serialized recursively below: refuse deep nesting before parsing */
	rapidjson::Document doc;
	if (!json::NestingWithin(req.body, kMaxJsonDepth))
		return {400, R"({"message":"JSON nested too deeply"})"};
	if (!json::Parse(doc, req.body) || !doc.IsObject())
		return {422, R"({"errors":{"messages":["can't be blank"]}})"};
	const rapidjson::Value *msgs = json::Member(doc, "messages");
	if (msgs == nullptr || !msgs->IsArray())
		return {422, R"({"errors":{"messages":["can't be blank"]}})"};

	/* validate every item first: one bad item rejects the whole batch */
	std::string errors = R"({"errors":{"messages":[)";
	bool bad = false;
	for (rapidjson::SizeType i = 0; i < msgs->Size(); i++)
	{
		const rapidjson::Value &m = (*msgs)[i];
		std::string e;
		auto add = [&e](const char *field, const char *msg)
		{
			if (!e.empty())
				e += ',';
			e += '"';
			e += field;
			e += R"(":[")";
			e += msg;
			e += R"("])";
		};
		std::optional<std::string_view> topic = json::String(m, "topic");
		std::optional<std::string_view> event = json::String(m, "event");
		const rapidjson::Value *payload = json::Member(m, "payload");
		if (!topic || topic->empty())
			add("topic", "can't be blank");
		if (!event || event->empty())
			add("event", "can't be blank");
		if (payload == nullptr || !payload->IsObject())
			add("payload", "can't be blank");
		else if (json::Stringify(*payload).size() > static_cast<size_t>(cfg.max_payload_bytes))
			add("payload", "Payload size exceeds tenant limit");
		if (i > 0)
			errors += ',';
		errors += '{' + e + '}';
		bad = bad || !e.empty();
	}
	errors += "]}}";
	if (bad)
		return {422, errors};

	for (const rapidjson::Value &m : msgs->GetArray())
	{
		bool is_private = json::Bool(m, "private").value_or(false);
		std::string sub_topic(*json::String(m, "topic"));
		std::string topic = "realtime:" + sub_topic;
		std::string payload = R"({"type":"broadcast","event":)";
		json::AppendQuoted(payload, *json::String(m, "event"));
		payload += R"(,"payload":)";
		payload += json::Stringify(*json::Member(m, "payload"));
		if (std::optional<std::string_view> id = json::String(m, "id"))
		{
			payload += R"(,"meta":{"id":)";
			json::AppendQuoted(payload, *id);
			payload += '}';
		}
		payload += '}';
		req.out.push_back(
		    MakeTextBroadcast(req.tenant->RoutingKey(sub_topic, is_private), topic, payload));
		req.out.back()->tenant = req.tenant;
		req.out_topics.emplace_back(std::move(sub_topic), is_private);
	}
	return {0, ""};
}

/* One message from the REST single endpoint into req.out (PROTOCOL.md 4.7). */
std::pair<int, std::string>
BroadcastSingle(HttpRequest &req)
{
	const TenantConfig &cfg = req.tenant->config();
	std::string payload;
	if (req.binary)
		payload = req.body;
	else
	{
		rapidjson::Document doc;
		std::string_view body = req.body.empty() ? std::string_view("{}") : req.body;
		if (!json::NestingWithin(body, kMaxJsonDepth))
			return {400, R"({"message":"JSON nested too deeply"})"};
		if (!json::Parse(doc, body))
			return {422, R"({"errors":{"payload":["is invalid"]}})"};
		payload = json::Stringify(doc);
		if (!doc.IsObject())
			payload = R"({"_json":)" + payload + "}"; /* non-objects arrive wrapped */
	}
	if (payload.size() > static_cast<size_t>(cfg.max_payload_bytes))
		return {422, R"({"errors":{"payload":["Payload size exceeds tenant limit"]}})"};
	std::string meta;
	if (req.persist.asked)
	{
		/* stored first (broadcast/persist.hpp): refused here, before any check */
		auto error = [](int status, std::string_view why) {
			return std::pair<int, std::string>{status, ErrorBody(why)};
		};
		if (!req.is_private)
			return error(400, kPersistPublic);
		if (!req.persist.valid)
			return error(400, kPersistInvalid);
		req.stored.id = NewUuid();
		req.stored.topic = req.topic;
		req.stored.event = req.event;
		req.stored.payload = payload;
		req.stored.binary = req.binary;
		req.stored.ttl_s = req.persist.ttl_s;
		if (std::optional<std::string> why = Unstorable(req.stored))
			return error(422, "UnableToPersistMessage: " + *why);
		if (req.tenant->store == nullptr)
			return error(503, kPersistFailed);
		req.stored.inserted_us = req.tenant->store->Stamp();
		meta = StoredMeta(req.stored.id, req.stored.inserted_us);
	}

	req.out.push_back(MakeUserBroadcast(
	    req.tenant->RoutingKey(req.topic, req.is_private), "realtime:" + req.topic, req.event,
	    req.binary ? kEncodingBinary : kEncodingJson, payload, meta));
	req.out.back()->message_id = req.stored.id;
	req.out.back()->tenant = req.tenant;
	req.out_topics.emplace_back(req.topic, req.is_private);
	return {0, ""};
}

/*
 * The value of query argument name (lws decodes %XX), or nullopt. Not
 * lws_get_urlarg_by_name: it gives up at the first argument longer than its
 * buffer, and realtime-js puts the apikey (a JWT) first.
 */
std::optional<std::string>
QueryArg(struct lws *wsi, std::string_view name)
{
	std::vector<char> buf(8192);
	for (int i = 0;; i++)
	{
		int n = lws_hdr_copy_fragment(wsi, buf.data(), static_cast<int>(buf.size()),
		                              WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0 && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) <= 0)
			return std::nullopt; /* no fragment i: the end */
		if (n < 0)
			continue; /* longer than any argument we read */
		std::string_view arg(buf.data(), static_cast<size_t>(n));
		if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=')
			return std::string(arg.substr(name.size() + 1));
	}
}

/*
 * A persisted single message that may be sent: stored first, then fanned out and answered
 * 202 (HttpOnStored); the request waits meanwhile (its wait_id is set).
 */
void
Persist(Shard &shard, HttpRequest &req)
{
	Hub *hub = &shard.hub();
	int index = shard.index();
	uint64_t wait_id = req.wait_id;
	std::shared_ptr<Delivery> d = req.out.front();
	req.out.clear();
	req.stored.done = [hub, index, wait_id, d](bool stored)
	{
		hub->PostTask(index,
		              [wait_id, d, stored](Shard &sh) { HttpOnStored(sh, wait_id, d, stored); });
	};
	req.tenant->store->Submit(std::move(req.stored));
}

/*
 * All checks answered: fan out what may go, in order, and decide the answer.
 * Batch: topics the caller may not write are skipped silently (202). Single:
 * a refusal is the answer (PROTOCOL.md 4.7).
 */
void
Conclude(Shard &shard, HttpRequest &req)
{
	if (req.single && req.is_private)
	{
		int v = req.verdicts[req.topic];
		if (v == -1)
		{
			req.status = 403;
			req.response = R"({"message":"Unauthorized"})";
		}
		else if (v == static_cast<int>(AuthResult::Status::kPolicyError))
		{
			req.status = 422;
			req.response = R"({"message":"RLS policy error"})";
		}
		else if (v == static_cast<int>(AuthResult::Status::kDbUnavailable))
		{
			req.status = 422;
			req.response = R"({"message":"Tenant database unavailable"})";
		}
		else if (v != static_cast<int>(AuthResult::Status::kOk))
		{
			req.status = 500;
			req.response = R"({"message":"Unable to authorize broadcast"})";
		}
		if (req.status != 0)
			return;
	}
	if (req.persist.asked)
	{
		Persist(shard, req);
		return;
	}
	for (size_t i = 0; i < req.out.size(); i++)
	{
		const auto &[topic, is_private] = req.out_topics[i];
		if (is_private && req.verdicts[topic] != static_cast<int>(AuthResult::Status::kOk))
			continue;
		shard.hub().Publish(req.out[i], shard.index());
	}
	req.out.clear();
	req.status = 202;
	req.response.clear();
}

/* request.headers for RLS: the headers we can read back from lws, lower-case names. */
std::string
RequestHeadersJson(struct lws *wsi)
{
	static const struct
	{
		const char *name;
		enum lws_token_indexes token;
	} kKnown[] = {{"host", WSI_TOKEN_HOST},
	              {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
	              {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
	              {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
	              {"origin", WSI_TOKEN_ORIGIN},
	              {"referer", WSI_TOKEN_HTTP_REFERER}};
	static const char *kCustom[] = {
	    "apikey:", "x-client-info:", "x-api-key:", "x-forwarded-for:", "x-real-ip:", "prefer:"};
	std::string out = "{";
	auto add = [&out](std::string_view name, const std::string &value)
	{
		if (value.empty())
			return;
		if (out.size() > 1)
			out += ',';
		json::AppendQuoted(out, name);
		out += ':';
		json::AppendQuoted(out, value);
	};
	for (const auto &k : kKnown)
		add(k.name, HeaderValue(wsi, k.token));
	for (const char *c : kCustom)
		add(std::string_view(c, strlen(c) - 1), CustomHeaderValue(wsi, c));
	out += '}';
	return out;
}

/*
 * Answer and forget the request. It leaves the slot first: completing the
 * transaction rebinds the protocol, and lws frees the slot itself with it.
 */
int
Finish(Shard &shard, struct lws *wsi, SessionSlot *slot, int status, std::string_view body)
{
	std::unique_ptr<HttpRequest> req(slot->http);
	slot->http = nullptr;
	if (req->wait_id != 0)
		shard.ForgetHttp(req->wait_id);
	std::string copy(body); /* body may live in req */
	req.reset();
	return Respond(wsi, status, copy);
}

} // namespace

void HttpOnAuthorized(Shard &shard, uint64_t wait_id, const std::string &topic,
                      const AuthResult &r);

int
HttpOnRequest(Shard &shard, struct lws *wsi, SessionSlot *slot, const char *uri)
{
	std::string path = uri ? uri : "";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0)
		return RespondPreflight(wsi);
	if (path == "/healthz" || path == "/realtime/v1/healthz")
	{
		/* ?tenant=<id>, or a Host naming one: that tenant; otherwise all of them */
		const Hub &hub = shard.hub();
		std::shared_ptr<const TenantSet> set = hub.tenants();
		char arg[128];
		const char *named = lws_get_urlarg_by_name(wsi, "tenant=", arg, sizeof(arg));
		std::shared_ptr<Tenant> one;
		if (named != nullptr)
		{
			one = set ? set->Find(named) : nullptr;
			if (one == nullptr)
				return Respond(wsi, 404, R"({"error":"Tenant not found","code":"TenantNotFound"})");
		}
		else if (set)
			one = set->FindLabel(TenantIdOfHost(HeaderValue(wsi, WSI_TOKEN_HOST)));
		bool ok = hub.Ready() && set != nullptr;
		if (one)
			ok = ok && one->Ready();
		else if (set)
			for (const auto &t : set->list)
				ok = ok && (t->Ready() || t->draining.load(std::memory_order_acquire));
		return Respond(wsi, ok ? 200 : 503, ok ? R"({"status":"ok"})" : R"({"status":"starting"})");
	}
	if (path == "/metrics" || path == "/realtime/v1/metrics")
	{
		/* upstream: a Bearer JWT signed with METRICS_JWT_SECRET, else 403 with no body */
		const Config &cfg = shard.config();
		if (!cfg.metrics_jwt_secret.empty() &&
		    !VerifyJwt(RequestToken(wsi), cfg.metrics_keys, time(nullptr)).ok())
			return Respond(wsi, 403, "");
		std::string body = RenderMetrics(shard.hub());
		std::string r = HttpResponse(200, "text/plain; version=0.0.4", body, false);
		if (lws_write(wsi, reinterpret_cast<unsigned char *>(r.data()), r.size(), LWS_WRITE_HTTP) <
		    0)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	if (const StaticUi *ui = shard.config().ui_files.get())
		if (const UiFile *f = ui->Find(path))
		{
			if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
				return Respond(wsi, 405, R"({"message":"Method not allowed"})");
			std::string r = UiResponse(*f, HeaderValue(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH));
			if (lws_write(wsi, reinterpret_cast<unsigned char *>(r.data()), r.size(),
			              LWS_WRITE_HTTP) < 0)
				return -1;
			return lws_http_transaction_completed(wsi) ? -1 : 0;
		}
	if (IsBroadcastPath(path))
	{
		if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0)
			return Respond(wsi, 405, R"({"message":"Method not allowed"})");
		/* the body follows in HTTP_BODY callbacks; keep what we need from the headers now */
		if (slot == nullptr)
			return -1;
		HttpFree(shard, slot);
		slot->http = std::make_unique<HttpRequest>().release(); /* owned by the slot */
		/* a refusal is answered once the body is read (HttpOnBodyComplete) */
		slot->http->tenant =
		    RequestTenant(shard, wsi, slot->http->refused_status, slot->http->refused_body);
		slot->http->path = path;
		slot->http->token = RequestToken(wsi);
		slot->http->headers_json = RequestHeadersJson(wsi);
		return 0;
	}
	std::string topic, event;
	if (ParseSinglePath(path, topic, event))
	{
		if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0)
			return Respond(wsi, 405, R"({"message":"Method not allowed"})");
		std::string type = HeaderValue(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
		std::string base = type.substr(0, type.find(';'));
		if (!base.empty() && base != "application/json" && base != "application/octet-stream")
			return Respond(
			    wsi, 415,
			    R"({"error":"Unsupported Media Type. Use application/json or application/octet-stream"})");
		if (slot == nullptr)
			return -1;
		HttpFree(shard, slot);
		slot->http = std::make_unique<HttpRequest>().release(); /* owned by the slot */
		HttpRequest &r = *slot->http;
		r.tenant = RequestTenant(shard, wsi, r.refused_status, r.refused_body);
		r.path = path;
		r.token = RequestToken(wsi);
		r.headers_json = RequestHeadersJson(wsi);
		r.single = true;
		r.topic = std::move(topic);
		r.event = std::move(event);
		r.binary = base == "application/octet-stream";
		std::optional<std::string> priv = QueryArg(wsi, "private");
		r.is_private = priv && *priv == "true";
		std::optional<std::string> persist = QueryArg(wsi, "persist");
		std::optional<std::string> ttl = QueryArg(wsi, "persist[ttl]");
		r.persist =
		    PersistFromQuery(persist ? persist->c_str() : nullptr, ttl ? ttl->c_str() : nullptr);
		return 0;
	}
	if (path == "/realtime/v1/websocket" || path == "/socket/websocket")
		return Respond(wsi, 400, R"({"error":"WebSocket upgrade expected"})");
	return Respond(wsi, 404, R"({"error":"Not found"})");
}

int
HttpOnBody(Shard &shard, struct lws *, SessionSlot *slot, const char *in, size_t len)
{
	if (slot == nullptr || slot->http == nullptr)
		return -1;
	HttpRequest &r = *slot->http;
	if (r.body.size() + len > static_cast<size_t>(shard.config().max_http_body_bytes))
	{
		r.too_large = true; /* keep reading, answer 413 at the end */
		return 0;
	}
	r.body.append(in, len);
	return 0;
}

int
HttpOnBodyComplete(Shard &shard, struct lws *wsi, SessionSlot *slot)
{
	if (slot == nullptr || slot->http == nullptr)
		return -1;
	HttpRequest &req = *slot->http;
	if (req.tenant == nullptr)
	{
		int status = req.refused_status;
		std::string body = req.refused_body;
		return Finish(shard, wsi, slot, status, body);
	}
	if (req.too_large)
		return Finish(shard, wsi, slot, 413, R"({"message":"Payload too large"})");
	/* both endpoints: a verified JWT from Authorization: Bearer or apikey (PROTOCOL.md 4.6) */
	Tenant &tenant = *req.tenant;
	Result<JwtClaims> claims = VerifyJwt(req.token, tenant.config().jwt_keys, time(nullptr));
	if (!claims.ok())
		return Finish(shard, wsi, slot, 401, R"({"message":"Unauthorized"})");
	/* the tenant's rates (PROTOCOL.md 4.6): requests, then events */
	Hub &hub = shard.hub();
	const TenantConfig &cfg = tenant.config();
	int64_t now = NowMs();
	if (tenant.http_rate.Average(now) >= cfg.max_events_per_second)
		return Finish(shard, wsi, slot, 429, R"({"message":"Too many requests"})");
	tenant.http_rate.Add(now);
	double events = tenant.EventsAverage(now);
	if (events > cfg.max_events_per_second)
		return Finish(shard, wsi, slot, 429, R"({"message":"You have exceeded your rate limit"})");
	auto [status, body] = req.single ? BroadcastSingle(req) : Broadcast(req);
	if (status != 0)
		return Finish(shard, wsi, slot, status, body);
	if (events + static_cast<double>(req.out.size()) > cfg.max_events_per_second)
		return Finish(
		    shard, wsi, slot, 429,
		    R"({"message":"Too many messages to broadcast, please reduce the batch size"})");
	tenant.shard(shard.index()).events.Add(now, req.out.size()); /* each message is one event */

	/* one write check per private topic, with the caller's claims (PROTOCOL.md 8) */
	Authorizer *auth = tenant.authorizer;
	for (const auto &[topic, is_private] : req.out_topics)
	{
		if (!is_private || req.verdicts.count(topic))
			continue;
		if (topic.find('\0') != std::string::npos)
		{
			req.verdicts[topic] = -1; /* no database text holds a NUL: never writable */
			continue;
		}
		if (auth == nullptr)
		{
			/* no database to ask: only service_role, which bypasses RLS, may send */
			req.verdicts[topic] = claims.value().role == "service_role"
			                          ? static_cast<int>(AuthResult::Status::kOk)
			                          : static_cast<int>(AuthResult::Status::kDbUnavailable);
			continue;
		}
		req.verdicts[topic] = -2; /* asked */
		req.checks_out++;
	}
	req.wait_id = shard.WaitHttp(wsi); /* a store or a check answers later */
	if (req.checks_out == 0)
	{
		Conclude(shard, req);
		if (req.status == 0)
			return 0; /* being stored: the answer goes out from HttpOnWritable */
		return Finish(shard, wsi, slot, req.status, req.response);
	}
	for (auto &[topic, verdict] : req.verdicts)
	{
		if (verdict != -2)
			continue;
		AuthRequest ar;
		ar.sub_topic = topic;
		ar.role = claims.value().role;
		ar.claims_json = claims.value().claims_json;
		ar.sub = claims.value().sub;
		ar.headers_json = req.headers_json;
		ar.write = kAuthBroadcast;
		int index = shard.index();
		uint64_t id = req.wait_id;
		ar.done = [&hub, index, id, topic = topic](AuthResult r)
		{
			hub.PostTask(index, [id, topic, r = std::move(r)](Shard &sh)
			             { HttpOnAuthorized(sh, id, topic, r); });
		};
		auth->Submit(std::move(ar));
	}
	return 0; /* the answer goes out from HttpOnWritable */
}

/* A persisted message's store answered: out if it was stored; the request's answer. */
void
HttpOnStored(Shard &shard, uint64_t wait_id, const std::shared_ptr<Delivery> &d, bool stored)
{
	if (stored)
		shard.hub().Publish(d, shard.index()); /* also when the client went away */
	struct lws *wsi = shard.WaitingHttp(wait_id);
	if (wsi == nullptr)
		return;
	auto *slot = static_cast<SessionSlot *>(lws_wsi_user(wsi));
	if (slot == nullptr || slot->http == nullptr || slot->http->wait_id != wait_id)
		return;
	HttpRequest &req = *slot->http;
	req.status = stored ? 202 : 500;
	if (stored)
		req.response.clear();
	else
	{
		req.response = ErrorBody(kPersistFailed);
	}
	lws_callback_on_writable(wsi);
}

void
HttpOnAuthorized(Shard &shard, uint64_t wait_id, const std::string &topic, const AuthResult &r)
{
	struct lws *wsi = shard.WaitingHttp(wait_id);
	if (wsi == nullptr)
		return; /* the client went away */
	auto *slot = static_cast<SessionSlot *>(lws_wsi_user(wsi));
	if (slot == nullptr || slot->http == nullptr || slot->http->wait_id != wait_id)
		return;
	HttpRequest &req = *slot->http;
	int v = static_cast<int>(r.status);
	if (r.status == AuthResult::Status::kOk && !(r.write_ok & kAuthBroadcast))
		v = -1;
	if (r.status != AuthResult::Status::kOk)
		Log(LogLevel::kWarning, "http", "write check failed topic=%s: %s", topic.c_str(),
		    r.detail.c_str());
	req.verdicts[topic] = v;
	if (--req.checks_out > 0)
		return;
	Conclude(shard, req);
	lws_callback_on_writable(wsi);
}

int
HttpOnWritable(Shard &shard, struct lws *wsi, SessionSlot *slot)
{
	if (slot == nullptr || slot->http == nullptr || slot->http->status == 0)
		return 0;
	return Finish(shard, wsi, slot, slot->http->status, slot->http->response);
}

void
HttpFree(Shard &shard, SessionSlot *slot)
{
	if (slot == nullptr || slot->http == nullptr)
		return;
	std::unique_ptr<HttpRequest> gone(slot->http);
	slot->http = nullptr;
	if (gone->wait_id != 0)
		shard.ForgetHttp(gone->wait_id);
}

} // namespace rt::fanout
