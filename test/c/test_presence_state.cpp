/*
 * test_presence_state.cpp: unit tests of the pure presence logic
 * (src/fanout/presence_state.cpp, PROTOCOL.md 5.2-5.3): the shapes of
 * presence_diff and presence_state (parsed, not only compared as text),
 * no-op tracks, updates with phx_ref_prev, several channels under one key,
 * escaping of hostile keys, phx_ref uniqueness, and a replay: every diff of a
 * random sequence applied the way Phoenix clients do (syncDiff) must
 * reproduce StateJson after each step.
 */
#include "base/json.hpp"
#include "presence/presence_state.hpp"

#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

namespace rf = rt::fanout;
namespace json = rt::fanout::json;

namespace
{

std::string_view
Str(const rapidjson::Value &v)
{
	assert_true(v.IsString());
	return std::string_view(v.GetString(), v.GetStringLength());
}

void
ParseOrFail(rapidjson::Document &doc, const std::string &text)
{
	assert_true(json::Parse(doc, text));
	assert_true(doc.IsObject());
}

/* The metas array of key in obj ({"<key>":{"metas":[...]}}); asserts the shape. */
const rapidjson::Value &
MetasOf(const rapidjson::Value &obj, std::string_view key)
{
	assert_true(obj.IsObject());
	auto it = obj.FindMember(rapidjson::Value(
	    rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size()))));
	assert_true(it != obj.MemberEnd());
	assert_true(it->value.IsObject());
	assert_int_equal(it->value.MemberCount(), 1);
	const rapidjson::Value *metas = json::Member(it->value, "metas");
	assert_non_null(metas);
	assert_true(metas->IsArray());
	return *metas;
}

/* A diff, parsed: its joins and leaves, both present, both objects, nothing else. */
struct Diff
{
	explicit Diff(const std::string &text)
	{
		ParseOrFail(doc, text);
		assert_int_equal(doc.MemberCount(), 2);
		joins = json::Member(doc, "joins");
		leaves = json::Member(doc, "leaves");
		assert_non_null(joins);
		assert_non_null(leaves);
		assert_true(joins->IsObject());
		assert_true(leaves->IsObject());
	}

	/* It joins n_joins keys and leaves n_leaves. */
	void
	ExpectKeys(unsigned n_joins, unsigned n_leaves) const
	{
		assert_int_equal(joins->MemberCount(), n_joins);
		assert_int_equal(leaves->MemberCount(), n_leaves);
	}

	rapidjson::Document doc;
	const rapidjson::Value *joins = nullptr;
	const rapidjson::Value *leaves = nullptr;
};

bool
IsRef(std::string_view ref)
{
	if (ref.size() != 12 || ref[0] != 'F')
		return false;
	for (char c : ref)
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	return true;
}

/* The one meta a single-join diff carries under key, re-serialized. */
std::string
JoinedMeta(const std::string &diff_text, std::string_view key)
{
	const Diff d(diff_text);
	const rapidjson::Value &metas = MetasOf(*d.joins, key);
	assert_int_equal(metas.Size(), 1);
	return json::Stringify(metas[0]);
}

std::string
RefOfMeta(const std::string &meta_json)
{
	rapidjson::Document d;
	ParseOrFail(d, meta_json);
	const rapidjson::Value *ref = json::Member(d, "phx_ref");
	assert_non_null(ref);
	return std::string(Str(*ref));
}

void
TestJoinDiffShape(void **)
{
	rf::PresenceTopic t;
	std::string diff = t.Track("user-42", 1, 7, "{\"name\":\"Alice\",\"n\":1,\"tags\":[1,{}]}");
	const Diff d(diff);
	d.ExpectKeys(1, 0);
	const rapidjson::Value &metas = MetasOf(*d.joins, "user-42");
	assert_int_equal(metas.Size(), 1);
	const rapidjson::Value &meta = metas[0];
	assert_true(meta.IsObject());
	/* phx_ref first, then the payload's members in their order; no phx_ref_prev */
	assert_int_equal(meta.MemberCount(), 4);
	auto m = meta.MemberBegin();
	assert_true(Str(m->name) == "phx_ref");
	assert_true(IsRef(Str(m->value)));
	++m;
	assert_true(Str(m->name) == "name");
	assert_true(Str(m->value) == "Alice");
	++m;
	assert_true(Str(m->name) == "n");
	assert_true(m->value.IsInt() && m->value.GetInt() == 1);
	++m;
	assert_true(Str(m->name) == "tags");
	assert_true(json::Stringify(m->value) == "[1,{}]");
	assert_int_equal(t.size(), 1);
	assert_false(t.empty());
}

void
TestUnchangedPayloadIsNoop(void **)
{
	rf::PresenceTopic t;
	assert_true(t.Track("k", 1, 1, "{\"name\":\"Alice\"}") != "");
	std::string state = t.StateJson();
	assert_true(t.Track("k", 1, 1, "{\"name\":\"Alice\"}") == "");
	/* the same object written differently is the same payload */
	assert_true(t.Track("k", 1, 1, "{ \"name\" : \"Alice\" }") == "");
	assert_true(t.StateJson() == state);
	assert_int_equal(t.size(), 1);
	/* an empty payload (the default {}) too */
	assert_true(t.Track("k", 2, 1, "{}") != "");
	assert_true(t.Track("k", 2, 1, "{}") == "");
	assert_int_equal(t.size(), 2);
	/* not an object: ignored, nothing tracked */
	assert_true(t.Track("k", 3, 1, "[1]") == "");
	assert_true(t.Track("k", 3, 1, "{bad") == "");
	assert_int_equal(t.size(), 2);
}

void
TestUpdateDiff(void **)
{
	rf::PresenceTopic t;
	std::string first = JoinedMeta(t.Track("user-42", 1, 1, "{\"name\":\"Alice\"}"), "user-42");
	std::string old_ref = RefOfMeta(first);

	std::string diff = t.Track("user-42", 1, 1, "{\"name\":\"Alice 2\"}");
	const Diff d(diff);
	d.ExpectKeys(1, 1);
	const rapidjson::Value &left = MetasOf(*d.leaves, "user-42");
	assert_int_equal(left.Size(), 1);
	assert_true(json::Stringify(left[0]) == first); /* the old meta as it was */

	const rapidjson::Value &joined = MetasOf(*d.joins, "user-42");
	assert_int_equal(joined.Size(), 1);
	const rapidjson::Value &meta = joined[0];
	assert_int_equal(meta.MemberCount(), 3);
	auto m = meta.MemberBegin();
	assert_true(Str(m->name) == "phx_ref");
	std::string_view new_ref = Str(m->value);
	assert_true(IsRef(new_ref));
	assert_true(new_ref != old_ref);
	++m;
	assert_true(Str(m->name) == "phx_ref_prev");
	assert_true(Str(m->value) == old_ref);
	++m;
	assert_true(Str(m->name) == "name");
	assert_true(Str(m->value) == "Alice 2");

	assert_int_equal(t.size(), 1);
	assert_true(t.StateJson() == "{\"user-42\":{\"metas\":[" + json::Stringify(meta) + "]}}");
	/* a second update chains: prev = the first update's ref */
	std::string third = JoinedMeta(t.Track("user-42", 1, 1, "{}"), "user-42");
	rapidjson::Document d3;
	ParseOrFail(d3, third);
	assert_true(Str(*json::Member(d3, "phx_ref_prev")) == new_ref);
	assert_int_equal(d3.MemberCount(), 2);
}

void
TestSharedKeyTwoMetasAndUntrack(void **)
{
	rf::PresenceTopic t;
	std::string a = JoinedMeta(t.Track("k", 1, 1, "{\"tab\":1}"), "k");
	/* same session, another join generation: another channel */
	std::string b = JoinedMeta(t.Track("k", 1, 2, "{\"tab\":2}"), "k");
	assert_int_equal(t.size(), 2);
	rapidjson::Document s;
	ParseOrFail(s, t.StateJson());
	assert_int_equal(s.MemberCount(), 1);
	const rapidjson::Value &metas = MetasOf(s, "k");
	assert_int_equal(metas.Size(), 2);
	assert_true(json::Stringify(metas[0]) == a);
	assert_true(json::Stringify(metas[1]) == b);

	std::string diff = t.Untrack(1, 1);
	const Diff d(diff);
	d.ExpectKeys(0, 1);
	const rapidjson::Value &left = MetasOf(*d.leaves, "k");
	assert_int_equal(left.Size(), 1);
	assert_true(json::Stringify(left[0]) == a);
	assert_int_equal(t.size(), 1);
	assert_true(t.StateJson() == "{\"k\":{\"metas\":[" + b + "]}}");
}

void
TestUntrackUntracked(void **)
{
	rf::PresenceTopic t;
	assert_true(t.Untrack(1, 1) == "");
	assert_true(t.Track("k", 1, 1, "{}") != "");
	assert_true(t.Untrack(2, 1) == "");
	assert_true(t.Untrack(1, 2) == "");
	assert_int_equal(t.size(), 1);
	assert_true(t.Untrack(1, 1) != "");
	assert_true(t.Untrack(1, 1) == "");
	assert_true(t.empty());
	assert_true(t.StateJson() == "{}");
}

void
TestStateJsonAfterSequence(void **)
{
	rf::PresenceTopic t;
	assert_true(t.StateJson() == "{}");
	std::string m1 = JoinedMeta(t.Track("b", 1, 1, "{\"v\":1}"), "b");
	std::string m2 = JoinedMeta(t.Track("a", 2, 1, "{\"v\":2}"), "a");
	std::string m3 = JoinedMeta(t.Track("b", 3, 1, "{\"v\":3}"), "b");
	std::string m5 = JoinedMeta(t.Track("b", 5, 1, "{\"v\":5}"), "b");
	/* the update moves channel 1's meta to the end of b's list (a client's syncDiff does) */
	std::string m1b = JoinedMeta(t.Track("b", 1, 1, "{\"v\":11}"), "b");
	assert_true(t.Untrack(3, 1) != "");
	std::string m4 = JoinedMeta(t.Track("c", 4, 1, "{\"v\":4}"), "c");
	assert_true(t.Untrack(4, 1) != "");
	(void)m1;
	(void)m3;
	(void)m4;
	/* keys sorted by their bytes, metas in tracking order */
	assert_true(t.StateJson() ==
	            "{\"a\":{\"metas\":[" + m2 + "]},\"b\":{\"metas\":[" + m5 + "," + m1b + "]}}");
	assert_int_equal(t.size(), 3);
	assert_true(t.Untrack(1, 1) != "");
	assert_true(t.Untrack(2, 1) != "");
	assert_true(t.Untrack(5, 1) != "");
	assert_true(t.StateJson() == "{}");
	assert_true(t.empty());
}

void
TestKeyChangeIsLeaveAndJoin(void **)
{
	rf::PresenceTopic t;
	std::string old = JoinedMeta(t.Track("old", 1, 1, "{\"x\":1}"), "old");
	std::string diff = t.Track("new", 1, 1, "{\"x\":1}");
	const Diff d(diff);
	d.ExpectKeys(1, 1);
	assert_true(json::Stringify(MetasOf(*d.leaves, "old")[0]) == old);
	const rapidjson::Value &joined = MetasOf(*d.joins, "new");
	assert_int_equal(joined.Size(), 1);
	assert_null(json::Member(joined[0], "phx_ref_prev"));
	assert_true(Str(*json::Member(joined[0], "phx_ref")) != RefOfMeta(old));
	assert_int_equal(t.size(), 1);
	assert_true(t.StateJson() == "{\"new\":{\"metas\":[" + json::Stringify(joined[0]) + "]}}");
	/* the index follows: untrack finds the channel under its new key */
	assert_true(t.Untrack(1, 1) != "");
	assert_true(t.empty());
}

void
TestHostileKeyEscaping(void **)
{
	std::string key = std::string("a\"b\\c") + '\x01' + "\xc3\xa9"; /* a"b\c U+0001 é */
	assert_int_equal(key.size(), 8);
	rf::PresenceTopic t;
	std::string diff = t.Track(key, 1, 1, "{\"k\":\"\\u0002\\\"\"}");
	assert_null(std::memchr(diff.data(), '\x01', diff.size())); /* control bytes escaped */
	const Diff d(diff);
	assert_int_equal(d.joins->MemberCount(), 1);
	assert_true(Str(d.joins->MemberBegin()->name) == key);
	const rapidjson::Value &metas = MetasOf(*d.joins, key);
	assert_true(Str(*json::Member(metas[0], "k")) == std::string_view("\x02\"", 2));

	std::string state = t.StateJson();
	rapidjson::Document s;
	ParseOrFail(s, state);
	assert_int_equal(s.MemberCount(), 1);
	assert_true(Str(s.MemberBegin()->name) == key);

	std::string leave = t.Untrack(1, 1);
	const Diff l(leave);
	assert_true(Str(l.leaves->MemberBegin()->name) == key);
}

void
TestPayloadPhxRefDropped(void **)
{
	rf::PresenceTopic t;
	std::string meta = JoinedMeta(
	    t.Track("k", 1, 1, "{\"phx_ref\":\"evil\",\"a\":1,\"phx_ref_prev\":\"Fxxxxxxxxxxx\"}"),
	    "k");
	rapidjson::Document d;
	ParseOrFail(d, meta);
	assert_int_equal(d.MemberCount(), 2);
	auto m = d.MemberBegin();
	assert_true(Str(m->name) == "phx_ref");
	assert_true(IsRef(Str(m->value)));
	++m;
	assert_true(Str(m->name) == "a");
	assert_null(json::Member(d, "phx_ref_prev"));
	/* what remains of the payload is what counts: {"a":1} is the same */
	assert_true(t.Track("k", 1, 1, "{\"a\":1}") == "");
	/* on an update ours win too: one phx_ref, one phx_ref_prev (the real old ref) */
	std::string up = JoinedMeta(t.Track("k", 1, 1, "{\"phx_ref_prev\":\"evil\",\"a\":2}"), "k");
	rapidjson::Document u;
	ParseOrFail(u, up);
	assert_int_equal(u.MemberCount(), 3);
	assert_true(Str(*json::Member(u, "phx_ref_prev")) == RefOfMeta(meta));
}

void
TestStoreErasesEmptyTopics(void **)
{
	rf::PresenceStore store;
	assert_int_equal(store.topics(), 0);
	assert_true(store.State("realtime:r1") == "{}");
	std::string meta = JoinedMeta(store.Track("realtime:r1", "k", 1, 1, "{}"), "k");
	assert_true(store.Track("realtime:r2", "k", 2, 1, "{}") != "");
	assert_true(store.Track("realtime:r2", "k", 2, 1, "{}") == "");
	assert_int_equal(store.topics(), 2);
	assert_true(store.State("realtime:r1") == "{\"k\":{\"metas\":[" + meta + "]}}");
	/* a channel is tracked per routing key: r2 does not know channel 1 */
	assert_true(store.Untrack("realtime:r2", 1, 1) == "");
	assert_true(store.Untrack("realtime:nowhere", 1, 1) == "");
	assert_int_equal(store.topics(), 2);
	assert_true(store.Untrack("realtime:r1", 1, 1) != "");
	assert_int_equal(store.topics(), 1);
	assert_true(store.State("realtime:r1") == "{}");
	/* a payload that is not an object leaves no empty topic behind */
	assert_true(store.Track("realtime:r3", "k", 3, 1, "null") == "");
	assert_int_equal(store.topics(), 1);
	assert_true(store.Untrack("realtime:r2", 2, 1) != "");
	assert_int_equal(store.topics(), 0);
}

void
TestNewPhxRefUnique(void **)
{
	/* 100,000 refs from 4 threads at once: all well-formed, none repeated */
	constexpr int kThreads = 4;
	constexpr int kEach = 25000;
	std::vector<std::vector<std::string>> refs(kThreads);
	std::vector<std::thread> threads;
	for (int i = 0; i < kThreads; i++)
		threads.emplace_back(
		    [&refs, i]
		    {
			    refs[static_cast<size_t>(i)].reserve(kEach);
			    for (int k = 0; k < kEach; k++)
				    refs[static_cast<size_t>(i)].push_back(rf::NewPhxRef());
		    });
	for (std::thread &th : threads)
		th.join();
	std::unordered_set<std::string> seen;
	for (const auto &v : refs)
		for (const std::string &r : v)
		{
			assert_true(IsRef(r));
			assert_true(seen.insert(r).second);
		}
	assert_int_equal(seen.size(), kThreads * kEach);
}

/* A client's view of one topic: key -> metas (re-serialized), as Phoenix's syncDiff keeps it. */
using Model = std::map<std::string, std::vector<std::string>>;

void
ApplyDiff(Model &model, const std::string &diff, std::unordered_set<std::string> &refs_seen)
{
	const Diff d(diff);
	/* joins: the key's current metas not among the joined refs, then the joined metas */
	for (auto &j : d.joins->GetObject())
	{
		std::string key(Str(j.name));
		const rapidjson::Value &metas = MetasOf(*d.joins, key);
		std::set<std::string> joined_refs;
		std::vector<std::string> joined;
		for (const rapidjson::Value &m : metas.GetArray())
		{
			std::string ref(Str(*json::Member(m, "phx_ref")));
			assert_true(refs_seen.insert(ref).second); /* every joined meta is new */
			joined_refs.insert(ref);
			joined.push_back(json::Stringify(m));
		}
		std::vector<std::string> next;
		auto cur = model.find(key);
		if (cur != model.end())
			for (const std::string &m : cur->second)
				if (joined_refs.count(RefOfMeta(m)) == 0)
					next.push_back(m);
		next.insert(next.end(), joined.begin(), joined.end());
		model[key] = std::move(next);
	}
	/* leaves: remove by phx_ref; a key without metas goes */
	for (auto &l : d.leaves->GetObject())
	{
		std::string key(Str(l.name));
		auto cur = model.find(key);
		if (cur == model.end())
			continue;
		std::set<std::string> left_refs;
		for (const rapidjson::Value &m : MetasOf(*d.leaves, key).GetArray())
			left_refs.insert(std::string(Str(*json::Member(m, "phx_ref"))));
		std::vector<std::string> next;
		for (const std::string &m : cur->second)
			if (left_refs.count(RefOfMeta(m)) == 0)
				next.push_back(m);
		if (next.empty())
			model.erase(cur);
		else
			cur->second = std::move(next);
	}
}

std::string
RenderModel(const Model &model, size_t &metas)
{
	std::string out = "{";
	metas = 0;
	for (const auto &[key, list] : model)
	{
		if (out.size() > 1)
			out += ',';
		json::AppendQuoted(out, key);
		out += ":{\"metas\":[";
		for (size_t i = 0; i < list.size(); i++)
		{
			if (i > 0)
				out += ',';
			out += list[i];
		}
		out += "]}";
		metas += list.size();
	}
	out += '}';
	return out;
}

void
TestReplayReproducesState(void **)
{
	constexpr int kOps = 2000;
	constexpr int kChannels = 50;
	const std::vector<std::string> keys = {"k0", "k1", "k\"2", "k\\3", "k4é",
	                                       "k5", "k6", "k7",   "k8",   "k9"};
	const std::vector<std::string> payloads = {"{}", "{\"a\":1}", "{\"a\":2,\"b\":[true,null]}",
	                                           "{\"phx_ref\":\"x\",\"a\":1}",
	                                           "{\"s\":\"\\u00e9\"}"};
	std::mt19937_64 rng(20261128);
	rf::PresenceTopic topic;
	Model model;
	std::unordered_set<std::string> refs_seen;
	int joins = 0, updates = 0, noops = 0, moves = 0, untracks = 0, idle_untracks = 0;
	std::vector<int> key_of(kChannels, -1); /* -1: not tracked */

	for (int op = 0; op < kOps; op++)
	{
		int c = static_cast<int>(rng() % kChannels);
		uint64_t session = static_cast<uint64_t>(c / 5 + 1);
		uint64_t gen = static_cast<uint64_t>(1000 + c);
		std::string diff;
		if (rng() % 10 < 6)
		{
			/* a channel's key is fixed, but now and then one changes (the odd path) */
			int k = rng() % 20 == 0 ? static_cast<int>(rng() % keys.size()) : c % 10;
			const std::string &payload = payloads[rng() % payloads.size()];
			diff = topic.Track(keys[static_cast<size_t>(k)], session, gen, payload);
			if (diff.empty())
				noops++;
			else if (key_of[static_cast<size_t>(c)] < 0)
				joins++;
			else if (key_of[static_cast<size_t>(c)] == k)
				updates++;
			else
				moves++;
			if (diff.empty())
				assert_int_equal(key_of[static_cast<size_t>(c)], k);
			key_of[static_cast<size_t>(c)] = k;
		}
		else
		{
			diff = topic.Untrack(session, gen);
			if (diff.empty())
			{
				assert_int_equal(key_of[static_cast<size_t>(c)], -1);
				idle_untracks++;
			}
			else
				untracks++;
			key_of[static_cast<size_t>(c)] = -1;
		}
		if (!diff.empty())
			ApplyDiff(model, diff, refs_seen);
		size_t metas = 0;
		std::string expected = RenderModel(model, metas);
		assert_true(topic.StateJson() == expected);
		assert_int_equal(topic.size(), metas);
	}
	/* every path was taken */
	assert_true(joins > 0 && updates > 0 && noops > 0 && moves > 0 && untracks > 0 &&
	            idle_untracks > 0);
	print_message("# replay: %d ops: %d joins, %d updates, %d no-ops, %d key changes, %d untracks, "
	              "%d untracks of untracked; %zu metas left\n",
	              kOps, joins, updates, noops, moves, untracks, idle_untracks, topic.size());
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestJoinDiffShape),
	    cmocka_unit_test(TestUnchangedPayloadIsNoop),
	    cmocka_unit_test(TestUpdateDiff),
	    cmocka_unit_test(TestSharedKeyTwoMetasAndUntrack),
	    cmocka_unit_test(TestUntrackUntracked),
	    cmocka_unit_test(TestStateJsonAfterSequence),
	    cmocka_unit_test(TestKeyChangeIsLeaveAndJoin),
	    cmocka_unit_test(TestHostileKeyEscaping),
	    cmocka_unit_test(TestPayloadPhxRefDropped),
	    cmocka_unit_test(TestStoreErasesEmptyTopics),
	    cmocka_unit_test(TestNewPhxRefUnique),
	    cmocka_unit_test(TestReplayReproducesState),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
