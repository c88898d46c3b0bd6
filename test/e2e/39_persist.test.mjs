// 39 persist on a broadcast (realtime-js 2.119: send({..., persist}), httpSend(..., {persist})):
// the message becomes a row of realtime.messages, is delivered once stored (meta.id = the
// row's id) and acknowledged then, and a later join replays it. Refusals answer with an error
// and store nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, collectBroadcasts, RawClient, RT_URL, jwt, uniq, sleep } from './lib/helpers.mjs';
import { randomUUID } from './lib/pgchanges.mjs';
import { openPolicies } from './lib/policies.mjs';
import { encodeUserBroadcastPush, ENC_JSON } from './lib/v2binary.mjs';

const A = randomUUID();
const P = uniq('ps');
const tokA = () => jwt.authenticated(A);
let db;
let pol;

before(async () => {
	pol = await openPolicies(P);
	db = pol.db;
	await pol.policy('read', `FOR SELECT TO authenticated USING (realtime.topic() LIKE '${P}%')`);
	await pol.policy('write', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() LIKE '${P}%')`);
});

after(async () => {
	await closeClients();
	await pol?.close(async (d) => d.query(`DELETE FROM realtime.messages WHERE topic LIKE '${P}%'`));
});

const priv = (client, name, broadcast = {}) => client.channel(name, { config: { private: true, broadcast } });
const rows = async (topic) => (await db.query(`SELECT id::text, event, payload, binary_payload, private, expires_at IS NOT NULL AS expires, extract(epoch FROM expires_at - inserted_at)::int AS ttl FROM realtime.messages WHERE topic = $1 ORDER BY inserted_at`, [topic])).rows;

test('send({persist}) over vsn 2.0.0: acked after the row is committed, delivered with its id, replayed later', { timeout: 15000 }, async () => {
	const topic = `${P}-ws`;
	const since = Date.now() - 1000;
	const rx = priv(createClient({ token: tokA() }), topic);
	const got = collectBroadcasts(rx);
	await subscribe(rx);
	const tx = priv(createClient({ token: tokA() }), topic, { ack: true });
	await subscribe(tx);
	assert.equal(await tx.send({ type: 'broadcast', event: 'note', payload: { n: 1 }, persist: true }), 'ok');
	assert.equal(await tx.send({ type: 'broadcast', event: 'note', payload: { n: 2 }, persist: { ttl: 3600 } }), 'ok');
	assert.equal(await tx.send({ type: 'broadcast', event: 'note', payload: { n: 3 } }), 'ok', 'a plain one after them');
	const stored = await rows(topic);
	assert.equal(stored.length, 2, 'the two persisted ones are rows; the plain one is not');
	assert.deepEqual(stored.map((r) => [r.event, r.payload.n, r.private, r.expires]), [['note', 1, true, false], ['note', 2, true, true]]);
	assert.equal(stored[1].ttl, 3600);
	await got.waitCount(3, 5000);
	assert.deepEqual(got.items.map((m) => m.payload.n), [1, 2, 3], 'in send order');
	assert.deepEqual(got.items.slice(0, 2).map((m) => m.meta.id), stored.map((r) => r.id), 'meta.id is the row id');
	// a later join replays them
	const late = priv(createClient({ token: tokA() }), topic, { replay: { since, limit: 10 } });
	const replayed = collectBroadcasts(late);
	await subscribe(late);
	await replayed.waitCount(2, 5000);
	assert.deepEqual(replayed.items.map((m) => [m.payload.n, m.meta.replayed]), [[1, true], [2, true]]);
});

test('httpSend(..., {persist}): 202 once stored; persist[ttl] sets the expiry', { timeout: 15000 }, async () => {
	const topic = `${P}-rest`;
	const client = createClient({ token: tokA() });
	const rx = priv(client, topic);
	const got = collectBroadcasts(rx);
	await subscribe(rx);
	const tx = priv(createClient({ token: tokA() }), topic);
	assert.deepEqual(await tx.httpSend('note', { n: 1 }, { persist: true }), { success: true });
	assert.deepEqual(await tx.httpSend('note', { n: 2 }, { persist: { ttl: 60 } }), { success: true });
	const stored = await rows(topic);
	assert.deepEqual(stored.map((r) => [r.payload.n, r.ttl]), [[1, null], [2, 60]]);
	await got.waitCount(2, 5000);
	assert.deepEqual(got.items.map((m) => m.meta.id), stored.map((r) => r.id));
	// realtime-js puts the apikey (a long JWT) first in the query: ?private=true after it counts
	assert.deepEqual(await tx.httpSend('plain', { n: 3 }), { success: true });
	const plain = await got.waitFor((m) => m.event === 'plain', 5000, { what: 'the private REST message' });
	assert.equal(plain.meta, undefined, 'not stored: no id');
	// public or bad ttl: refused, nothing stored
	const post = (q) => fetch(`${RT_URL}/realtime/v1/api/broadcast/${encodeURIComponent(topic)}/events/note?${q}`, { method: 'POST', headers: { apikey: tokA(), authorization: `Bearer ${tokA()}`, 'content-type': 'application/json' }, body: '{"n":9}' });
	let r = await post('persist=true');
	assert.equal(r.status, 400);
	assert.deepEqual(await r.json(), { error: 'UnableToPersistMessage: Persist is not allowed for public channels' });
	r = await post('private=true&persist%5Bttl%5D=-1');
	assert.equal(r.status, 400);
	assert.deepEqual(await r.json(), { error: 'UnableToPersistMessage: Persist params are not valid' });
	assert.equal((await rows(topic)).length, 2);
});

test('refusals over the socket: public channel, bad ttl, vsn 1.0.0; nothing stored, the socket goes on', { timeout: 15000 }, async () => {
	const topic = `${P}-bad`;
	const raw = await RawClient.connect({ token: tokA() });
	const join = await raw.join(`realtime:${topic}`, { config: { private: true } });
	assert.equal(join.msg.payload.status, 'ok');
	const pub = await raw.join(`realtime:${topic}-pub`, { config: { private: false } });
	assert.equal(pub.msg.payload.status, 'ok');
	const push = async (t, metadata, joinRef) => {
		const ref = raw.nextRef();
		raw.sendBinary(encodeUserBroadcastPush({ joinRef, ref, topic: t, event: 'e', metadata, encoding: ENC_JSON, payload: { a: 1 } }));
		return (await raw.reply(ref)).msg.payload;
	};
	const err = (why) => ({ status: 'error', response: { error: `UnableToPersistMessage: ${why}` } });
	assert.deepEqual(await push(`realtime:${topic}-pub`, '{"persist":true}', pub.msg.join_ref), err('Persist is not allowed for public channels'));
	for (const meta of ['{"persist":{"ttl":0}}', '{"persist":{"ttl":1.5}}', '{"persist":{"ttl":"1"}}', '{"persist":"yes"}']) {
		assert.deepEqual(await push(`realtime:${topic}`, meta, join.msg.join_ref), err('Persist params are not valid'), meta);
	}
	// a valid one without ack: stored, no reply
	raw.sendBinary(encodeUserBroadcastPush({ joinRef: join.msg.join_ref, ref: raw.nextRef(), topic: `realtime:${topic}`, event: 'e', metadata: '{"persist":true}', encoding: ENC_JSON, payload: { a: 1 } }));
	assert.equal((await raw.heartbeat()).msg.payload.status, 'ok');
	await raw.close();
	const v1 = await RawClient.connect({ token: tokA(), vsn: '1.0.0' });
	const j1 = await v1.join(`realtime:${topic}`, { config: { private: true } });
	const ref = v1.push(`realtime:${topic}`, 'broadcast', { type: 'broadcast', event: 'e', payload: {}, persist: true }, { joinRef: j1.msg.join_ref });
	assert.deepEqual((await v1.reply(ref)).msg.payload, err('Persist needs protocol 2.0.0'));
	await v1.close();
	await sleep(200);
	assert.deepEqual((await rows(topic)).map((r) => r.payload), [{ a: 1 }], 'only the valid one was stored');
});

test('a sender that leaves (or drops) while its persisted broadcast is being stored: it and those behind it still reach the others, in order', { timeout: 15000 }, async () => {
	const topic = `${P}-leave`;
	const rx = priv(createClient({ token: tokA() }), topic);
	const got = collectBroadcasts(rx);
	await subscribe(rx);
	for (const how of ['leave', 'close']) {
		const raw = await RawClient.connect({ token: tokA() });
		const join = await raw.join(`realtime:${topic}`, { config: { private: true, broadcast: { ack: true } } });
		assert.equal(join.msg.payload.status, 'ok');
		const push = (metadata, n) => {
			const ref = raw.nextRef();
			raw.sendBinary(encodeUserBroadcastPush({ joinRef: join.msg.join_ref, ref, topic: `realtime:${topic}`, event: how, metadata, encoding: ENC_JSON, payload: { n } }));
			return ref;
		};
		// the write check first (the channel holds what comes while it is out)
		assert.equal((await raw.reply(push('{"persist":true}', 0))).msg.payload.status, 'ok');
		// one read of the sidecar: the stored one, two behind it, then the leave (or the close)
		push('{"persist":true}', 1);
		push('', 2);
		push('{"persist":true}', 3);
		if (how === 'leave') {
			raw.push(`realtime:${topic}`, 'phx_leave', {}, { joinRef: join.msg.join_ref });
		}
		await raw.close();
		const mine = () => got.items.filter((m) => m.event === how);
		const deadline = Date.now() + 5000;
		while (mine().length < 4 && Date.now() < deadline) await sleep(20);
		assert.deepEqual(mine().map((m) => m.payload.n), [0, 1, 2, 3], `${how}: every one, in order`);
	}
	assert.equal((await rows(topic)).length, 6, 'the persisted ones are rows');
});
