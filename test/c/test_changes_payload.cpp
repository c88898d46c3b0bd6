/*
 * test_changes_payload.cpp: unit tests of the postgres_changes `data`
 * object (src/fanout/changes_payload.cpp, PROTOCOL.md 6.4 step 6 and 6.5):
 * keys per action, column masks, the TOAST fallback, DELETE under RLS with
 * the primary key only, the 400/401/413 error shapes and the commit time.
 */
#include "postgres_changes/changes_payload.hpp"

#include <cstring>
#include <string>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

namespace rf = rt::fanout;
using A = rf::RingChange::Action;

namespace
{

constexpr uint64_t kCommitUs = 1767604442118456ull; /* 2026-01-05T09:14:02.118456Z */

rf::RingChange
Change(A action, uint32_t flags = 0)
{
	rf::RingChange c;
	c.flags = flags;
	c.commit_time_us = kCommitUs;
	c.relid = 1;
	c.action = action;
	c.schema = "public";
	c.table = "to\"dos";
	c.columns.push_back(rf::RingColumn{true, 1, "id", "int8", "46", "45"});
	c.columns.push_back(rf::RingColumn{false, 2, "task", "text", "\"buy milk\"", "\"old\""});
	c.columns.push_back(rf::RingColumn{false, 3, "body", "text", "", "\"toasted\""});
	return c;
}

std::string
Data(const rf::RingChange &c, rf::ColumnMask mask, bool pk_only_old = false,
     rf::ChangeError error = rf::ChangeError::kNone)
{
	std::string out;
	rf::AppendChangeData(out, c, mask, pk_only_old, error);
	return out;
}

void
TestInsertUpdateDelete(void **)
{
	const std::string head = R"({"schema":"public","table":"to\"dos",)"
	                         R"("commit_timestamp":"2026-01-05T09:14:02.118Z",)";
	const std::string cols =
	    R"("columns":[{"name":"id","type":"int8"},{"name":"task","type":"text"},)"
	    R"({"name":"body","type":"text"}])";
	/* INSERT: no old_record; an absent new value takes the old one (unchanged TOAST) */
	assert_string_equal(Data(Change(A::kInsert), {1, 1, 1}).c_str(),
	                    (head + R"("type":"INSERT",)" + cols +
	                     R"(,"record":{"id":46,"task":"buy milk","body":"toasted"},"errors":null})")
	                        .c_str());
	assert_string_equal(Data(Change(A::kUpdate), {1, 0, 1}).c_str(),
	                    (head + R"("type":"UPDATE","columns":[{"name":"id","type":"int8"},)" +
	                     R"({"name":"body","type":"text"}],"record":{"id":46,"body":"toasted"},)" +
	                     R"("old_record":{"id":45,"body":"toasted"},"errors":null})")
	                        .c_str());
	/* DELETE: no record; under RLS the old record keeps only the primary key */
	assert_string_equal(
	    Data(Change(A::kDelete, 0x1), {1, 1, 1}, true).c_str(),
	    (head + R"("type":"DELETE",)" + cols + R"(,"old_record":{"id":45},"errors":null})")
	        .c_str());
}

void
TestErrorShapes(void **)
{
	assert_string_equal(
	    Data(Change(A::kInsert), {1, 1, 1}, false, rf::ChangeError::kNoPrimaryKey).c_str(),
	    R"({"schema":"public","table":"to\"dos","commit_timestamp":null,"type":"INSERT",)"
	    R"("columns":[],"record":{},"errors":["Error 400: Bad Request, no primary key"]})");
	assert_string_equal(
	    Data(Change(A::kUpdate), {1, 1, 1}, false, rf::ChangeError::kUnauthorized).c_str(),
	    R"({"schema":"public","table":"to\"dos","commit_timestamp":null,"type":"UPDATE",)"
	    R"("columns":[],"record":{},"old_record":{},"errors":["Error 401: Unauthorized"]})");
	/* too large: the ring kept the small values; the error says so */
	std::string big = Data(Change(A::kInsert, 0x4), {1, 1, 0});
	assert_non_null(strstr(big.c_str(), R"("errors":["Error 413: Payload Too Large"]})"));
}

void
TestTimestampAndHead(void **)
{
	std::string ts;
	rf::AppendCommitTimestamp(ts, 0);
	assert_string_equal(ts.c_str(), "\"1970-01-01T00:00:00.000Z\"");
	ts.clear();
	rf::AppendCommitTimestamp(ts, 1767225599999999ull);
	assert_string_equal(ts.c_str(), "\"2025-12-31T23:59:59.999Z\"");
	assert_string_equal(rf::ChangesPayloadHead({48213377, 7}).c_str(),
	                    R"({"ids":[48213377,7],"data":)");
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestInsertUpdateDelete),
	    cmocka_unit_test(TestErrorShapes),
	    cmocka_unit_test(TestTimestampAndHead),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
