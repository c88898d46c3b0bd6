/*
 * ring_change.hpp: a RT_REC_CHANGE record of the ring (one committed row
 * change of a published table; layout in rt_ring.h), decoded into views.
 *
 * Pure, no I/O: the ring reader thread decodes each record once; the
 * postgres_changes fan-out picks columns and values per subscriber from the
 * views without re-encoding them (every value is already the JSON text
 * clients receive).
 */
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace rt::fanout
{

/* One column, in attribute order; an empty value means "not in that object". */
struct RingColumn
{
	bool pk = false;
	uint32_t attnum = 0;
	std::string_view name;
	std::string_view type;      /* pg_type.typname */
	std::string_view new_value; /* JSON text in "record" */
	std::string_view old_value; /* JSON text in "old_record" */
};

struct RingChange
{
	enum class Action : uint32_t
	{
		kInsert = 1,
		kUpdate = 2,
		kDelete = 3,
	};

	uint32_t flags = 0; /* RT_CHG_* */
	uint64_t commit_lsn = 0;
	uint64_t commit_time_us = 0; /* Unix epoch, UTC */
	uint32_t relid = 0;
	Action action = Action::kInsert;
	std::string_view schema;
	std::string_view table;
	std::vector<RingColumn> columns; /* reused across calls: decode into one object */

	bool rls() const;                   /* the table has row level security enabled */
	bool too_large() const;             /* values over 64 bytes were left out (Error 413) */
	std::string_view type_name() const; /* "INSERT", "UPDATE" or "DELETE" */
};

/*
 * Decode a CHANGE record payload into out; the views point into payload,
 * which must outlive them. False if malformed: truncated fields, an unknown
 * action, empty schema, table, column name or type, or more columns than
 * PostgreSQL allows.
 */
bool DecodeRingChange(const void *payload, uint32_t len, RingChange &out);

} // namespace rt::fanout
