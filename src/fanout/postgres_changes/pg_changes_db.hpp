/*
 * pg_changes_db.hpp: the Postgres Changes engine's database connection.
 *
 * One libpq connection in pipeline mode, owned by the engine's thread (not
 * thread-safe). Two kinds of round trips, each one sync'd pipeline:
 *   - CheckJoins: for many joins at once, validate each postgres_changes
 *     entry the way upstream does (realtime.subscription_check: what the
 *     trigger of upstream's realtime.subscription checks, without storing
 *     a row) and learn what matching needs: matched tables, RLS, replica
 *     identity, filter values cast to the column type as JSON.
 *   - RunBatch: the RLS visibility checks of a batch of changes, one
 *     statement per (role + claims, table) for all its changes, and the
 *     column privileges of roles.
 * Every statement is parameterized; identifiers in the visibility statement
 * come from the catalog (ring records) and are quoted by libpq.
 */
#pragma once

#include "postgres_changes/pg_changes_params.hpp"

#include <libpq-fe.h>

#include <cstdint>
#include <array>
#include <map>
#include <memory>
#include <string_view>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rt::fanout
{

/* One filter as the database normalized it, with the column's type. */
struct CheckedFilter
{
	std::string column;
	std::string op; /* equality_op: "eq", "in", ... */
	bool negated = false;
	std::string typname;  /* pg_type.typname of the column */
	std::string rhs_json; /* value cast to the column type (in: its array type), to_jsonb text */
	bool text_bytewise = false; /* the column's collation orders text by bytes */
};

/* A table one entry matched. */
struct MatchedTable
{
	uint32_t relid = 0;
	std::string schema; /* raw names */
	std::string table;
	std::string qualified; /* quote_ident form, for messages: public.todos */
	bool rls = false;
	char replident = 'd'; /* pg_class.relreplident */
	bool has_pk = false;
	std::vector<CheckedFilter> filters;
	std::optional<std::vector<std::string>> select; /* sorted */
};

struct EntryOutcome
{
	std::optional<std::string> error; /* client text (PROTOCOL.md 6.6) when refused */
	std::vector<MatchedTable> tables;
	std::vector<std::string> warnings; /* what to run: publication, replica identity */
};

/* One join's entries to validate, and what came back. */
struct JoinCheck
{
	std::string role;
	std::string claims_json;
	std::vector<PgChangesParams> entries;
	/* results */
	bool bypass_rls = false;
	std::vector<EntryOutcome> outcomes;
};

/* RLS visibility of some changes of one table for one role + claims. */
struct VisibilityCheck
{
	const std::string *role;
	const std::string *claims_json;
	const std::string *sub;
	uint32_t relid;
	std::string schema, table;
	std::vector<std::string> pk_columns;
	std::string pk_type; /* typname, when the key is one column */
	/* [{"id":1},...]: primary keys, one object per change (shared by sets of the same changes) */
	std::shared_ptr<const std::string> keys_json;
	/* one-column keys: each object's value as JSON text (to_jsonb's form), for the answer */
	std::vector<std::string_view> key_values;
	size_t count = 0;             /* objects in keys_json */
	std::vector<uint8_t> visible; /* result: per object */
	/* result: the check itself failed (a policy that raised): nothing known, none visible */
	bool failed = false;
};

/* Which columns of a table a role may SELECT. */
struct PrivilegeCheck
{
	const std::string *role;
	uint32_t relid;
	bool ok = false;               /* result: false when the lookup failed */
	std::vector<uint32_t> attnums; /* result: the selectable ones, ascending */
};

class PgChangesDb
{
public:
	PgChangesDb(std::string conninfo, const char *application_name)
	    : conninfo_(std::move(conninfo)), application_name_(application_name)
	{
	}
	~PgChangesDb();
	PgChangesDb(const PgChangesDb &) = delete;
	PgChangesDb &operator=(const PgChangesDb &) = delete;

	/* Connect if not connected; false with err set on failure. */
	bool Connect(std::string &err);
	bool
	connected() const
	{
		return conn_ != nullptr;
	}

	/*
	 * Validate the joins; wal_lsn receives pg_current_wal_flush_lsn() taken before
	 * any of them. False when the connection failed (then nothing is known).
	 */
	bool CheckJoins(std::vector<JoinCheck *> &joins, uint64_t &wal_lsn, std::string &err);

	/*
	 * The tables of publication supabase_realtime as one string (their OIDs;
	 * "-" when it does not exist): a change means subscriptions must be
	 * matched again. False when the connection failed.
	 */
	bool PublicationTables(std::string &fingerprint, std::string &err);

	/* Run the checks; false when the connection failed. */
	bool RunBatch(std::vector<VisibilityCheck> &vis, std::vector<PrivilegeCheck> &privs,
	              std::string &err);

	/*
	 * True once if a connection broke since the last call (the server restarted or went
	 * away). The three calls above then tried once more on a fresh connection, so a restart
	 * costs no failed call; the caller learns of it here (Postgres Changes confirm again).
	 */
	bool
	TakeLost()
	{
		return std::exchange(lost_, false);
	}

private:
	void Disconnect();
	template <typename F> bool OnceMoreIfLost(F &&call);
	bool CheckJoinsTry(std::vector<JoinCheck *> &joins, uint64_t &wal_lsn, std::string &err);
	bool PublicationTablesTry(std::string &fingerprint, std::string &err);
	bool RunBatchTry(std::vector<VisibilityCheck> &vis, std::vector<PrivilegeCheck> &privs,
	                 std::string &err);
	bool CheckJoinsOnce(std::span<JoinCheck *> joins, uint64_t *wal_lsn, std::string &err);
	bool SendJoin(const JoinCheck &j);
	/* One visibility round: statement names, which are new, key parameters */
	struct VisibilityRound
	{
		std::vector<std::string> names;
		std::vector<uint8_t> fresh;
		std::map<const std::string *, std::string> arrays; /* one-column key array literals */
		/* dense integer keys: the lowest and highest, as text */
		std::map<const std::string *, std::array<std::string, 2>> ranges;
		std::vector<std::array<const std::string *, 2>> params; /* 1 or 2 per check */
	};
	bool RunVisibilityOnce(std::span<VisibilityCheck> vis, std::string &err);
	bool RunPrivilegesOnce(std::span<PrivilegeCheck> privs, std::string &err);
	bool PrepareVisibility(std::span<VisibilityCheck> vis, VisibilityRound &round);
	bool VisibilityPass(std::span<VisibilityCheck> vis, const VisibilityRound &round,
	                    std::vector<size_t> &todo, bool read_prepares);
	void ForgetStatement(const std::string &name);
	static bool ByValue(const VisibilityCheck &v);
	static bool DenseRange(const VisibilityCheck &v, int64_t &lo, int64_t &hi);
	bool Fail(std::string &err); /* err = the connection's error; disconnects; false */
	const std::string &VisibilityStatement(const VisibilityCheck &v, bool range, bool &fresh,
	                                       std::string &sql);

	std::string conninfo_;
	const char *application_name_;
	PGconn *conn_ = nullptr;
	/* prepared visibility statements, by relid + schema + table + key columns */
	std::map<std::string, std::string> vis_names_;
	uint64_t next_stmt_ = 1;
	bool lost_ = false;     /* a connection broke since TakeLost() */
	bool lost_now_ = false; /* ... during the current call */
};

} // namespace rt::fanout
