/*
 * changes_payload.hpp: the `data` object of a postgres_changes message
 * (PROTOCOL.md 6.4 step 6, 6.5), built from one ring CHANGE record for one
 * output variant (which columns a role may see and selected, whether a
 * DELETE keeps only its primary key), and the message around it.
 *
 * Pure, any thread. Values are spliced from the record as they are: the
 * output plugin rendered them once as the JSON clients receive.
 */
#pragma once

#include "db/ring_change.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rt::fanout
{

/* Which of a change's columns (by index in RingChange::columns) one variant shows. */
using ColumnMask = std::vector<uint8_t>;

enum class ChangeError : uint8_t
{
	kNone,
	kNoPrimaryKey, /* Error 400: INSERT/UPDATE of a table without a primary key */
	kUnauthorized, /* Error 401: the role may not SELECT every primary-key column */
};

/*
 * Append the `data` object for change c showing the columns in mask (same
 * size as c.columns). pk_only_old: DELETE of a table with RLS, whose
 * old_record keeps only primary-key columns. An error variant has no
 * columns, an empty record/old_record and a null commit_timestamp.
 */
void AppendChangeData(std::string &out, const RingChange &c, const ColumnMask &mask,
                      bool pk_only_old, ChangeError error = ChangeError::kNone);

/* "2026-01-05T09:14:02.118Z" for microseconds since the Unix epoch (UTC). */
void AppendCommitTimestamp(std::string &out, uint64_t unix_us);

/* The message payload's head up to `data`'s value: {"ids":[1,2],"data": */
std::string ChangesPayloadHead(const std::vector<uint32_t> &ids);
constexpr std::string_view kChangesPayloadTail = "}";

} // namespace rt::fanout
