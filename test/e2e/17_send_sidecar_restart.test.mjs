// 17 the sidecar comes and goes: kill -9 a sidecar following the ring while sends go on;
// commits are unaffected (they never wait for a reader), the slot keeps up, the dead
// reader's slot is reclaimed, and a new sidecar on the same ring delivers again.
// Needs RT_DB_URL, RT_RING_PATH and RT_FANOUT_BIN (scripts/test.sh).

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
	RT_DB_URL,
	createClient,
	closeClients,
	subscribe,
	collectBroadcasts,
	startSidecar,
	uniq,
	sleep,
} from './lib/helpers.mjs';

const RT_RING_PATH = process.env.RT_RING_PATH ?? '';
const sidecars = [];
let db;

before(async () => {
	assert.ok(RT_DB_URL, 'RT_DB_URL is set');
	assert.ok(RT_RING_PATH, 'RT_RING_PATH is set');
	db = new pg.Client({ connectionString: RT_DB_URL });
	await db.connect();
});
after(async () => {
	await closeClients();
	for (const s of sidecars) {
		await s.stop();
	}
	await db?.end();
});

async function ringSidecar() {
	const s = await startSidecar(['--ring-path', RT_RING_PATH]);
	sidecars.push(s);
	return s;
}

async function subscriberOn(side, name) {
	const ch = createClient({ base: side.base }).channel(name);
	const inbox = collectBroadcasts(ch);
	await subscribe(ch);
	return inbox;
}

// The live reader slots of the ring, by pid.
async function livePids() {
	const { rows } = await db.query(
		`SELECT (e->>'pid')::int AS pid FROM realtime.stats(), jsonb_array_elements(readers) e
		 WHERE e->>'state' = 'live'`
	);
	return rows.map((r) => r.pid);
}

test('kill -9 the sidecar while sending, then start another', { timeout: 60000 }, async () => {
	const name = uniq('restart');
	const first = await ringSidecar();
	const inbox1 = await subscriberOn(first, name);
	await db.query(`SELECT realtime.send('{"n":0}', 'ev', $1)`, [name]);
	await inbox1.waitFor((m) => m.payload?.n === 0, 5000);
	const deadPid = first.child.pid;
	for (let i = 0; i < 50 && !(await livePids()).includes(deadPid); i++) {
		await sleep(100);
	}
	assert.ok((await livePids()).includes(deadPid), 'the sidecar is a live reader of the ring');

	first.child.kill('SIGKILL');
	let slowest = 0;
	for (let i = 1; i <= 200; i++) {
		const t0 = performance.now();
		await db.query(`SELECT realtime.send(jsonb_build_object('n', $2::int), 'ev', $1)`, [name, i]);
		slowest = Math.max(slowest, performance.now() - t0);
	}
	assert.ok(slowest < 1000, `every commit is quick without the sidecar (slowest ${slowest} ms)`);

	// Its slot is reclaimed once its heartbeat is stale (5 s), and the slot keeps up.
	let pids = await livePids();
	for (let i = 0; i < 100 && pids.includes(deadPid); i++) {
		await sleep(100);
		pids = await livePids();
	}
	assert.ok(!pids.includes(deadPid), 'the dead reader no longer holds a live slot');
	const { rows } = await db.query(
		`SELECT slot_lag_bytes::bigint AS lag, records_dropped::text FROM realtime.stats()`
	);
	assert.ok(Number(rows[0].lag) < 1024 * 1024, `slot lag ${rows[0].lag} bytes`);

	// A new sidecar on the same ring delivers again.
	const second = await ringSidecar();
	const inbox2 = await subscriberOn(second, name);
	for (let i = 0; i < 50 && !(await livePids()).includes(second.child.pid); i++) {
		await sleep(100);
	}
	await db.query(`SELECT realtime.send('{"n":"again"}', 'ev', $1)`, [name]);
	const got = await inbox2.waitFor((m) => m.payload?.n === 'again', 5000);
	assert.equal(got.event, 'ev');
});

test('the decoder worker restarts under an attached sidecar', { timeout: 30000 }, async () => {
	const name = uniq('worker');
	const side = await ringSidecar();
	const inbox = await subscriberOn(side, name);
	await db.query(`SELECT realtime.send('{"n":"before"}', 'ev', $1)`, [name]);
	await inbox.waitFor((m) => m.payload?.n === 'before', 5000);
	const { rows: [old] } = await db.query(
		`SELECT worker_pid, write_pos::text FROM realtime.stats()`
	);
	assert.ok(old.worker_pid, 'the worker runs');

	// Terminated, it exits with an error and the postmaster starts it again (2 s later).
	await db.query('SELECT pg_terminate_backend($1)', [old.worker_pid]);
	let now;
	for (let i = 0; i < 100; i++) {
		await sleep(100);
		({ rows: [now] } = await db.query(
			`SELECT worker_pid, writer_pid, write_pos::text FROM realtime.stats()`
		));
		if (now.worker_pid && now.worker_pid !== old.worker_pid && now.writer_pid === now.worker_pid) {
			break;
		}
	}
	assert.notEqual(now.worker_pid, old.worker_pid, 'a new worker runs');
	assert.equal(now.writer_pid, now.worker_pid, 'and writes the ring');
	assert.ok(BigInt(now.write_pos) >= BigInt(old.write_pos), 'it resumed the ring where it was');

	await db.query(`SELECT realtime.send('{"n":"after"}', 'ev', $1)`, [name]);
	await inbox.waitFor((m) => m.payload?.n === 'after', 5000);
	assert.deepEqual(
		inbox.items.map((m) => m.payload.n),
		['before', 'after'],
		'the same sidecar delivers again, nothing twice'
	);
	assert.ok(!side.output().includes('reopening'), 'the sidecar never had to reopen the ring');
});
