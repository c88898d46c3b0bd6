/*
 * message_store.hpp: persisted broadcasts (PROTOCOL.md 4.5, `persist`): rows
 * of realtime.messages written by the sidecar, in batches, on a connection of
 * their own, so that a join can replay them (replay_part.hpp).
 *
 * One thread per tenant with one libpq connection. Submit queues a message
 * from any thread and never waits for the database; the thread takes what is
 * queued (up to kBatchRows / kBatchBytes) and writes it with one COPY, which
 * commits on its own: one round trip for many messages. Each message's done
 * is called once, on the store thread, after its row is committed (true) or
 * when it cannot be (false: the database is unreachable, a batch failed, the
 * store stops). A batch that fails on its data (a row the database refuses)
 * is written again row by row, so one bad message fails alone.
 *
 * The rows: id (made by the caller, the message's meta.id), topic, extension
 * 'broadcast', event, payload (jsonb) or binary_payload, private, inserted_at
 * = updated_at = Stamp()'s time in UTC, taken by the caller before Submit
 * (subscribers get it as meta.inserted_at; strictly increasing, so that one
 * sender's replay order is its send order), expires_at = inserted_at + ttl
 * when a TTL was given. COPY
 * needs the connection's role to bypass RLS (a superuser, or BYPASSRLS, as
 * docs/OPERATIONS.md asks of the sidecar's role); the sender's right to write
 * was checked before (RLS INSERT policies, auth/private_part.hpp).
 */
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

struct pg_conn; /* libpq's PGconn */

namespace rt::fanout
{

struct StoreRequest
{
	std::string id;    /* a UUID */
	std::string topic; /* sub_topic */
	std::string event;
	std::string payload; /* JSON text (binary false) or the bytes */
	bool binary = false;
	int64_t ttl_s = 0;       /* > 0: expires_at = inserted_at + ttl_s */
	int64_t inserted_us = 0; /* unix microseconds, from MessageStore::Stamp() */
	std::function<void(bool stored)> done;
};

/* Counters for /metrics (any thread reads). */
struct StoreMetrics
{
	std::atomic<uint64_t> stored{0};
	std::atomic<uint64_t> failed{0};
	std::atomic<uint64_t> batches{0};
	std::atomic<uint64_t> queued{0};
};

/* The COPY text of rows (one line each). */
std::string CopyRows(const std::vector<const StoreRequest *> &rows);

/*
 * Why a message cannot be a row (jsonb refuses \u0000; text columns refuse NUL), or
 * nullopt. Checked before Submit: a message the database would refuse is refused at once.
 */
std::optional<std::string> Unstorable(const StoreRequest &r);

class MessageStore
{
public:
	static constexpr size_t kBatchRows = 2000;
	static constexpr size_t kBatchBytes = 4u << 20;
	static constexpr size_t kMaxQueued = 100000; /* beyond: refused at once (false) */

	explicit MessageStore(std::string conninfo, StoreMetrics *metrics = nullptr);
	~MessageStore(); /* stops the thread */
	MessageStore(const MessageStore &) = delete;
	MessageStore &operator=(const MessageStore &) = delete;

	void Start();
	void Stop(); /* what is queued gets false */
	/* Any thread: the inserted_at of the next row, unix us, later than any given before. */
	int64_t Stamp();
	/* Any thread. done(false) runs on the caller's thread when the queue is full or stopped. */
	void Submit(StoreRequest r);

private:
	void Run();
	bool Connect();
	void Write(std::vector<StoreRequest> &batch);
	/* unsent: failed on a dead link before any row was sent (nothing can be stored) */
	bool Copy(const std::vector<const StoreRequest *> &rows, bool &data_error, bool &unsent);
	void Disconnect();

	std::string conninfo_;
	StoreMetrics *metrics_;
	::pg_conn *conn_ = nullptr;       /* store thread only */
	std::atomic<int64_t> last_us_{0}; /* the last inserted_at given */
	int64_t last_attempt_ms_ = 0;     /* the last connection attempt */
	bool warned_ = false;
	std::thread thread_;
	std::mutex mu_;
	std::condition_variable cv_;
	std::deque<StoreRequest> queue_; /* mu_ */
	bool started_ = false;           /* mu_ */
	bool stopping_ = false;          /* mu_ */
};

} // namespace rt::fanout
