/*
 * authorizer.cpp: see authorizer.hpp. Submit runs on any thread; everything
 * else on the authorizer thread.
 */
#include "auth/authorizer.hpp"

#include "ops/metrics.hpp"

#include "auth/authorizer_db.hpp"
#include "base/log.hpp"

#include <libpq-fe.h>

#include <exception>
#include <vector>

namespace rt::fanout
{

namespace
{

constexpr size_t kRoundCap = 256;                       /* requests per round trip */
constexpr auto kMaxQueueWait = std::chrono::seconds(5); /* older: kDbUnavailable */
constexpr auto kReconnectGap = std::chrono::seconds(1); /* between connection attempts */
/* a round that failed faster than this found a dead link, not a slow database: retried once */
constexpr auto kQuickFailure = std::chrono::milliseconds(500);
constexpr auto kPartitionsEvery = std::chrono::hours(1);

AuthResult
Unavailable(const char *why)
{
	AuthResult r;
	r.status = AuthResult::Status::kDbUnavailable;
	r.detail = why;
	return r;
}

} // namespace

Authorizer::Authorizer(std::string conninfo, AuthMetrics *metrics)
    : conninfo_(std::move(conninfo)), metrics_(metrics),
      db_(std::make_unique<AuthorizerDb>(conninfo_))
{
}

void
Authorizer::Answer(Pending &p, AuthResult r)
{
	if (metrics_ != nullptr)
		metrics_->Answered(
		    static_cast<int>(r.status),
		    std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - p.queued).count());
	if (p.req.done)
		p.req.done(std::move(r));
}

Authorizer::~Authorizer() { Stop(); }

void
Authorizer::Start()
{
	std::lock_guard<std::mutex> lock(mu_);
	if (started_ || stopping_)
		return;
	if (!PQisthreadsafe())
		Log(LogLevel::kWarning, "auth", "libpq is not thread-safe");
	started_ = true;
	thread_ = std::thread([this] { Run(); });
}

void
Authorizer::Stop()
{
	std::deque<Pending> left;
	{
		std::lock_guard<std::mutex> lock(mu_);
		stopping_ = true;
		stop_.store(true, std::memory_order_relaxed);
		if (!thread_.joinable())
			left.swap(queue_); /* never started: nobody else will answer these */
	}
	cv_.notify_all();
	if (thread_.joinable())
		thread_.join();
	Fail(left, "the authorizer stopped");
}

void
Authorizer::Submit(AuthRequest r)
{
	/*
	 * libpq sends text parameters up to their first NUL: a topic "a\0b" would be
	 * checked as "a". Nothing the database can hold has one, so nothing passes.
	 */
	for (const std::string *s : {&r.sub_topic, &r.role, &r.sub, &r.claims_json, &r.headers_json})
	{
		if (s->find('\0') != std::string::npos)
		{
			if (r.done)
				r.done(AuthResult{});
			return;
		}
	}
	{
		std::lock_guard<std::mutex> lock(mu_);
		if (!stopping_)
		{
			if (metrics_ != nullptr)
				metrics_->Submitted();
			queue_.push_back(Pending{std::move(r), Clock::now()});
			cv_.notify_one();
			return;
		}
	}
	/* stopped: no authorizer thread will ever run it */
	if (r.done)
		r.done(Unavailable("the authorizer stopped"));
}

void
Authorizer::Fail(std::deque<Pending> &batch, const char *why)
{
	for (Pending &p : batch)
		Answer(p, Unavailable(why));
	batch.clear();
}

/* Connect unless connected or the last attempt was under kReconnectGap ago. */
bool
Authorizer::TryConnect()
{
	if (db_->connected())
		return true;
	Clock::time_point now = Clock::now();
	if (last_attempt_ != Clock::time_point{} && now - last_attempt_ < kReconnectGap)
		return false;
	last_attempt_ = now;
	std::string err;
	if (!db_->Connect(err))
	{
		/* once per outage at warning level; the retries below that */
		Log(connect_warned_ ? LogLevel::kDebug : LogLevel::kWarning, "auth",
		    "cannot connect to the database: %s", err.c_str());
		connect_warned_ = true;
		return false;
	}
	Log(ever_connected_ ? LogLevel::kInfo : LogLevel::kDebug, "auth", "connected");
	ever_connected_ = true;
	connect_warned_ = false;
	CreatePartitions();
	return db_->connected();
}

/* Make sure today's partition of realtime.messages exists (and the next days'). */
void
Authorizer::CreatePartitions()
{
	next_partitions_ = Clock::now() + kPartitionsEvery;
	std::string err;
	bool lost = false;
	if (db_->CreatePartitions(stop_, err, lost))
	{
		partitions_warned_ = false;
		return;
	}
	if (lost)
	{
		Log(LogLevel::kWarning, "auth", "connection lost: %s", err.c_str());
		return;
	}
	if (!partitions_warned_)
		Log(LogLevel::kWarning, "auth",
		    "realtime.create_messages_partitions() failed (probes need today's partition): %s",
		    err.c_str());
	partitions_warned_ = true;
}

void
Authorizer::RunRound(std::deque<Pending> &batch)
{
	/* a request that waited too long is answered now: its caller has moved on */
	Clock::time_point now = Clock::now();
	std::deque<Pending> stale;
	for (auto it = batch.begin(); it != batch.end();)
		if (now - it->queued > kMaxQueueWait)
		{
			stale.push_back(std::move(*it));
			it = batch.erase(it);
		}
		else
			++it;
	Fail(stale, "waited too long for the database");
	if (batch.empty())
		return;
	if (!TryConnect())
	{
		Fail(batch, "database unavailable");
		return;
	}
	std::vector<AuthCheck> checks;
	AuthRoundStats stats;
	std::string err;
	auto run = [&]
	{
		checks.assign(batch.size(), AuthCheck{});
		for (size_t i = 0; i < batch.size(); i++)
			checks[i].req = &batch[i].req;
		return db_->Run(checks, stop_, stats, err);
	};
	Clock::time_point started = Clock::now();
	bool ok = run();
	if (!ok && !stop_.load(std::memory_order_relaxed) && Clock::now() - started < kQuickFailure)
	{
		/*
		 * A link that broke at once (the server restarted since the last round) is not an
		 * answer: connect again now and run the round once more. The checks only read and
		 * roll back, so running them twice is harmless.
		 */
		Log(LogLevel::kInfo, "auth", "connection lost (%s): connecting again", err.c_str());
		last_attempt_ = Clock::time_point{};
		ok = TryConnect() && run();
	}
	if (!ok)
	{
		if (!stop_.load(std::memory_order_relaxed))
			Log(LogLevel::kWarning, "auth", "connection lost: %s", err.c_str());
		Fail(batch, stop_.load(std::memory_order_relaxed) ? "the authorizer stopped"
		                                                  : "database unavailable");
		return;
	}
	Log(LogLevel::kDebug, "auth", "round requests=%zu statements=%zu syncs=%zu", stats.requests,
	    stats.statements, stats.syncs);
	bool missing_partition = false;
	for (size_t i = 0; i < batch.size(); i++)
	{
		missing_partition |= checks[i].result.status == AuthResult::Status::kMissingPartition;
		Answer(batch[i], std::move(checks[i].result));
	}
	batch.clear();
	if (missing_partition)
		next_partitions_ = Clock::now(); /* the day turned: create it before the next round */
}

/* The authorizer thread. */
void
Authorizer::Run()
{
	try
	{
		TryConnect();
		if (next_partitions_ == Clock::time_point{})
			next_partitions_ = Clock::now() + kPartitionsEvery;
		for (;;)
		{
			std::deque<Pending> batch;
			{
				std::unique_lock<std::mutex> lock(mu_);
				cv_.wait_until(lock, next_partitions_,
				               [this] { return stopping_ || !queue_.empty(); });
				if (stopping_)
					break;
				while (!queue_.empty() && batch.size() < kRoundCap)
				{
					batch.push_back(std::move(queue_.front()));
					queue_.pop_front();
				}
			}
			if (Clock::now() >= next_partitions_)
			{
				next_partitions_ = Clock::now() + kPartitionsEvery;
				if (db_->connected())
					CreatePartitions();
				else
					TryConnect(); /* creates them when it connects */
			}
			RunRound(batch);
		}
	}
	catch (const std::exception &e)
	{
		Log(LogLevel::kError, "auth", "authorizer thread failed: %s", e.what());
	}
	/* stopping (or failed): whatever is still queued gets its answer */
	std::deque<Pending> left;
	{
		std::lock_guard<std::mutex> lock(mu_);
		stopping_ = true;
		left.swap(queue_);
	}
	Fail(left, "the authorizer stopped");
}

} // namespace rt::fanout
