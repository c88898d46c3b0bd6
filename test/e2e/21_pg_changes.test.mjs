// 21 Postgres Changes (PROTOCOL.md 3.4, 6): row changes of published tables reach the
// channels whose postgres_changes entries match, through the official client and on the wire.
// "Subscribed to PostgreSQL" means changes flow: a row committed right after it is delivered;
// events, every filter operator compared by the column's type, schema-wide entries, one
// message with several ids for several matching entries, the payload shape and the values of
// each type as the client converts them, old_record by replica identity, unchanged TOAST,
// 413 for oversized rows, commit order, the publication and replica identity warnings, and
// hostile filters refused while everything else keeps working. Needs RT_DB_URL
// (scripts/test.sh); the sidecar connects as superuser, this file creates its own schema.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { RT_DB_URL, createClient, closeClients, subscribe, RawClient, uniq, healthz } from './lib/helpers.mjs';
import {
	SUBSCRIBED,
	COMMIT_TS,
	UNABLE_PUB,
	UNABLE_EXC,
	uniqSchema,
	openDb,
	ensurePublication,
	pgChannel,
	subscribePg,
	isChange,
	rawJoinPg,
	rawSystem,
	rawSubscribePg,
	createBarrierTable,
	barrierEntry,
	barrier,
	waitBarrier,
	rawUntilBarrier,
	rawChanges,
} from './lib/pgchanges.mjs';

const S = uniqSchema('e2e_pgc');
let db;
let madePublication = false;
const raws = [];

async function raw(opts) {
	const r = await RawClient.connect(opts);
	raws.push(r);
	return r;
}

before(async () => {
	db = await openDb();
	madePublication = await ensurePublication(db);
	await db.query(`CREATE SCHEMA ${S}`);
	await db.query(`GRANT USAGE ON SCHEMA ${S} TO anon, authenticated, service_role`);
	await db.query(`CREATE TABLE ${S}.hot (id int PRIMARY KEY)`);
	await db.query(`CREATE TABLE ${S}.ev (id int PRIMARY KEY, v text)`);
	await db.query(`CREATE TABLE ${S}.f (id int PRIMARY KEY, n int, t text, num numeric,
		ts timestamptz, note text)`);
	await db.query(`CREATE TABLE ${S}.other (id int PRIMARY KEY, v text)`);
	await db.query(`CREATE TABLE ${S}.types (id int4 PRIMARY KEY, i2 int2, i4 int4, i8 int8,
		n numeric, f8 float8, finf float8, b bool, t text, vc varchar(10), u uuid, d date,
		ts timestamp, tstz timestamptz, jb jsonb, j json, ta text[], ia int4[], by bytea)`);
	await db.query(`CREATE TABLE ${S}.def_id (id int PRIMARY KEY, v text, w int)`);
	await db.query(`CREATE TABLE ${S}.full_id (id int PRIMARY KEY, v text, w int, big text)`);
	await db.query(`ALTER TABLE ${S}.full_id REPLICA IDENTITY FULL`);
	await db.query(`ALTER TABLE ${S}.full_id ALTER COLUMN big SET STORAGE EXTERNAL`);
	await db.query(`CREATE TABLE ${S}.big (id int PRIMARY KEY, small text, edge64 text,
		edge65 text, n int, huge text)`);
	await db.query(`CREATE TABLE ${S}.ord (id int PRIMARY KEY, tx int)`);
	await db.query(`CREATE TABLE ${S}."NotPub" (id int PRIMARY KEY)`);
	await db.query(`CREATE TABLE ${S}.noident (id int PRIMARY KEY)`);
	await db.query(`ALTER TABLE ${S}.noident REPLICA IDENTITY NOTHING`);
	await db.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${S} TO anon, authenticated, service_role`);
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${S}.hot, ${S}.ev, ${S}.f,
		${S}.other, ${S}.types, ${S}.def_id, ${S}.full_id, ${S}.big, ${S}.ord, ${S}.noident`);
	await createBarrierTable(db, S);
});

after(async () => {
	await closeClients();
	await Promise.all(raws.map((r) => r.close()));
	if (db) {
		await db.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`).catch(() => {});
		if (madePublication) {
			await db.query('DROP PUBLICATION IF EXISTS supabase_realtime').catch(() => {});
		}
		await db.end();
	}
});

test('"Subscribed to PostgreSQL" means flowing: a row committed right after it is delivered (10 channels)', { timeout: 30000 }, async () => {
	const client = createClient();
	for (let k = 0; k < 10; k++) {
		const ch = pgChannel(client, { hot: { event: 'INSERT', schema: S, table: 'hot', filter: `id=eq.${k}` } });
		let inserted = null;
		ch.channel.on('system', {}, (p) => {
			if (p.message === SUBSCRIBED && inserted === null) {
				inserted = db.query(`INSERT INTO ${S}.hot VALUES ($1)`, [k]);
			}
		});
		await subscribePg(ch);
		await inserted;
		const got = await ch.inbox.hot.waitFor((p) => p.new.id === k, 5000, { what: `row ${k}` });
		assert.equal(got.eventType, 'INSERT');
		assert.equal(ch.system.items.filter((p) => p.message === SUBSCRIBED).length, 1, 'one "Subscribed"');
	}
});

test('events: INSERT, UPDATE, DELETE and * bindings each get their own; the server filters by event', { timeout: 20000 }, async () => {
	const ch = pgChannel(createClient(), {
		ins: { event: 'INSERT', schema: S, table: 'ev' },
		upd: { event: 'UPDATE', schema: S, table: 'ev' },
		del: { event: 'DELETE', schema: S, table: 'ev' },
		all: { event: '*', schema: S, table: 'ev' },
		barrier: barrierEntry(S),
	});
	await subscribePg(ch);
	// The server applies the event of each entry (case-insensitively): realtime-js would hide
	// extra messages, a raw socket sees them.
	const r = await raw();
	const topicU = `realtime:${uniq('pgc')}`;
	const topicD = `realtime:${uniq('pgc')}`;
	await rawSubscribePg(r, topicU, [{ event: 'UPDATE', schema: S, table: 'ev' }, barrierEntry(S)]);
	await rawSubscribePg(r, topicD, [{ event: 'delete', schema: S, table: 'ev' }, barrierEntry(S)]);

	await db.query(`INSERT INTO ${S}.ev VALUES (1, 'a')`);
	await db.query(`UPDATE ${S}.ev SET v = 'b' WHERE id = 1`);
	await db.query(`DELETE FROM ${S}.ev WHERE id = 1`);
	const b = await barrier(db, S);
	await waitBarrier(ch.inbox.barrier, b);

	const types = (label) => ch.inbox[label].items.map((p) => p.eventType);
	assert.deepEqual(types('ins'), ['INSERT']);
	assert.deepEqual(types('upd'), ['UPDATE']);
	assert.deepEqual(types('del'), ['DELETE']);
	assert.deepEqual(types('all'), ['INSERT', 'UPDATE', 'DELETE']);
	const [i, u, d] = ch.inbox.all.items;
	for (const p of [i, u, d]) {
		assert.equal(p.schema, S);
		assert.equal(p.table, 'ev');
		assert.match(p.commit_timestamp, COMMIT_TS);
		assert.equal(p.errors, null);
	}
	assert.deepEqual([i.new, i.old], [{ id: 1, v: 'a' }, {}]);
	assert.deepEqual([u.new, u.old], [{ id: 1, v: 'b' }, { id: 1 }]);
	assert.deepEqual([d.new, d.old], [{}, { id: 1 }]);
	assert.deepEqual(ch.inbox.ins.items[0], i, 'the INSERT binding got the same payload');

	const onlyU = await rawUntilBarrier(r, topicU, b);
	assert.deepEqual(onlyU.map((f) => f.msg.payload.data.type), ['UPDATE'], 'an UPDATE entry gets only UPDATE');
	const onlyD = await rawUntilBarrier(r, topicD, b);
	assert.deepEqual(onlyD.map((f) => f.msg.payload.data.type), ['DELETE'], 'a "delete" entry gets only DELETE');
});

test('filters: every operator, compared by the column type', { timeout: 30000 }, async () => {
	// [filter, ids of the rows below it matches]
	const cases = [
		['n=eq.9', [2]],
		['n=neq.9', [1, 3, 4]],
		['n=lt.10', [1, 2]], // text comparison would say '5' > '10'
		['n=lte.10', [1, 2, 3]],
		['n=gt.9', [3, 4]], // text comparison would say '10' < '9'
		['n=gte.10', [3, 4]],
		['n=in.(5,100)', [1, 4]],
		['t=in.(red,green)', [1, 4]],
		['t=eq.red', [1]],
		['n=not.eq.9', [1, 3, 4]],
		['note=is.null', [1]],
		['note=like.%raft%', [2, 4]],
		['note=like.draft%', [4]],
		['note=ilike.DRAFT%', [2, 4]],
		['n=gt.5,n=lt.100', [2, 3]],
		['n=gte.5,t=eq.Red', [3]],
		['num=eq.1.0', [1, 3]], // numeric: 1.0 = 1.00 = 1
		['num=gt.2', [2, 4]], // 10 > 2 as numbers
		['ts=gt.2026-01-05 11:00:00+00', [2, 3]], // row 3 is 2026-01-05 22:00 UTC
		['ts=lt.2026-01-05T10:00:00+00:00', [4]],
	];
	const client = createClient();
	const chans = cases.map(([filter]) =>
		pgChannel(client, { x: { event: 'INSERT', schema: S, table: 'f', filter }, barrier: barrierEntry(S) })
	);
	await Promise.all(chans.map((c) => subscribePg(c)));
	await db.query(`INSERT INTO ${S}.f (id, n, t, num, ts, note) VALUES
		(1, 5, 'red', 1.00, '2026-01-05 10:00:00+00', NULL),
		(2, 9, 'blue', 2.5, '2026-01-05 12:00:00+00', 'Draft one'),
		(3, 10, 'Red', 1, '2026-01-06 00:00:00+02', 'final'),
		(4, 100, 'green', 10, '2026-01-04 23:59:59+00', 'draft two')`);
	const b = await barrier(db, S);
	await Promise.all(chans.map((c) => waitBarrier(c.inbox.barrier, b)));
	for (let i = 0; i < cases.length; i++) {
		const [filter, want] = cases[i];
		assert.deepEqual(chans[i].inbox.x.items.map((p) => p.new.id), want, `filter ${filter}`);
	}
	assert.deepEqual(chans[18].inbox.x.items[0].new.ts, '2026-01-05T12:00:00+00:00');
});

test('filters on UPDATE see the new values; on DELETE only the replica identity', { timeout: 20000 }, async () => {
	const client = createClient();
	const byN = pgChannel(client, { x: { event: '*', schema: S, table: 'f', filter: 'n=eq.77' }, barrier: barrierEntry(S) });
	const byId = pgChannel(client, { x: { event: '*', schema: S, table: 'f', filter: 'id=eq.7' }, barrier: barrierEntry(S) });
	await subscribePg(byN);
	await subscribePg(byId);
	await db.query(`INSERT INTO ${S}.f (id, n) VALUES (7, 1)`);
	await db.query(`UPDATE ${S}.f SET n = 77 WHERE id = 7`);
	await db.query(`UPDATE ${S}.f SET n = 78 WHERE id = 7`);
	await db.query(`DELETE FROM ${S}.f WHERE id = 7`);
	const b = await barrier(db, S);
	await waitBarrier(byN.inbox.barrier, b);
	await waitBarrier(byId.inbox.barrier, b);
	assert.deepEqual(byN.inbox.x.items.map((p) => [p.eventType, p.new.n]), [['UPDATE', 77]],
		'n=eq.77: only the update to 77 (the DELETE identity has no n)');
	assert.deepEqual(byId.inbox.x.items.map((p) => p.eventType), ['INSERT', 'UPDATE', 'UPDATE', 'DELETE']);
});

test('schema-wide entries (table * or no table) get every table of the schema', { timeout: 20000 }, async () => {
	const client = createClient();
	const star = pgChannel(client, { all: { event: '*', schema: S, table: '*' } });
	const noTable = pgChannel(client, { all: { event: '*', schema: S } });
	await subscribePg(star);
	await subscribePg(noTable);
	await db.query(`INSERT INTO ${S}.other VALUES (1, 'o')`);
	await db.query(`INSERT INTO ${S}.hot VALUES (100)`);
	const b = await barrier(db, S);
	for (const ch of [star, noTable]) {
		await ch.inbox.all.waitFor((p) => p.table === 'barrier' && p.new.id === b, 5000);
		assert.deepEqual(ch.inbox.all.items.map((p) => [p.table, p.new.id]), [['other', 1], ['hot', 100], ['barrier', b]]);
	}
	assert.deepEqual(star.inbox.all.items[0].new, { id: 1, v: 'o' });
});

test('two matching entries of one channel: one message with both ids, one callback per binding', { timeout: 20000 }, async () => {
	const e1 = { event: 'INSERT', schema: S, table: 'f', filter: 'id=eq.50' };
	const e2 = { event: '*', schema: S, table: 'f' };
	const r = await raw();
	const topic = `realtime:${uniq('pgc')}`;
	const [id1, id2] = await rawSubscribePg(r, topic, [e1, e2, barrierEntry(S)]);
	assert.notEqual(id1, id2, 'different entries, different ids');
	const ch = pgChannel(createClient(), { one: e1, two: e2, barrier: barrierEntry(S) });
	await subscribePg(ch);

	await db.query(`INSERT INTO ${S}.f (id) VALUES (50)`);
	await db.query(`INSERT INTO ${S}.f (id) VALUES (51)`);
	const b = await barrier(db, S);
	const frames = await rawUntilBarrier(r, topic, b);
	assert.equal(frames.length, 2, 'one message per change');
	assert.deepEqual([...frames[0].msg.payload.ids].sort((x, y) => x - y), [id1, id2].sort((x, y) => x - y));
	assert.equal(frames[0].msg.payload.data.record.id, 50);
	assert.deepEqual(frames[1].msg.payload.ids, [id2]);
	assert.equal(frames[1].msg.payload.data.record.id, 51);

	await waitBarrier(ch.inbox.barrier, b);
	assert.deepEqual(ch.inbox.one.items.map((p) => p.new.id), [50]);
	assert.deepEqual(ch.inbox.two.items.map((p) => p.new.id), [50, 51]);
});

const TYPE_COLUMNS = [
	['id', 'int4'], ['i2', 'int2'], ['i4', 'int4'], ['i8', 'int8'], ['n', 'numeric'], ['f8', 'float8'],
	['finf', 'float8'], ['b', 'bool'], ['t', 'text'], ['vc', 'varchar'], ['u', 'uuid'], ['d', 'date'],
	['ts', 'timestamp'], ['tstz', 'timestamptz'], ['jb', 'jsonb'], ['j', 'json'], ['ta', '_text'],
	['ia', '_int4'], ['by', 'bytea'],
].map(([name, type]) => ({ name, type }));

const TYPES_ROW = `(
	$1, -32768, 2147483647, 9007199254740991, 1.50, -0.1, 'Infinity', true, E'a"b\\\\c\\nü', 'short',
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-01-05', '2026-01-05 09:14:02.118',
	'2026-01-05 09:14:02.118+02', '{"y": {"z": null}, "a": [1, "2"]}', '{"x": [1, 2], "s": "t"}',
	'{"a",NULL,"c d"}', '{1,2,NULL}', '\\xdeadbeef')`;

test('payload shape on the wire: ids, data with columns (typnames), record, old_record, errors', { timeout: 20000 }, async () => {
	const r = await raw();
	const topic = `realtime:${uniq('pgc')}`;
	const [id] = await rawSubscribePg(r, topic, [{ event: '*', schema: S, table: 'types' }]);
	const from = r.frames.items.length;
	await db.query(`INSERT INTO ${S}.types VALUES ${TYPES_ROW}`, [1]);
	await db.query(`UPDATE ${S}.types SET i2 = 7 WHERE id = 1`);
	await db.query(`DELETE FROM ${S}.types WHERE id = 1`);
	const frames = await rawChanges(r, topic, 3, from);
	const [ins, upd, del] = frames.map((f) => f.json);
	for (const [m, type] of [[ins, 'INSERT'], [upd, 'UPDATE'], [del, 'DELETE']]) {
		assert.equal(m.length, 5);
		assert.deepEqual(m.slice(0, 4), [null, null, topic, 'postgres_changes']);
		assert.deepEqual(Object.keys(m[4]).sort(), ['data', 'ids']);
		assert.deepEqual(m[4].ids, [id]);
		const d = m[4].data;
		assert.equal(d.schema, S);
		assert.equal(d.table, 'types');
		assert.equal(d.type, type);
		assert.match(d.commit_timestamp, COMMIT_TS);
		assert.ok(Math.abs(Date.parse(d.commit_timestamp) - Date.now()) < 60000, `commit time ${d.commit_timestamp}`);
		assert.deepEqual(d.columns, TYPE_COLUMNS);
		assert.equal(d.errors, null);
	}
	assert.deepEqual(Object.keys(ins[4].data).sort(), ['columns', 'commit_timestamp', 'errors', 'record', 'schema', 'table', 'type']);
	assert.deepEqual(Object.keys(upd[4].data).sort(), ['columns', 'commit_timestamp', 'errors', 'old_record', 'record', 'schema', 'table', 'type']);
	assert.deepEqual(Object.keys(del[4].data).sort(), ['columns', 'commit_timestamp', 'errors', 'old_record', 'schema', 'table', 'type']);
	assert.deepEqual(Object.keys(ins[4].data.record), TYPE_COLUMNS.map((c) => c.name), 'record in attribute order');
	assert.equal(upd[4].data.record.i2, 7);
	assert.deepEqual(upd[4].data.old_record, { id: 1 });
	assert.deepEqual(del[4].data.old_record, { id: 1 });
	assert.ok(ins[4].data.commit_timestamp <= upd[4].data.commit_timestamp && upd[4].data.commit_timestamp <= del[4].data.commit_timestamp);
	// int8 is a JSON number on the wire, not a string
	assert.match(frames[0].text, /"i8":9007199254740991[,}]/);
});

// What realtime-js makes of a record value of a column type (its transformers.js), applied to
// what to_jsonb gives: number types parse numeric strings ("Infinity"), timestamp swaps a space.
function asClient(type, v) {
	if (typeof v !== 'string') {
		return v;
	}
	if (['int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'oid'].includes(type)) {
		return Number.isNaN(parseFloat(v)) ? v : parseFloat(v);
	}
	if (type === 'json' || type === 'jsonb') {
		try {
			return JSON.parse(v);
		} catch {
			return v;
		}
	}
	if (type === 'timestamp') {
		return v.replace(' ', 'T');
	}
	return v;
}

async function expectedRow(table, id, columns) {
	const { rows } = await db.query(`SELECT to_jsonb(x)::text AS j FROM ${S}.${table} x WHERE id = $1`, [id]);
	const j = JSON.parse(rows[0].j);
	return Object.fromEntries(columns.map((c) => [c.name, asClient(c.type, j[c.name])]));
}

test('type matrix as the client receives it (to_jsonb values, realtime-js conversion)', { timeout: 20000 }, async () => {
	const ch = pgChannel(createClient(), { x: { event: 'INSERT', schema: S, table: 'types' } });
	await subscribePg(ch);
	await db.query(`INSERT INTO ${S}.types VALUES ${TYPES_ROW}`, [2]);
	await db.query(`INSERT INTO ${S}.types (id) VALUES (3)`);
	const full = (await ch.inbox.x.waitFor((p) => p.new.id === 2, 5000)).new;
	const nulls = (await ch.inbox.x.waitFor((p) => p.new.id === 3, 5000)).new;
	assert.deepEqual(full, await expectedRow('types', 2, TYPE_COLUMNS), 'as to_jsonb renders them');
	assert.deepEqual(full, {
		id: 2,
		i2: -32768,
		i4: 2147483647,
		i8: 9007199254740991,
		n: 1.5,
		f8: -0.1,
		finf: Infinity,
		b: true,
		t: 'a"b\\c\nü',
		vc: 'short',
		u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
		d: '2026-01-05',
		ts: '2026-01-05T09:14:02.118',
		tstz: '2026-01-05T07:14:02.118+00:00',
		jb: { y: { z: null }, a: [1, '2'] },
		j: { x: [1, 2], s: 't' },
		ta: ['a', null, 'c d'],
		ia: [1, 2, null],
		by: '\\xdeadbeef',
	});
	assert.deepEqual(nulls, Object.fromEntries(TYPE_COLUMNS.map((c) => [c.name, c.name === 'id' ? 3 : null])));
});

test('UPDATE/DELETE old_record: primary key by default, the whole row with REPLICA IDENTITY FULL', { timeout: 20000 }, async () => {
	const ch = pgChannel(createClient(), {
		def: { event: '*', schema: S, table: 'def_id' },
		full: { event: '*', schema: S, table: 'full_id' },
		barrier: barrierEntry(S),
	});
	await subscribePg(ch);
	await db.query(`INSERT INTO ${S}.def_id VALUES (1, 'a', 1)`);
	await db.query(`UPDATE ${S}.def_id SET v = 'b' WHERE id = 1`);
	await db.query(`DELETE FROM ${S}.def_id WHERE id = 1`);
	await db.query(`INSERT INTO ${S}.full_id VALUES (1, 'a', 1, NULL)`);
	await db.query(`UPDATE ${S}.full_id SET v = 'b', w = 2 WHERE id = 1`);
	await db.query(`DELETE FROM ${S}.full_id WHERE id = 1`);
	const b = await barrier(db, S);
	await waitBarrier(ch.inbox.barrier, b);
	const seen = (label) => ch.inbox[label].items.map((p) => [p.eventType, p.new, p.old]);
	assert.deepEqual(seen('def'), [
		['INSERT', { id: 1, v: 'a', w: 1 }, {}],
		['UPDATE', { id: 1, v: 'b', w: 1 }, { id: 1 }],
		['DELETE', {}, { id: 1 }],
	]);
	assert.deepEqual(seen('full'), [
		['INSERT', { id: 1, v: 'a', w: 1, big: null }, {}],
		['UPDATE', { id: 1, v: 'b', w: 2, big: null }, { id: 1, v: 'a', w: 1, big: null }],
		['DELETE', {}, { id: 1, v: 'b', w: 2, big: null }],
	]);
});

test('an unchanged TOAST value in an UPDATE is taken from the old row (REPLICA IDENTITY FULL)', { timeout: 20000 }, async () => {
	const ch = pgChannel(createClient(), { x: { event: 'UPDATE', schema: S, table: 'full_id', filter: 'id=eq.2' } });
	await subscribePg(ch);
	// STORAGE EXTERNAL: stored out of line, uncompressed; the UPDATE does not log it again
	await db.query(`INSERT INTO ${S}.full_id VALUES (2, 'a', 2,
		(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g))`);
	const { rows } = await db.query(`SELECT big, pg_column_size(big) AS stored FROM ${S}.full_id WHERE id = 2`);
	assert.ok(rows[0].big.length === 12800 && rows[0].stored >= 12800, 'the value is toasted, not compressed');
	await db.query(`UPDATE ${S}.full_id SET v = 'z' WHERE id = 2`);
	const p = await ch.inbox.x.waitFor((x) => x.new.id === 2, 5000);
	assert.deepEqual(p.new, { id: 2, v: 'z', w: 2, big: rows[0].big });
	assert.deepEqual(p.old, { id: 2, v: 'a', w: 2, big: rows[0].big });
	assert.equal(p.errors, null);
});

test('a row over 1 MiB: errors ["Error 413: Payload Too Large"], only values of <= 64 bytes of JSON', { timeout: 20000 }, async () => {
	const ch = pgChannel(createClient(), { x: { event: 'INSERT', schema: S, table: 'big' } });
	await subscribePg(ch);
	await db.query(`INSERT INTO ${S}.big VALUES (1, 's', repeat('a', 62), repeat('a', 63), 7,
		(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 40000) g))`);
	const p = await ch.inbox.x.waitFor((x) => x.new.id === 1, 8000);
	assert.deepEqual(p.errors, ['Error 413: Payload Too Large']);
	assert.equal(p.eventType, 'INSERT');
	// '"' + 62 × 'a' + '"' is 64 bytes: kept; 63 × 'a' is 65: left out, like the 1.28 MB value
	assert.deepEqual(p.new, { id: 1, small: 's', edge64: 'a'.repeat(62), n: 7 });
	// a small row of the same table is whole again
	await db.query(`INSERT INTO ${S}.big (id, huge) VALUES (2, 'h')`);
	const q = await ch.inbox.x.waitFor((x) => x.new.id === 2, 5000);
	assert.equal(q.errors, null);
	assert.deepEqual(q.new, { id: 2, small: null, edge64: null, edge65: null, n: null, huge: 'h' });
});

test('commit order across interleaved transactions', { timeout: 20000 }, async () => {
	const ch = pgChannel(createClient(), { x: { event: 'INSERT', schema: S, table: 'ord' }, barrier: barrierEntry(S) });
	await subscribePg(ch);
	const tx = [];
	try {
		for (let k = 0; k < 3; k++) {
			const c = new pg.Client({ connectionString: RT_DB_URL });
			await c.connect();
			tx.push(c);
			await c.query('BEGIN');
		}
		await tx[0].query(`INSERT INTO ${S}.ord VALUES (1, 0)`);
		await tx[1].query(`INSERT INTO ${S}.ord VALUES (2, 1)`);
		await tx[2].query(`INSERT INTO ${S}.ord VALUES (3, 2)`);
		await tx[0].query(`INSERT INTO ${S}.ord VALUES (4, 0)`);
		await tx[2].query('COMMIT');
		await tx[1].query('COMMIT');
		await tx[0].query('COMMIT');
	} finally {
		await Promise.all(tx.map((c) => c.end()));
	}
	for (let id = 10; id < 40; id++) {
		await db.query(`INSERT INTO ${S}.ord VALUES ($1, -1)`, [id]);
	}
	const b = await barrier(db, S);
	await waitBarrier(ch.inbox.barrier, b);
	const want = [3, 2, 1, 4, ...Array.from({ length: 30 }, (_, k) => 10 + k)];
	assert.deepEqual(ch.inbox.x.items.map((p) => p.new.id), want);
});

test('a table not in the publication: upstream error, then how to add it', { timeout: 15000 }, async () => {
	const r = await raw();
	const topic = `realtime:${uniq('pgc')}`;
	await rawJoinPg(r, topic, [{ event: '*', schema: S, table: 'NotPub' }]);
	const first = await rawSystem(r, topic, (p) => p.status === 'error' && p.message.startsWith('Unable'));
	assert.deepEqual(first, {
		extension: 'postgres_changes',
		status: 'error',
		message: `${UNABLE_PUB}[event: *, schema: ${S}, table: NotPub, filters: [], select: nil]`,
		channel: topic.slice('realtime:'.length),
	});
	const hint = await rawSystem(r, topic, (p) => p.status === 'error' && p.message.includes('ALTER PUBLICATION'));
	assert.equal(hint.extension, 'postgres_changes');
	assert.ok(hint.message.includes(`ALTER PUBLICATION supabase_realtime ADD TABLE ${S}."NotPub"`), hint.message);
	assert.equal((await r.heartbeat()).msg.payload.status, 'ok');
});

test('REPLICA IDENTITY NOTHING: a hint to set FULL, and the subscription still works', { timeout: 15000 }, async () => {
	const r = await raw();
	const topic = `realtime:${uniq('pgc')}`;
	await rawJoinPg(r, topic, [{ event: 'INSERT', schema: S, table: 'noident' }]);
	const hint = await rawSystem(r, topic, (p) => p.message.includes('REPLICA IDENTITY'));
	assert.equal(hint.extension, 'postgres_changes');
	assert.ok(hint.message.includes(`ALTER TABLE ${S}.noident REPLICA IDENTITY FULL`), hint.message);
	await rawSystem(r, topic, (p) => p.status === 'ok' && p.message === SUBSCRIBED);
	await db.query(`INSERT INTO ${S}.noident VALUES (1)`);
	const f = await r.frames.waitFor(isChange(topic), 5000);
	assert.deepEqual(f.msg.payload.data.record, { id: 1 });
});

test('hostile filters are refused or are plain data; the server and other channels carry on', { timeout: 30000 }, async () => {
	const healthy = pgChannel(createClient(), { x: { event: 'INSERT', schema: S, table: 'f', filter: 'id=eq.600' } });
	await subscribePg(healthy);
	const r = await raw();
	const pre = (table, filters) => `${UNABLE_EXC}[event: *, schema: ${S}, table: ${table}, filters: ${filters}, select: nil]. Exception: `;
	const sysError = async (filter) => {
		const topic = `realtime:${uniq('pgc')}`;
		await rawJoinPg(r, topic, [{ event: '*', schema: S, table: 'f', filter }]);
		return rawSystem(r, topic, (p) => p.extension === 'postgres_changes');
	};

	const unknown = await sysError('nope=eq.1');
	assert.equal(unknown.status, 'error');
	assert.equal(unknown.message, `${pre('f', '[{"nope", "eq", "1", false}]')}ERROR P0001 (raise_exception) invalid column for filter nope`);

	const injected = `1'); drop table ${S}.f; --`;
	const cast = await sysError(`id=eq.${injected}`);
	assert.equal(cast.status, 'error');
	assert.ok(cast.message.startsWith(UNABLE_EXC), cast.message);
	assert.ok(cast.message.endsWith(`. Exception: ERROR 22P02 (invalid_text_representation) invalid input syntax for type integer: "${injected}"`), cast.message);

	const list = (n) => `id=in.(${Array.from({ length: n }, (_, k) => k).join(',')})`;
	const tooMany = await sysError(list(101));
	assert.equal(tooMany.status, 'error');
	assert.ok(tooMany.message.startsWith(UNABLE_EXC), tooMany.message.slice(0, 200));
	assert.ok(tooMany.message.endsWith('. Exception: ERROR P0001 (raise_exception) too many values for `in` filter. Maximum 100'), tooMany.message.slice(-200));
	assert.equal((await sysError(list(100))).message, SUBSCRIBED, '100 values are fine');

	// SQL in a text value is a value: it subscribes and matches that exact text
	const text = `a';drop table ${S}.f;--`;
	const topic = `realtime:${uniq('pgc')}`;
	await rawSubscribePg(r, topic, [{ event: 'INSERT', schema: S, table: 'f', filter: `t=eq.${text}` }]);
	await db.query(`INSERT INTO ${S}.f (id, t) VALUES (601, $1)`, [text]);
	await db.query(`INSERT INTO ${S}.f (id) VALUES (600)`);
	const f = await r.frames.waitFor(isChange(topic), 5000);
	assert.deepEqual([f.msg.payload.data.record.id, f.msg.payload.data.record.t], [601, text]);
	assert.equal((await healthy.inbox.x.waitFor((p) => p.new.id === 600, 5000)).new.id, 600, 'the other channel still receives');
	assert.equal((await r.heartbeat()).msg.payload.status, 'ok', 'the socket still serves');
	const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${S}.f WHERE id IN (600, 601)`);
	assert.equal(rows[0].n, 2, 'the table is still there');
	// a fresh client can still subscribe, and the server is healthy
	await subscribe(createClient().channel(uniq('pgc')));
	assert.equal(await healthz(), 200);
});
