// 31 tenant limits (PROTOCOL.md 1.4, 3.3, 3.7, 4.6, 9.1) with upstream's errors: concurrent
// users at connect (429) and at join, joins per second at connect (429) and at join (then the
// socket closes with 1001), events per second (channels end with "Too many messages per
// second", REST 429s). Each case runs on its own sidecar with a small limit.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startSidecar, upgradeProbe, post, authHeaders, jwt, uniq, sleep } from './lib/helpers.mjs';

const sidecars = [];
after(async () => {
	for (const s of sidecars) {
		await s.stop();
	}
});
async function sidecar(args) {
	const s = await startSidecar(['--connect-error-backoff-ms', '0', '--channel-error-backoff-ms', '0', ...args]);
	sidecars.push(s);
	return s;
}
const probe = (base) => upgradeProbe({ base, query: { apikey: jwt.anon(), vsn: '2.0.0' } });

test('concurrent users: counted from the first join until the socket closes', { timeout: 15000 }, async () => {
	const s = await sidecar(['--max-concurrent-users', '2']);
	const [c1, c2, c3] = await Promise.all([1, 2, 3].map(() => RawClient.connect({ base: s.base })));
	const room = `realtime:${uniq('users')}`;
	assert.equal((await c1.join(room)).msg.payload.status, 'ok');
	assert.equal((await c2.join(room)).msg.payload.status, 'ok');
	assert.equal((await c2.join(`${room}-2`)).msg.payload.status, 'ok', 'a counted socket joins more');
	const refused = await c3.join(room);
	assert.deepEqual(refused.msg.payload, {
		status: 'error',
		response: { reason: 'ConnectionRateLimitReached: Too many connected users' },
	});
	const p = await probe(s.base);
	assert.equal(p.status, 429);
	assert.deepEqual(JSON.parse(p.body), { error: 'Too many connected users' });
	await c1.close();
	await sleep(100);
	assert.equal((await c3.join(room)).msg.payload.status, 'ok', 'a place was freed');
	await c2.close();
	await c3.close();
});

test('joins per second: the join over the average is refused and its socket closed (1001); connects get 429', { timeout: 15000 }, async () => {
	const s = await sidecar(['--max-joins-per-second', '1']); // 60 joins fill the 60 s window
	const c = await RawClient.connect({ base: s.base });
	const base = uniq('joins');
	for (let i = 0; i < 60; i++) {
		assert.equal((await c.join(`realtime:${base}-${i}`)).msg.payload.status, 'ok', `join ${i}`);
	}
	const r = await c.join(`realtime:${base}-last`);
	assert.deepEqual(r.msg.payload, {
		status: 'error',
		response: { reason: 'ClientJoinRateLimitReached: Too many joins per second' },
	});
	const closed = await c.closed;
	assert.equal(closed.code, 1001);
	const p = await probe(s.base);
	assert.equal(p.status, 429);
	assert.deepEqual(JSON.parse(p.body), { error: 'Too many joins per second' });
});

test('events per second: over the average, channels that send or receive end; REST gets 429', { timeout: 20000 }, async () => {
	const s = await sidecar(['--max-events-per-second', '1']); // 60 events fill the window
	const a = await RawClient.connect({ base: s.base });
	const b = await RawClient.connect({ base: s.base });
	const topic = `realtime:${uniq('events')}`;
	const sub = topic.slice('realtime:'.length);
	await a.join(topic, { joinRef: '1' });
	await b.join(topic, { joinRef: '1' });
	// each broadcast is 2 events: in from a, out to b
	for (let i = 0; i < 30; i++) {
		a.push(topic, 'broadcast', { type: 'broadcast', event: 'e', payload: { i } }, { joinRef: '1' });
	}
	await b.waitFor((f) => f.msg?.payload?.payload?.i === 29, 5000);
	await sleep(1300); // the average is looked at once a second
	a.push(topic, 'broadcast', { type: 'broadcast', event: 'over', payload: {} }, { joinRef: '1' });
	const sys = await a.waitFor((f) => f.msg?.event === 'system', 3000);
	assert.deepEqual(sys.msg.payload, { extension: 'system', status: 'error', message: 'Too many messages per second', channel: sub });
	assert.equal((await a.next()).msg.event, 'phx_close');
	assert.equal(b.frames.items.filter((f) => f.msg?.payload?.event === 'over').length, 0);
	// REST: over the average
	const rest = await post('/api/broadcast', { messages: [{ topic: sub, event: 'r', payload: {} }] }, { base: s.base, headers: authHeaders(jwt.serviceRole()) });
	assert.equal(rest.status, 429);
	assert.deepEqual(rest.json, { message: 'You have exceeded your rate limit' });
	// the socket itself stays usable
	assert.equal((await a.heartbeat()).msg.payload.status, 'ok');
	await a.close();
	await b.close();
});

test('REST: a batch larger than the events limit is refused whole', { timeout: 10000 }, async () => {
	const s = await sidecar(['--max-events-per-second', '5']);
	const messages = Array.from({ length: 6 }, (_, i) => ({ topic: uniq('batch'), event: 'b', payload: { i } }));
	const r = await post('/api/broadcast', { messages }, { base: s.base, headers: authHeaders(jwt.serviceRole()) });
	assert.equal(r.status, 429);
	assert.deepEqual(r.json, { message: 'Too many messages to broadcast, please reduce the batch size' });
	const ok = await post('/api/broadcast', { messages: messages.slice(0, 5) }, { base: s.base, headers: authHeaders(jwt.serviceRole()) });
	assert.equal(ok.status, 202);
});
