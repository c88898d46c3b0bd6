// 34 no silent loss (PROTOCOL.md 3.10): a channel that misses messages it should have had is
// told by a `system` message (status error, the extension that lost them, a count and the
// reasons), at most one a second per channel, and /metrics counts them by reason. Here the
// tenant's events limit drops realtime.send() messages and Postgres Changes for one
// realtime-js subscriber: everything sent is either received or counted in a notice, the
// channel stays joined. Needs RT_DB_URL and RT_RING_PATH (scripts/test.sh).

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
	Inbox,
	closeClients,
	collectBroadcasts,
	createClient,
	startSidecar,
	subscribe,
	uniq,
	sleep,
} from './lib/helpers.mjs';
import { ensurePublication, openDb, uniqSchema, SUBSCRIBED } from './lib/pgchanges.mjs';

const RT_RING_PATH = process.env.RT_RING_PATH ?? '';
const sidecars = [];
let db;
before(async () => {
	assert.ok(RT_RING_PATH, 'RT_RING_PATH is set');
	db = await openDb();
});
after(async () => {
	await closeClients();
	for (const s of sidecars) {
		await s.stop();
	}
	await db?.end();
});

// A sidecar on the suite's ring with a small events limit (a 60 s average: 2/s = 120 events).
async function limitedSidecar() {
	const s = await startSidecar(['--ring-path', RT_RING_PATH, '--max-events-per-second', '2']);
	sidecars.push(s);
	return s;
}

// Every system message of a channel, with the time it arrived.
function collectSystem(channel) {
	const inbox = new Inbox(`${channel.topic} system`);
	channel.on('system', {}, (payload) => inbox.push({ at: Date.now(), payload }));
	return inbox;
}

// the loss notices of one extension (its other system messages, e.g. "Subscribed to PostgreSQL", left out)
const lossNotices = (notices, extension) =>
	notices.items.filter((n) => n.payload.extension === extension && n.payload.lost !== undefined);
const lostIn = (notices, extension) => lossNotices(notices, extension).reduce((sum, n) => sum + n.payload.lost, 0);

// Wait until received + told-of-lost reaches total (or ms pass); returns the lost count.
async function settle(received, notices, extension, total, ms) {
	const deadline = Date.now() + ms;
	while (received() + lostIn(notices, extension) < total && Date.now() < deadline) {
		await sleep(100);
	}
	return lostIn(notices, extension);
}

function checkNotices(notices, extension, sub) {
	const mine = lossNotices(notices, extension);
	assert.ok(mine.length > 0, 'at least one notice');
	for (const n of mine) {
		assert.equal(n.payload.status, 'error');
		assert.equal(n.payload.channel, sub);
		assert.ok(Number.isInteger(n.payload.lost) && n.payload.lost > 0, JSON.stringify(n.payload));
		assert.deepEqual(n.payload.reasons, { events_limit: n.payload.lost });
		assert.match(n.payload.message, /^\d+ messages? not delivered: Too many messages per second$/);
	}
	for (let i = 1; i < mine.length; i++) {
		assert.ok(mine[i].at - mine[i - 1].at >= 900, `notices ${mine[i].at - mine[i - 1].at} ms apart`);
	}
}

async function lostMetric(s, extension) {
	const text = await (await fetch(`${s.base}/metrics`)).text();
	const re = new RegExp(
		`^realtime_channel_messages_lost_total\\{tenant="realtime",extension="${extension}",reason="events_limit"\\} (\\d+)$`,
		'm'
	);
	const m = text.match(re);
	assert.ok(m, 'the lost counter is exposed');
	return Number(m[1]);
}

test('realtime.send over the events limit: each lost message is counted in a notice', { timeout: 30000 }, async () => {
	const s = await limitedSidecar();
	const name = uniq('lost-send');
	const ch = createClient({ base: s.base }).channel(name);
	const got = collectBroadcasts(ch, 'e');
	const notices = collectSystem(ch);
	await subscribe(ch);
	const send = (n, from) =>
		db.query(`SELECT realtime.send(jsonb_build_object('i', g), 'e', $1, false) FROM generate_series($2::int, $3::int) g`, [
			name,
			from,
			from + n - 1,
		]);
	await send(300, 0); // fills the 60 s window (the average is looked at once a second)
	await sleep(1500);
	await send(100, 300); // over the limit: lost, and told at once
	await sleep(200);
	await send(50, 400); // within the same second: told when the second is over
	const lost = await settle(() => got.items.length, notices, 'broadcast', 450, 8000);
	assert.equal(got.items.length + lost, 450, `received ${got.items.length}, told of ${lost} lost`);
	assert.ok(lost >= 150, `the sends after the limit are lost (${lost})`);
	checkNotices(notices, 'broadcast', name);
	assert.equal(await lostMetric(s, 'broadcast'), lost);
	// the channel is still joined: nothing closed it
	assert.equal(ch.state, 'joined');
});

test('Postgres Changes over the events limit: the lost changes are counted in a notice', { timeout: 30000 }, async () => {
	const s = await limitedSidecar();
	const schema = uniqSchema('lost');
	await db.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.t (id int primary key)`);
	await ensurePublication(db);
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${schema}.t`);
	await db.query(`GRANT USAGE ON SCHEMA ${schema} TO anon; GRANT SELECT ON ${schema}.t TO anon`);
	try {
		const name = uniq('lost-pgc');
		const ch = createClient({ base: s.base }).channel(name);
		const changes = new Inbox('changes');
		ch.on('postgres_changes', { event: 'INSERT', schema, table: 't' }, (m) => changes.push(m));
		const notices = collectSystem(ch);
		await subscribe(ch);
		await notices.waitFor((n) => n.payload.message === SUBSCRIBED, 10000);
		await db.query(`INSERT INTO ${schema}.t SELECT g FROM generate_series(1, 300) g`);
		await sleep(1500);
		await db.query(`INSERT INTO ${schema}.t SELECT g FROM generate_series(301, 400) g`);
		const lost = await settle(() => changes.items.length, notices, 'postgres_changes', 400, 8000);
		assert.equal(changes.items.length + lost, 400, `received ${changes.items.length}, told of ${lost} lost`);
		assert.ok(lost >= 100, `the inserts after the limit are lost (${lost})`);
		checkNotices(notices, 'postgres_changes', name);
		assert.equal(await lostMetric(s, 'postgres_changes'), lost);
		assert.equal(ch.state, 'joined');
	} finally {
		await db.query(`ALTER PUBLICATION supabase_realtime DROP TABLE ${schema}.t; DROP SCHEMA ${schema} CASCADE`);
	}
});

test('a change whose RLS check fails in the database is told, not withheld silently', { timeout: 30000 }, async () => {
	const s = await startSidecar(['--ring-path', RT_RING_PATH]);
	sidecars.push(s);
	const schema = uniqSchema('rlsfail');
	// the policy divides by zero for row 13: the database cannot say whether anon may see it
	await db.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.t (id int primary key);
		ALTER TABLE ${schema}.t ENABLE ROW LEVEL SECURITY;
		CREATE POLICY p ON ${schema}.t FOR SELECT TO anon USING (10 / (id - 13) IS NOT NULL)`);
	await ensurePublication(db);
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${schema}.t`);
	await db.query(`GRANT USAGE ON SCHEMA ${schema} TO anon; GRANT SELECT ON ${schema}.t TO anon`);
	try {
		const name = uniq('rls-fail');
		const ch = createClient({ base: s.base }).channel(name);
		const changes = new Inbox('changes');
		ch.on('postgres_changes', { event: 'INSERT', schema, table: 't' }, (m) => changes.push(m));
		const notices = collectSystem(ch);
		await subscribe(ch);
		await notices.waitFor((n) => n.payload.message === SUBSCRIBED, 10000);
		await db.query(`INSERT INTO ${schema}.t VALUES (1)`);
		await changes.waitFor((m) => m.new.id === 1, 5000);
		await db.query(`INSERT INTO ${schema}.t VALUES (13)`);
		const notice = await notices.waitFor((n) => n.payload.extension === 'postgres_changes' && n.payload.lost !== undefined, 5000);
		assert.equal(notice.payload.status, 'error');
		assert.equal(notice.payload.channel, name);
		assert.deepEqual(notice.payload.reasons, { rls_unknown: notice.payload.lost });
		assert.equal(notice.payload.lost, 1);
		assert.match(notice.payload.message, /^1 message not delivered: the database could not be asked/);
		// the next change is checked again and delivered; 13 never was
		await db.query(`INSERT INTO ${schema}.t VALUES (14)`);
		await changes.waitFor((m) => m.new.id === 14, 5000);
		assert.deepEqual(changes.items.map((m) => m.new.id), [1, 14]);
		const text = await (await fetch(`${s.base}/metrics`)).text();
		assert.match(text, /^realtime_channel_messages_lost_total\{tenant="realtime",extension="postgres_changes",reason="rls_unknown"\} 1$/m);
		assert.equal(ch.state, 'joined');
	} finally {
		await db.query(`ALTER PUBLICATION supabase_realtime DROP TABLE ${schema}.t; DROP SCHEMA ${schema} CASCADE`);
	}
});
