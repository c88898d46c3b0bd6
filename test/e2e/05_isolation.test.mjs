// 05 isolation: channels do not leak into each other; a private channel of the
// same name is another room (PROTOCOL.md 3.1). The test database has no policy on
// realtime.messages for anon, so an anon private join is refused with the Unauthorized
// reason (3.5, 11); authorized private channels are in 25_private.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
	createClient,
	closeClients,
	subscribe,
	subscribeResult,
	collectBroadcasts,
	RawClient,
	post,
	authHeaders,
	jwt,
	uniq,
	sleep,
} from './lib/helpers.mjs';

after(closeClients);

const unauthorized = (sub) =>
	`Unauthorized: You do not have permissions to read from this Channel topic: ${sub}`;

// Join failures may be delayed by CHANNEL_ERROR_BACKOFF_MS (5 s upstream) before the reply.
const JOIN_ERROR_MS = 9000;

test('two channels: no cross delivery', { timeout: 10000 }, async () => {
	const [nameA, nameB] = [uniq('iso-a'), uniq('iso-b')];
	const sender = createClient();
	const sA = sender.channel(nameA);
	const sB = sender.channel(nameB);
	const rA = createClient().channel(nameA);
	const rB = createClient().channel(nameB);
	const inA = collectBroadcasts(rA);
	const inB = collectBroadcasts(rB);
	for (const c of [sA, sB, rA, rB]) {
		await subscribe(c);
	}

	await sA.send({ type: 'broadcast', event: 'only-a', payload: {} });
	await sB.send({ type: 'broadcast', event: 'only-b', payload: {} });
	await sA.send({ type: 'broadcast', event: 'end', payload: {} });
	await sB.send({ type: 'broadcast', event: 'end', payload: {} });
	await inA.waitFor((m) => m.event === 'end', 2000);
	await inB.waitFor((m) => m.event === 'end', 2000);
	await sleep(150); // a misrouted message from the other topic is not ordered with 'end'
	assert.deepEqual(inA.items.map((m) => m.event), ['only-a', 'end']);
	assert.deepEqual(inB.items.map((m) => m.event), ['only-b', 'end']);
});

// The three refusals wait out the same join-error back-off, so they run side by side.
describe('private channels without a policy', { concurrency: true }, () => {
	test('realtime-js private join is refused with the Unauthorized reason', { timeout: 15000 }, async () => {
		const name = uniq('priv');
		const channel = createClient({ timeout: 12000 }).channel(name, { config: { private: true } });
		const { status, err } = await subscribeResult(channel, JOIN_ERROR_MS + 2000);
		assert.equal(status, 'CHANNEL_ERROR');
		assert.equal(err?.message, unauthorized(name));
	});

	test('raw private join reply: {"status":"error","response":{"reason":...}}', { timeout: 15000 }, async () => {
		const raw = await RawClient.connect({ vsn: '2.0.0' });
		try {
			const name = uniq('priv');
			const topic = `realtime:${name}`;
			const reply = await raw.join(topic, { joinRef: '2', ref: '6', config: { private: true }, ms: JOIN_ERROR_MS });
			assert.deepEqual(reply.json, ['2', '6', topic, 'phx_reply', { status: 'error', response: { reason: unauthorized(name) } }]);
			// Not joined: a push to it is an unmatched topic.
			const ref = raw.push(topic, 'broadcast', { type: 'broadcast', event: 'x', payload: {} }, { joinRef: '2' });
			const r = await raw.reply(ref);
			assert.deepEqual(r.json, [null, ref, topic, 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
		} finally {
			await raw.close();
		}
	});

	test('private messages of the same name never reach public subscribers', { timeout: 20000 }, async () => {
		const name = uniq('same');
		const pub = createClient().channel(name);
		const pubIn = collectBroadcasts(pub);
		await subscribe(pub);

		// The refused private channel: realtime-js send() falls back to REST with private: true.
		const priv = createClient({ timeout: 12000 }).channel(name, { config: { private: true } });
		const { status } = await subscribeResult(priv, JOIN_ERROR_MS + 2000);
		assert.equal(status, 'CHANNEL_ERROR');
		await priv.send({ type: 'broadcast', event: 'leak-fallback', payload: {} });

		// service_role bypasses RLS: the private item is accepted and goes to the private room.
		const svc = jwt.serviceRole();
		const r1 = await post('/realtime/v1/api/broadcast', { messages: [{ topic: name, event: 'leak-rest', payload: {}, private: true }] }, { headers: authHeaders(svc) });
		assert.equal(r1.status, 202, r1.text);

		// The public marker, sent after both.
		const r2 = await post('/realtime/v1/api/broadcast', { messages: [{ topic: name, event: 'marker', payload: {}, private: false }] }, { headers: authHeaders(svc) });
		assert.equal(r2.status, 202, r2.text);
		await pubIn.waitFor((m) => m.event === 'marker', 2000);
		await sleep(150);
		assert.deepEqual(pubIn.items.map((m) => m.event), ['marker']);
	});
});
