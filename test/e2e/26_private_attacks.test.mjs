// 26 private channels under attack: each case must be denied (PROTOCOL.md 3.5, 3.6, 4.2,
// 5.4, 8): topic variants that could alias another user's room, forged and expired tokens,
// sends and tracks without the write right, SQL in topics.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeClients, RawClient, post, authHeaders, jwt, uniq, sleep } from './lib/helpers.mjs';
import { randomUUID } from './lib/pgchanges.mjs';
import { openPolicies } from './lib/policies.mjs';

const A = randomUUID(); // the attacker
const V = randomUUID(); // the victim
const P = uniq('pa');
const tokA = () => jwt.authenticated(A);
const tokV = () => jwt.authenticated(V);
const victimTopic = `${P}:${V}`;
const unauthorized = (t) => `Unauthorized: You do not have permissions to read from this Channel topic: ${t}`;

let db;
let pol;
let victim; // the victim's socket, joined to its own private topic
before(async () => {
	pol = await openPolicies(P);
	db = pol.db;
	await pol.policy('read', `FOR SELECT TO authenticated USING (realtime.topic() = '${P}:' || auth.uid()::text)`);
	await pol.policy('write', `FOR INSERT TO authenticated
		WITH CHECK (realtime.topic() = '${P}:' || auth.uid()::text AND extension = 'broadcast')`);
	victim = await RawClient.connect({ token: tokV() });
	const j = await victim.join(`realtime:${victimTopic}`, { joinRef: '1', config: { private: true, broadcast: { self: false, ack: true }, presence: { enabled: true, key: 'v' } } });
	assert.equal(j.msg.payload.status, 'ok');
});

after(async () => {
	await victim?.close();
	await closeClients();
	await pol?.close();
});

async function refused(client, subTopic, opts = {}) {
	const r = await client.join(`realtime:${subTopic}`, { config: { private: true }, ...opts });
	assert.equal(r.msg.payload.status, 'error', `joining ${JSON.stringify(subTopic)} must be refused`);
	return r.msg.payload.response.reason;
}

test('topic variants of the victim\'s room are refused', { timeout: 15000 }, async () => {
	const a = await RawClient.connect({ token: tokA() });
	const variants = [
		victimTopic,
		`realtime:${victimTopic}`,
		`realtime:realtime:${victimTopic}`,
		`${P}:${V.toUpperCase()}`,
		`${P.toUpperCase()}:${V}`,
		` ${victimTopic}`,
		`${victimTopic} `,
		`${victimTopic}\n`,
		`${victimTopic}\u0000`,
		`${P}:%${V}`,
		`${P}:${V}' OR '1'='1`,
	];
	for (const t of variants) {
		const reason = await refused(a, t);
		assert.equal(reason, unauthorized(t));
	}
	// the attacker's legitimate own room works on the same socket
	assert.equal((await a.join(`realtime:${P}:${A}`, { config: { private: true } })).msg.payload.status, 'ok');
	await a.close();
});

test('SQL in a topic is data: the join is refused and realtime.messages is intact', { timeout: 10000 }, async () => {
	const a = await RawClient.connect({ token: tokA() });
	const topics = [`x'); DROP TABLE realtime.messages; --`, `x"; SELECT pg_sleep(10); --`, `$$; DROP SCHEMA realtime CASCADE; $$`];
	for (const t of topics) {
		await refused(a, t);
	}
	// other files store private realtime.send() messages: count this test's topics only
	const { rows } = await db.query(`SELECT to_regclass('realtime.messages') IS NOT NULL AS present, (SELECT count(*)::int FROM realtime.messages WHERE topic = ANY($1)) AS n`, [topics]);
	assert.deepEqual(rows[0], { present: true, n: 0 }, 'the table is there and no probe row persisted');
	await a.close();
});

test('forged and expired tokens are refused at join and on refresh', { timeout: 15000 }, async () => {
	const a = await RawClient.connect({ token: tokA() });
	const forged = jwt.sign({ role: 'authenticated', sub: V, iat: 1, exp: Math.floor(Date.now() / 1000) + 3600 }, { secret: 'another-secret-0123456789-0123456789' });
	assert.equal(await refused(a, victimTopic, { accessToken: forged }), 'JwtSignatureError: Failed to validate JWT signature');
	const none = jwt.sign({ role: 'service_role', exp: Math.floor(Date.now() / 1000) + 3600 }, { header: { alg: 'none', typ: 'JWT' } });
	assert.match(await refused(a, victimTopic, { accessToken: none }), /^(JwtSignerError|MalformedJWT|JwtSignatureError): /);
	assert.match(await refused(a, victimTopic, { accessToken: jwt.expired() }), /^InvalidJWTToken: Token has expired \d+ seconds ago$/);

	// a valid short-lived token, refreshed with an expired one: the channel ends
	const now = Math.floor(Date.now() / 1000);
	const own = `realtime:${P}:${A}`;
	assert.equal((await a.join(own, { joinRef: '5', config: { private: true } })).msg.payload.status, 'ok');
	const stale = jwt.sign({ role: 'authenticated', sub: A, iat: now - 100, exp: now - 50 });
	a.push(own, 'access_token', { access_token: stale }, { joinRef: '5' });
	const sys = await a.waitFor((f) => f.msg?.event === 'system' && f.msg.topic === own, 3000);
	assert.match(sys.msg.payload.message, /^Token has expired \d+ seconds ago$/);
	// and a refresh with the victim's identity forged: ends too, never grants the victim's room
	assert.equal((await a.join(own, { joinRef: '6', config: { private: true } })).msg.payload.status, 'ok');
	a.push(own, 'access_token', { access_token: forged }, { joinRef: '6' });
	const sys2 = await a.waitFor((f) => f.msg?.event === 'system' && f.msg.topic === own, 3000);
	assert.equal(sys2.msg.payload.message, 'Failed to validate JWT signature');
	await a.close();
});

test('no write right: sends are dropped silently (even with ack), tracks are errors', { timeout: 10000 }, async () => {
	// the service role may read the victim's room; a user without the write right may not
	// send to it by any path
	const a = await RawClient.connect({ token: tokA() });
	const vt = `realtime:${victimTopic}`;
	// REST with the attacker's token: batch skipped (202), single 403
	const batch = await post('/api/broadcast', { messages: [{ topic: victimTopic, event: 'rest-attack', payload: {}, private: true }] }, { headers: authHeaders(tokA()) });
	assert.equal(batch.status, 202);
	const single = await post(`/api/broadcast/${encodeURIComponent(victimTopic)}/events/rest-attack?private=true`, {}, { headers: authHeaders(tokA()) });
	assert.equal(single.status, 403);
	// the victim may send broadcasts but not track presence (the write policy is broadcast only)
	const ack = victim.push(vt, 'broadcast', { type: 'broadcast', event: 'own', payload: {} }, { joinRef: '1' });
	assert.equal((await victim.reply(ack)).msg.payload.status, 'ok');
	const tr = victim.push(vt, 'presence', { type: 'presence', event: 'track', payload: { x: 1 } }, { joinRef: '1' });
	assert.deepEqual((await victim.reply(tr)).msg.payload, { status: 'error', response: {} });
	await sleep(300);
	assert.equal(victim.frames.items.filter((f) => f.msg?.payload?.event === 'rest-attack').length, 0);
	assert.equal(victim.frames.items.filter((f) => f.msg?.event === 'presence_diff').length, 0);
	await a.close();
});
