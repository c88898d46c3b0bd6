/*
 * test_loss_notice.cpp: a channel's missed-message counts and their `system` notice
 * (src/fanout/channel/loss_notice.cpp, PROTOCOL.md 3.9): the payload's fields and text,
 * at most one notice a second, one part per notice (the other waits), counts cleared once told.
 */
#include "channel/loss_notice.hpp"

#include <rapidjson/document.h>

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

namespace
{

using rt::fanout::LossNotice;
using rt::fanout::LossPart;
using rt::fanout::LossReason;

constexpr int64_t kT0 = 1'000'000'000;

rapidjson::Document
Parse(const std::string &s)
{
	rapidjson::Document d;
	d.Parse(s.c_str(), s.size());
	assert_false(d.HasParseError());
	assert_true(d.IsObject());
	return d;
}

void
TestPayload(void **)
{
	LossNotice n;
	n.Add(LossPart::kBroadcast, LossReason::kEventsLimit, 12);
	n.Add(LossPart::kBroadcast, LossReason::kSlowClient, 3);
	assert_true(n.Pending());
	rapidjson::Document d = Parse(n.Take("room \"1\"", kT0));
	assert_string_equal(d["extension"].GetString(), "broadcast");
	assert_string_equal(d["status"].GetString(), "error");
	assert_string_equal(d["channel"].GetString(), "room \"1\"");
	assert_int_equal(d["lost"].GetUint64(), 15);
	assert_int_equal(d["reasons"]["events_limit"].GetUint64(), 12);
	assert_int_equal(d["reasons"]["slow_client"].GetUint64(), 3);
	assert_false(d["reasons"].HasMember("ring_gap"));
	assert_string_equal(d["message"].GetString(),
	                    "15 messages not delivered: Too many messages per second; the client is "
	                    "not reading fast enough");
	assert_false(n.Pending());
	LossNotice one;
	one.Add(LossPart::kPostgresChanges, LossReason::kRingGap, 1);
	d = Parse(one.Take("t", kT0));
	assert_string_equal(d["extension"].GetString(), "postgres_changes");
	assert_string_equal(d["message"].GetString(),
	                    "1 message not delivered: the database stream lost messages before they "
	                    "were read");
}

void
TestOncePerSecondOnePartEach(void **)
{
	LossNotice n;
	assert_true(n.Due(kT0));
	assert_true(n.Take("t", kT0).empty()); /* nothing to tell */
	n.Add(LossPart::kBroadcast, LossReason::kEventsLimit, 1);
	n.Add(LossPart::kPresence, LossReason::kSlowClient, 2);
	assert_true(n.Due(kT0));
	rapidjson::Document d = Parse(n.Take("t", kT0));
	assert_string_equal(d["extension"].GetString(), "broadcast");
	assert_true(n.Pending()); /* presence waits for the next second */
	assert_false(n.Due(kT0 + 999));
	assert_true(n.Due(kT0 + 1000));
	d = Parse(n.Take("t", kT0 + 1000));
	assert_string_equal(d["extension"].GetString(), "presence");
	assert_int_equal(d["lost"].GetUint64(), 2);
	assert_false(n.Pending());
	n.Add(LossPart::kBroadcast, LossReason::kShardBehind, 5);
	assert_false(n.Due(kT0 + 1500));
	d = Parse(n.Take("t", kT0 + 2000));
	assert_int_equal(d["reasons"]["shard_behind"].GetUint64(), 5);
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestPayload),
	    cmocka_unit_test(TestOncePerSecondOnePartEach),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
