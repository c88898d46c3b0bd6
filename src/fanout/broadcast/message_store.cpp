/*
 * message_store.cpp: see message_store.hpp. Runs on the store thread, except
 * Submit, Start and Stop (any thread) and CopyRows / Unstorable (pure).
 */
#include "broadcast/message_store.hpp"

#include "base/clock.hpp"
#include "base/log.hpp"
#include "postgres_changes/pg_sqlstate.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <ctime>

namespace rt::fanout
{

namespace
{

constexpr const char *kCopySql =
    "COPY realtime.messages (id, topic, extension, event, payload, binary_payload, private, "
    "inserted_at, updated_at, expires_at) FROM STDIN";
constexpr int64_t kReconnectGapMs = 1000;

/* COPY's text format: backslash, tab, newline and carriage return escaped. */
void
AppendCopyText(std::string &out, std::string_view s)
{
	for (char c : s)
	{
		switch (c)
		{
		case '\\':
			out += "\\\\";
			break;
		case '\t':
			out += "\\t";
			break;
		case '\n':
			out += "\\n";
			break;
		case '\r':
			out += "\\r";
			break;
		default:
			out += c;
		}
	}
}

/* bytea in COPY text: \\x and hex (the backslash itself escaped). */
void
AppendCopyBytea(std::string &out, std::string_view s)
{
	static const char kHex[] = "0123456789abcdef";
	out += "\\\\x";
	for (unsigned char c : s)
	{
		out += kHex[c >> 4];
		out += kHex[c & 15];
	}
}

/* unix microseconds as a UTC timestamp without time zone: 2026-12-07 21:30:00.123456 */
void
AppendTimestamp(std::string &out, int64_t us)
{
	time_t secs = static_cast<time_t>(us / 1000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char buf[48];
	snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%06lld", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         static_cast<long long>(us % 1000000));
	out += buf;
}

int64_t
WallMicros()
{
	return std::chrono::duration_cast<std::chrono::microseconds>(
	           std::chrono::system_clock::now().time_since_epoch())
	    .count();
}

} // namespace

std::string
CopyRows(const std::vector<const StoreRequest *> &rows)
{
	std::string out;
	for (size_t i = 0; i < rows.size(); i++)
	{
		const StoreRequest &r = *rows[i];
		AppendCopyText(out, r.id);
		out += '\t';
		AppendCopyText(out, r.topic);
		out += "\tbroadcast\t";
		AppendCopyText(out, r.event);
		out += '\t';
		if (r.binary)
		{
			out += "\\N\t";
			AppendCopyBytea(out, r.payload);
		}
		else
		{
			AppendCopyText(out, r.payload);
			out += "\t\\N";
		}
		out += "\tt\t";
		AppendTimestamp(out, r.inserted_us);
		out += '\t';
		AppendTimestamp(out, r.inserted_us);
		out += '\t';
		if (r.ttl_s > 0)
			AppendTimestamp(out, r.inserted_us + r.ttl_s * 1000000);
		else
			out += "\\N";
		out += '\n';
	}
	return out;
}

std::optional<std::string>
Unstorable(const StoreRequest &r)
{
	for (const std::string *s : {&r.id, &r.topic, &r.event})
		if (s->find('\0') != std::string::npos)
			return "the topic or event holds a NUL character";
	if (!r.binary)
	{
		if (r.payload.find('\0') != std::string::npos)
			return "the payload holds a NUL character";
		/* jsonb refuses \u0000 (an escaped backslash before "u0000" is text, not the escape) */
		for (size_t at = r.payload.find("\\u0000"); at != std::string::npos;
		     at = r.payload.find("\\u0000", at + 1))
		{
			size_t slashes = 0;
			while (at >= slashes + 1 && r.payload[at - slashes - 1] == '\\')
				slashes++;
			if (slashes % 2 == 0)
				return "the payload holds \\u0000, which PostgreSQL's jsonb cannot store";
		}
	}
	return std::nullopt;
}

MessageStore::MessageStore(std::string conninfo, StoreMetrics *metrics)
    : conninfo_(std::move(conninfo)), metrics_(metrics)
{
}

MessageStore::~MessageStore()
{
	Stop();
	Disconnect();
}

void
MessageStore::Start()
{
	std::lock_guard<std::mutex> lock(mu_);
	if (started_ || stopping_)
		return;
	started_ = true;
	thread_ = std::thread([this] { Run(); });
}

void
MessageStore::Stop()
{
	std::deque<StoreRequest> left;
	{
		std::lock_guard<std::mutex> lock(mu_);
		stopping_ = true;
		if (!thread_.joinable())
			left.swap(queue_);
	}
	cv_.notify_all();
	if (thread_.joinable())
		thread_.join();
	for (StoreRequest &r : left)
		if (r.done)
			r.done(false);
}

int64_t
MessageStore::Stamp()
{
	int64_t now = WallMicros();
	int64_t last = last_us_.load(std::memory_order_relaxed);
	int64_t t = std::max(last + 1, now);
	while (!last_us_.compare_exchange_weak(last, t, std::memory_order_relaxed))
		t = std::max(last + 1, now);
	return t;
}

void
MessageStore::Submit(StoreRequest r)
{
	if (r.inserted_us == 0)
		r.inserted_us = Stamp();
	{
		std::lock_guard<std::mutex> lock(mu_);
		if (!stopping_ && queue_.size() < kMaxQueued)
		{
			queue_.push_back(std::move(r));
			if (metrics_ != nullptr)
				metrics_->queued.store(queue_.size(), std::memory_order_relaxed);
			cv_.notify_one();
			return;
		}
	}
	if (metrics_ != nullptr)
		metrics_->failed.fetch_add(1, std::memory_order_relaxed);
	if (r.done)
		r.done(false);
}

void
MessageStore::Disconnect()
{
	if (conn_ != nullptr)
		PQfinish(conn_);
	conn_ = nullptr;
}

bool
MessageStore::Connect()
{
	if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK)
		return true;
	Disconnect();
	int64_t now = NowMs();
	if (now - last_attempt_ms_ < kReconnectGapMs)
		return false; /* failing fast while the database is away */
	last_attempt_ms_ = now;
	/* a dead link must not hold the store: the kernel gives up on it within seconds */
	const char *keys[] = {
	    "connect_timeout",  "keepalives_idle", "keepalives_interval",       "keepalives_count",
	    "tcp_user_timeout", "dbname",          "fallback_application_name", nullptr};
	const char *vals[] = {"5",    "5", "2", "2", "10000", conninfo_.c_str(), "realtime_store",
	                      nullptr};
	conn_ = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn_) == CONNECTION_OK)
	{
		PGresult *r = PQexec(conn_, "SET statement_timeout = '5s'");
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok)
		{
			if (warned_)
				Log(LogLevel::kInfo, "store", "connected again");
			warned_ = false;
			return true;
		}
	}
	if (!warned_)
		Log(LogLevel::kWarning, "store", "cannot connect: %s",
		    conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory");
	warned_ = true;
	Disconnect();
	return false;
}

/* One COPY of rows; false when it failed (data_error: the database refused a row's data). */
bool
MessageStore::Copy(const std::vector<const StoreRequest *> &rows, bool &data_error, bool &unsent)
{
	data_error = false;
	unsent = false;
	PGresult *r = PQexec(conn_, kCopySql);
	bool copying = PQresultStatus(r) == PGRES_COPY_IN;
	if (!copying && PQstatus(conn_) != CONNECTION_OK)
	{
		/* the link was dead before anything was sent (a server restart): nothing was stored */
		PQclear(r);
		unsent = true;
		return false;
	}
	if (!copying)
		Log(LogLevel::kWarning, "store", "COPY refused: %s", PostgrexErrorText(r).c_str());
	PQclear(r);
	if (!copying)
		return false;
	std::string data = CopyRows(rows);
	if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1 ||
	    PQputCopyEnd(conn_, nullptr) != 1)
		return false;
	bool ok = false;
	while ((r = PQgetResult(conn_)) != nullptr)
	{
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			ok = true;
		else
		{
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			/* 22: data exception, 23: integrity (a missing partition is 23514) */
			data_error =
			    state != nullptr && (state[0] == '2' && (state[1] == '2' || state[1] == '3'));
			Log(LogLevel::kWarning, "store", "COPY of %zu rows failed: %s", rows.size(),
			    PostgrexErrorText(r).c_str());
		}
		PQclear(r);
	}
	return ok;
}

void
MessageStore::Write(std::vector<StoreRequest> &batch)
{
	std::vector<bool> stored(batch.size(), false);
	if (Connect())
	{
		std::vector<const StoreRequest *> rows;
		for (const StoreRequest &r : batch)
			rows.push_back(&r);
		bool data_error = false, unsent = false;
		bool ok = Copy(rows, data_error, unsent);
		if (!ok && unsent)
		{
			/* a link found dead is connected again at once and the batch written once more */
			Log(LogLevel::kInfo, "store", "connection lost: connecting again");
			Disconnect();
			last_attempt_ms_ = 0;
			ok = Connect() && Copy(rows, data_error, unsent);
		}
		if (ok)
			stored.assign(batch.size(), true);
		else if (data_error && batch.size() > 1)
		{
			/* one row the database refuses fails alone */
			for (size_t i = 0; i < batch.size(); i++)
				stored[i] = Copy({&batch[i]}, data_error, unsent);
		}
		if (PQstatus(conn_) != CONNECTION_OK)
			Disconnect();
	}
	if (metrics_ != nullptr)
	{
		metrics_->batches.fetch_add(1, std::memory_order_relaxed);
		size_t n = static_cast<size_t>(std::count(stored.begin(), stored.end(), true));
		metrics_->stored.fetch_add(n, std::memory_order_relaxed);
		metrics_->failed.fetch_add(batch.size() - n, std::memory_order_relaxed);
	}
	for (size_t i = 0; i < batch.size(); i++)
		if (batch[i].done)
			batch[i].done(stored[i]);
}

void
MessageStore::Run()
{
	for (;;)
	{
		std::vector<StoreRequest> batch;
		{
			std::unique_lock<std::mutex> lock(mu_);
			cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
			if (stopping_)
				break;
			size_t bytes = 0;
			while (!queue_.empty() && batch.size() < kBatchRows && bytes < kBatchBytes)
			{
				bytes += queue_.front().payload.size() + queue_.front().topic.size();
				batch.push_back(std::move(queue_.front()));
				queue_.pop_front();
			}
			if (metrics_ != nullptr)
				metrics_->queued.store(queue_.size(), std::memory_order_relaxed);
		}
		Write(batch);
	}
	std::deque<StoreRequest> left;
	{
		std::lock_guard<std::mutex> lock(mu_);
		left.swap(queue_);
	}
	for (StoreRequest &r : left)
		if (r.done)
			r.done(false);
}

} // namespace rt::fanout
