/*
 * pg_changes_registry.cpp: see pg_changes_registry.hpp.
 */
#include "postgres_changes/pg_changes_registry.hpp"

#include <algorithm>

namespace rt::fanout
{

PgChangesRegistry::~PgChangesRegistry() = default;

ClaimsGroup *
PgChangesRegistry::Group(const std::string &role, const std::string &claims_json,
                         const std::string &sub, bool bypass_rls)
{
	std::string key = role;
	key += '\0';
	key += claims_json;
	auto it = groups_.find(key);
	if (it == groups_.end())
	{
		auto g = std::make_unique<ClaimsGroup>();
		if (free_indices_.empty())
			g->index = next_index_++;
		else
		{
			g->index = free_indices_.back();
			free_indices_.pop_back();
		}
		g->role = role;
		g->claims_json = claims_json;
		g->sub = sub;
		it = groups_.emplace(std::move(key), std::move(g)).first;
	}
	/* the latest answer counts: a role's attributes can change */
	it->second->bypass_rls = bypass_rls;
	return it->second.get();
}

void
PgChangesRegistry::Release(ClaimsGroup *g)
{
	g->refs--;
	DropIfUnused(g);
}

void
PgChangesRegistry::DropIfUnused(ClaimsGroup *g)
{
	if (g->refs > 0)
		return;
	free_indices_.push_back(g->index);
	std::string key = g->role;
	key += '\0';
	key += g->claims_json;
	groups_.erase(key);
}

namespace
{

/* Kinds whose `eq` holds exactly when the rendered values are the same text. */
bool
IndexableEq(const SubFilter &f)
{
	if (f.filter.op != FilterOp::kEq || f.filter.negated)
		return false;
	switch (f.filter.kind)
	{
	case ValueKind::kInt:
	case ValueKind::kBool:
	case ValueKind::kText:
	case ValueKind::kUuid:
	case ValueKind::kDate:
	case ValueKind::kTimestamp:
	case ValueKind::kTimestampTz:
	case ValueKind::kTime:
		return true;
	default: /* numeric 1.0 = 1.00, floats -0 = 0, char(n) padding, other types */
		return false;
	}
}

} // namespace

void
PgChangesRegistry::Index(Table &t, const PgSubscription *s)
{
	for (const SubFilter &f : s->filters)
	{
		if (!IndexableEq(f))
			continue;
		auto col = std::find_if(t.eq.begin(), t.eq.end(),
		                        [&](const auto &e) { return e.first == f.column; });
		if (col == t.eq.end())
		{
			t.eq.emplace_back(
			    f.column, std::unordered_map<std::string, std::vector<const PgSubscription *>>{});
			col = t.eq.end() - 1;
		}
		col->second[f.rhs_json].push_back(s);
		return;
	}
	t.scan.push_back(s);
}

void
PgChangesRegistry::Add(std::unique_ptr<PgSubscription> sub)
{
	sub->group->refs++;
	sub->seq = next_seq_++;
	count_++;
	Table &t = by_rel_[sub->relid];
	Index(t, sub.get());
	t.all.push_back(std::move(sub));
}

size_t
PgChangesRegistry::RemoveChannel(uint64_t session_id, uint64_t gen)
{
	size_t removed = 0;
	for (auto it = by_rel_.begin(); it != by_rel_.end();)
	{
		Table &t = it->second;
		auto gone = [&](const PgSubscription *s)
		{ return s->channel->session_id == session_id && (gen == 0 || s->channel->gen == gen); };
		auto keep = std::stable_partition(t.all.begin(), t.all.end(),
		                                  [&](const std::unique_ptr<PgSubscription> &s)
		                                  { return !gone(s.get()); });
		if (keep != t.all.end())
		{
			std::erase_if(t.scan, gone);
			for (auto &[column, values] : t.eq)
				for (auto v = values.begin(); v != values.end();)
				{
					std::erase_if(v->second, gone);
					v = v->second.empty() ? values.erase(v) : std::next(v);
				}
			std::erase_if(t.eq, [](const auto &e) { return e.second.empty(); });
			for (auto d = keep; d != t.all.end(); ++d)
			{
				Release((*d)->group);
				removed++;
			}
			t.all.erase(keep, t.all.end());
		}
		it = t.all.empty() ? by_rel_.erase(it) : std::next(it);
	}
	count_ -= removed;
	return removed;
}

std::vector<std::pair<uint32_t, uint32_t>>
PgChangesRegistry::ChannelSubscriptions(uint64_t session_id, uint64_t gen) const
{
	std::vector<std::pair<uint32_t, uint32_t>> out;
	for (const auto &[relid, t] : by_rel_)
		for (const auto &s : t.all)
			if (s->channel->session_id == session_id && s->channel->gen == gen)
				out.emplace_back(s->id, relid);
	std::sort(out.begin(), out.end());
	return out;
}

bool
FiltersPass(const std::vector<SubFilter> &filters, const RingChange &c, bool use_old)
{
	for (const SubFilter &f : filters)
	{
		std::optional<std::string_view> value;
		for (const RingColumn &col : c.columns)
		{
			if (col.name != f.column)
				continue;
			std::string_view v = use_old ? col.old_value : col.new_value;
			if (!v.empty())
				value = v;
			break;
		}
		if (!FilterMatches(f.filter, value))
			return false;
	}
	return true;
}

void
PgChangesRegistry::Match(const RingChange &c, std::vector<const PgSubscription *> &out) const
{
	auto it = by_rel_.find(c.relid);
	if (it == by_rel_.end())
		return;
	const Table &t = it->second;
	PgEvent ev = c.action == RingChange::Action::kInsert   ? PgEvent::kInsert
	             : c.action == RingChange::Action::kUpdate ? PgEvent::kUpdate
	                                                       : PgEvent::kDelete;
	/* a DELETE has only old values: its filters look at those (PROTOCOL.md 6.4) */
	bool use_old = ev == PgEvent::kDelete;
	size_t first = out.size();
	auto consider = [&](const PgSubscription *s)
	{
		if (s->event != PgEvent::kAll && s->event != ev)
			return;
		if (!s->filters.empty() && !FiltersPass(s->filters, c, use_old))
			return;
		out.push_back(s);
	};
	for (const PgSubscription *s : t.scan)
		consider(s);
	for (const auto &eq : t.eq)
	{
		const auto &column = eq.first; /* not a structured binding: the lambda captures it */
		const auto &values = eq.second;
		auto col = std::find_if(c.columns.begin(), c.columns.end(),
		                        [&](const RingColumn &rc) { return rc.name == column; });
		if (col == c.columns.end())
			continue;
		std::string_view v = use_old ? col->old_value : col->new_value;
		if (v.empty())
			continue; /* absent: the filter fails */
		auto hit = values.find(std::string(v));
		if (hit == values.end())
			continue;
		for (const PgSubscription *s : hit->second)
			consider(s);
	}
	if (!t.eq.empty())
		std::sort(out.begin() + static_cast<ptrdiff_t>(first), out.end(),
		          [](const PgSubscription *a, const PgSubscription *b) { return a->seq < b->seq; });
}

std::vector<VisibilitySet>
PlanVisibility(const std::vector<std::vector<const PgSubscription *>> &candidates,
               const std::vector<uint8_t> &change_needs_check, uint32_t group_slots,
               std::vector<std::vector<int32_t>> &set_of)
{
	std::vector<VisibilitySet> sets;
	/* per table (a change has one): group index -> set, -1 none yet */
	std::unordered_map<uint32_t, std::vector<int32_t>> by_table;
	set_of.assign(candidates.size(), {});
	for (size_t i = 0; i < candidates.size(); i++)
	{
		set_of[i].assign(candidates[i].size(), -1);
		if (!change_needs_check[i] || candidates[i].empty())
			continue;
		std::vector<int32_t> *slots = nullptr;
		uint32_t slots_relid = 0;
		for (size_t k = 0; k < candidates[i].size(); k++)
		{
			const PgSubscription *s = candidates[i][k];
			if (s->group->bypass_rls)
				continue;
			if (slots == nullptr || slots_relid != s->relid)
			{
				slots = &by_table[s->relid];
				slots->resize(group_slots, -1);
				slots_relid = s->relid;
			}
			int32_t &at = (*slots)[s->group->index];
			if (at < 0)
			{
				at = static_cast<int32_t>(sets.size());
				sets.push_back(VisibilitySet{s->group, s->relid, {}});
			}
			VisibilitySet &set = sets[static_cast<size_t>(at)];
			if (set.changes.empty() || set.changes.back() != i)
				set.changes.push_back(static_cast<uint32_t>(i));
			set_of[i][k] = at;
		}
	}
	return sets;
}

} // namespace rt::fanout
