// 19 Row changes in the ring: the decoder worker writes each committed INSERT, UPDATE and
// DELETE of a published table as a CHANGE record (rt_ring.h), values already rendered as the
// JSON clients receive. A tool built on the sidecar's own ring reader (test/c/ring_dump.cpp)
// prints each record it reads in the output plugin's JSON form; the same transactions decoded
// through SQL (pg_logical_slot_get_changes on a second slot with the plugin "realtime") must
// give exactly the same lines, record for record, in commit order, messages interleaved.
// Needs RT_DB_URL, RT_RING_PATH and RT_RING_DUMP_BIN (scripts/test.sh).

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { RT_DB_URL, uniq } from './lib/helpers.mjs';

const RING = process.env.RT_RING_PATH ?? '';
const DUMP = process.env.RT_RING_DUMP_BIN ?? '';
const SCHEMA = 'e2e_ring';
const SLOT = 'e2e_ring_cmp';

let db;
let madePublication = false;

async function cleanup() {
	await db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
	                WHERE slot_name = $1`, [SLOT]);
	await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
}

before(async () => {
	assert.ok(RT_DB_URL && RING && DUMP, 'RT_DB_URL, RT_RING_PATH and RT_RING_DUMP_BIN are set');
	db = new pg.Client({ connectionString: RT_DB_URL });
	await db.connect();
	await cleanup();
	const { rows } = await db.query(
		`SELECT count(*)::int AS n FROM pg_publication WHERE pubname = 'supabase_realtime'`);
	if (rows[0].n === 0) {
		await db.query('CREATE PUBLICATION supabase_realtime');
		madePublication = true;
	}
	await db.query(`CREATE SCHEMA ${SCHEMA}`);
	await db.query(`CREATE TYPE ${SCHEMA}.mood AS ENUM ('sad', 'happy')`);
	await db.query(`CREATE TABLE ${SCHEMA}.types (
		id int PRIMARY KEY, i2 int2, i8 int8, n numeric, f4 float4, f8 float8, nan float8,
		b bool, t text, vc varchar(10), u uuid, j json, jb jsonb, arr int[], tarr text[],
		ts timestamp, tstz timestamptz, d date, tm time, by bytea, m ${SCHEMA}.mood, nul text,
		"we""ird col" text)`);
	await db.query(`CREATE TABLE ${SCHEMA}.full_rls (id int PRIMARY KEY, v text)`);
	await db.query(`ALTER TABLE ${SCHEMA}.full_rls REPLICA IDENTITY FULL`);
	await db.query(`ALTER TABLE ${SCHEMA}.full_rls ENABLE ROW LEVEL SECURITY`);
	await db.query(`CREATE TABLE ${SCHEMA}.toast (id int PRIMARY KEY, v text, big text)`);
	await db.query(`ALTER TABLE ${SCHEMA}.toast ALTER COLUMN big SET STORAGE EXTERNAL`);
	await db.query(`CREATE TABLE ${SCHEMA}.nopk (a int, b text)`);
	await db.query(`CREATE TABLE ${SCHEMA}.other (id int PRIMARY KEY)`);
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${SCHEMA}.types,
		${SCHEMA}.full_rls, ${SCHEMA}.toast, ${SCHEMA}.nopk`);
	await db.query(`SELECT pg_create_logical_replication_slot($1, 'realtime')`, [SLOT]);
});

after(async () => {
	if (db) {
		await cleanup().catch(() => {});
		if (madePublication)
			await db.query('DROP PUBLICATION IF EXISTS supabase_realtime').catch(() => {});
		await db.end();
	}
});

// Start ring_dump; resolves once it is attached, with { done }: a promise of its lines (wrapped,
// since resolving with a promise would wait for that one).
function startDump(count, ms) {
	return new Promise((resolve, reject) => {
		const child = spawn(DUMP, [RING, String(count), String(ms)]);
		let out = '';
		let err = '';
		const done = new Promise((res) => {
			child.on('close', (code) => res({ code, lines: out.split('\n').filter(Boolean), err }));
		});
		child.stdout.on('data', (d) => { out += d; });
		child.stderr.on('data', (d) => {
			err += d;
			if (err.includes('ready\n')) resolve({ done });
		});
		child.on('error', reject);
		child.on('exit', (code) => reject(new Error(`ring_dump exited ${code}: ${err}`)));
	});
}

const ours = (topic) => (line) => {
	const r = JSON.parse(line);
	return r.type === 'message' ? r.topic === topic : r.schema === SCHEMA;
};

test('CHANGE records in the ring are exactly what SQL decoding shows', { timeout: 60000 }, async () => {
	const topic = uniq('ring');
	const big = 'x'.repeat(10000);
	// What the worker writes for us: 1 + 2 + 1 + 1 + 3 + 2 + 1 + 1 + 1 records (see below)
	const expected = 13;
	// Others may write too (nothing else runs now, but be robust): read a little more, filter.
	const { done: dump } = await startDump(expected, 30000);

	await db.query(`INSERT INTO ${SCHEMA}.types VALUES (
		1, -2, 9007199254740993, 1.50, 1.5, -0.1, 'NaN', true, E'a"b\\\\c\\n', 'vc',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"x": [1, 2], "y":"z"}', '{"y": {"z": null}}',
		'{1,2,NULL}', '{"a",NULL,"c d"}', '2026-01-05 09:14:02.118', '2026-01-05 09:14:02.118+02',
		'2026-01-05', '12:34:56', '\\xdeadbeef', 'happy', NULL, 'w')`);                    // 1
	await db.query('BEGIN');
	await db.query(`INSERT INTO ${SCHEMA}.full_rls VALUES (1, 'one'), (2, 'two')`);         // 2
	await db.query(`SELECT realtime.send('{"between":true}', 'ev', $1)`, [topic]);           // 1
	await db.query(`UPDATE ${SCHEMA}.full_rls SET v = 'uno' WHERE id = 1`);                  // 1
	await db.query('COMMIT');
	await db.query(`INSERT INTO ${SCHEMA}.toast VALUES (1, 'a', $1), (2, 'b', $1), (3, 'c', NULL)`,
		[big]);                                                                                // 3
	await db.query(`UPDATE ${SCHEMA}.toast SET v = 'z' WHERE id <= 2`);                      // 2
	await db.query(`DELETE FROM ${SCHEMA}.full_rls WHERE id = 2`);                            // 1
	await db.query(`INSERT INTO ${SCHEMA}.nopk VALUES (1, 'no key')`);                        // 1
	await db.query(`INSERT INTO ${SCHEMA}.other VALUES (1)`);                                  // 0: not published
	await db.query(`TRUNCATE ${SCHEMA}.toast`);                                                // 0: never delivered
	await db.query('BEGIN');
	await db.query(`INSERT INTO ${SCHEMA}.types (id) VALUES (99)`);
	await db.query('ROLLBACK');                                                                // 0: rolled back
	await db.query(`UPDATE ${SCHEMA}.types SET i2 = 7, t = NULL WHERE id = 1`);               // 1

	const { code, lines: ringLines, err } = await dump;
	assert.equal(code, 0, `ring_dump printed ${expected} records in time (${err}; got ${ringLines.length}: ${ringLines.join("\n")})`);
	const { rows } = await db.query(
		`SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)`, [SLOT]);
	const sqlLines = rows.map((r) => r.data).filter(ours(topic));
	const ring = ringLines.filter(ours(topic));
	assert.equal(sqlLines.length, expected, 'SQL decoding shows the expected records');
	assert.equal(ring.length, expected, 'the ring has as many');
	for (let i = 0; i < expected; i++)
		assert.deepEqual(JSON.parse(ring[i]), JSON.parse(sqlLines[i]), `record ${i + 1} is identical`);
	assert.ok(!ringLines.some((l) => JSON.parse(l).type === 'gap'), 'no gap');

	// Spot checks of what the records carry (the pgTAP suite covers every type in depth).
	const recs = ring.map((l) => JSON.parse(l));
	assert.equal(JSON.parse(ring[0]).record.tstz, '2026-01-05T07:14:02.118+00:00', 'timestamptz in UTC');
	assert.match(ring[0], /"i8":9007199254740993[,}]/, 'int8 as an exact JSON number');
	assert.equal(recs[0].record['we"ird col'], 'w');
	assert.deepEqual(recs[3], { ...recs[3], type: 'message', topic, private: false });
	assert.deepEqual(recs[4].old_record, { id: 1, v: 'one' }, 'REPLICA IDENTITY FULL: the whole old row');
	assert.equal(recs[4].rls, true);
	assert.equal(recs[8].record.big, undefined, 'unchanged TOAST value left out of record');
	assert.deepEqual(recs[8].old_record, { id: 1 }, 'default identity: the primary key');
	assert.deepEqual(recs[10].old_record, { id: 2, v: 'two' });
	assert.equal(recs[10].type, 'DELETE');
	assert.deepEqual(recs[11].pk, [], 'a table without a primary key says so');
	assert.equal(recs[12].record.t, null);
	assert.equal(recs[12].record.i2, 7);
});
