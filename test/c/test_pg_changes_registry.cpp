/*
 * test_pg_changes_registry.cpp: unit tests of the Postgres Changes registry
 * (src/fanout/pg_changes_registry.cpp): matching by table, event and typed
 * filters (DELETE on old values), removal and regrouping of channels, and
 * the grouping of candidates into one visibility question per (role +
 * claims, table) for a batch: never one per subscriber. The payloads they
 * produce are tested in test_changes_payload.cpp; end to end in
 * test/e2e/21_pg_changes and 22_pg_changes_rls.
 */
#include "postgres_changes/pg_changes_registry.hpp"

#include <memory>
#include <string>
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

namespace
{

/* A change of table relid: id (pk, int8) and qty (int4) as the ring renders them. */
rf::RingChange
Change(uint32_t relid, rf::RingChange::Action action, const char *id, const char *qty,
       const char *old_id = "", const char *old_qty = "")
{
	rf::RingChange c;
	c.relid = relid;
	c.action = action;
	c.schema = "public";
	c.table = "t";
	c.columns.push_back(rf::RingColumn{true, 1, "id", "int8", id, old_id});
	c.columns.push_back(rf::RingColumn{false, 2, "qty", "int4", qty, old_qty});
	return c;
}

std::shared_ptr<const rf::ChannelRef>
Channel(uint64_t session, uint64_t gen)
{
	auto ch = std::make_shared<rf::ChannelRef>();
	ch->session_id = session;
	ch->gen = gen;
	ch->topic = "realtime:room";
	return ch;
}

/* Subscribe channel to relid; filter "qty=<op>.<rhs>" when op is given. */
const rf::PgSubscription *
Subscribe(rf::PgChangesRegistry &reg, std::shared_ptr<const rf::ChannelRef> ch, uint32_t id,
          uint32_t relid, rf::PgEvent ev, rf::ClaimsGroup *g, rf::FilterOp op = rf::FilterOp::kEq,
          const char *rhs = nullptr, bool negated = false)
{
	auto s = std::make_unique<rf::PgSubscription>();
	s->channel = std::move(ch);
	s->id = id;
	s->event = ev;
	s->relid = relid;
	s->group = g;
	if (rhs != nullptr)
	{
		rf::PgFilter f;
		f.column = "qty";
		f.op = op;
		f.negated = negated;
		rf::Result<rf::CompiledFilter> c = rf::CompileFilter(f, "int4", rhs, true);
		assert_true(c.ok());
		s->filters.push_back(rf::SubFilter{"qty", std::move(c.value()), rhs});
	}
	const rf::PgSubscription *raw = s.get();
	reg.Add(std::move(s));
	return raw;
}

std::vector<uint32_t>
Ids(const std::vector<const rf::PgSubscription *> &subs)
{
	std::vector<uint32_t> out;
	for (const rf::PgSubscription *s : subs)
		out.push_back(s->id);
	return out;
}

void
TestMatchesTableEventAndTypedFilters(void **)
{
	using A = rf::RingChange::Action;
	rf::PgChangesRegistry reg;
	rf::ClaimsGroup *g = reg.Group("anon", "{\"role\":\"anon\"}", "", false);
	auto ch = Channel(1, 1);
	Subscribe(reg, ch, 10, 100, rf::PgEvent::kAll, g);
	Subscribe(reg, ch, 11, 100, rf::PgEvent::kInsert, g);
	Subscribe(reg, ch, 12, 100, rf::PgEvent::kUpdate, g);
	/* typed: 10 > 9 as integers (as text "10" < "9") */
	Subscribe(reg, ch, 13, 100, rf::PgEvent::kAll, g, rf::FilterOp::kGt, "9");
	Subscribe(reg, ch, 14, 100, rf::PgEvent::kAll, g, rf::FilterOp::kEq, "10", true);
	Subscribe(reg, ch, 15, 200, rf::PgEvent::kAll, g);
	Subscribe(reg, ch, 16, 100, rf::PgEvent::kDelete, g, rf::FilterOp::kEq, "10");

	std::vector<const rf::PgSubscription *> out;
	reg.Match(Change(100, A::kInsert, "1", "10"), out);
	assert_true((Ids(out) == std::vector<uint32_t>{10, 11, 13}));
	out.clear();
	reg.Match(Change(100, A::kUpdate, "1", "5"), out);
	assert_true((Ids(out) == std::vector<uint32_t>{10, 12, 14}));
	out.clear();
	/* DELETE filters look at the old values; absent there: the filter fails */
	reg.Match(Change(100, A::kDelete, "", "", "1", "10"), out);
	assert_true((Ids(out) == std::vector<uint32_t>{10, 13, 16}));
	out.clear();
	reg.Match(Change(100, A::kDelete, "", "", "1", ""), out);
	assert_true((Ids(out) == std::vector<uint32_t>{10}));
	out.clear();
	/* a NULL value passes neither qty > 9 nor not.eq */
	reg.Match(Change(100, A::kInsert, "1", "null"), out);
	assert_true((Ids(out) == std::vector<uint32_t>{10, 11}));
	out.clear();
	reg.Match(Change(300, A::kInsert, "1", "10"), out);
	assert_true(out.empty());
}

void
TestGroupsAndRemoval(void **)
{
	using A = rf::RingChange::Action;
	rf::PgChangesRegistry reg;
	rf::ClaimsGroup *a = reg.Group("authenticated", "{\"sub\":\"a\"}", "a", false);
	rf::ClaimsGroup *b = reg.Group("authenticated", "{\"sub\":\"b\"}", "b", false);
	assert_ptr_equal(a, reg.Group("authenticated", "{\"sub\":\"a\"}", "a", false));
	Subscribe(reg, Channel(1, 1), 1, 100, rf::PgEvent::kAll, a);
	Subscribe(reg, Channel(1, 2), 2, 100, rf::PgEvent::kAll, a);
	Subscribe(reg, Channel(2, 3), 3, 100, rf::PgEvent::kAll, b);
	assert_int_equal(reg.size(), 3);
	assert_int_equal(reg.groups(), 2);

	std::vector<const rf::PgSubscription *> out;
	reg.Match(Change(100, A::kInsert, "1", "1"), out);
	assert_int_equal(out.size(), 3);
	assert_ptr_equal(out[2]->group, b);
	assert_int_equal(a->refs, 2);

	/* one channel of session 1, then the rest of it; groups go with their last subscription */
	assert_int_equal(reg.RemoveChannel(1, 1), 1);
	assert_int_equal(a->refs, 1);
	assert_int_equal(reg.RemoveChannel(1, 0), 1);
	assert_int_equal(reg.groups(), 1);
	assert_int_equal(reg.RemoveChannel(2, 0), 1);
	assert_int_equal(reg.size(), 0);
	assert_int_equal(reg.groups(), 0);
}

void
TestEqFiltersAreIndexed(void **)
{
	using A = rf::RingChange::Action;
	rf::PgChangesRegistry reg;
	rf::ClaimsGroup *g = reg.Group("anon", "{}", "", false);
	/* 1,000 channels each filtering qty on its own value, and some without an index */
	for (uint32_t k = 0; k < 1000; k++)
		Subscribe(reg, Channel(k + 1, 1), k, 100, rf::PgEvent::kAll, g, rf::FilterOp::kEq,
		          std::to_string(k % 100).c_str());
	Subscribe(reg, Channel(5000, 1), 5000, 100, rf::PgEvent::kAll, g);
	Subscribe(reg, Channel(5001, 1), 5001, 100, rf::PgEvent::kAll, g, rf::FilterOp::kGt, "41");
	Subscribe(reg, Channel(5002, 1), 5002, 100, rf::PgEvent::kInsert, g, rf::FilterOp::kEq, "42");

	std::vector<const rf::PgSubscription *> out;
	reg.Match(Change(100, A::kUpdate, "1", "42"), out);
	/* the ten channels of value 42 and the unindexed ones, in registration order */
	std::vector<uint32_t> want;
	for (uint32_t k = 42; k < 1000; k += 100)
		want.push_back(k);
	want.push_back(5000);
	want.push_back(5001);
	assert_true(Ids(out) == want);
	/* DELETE: the old value is looked up */
	out.clear();
	reg.Match(Change(100, A::kDelete, "", "", "1", "7"), out);
	assert_int_equal(out.size(), 11);
	/* a NULL or absent value finds nothing in the index */
	out.clear();
	reg.Match(Change(100, A::kInsert, "1", "null"), out);
	assert_true((Ids(out) == std::vector<uint32_t>{5000}));

	/* removal leaves the index consistent */
	for (uint64_t k = 1; k <= 1000; k++)
		if (k % 2 == 1)
			reg.RemoveChannel(k, 0);
	out.clear();
	reg.Match(Change(100, A::kInsert, "1", "42"), out);
	want.clear();
	for (uint32_t k = 42; k < 1000; k += 100)
		if ((k + 1) % 2 == 0)
			want.push_back(k);
	want.push_back(5000);
	want.push_back(5001);
	want.push_back(5002);
	assert_true(Ids(out) == want);
	assert_int_equal(reg.size(), 503);
}

void
TestVisibilityIsBatchedPerGroupAndTable(void **)
{
	using A = rf::RingChange::Action;
	rf::PgChangesRegistry reg;
	/* 100 users x 10 channels each, one table: 1,000 subscribers */
	std::vector<rf::ClaimsGroup *> users;
	for (int u = 0; u < 100; u++)
	{
		std::string sub = "user-" + std::to_string(u);
		users.push_back(reg.Group("authenticated", "{\"sub\":\"" + sub + "\"}", sub, false));
		for (int k = 0; k < 10; k++)
			Subscribe(reg, Channel(static_cast<uint64_t>(u * 10 + k + 1), 1),
			          static_cast<uint32_t>(u), 100, rf::PgEvent::kAll, users.back());
	}
	rf::ClaimsGroup *service = reg.Group("service_role", "{}", "", true);
	Subscribe(reg, Channel(5000, 1), 7, 100, rf::PgEvent::kAll, service);

	/* a batch: 50 inserts (RLS), 1 delete (never checked), 1 change of another table */
	std::vector<rf::RingChange> batch;
	for (int i = 0; i < 50; i++)
		batch.push_back(Change(100, A::kInsert, "1", "1"));
	batch.push_back(Change(100, A::kDelete, "", "", "1", ""));
	batch.push_back(Change(999, A::kInsert, "1", "1"));
	std::vector<std::vector<const rf::PgSubscription *>> cands(batch.size());
	std::vector<uint8_t> needs(batch.size(), 0);
	for (size_t i = 0; i < batch.size(); i++)
	{
		reg.Match(batch[i], cands[i]);
		needs[i] = batch[i].action != A::kDelete;
	}
	std::vector<std::vector<int32_t>> set_of;
	std::vector<rf::VisibilitySet> sets =
	    rf::PlanVisibility(cands, needs, reg.group_slots(), set_of);

	/* one question per user for all 50 changes: 100, not 50 x 1,000 */
	assert_int_equal(sets.size(), 100);
	for (const rf::VisibilitySet &s : sets)
	{
		assert_int_equal(s.relid, 100);
		assert_int_equal(s.changes.size(), 50);
		for (uint32_t i = 0; i < 50; i++)
			assert_int_equal(s.changes[i], i);
	}
	/* every candidate of a user points at that user's set; service_role at none */
	for (size_t i = 0; i < 50; i++)
	{
		assert_int_equal(cands[i].size(), 1001);
		for (size_t k = 0; k < cands[i].size(); k++)
		{
			int32_t set = set_of[i][k];
			if (cands[i][k]->group == service)
				assert_int_equal(set, -1);
			else
				assert_ptr_equal(sets[static_cast<size_t>(set)].group, cands[i][k]->group);
		}
	}
	for (int32_t set : set_of[50])
		assert_int_equal(set, -1); /* the DELETE */
	assert_true(cands[51].empty());
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestMatchesTableEventAndTypedFilters),
	    cmocka_unit_test(TestGroupsAndRemoval),
	    cmocka_unit_test(TestEqFiltersAreIndexed),
	    cmocka_unit_test(TestVisibilityIsBatchedPerGroupAndTable),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
