// 16 realtime.send from SQL: the decoder worker writes each committed message to the ring
// and the sidecar delivers it to the public room of its topic (PROTOCOL.md 4.8): only after
// commit, never when rolled back, never from a private send to the public room, complete
// and in order for a large transaction; v2 as kind 4 with metadata {"id":...}, v1 as text
// with meta. Needs RT_DB_URL and a sidecar started with --ring-path (scripts/test.sh).

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
	RT_DB_URL,
	closeClients,
	subscriber,
	RawClient,
	uniq,
	sleep,
} from './lib/helpers.mjs';
import { decodeUserBroadcast, ENC_JSON, KIND_USER_BROADCAST } from './lib/v2binary.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let db;
before(async () => {
	assert.ok(RT_DB_URL, 'RT_DB_URL is set');
	db = new pg.Client({ connectionString: RT_DB_URL });
	await db.connect();
});
after(async () => {
	await closeClients();
	await db?.end();
});

test('a send reaches the subscriber only after commit', { timeout: 20000 }, async () => {
	const name = uniq('send');
	const inbox = await subscriber(name);
	await db.query('BEGIN');
	try {
		await db.query(`SELECT realtime.send('{"a":1}', 'ev', $1)`, [name]);
		await sleep(700);
		assert.equal(inbox.items.length, 0, 'nothing before the commit');
	} finally {
		await db.query('COMMIT');
	}
	const got = await inbox.waitFor((m) => m.event === 'ev', 5000);
	assert.equal(got.type, 'broadcast');
	assert.equal(got.payload.a, 1);
	assert.match(got.payload.id, UUID, 'the payload carries the message id');
	await sleep(300);
	assert.equal(inbox.items.length, 1, 'delivered once');
});

test('a rolled back send is never delivered', { timeout: 20000 }, async () => {
	const name = uniq('send');
	const inbox = await subscriber(name);
	await db.query('BEGIN');
	await db.query(`SELECT realtime.send('{"n":"rolled back"}', 'ev', $1)`, [name]);
	await db.query('ROLLBACK');
	await db.query(`SELECT realtime.send('{"n":"marker"}', 'ev', $1)`, [name]);
	await inbox.waitFor((m) => m.payload?.n === 'marker', 5000);
	await sleep(300);
	assert.deepEqual(
		inbox.items.map((m) => m.payload.n),
		['marker'],
		'only the committed send arrived'
	);
});

test('a private send never reaches the public room', { timeout: 20000 }, async () => {
	const name = uniq('send');
	const inbox = await subscriber(name);
	await db.query(`SELECT realtime.send('{"n":"private"}', 'ev', $1, true)`, [name]);
	await db.query(`SELECT realtime.send('{"n":"public"}', 'ev', $1, false)`, [name]);
	await inbox.waitFor((m) => m.payload?.n === 'public', 5000);
	await sleep(300);
	assert.deepEqual(
		inbox.items.map((m) => m.payload.n),
		['public'],
		'the private one stayed out'
	);
});

test('wire form: v2 kind 4 with metadata {"id"}, v1 text with meta', { timeout: 20000 }, async () => {
	const name = uniq('send');
	const topic = `realtime:${name}`;
	const raw2 = await RawClient.connect({ vsn: '2.0.0' });
	const raw1 = await RawClient.connect({ vsn: '1.0.0' });
	try {
		await raw2.join(topic);
		await raw1.join(topic);
		await db.query(`SELECT realtime.send('{"x":"ü","id":"mine"}', 'wire', $1)`, [name]);

		const f2 = await raw2.waitFor((f) => f.binary && f.data[0] === KIND_USER_BROADCAST, 5000);
		const k4 = decodeUserBroadcast(f2.data);
		assert.equal(k4.topic, topic);
		assert.equal(k4.event, 'wire');
		assert.equal(k4.encoding, ENC_JSON);
		const meta = JSON.parse(k4.metadata);
		assert.match(meta.id, UUID, 'metadata {"id": <message uuid>}');
		assert.deepEqual(JSON.parse(k4.payload), { x: 'ü', id: 'mine' }, 'a payload id is kept');

		const f1 = await raw1.waitFor((f) => !f.binary && f.msg?.event === 'broadcast', 5000);
		assert.equal(f1.msg.topic, topic);
		assert.deepEqual(f1.msg.payload, {
			type: 'broadcast',
			event: 'wire',
			payload: { x: 'ü', id: 'mine' },
			meta: { id: meta.id },
		});
	} finally {
		await raw2.close();
		await raw1.close();
	}
});

test('10,000 sends in one transaction arrive complete and in order', { timeout: 60000 }, async () => {
	const name = uniq('bulk');
	const inbox = await subscriber(name);
	const n = 10000;
	await db.query(
		`SELECT count(realtime.send(jsonb_build_object('n', g), 'bulk', $1))
		 FROM generate_series(1, $2::int) g`,
		[name, n]
	);
	await inbox.waitCount(n, 30000);
	await sleep(300);
	const got = inbox.items.map((m) => m.payload.n);
	assert.equal(got.length, n, 'no more, no fewer');
	for (let i = 0; i < n; i++) {
		if (got[i] !== i + 1) {
			assert.fail(`message #${i + 1} is n=${got[i]}`);
		}
	}
});

test('the slot keeps up: its lag after the sends is small', { timeout: 20000 }, async () => {
	const name = uniq('send');
	const inbox = await subscriber(name);
	await db.query(`SELECT realtime.send('{"n":"last"}', 'ev', $1)`, [name]);
	await inbox.waitFor((m) => m.payload?.n === 'last', 5000);
	const { rows } = await db.query(
		`SELECT live_readers, records_dropped::text, slot_lag_bytes::bigint AS lag FROM realtime.stats()`
	);
	assert.ok(rows[0].live_readers >= 1, 'the sidecar is a live reader');
	assert.equal(rows[0].records_dropped, '0', 'nothing was dropped');
	assert.ok(Number(rows[0].lag) < 1024 * 1024, `slot lag ${rows[0].lag} bytes`);
});
