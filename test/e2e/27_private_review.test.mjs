// 27 private channels, review findings: rights a token refresh must not carry over to the
// new claims (PROTOCOL.md 3.6, 5.4, 8) and what one client may make the authorizer do.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeClients, RawClient, jwt, uniq, sleep } from './lib/helpers.mjs';
import { randomUUID } from './lib/pgchanges.mjs';
import { openPolicies } from './lib/policies.mjs';

const A = randomUUID(); // may read presence
const B = randomUUID(); // may read broadcasts only
const C = randomUUID(); // may track presence
const P = uniq('pr');
const ROOM = `${P}-room`;
const FLOOD = `${P}-flood`; // readable by all; its read policy counts its checks

let db;
let pol;
const policy = (name, sql) => pol.policy(name, sql);

before(async () => {
	pol = await openPolicies(P);
	db = pol.db;
	await policy('read', `FOR SELECT TO authenticated USING (realtime.topic() = '${ROOM}'
		AND (extension = 'broadcast' OR auth.uid() = '${A}'))`);
	await policy('track', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() = '${ROOM}'
		AND extension = 'presence' AND auth.uid() = '${C}')`);
	await db.query(`CREATE SEQUENCE public."${P}_n"`);
	await db.query(`GRANT USAGE ON SEQUENCE public."${P}_n" TO authenticated`);
	await policy('flood', `FOR SELECT TO authenticated USING (realtime.topic() = '${FLOOD}'
		AND nextval('public."${P}_n"') > 0)`);
});

after(async () => {
	await closeClients();
	await pol?.close((d) => d.query(`DROP SEQUENCE IF EXISTS public."${P}_n"`));
});

const isDiff = (f) => f.msg?.event === 'presence_diff';

test('a refreshed token does not keep the old token\'s presence-read right', { timeout: 15000 }, async () => {
	const topic = `realtime:${ROOM}`;
	// x joins without presence; its denied track still learns presence-read (true for A)
	const x = await RawClient.connect({ token: jwt.authenticated(A) });
	assert.equal((await x.join(topic, { joinRef: '1', config: { private: true } })).msg.payload.status, 'ok');
	const t = x.push(topic, 'presence', { type: 'presence', event: 'track', payload: { who: 'x' } }, { joinRef: '1' });
	assert.deepEqual((await x.reply(t)).msg.payload, { status: 'error', response: {} });

	const c = await RawClient.connect({ token: jwt.authenticated(C) });
	assert.equal((await c.join(topic, { joinRef: '1', config: { private: true } })).msg.payload.status, 'ok');
	const t1 = c.push(topic, 'presence', { type: 'presence', event: 'track', payload: { n: 1 } }, { joinRef: '1' });
	assert.equal((await c.reply(t1)).msg.payload.status, 'ok');
	await x.waitFor(isDiff, 3000, 'the diff of c\'s first track (x reads presence as A)');

	// x becomes B, who may read broadcasts but not presence: the channel stays, presence must stop
	x.push(topic, 'access_token', { access_token: jwt.authenticated(B) }, { joinRef: '1' });
	await sleep(1000); // the read check with B's claims answers
	const t2 = c.push(topic, 'presence', { type: 'presence', event: 'track', payload: { n: 2 } }, { joinRef: '1' });
	assert.equal((await c.reply(t2)).msg.payload.status, 'ok');
	await sleep(800); // c itself may not read presence: nothing to wait for

	const after = x.drain();
	// the refresh may end the channel (presence-read went from true to false, 3.6); never more diffs
	for (const f of after.filter((f) => f.msg?.event === 'system')) {
		assert.equal(f.msg.payload.message, `You no longer have permission to read from this Channel topic: ${ROOM}`);
	}
	assert.equal(after.filter(isDiff).length, 0, 'B may not read presence: no diff after the refresh');
	await x.close();
	await c.close();
});

// Read checks of FLOOD so far: its read policy takes a number from a sequence each time
// (sequences are not transactional: the check's rollback keeps the count).
async function floodChecks() {
	const { rows } = await db.query(`SELECT last_value::bigint AS n, is_called FROM public."${P}_n"`);
	return rows[0].is_called ? Number(rows[0].n) : 0;
}

test('access_token flood: one read check at a time per channel, other joins are not starved', { timeout: 30000 }, async () => {
	const topic = `realtime:${FLOOD}`;
	const x = await RawClient.connect({ token: jwt.authenticated(B) });
	assert.equal((await x.join(topic, { joinRef: '1', config: { private: true } })).msg.payload.status, 'ok');
	// two valid tokens, alternated: each refresh differs from the current one
	const now = Math.floor(Date.now() / 1000);
	const toks = [0, 1].map((i) => jwt.sign({ role: 'authenticated', sub: B, iat: now - i, exp: now + 3600 }));
	const N = 20000;
	const before = await floodChecks();
	for (let i = 0; i < N; i++) {
		x.push(topic, 'access_token', { access_token: toks[i % 2] }, { joinRef: '1' });
	}
	await x.heartbeat(10000); // the sidecar has read them all
	const y = await RawClient.connect({ token: jwt.authenticated(B) });
	const started = performance.now();
	const j = await y.join(topic, { joinRef: '1', config: { private: true }, ms: 10000 });
	const ms = performance.now() - started;
	assert.equal(j.msg.payload.status, 'ok', JSON.stringify(j.msg.payload));
	assert.ok(ms < 2000, `a private join waited ${Math.round(ms)} ms behind the flood`);
	await sleep(1000);
	const checks = (await floodChecks()) - before;
	// one check per refresh would be N; coalesced, it is one per round trip while the flood
	// lasts (about N/20 in a release build, N/9 under AddressSanitizer, which reads slower)
	assert.ok(checks < N / 4, `${checks} checks for ${N} refreshes of one channel`);
	await x.close();
	await y.close();
});
