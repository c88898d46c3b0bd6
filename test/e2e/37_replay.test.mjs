// 37 replay at join (PROTOCOL.md 4.5, 3.10): a private channel joined with
// config.broadcast.replay gets the stored broadcasts of its topic (private realtime.send()
// messages are stored by default) newest `limit` since `since`, oldest first, under its
// user's RLS, before anything live, with no gap and no message twice; what the limit left
// out is told. Bad parameters get upstream's errors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, subscribeResult, collectBroadcasts, RawClient, jwt, uniq, sleep } from './lib/helpers.mjs';
import { randomUUID } from './lib/pgchanges.mjs';
import { openPolicies } from './lib/policies.mjs';
import { decodeUserBroadcast } from './lib/v2binary.mjs';

const A = randomUUID();
const B = randomUUID();
const P = uniq('rp'); // every topic and policy of this file starts with it
const tokA = () => jwt.authenticated(A);
const tokB = () => jwt.authenticated(B);
// readable by A and B; rows addressed {"to": <uid>} only by that user; presence-only topic
const ROOM = `${P}-room`;
const PRES = `${P}-pres`;
const unauthorized = (t) => `Unauthorized: You do not have permissions to read from this Channel topic: ${t}`;

let db;
let pol;

before(async () => {
	pol = await openPolicies(P);
	db = pol.db;
	await pol.policy('read', `FOR SELECT TO authenticated USING (realtime.topic() LIKE '${P}-room%' AND (payload IS NULL OR NOT payload ? 'to' OR payload->>'to' = auth.uid()::text))`);
	await pol.policy('pres', `FOR SELECT TO authenticated USING (realtime.topic() = '${PRES}' AND extension = 'presence')`);
});

after(async () => {
	await closeClients();
	await pol?.close(async (d) => d.query(`DELETE FROM realtime.messages WHERE topic LIKE '${P}%'`));
});

// n stored messages {"n": i} on topic (one transaction, each with its own time), then the
// time just before the first, as unix ms.
async function store(topic, n, extra = {}) {
	const { rows } = await db.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t`);
	await db.query(`SELECT realtime.send(jsonb_build_object('n', i) || $3::jsonb, 'msg', $1, true) FROM generate_series(1, $2) AS i`, [topic, n, JSON.stringify(extra)]);
	return Number(rows[0].t);
}

const priv = (client, name, broadcast = {}) => client.channel(name, { config: { private: true, broadcast } });

test('the newest `limit` since `since`, oldest first, marked replayed, then live; the rest is told', { timeout: 15000 }, async () => {
	const topic = `${ROOM}-basic`;
	const since = await store(topic, 30);
	const client = createClient({ token: tokA() });
	const ch = priv(client, topic, { replay: { since, limit: 10 } });
	const got = collectBroadcasts(ch);
	const notices = [];
	ch.on('system', {}, (m) => notices.push(m));
	await subscribe(ch);
	await got.waitCount(10, 5000);
	assert.deepEqual(got.items.map((m) => m.payload.n), [21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
	for (const m of got.items) {
		assert.equal(m.event, 'msg');
		assert.equal(m.meta.replayed, true);
		assert.match(m.meta.id, /^[0-9a-f-]{36}$/);
		assert.equal(m.payload.id, m.meta.id, 'the id realtime.send added to the payload is the row id');
	}
	const { rows } = await db.query(`SELECT id::text FROM realtime.messages WHERE topic = $1 AND (payload->>'n')::int > 20 ORDER BY (payload->>'n')::int`, [topic]);
	assert.deepEqual(got.items.map((m) => m.meta.id), rows.map((r) => r.id));
	// the 20 older ones: told, not silently left out
	for (let i = 0; i < 50 && !notices.some((n) => n.extension === 'broadcast'); i++) {
		await sleep(50);
	}
	const notice = notices.find((n) => n.extension === 'broadcast');
	assert.ok(notice, 'a notice for the messages beyond the limit');
	assert.equal(notice.status, 'error');
	assert.equal(notice.lost, 20);
	assert.deepEqual(notice.reasons, { replay_limit: 20 });
	assert.equal(notice.message, '20 messages not delivered: more stored messages than the replay limit');
	// live after the replay, once, not marked replayed
	await db.query(`SELECT realtime.send('{"n": 31}', 'msg', $1, true)`, [topic]);
	const live = await got.waitFor((m) => m.payload.n === 31, 5000);
	assert.equal(live.meta.replayed, undefined);
	await sleep(200);
	assert.equal(got.items.length, 11);
});

test('limit is clamped to 1..25 (25 when absent); `since` bounds the rows', { timeout: 20000 }, async () => {
	const topic = `${ROOM}-clamp`;
	const since = await store(topic, 30);
	const count = async (replay) => {
		const ch = priv(createClient({ token: tokA() }), topic, { replay });
		const got = collectBroadcasts(ch);
		await subscribe(ch);
		await sleep(400);
		return got.items.map((m) => m.payload.n);
	};
	assert.deepEqual(await count({ since, limit: 0 }), [30]);
	assert.deepEqual(await count({ since, limit: -5 }), [30]);
	assert.equal((await count({ since, limit: 1000 })).length, 25);
	assert.equal((await count({ since })).length, 25);
	assert.deepEqual(await count({ since: Date.now() + 120000, limit: 10 }), [], 'nothing since a future time');
});

test('replay reads under the user\'s RLS: each user gets the rows it may read', { timeout: 15000 }, async () => {
	const topic = `${ROOM}-rls`;
	const since = await store(topic, 3, { to: A });
	await store(topic, 2, { to: B });
	const names = async (token) => {
		const ch = priv(createClient({ token }), topic, { replay: { since, limit: 25 } });
		const got = collectBroadcasts(ch);
		await subscribe(ch);
		await sleep(400);
		return got.items.map((m) => `${m.payload.to === A ? 'A' : 'B'}${m.payload.n}`);
	};
	assert.deepEqual(await names(tokA()), ['A1', 'A2', 'A3']);
	assert.deepEqual(await names(tokB()), ['B1', 'B2']);
	const svc = await names(jwt.serviceRole());
	assert.equal(svc.length, 5, 'service_role bypasses RLS');
});

test('no gap and no duplicate while messages keep coming during the join', { timeout: 30000 }, async () => {
	const topic = `${ROOM}-race`;
	const since = Date.now() - 1000;
	let n = 0;
	let stop = false;
	const sent = (async () => {
		while (!stop) {
			n++;
			await db.query(`SELECT realtime.send(jsonb_build_object('n', $2::int), 'msg', $1, true)`, [topic, n]);
		}
	})();
	await sleep(200);
	// eight joins while the messages flow: each one's snapshot, waiting and live edge differ
	const joins = [];
	for (let j = 0; j < 8; j++) {
		const ch = priv(createClient({ token: tokA() }), topic, { replay: { since, limit: 25 } });
		const got = collectBroadcasts(ch);
		const notices = [];
		ch.on('system', {}, (m) => notices.push(m));
		joins.push({ got, notices, done: subscribe(ch) });
		await sleep(37);
	}
	await Promise.all(joins.map((x) => x.done));
	await sleep(300);
	stop = true;
	await sent;
	for (const [j, { got, notices }] of joins.entries()) {
		await got.waitFor((m) => m.payload.n === n, 5000, { what: `message ${n}` });
		await sleep(50);
		const ns = got.items.map((m) => m.payload.n);
		const first = ns[0];
		assert.deepEqual(ns, Array.from({ length: n - first + 1 }, (_, i) => first + i), `join ${j}: every message from the first replayed one on, in order, once`);
		assert.ok(got.items[0].meta?.replayed, `join ${j}: the first is a replayed one`);
		assert.ok(got.items.some((m) => !m.meta?.replayed), `join ${j}: some came live`);
		const told = notices.filter((x) => x.extension === 'broadcast').reduce((sum, x) => sum + x.lost, 0);
		assert.equal(told, first - 1, `join ${j}: the ones before the replayed ones are told`);
	}
});

test('stored rows past their expiry, public rows and other topics are not replayed', { timeout: 10000 }, async () => {
	const topic = `${ROOM}-exp`;
	const since = Date.now() - 1000;
	await db.query(`INSERT INTO realtime.messages (topic, extension, event, payload, private, expires_at) VALUES
		($1, 'broadcast', 'msg', '{"n": 1}', true, timezone('utc', now()) - interval '1 second'),
		($1, 'broadcast', 'msg', '{"n": 2}', true, timezone('utc', now()) + interval '1 hour'),
		($1, 'broadcast', 'msg', '{"n": 3}', false, NULL),
		($1 || 'x', 'broadcast', 'msg', '{"n": 4}', true, NULL)`, [topic]);
	const ch = priv(createClient({ token: tokA() }), topic, { replay: { since, limit: 25 } });
	const got = collectBroadcasts(ch);
	await subscribe(ch);
	await sleep(400);
	assert.deepEqual(got.items.map((m) => m.payload.n), [2]);
});

test('a binary stored message is replayed as a binary broadcast (vsn 2.0.0), skipped on vsn 1.0.0', { timeout: 10000 }, async () => {
	const topic = `${ROOM}-bin`;
	const since = Date.now() - 1000;
	const { rows } = await db.query(`INSERT INTO realtime.messages (topic, extension, event, binary_payload, private) VALUES ($1, 'broadcast', 'blob', '\\x00ff10'::bytea, true) RETURNING id::text, floor(extract(epoch FROM inserted_at) * 1000)::bigint AS at`, [topic]);
	const raw = await RawClient.connect({ token: tokA() });
	const reply = await raw.join(`realtime:${topic}`, { config: { private: true, broadcast: { replay: { since, limit: 5 } } } });
	assert.equal(reply.msg.payload.status, 'ok');
	const f = await raw.waitFor((x) => x.binary, 3000, 'the replayed binary broadcast');
	const b = decodeUserBroadcast(f.data);
	assert.equal(b.event, 'blob');
	assert.deepEqual([...b.payload], [0x00, 0xff, 0x10]);
	assert.deepEqual(JSON.parse(b.metadata), { replayed: true, id: rows[0].id, inserted_at: Number(rows[0].at) }, 'the row id and time');
	await raw.close();
	const v1 = await RawClient.connect({ token: tokA(), vsn: '1.0.0' });
	const r1 = await v1.join(`realtime:${topic}`, { config: { private: true, broadcast: { replay: { since, limit: 5 } } } });
	assert.equal(r1.msg.payload.status, 'ok');
	await sleep(300);
	assert.deepEqual(v1.drain().filter((x) => x.msg?.event === 'broadcast'), [], 'nothing a vsn 1.0.0 client cannot read');
	await v1.close();
});

test('bad replay parameters and rights: upstream\'s errors; the socket goes on', { timeout: 20000 }, async () => {
	const raw = await RawClient.connect({ token: tokA() });
	const reason = async (topic, config) => (await raw.join(`realtime:${topic}`, { config })).msg.payload.response.reason;
	const topic = `${ROOM}-bad`;
	assert.equal(await reason(topic, { private: false, broadcast: { replay: { since: 0 } } }), 'UnableToReplayMessages: Replay is not allowed for public channels');
	const invalid = 'UnableToReplayMessages: Replay params are not valid';
	for (const replay of [{}, { limit: 5 }, { since: 'yesterday' }, { since: 1.5 }, { since: null }, { since: 0, limit: '10' }, { since: 0, limit: 2.5 }, { since: 1e300 }, 'since', [1, 2]]) {
		assert.equal(await reason(topic, { private: true, broadcast: { replay } }), invalid, JSON.stringify(replay));
	}
	assert.equal(await reason(PRES, { private: true, presence: { enabled: true }, broadcast: { replay: { since: 0 } } }), unauthorized(PRES), 'presence read alone does not allow a replay');
	assert.equal(await reason(`${P}-nobody`, { private: true, broadcast: { replay: { since: 0 } } }), unauthorized(`${P}-nobody`));
	// the same socket still works
	const ok = await raw.join(`realtime:${topic}`, { config: { private: true, broadcast: { replay: { since: 0, limit: 1 } } } });
	assert.equal(ok.msg.payload.status, 'ok');
	await raw.close();
	// realtime-js refuses a replay on a public channel before sending anything
	assert.throws(() => createClient().channel(topic, { config: { broadcast: { replay: { since: 0 } } } }), /replay on public channel/);
	// and the sidecar is fine
	const r = await subscribeResult(priv(createClient({ token: tokA() }), topic), 5000);
	assert.equal(r.status, 'SUBSCRIBED');
});
