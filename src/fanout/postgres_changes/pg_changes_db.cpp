/*
 * pg_changes_db.cpp: see pg_changes_db.hpp.
 *
 * Pipeline discipline: every group of statements that must fail together
 * ends with a sync (one implicit transaction), so an error (a refused
 * subscription, a dropped table) aborts only its own group. No explicit
 * transactions: nothing outlives a sync.
 */
#include "postgres_changes/pg_changes_db.hpp"

#include "base/json.hpp"
#include "base/log.hpp"
#include "postgres_changes/pg_sqlstate.hpp"

#include <cstdlib>
#include <algorithm>
#include <array>
#include <charconv>
#include <functional>
#include <span>
#include <iterator>
#include <unordered_map>

namespace rt::fanout
{

namespace
{

constexpr const char *kPublication = "supabase_realtime";
constexpr size_t kJoinsPerTrip = 128;  /* joins checked per round trip */
constexpr size_t kChecksPerTrip = 256; /* visibility or privilege checks per round trip */

/*
 * One entry: the tables it matches in the publication (schema and table as
 * SQL LIKE patterns, '*' for any), each checked by realtime.subscription_check
 * (what upstream's trigger on realtime.subscription checks: filter columns
 * readable by the role, values cast to the column type, operators that fit;
 * nothing stored, no WAL), then what the fan-out needs of each table.
 */
constexpr const char *kCheckEntrySql = R"SQL(
WITH sub_tables AS (
  SELECT c.oid::regclass AS entity
  FROM pg_catalog.pg_publication p
  CROSS JOIN LATERAL pg_catalog.pg_get_publication_tables(p.pubname::text) AS gpt
  JOIN pg_catalog.pg_class c ON c.oid = gpt.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE p.pubname = 'supabase_realtime'
    AND n.nspname LIKE (CASE $1 WHEN '*' THEN '%' ELSE $1 END) ESCAPE ''
    AND c.relname LIKE (CASE $2 WHEN '*' THEN '%' ELSE $2 END) ESCAPE ''
), ins AS (
  SELECT s.entity, chk.norm_filters AS filters, chk.norm_columns AS selected_columns
  FROM sub_tables s,
  LATERAL realtime.subscription_check(s.entity,
    (SELECT coalesce(array_agg(ROW(f.c, f.o::realtime.equality_op, f.v, f.n)
                               ::realtime.user_defined_filter ORDER BY f.i), '{}')
     FROM unnest($4::text[], $5::text[], $6::text[], $7::boolean[]) WITH ORDINALITY
          AS f(c, o, v, n, i)),
    $3::jsonb, $9::text[]) AS chk
  WHERE $8 IN ('*', 'INSERT', 'UPDATE', 'DELETE')
)
SELECT c.oid, n.nspname, c.relname, format('%I.%I', n.nspname, c.relname),
  c.relrowsecurity, c.relreplident::text,
  EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
  (SELECT coalesce(json_agg(json_build_array(f.column_name, f.op, f.negate, t.typname,
      CASE WHEN f.op = 'in'
             THEN realtime.cast(f.value, (format_type(a.atttypid, NULL) || '[]')::regtype)::text
           WHEN f.op IN ('eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'isdistinct')
             THEN realtime.cast(f.value, a.atttypid::regtype)::text
           ELSE to_jsonb(f.value)::text END,
      coalesce(CASE WHEN a.attcollation = 100
                      THEN (SELECT d.datcollate FROM pg_catalog.pg_database d
                            WHERE d.datname = current_database())
                    ELSE co.collcollate END IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8'), false)
    ) ORDER BY f.column_name), '[]')::text
   FROM unnest(ins.filters) f
   JOIN pg_catalog.pg_attribute a ON a.attrelid = ins.entity AND a.attname = f.column_name
   JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
   LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation),
  ins.selected_columns::text
FROM ins
JOIN pg_catalog.pg_class c ON c.oid = ins.entity
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
)SQL";

/* Why an explicitly named table matched nothing: exists? publication? */
constexpr const char *kDiagnoseSql = R"SQL(
SELECT format('%I.%I', n.nspname, c.relname),
  EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime'),
  EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables p
          WHERE p.pubname = 'supabase_realtime' AND p.schemaname = n.nspname
            AND p.tablename = c.relname)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
)SQL";

constexpr const char *kRoleSql =
    "SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.rolname = $1";

constexpr const char *kPrivilegeSql = R"SQL(
SELECT coalesce(array_agg(a.attnum ORDER BY a.attnum), '{}')::text
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = $2::oid AND a.attnum > 0 AND NOT a.attisdropped
  AND pg_catalog.has_column_privilege($1, a.attrelid, a.attnum, 'SELECT')
)SQL";

/* Claims for the visibility statements: local to the implicit transaction */
constexpr const char *kClaimsSql =
    "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), "
    "set_config('request.jwt.claim.sub', $3, true), set_config('request.jwt.claim.role', $1, "
    "true)";

void
QuietNotices(void *, const PGresult *)
{
}

/* One element of a Postgres array literal, quoted: "b\"c" */
void
AppendArrayElement(std::string &out, std::string_view text)
{
	out += '"';
	for (char c : text)
	{
		if (c == '"' || c == '\\')
			out += '\\';
		out += c;
	}
	out += '"';
}

/* A Postgres array literal of text elements: {"a","b\"c"} */
std::string
TextArray(const std::vector<std::string> &items)
{
	std::string out = "{";
	for (size_t i = 0; i < items.size(); i++)
	{
		if (i > 0)
			out += ',';
		AppendArrayElement(out, items[i]);
	}
	out += '}';
	return out;
}

/* {1,2,3} -> numbers */
std::vector<uint32_t>
ParseIntArray(std::string_view s)
{
	std::vector<uint32_t> out;
	uint32_t v = 0;
	bool have = false;
	for (char c : s)
	{
		if (c >= '0' && c <= '9')
		{
			v = v * 10 + static_cast<uint32_t>(c - '0');
			have = true;
		}
		else
		{
			if (have)
				out.push_back(v);
			v = 0;
			have = false;
		}
	}
	return out;
}

/* {a,"b c"} -> strings (the text form of text[]) */
std::vector<std::string>
ParseTextArray(std::string_view s)
{
	std::vector<std::string> out;
	if (s.size() < 2)
		return out;
	s = s.substr(1, s.size() - 2);
	size_t i = 0;
	while (i < s.size())
	{
		std::string item;
		if (s[i] == '"')
		{
			for (i++; i < s.size() && s[i] != '"'; i++)
			{
				if (s[i] == '\\' && i + 1 < s.size())
					i++;
				item += s[i];
			}
			i++; /* closing quote */
		}
		else
			for (; i < s.size() && s[i] != ','; i++)
				item += s[i];
		out.push_back(std::move(item));
		i++; /* comma */
	}
	return out;
}

uint64_t
ParseLsn(const char *text)
{
	char *end = nullptr;
	uint64_t hi = strtoull(text, &end, 16);
	if (end == nullptr || *end != '/')
		return 0;
	uint64_t lo = strtoull(end + 1, nullptr, 16);
	return (hi << 32) | lo;
}

bool
IsOk(const PGresult *r)
{
	return r != nullptr &&
	       (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK);
}

/* Reads a pipeline's results back in the order the statements were sent. */
class Results
{
public:
	explicit Results(PGconn *conn) : conn_(conn) {}
	~Results() { PQclear(cur_); }
	/* The next statement's result (owned here until the next call); null when the link broke. */
	PGresult *
	Next()
	{
		PQclear(cur_);
		cur_ = PQgetResult(conn_);
		if (cur_ == nullptr)
			return nullptr;
		/* a statement's results end with a null; a sync's does not */
		if (PQresultStatus(cur_) != PGRES_PIPELINE_SYNC)
			while (PGresult *extra = PQgetResult(conn_))
				PQclear(extra);
		return cur_;
	}
	bool
	Sync()
	{
		PGresult *r = Next();
		return r != nullptr && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
	}

private:
	PGconn *conn_;
	PGresult *cur_ = nullptr;
};

std::string
Quoted(PGconn *conn, const std::string &name)
{
	char *q = PQescapeIdentifier(conn, name.data(), name.size());
	if (q == nullptr)
		return std::string();
	std::string out(q);
	PQfreemem(q);
	return out;
}

} // namespace

PgChangesDb::~PgChangesDb() { Disconnect(); }

bool
PgChangesDb::Fail(std::string &err)
{
	err = PQerrorMessage(conn_);
	Disconnect();
	return false;
}

template <typename F>
bool
PgChangesDb::OnceMoreIfLost(F &&call)
{
	lost_now_ = false;
	bool ok = call();
	if (!ok && lost_now_)
		ok = call();
	return ok;
}

bool
PgChangesDb::CheckJoins(std::vector<JoinCheck *> &joins, uint64_t &wal_lsn, std::string &err)
{
	return OnceMoreIfLost([&] { return CheckJoinsTry(joins, wal_lsn, err); });
}

bool
PgChangesDb::PublicationTables(std::string &fingerprint, std::string &err)
{
	return OnceMoreIfLost([&] { return PublicationTablesTry(fingerprint, err); });
}

bool
PgChangesDb::RunBatch(std::vector<VisibilityCheck> &vis, std::vector<PrivilegeCheck> &privs,
                      std::string &err)
{
	return OnceMoreIfLost([&] { return RunBatchTry(vis, privs, err); });
}

void
PgChangesDb::Disconnect()
{
	if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_BAD)
		lost_ = lost_now_ = true;
	if (conn_ != nullptr)
		PQfinish(conn_);
	conn_ = nullptr;
	vis_names_.clear();
}

bool
PgChangesDb::Connect(std::string &err)
{
	if (conn_ != nullptr)
	{
		if (PQstatus(conn_) == CONNECTION_OK)
			return true;
		Disconnect();
	}
	const char *keys[] = {"dbname", "fallback_application_name", nullptr};
	const char *vals[] = {conninfo_.c_str(), application_name_, nullptr};
	conn_ = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn_) != CONNECTION_OK)
	{
		err = PQerrorMessage(conn_);
		while (!err.empty() && (err.back() == '\n' || err.back() == ' '))
			err.pop_back();
		Disconnect();
		return false;
	}
	PQsetNoticeReceiver(conn_, QuietNotices, nullptr);
	/* values are compared as the ring renders them: timestamps in UTC */
	const char *setup[] = {"SET TimeZone = 'UTC'", "SET statement_timeout = '10s'"};
	for (const char *sql : setup)
	{
		PGresult *r = PQexec(conn_, sql);
		bool ok = IsOk(r);
		PQclear(r);
		if (!ok)
		{
			err = std::string(sql) + ": " + PQerrorMessage(conn_);
			Disconnect();
			return false;
		}
	}
	struct
	{
		const char *name, *sql;
		int nparams;
	} stmts[] = {{"rt_sub_check", kCheckEntrySql, 9},
	             {"rt_sub_diag", kDiagnoseSql, 2},
	             {"rt_role", kRoleSql, 1},
	             {"rt_privs", kPrivilegeSql, 2},
	             {"rt_claims", kClaimsSql, 3}};
	for (const auto &s : stmts)
	{
		PGresult *r = PQprepare(conn_, s.name, s.sql, s.nparams, nullptr);
		bool ok = IsOk(r);
		if (!ok)
			err = std::string("preparing ") + s.name + ": " + PQerrorMessage(conn_);
		PQclear(r);
		if (!ok)
		{
			Disconnect();
			return false;
		}
	}
	if (PQenterPipelineMode(conn_) != 1)
	{
		err = "cannot enter pipeline mode";
		Disconnect();
		return false;
	}
	return true;
}

bool
PgChangesDb::PublicationTablesTry(std::string &fingerprint, std::string &err)
{
	if (!Connect(err))
		return false;
	const char *sql =
	    "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_publication "
	    "WHERE pubname = 'supabase_realtime') THEN coalesce((SELECT string_agg(gpt.relid::text, "
	    "',' ORDER BY gpt.relid) FROM "
	    "pg_catalog.pg_get_publication_tables('supabase_realtime') AS gpt), '') ELSE '-' END";
	if (PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1 ||
	    PQpipelineSync(conn_) != 1 || PQflush(conn_) != 0)
	{
		err = PQerrorMessage(conn_);
		Disconnect();
		return false;
	}
	Results res(conn_);
	PGresult *r = res.Next();
	bool ok = r != nullptr && IsOk(r) && PQntuples(r) == 1;
	if (ok)
		fingerprint = PQgetvalue(r, 0, 0);
	if (r == nullptr || !res.Sync())
	{
		err = PQerrorMessage(conn_);
		Disconnect();
		return false;
	}
	if (!ok)
		err = "publication lookup failed";
	return ok;
}

bool
PgChangesDb::CheckJoinsTry(std::vector<JoinCheck *> &joins, uint64_t &wal_lsn, std::string &err)
{
	/* slices, so that neither side's socket buffer fills while the other writes */
	for (size_t at = 0; at < joins.size() || at == 0; at += kJoinsPerTrip)
	{
		size_t n = std::min(kJoinsPerTrip, joins.size() - at);
		if (!CheckJoinsOnce(std::span<JoinCheck *>(joins.data() + at, n),
		                    at == 0 ? &wal_lsn : nullptr, err))
			return false;
		if (joins.empty())
			break;
	}
	return true;
}

namespace
{

/* The parameters of rt_sub_check for one entry, as text (arrays as literals) */
struct SubCheckArgs
{
	explicit SubCheckArgs(const PgChangesParams &p) : action(PgEventName(p.event))
	{
		std::vector<std::string> cols, ops, values;
		negs = "{";
		for (const PgFilter &f : p.filters)
		{
			cols.push_back(f.column);
			ops.emplace_back(FilterOpName(f.op));
			values.push_back(f.value);
			negs += negs.size() > 1 ? "," : "";
			negs += f.negated ? "t" : "f";
		}
		negs += '}';
		a_cols = TextArray(cols);
		a_ops = TextArray(ops);
		a_vals = TextArray(values);
		if (p.select)
			a_sel = TextArray(*p.select);
	}

	std::string a_cols, a_ops, a_vals, negs, a_sel, action;
};

/* Why an explicitly named table matches nothing: not published (rt_sub_diag's row) */
std::optional<std::string>
Diagnose(const PGresult *r)
{
	if (!IsOk(r) || PQntuples(r) != 1)
		return std::nullopt; /* no such table: upstream's text says enough */
	std::string qualified = PQgetvalue(r, 0, 0);
	bool has_pub = PQgetvalue(r, 0, 1)[0] == 't';
	bool in_pub = PQgetvalue(r, 0, 2)[0] == 't';
	if (!has_pub)
		return "Publication " + std::string(kPublication) +
		       " does not exist, so no changes are captured. Run: CREATE "
		       "PUBLICATION " +
		       kPublication + " FOR TABLE " + qualified + ";";
	if (!in_pub)
		return "Table " + qualified + " is not in publication " + kPublication +
		       ", so its changes are not captured. Run: ALTER PUBLICATION " + kPublication +
		       " ADD TABLE " + qualified + ";";
	return std::nullopt;
}

/* The filters rt_sub_check checked, as [[column, op, negated, type, value, ok], ...] */
void
ParseCheckedFilters(const char *text, std::vector<CheckedFilter> &out)
{
	rapidjson::Document doc;
	if (!json::Parse(doc, text) || !doc.IsArray())
		return;
	for (const rapidjson::Value &f : doc.GetArray())
	{
		if (!f.IsArray() || f.Size() != 6 || !f[0].IsString() || !f[1].IsString() ||
		    !f[2].IsBool() || !f[3].IsString() || !f[4].IsString() || !f[5].IsBool())
			continue;
		out.push_back(CheckedFilter{f[0].GetString(), f[1].GetString(), f[2].GetBool(),
		                            f[3].GetString(), f[4].GetString(), f[5].GetBool()});
	}
}

/* One table an entry matched (a row of rt_sub_check), with the warnings it calls for */
MatchedTable
ParseMatchedTable(const PGresult *r, int row, std::vector<std::string> &warnings)
{
	MatchedTable t;
	t.relid = static_cast<uint32_t>(strtoul(PQgetvalue(r, row, 0), nullptr, 10));
	t.schema = PQgetvalue(r, row, 1);
	t.table = PQgetvalue(r, row, 2);
	t.qualified = PQgetvalue(r, row, 3);
	t.rls = PQgetvalue(r, row, 4)[0] == 't';
	t.replident = PQgetvalue(r, row, 5)[0];
	t.has_pk = PQgetvalue(r, row, 6)[0] == 't';
	ParseCheckedFilters(PQgetvalue(r, row, 7), t.filters);
	if (!PQgetisnull(r, row, 8))
		t.select = ParseTextArray(PQgetvalue(r, row, 8));
	if (t.replident == 'n')
		warnings.push_back("Table " + t.qualified +
		                   " has REPLICA IDENTITY NOTHING: its UPDATE and DELETE cannot be "
		                   "published or carry old_record. Run: ALTER TABLE " +
		                   t.qualified + " REPLICA IDENTITY FULL;");
	else if (t.replident == 'd' && !t.has_pk)
		warnings.push_back("Table " + t.qualified +
		                   " has no primary key: its changes arrive as \"Error 400: Bad Request, "
		                   "no primary key\" and UPDATE/DELETE cannot be published. Add a primary "
		                   "key, or run: ALTER TABLE " +
		                   t.qualified + " REPLICA IDENTITY FULL;");
	return t;
}

/* One entry's rt_sub_check answer; failed: an entry of this join failed before (or now) */
void
ReadEntry(const PGresult *r, const PgChangesParams &p, const std::optional<std::string> &diagnosis,
          EntryOutcome &out, bool &failed)
{
	ExecStatusType st = PQresultStatus(r);
	if (failed || st == PGRES_PIPELINE_ABORTED)
	{
		out.error = std::string(); /* an earlier entry's error stands for the join */
		return;
	}
	if (st == PGRES_FATAL_ERROR)
	{
		out.error = PgChangesExceptionText(p, PostgrexErrorText(r));
		failed = true;
		return;
	}
	if (PQntuples(r) == 0)
	{
		out.error = PgChangesNoTableText(p);
		if (diagnosis)
			out.warnings.push_back(*diagnosis);
		failed = true;
		return;
	}
	for (int row = 0; row < PQntuples(r); row++)
		out.tables.push_back(ParseMatchedTable(r, row, out.warnings));
}

/* A join's answers: its role's bypass, the diagnoses, then one check per entry */
bool
ReadJoin(Results &res, JoinCheck &j)
{
	j.outcomes.assign(j.entries.size(), EntryOutcome{});
	PGresult *r = res.Next();
	if (r == nullptr)
		return false;
	j.bypass_rls = IsOk(r) && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	/* why explicit names matched nothing, kept for the entries that did */
	std::vector<std::optional<std::string>> diagnosis(j.entries.size());
	for (size_t e = 0; e < j.entries.size(); e++)
	{
		const PgChangesParams &p = j.entries[e];
		if (p.schema == "*" || p.table == "*")
			continue;
		r = res.Next();
		if (r == nullptr)
			return false;
		diagnosis[e] = Diagnose(r);
	}
	bool failed = false;
	for (size_t e = 0; e < j.entries.size(); e++)
	{
		r = res.Next();
		if (r == nullptr)
			return false;
		ReadEntry(r, j.entries[e], diagnosis[e], j.outcomes[e], failed);
	}
	return res.Sync();
}

} // namespace

/* Queue one join's statements: its role, a diagnosis per named table, a check per entry */
bool
PgChangesDb::SendJoin(const JoinCheck &j)
{
	auto send = [&](const char *stmt, int n, const char *const *vals)
	{ return PQsendQueryPrepared(conn_, stmt, n, vals, nullptr, nullptr, 0) == 1; };
	const char *role[] = {j.role.c_str()};
	if (!send("rt_role", 1, role))
		return false;
	for (const PgChangesParams &p : j.entries)
	{
		if (p.schema == "*" || p.table == "*")
			continue;
		const char *v[] = {p.schema.c_str(), p.table.c_str()};
		if (!send("rt_sub_diag", 2, v))
			return false;
	}
	for (const PgChangesParams &p : j.entries)
	{
		SubCheckArgs a(p);
		const char *v[] = {
		    p.schema.c_str(), p.table.c_str(),  j.claims_json.c_str(),
		    a.a_cols.c_str(), a.a_ops.c_str(),  a.a_vals.c_str(),
		    a.negs.c_str(),   a.action.c_str(), p.select ? a.a_sel.c_str() : nullptr};
		if (!send("rt_sub_check", 9, v))
			return false;
	}
	return PQpipelineSync(conn_) == 1;
}

bool
PgChangesDb::CheckJoinsOnce(std::span<JoinCheck *> joins, uint64_t *wal_lsn, std::string &err)
{
	if (!Connect(err))
		return false;
	if (wal_lsn != nullptr &&
	    (PQsendQueryParams(conn_, "SELECT pg_catalog.pg_current_wal_flush_lsn()::text", 0, nullptr,
	                       nullptr, nullptr, nullptr, 0) != 1 ||
	     PQpipelineSync(conn_) != 1))
		return Fail(err);
	for (JoinCheck *j : joins)
		if (!SendJoin(*j))
			return Fail(err);
	if (PQflush(conn_) != 0)
		return Fail(err);

	Results res(conn_);
	if (wal_lsn != nullptr)
	{
		PGresult *r = res.Next();
		if (r == nullptr)
			return Fail(err);
		*wal_lsn = IsOk(r) && PQntuples(r) == 1 ? ParseLsn(PQgetvalue(r, 0, 0)) : 0;
		if (!res.Sync())
			return Fail(err);
		if (*wal_lsn == 0)
		{
			err = "pg_current_wal_flush_lsn() failed";
			Disconnect();
			return false;
		}
	}
	for (JoinCheck *j : joins)
		if (!ReadJoin(res, *j))
			return Fail(err);
	return true;
}

/*
 * One-column keys of these types render the same through to_jsonb in the
 * database as in the ring, so the answer can name keys instead of positions.
 */
namespace
{

struct KeyType
{
	std::string_view typname;
	const char *array_type; /* the parameter's type: keys go as an array literal */
};
constexpr KeyType kKeyTypes[] = {
    {"int2", "pg_catalog.int2[]"}, {"int4", "pg_catalog.int4[]"}, {"int8", "pg_catalog.int8[]"},
    {"uuid", "pg_catalog.uuid[]"}, {"text", "pg_catalog.text[]"}, {"varchar", "pg_catalog.text[]"},
};

const KeyType *
FindKeyType(std::string_view typname)
{
	for (const KeyType &k : kKeyTypes)
		if (k.typname == typname)
			return &k;
	return nullptr;
}

/* {"1","2"}: the keys' JSON texts (numbers, strings) as a Postgres array literal */
std::string
KeyArrayLiteral(const std::vector<std::string_view> &values)
{
	std::string out = "{";
	for (size_t i = 0; i < values.size(); i++)
	{
		std::string_view v = values[i];
		std::string text;
		if (!v.empty() && v.front() == '"')
		{
			rapidjson::Document d;
			if (json::Parse(d, v) && d.IsString())
				text.assign(d.GetString(), d.GetStringLength());
		}
		else
			text.assign(v);
		if (i > 0)
			out += ',';
		AppendArrayElement(out, text);
	}
	out += '}';
	return out;
}

} // namespace

bool
PgChangesDb::ByValue(const VisibilityCheck &v)
{
	return v.pk_columns.size() == 1 && v.key_values.size() == v.count &&
	       FindKeyType(v.pk_type) != nullptr;
}

/*
 * Integer keys that lie close together (rows of a serial or identity column,
 * inserted in key order): one index range scan from the lowest to the highest
 * finds them all, where = ANY descends the index once per key. The range may
 * also hold rows of other transactions; their keys are not asked for and are
 * ignored in the answer; the range spans fewer than 2 x keys + kRangeSlack values.
 */
bool
PgChangesDb::DenseRange(const VisibilityCheck &v, int64_t &lo, int64_t &hi)
{
	constexpr uint64_t kRangeSlack = 64;
	if (!ByValue(v) || v.count < 2 ||
	    (v.pk_type != "int2" && v.pk_type != "int4" && v.pk_type != "int8"))
		return false;
	for (size_t k = 0; k < v.count; k++)
	{
		std::string_view t = v.key_values[k];
		int64_t n = 0;
		auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
		if (ec != std::errc() || end != t.data() + t.size())
			return false;
		lo = k == 0 ? n : std::min(lo, n);
		hi = k == 0 ? n : std::max(hi, n);
	}
	uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
	return span < 2 * v.count + kRangeSlack;
}

const std::string &
PgChangesDb::VisibilityStatement(const VisibilityCheck &v, bool range, bool &fresh,
                                 std::string &sql)
{
	std::string key = std::to_string(v.relid) + '\n' + v.schema + '\n' + v.table;
	for (const std::string &c : v.pk_columns)
		key += '\n' + c;
	bool by_value = ByValue(v);
	key += range ? "\nr" : by_value ? "\nv" : "\ne";
	auto it = vis_names_.find(key);
	fresh = it == vis_names_.end();
	if (!fresh)
		return it->second;
	/*
	 * A one-column key of a common type (int, uuid, text) is looked up in one
	 * index scan (= ANY of an array literal of that type), answering with the
	 * visible keys as to_jsonb renders them, which is how the ring renders
	 * them. Other keys arrive as JSON objects; jsonb_populate_record turns
	 * each into a row of the table's type, so every key column is compared
	 * with its own type (and its index) without naming types here; those
	 * answer with positions.
	 */
	std::string rel = Quoted(conn_, v.schema) + "." + Quoted(conn_, v.table);
	if (range)
	{
		std::string c = Quoted(conn_, v.pk_columns[0]);
		sql = "SELECT pg_catalog.to_jsonb(t." + c + ")::text FROM " + rel + " AS t WHERE t." + c +
		      " BETWEEN $1::pg_catalog.int8 AND $2::pg_catalog.int8";
	}
	else if (by_value)
	{
		std::string c = Quoted(conn_, v.pk_columns[0]);
		sql = "SELECT pg_catalog.to_jsonb(t." + c + ")::text FROM " + rel + " AS t WHERE t." + c +
		      " = ANY ($1::" + FindKeyType(v.pk_type)->array_type + ")";
	}
	else
	{
		sql = "SELECT e.n FROM pg_catalog.jsonb_array_elements($1::jsonb) WITH ORDINALITY AS "
		      "e(j, n), LATERAL pg_catalog.jsonb_populate_record(NULL::" +
		      rel + ", e.j) AS r WHERE EXISTS (SELECT 1 FROM " + rel + " AS t WHERE ";
		for (size_t i = 0; i < v.pk_columns.size(); i++)
		{
			std::string c = Quoted(conn_, v.pk_columns[i]);
			sql += (i ? " AND t." : "t.") + c + " = r." + c;
		}
		sql += ")";
	}
	auto ins = vis_names_.emplace(key, "rt_vis_" + std::to_string(next_stmt_++));
	return ins.first->second;
}

bool
PgChangesDb::RunBatchTry(std::vector<VisibilityCheck> &vis, std::vector<PrivilegeCheck> &privs,
                         std::string &err)
{
	for (size_t at = 0; at < vis.size(); at += kChecksPerTrip)
		if (!RunVisibilityOnce(std::span<VisibilityCheck>(
		                           vis.data() + at, std::min(kChecksPerTrip, vis.size() - at)),
		                       err))
			return false;
	for (size_t at = 0; at < privs.size(); at += kChecksPerTrip)
		if (!RunPrivilegesOnce(std::span<PrivilegeCheck>(
		                           privs.data() + at, std::min(kChecksPerTrip, privs.size() - at)),
		                       err))
			return false;
	return true;
}

namespace
{

/* The rows of a visibility check that ran: which of its changes the group may see */
void
ReadVisible(const PGresult *r, bool by_value, VisibilityCheck &v)
{
	if (by_value)
	{
		/* the visible keys: every change with one of them (a key may come twice) */
		std::unordered_map<std::string_view, int> seen;
		for (int row = 0; row < PQntuples(r); row++)
			seen.emplace(std::string_view(PQgetvalue(r, row, 0),
			                              static_cast<size_t>(PQgetlength(r, row, 0))),
			             1);
		for (size_t k = 0; k < v.key_values.size() && k < v.count; k++)
			if (seen.count(v.key_values[k]) > 0)
				v.visible[k] = 1;
		return;
	}
	for (int row = 0; row < PQntuples(r); row++)
	{
		long n = strtol(PQgetvalue(r, row, 0), nullptr, 10);
		if (n >= 1 && static_cast<size_t>(n) <= v.count)
			v.visible[static_cast<size_t>(n - 1)] = 1;
	}
}

} // namespace

/*
 * The statement of each check, prepared (alone before its sync: a table that
 * cannot be prepared fails only there) when it is new; every answer starts as
 * "not visible".
 */
bool
PgChangesDb::PrepareVisibility(std::span<VisibilityCheck> vis, VisibilityRound &round)
{
	std::vector<std::string> &names = round.names;
	std::vector<uint8_t> &fresh = round.fresh;
	for (size_t i = 0; i < vis.size(); i++)
	{
		bool is_new = false;
		std::string sql;
		bool range = round.params[i][1] != nullptr;
		names[i] = VisibilityStatement(vis[i], range, is_new, sql);
		fresh[i] = is_new;
		vis[i].visible.assign(vis[i].count, 0);
		int nparams = range ? 2 : 1;
		if (is_new && (PQsendPrepare(conn_, names[i].c_str(), sql.c_str(), nparams, nullptr) != 1 ||
		               PQpipelineSync(conn_) != 1))
			return false;
	}
	return true;
}

void
PgChangesDb::ForgetStatement(const std::string &name)
{
	for (auto it = vis_names_.begin(); it != vis_names_.end(); ++it)
		if (it->second == name)
		{
			vis_names_.erase(it);
			return;
		}
}

/*
 * One pass over the checks still to do, in one implicit transaction (one sync):
 * each group's claims are local settings the next group's replace. An error
 * aborts the rest of the transaction: the check that failed counts as not
 * visible, the ones it aborted are left in again for the next pass.
 */
bool
PgChangesDb::VisibilityPass(std::span<VisibilityCheck> vis, const VisibilityRound &round,
                            std::vector<size_t> &todo, bool read_prepares)
{
	for (size_t i : todo)
	{
		VisibilityCheck &v = vis[i];
		const char *claims[] = {v.role->c_str(), v.claims_json->c_str(), v.sub->c_str()};
		const auto &p = round.params[i];
		const char *keys[] = {p[0]->c_str(), p[1] != nullptr ? p[1]->c_str() : nullptr};
		if (PQsendQueryPrepared(conn_, "rt_claims", 3, claims, nullptr, nullptr, 0) != 1 ||
		    PQsendQueryPrepared(conn_, round.names[i].c_str(), p[1] != nullptr ? 2 : 1, keys,
		                        nullptr, nullptr, 0) != 1)
			return false;
	}
	if (PQpipelineSync(conn_) != 1 || PQflush(conn_) != 0)
		return false;
	Results res(conn_);
	if (read_prepares)
		for (size_t i = 0; i < vis.size(); i++)
		{
			if (!round.fresh[i])
				continue;
			PGresult *p = res.Next();
			if (p == nullptr)
				return false;
			if (!IsOk(p))
				Log(LogLevel::kWarning, "changes", "visibility check of %s.%s not prepared: %s",
				    vis[i].schema.c_str(), vis[i].table.c_str(), PQresultErrorMessage(p));
			if (!res.Sync())
				return false;
		}
	std::vector<size_t> again;
	for (size_t i : todo)
	{
		VisibilityCheck &v = vis[i];
		PGresult *c = res.Next(); /* claims */
		if (c == nullptr)
			return false;
		ExecStatusType cst = PQresultStatus(c);
		PGresult *r = res.Next();
		if (r == nullptr)
			return false;
		ExecStatusType st = PQresultStatus(r);
		if (cst == PGRES_PIPELINE_ABORTED ||
		    (cst != PGRES_FATAL_ERROR && st == PGRES_PIPELINE_ABORTED))
			again.push_back(i);
		else if (cst == PGRES_FATAL_ERROR)
			continue; /* these claims cannot be taken (a role that went): nothing visible */
		else if (st != PGRES_TUPLES_OK)
		{
			/* not known, so not visible (the channel is told); a statement that broke (DDL) is
			 * made again next time */
			Log(LogLevel::kWarning, "changes", "visibility check of %s.%s failed: %s",
			    v.schema.c_str(), v.table.c_str(), PQresultErrorMessage(r));
			v.failed = true;
			ForgetStatement(round.names[i]);
		}
		else
			ReadVisible(r, ByValue(v), v);
	}
	if (!res.Sync())
		return false;
	todo.swap(again);
	return true;
}

bool
PgChangesDb::RunVisibilityOnce(std::span<VisibilityCheck> vis, std::string &err)
{
	if (!Connect(err))
		return false;
	VisibilityRound round{
	    std::vector<std::string>(vis.size()), std::vector<uint8_t>(vis.size(), 0), {}, {}, {}};
	/* one-column keys: a range or an array literal, once per key list (groups share lists) */
	round.params.resize(vis.size());
	for (size_t i = 0; i < vis.size(); i++)
	{
		const std::string *list = vis[i].keys_json.get();
		round.params[i] = {list, nullptr};
		if (!ByValue(vis[i]))
			continue;
		auto r = round.ranges.find(list);
		auto a = round.arrays.find(list);
		if (r == round.ranges.end() && a == round.arrays.end())
		{
			int64_t lo = 0, hi = 0;
			if (DenseRange(vis[i], lo, hi))
				r = round.ranges
				        .emplace(list,
				                 std::array<std::string, 2>{std::to_string(lo), std::to_string(hi)})
				        .first;
			else
				a = round.arrays.emplace(list, KeyArrayLiteral(vis[i].key_values)).first;
		}
		if (r != round.ranges.end())
			round.params[i] = {&r->second[0], &r->second[1]};
		else
			round.params[i] = {&a->second, nullptr};
	}
	if (!PrepareVisibility(vis, round))
		return Fail(err);
	std::vector<size_t> todo;
	for (size_t i = 0; i < vis.size(); i++)
		todo.push_back(i);
	for (int pass = 0; pass < 4 && !todo.empty(); pass++)
		if (!VisibilityPass(vis, round, todo, pass == 0))
			return Fail(err);
	return true;
}

bool
PgChangesDb::RunPrivilegesOnce(std::span<PrivilegeCheck> privs, std::string &err)
{
	if (!Connect(err))
		return false;
	std::vector<std::string> relids(privs.size());
	for (size_t i = 0; i < privs.size(); i++)
	{
		relids[i] = std::to_string(privs[i].relid);
		const char *v[] = {privs[i].role->c_str(), relids[i].c_str()};
		if (PQsendQueryPrepared(conn_, "rt_privs", 2, v, nullptr, nullptr, 0) != 1 ||
		    PQpipelineSync(conn_) != 1)
			return Fail(err);
	}
	if (PQflush(conn_) != 0)
		return Fail(err);
	Results res(conn_);
	for (PrivilegeCheck &p : privs)
	{
		PGresult *r = res.Next();
		if (r == nullptr)
			return Fail(err);
		p.ok = IsOk(r) && PQntuples(r) == 1;
		p.attnums = p.ok ? ParseIntArray(PQgetvalue(r, 0, 0)) : std::vector<uint32_t>{};
		if (!res.Sync())
			return Fail(err);
	}
	return true;
}

} // namespace rt::fanout
