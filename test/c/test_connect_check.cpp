/*
 * test_connect_check.cpp: unit tests of the request-head parser
 * (upgrade_request.cpp) and of the connect checks (connect_check.cpp),
 * PROTOCOL.md 1.2-1.5.
 *
 * Single-threaded CMocka program; no sockets: heads are byte strings.
 */
#include "auth/auth_jwt.hpp"
#include "server/connect_check.hpp"
#include "server/upgrade_request.hpp"
#include "base/url.hpp"

#include <string>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

using rt::fanout::CheckConnect;
using rt::fanout::ConnectCheck;
using rt::fanout::HeadStatus;
using rt::fanout::ParseRequestHead;
using rt::fanout::SignJwtHs256;
using rt::fanout::TenantConfig;
using rt::fanout::UpgradeRequest;
using rt::fanout::UrlDecode;
using rt::fanout::Vsn;

namespace
{

constexpr int64_t kNow = 1800000000;
const char kSecret[] = "unit-test-secret-unit-test-secret";

std::string
Upgrade(const std::string &target, const std::string &extra = "")
{
	return "GET " + target +
	       " HTTP/1.1\r\nHost: abc.example.com:4000\r\nUpgrade: websocket\r\n"
	       "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: x\r\n" +
	       extra + "\r\n";
}

ConnectCheck
Check(const std::string &head)
{
	UpgradeRequest req;
	size_t len = 0;
	assert_int_equal(static_cast<int>(ParseRequestHead(head, req, len)),
	                 static_cast<int>(HeadStatus::kComplete));
	TenantConfig cfg;
	cfg.jwt_keys.secret = kSecret;
	return CheckConnect(req, &cfg, kNow);
}

std::string
Token(const std::string &claims)
{
	return SignJwtHs256(claims, kSecret);
}

void
TestParseHead(void **)
{
	std::string head =
	    Upgrade("/realtime/v1/websocket?apikey=a%2Eb&vsn=2.0.0&x=1", "X-Api-Key: hdr\r\n");
	UpgradeRequest req;
	size_t len = 0;
	assert_int_equal(static_cast<int>(ParseRequestHead(head + "trailing", req, len)),
	                 static_cast<int>(HeadStatus::kComplete));
	assert_int_equal(len, head.size());
	assert_string_equal(req.method.c_str(), "GET");
	assert_string_equal(req.path.c_str(), "/realtime/v1/websocket");
	assert_true(req.websocket);
	assert_string_equal(req.apikey->c_str(), "a.b");
	assert_string_equal(req.vsn->c_str(), "2.0.0");
	assert_string_equal(req.x_api_key.c_str(), "hdr");
	assert_string_equal(req.host.c_str(), "abc.example.com:4000");
	assert_string_equal(req.x_headers_json.c_str(), R"({"x-api-key":"hdr"})");
}

/* x-* headers become request.headers JSON; one that is not UTF-8 is left out (fuzz_http) */
void
TestXHeadersJson(void **)
{
	std::string head = Upgrade("/realtime/v1/websocket?vsn=2.0.0",
	                           "X-Client-Info: realtime-js/2.119\x84\r\nx-ok: \"q\"\r\n");
	UpgradeRequest req;
	size_t len = 0;
	assert_int_equal(static_cast<int>(ParseRequestHead(head, req, len)),
	                 static_cast<int>(HeadStatus::kComplete));
	assert_string_equal(req.x_headers_json.c_str(), R"({"x-ok":"\"q\""})");
}

void
TestParseIncompleteAndMalformed(void **)
{
	UpgradeRequest req;
	size_t len = 0;
	assert_int_equal(static_cast<int>(ParseRequestHead("GET / HTTP/1.1\r\nHost: x\r\n", req, len)),
	                 static_cast<int>(HeadStatus::kIncomplete));
	assert_int_equal(static_cast<int>(ParseRequestHead("garbage\r\n\r\n", req, len)),
	                 static_cast<int>(HeadStatus::kMalformed));
	assert_int_equal(
	    static_cast<int>(ParseRequestHead("GET / HTTP/1.1\r\nno colon here\r\n\r\n", req, len)),
	    static_cast<int>(HeadStatus::kMalformed));
	/* a plain request is complete but not an upgrade */
	UpgradeRequest plain;
	assert_int_equal(
	    static_cast<int>(ParseRequestHead("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", plain, len)),
	    static_cast<int>(HeadStatus::kComplete));
	assert_false(plain.websocket);
	assert_false(plain.vsn.has_value());
}

void
TestUrlDecode(void **)
{
	std::string out;
	assert_true(UrlDecode("a%20b%0Ac+d", out));
	assert_string_equal(out.c_str(), "a b\nc+d"); /* '+' stays '+', as upstream */
	assert_false(UrlDecode("bad%2", out));
	assert_false(UrlDecode("bad%zz", out));
}

void
TestAccepted(void **)
{
	std::string t = Token(R"({"role":"anon","exp":1900000000})");
	ConnectCheck c = Check(Upgrade("/realtime/v1/websocket?apikey=" + t + "&vsn=2.0.0"));
	assert_int_equal(c.status, 0);
	assert_int_equal(static_cast<int>(c.vsn), static_cast<int>(Vsn::k2));
	assert_string_equal(c.claims.role.c_str(), "anon");
	/* /socket/websocket too, vsn absent means 1.0.0 */
	c = Check(Upgrade("/socket/websocket?apikey=" + t));
	assert_int_equal(c.status, 0);
	assert_int_equal(static_cast<int>(c.vsn), static_cast<int>(Vsn::k1));
}

void
TestRefusals(void **)
{
	std::string good = Token(R"({"role":"anon","exp":1900000000})");
	ConnectCheck c = Check(Upgrade("/realtime/v1/websocket?vsn=2.0.0"));
	assert_int_equal(c.status, 401);
	assert_string_equal(c.body.c_str(), R"({"error":"API key is missing"})");

	c = Check(Upgrade("/realtime/v1/websocket?apikey=" + good + "&vsn=3.0.0"));
	assert_int_equal(c.status, 403);
	assert_true(c.body.empty());

	c = Check(
	    Upgrade("/realtime/v1/websocket?apikey=" + Token(R"({"role":"anon","exp":1700000000})")));
	assert_int_equal(c.status, 401);
	assert_string_equal(c.body.c_str(), R"({"error":"Token has expired"})");

	c = Check(Upgrade("/realtime/v1/websocket?apikey=" + Token(R"({"exp":1900000000})")));
	assert_int_equal(c.status, 401);
	assert_string_equal(c.body.c_str(),
	                    R"({"error":"Fields `role` and `exp` are required in JWT"})");

	c = Check(Upgrade("/realtime/v1/websocket?apikey=not.a.jwt"));
	assert_int_equal(c.status, 401);
	assert_string_equal(c.body.c_str(), R"({"error":"The token provided is not a valid JWT"})");

	std::string forged = good.substr(0, good.rfind('.') + 1) + "AAAA";
	c = Check(Upgrade("/realtime/v1/websocket?apikey=" + forged));
	assert_int_equal(c.status, 401);
	assert_string_equal(c.body.c_str(), R"({"error":"Failed to validate JWT signature"})");

	c = Check(Upgrade("/elsewhere?apikey=" + good));
	assert_int_equal(c.status, 404);
}

void
TestHeaderKeyWins(void **)
{
	std::string good = Token(R"({"role":"anon","exp":1900000000})");
	ConnectCheck c =
	    Check(Upgrade("/realtime/v1/websocket?apikey=garbage", "x-api-key: " + good + "\r\n"));
	assert_int_equal(c.status, 0);
	c = Check(Upgrade("/realtime/v1/websocket?apikey=" + good, "x-api-key: garbage\r\n"));
	assert_int_equal(c.status, 401);
}

void
TestEncodedWhitespaceInToken(void **)
{
	std::string t = Token(R"({"role":"anon","exp":1900000000})");
	std::string spaced = t.substr(0, 20) + "%20%0A" + t.substr(20) + "%0A";
	ConnectCheck c = Check(Upgrade("/realtime/v1/websocket?apikey=" + spaced));
	assert_int_equal(c.status, 0);
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestParseHead),
	    cmocka_unit_test(TestXHeadersJson),
	    cmocka_unit_test(TestParseIncompleteAndMalformed),
	    cmocka_unit_test(TestUrlDecode),
	    cmocka_unit_test(TestAccepted),
	    cmocka_unit_test(TestRefusals),
	    cmocka_unit_test(TestHeaderKeyWins),
	    cmocka_unit_test(TestEncodedWhitespaceInToken),
	};
	return cmocka_run_group_tests_name("connect_check", tests, nullptr, nullptr);
}
