/*
 * authorizer_db.hpp: the authorizer's database connection (authorizer.hpp).
 *
 * One libpq connection in pipeline mode, owned by the authorizer thread (not
 * thread-safe). Run sends the checks of many requests and all their syncs in
 * one write and reads every answer back: one network round trip. Each check
 * is its own transaction, rolled back, in sync groups of its own, so no probe
 * row ever persists and an error aborts only its check:
 *   read:  BEGIN, INSERT the probe rows (as the connection's role), set the
 *          context (role, realtime.topic, claims...), SELECT them back (RLS
 *          filters); sync; ROLLBACK; sync;
 *   write: per extension: BEGIN, set the context, INSERT a row as the user;
 *          sync; ROLLBACK; sync.
 * Every value is a parameter of a prepared statement.
 */
#pragma once

#include "auth/authorizer.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <span>
#include <string>
#include <vector>

namespace rt::fanout
{

/* One request's checks in a round, and what came of them. */
struct AuthCheck
{
	const AuthRequest *req = nullptr;
	AuthResult result;
};

/* What one round sent, for the log and the tests. */
struct AuthRoundStats
{
	size_t requests = 0;
	size_t syncs = 0;      /* two per check */
	size_t statements = 0; /* statements, syncs not counted */
};

class AuthorizerDb
{
public:
	explicit AuthorizerDb(std::string conninfo) : conninfo_(std::move(conninfo)) {}
	~AuthorizerDb();
	AuthorizerDb(const AuthorizerDb &) = delete;
	AuthorizerDb &operator=(const AuthorizerDb &) = delete;

	/* Connect if not connected; false with err set on failure. */
	bool Connect(std::string &err);
	bool
	connected() const
	{
		return conn_ != nullptr;
	}

	/*
	 * Run every check in one round trip. False when the connection failed or
	 * stop was raised (then no result is known and the connection is closed).
	 */
	bool Run(std::span<AuthCheck> checks, const std::atomic<bool> &stop, AuthRoundStats &stats,
	         std::string &err);

	/*
	 * SELECT realtime.create_messages_partitions(). False with err when it
	 * failed; lost tells whether the connection went with it.
	 */
	bool CreatePartitions(const std::atomic<bool> &stop, std::string &err, bool &lost);

private:
	void Disconnect();
	bool Fail(std::string &err); /* err = the connection's error; disconnects; false */
	bool Flush(const std::atomic<bool> &stop);
	bool WaitInput(const std::atomic<bool> &stop);
	bool Next(const std::atomic<bool> &stop, PGresult *&out);
	bool SendChecks(std::span<const AuthCheck> checks, const std::vector<std::string> &ids,
	                const std::vector<std::string> &exts, AuthRoundStats &stats);
	bool ReadAnswers(std::span<AuthCheck> checks, const std::atomic<bool> &stop);

	std::string conninfo_;
	PGconn *conn_ = nullptr;
	PGresult *cur_ = nullptr; /* the last result Next returned */
};

} // namespace rt::fanout
