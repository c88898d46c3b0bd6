/*
 * authorizer.hpp: the read and write checks of private channels (PROTOCOL.md
 * section 8): RLS policies on realtime.messages decide who may receive and
 * send on a topic.
 *
 * Folder auth/: who may do what. auth_jwt (JWT verification: HS*, RS*, ES*,
 * EdDSA, JWKS; any thread), this authorizer and authorizer_db (RLS checks of
 * private channels; their own thread) and private_part (the channel part that
 * keeps a private channel's rights and holds messages while a check is out;
 * shard thread).
 *
 * One thread with one libpq connection (authorizer_db.hpp). Submit queues a
 * request from any thread and never waits for the database; the thread takes
 * everything queued (up to a cap) and runs it in one pipelined round trip, each
 * check in its own transaction (rolled back) so that an error affects that check
 * only. Results come back through the request's callback on the authorizer
 * thread; the caller posts them on to its own shard.
 *
 * On each (re)connect and then hourly the thread runs
 * realtime.create_messages_partitions(): a probe row needs today's partition.
 *
 * Every request is answered exactly once. done is called on the caller's
 * thread only when no authorizer thread will ever run (Submit after Stop,
 * Stop before Start: kDbUnavailable) and for a request with a NUL byte in a
 * string (denied at once: libpq would cut the text there). Never call Stop
 * from a done callback.
 */
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace rt::fanout
{

enum AuthExt : uint8_t
{
	kAuthBroadcast = 1,
	kAuthPresence = 2
};

/* One stored broadcast a join replays (PROTOCOL.md 4.5), read under the user's RLS. */
struct ReplayRow
{
	std::string id;
	std::string event;
	std::string payload; /* JSON text, or the bytes of a binary payload */
	bool binary = false;
	int64_t inserted_us = 0; /* the row's inserted_at, unix microseconds */
};

/* A read check may also read the topic's stored broadcasts, in the same transaction. */
struct ReplayQuery
{
	int64_t since_ms = 0; /* inserted_at >= since */
	int limit = 25;       /* the newest `limit` of them, sent oldest first */
};

struct AuthResult
{
	enum class Status
	{
		kOk,
		kPolicyError,      /* a policy (or the context) raised: RlsPolicyError */
		kQueryCanceled,    /* statement_timeout: QueryCanceled */
		kMissingPartition, /* no partition of realtime.messages for today: MissingPartition */
		kDbUnavailable,    /* no connection, it broke, waited too long, or stopping */
		kError             /* anything else (the probe insert of the read check failed) */
	};
	Status status = Status::kOk;
	uint8_t read_ok = 0;  /* AuthExt bits whose read check passed */
	uint8_t write_ok = 0; /* AuthExt bits whose write check passed */
	std::string detail;   /* the database's error text, for the log */
	/* with AuthRequest::replay, when the read check passed */
	std::vector<ReplayRow> replay_rows; /* oldest first */
	uint64_t replay_stored = 0;         /* rows since `since` (may exceed the limit) */
	bool replay_failed = false;         /* the query failed: UnableToReplayMessages */
};

struct AuthRequest
{
	std::string sub_topic;                /* realtime.topic() */
	std::string role, claims_json, sub;   /* from the verified JWT; sub may be empty = NULL */
	std::string headers_json = "{}";      /* request.headers */
	uint8_t read = 0;                     /* AuthExt bits to read-check */
	uint8_t write = 0;                    /* AuthExt bits to write-check */
	std::optional<ReplayQuery> replay;    /* with read: the stored broadcasts too */
	std::function<void(AuthResult)> done; /* called once, on the authorizer thread (the caller
	                                         posts to its shard) */
};

class AuthorizerDb;
struct AuthMetrics;

class Authorizer
{
public:
	/* metrics (optional) counts the checks and their latency; it must outlive the authorizer. */
	explicit Authorizer(std::string conninfo, AuthMetrics *metrics = nullptr);
	~Authorizer(); /* stops the thread */
	Authorizer(const Authorizer &) = delete;
	Authorizer &operator=(const Authorizer &) = delete;

	void Start();
	void Stop();                /* pending requests get kDbUnavailable */
	void Submit(AuthRequest r); /* any thread; never blocks on the database */

private:
	using Clock = std::chrono::steady_clock;
	struct Pending
	{
		AuthRequest req;
		Clock::time_point queued;
	};

	void Run();
	void RunRound(std::deque<Pending> &batch);
	bool TryConnect();
	void CreatePartitions();
	void Fail(std::deque<Pending> &batch, const char *why);

	void Answer(Pending &p, AuthResult r);

	std::string conninfo_;
	AuthMetrics *metrics_;
	std::unique_ptr<AuthorizerDb> db_; /* authorizer thread only */
	std::thread thread_;
	std::mutex mu_;
	std::condition_variable cv_;
	std::deque<Pending> queue_;     /* mu_ */
	bool started_ = false;          /* mu_ */
	bool stopping_ = false;         /* mu_ */
	std::atomic<bool> stop_{false}; /* read by a round in flight: give up at once */

	/* authorizer thread only */
	Clock::time_point last_attempt_{};
	Clock::time_point next_partitions_{};
	bool ever_connected_ = false;
	bool connect_warned_ = false;
	bool partitions_warned_ = false;
};

} // namespace rt::fanout
