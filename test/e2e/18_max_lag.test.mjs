// 18 realtime.max_lag_bytes (ARCHITECTURE.md "Backpressure and loss"): a live ring reader
// that stops reading holds the decoder back (it pauses, the slot keeps the WAL) until the
// slot keeps more than max_lag_bytes of WAL; past that the decoder overwrites what that
// reader has not read, counts it, the reader sees the gap, and the slot's lag stays bounded
// however much is sent. The sidecar, a reader that keeps up, loses nothing and still
// delivers. The stalled reader is test/c/ring_hold.cpp (RT_RING_HOLD_BIN): it heartbeats,
// reads nothing until SIGUSR1, then reads everything and prints what it read and lost.
// Needs RT_DB_URL, RT_RING_PATH and RT_RING_HOLD_BIN (scripts/test.sh); changes
// realtime.max_lag_bytes with ALTER SYSTEM (superuser) and resets it afterwards.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { RT_DB_URL, Inbox, closeClients, subscriber, uniq, sleep } from './lib/helpers.mjs';

const RT_RING_PATH = process.env.RT_RING_PATH ?? '';
const RT_RING_HOLD_BIN = process.env.RT_RING_HOLD_BIN ?? '';

const MiB = 1024 * 1024;
const MAX_LAG = 8 * MiB; // small, so the burst below stays short
const PAD = 1000000; // bytes of filler per message (lowered to fit realtime.max_message_bytes)
const MAX_CAPACITY = 256 * MiB; // a larger ring would make the burst too long for this suite

let db;
let hold = null;
let gucChanged = false;

before(async () => {
	assert.ok(RT_DB_URL, 'RT_DB_URL is set');
	assert.ok(RT_RING_PATH, 'RT_RING_PATH is set');
	assert.ok(RT_RING_HOLD_BIN, 'RT_RING_HOLD_BIN is set (build/test/ring_hold)');
	db = new pg.Client({ connectionString: RT_DB_URL });
	await db.connect();
});

after(async () => {
	await hold?.stop();
	if (gucChanged) {
		await db.query('ALTER SYSTEM RESET realtime.max_lag_bytes');
		await db.query('SELECT pg_reload_conf()');
		// Once the stalled reader is gone the decoder catches up: leave the slot as found.
		await poll(async () => (await stats()).confirmedLag < MiB, 10000);
	}
	await closeClients();
	await db?.end();
});

// ---------------------------------------------------------------------------

// ring_hold RING_PATH: one JSON object per stdout line.
class RingHold {
	constructor(bin, ringPath) {
		this.lines = new Inbox('ring_hold output');
		this.stderr = '';
		this.exited = null;
		this.child = spawn(bin, [ringPath], { stdio: ['ignore', 'pipe', 'pipe'] });
		let buf = '';
		this.child.stdout.on('data', (d) => {
			buf += d;
			let nl;
			while ((nl = buf.indexOf('\n')) >= 0) {
				this.lines.push(JSON.parse(buf.slice(0, nl)));
				buf = buf.slice(nl + 1);
			}
		});
		this.child.stderr.on('data', (d) => (this.stderr += d));
		this.exit = new Promise((resolve) =>
			this.child.on('exit', (code, signal) => {
				this.exited = { code, signal };
				resolve(this.exited);
			})
		);
	}

	ready(ms = 5000) {
		return this.lines.waitFor((l) => l.ready, ms, { what: `the ready line (${this.stderr})` });
	}

	// SIGUSR1: it reads everything available and reports its totals since it attached.
	async release(ms = 10000) {
		const from = this.lines.items.length;
		this.child.kill('SIGUSR1');
		return this.lines.waitFor((l) => 'lost' in l, ms, { from, what: 'the drain report' });
	}

	async stop() {
		if (!this.exited) {
			this.child.kill('SIGTERM');
			const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
			await this.exit;
			clearTimeout(t);
		}
	}
}

// Call fn every 50 ms until it returns true or ms pass; returns the last value.
async function poll(fn, ms) {
	const deadline = Date.now() + ms;
	let v = await fn();
	while (!v && Date.now() < deadline) {
		await sleep(50);
		v = await fn();
	}
	return v;
}

// The counters this test watches. restartLag is the WAL the slot keeps (what
// max_lag_bytes bounds, slot_kept_bytes); confirmedLag is slot_lag_bytes. Both come from
// one read of the slot: two reads (a second scan of pg_replication_slots) could see the
// slot before and after the decoder moved it, and compare a stale confirmed point with
// a newer restart point.
async function stats() {
	const { rows } = await db.query(
		`SELECT capacity::float8, write_pos::float8, records_written::float8, records_dropped::float8,
		        records_skipped::float8, decoder_stalls::float8, decoder_forced::float8,
		        readers, coalesce(slot_lag_bytes, 0)::float8 AS confirmed_lag,
		        coalesce(slot_kept_bytes, 0)::float8 AS restart_lag
		 FROM realtime.stats()`
	);
	const r = rows[0];
	return {
		capacity: r.capacity,
		writePos: r.write_pos,
		written: r.records_written,
		dropped: r.records_dropped,
		skipped: r.records_skipped,
		stalls: r.decoder_stalls,
		forced: r.decoder_forced,
		readers: r.readers,
		confirmedLag: r.confirmed_lag,
		restartLag: r.restart_lag,
	};
}

async function setting(name) {
	const { rows } = await db.query('SELECT setting FROM pg_settings WHERE name = $1', [name]);
	return Number(rows[0].setting);
}

const mb = (n) => `${(n / MiB).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------

// What the first test measured, for the counter check below.
let burst = null;

test('a reader past max_lag_bytes: pause, then skip ahead and report the gap', { timeout: 90000 }, async (t) => {
	const before0 = await stats();
	const capacity = before0.capacity;
	assert.ok(capacity > 0, 'the ring exists');
	if (capacity > MAX_CAPACITY) {
		t.skip(`the ring holds ${mb(capacity)}: filling it would take too long here`);
		return;
	}
	const pad = Math.min(PAD, (await setting('realtime.max_message_bytes')) - 100, capacity / 8);
	// Transactions of at most a quarter of max_lag: the decoder pauses on one while the
	// slot still keeps less than max_lag_bytes, and it takes a few more to pass it.
	const perTxn = Math.max(1, Math.floor(MAX_LAG / 4 / pad));
	const txnBytes = perTxn * pad;
	// Fill the ring for the stalled reader, then pass max_lag_bytes about three times over.
	const txns = Math.ceil((capacity + 3 * MAX_LAG) / txnBytes);

	await db.query(`ALTER SYSTEM SET realtime.max_lag_bytes = ${MAX_LAG}`);
	gucChanged = true;
	await db.query('SELECT pg_reload_conf()');
	assert.ok(
		await poll(async () => (await setting('realtime.max_lag_bytes')) === MAX_LAG, 5000),
		'the new realtime.max_lag_bytes is in effect'
	);

	// A client of the sidecar, on a topic the burst does not use. A message it receives
	// after the reload was decoded after the decoder saw the reload too (the postmaster
	// signals every process at once; the worker reloads before it decodes).
	const name = uniq('maxlag');
	const inbox = await subscriber(name);
	await db.query(`SELECT realtime.send('{"n":"before"}', 'ev', $1)`, [name]);
	await inbox.waitFor((m) => m.payload?.n === 'before', 5000);

	hold = new RingHold(RT_RING_HOLD_BIN, RT_RING_PATH);
	const ready = await hold.ready();
	assert.ok(ready.expected_seq > 0, 'ring_hold knows the sequence it starts at, so it counts every loss');
	const live = async () =>
		(await stats()).readers.some((r) => r.pid === ready.pid && r.state === 'live');
	assert.ok(await poll(live, 5000), 'ring_hold is a live reader of the ring');

	const s0 = await stats();
	const others0 = s0.readers.filter((r) => r.pid !== ready.pid && r.state === 'live');
	assert.ok(others0.length >= 1, 'the sidecar is a live reader too');

	// The burst. The slot's restart point moves only past running-xacts records; the decoder
	// logs one itself when the slot keeps much more WAL than decoding needs (the bgwriter's
	// come every 15 s), so the WAL kept tracks the ring, not the whole burst.
	const samples = [];
	const topic = uniq('burst');
	const t0 = performance.now();
	for (let i = 0; i < txns; i++) {
		await db.query(
			`WITH p AS MATERIALIZED (SELECT jsonb_build_object('pad', repeat('x', $1::int)) AS j)
			 SELECT count(realtime.send(p.j, 'burst', $3)) FROM p, generate_series(1, $2::int)`,
			[pad, perTxn, topic]
		);
		samples.push(await stats());
	}
	const burstMs = performance.now() - t0;
	const afterBurst = samples.at(-1);

	// The decoder paused for ring_hold before it dropped anything: once the ring was full for
	// ring_hold, a whole transaction went by with nothing appended and nothing dropped while
	// the slot kept its WAL, less than max_lag_bytes (plus the transaction being sent).
	const recordBytes = pad + 1024; // a message record: its payload, fields and header
	const paused = samples.some(
		(s, i) =>
			i > 0 &&
			capacity - (s.writePos - ready.pos) < 2 * recordBytes &&
			s.writePos === samples[i - 1].writePos &&
			s.dropped === s0.dropped &&
			s.restartLag > samples[i - 1].restartLag &&
			s.restartLag <= MAX_LAG + txnBytes
	);
	const trace = samples
		.map(
			(s) =>
				`${mb(s.writePos - ready.pos)}/${s.stalls - s0.stalls}/${s.dropped - s0.dropped}/` +
				mb(s.restartLag)
		)
		.join(' ');
	const legend = 'written for ring_hold/stalls/dropped/slot keeps';
	assert.ok(paused, `a pause on a full ring before any drop, within max_lag (${legend}: ${trace})`);
	assert.ok(afterBurst.stalls > s0.stalls, `decoder_stalls counts the pause (${legend}: ${trace})`);
	// Past max_lag_bytes it skipped ahead: records ring_hold had not read were overwritten.
	assert.ok(afterBurst.dropped > s0.dropped, `records were dropped (${legend}: ${trace})`);

	// A message sent now waits (or not) behind ring_hold; it is delivered in any case.
	await db.query(`SELECT realtime.send('{"n":"after"}', 'ev', $1)`, [name]);

	// However much was sent, the WAL the slot keeps settles within max_lag_bytes (the
	// decoder reads the lag before each transaction it writes: one transaction of margin).
	let settled;
	await poll(async () => {
		settled = await stats();
		return settled.restartLag <= MAX_LAG + txnBytes;
	}, 10000);
	assert.ok(
		settled.restartLag <= MAX_LAG + txnBytes,
		`the slot keeps ${mb(settled.restartLag)} of WAL after sending ${mb(txns * txnBytes)} ` +
			`(max_lag_bytes ${mb(MAX_LAG)})`
	);
	assert.ok(settled.confirmedLag <= settled.restartLag, 'confirmed no further back than restart');

	// ring_hold reads now: it lost exactly what the writer counted as dropped (nothing else
	// was written meanwhile), and saw no GAP records (those are for skips before the ring).
	const dropped = settled.dropped - s0.dropped;
	const report = await hold.release();
	assert.equal(report.end, 'empty', 'ring_hold read to the end of the ring');
	assert.ok(report.lost > 0, 'ring_hold saw the gap');
	assert.equal(report.lost, dropped, 'ring_hold lost what the writer counts as dropped');
	assert.equal(report.skipped, settled.skipped - s0.skipped, 'GAP records: none here');
	assert.equal(report.corrupt, 0, 'no corrupt records');
	assert.ok(report.messages > 0, 'it still read what was left in the ring');

	// The sidecar kept up: it lost nothing and delivers the message sent after the burst.
	await inbox.waitFor((m) => m.payload?.n === 'after', 10000);
	assert.deepEqual(
		inbox.items.map((m) => m.payload.n),
		['before', 'after'],
		'the client got its two messages and none of the burst'
	);
	const s1 = await stats();
	for (const o of others0) {
		const now = s1.readers.find((r) => r.slot === o.slot && r.pid === o.pid);
		assert.ok(now, `reader pid ${o.pid} is still attached`);
		assert.equal(now.records_lost, o.records_lost, `reader pid ${o.pid} lost nothing`);
	}

	burst = { s0, settled };
	const firstStall = samples.findIndex((s) => s.stalls > s0.stalls);
	const firstDrop = samples.findIndex((s) => s.dropped > s0.dropped);
	const peak = Math.max(...samples.map((s) => s.restartLag));
	t.diagnostic(
		`${txns} transactions of ${perTxn} x ${pad} bytes in ${Math.round(burstMs)} ms; ` +
			`first pause after #${firstStall + 1} (slot keeps ${mb(samples[firstStall].restartLag)}), ` +
			`first drop after #${firstDrop + 1}; stalls ${settled.stalls - s0.stalls}, ` +
			`forced ${settled.forced - s0.forced}, dropped ${dropped}; ring_hold read ` +
			`${report.read}, lost ${report.lost}; the slot keeps ${mb(settled.restartLag)} ` +
			`after the burst (peak ${mb(peak)})`
	);
});

test('decoder_forced counts the appends over unread records', { timeout: 10000 }, async (t) => {
	if (!burst) {
		t.skip('the burst above did not run');
		return;
	}
	const { s0, settled } = burst;
	assert.ok(
		settled.forced > s0.forced,
		`decoder_forced went from ${s0.forced} to ${settled.forced} while ` +
			`${settled.dropped - s0.dropped} records were dropped`
	);
});
