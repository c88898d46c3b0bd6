/*
 * test_tenants.cpp: the --config file of src/fanout/config.cpp (tenants, their
 * keys and limits, refusals) and the Host rule of src/fanout/tenant.cpp
 * (PROTOCOL.md 1.3).
 */
#include "tenancy/config.hpp"
#include "tenancy/tenant.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

namespace
{

using rt::fanout::LoadTenantsFile;
using rt::fanout::Result;
using rt::fanout::TenantConfig;
using rt::fanout::TenantIdOfHost;

/* A file holding text, removed when it goes out of scope. */
struct TempFile
{
	std::string path;

	explicit TempFile(const std::string &text)
	{
		char name[] = "/tmp/rt-test-tenants-XXXXXX";
		int fd = mkstemp(name);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
		close(fd);
		path = name;
	}
	~TempFile() { unlink(path.c_str()); }
};

Result<std::vector<TenantConfig>>
Load(const std::string &text, const TenantConfig &defaults = TenantConfig())
{
	TempFile f(text);
	return LoadTenantsFile(f.path, defaults);
}

/* The error of a refused file contains want. */
void
Refused(const std::string &text, const char *want)
{
	auto r = Load(text);
	assert_false(r.ok());
	if (r.error().message.find(want) == std::string::npos)
	{
		print_error("%s\n", r.error().message.c_str());
		assert_true(false);
	}
}

void
TestTwoTenants(void **)
{
	TenantConfig defaults;
	defaults.max_events_per_second = 777;
	TempFile jwks(
	    R"({"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]})");
	auto r = Load(R"({"tenants":[
	    {"external_id":"a","db":"host=x","ring_path":"/r/a","jwt_secret":"s-a",
	     "limits":{"max_concurrent_users":5,"max_payload_size_in_kb":2}},
	    {"external_id":"b","db":"host=y","jwt_jwks":"@)" +
	                  jwks.path + R"(","jwt_claim_validators":{"iss":"b"},"suspended":true}]})",
	              defaults);
	assert_true(r.ok());
	const auto &t = r.value();
	assert_int_equal(t.size(), 2);
	assert_string_equal(t[0].external_id.c_str(), "a");
	assert_string_equal(t[0].db_conninfo.c_str(), "host=x");
	assert_string_equal(t[0].ring_path.c_str(), "/r/a");
	assert_false(t[0].ring_path_from_db);
	assert_int_equal(t[0].max_concurrent_users, 5);
	assert_int_equal(t[0].max_events_per_second, 777); /* the flags' default */
	assert_int_equal(t[0].max_payload_bytes, 2000 + RT_PAYLOAD_SLACK_BYTES);
	assert_false(t[0].suspended);
	assert_true(t[1].ring_path.empty());
	assert_true(t[1].ring_path_from_db); /* asked of the database at start */
	assert_true(t[1].suspended);
	assert_int_equal(t[1].jwt_keys.jwks.size(), 1);
	assert_int_equal(t[1].jwt_keys.claim_validators.size(), 1);
	/* an entry's source changes with its text */
	auto again = Load(R"({"tenants":[{"external_id":"a","jwt_secret":"s-a2"}]})");
	assert_true(again.ok());
	assert_true(again.value()[0].source != t[0].source);
}

void
TestLimitProfiles(void **)
{
	/* the profile first, whatever the key order; the entry's own keys over it */
	auto r = Load(R"({"tenants":[
	    {"external_id":"a","jwt_secret":"s","limits":{"max_events_per_second":9,"profile":"pro"}},
	    {"external_id":"b","jwt_secret":"s","limits":{"profile":"free"}},
	    {"external_id":"c","jwt_secret":"s"}]})");
	assert_true(r.ok());
	const auto &t = r.value();
	assert_int_equal(t[0].max_concurrent_users, 500);
	assert_int_equal(t[0].max_joins_per_second, 500);
	assert_int_equal(t[0].max_events_per_second, 9);
	assert_string_equal(t[0].limits_profile.c_str(), "pro");
	assert_int_equal(t[1].max_presence_events_per_second, 20);
	assert_int_equal(t[1].max_payload_bytes, 256000 + RT_PAYLOAD_SLACK_BYTES);
	assert_int_equal(t[2].max_concurrent_users, 200); /* the defaults given: upstream's */
	assert_string_equal(t[2].limits_profile.c_str(), "upstream");
	Refused(R"({"tenants":[{"external_id":"a","jwt_secret":"s","limits":{"profile":"gold"}}]})",
	        "limits.profile: one of upstream, free, pro, team, unlimited is expected");
	Refused(R"({"tenants":[{"external_id":"a","jwt_secret":"s","limits":{"profile":1}}]})",
	        "limits.profile: one of");
}

void
TestRefusals(void **)
{
	Refused("{", "invalid JSON");
	Refused(R"({"tenants":[],"x":1})", "unknown key \"x\"");
	Refused(R"({"tenants":[]})", "non-empty array");
	Refused(R"({"tenants":[{"external_id":"a","jwt_secret":"s","colour":1}]})",
	        "unknown key \"colour\"");
	Refused(R"({"tenants":[{"external_id":"a","jwt_secret":"s","limits":{"max_users":1}}]})",
	        "limits: unknown key \"max_users\"");
	Refused(
	    R"({"tenants":[{"external_id":"a","jwt_secret":"s","limits":{"max_events_per_second":0}}]})",
	    "max_events_per_second: an integer from 1");
	Refused(R"({"tenants":[{"external_id":"a"}]})", "jwt_secret or jwt_jwks is required");
	Refused(R"({"tenants":[{"external_id":"a.b","jwt_secret":"s"}]})", "external_id");
	Refused(R"({"tenants":[{"jwt_secret":"s"}]})", "external_id");
	Refused(
	    R"({"tenants":[{"external_id":"a","jwt_secret":"s"},{"external_id":"a","jwt_secret":"t"}]})",
	    "appears twice");
	Refused(R"({"tenants":[{"external_id":"a","jwt_jwks":"@/nonexistent/jwks.json"}]})",
	        "cannot open");
	Refused(R"({"tenants":[{"external_id":"a","jwt_secret":"s","suspended":"no"}]})", "suspended");
}

/* Hosts are case-insensitive (RFC 9110 4.2.3): "a" and "A" would name one tenant. */
void
TestIdsDifferingInCase(void **)
{
	Refused(
	    R"({"tenants":[{"external_id":"acme","jwt_secret":"s"},{"external_id":"ACME","jwt_secret":"t"}]})",
	    "appears twice");
}

/*
 * A hostile or broken file nesting a million arrays is refused, not a stack
 * overflow (a SIGHUP with such a file must keep the running tenants).
 */
void
TestDeepNesting(void **)
{
	Refused("{\"tenants\":" + std::string(1000000, '[') + std::string(1000000, ']') + "}", "nest");
	Refused(R"({"tenants":[{"external_id":"a","jwt_jwks":)" + std::string(100000, '[') +
	            std::string(100000, ']') + "}]}",
	        "nest");
}

void
TestHostFirstLabel(void **)
{
	assert_true(TenantIdOfHost("abcd.supabase.co") == "abcd");
	assert_true(TenantIdOfHost("realtime-dev.supabase-realtime") == "realtime-dev");
	assert_true(TenantIdOfHost("localhost") == "localhost");
	assert_true(TenantIdOfHost("localhost:4000") == "localhost");
	assert_true(TenantIdOfHost("127.0.0.1:4000") == "127");
	assert_true(TenantIdOfHost("a.example.com:443") == "a");
	assert_true(TenantIdOfHost("").empty());
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestTwoTenants),         cmocka_unit_test(TestLimitProfiles),
	    cmocka_unit_test(TestRefusals),           cmocka_unit_test(TestHostFirstLabel),
	    cmocka_unit_test(TestIdsDifferingInCase), cmocka_unit_test(TestDeepNesting),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
