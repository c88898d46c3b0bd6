/*
 * test_ring_change.cpp: unit tests of the sidecar's CHANGE record decoder
 * (src/fanout/ring_change.cpp) over records built with rt_ring.h's field
 * writer in the layout the output plugin writes (rt_ring.h, RT_REC_CHANGE).
 * The plugin's own records are compared with SQL decoding end to end in
 * test/e2e/19_ring_changes.test.mjs.
 */
#include "db/ring_change.hpp"
#include "rt_ring_fields.h"

#include <string>
#include <string_view>
#include <vector>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

using rt::fanout::DecodeRingChange;
using rt::fanout::RingChange;

namespace
{

struct Col
{
	uint32_t flags;
	uint32_t attnum;
	std::string name, type, new_value, old_value;
};

/* A CHANGE payload as the plugin lays it out */
std::vector<uint8_t>
Build(uint32_t flags, uint32_t action, const std::string &schema, const std::string &table,
      const std::vector<Col> &cols, uint32_t ncolumns_field)
{
	std::vector<uint8_t> buf(64 * 1024);
	RtFieldWriter w;
	RtFieldWriterInit(&w, buf.data(), static_cast<uint32_t>(buf.size()));
	RtFieldPutU32(&w, flags);
	RtFieldPutU64(&w, 0x16B3A58ull);
	RtFieldPutU64(&w, 1767604442118000ull);
	RtFieldPutU32(&w, 16384);
	RtFieldPutU32(&w, action);
	RtFieldPutBytes(&w, schema.data(), static_cast<uint32_t>(schema.size()));
	RtFieldPutBytes(&w, table.data(), static_cast<uint32_t>(table.size()));
	RtFieldPutU32(&w, ncolumns_field);
	for (const Col &c : cols)
	{
		RtFieldPutU32(&w, c.flags);
		RtFieldPutU32(&w, c.attnum);
		RtFieldPutBytes(&w, c.name.data(), static_cast<uint32_t>(c.name.size()));
		RtFieldPutBytes(&w, c.type.data(), static_cast<uint32_t>(c.type.size()));
		RtFieldPutBytes(&w, c.new_value.data(), static_cast<uint32_t>(c.new_value.size()));
		RtFieldPutBytes(&w, c.old_value.data(), static_cast<uint32_t>(c.old_value.size()));
	}
	assert_false(w.failed);
	buf.resize(w.len);
	return buf;
}

const std::vector<Col> kCols = {
    {RT_COL_PK, 1, "id", "int8", "46", "46"},
    {0, 2, "task", "text", "\"buy milk\"", ""},
    {0, 4, "tags", "_text", "", ""},
};

void
TestDecodesEveryField(void **)
{
	std::vector<uint8_t> rec = Build(RT_CHG_RLS, RT_CHG_UPDATE, "public", "todos", kCols, 3);
	RingChange c;
	assert_true(DecodeRingChange(rec.data(), static_cast<uint32_t>(rec.size()), c));
	assert_true(c.rls());
	assert_false(c.too_large());
	assert_int_equal(c.commit_lsn, 0x16B3A58ull);
	assert_int_equal(c.commit_time_us, 1767604442118000ull);
	assert_int_equal(c.relid, 16384);
	assert_true(c.action == RingChange::Action::kUpdate);
	assert_true(c.type_name() == "UPDATE");
	assert_true(c.schema == "public");
	assert_true(c.table == "todos");
	assert_int_equal(c.columns.size(), 3);
	assert_true(c.columns[0].pk);
	assert_false(c.columns[1].pk);
	assert_int_equal(c.columns[2].attnum, 4);
	assert_true(c.columns[0].name == "id");
	assert_true(c.columns[1].type == "text");
	assert_true(c.columns[1].new_value == "\"buy milk\"");
	assert_true(c.columns[1].old_value.empty());
	assert_true(c.columns[2].new_value.empty());

	/* decoding into the same object again replaces, never appends */
	std::vector<uint8_t> del = Build(RT_CHG_TOO_LARGE, RT_CHG_DELETE, "s", "t", {kCols[0]}, 1);
	assert_true(DecodeRingChange(del.data(), static_cast<uint32_t>(del.size()), c));
	assert_int_equal(c.columns.size(), 1);
	assert_true(c.too_large());
	assert_true(c.type_name() == "DELETE");
}

void
TestRejectsEveryTruncation(void **)
{
	std::vector<uint8_t> rec = Build(0, RT_CHG_INSERT, "public", "todos", kCols, 3);
	RingChange c;
	for (uint32_t len = 0; len < rec.size(); len++)
	{
		std::vector<uint8_t> cut(rec.begin(), rec.begin() + len);
		assert_false(DecodeRingChange(cut.data(), len, c));
	}
	/* bytes after the columns belong to a later minor version: ignored */
	rec.push_back(0xAB);
	assert_true(DecodeRingChange(rec.data(), static_cast<uint32_t>(rec.size()), c));
}

void
TestRejectsBadValues(void **)
{
	RingChange c;
	std::vector<uint8_t> r;

	r = Build(0, 0, "public", "t", kCols, 3); /* unknown action */
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	r = Build(0, 4, "public", "t", kCols, 3);
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	r = Build(0, RT_CHG_INSERT, "", "t", kCols, 3); /* empty schema */
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	r = Build(0, RT_CHG_INSERT, "public", "", kCols, 3); /* empty table */
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	r = Build(0, RT_CHG_INSERT, "public", "t", {{0, 1, "", "int4", "1", ""}}, 1);
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	r = Build(0, RT_CHG_INSERT, "public", "t", {{0, 1, "a", "", "1", ""}}, 1);
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	/* a column count the record does not hold, or more than PostgreSQL allows */
	r = Build(0, RT_CHG_INSERT, "public", "t", kCols, 4);
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	r = Build(0, RT_CHG_INSERT, "public", "t", {}, 0xFFFFFFFFu);
	assert_false(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	/* a table with no columns at all is valid (CREATE TABLE t ()) */
	r = Build(0, RT_CHG_INSERT, "public", "t", {}, 0);
	assert_true(DecodeRingChange(r.data(), static_cast<uint32_t>(r.size()), c));
	assert_int_equal(c.columns.size(), 0);
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestDecodesEveryField),
	    cmocka_unit_test(TestRejectsEveryTruncation),
	    cmocka_unit_test(TestRejectsBadValues),
	};
	return cmocka_run_group_tests_name("ring_change", tests, nullptr, nullptr);
}
