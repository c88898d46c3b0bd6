/*
 * pg_changes_registry.hpp: who subscribed to which table's changes, and the
 * matching and grouping of one batch of ring changes (PROTOCOL.md 6.4).
 *
 * Owned by the Postgres Changes engine's thread (no locks). Subscribers are
 * grouped by role + claims: RLS visibility is asked once per group and
 * table for a whole batch of changes (PlanVisibility), never per
 * subscriber.
 */
#pragma once

#include "postgres_changes/pg_changes_params.hpp"
#include "postgres_changes/pg_filter_eval.hpp"
#include "db/ring_change.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace rt::fanout
{

/* The channel a subscription delivers to: found again by its shard. */
struct ChannelRef
{
	int shard = 0;
	uint64_t session_id = 0;
	uint64_t gen = 0;  /* the channel's join generation (unique per process) */
	std::string topic; /* "realtime:<sub_topic>" */
};

/* Subscribers that share a role and claims: RLS gives them the same answers. */
struct ClaimsGroup
{
	std::string role;
	std::string claims_json;
	std::string sub;
	bool bypass_rls = false; /* superuser or BYPASSRLS: no visibility checks */
	uint32_t refs = 0;
	uint32_t index = 0; /* dense, below PgChangesRegistry::group_slots(): per-batch tables */
};

struct SubFilter
{
	std::string column;
	CompiledFilter filter;
	std::string rhs_json; /* the value as the database cast it (to_jsonb text) */
};

/* One postgres_changes entry of a channel, on one table. */
struct PgSubscription
{
	std::shared_ptr<const ChannelRef> channel;
	uint32_t id = 0; /* the join reply's id */
	PgEvent event = PgEvent::kAll;
	uint32_t relid = 0;
	std::vector<SubFilter> filters;
	std::optional<std::vector<std::string>> select; /* sorted; nullopt: all columns */
	ClaimsGroup *group = nullptr;
	uint64_t seq = 0; /* registration order (set by Add) */
};

class PgChangesRegistry
{
public:
	~PgChangesRegistry();
	/* The group for role + claims, made on first use; released with its subscriptions. */
	ClaimsGroup *Group(const std::string &role, const std::string &claims_json,
	                   const std::string &sub, bool bypass_rls);
	/* Forget a group Group() made that nothing took. */
	void DropIfUnused(ClaimsGroup *g);
	/* Takes a reference on sub->group. */
	void Add(std::unique_ptr<PgSubscription> sub);
	/* (id, relid) of a channel's subscriptions, sorted. */
	std::vector<std::pair<uint32_t, uint32_t>> ChannelSubscriptions(uint64_t session_id,
	                                                                uint64_t gen) const;
	/* Remove a channel's subscriptions (gen 0: every channel of the session). */
	size_t RemoveChannel(uint64_t session_id, uint64_t gen);

	/*
	 * The subscriptions change c reaches by table, event and filters (on the
	 * new values; DELETE on the old ones), appended to out in registration
	 * order. Subscriptions with an `eq` filter whose equality is equality of
	 * the rendered values (ints, uuids, text, ...) are found by that value
	 * in a hash index: a change costs what matches it, not every subscriber
	 * of its table (1,000 users filtering on their own user_id: 1 lookup).
	 */
	void Match(const RingChange &c, std::vector<const PgSubscription *> &out) const;

	size_t
	size() const
	{
		return count_;
	}
	size_t
	groups() const
	{
		return groups_.size();
	}
	/* Every live group's index is below this. */
	uint32_t
	group_slots() const
	{
		return next_index_;
	}

private:
	void Release(ClaimsGroup *g);

	/* one table's subscriptions */
	struct Table
	{
		std::vector<std::unique_ptr<PgSubscription>> all; /* registration order */
		std::vector<const PgSubscription *> scan;         /* not in an index */
		/* by column: rendered value of its eq filter -> subscriptions */
		std::vector<std::pair<std::string,
		                      std::unordered_map<std::string, std::vector<const PgSubscription *>>>>
		    eq;
	};
	static void Index(Table &t, const PgSubscription *s);

	std::unordered_map<uint32_t, Table> by_rel_;
	std::map<std::string, std::unique_ptr<ClaimsGroup>> groups_;
	size_t count_ = 0;
	uint64_t next_seq_ = 1;
	uint32_t next_index_ = 0;
	std::vector<uint32_t> free_indices_;
};

/* True when a filter passes on change c (values by column name; absent fails). */
bool FiltersPass(const std::vector<SubFilter> &filters, const RingChange &c, bool use_old);

/*
 * One visibility question of a batch: may `group` see these changes (indices
 * into the batch) of table relid?
 */
struct VisibilitySet
{
	const ClaimsGroup *group = nullptr;
	uint32_t relid = 0;
	std::vector<uint32_t> changes; /* ascending, unique */
};

/*
 * Group the (change, subscription) candidates of a batch that need an RLS
 * check into one set per (group, table). needs_check says which do: the
 * table has RLS, the action is not DELETE, the group does not bypass RLS.
 * Returns the sets; set_of[i][k] is the set index of candidates[i][k], or -1.
 */
std::vector<VisibilitySet>
PlanVisibility(const std::vector<std::vector<const PgSubscription *>> &candidates,
               const std::vector<uint8_t> &change_needs_check, uint32_t group_slots,
               std::vector<std::vector<int32_t>> &set_of);

} // namespace rt::fanout
