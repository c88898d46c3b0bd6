/*
 * pg_changes_engine.cpp: see pg_changes_engine.hpp.
 */
#include "postgres_changes/pg_changes_engine.hpp"

#include "postgres_changes/changes_payload.hpp"
#include "server/hub.hpp"
#include "base/json.hpp"
#include "base/log.hpp"
#include "postgres_changes/pg_changes_db.hpp"
#include "db/ring_reader.hpp"
#include "server/shard.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace rt::fanout
{

namespace
{

constexpr size_t kMaxQueuedChanges = 65536; /* the reader waits beyond this */
constexpr size_t kBatchChanges = 2048;      /* changes per RLS round trip */
constexpr int64_t kPrivilegeTtlMs = 1000;   /* a REVOKE takes effect within this */
constexpr int64_t kReadyWarnMs = 10000;     /* log a subscription not confirmed by then */
constexpr int64_t kRetryMs = 2000;          /* database unavailable: retry joins after */
constexpr int64_t kDbCheckMs = 1000;        /* publication changes, server restarts and outages */

std::string
SystemPayload(std::string_view status, std::string_view message, std::string_view sub_topic)
{
	return rt::fanout::SystemPayload("postgres_changes", status, message, sub_topic);
}

FilterOp
OpFromName(std::string_view name)
{
	for (FilterOp op : {FilterOp::kEq, FilterOp::kNeq, FilterOp::kLt, FilterOp::kLte, FilterOp::kGt,
	                    FilterOp::kGte, FilterOp::kIn, FilterOp::kLike, FilterOp::kIlike,
	                    FilterOp::kIs, FilterOp::kMatch, FilterOp::kImatch, FilterOp::kIsDistinct})
		if (FilterOpName(op) == name)
			return op;
	return FilterOp::kEq;
}

IsKeyword
KeywordFromJson(std::string_view rhs)
{
	if (rhs == "\"null\"")
		return IsKeyword::kNull;
	if (rhs == "\"true\"")
		return IsKeyword::kTrue;
	if (rhs == "\"false\"")
		return IsKeyword::kFalse;
	if (rhs == "\"unknown\"")
		return IsKeyword::kUnknown;
	return IsKeyword::kNone;
}

} // namespace

/* Engine-thread state. */
struct PgChangesEngine::Impl
{
	explicit Impl(const std::string &conninfo)
	    : db(conninfo, "realtime_subscription_manager"), rls_db(conninfo, "realtime_rls")
	{
	}

	PgChangesDb db;     /* joins, publication: engine thread */
	PgChangesDb rls_db; /* visibility and privileges: checker thread */
	PgChangesRegistry registry;
	std::vector<Pending> pending;
	std::deque<Op> retry; /* joins the database could not check yet */
	int64_t retry_at_ms = 0;
	struct Privileges
	{
		int64_t checked_ms = 0;
		bool ok = false;
		bool unknown = false; /* the check failed (no answer): asked again next batch */
		std::vector<uint32_t> attnums;
	};
	std::map<std::pair<std::string, uint32_t>, Privileges> privileges;
	bool db_down_logged = false;
	bool reconfirm = false;   /* the server restarted or went away: confirm every channel again */
	bool outage_told = false; /* the joined channels were told the database is unreachable */
	uint64_t popped = 0;      /* changes taken from the queue */
	/* confirmation point: once popped >= enq, every commit before lsn was processed */
	bool snap_have = false;
	uint64_t snap_lsn = 0;
	uint64_t snap_enq = 0;
	/* registered joins by channel generation: matched again when the publication changes */
	std::unordered_map<uint64_t, PgJoinRequest> joined;
	std::string publication;
	bool publication_known = false;
	int64_t publication_checked_ms = 0;
};

/* One batch of ring changes, from matching to emitting (the checker works in between). */
struct PgChangesEngine::Batch
{
	std::deque<std::string> raw; /* the records; changes point into them */
	std::vector<RingChange> changes;
	std::vector<std::vector<const PgSubscription *>> cands;
	std::vector<std::vector<int32_t>> set_of;
	std::vector<VisibilitySet> sets;
	std::vector<VisibilityCheck> vis;
	std::vector<PrivilegeCheck> privs;
	int64_t now = 0;
	bool db_ok = true;
	std::string db_err;
};

PgChangesEngine::PgChangesEngine(std::string conninfo, Hub &hub, std::weak_ptr<Tenant> owner)
    : hub_(hub), owner_(std::move(owner)), impl_(std::make_unique<Impl>(conninfo))
{
}

PgChangesEngine::~PgChangesEngine() { Stop(); }

void
PgChangesEngine::Start()
{
	checker_ = std::thread([this] { CheckerRun(); });
	thread_ = std::thread([this] { Run(); });
}

/*
 * The checker thread runs one batch's RLS and privilege round trip on its
 * own connection while the engine thread emits the batch before it and
 * matches the one after: the database and the engine work at the same time.
 */
void
PgChangesEngine::CheckerRun()
{
	/* connect now: the first batch should not wait for it (a failure is retried per batch) */
	std::string err;
	if (!impl_->rls_db.Connect(err))
		Log(LogLevel::kWarning, "changes", "RLS connection: %s", err.c_str());
	std::unique_lock<std::mutex> lock(check_mu_);
	for (;;)
	{
		check_cv_.wait(lock, [this] { return stop_checker_ || (job_ != nullptr && !job_done_); });
		if (stop_checker_)
			return;
		Batch *b = job_;
		lock.unlock();
		b->db_ok = impl_->rls_db.RunBatch(b->vis, b->privs, b->db_err);
		lock.lock();
		job_done_ = true;
		check_cv_.notify_all();
	}
}

void
PgChangesEngine::Submit(Batch *b)
{
	std::lock_guard<std::mutex> lock(check_mu_);
	job_ = b;
	job_done_ = false;
	check_cv_.notify_all();
}

void
PgChangesEngine::Await()
{
	std::unique_lock<std::mutex> lock(check_mu_);
	check_cv_.wait(lock, [this] { return job_ == nullptr || job_done_ || stop_checker_; });
	job_ = nullptr;
}

void
PgChangesEngine::Stop()
{
	{
		std::lock_guard<std::mutex> lock(mu_);
		stop_ = true;
	}
	cv_.notify_all();
	room_cv_.notify_all();
	if (thread_.joinable())
		thread_.join();
	{
		std::lock_guard<std::mutex> lock(check_mu_);
		stop_checker_ = true;
	}
	check_cv_.notify_all();
	if (checker_.joinable())
		checker_.join();
}

void
PgChangesEngine::Join(PgJoinRequest req)
{
	std::lock_guard<std::mutex> lock(mu_);
	ops_.push_back(Op{Op::Kind::kJoin, std::move(req), 0, 0});
	cv_.notify_one();
}

void
PgChangesEngine::Leave(uint64_t session_id, uint64_t gen)
{
	std::lock_guard<std::mutex> lock(mu_);
	ops_.push_back(Op{Op::Kind::kLeave, {}, session_id, gen});
	cv_.notify_one();
}

void
PgChangesEngine::Rejoin(PgJoinRequest req)
{
	std::lock_guard<std::mutex> lock(mu_);
	/*
	 * A rejoin of this channel still queued gets the newer claims instead: a
	 * client sending token after token costs one check, not one per token.
	 * The queue holds at most one rejoin per channel, so the scan is short.
	 */
	for (auto it = ops_.rbegin(); it != ops_.rend(); ++it)
	{
		if (it->kind == Op::Kind::kRejoin && it->join.channel == req.channel)
		{
			it->join = std::move(req);
			return;
		}
		if (it->kind != Op::Kind::kRejoin && it->join.channel == req.channel)
			break; /* its join is queued after an older rejoin: keep the order */
	}
	ops_.push_back(Op{Op::Kind::kRejoin, std::move(req), 0, 0});
	cv_.notify_one();
}

void
PgChangesEngine::OnChange(const void *payload, uint32_t len)
{
	std::unique_lock<std::mutex> lock(mu_);
	room_cv_.wait(lock, [this] { return stop_ || changes_.size() < kMaxQueuedChanges; });
	if (stop_)
		return;
	changes_.emplace_back(static_cast<const char *>(payload), len);
	enqueued_++;
	if (changes_.size() == 1)
		cv_.notify_one();
}

/* Pushes of one engine round, gathered per shard and posted together. */
class PgOutbox
{
public:
	PgOutbox(Hub &hub, std::shared_ptr<Tenant> tenant) : hub_(hub), tenant_(std::move(tenant)) {}
	~PgOutbox() { Flush(); }

	Delivery &
	For(int shard)
	{
		auto &d = per_shard_[shard];
		if (!d)
		{
			d = std::make_shared<Delivery>();
			d->tenant = tenant_;
		}
		return *d;
	}
	void
	System(const ChannelRef &ch, std::string payload, bool ready = false)
	{
		ChannelPush p;
		p.session_id = ch.session_id;
		p.gen = ch.gen;
		p.topic = ch.topic;
		p.event = "system";
		p.head = std::move(payload);
		p.ready = ready;
		For(ch.shard).pushes.push_back(std::move(p));
	}
	/* ch missed one change, its RLS unanswered: its shard notes it (Shard::NoteDeliveryLost) */
	void
	Unanswered(const ChannelRef &ch)
	{
		auto &d = lost_[ch.shard];
		if (!d)
		{
			d = std::make_shared<Delivery>();
			d->tenant = tenant_;
			d->lost = LossReason::kRlsUnknown;
		}
		ChannelPush p;
		p.session_id = ch.session_id;
		p.gen = ch.gen;
		p.topic = ch.topic;
		d->pushes.push_back(std::move(p));
	}
	void
	Flush()
	{
		for (auto *m : {&per_shard_, &lost_})
		{
			for (auto &[shard, d] : *m)
				if (d && !d->pushes.empty())
					hub_.PostTo(shard, std::move(d));
			m->clear();
		}
	}

private:
	Hub &hub_;
	std::shared_ptr<Tenant> tenant_;
	std::map<int, std::shared_ptr<Delivery>> per_shard_;
	std::map<int, std::shared_ptr<Delivery>> lost_; /* Unanswered() */
};

void
PgChangesEngine::Run()
{
	Impl &st = *impl_;
	std::deque<Op> ops;
	std::deque<std::string> raw;
	std::unique_ptr<Batch> inflight; /* with the checker */
	for (;;)
	{
		{
			std::unique_lock<std::mutex> lock(mu_);
			auto ready = [this] { return stop_ || !ops_.empty() || !changes_.empty(); };
			/* with a batch in flight, no sleep: finish it, taking whatever came meanwhile */
			if (!inflight)
			{
				if (!st.pending.empty() || !st.retry.empty())
					cv_.wait_for(lock, std::chrono::milliseconds(5), ready);
				else if (!st.joined.empty())
					cv_.wait_for(lock, std::chrono::milliseconds(kDbCheckMs), ready);
				else
					cv_.wait(lock, ready);
			}
			if (stop_)
			{
				if (inflight)
					Await();
				return;
			}
			ops.swap(ops_);
			if (!st.snap_have && reader_ != nullptr)
			{
				/* the reader publishes consumed_lsn before queueing that record */
				st.snap_lsn = reader_->consumed_lsn();
				st.snap_enq = enqueued_;
				st.snap_have = true;
			}
			size_t n = std::min(changes_.size(), kBatchChanges);
			for (size_t i = 0; i < n; i++)
			{
				raw.push_back(std::move(changes_.front()));
				changes_.pop_front();
			}
		}
		room_cv_.notify_all();
		PgOutbox out(hub_, owner_.lock());
		if (!st.retry.empty() && NowMs() >= st.retry_at_ms)
		{
			/* joins waiting for the database go first, in their order */
			while (!st.retry.empty())
			{
				ops.push_front(std::move(st.retry.back()));
				st.retry.pop_back();
			}
		}
		if (!st.joined.empty() && NowMs() - st.publication_checked_ms >= kDbCheckMs)
			CheckDatabase(ops, out);
		if (!ops.empty())
		{
			/* the batch in flight points at subscriptions these may remove: finish it first */
			if (inflight)
			{
				Await();
				Emit(*inflight, out);
				inflight.reset();
			}
			ApplyOps(ops, out);
		}
		ops.clear();
		std::unique_ptr<Batch> next;
		if (!raw.empty())
		{
			st.popped += raw.size();
			next = Prepare(raw);
			raw.clear();
		}
		if (inflight)
			Await();
		bool next_waits = next && (!next->vis.empty() || !next->privs.empty());
		if (next_waits)
			Submit(next.get());
		if (inflight)
		{
			Emit(*inflight, out);
			inflight.reset();
		}
		if (next && next_waits)
			inflight = std::move(next);
		else if (next)
			Emit(*next, out);
		CheckReady(out);
		out.Flush();
	}
}

void
PgChangesEngine::ApplyOps(std::deque<Op> &ops, PgOutbox &out)
{
	Impl &st = *impl_;
	/* one round trip checks every join and token change of this round */
	std::vector<JoinCheck> checks(ops.size());
	std::vector<JoinCheck *> asked;
	for (size_t i = 0; i < ops.size(); i++)
	{
		if (ops[i].kind == Op::Kind::kLeave)
			continue;
		checks[i].role = ops[i].join.role;
		checks[i].claims_json = ops[i].join.claims_json;
		for (const PgJoinEntry &e : ops[i].join.entries)
			checks[i].entries.push_back(e.params);
		asked.push_back(&checks[i]);
	}
	uint64_t lsn = 0;
	std::string err;
	if (!asked.empty() && !st.db.CheckJoins(asked, lsn, err))
	{
		if (!st.db_down_logged)
			Log(LogLevel::kWarning, "changes",
			    "database unavailable, postgres_changes joins wait for it: %s", err.c_str());
		st.db_down_logged = true;
		for (Op &op : ops)
		{
			if (op.kind != Op::Kind::kLeave)
			{
				/* as upstream: reported, and tried again (PROTOCOL.md 6.6) */
				if (!op.told && !op.quiet)
					out.System(*op.join.channel, SystemPayload("error", err, op.join.sub_topic));
				op.told = true;
				st.retry.push_back(std::move(op));
				continue;
			}
			Forget(op.session_id, op.gen);
			/* a channel that left before its join was checked is forgotten */
			std::erase_if(st.retry,
			              [&](const Op &r)
			              {
				              return r.join.channel->session_id == op.session_id &&
				                     (op.gen == 0 || r.join.channel->gen == op.gen);
			              });
			st.registry.RemoveChannel(op.session_id, op.gen);
		}
		st.retry_at_ms = NowMs() + kRetryMs;
		return;
	}
	st.db_down_logged = false;
	for (size_t i = 0; i < ops.size(); i++)
	{
		Op &op = ops[i];
		switch (op.kind)
		{
		case Op::Kind::kLeave:
			Forget(op.session_id, op.gen);
			break;
		case Op::Kind::kRejoin:
		{
			/*
			 * A new token (the new role may not read a filter's column) or a
			 * changed publication: checked again as a join and swapped in the
			 * same round, so no change falls between the old subscription and
			 * the new one.
			 */
			const ChannelRef &ch = *op.join.channel;
			std::vector<std::pair<uint32_t, uint32_t>> before =
			    st.registry.ChannelSubscriptions(ch.session_id, ch.gen);
			bool confirmed =
			    std::none_of(st.pending.begin(), st.pending.end(),
			                 [&](const Pending &p) { return p.channel->gen == ch.gen; });
			Forget(ch.session_id, ch.gen);
			if (Register(op.join, checks[i], lsn, out) && op.quiet && confirmed &&
			    st.registry.ChannelSubscriptions(ch.session_id, ch.gen) == before)
				st.pending.pop_back(); /* confirmed before, the same tables: nothing to tell */
			break;
		}
		case Op::Kind::kJoin:
			Register(op.join, checks[i], lsn, out);
			break;
		}
	}
}

/*
 * Each second while channels are joined: the publication's tables (a change matches them
 * again, quietly) and the server itself. A broken connection means a restart or an outage:
 * the channels are told of an outage once, with the database's error (PROTOCOL.md 6.6), and
 * when it answers again every channel is checked and confirmed again, so each gets
 * "Subscribed to PostgreSQL" once the ring is past the server's new WAL position.
 */
void
PgChangesEngine::CheckDatabase(std::deque<Op> &ops, PgOutbox &out)
{
	Impl &st = *impl_;
	st.publication_checked_ms = NowMs();
	std::string now, err;
	bool ok = st.db.PublicationTables(now, err);
	if (st.db.TakeLost())
		st.reconfirm = true;
	if (!ok)
	{
		st.reconfirm = true;
		if (!st.outage_told)
		{
			Log(LogLevel::kWarning, "changes", "database unreachable, %zu channels told: %s",
			    st.joined.size(), err.c_str());
			for (const auto &[gen, req] : st.joined)
				out.System(*req.channel, SystemPayload("error", err, req.sub_topic));
		}
		st.outage_told = true;
		return;
	}
	bool changed = st.publication_known && now != st.publication;
	if (st.reconfirm || changed)
	{
		Log(LogLevel::kInfo, "changes", "%s: matching %zu channels again",
		    st.reconfirm ? "the database connection was lost"
		                 : "publication supabase_realtime changed",
		    st.joined.size());
		for (const auto &[gen, req] : st.joined)
		{
			Op op{Op::Kind::kRejoin, req, 0, 0};
			op.quiet = !st.reconfirm;
			ops.push_front(std::move(op));
		}
	}
	st.reconfirm = false;
	st.outage_told = false;
	st.publication = std::move(now);
	st.publication_known = true;
}

void
PgChangesEngine::Forget(uint64_t session_id, uint64_t gen)
{
	Impl &st = *impl_;
	st.registry.RemoveChannel(session_id, gen);
	std::erase_if(
	    st.joined, [&](const auto &kv)
	    { return kv.second.channel->session_id == session_id && (gen == 0 || kv.first == gen); });
	std::erase_if(
	    st.pending, [&](const Pending &p)
	    { return p.channel->session_id == session_id && (gen == 0 || p.channel->gen == gen); });
}

bool
PgChangesEngine::Register(PgJoinRequest &req, const JoinCheck &check, uint64_t lsn, PgOutbox &out)
{
	Impl &st = *impl_;
	const ChannelRef &ch = *req.channel;
	std::optional<std::string> error;
	std::vector<std::string> warnings;
	for (const EntryOutcome &o : check.outcomes)
	{
		if (!error && o.error && !o.error->empty())
			error = *o.error;
		warnings.insert(warnings.end(), o.warnings.begin(), o.warnings.end());
	}
	/* the database said yes: now what matching needs, compiled once */
	std::vector<std::unique_ptr<PgSubscription>> subs;
	for (size_t e = 0; !error && e < req.entries.size(); e++)
	{
		const PgJoinEntry &entry = req.entries[e];
		for (const MatchedTable &t : check.outcomes[e].tables)
		{
			auto sub = std::make_unique<PgSubscription>();
			sub->channel = req.channel;
			sub->id = entry.id;
			sub->event = entry.params.event;
			sub->relid = t.relid;
			sub->select = t.select;
			for (const CheckedFilter &cf : t.filters)
			{
				PgFilter f;
				f.column = cf.column;
				f.op = OpFromName(cf.op);
				f.negated = cf.negated;
				if (f.op == FilterOp::kIs)
					f.keyword = KeywordFromJson(cf.rhs_json);
				Result<CompiledFilter> c =
				    CompileFilter(f, cf.typname, cf.rhs_json, cf.text_bytewise);
				if (!c.ok())
				{
					error = PgChangesExceptionText(entry.params, c.error().message);
					break;
				}
				sub->filters.push_back(SubFilter{cf.column, std::move(c.value()), cf.rhs_json});
			}
			if (error)
				break;
			subs.push_back(std::move(sub));
		}
	}
	if (error)
	{
		out.System(ch, SystemPayload("error", *error, req.sub_topic));
		for (const std::string &w : warnings)
			out.System(ch, SystemPayload("error", w, req.sub_topic));
		return false;
	}
	ClaimsGroup *g = st.registry.Group(req.role, req.claims_json, req.sub, check.bypass_rls);
	for (auto &sub : subs)
	{
		sub->group = g;
		st.registry.Add(std::move(sub));
	}
	st.registry.DropIfUnused(g);
	for (const std::string &w : warnings)
		out.System(ch, SystemPayload("warning", w, req.sub_topic));
	st.pending.push_back(Pending{req.channel, req.sub_topic, lsn, NowMs(), false});
	st.joined[ch.gen] = req;
	return true;
}

void
PgChangesEngine::CheckReady(PgOutbox &out)
{
	Impl &st = *impl_;
	if (!st.snap_have || st.popped < st.snap_enq)
		return;
	/* every commit before snap_lsn has been matched against the registry */
	uint64_t reached = st.snap_lsn;
	st.snap_have = false;
	int64_t now = NowMs();
	std::erase_if(
	    st.pending,
	    [&](Pending &p)
	    {
		    if (p.lsn != 0 && p.lsn <= reached)
		    {
			    out.System(*p.channel, SystemPayload("ok", "Subscribed to PostgreSQL", p.sub_topic),
			               true);
			    return true;
		    }
		    if (!p.warned && now - p.since_ms > kReadyWarnMs)
		    {
			    p.warned = true;
			    out.System(*p.channel, SystemPayload("error",
			                                         "Postgres Changes are not flowing yet: the "
			                                         "ring has not reached this subscription "
			                                         "(is the database's realtime decoder "
			                                         "running? see realtime.stats()); "
			                                         "\"Subscribed to PostgreSQL\" follows when "
			                                         "it does",
			                                         p.sub_topic));
			    Log(LogLevel::kWarning, "changes",
			        "subscription on %s not confirmed after %lld ms: the ring is at "
			        "%llX, the subscription at %llX (is the decoder running? see "
			        "realtime.stats())",
			        p.channel->topic.c_str(), static_cast<long long>(now - p.since_ms),
			        static_cast<unsigned long long>(reached),
			        static_cast<unsigned long long>(p.lsn));
		    }
		    return false;
	    });
}

/* Prepare's steps: match the batch, then plan its one round trip of checks */
struct PgChangesEngine::Planner
{
	Impl &st;
	Batch &b;

	/* Decode and match every record; false when no subscription wants any of them */
	bool
	Match(std::vector<uint8_t> &needs_check)
	{
		size_t n = b.raw.size();
		b.changes.resize(n);
		b.cands.resize(n);
		needs_check.assign(n, 0);
		bool any = false;
		for (size_t i = 0; i < n; i++)
		{
			RingChange &c = b.changes[i];
			if (!DecodeRingChange(b.raw[i].data(), static_cast<uint32_t>(b.raw[i].size()), c))
				continue;
			st.registry.Match(c, b.cands[i]);
			if (b.cands[i].empty())
				continue;
			any = true;
			bool has_pk = std::any_of(c.columns.begin(), c.columns.end(),
			                          [](const RingColumn &col) { return col.pk; });
			needs_check[i] = c.rls() && c.action != RingChange::Action::kDelete && has_pk;
		}
		return any;
	}

	/* [{"pk":value,...},...] of the changes of one set */
	std::shared_ptr<const std::string>
	KeysJson(const std::vector<uint32_t> &change_indexes) const
	{
		auto json = std::make_shared<std::string>("[");
		for (uint32_t ci : change_indexes)
		{
			*json += json->size() > 1 ? ",{" : "{";
			bool first_key = true;
			for (const RingColumn &col : b.changes[ci].columns)
			{
				if (!col.pk || col.new_value.empty())
					continue;
				if (!first_key)
					*json += ',';
				first_key = false;
				json::AppendQuoted(*json, col.name);
				*json += ':';
				*json += col.new_value;
			}
			*json += '}';
		}
		*json += ']';
		return json;
	}

	/* One visibility check per (group, table) set: role, claims, table, keys */
	void
	VisibilityChecks(const std::vector<uint8_t> &needs_check)
	{
		b.sets = PlanVisibility(b.cands, needs_check, st.registry.group_slots(), b.set_of);
		b.vis.resize(b.sets.size());
		/* the groups of one table usually ask about the same changes: one key list for them */
		std::map<std::vector<uint32_t>, std::shared_ptr<const std::string>> key_lists;
		for (size_t s = 0; s < b.sets.size(); s++)
		{
			VisibilityCheck &v = b.vis[s];
			const VisibilitySet &set = b.sets[s];
			const ClaimsGroup *g = set.group;
			const RingChange &first = b.changes[set.changes[0]];
			v.role = &g->role;
			v.claims_json = &g->claims_json;
			v.sub = &g->sub;
			v.relid = set.relid;
			v.schema = first.schema;
			v.table = first.table;
			for (const RingColumn &col : first.columns)
				if (col.pk)
				{
					v.pk_columns.emplace_back(col.name);
					v.pk_type = col.type;
				}
			v.count = set.changes.size();
			if (v.pk_columns.size() == 1)
				for (uint32_t ci : set.changes)
					for (const RingColumn &col : b.changes[ci].columns)
						if (col.pk)
							v.key_values.push_back(col.new_value);
			std::shared_ptr<const std::string> &keys = key_lists[set.changes];
			if (!keys)
				keys = KeysJson(set.changes);
			v.keys_json = keys;
		}
	}

	/* The (group, table) pairs of this batch, each once */
	std::vector<std::pair<const ClaimsGroup *, uint32_t>>
	Pairs() const
	{
		std::vector<std::pair<const ClaimsGroup *, uint32_t>> pairs;
		std::unordered_map<uint32_t, std::vector<uint8_t>> seen; /* table -> group index seen */
		for (const std::vector<const PgSubscription *> &cands : b.cands)
		{
			std::vector<uint8_t> *mark = nullptr;
			for (const PgSubscription *s : cands)
			{
				if (mark == nullptr)
				{
					mark = &seen[s->relid];
					mark->resize(st.registry.group_slots(), 0);
				}
				if (!(*mark)[s->group->index])
				{
					(*mark)[s->group->index] = 1;
					pairs.emplace_back(s->group, s->relid);
				}
			}
		}
		return pairs;
	}

	/* Privileges are per (role, table): ask for those not cached or past their TTL */
	void
	PrivilegeChecks()
	{
		std::map<std::pair<std::string, uint32_t>, bool> asked;
		for (const auto &[g, relid] : Pairs())
		{
			auto key = std::make_pair(g->role, relid);
			auto it = st.privileges.find(key);
			if (it != st.privileges.end() && b.now - it->second.checked_ms < kPrivilegeTtlMs)
				continue;
			if (asked.emplace(key, true).second)
				b.privs.push_back(PrivilegeCheck{&g->role, relid, false, {}});
		}
	}
};

std::unique_ptr<PgChangesEngine::Batch>
PgChangesEngine::Prepare(std::deque<std::string> &raw_in)
{
	auto batch = std::make_unique<Batch>();
	batch->raw.swap(raw_in);
	Planner plan{*impl_, *batch};
	std::vector<uint8_t> needs_check;
	if (!plan.Match(needs_check))
		return nullptr;
	/* one round trip: visibility per (group, table), privileges per (role, table) */
	plan.VisibilityChecks(needs_check);
	batch->now = NowMs();
	plan.PrivilegeChecks();
	return batch;
}

/*
 * Emit's state over one batch, reused from one change to the next: per group
 * what it may see of the current change, the output variants of that change
 * (one payload text each, built on first use) and the channels they go to.
 */
struct PgChangesEngine::Emitter
{
	struct RoleView /* what a group may see of one change: filled at its first candidate */
	{
		uint64_t stamp = 0; /* the change it describes */
		const Impl::Privileges *priv = nullptr;
		bool priv_unknown = false; /* priv is null because the database did not answer */
		ChangeError error = ChangeError::kNone;
		int8_t visible = -1; /* RLS answer for this change; -1: not looked at yet */
	};
	struct Variant
	{
		const Impl::Privileges *priv;
		const std::optional<std::vector<std::string>> *select;
		ChangeError error;
		std::string data;                            /* built on first use */
		std::vector<std::pair<int, int32_t>> shared; /* (shard, index in its Delivery) */
	};
	struct ChannelOut
	{
		const ChannelRef *channel;
		std::vector<std::pair<size_t, std::vector<uint32_t>>> ids; /* per variant */
	};

	Emitter(Impl &st_in, Batch &b_in, PgOutbox &out_in)
	    : st(st_in), b(b_in), out(out_in), slots(st_in.registry.group_slots()), roles(slots)
	{
	}

	/* Change i, in commit order: one push per channel and output variant */
	void
	Change(size_t i)
	{
		const RingChange &c = b.changes[i];
		is_delete = c.action == RingChange::Action::kDelete;
		has_pk = std::any_of(c.columns.begin(), c.columns.end(),
		                     [](const RingColumn &col) { return col.pk; });
		stamp++;
		privs_here = &privileges_of[c.relid];
		privs_here->resize(slots, &kNotLooked);
		channel_index.clear();
		variants.clear();
		channels.clear();
		unanswered.clear();
		for (size_t k = 0; k < b.cands[i].size(); k++)
		{
			const PgSubscription *s = b.cands[i][k];
			RoleView &rv = View(s, c);
			int set = b.set_of[i][k];
			bool needs_rls = rv.error == ChangeError::kNone && set >= 0;
			if (rv.priv == nullptr || (needs_rls && !Visible(rv, i, k)))
			{
				/* refused, or not known (the database did not answer): the latter is told */
				if (rv.priv_unknown ||
				    (rv.priv != nullptr && (!b.db_ok || b.vis[static_cast<size_t>(set)].failed)))
					unanswered.push_back(s->channel.get());
				continue;
			}
			Route(s, rv);
		}
		Push(c, is_delete && c.rls());
		TellUnanswered();
	}

	/* Channels that may have had change i had the database answered: one loss each */
	void
	TellUnanswered()
	{
		std::sort(unanswered.begin(), unanswered.end());
		unanswered.erase(std::unique(unanswered.begin(), unanswered.end()), unanswered.end());
		for (const ChannelRef *ch : unanswered)
			if (!channel_index.contains(ch))
				out.Unanswered(*ch);
	}

	/* The group's view of the change, looked up at its first candidate */
	RoleView &
	View(const PgSubscription *s, const RingChange &c)
	{
		RoleView &rv = roles[s->group->index];
		if (rv.stamp == stamp)
			return rv;
		rv = RoleView{stamp, nullptr, false, ChangeError::kNone, -1};
		const Impl::Privileges *&p = (*privs_here)[s->group->index];
		if (p == &kNotLooked)
		{
			auto pit = st.privileges.find(std::make_pair(s->group->role, s->relid));
			p = pit != st.privileges.end() ? &pit->second : nullptr;
		}
		rv.priv = p != nullptr && p->ok ? p : nullptr;
		rv.priv_unknown = p != nullptr && p->unknown;
		if (rv.priv == nullptr || is_delete)
			return rv;
		const std::vector<uint32_t> &sel = rv.priv->attnums;
		if (!has_pk)
			rv.error = ChangeError::kNoPrimaryKey;
		else if (std::any_of(c.columns.begin(), c.columns.end(),
		                     [&](const RingColumn &col) {
			                     return col.pk &&
			                            !std::binary_search(sel.begin(), sel.end(), col.attnum);
		                     }))
			rv.error = ChangeError::kUnauthorized;
		return rv;
	}

	/* The RLS answer for candidate k of change i, once per group and change */
	bool
	Visible(RoleView &rv, size_t i, size_t k)
	{
		if (rv.visible < 0)
		{
			const VisibilitySet &set = b.sets[static_cast<size_t>(b.set_of[i][k])];
			const VisibilityCheck &v = b.vis[static_cast<size_t>(b.set_of[i][k])];
			auto pos =
			    std::lower_bound(set.changes.begin(), set.changes.end(), static_cast<uint32_t>(i)) -
			    set.changes.begin();
			rv.visible =
			    static_cast<size_t>(pos) < v.visible.size() && v.visible[static_cast<size_t>(pos)];
		}
		return rv.visible != 0;
	}

	/* The subscription's variant, and its id in the channel's list for that variant */
	void
	Route(const PgSubscription *s, const RoleView &rv)
	{
		size_t vi = 0;
		for (; vi < variants.size(); vi++)
		{
			const Variant &v = variants[vi];
			if (v.priv == rv.priv && v.error == rv.error &&
			    (v.select == &s->select || *v.select == s->select))
				break;
		}
		if (vi == variants.size())
			variants.push_back(Variant{rv.priv, &s->select, rv.error, {}, {}});
		auto [cit, fresh] = channel_index.emplace(s->channel.get(), channels.size());
		if (fresh)
			channels.push_back(ChannelOut{s->channel.get(), {}});
		auto &per = channels[cit->second].ids;
		size_t pi = 0;
		while (pi < per.size() && per[pi].first != vi)
			pi++;
		if (pi == per.size())
			per.emplace_back(vi, std::vector<uint32_t>{});
		if (std::find(per[pi].second.begin(), per[pi].second.end(), s->id) == per[pi].second.end())
			per[pi].second.push_back(s->id);
	}

	/* The variant's payload text: the columns its select and privileges allow */
	void
	Build(Variant &v, const RingChange &c, bool pk_only_old)
	{
		ColumnMask mask(c.columns.size(), 0);
		const std::vector<uint32_t> &sel = v.priv->attnums;
		for (size_t j = 0; j < c.columns.size(); j++)
		{
			const RingColumn &col = c.columns[j];
			bool chosen = !*v.select || col.pk ||
			              std::binary_search((*v.select)->begin(), (*v.select)->end(), col.name);
			mask[j] = chosen && std::binary_search(sel.begin(), sel.end(), col.attnum);
		}
		AppendChangeData(v.data, c, mask, pk_only_old, v.error);
	}

	/* One push per channel and variant; each variant's text shared once per shard */
	void
	Push(const RingChange &c, bool pk_only_old)
	{
		for (const ChannelOut &co : channels)
		{
			int shard = co.channel->shard;
			Delivery &d = out.For(shard);
			for (const auto &[vi, ids] : co.ids)
			{
				Variant &v = variants[vi];
				if (v.data.empty())
					Build(v, c, pk_only_old);
				auto sit = std::find_if(v.shared.begin(), v.shared.end(),
				                        [shard](const auto &e) { return e.first == shard; });
				if (sit == v.shared.end())
				{
					d.shared.push_back(v.data);
					v.shared.emplace_back(shard, static_cast<int32_t>(d.shared.size() - 1));
					sit = v.shared.end() - 1;
				}
				ChannelPush p;
				p.session_id = co.channel->session_id;
				p.gen = co.channel->gen;
				p.topic = co.channel->topic;
				p.event = "postgres_changes";
				p.head = ChangesPayloadHead(ids);
				p.shared = sit->second;
				p.tail = kChangesPayloadTail;
				d.pushes.push_back(std::move(p));
				pushes++;
			}
		}
	}

	static inline const Impl::Privileges kNotLooked{};

	Impl &st;
	Batch &b;
	PgOutbox &out;
	/* per group index; and per table, each group's privileges (looked up once per batch) */
	const uint32_t slots;
	std::vector<RoleView> roles;
	std::unordered_map<uint32_t, std::vector<const Impl::Privileges *>> privileges_of;
	std::unordered_map<const ChannelRef *, size_t> channel_index;
	std::vector<Variant> variants;
	std::vector<ChannelOut> channels;
	std::vector<const ChannelRef *> unanswered; /* the current change's, see TellUnanswered */
	uint64_t stamp = 0;
	uint64_t pushes = 0;
	/* the current change */
	bool is_delete = false;
	bool has_pk = false;
	std::vector<const Impl::Privileges *> *privs_here = nullptr;
};

void
PgChangesEngine::Emit(Batch &b, PgOutbox &out)
{
	Impl &st = *impl_;
	if (!b.db_ok)
	{
		/* nothing is known: deliver nothing that needed an answer, and say so (Emitter) */
		Log(LogLevel::kWarning, "changes", "RLS checks failed, changes withheld: %s",
		    b.db_err.c_str());
		for (VisibilityCheck &v : b.vis)
			v.visible.assign(v.count, 0);
		for (PrivilegeCheck &p : b.privs)
			p.ok = false;
	}
	for (PrivilegeCheck &p : b.privs)
	{
		Impl::Privileges &cached = st.privileges[std::make_pair(*p.role, p.relid)];
		cached.checked_ms = b.db_ok ? b.now : 0; /* unanswered: asked again next batch */
		cached.ok = p.ok;
		cached.unknown = !b.db_ok;
		cached.attnums = std::move(p.attnums);
	}
	Emitter e(st, b, out);
	for (size_t i = 0; i < b.changes.size(); i++)
		if (!b.cands[i].empty())
			e.Change(i);
	delivered_.fetch_add(e.pushes, std::memory_order_relaxed);
}

} // namespace rt::fanout
