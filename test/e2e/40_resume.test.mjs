// 40 resume (issue 15, point 3): a subscriber whose socket is gone for 5 s while 1,000
// messages/s are sent to its private channel rejoins with replay.since = meta.inserted_at of
// the last message it saw, and gets every message it missed, in order, then the live ones.
// Nothing is missing; the only messages it gets twice are the ones it had already seen that
// were stored in that same millisecond (replay.since is inclusive and in ms), which the app
// skips by meta.id. Both stores: persisted client broadcasts (the sidecar's COPY) and private
// realtime.send() (the caller's transaction). The sidecar allows replays of up to 10,000.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, startSidecar, stopChecked, jwt, uniq, sleep } from './lib/helpers.mjs';
import { randomUUID } from './lib/pgchanges.mjs';
import { openPolicies } from './lib/policies.mjs';

const RATE = 1000; // messages per second
const SEND_MS = 9000; // the sender's run
const DROP_AT_MS = 2000; // the subscriber's socket goes ...
const OUTAGE_MS = 5000; // ... for this long
const A = randomUUID();
const P = uniq('rs');
const tok = () => jwt.authenticated(A);
let pol;
let db;
let sidecar;

before(async () => {
	pol = await openPolicies(P);
	db = pol.db;
	await pol.policy('read', `FOR SELECT TO authenticated USING (realtime.topic() LIKE '${P}%')`);
	await pol.policy('write', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() LIKE '${P}%')`);
	sidecar = await startSidecar(['--ring-path', process.env.RT_RING_PATH ?? '', '--max-replay-messages', '10000']);
});

after(async () => {
	await closeClients();
	await stopChecked(sidecar);
	await pol?.close(async (d) => d.query(`DELETE FROM realtime.messages WHERE topic LIKE '${P}%'`));
});

// The app: every delivery recorded; on a drop it joins again with since = the last
// inserted_at it saw. Returns the record and the two controls.
function resumingSubscriber(topic) {
	const got = []; // {n, id, at, replayed, socket}
	let last = null;
	let socket = 0;
	let client;
	const join = async (since) => {
		socket++;
		const mine = socket;
		client = createClient({ base: sidecar.base, token: tok() });
		const broadcast = since == null ? {} : { replay: { since, limit: 10000 } };
		const ch = client.channel(topic, { config: { private: true, broadcast } });
		ch.on('broadcast', { event: 'm' }, (m) => {
			got.push({ n: m.payload.n, id: m.meta?.id, at: m.meta?.inserted_at, replayed: m.meta?.replayed === true, socket: mine });
			last = m.meta?.inserted_at ?? last;
		});
		await subscribe(ch, 10000);
	};
	const drop = async () => {
		const c = client;
		c.getChannels().forEach((ch) => ch.teardown());
		await new Promise((resolve) => c.socketAdapter.getSocket().disconnect(resolve));
		return last;
	};
	return { got, join, drop };
}

// Sends n = 1, 2, ... at RATE for SEND_MS through send(n); resolves with the count sent.
async function paced(send) {
	const start = Date.now();
	let n = 0;
	const pending = [];
	while (Date.now() - start < SEND_MS) {
		const due = Math.floor(((Date.now() - start) * RATE) / 1000);
		while (n < due) pending.push(send(++n));
		await sleep(5);
	}
	const answers = await Promise.all(pending);
	return { sent: n, answers };
}

// The outage in the middle of the sender's run; then everything sent must be there.
async function outage(topic, sender) {
	const sub = resumingSubscriber(topic);
	await sub.join(null);
	const run = paced(sender);
	await sleep(DROP_AT_MS);
	const since = await sub.drop();
	const seenBefore = sub.got.length;
	assert.ok(since != null && seenBefore > 0, 'messages with meta.inserted_at came before the drop');
	await sleep(OUTAGE_MS);
	await sub.join(since);
	const { sent, answers } = await run;
	const deadline = Date.now() + 20000;
	while (new Set(sub.got.map((g) => g.n)).size < sent && Date.now() < deadline) await sleep(50);
	await sleep(300); // anything late and extra would come now

	const first = sub.got.filter((g) => g.socket === 1);
	const second = sub.got.filter((g) => g.socket === 2);
	const unique = new Set(sub.got.map((g) => g.n));
	const missing = [];
	for (let n = 1; n <= sent; n++) if (!unique.has(n)) missing.push(n);
	const twice = second.filter((g) => first.some((f) => f.id === g.id));
	const allowed = new Set(first.filter((f) => f.at === since).map((f) => f.id));
	const replayed = second.filter((g) => g.replayed).length;
	console.log(`# ${topic}: sent ${sent}, seen ${sub.got.length} (${first.length} before the drop, ${replayed} replayed), missing ${missing.length}, seen twice ${twice.length} (stored in the drop's millisecond: ${allowed.size})`);
	return { sent, answers, missing, twice, allowed, first, second, replayed };
}

function check(r) {
	assert.ok(r.sent >= (RATE * SEND_MS) / 1000 - RATE / 10, `about ${(RATE * SEND_MS) / 1000} sent (${r.sent})`);
	assert.deepEqual(r.missing.slice(0, 10), [], `${r.missing.length} of ${r.sent} missing`);
	for (const g of r.twice) assert.ok(r.allowed.has(g.id), `n=${g.n} came twice but was not stored in the millisecond of since`);
	assert.ok(r.replayed >= (RATE * OUTAGE_MS) / 1000 * 0.9, `the outage's messages were replayed (${r.replayed})`);
	// in order on each socket: the replay, then live, one sender
	for (const part of [r.first, r.second]) {
		const ns = part.map((g) => g.n);
		for (let i = 1; i < ns.length; i++) assert.ok(ns[i] > ns[i - 1], `order: ${ns[i - 1]} then ${ns[i]}`);
	}
	for (const g of r.second) assert.equal(typeof g.at, 'number', 'meta.inserted_at on every stored message');
}

test('persisted client broadcasts (send({persist: true})): a 5 s outage at 1,000 msg/s loses nothing', { timeout: 60000 }, async () => {
	const topic = `${P}-ws`;
	const tx = createClient({ base: sidecar.base, token: tok() }).channel(topic, { config: { private: true, broadcast: { ack: true } } });
	await subscribe(tx);
	const r = await outage(topic, (n) => tx.send({ type: 'broadcast', event: 'm', payload: { n }, persist: true }));
	assert.deepEqual(r.answers.filter((a) => a !== 'ok').slice(0, 5), [], 'every send acknowledged ok');
	check(r);
	const { rows } = await db.query('SELECT count(*)::int AS n FROM realtime.messages WHERE topic = $1', [topic]);
	assert.equal(rows[0].n, r.sent, 'one row per message');
});

test('private realtime.send(): a 5 s outage at 1,000 msg/s loses nothing', { timeout: 60000 }, async () => {
	const topic = `${P}-sql`;
	let chain = Promise.resolve(); // one connection: one query after the other, in n order
	const r = await outage(topic, (n) => (chain = chain.then(() => db.query(`SELECT realtime.send(jsonb_build_object('n', $1::int), 'm', $2, true)`, [n, topic]))));
	check(r);
	const live = r.second.filter((g) => !g.replayed).slice(0, 200);
	const { rows } = await db.query('SELECT id::text, floor(extract(epoch FROM inserted_at) * 1000)::bigint AS at FROM realtime.messages WHERE id = ANY ($1::uuid[])', [live.map((g) => g.id)]);
	const at = new Map(rows.map((x) => [x.id, Number(x.at)]));
	for (const g of live) assert.equal(g.at, at.get(g.id), `n=${g.n}: meta.inserted_at is the row's`);
});
