/*
 * pg_changes_engine.hpp: Postgres Changes, from ring records to channels
 * (PROTOCOL.md 6; ARCHITECTURE.md "Authorizer").
 *
 * Folder postgres_changes/: everything between a row change in the ring and a
 * postgres_changes push: pg_changes_params (join parameters and filters),
 * pg_filter_pattern, pg_filter_eval and pg_jsonb_scalar (filters evaluated per
 * column type), pg_changes_registry (who listens to what), this engine (its own
 * thread), pg_changes_db (its database connection: RLS and column checks),
 * changes_payload (the payload variants), pg_sqlstate (error texts) and
 * pg_changes_part (the channel part, on shard threads).
 *
 * One thread owns the subscription registry and a database connection.
 * Shards hand it joins, leaves and token changes (Join, Leave, Rejoin: any
 * thread, queued); the ring reader hands it row changes (OnChange: blocks
 * while the engine is far behind, which pauses the ring and so the decoder:
 * backpressure instead of loss). Per batch of changes it matches
 * subscriptions, asks the database once per (role + claims, table) which
 * changes RLS lets each group see and which columns each role may select
 * (one pipelined round trip), builds each payload variant once and posts one
 * Delivery per shard with a push per channel (ids spliced per channel).
 *
 * A subscription is confirmed with "Subscribed to PostgreSQL" only once the
 * ring reader has passed the WAL position taken before it was registered:
 * from then on every committed change reaches it.
 */
#pragma once

#include "postgres_changes/pg_changes_params.hpp"
#include "postgres_changes/pg_changes_registry.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rt::fanout
{

class Hub;
class Tenant;
class RingReader;
class PgOutbox;
struct JoinCheck;

struct PgJoinEntry
{
	uint32_t id = 0; /* as echoed in the join reply */
	PgChangesParams params;
};

struct PgJoinRequest
{
	std::shared_ptr<const ChannelRef> channel;
	std::string sub_topic;
	std::string role;
	std::string claims_json;
	std::string sub;
	std::vector<PgJoinEntry> entries;
};

class PgChangesEngine
{
public:
	/* owner: the tenant whose pushes these are (they carry it, for its counters) */
	PgChangesEngine(std::string conninfo, Hub &hub, std::weak_ptr<Tenant> owner = {});
	~PgChangesEngine();
	PgChangesEngine(const PgChangesEngine &) = delete;
	PgChangesEngine &operator=(const PgChangesEngine &) = delete;

	/* The reader whose consumed_lsn() confirms subscriptions; set before Start. */
	void
	SetReader(const RingReader *reader)
	{
		reader_ = reader;
	}
	void Start();
	void Stop();

	/* Any thread. */
	void Join(PgJoinRequest req);
	void Leave(uint64_t session_id, uint64_t gen); /* gen 0: the whole session */
	/* The channel's token changed: its entries checked and registered again with req's claims. */
	void Rejoin(PgJoinRequest req);

	/* Ring reader thread: one CHANGE record's payload. */
	void OnChange(const void *payload, uint32_t len);

	/* Counters, any thread. */
	uint64_t
	delivered() const
	{
		return delivered_.load(std::memory_order_relaxed);
	}

private:
	struct Op
	{
		enum class Kind
		{
			kJoin,
			kLeave,
			kRejoin,
		} kind;
		PgJoinRequest join; /* kJoin, kRejoin */
		uint64_t session_id = 0;
		uint64_t gen = 0;
		bool told = false;  /* the client heard why its join waits (database down) */
		bool quiet = false; /* publication re-check: no message if nothing changed */
	};
	struct Pending /* a registered join waiting for the ring to pass lsn */
	{
		std::shared_ptr<const ChannelRef> channel;
		std::string sub_topic;
		uint64_t lsn;
		int64_t since_ms;
		bool warned;
	};
	struct Impl;
	struct Batch;
	struct Planner; /* Prepare's steps */
	struct Emitter; /* Emit's state over one batch */

	void Run();
	void CheckerRun();
	void Submit(Batch *b);
	void Await();
	std::unique_ptr<Batch> Prepare(std::deque<std::string> &raw);
	void Emit(Batch &b, PgOutbox &out);
	void ApplyOps(std::deque<Op> &ops, PgOutbox &out);
	void Forget(uint64_t session_id, uint64_t gen);
	/* False when the join was refused (the client was told why). */
	bool Register(PgJoinRequest &req, const JoinCheck &check, uint64_t lsn, PgOutbox &out);
	void CheckDatabase(std::deque<Op> &ops, PgOutbox &out);
	void CheckReady(PgOutbox &out);

	Hub &hub_;
	std::weak_ptr<Tenant> owner_;
	const RingReader *reader_ = nullptr;
	std::unique_ptr<Impl> impl_; /* engine-thread state */
	std::thread thread_;
	std::mutex mu_;
	std::condition_variable cv_;      /* engine waits: work arrived */
	std::condition_variable room_cv_; /* reader waits: the change queue has room */
	bool stop_ = false;
	std::deque<Op> ops_;
	std::deque<std::string> changes_;
	uint64_t enqueued_ = 0; /* changes ever queued (under mu_) */
	std::atomic<uint64_t> delivered_{0};

	/* the checker thread and its one job (check_mu_) */
	std::thread checker_;
	std::mutex check_mu_;
	std::condition_variable check_cv_;
	Batch *job_ = nullptr;
	bool job_done_ = false;
	bool stop_checker_ = false;
};

} // namespace rt::fanout
