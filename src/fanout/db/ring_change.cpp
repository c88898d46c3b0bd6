/*
 * ring_change.cpp: decode RT_REC_CHANGE records (see ring_change.hpp).
 */
#include "db/ring_change.hpp"

#include "rt_ring_fields.h"

namespace rt::fanout
{

namespace
{

constexpr uint32_t kMaxColumns = 1664; /* PostgreSQL's MaxTupleAttributeNumber */

bool
GetView(RtFieldReader &r, std::string_view &v)
{
	const uint8_t *p = nullptr;
	uint32_t n = 0;
	if (!RtFieldGetBytes(&r, &p, &n))
		return false;
	v = std::string_view(reinterpret_cast<const char *>(p), n);
	return true;
}

} // namespace

bool
RingChange::rls() const
{
	return (flags & RT_CHG_RLS) != 0;
}

bool
RingChange::too_large() const
{
	return (flags & RT_CHG_TOO_LARGE) != 0;
}

std::string_view
RingChange::type_name() const
{
	switch (action)
	{
	case Action::kInsert:
		return "INSERT";
	case Action::kUpdate:
		return "UPDATE";
	case Action::kDelete:
		return "DELETE";
	}
	return "";
}

bool
DecodeRingChange(const void *payload, uint32_t len, RingChange &out)
{
	RtFieldReader r;
	uint32_t action = 0;
	uint32_t ncolumns = 0;

	RtFieldReaderInit(&r, payload, len);
	out.columns.clear();
	if (!RtFieldGetU32(&r, &out.flags) || !RtFieldGetU64(&r, &out.commit_lsn) ||
	    !RtFieldGetU64(&r, &out.commit_time_us) || !RtFieldGetU32(&r, &out.relid) ||
	    !RtFieldGetU32(&r, &action) || !GetView(r, out.schema) || !GetView(r, out.table) ||
	    !RtFieldGetU32(&r, &ncolumns))
		return false;
	if (action < RT_CHG_INSERT || action > RT_CHG_DELETE || out.schema.empty() ||
	    out.table.empty() || ncolumns > kMaxColumns)
		return false;
	out.action = static_cast<RingChange::Action>(action);
	out.columns.reserve(ncolumns);
	for (uint32_t i = 0; i < ncolumns; i++)
	{
		RingColumn c;
		uint32_t col_flags = 0;
		if (!RtFieldGetU32(&r, &col_flags) || !RtFieldGetU32(&r, &c.attnum) ||
		    !GetView(r, c.name) || !GetView(r, c.type) || !GetView(r, c.new_value) ||
		    !GetView(r, c.old_value) || c.name.empty() || c.type.empty())
			return false;
		c.pk = (col_flags & RT_COL_PK) != 0;
		out.columns.push_back(c);
	}
	/* fields after the columns belong to later minor versions: ignored */
	return true;
}

} // namespace rt::fanout
