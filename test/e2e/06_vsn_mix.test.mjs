// 06 vsn mix: vsn 1.0.0 and 2.0.0 clients on one channel. A v2 realtime-js
// sender pushes binary kind 3; v2 subscribers get binary kind 4, v1 subscribers
// a text broadcast. A v1 (text) sender reaches everyone as text (PROTOCOL.md 2.3, 2.4).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
	createClient,
	closeClients,
	subscribe,
	collectBroadcasts,
	spyTransport,
	RawClient,
	uniq,
} from './lib/helpers.mjs';
import { decodeUserBroadcast, ENC_JSON, KIND_USER_BROADCAST_PUSH } from './lib/v2binary.mjs';

after(closeClients);

test('v1 and v2 realtime-js clients exchange messages both ways, with the right frames on the wire', { timeout: 15000 }, async () => {
	const name = uniq('mix');
	const topic = `realtime:${name}`;
	const spy1 = spyTransport();
	const spy2 = spyTransport();
	const c1 = createClient({ vsn: '1.0.0', transport: spy1.Transport });
	const c2 = createClient({ vsn: '2.0.0', transport: spy2.Transport });
	assert.equal(c1.vsn, '1.0.0');
	assert.equal(c2.vsn, '2.0.0');
	const ch1 = c1.channel(name);
	const ch2 = c2.channel(name);
	const in1 = collectBroadcasts(ch1);
	const in2 = collectBroadcasts(ch2);
	await subscribe(ch1);
	await subscribe(ch2);
	const raw2 = await RawClient.connect({ vsn: '2.0.0' });
	const raw1 = await RawClient.connect({ vsn: '1.0.0' });
	try {
		await raw2.join(topic);
		await raw1.join(topic);

		// v2 -> everyone
		const fromV2 = { from: 'v2', n: [1, 2, 3], s: 'é' };
		await ch2.send({ type: 'broadcast', event: 'v2msg', payload: fromV2 });
		const pushed = spy2.sent.filter((f) => f.binary);
		assert.equal(pushed.length, 1, 'the v2 client sends its broadcast as one binary frame');
		assert.equal(pushed[0].data[0], KIND_USER_BROADCAST_PUSH);

		const got1 = await in1.waitFor((m) => m.event === 'v2msg', 2000);
		assert.deepEqual(got1.payload, fromV2);
		// On v1's wire: a text object, no join_ref, ref null.
		const wire1 = await spy1.received.waitFor((f) => !f.binary && f.data.includes('v2msg'), 2000);
		assert.deepEqual(JSON.parse(wire1.data), {
			topic,
			event: 'broadcast',
			payload: { type: 'broadcast', event: 'v2msg', payload: fromV2 },
			ref: null,
		});

		// Raw v2 subscriber: binary kind 4, JSON encoding, no metadata.
		const f2 = await raw2.waitFor((f) => f.binary, 2000, 'a binary frame');
		const k4 = decodeUserBroadcast(f2.data);
		assert.ok(k4, `not a kind 4 frame: ${f2.data.toString('hex')}`);
		assert.equal(k4.topic, topic);
		assert.equal(k4.event, 'v2msg');
		assert.equal(k4.metadata, '');
		assert.equal(k4.encoding, ENC_JSON);
		assert.deepEqual(JSON.parse(k4.payload.toString('utf8')), fromV2);

		// Raw v1 subscriber: the same text object.
		const t1 = await raw1.waitFor((f) => f.msg?.event === 'broadcast', 2000);
		assert.equal(t1.binary, false);
		assert.deepEqual(t1.json, { topic, event: 'broadcast', payload: { type: 'broadcast', event: 'v2msg', payload: fromV2 }, ref: null });

		// v1 -> everyone
		const fromV1 = { from: 'v1', ok: true };
		await ch1.send({ type: 'broadcast', event: 'v1msg', payload: fromV1 });
		const sent1 = spy1.sent.filter((f) => !f.binary && f.data.includes('v1msg'));
		assert.equal(sent1.length, 1);
		assert.ok(spy1.sent.every((f) => !f.binary), 'v1 client sends text only');

		const got2 = await in2.waitFor((m) => m.event === 'v1msg', 2000);
		assert.deepEqual(got2.payload, fromV1);
		const wire2 = await spy2.received.waitFor((f) => f.data.includes('v1msg'), 2000);
		assert.equal(wire2.binary, false, 'a text-origin broadcast reaches v2 as a text frame');
		assert.deepEqual(JSON.parse(wire2.data), [null, null, topic, 'broadcast', { type: 'broadcast', event: 'v1msg', payload: fromV1 }]);

		const t2 = await raw2.waitFor((f) => !f.binary && f.msg?.event === 'broadcast', 2000);
		assert.deepEqual(t2.json, [null, null, topic, 'broadcast', { type: 'broadcast', event: 'v1msg', payload: fromV1 }]);

		// And nothing else was delivered to anyone.
		assert.deepEqual(in1.items.map((m) => m.event), ['v2msg']);
		assert.deepEqual(in2.items.map((m) => m.event), ['v1msg']);
	} finally {
		await raw1.close();
		await raw2.close();
	}
});

test('raw v1 sender without join_ref reaches a raw v2 subscriber as text', { timeout: 10000 }, async () => {
	const topic = `realtime:${uniq('mix')}`;
	const v1 = await RawClient.connect({ vsn: '1.0.0' });
	const v2 = await RawClient.connect({ vsn: '2.0.0' });
	try {
		await v1.join(topic, { joinRef: '1', ref: '1' });
		await v2.join(topic, { joinRef: '1', ref: '1' });
		// v1 clients often omit join_ref (PROTOCOL.md 2.5: accepted).
		v1.sendText(JSON.stringify({ topic, event: 'broadcast', payload: { type: 'broadcast', event: 'plain', payload: { a: 1 } }, ref: '2' }));
		const f = await v2.waitFor((x) => x.msg?.event === 'broadcast', 2000);
		assert.equal(f.binary, false);
		assert.deepEqual(f.json, [null, null, topic, 'broadcast', { type: 'broadcast', event: 'plain', payload: { a: 1 } }]);
	} finally {
		await v1.close();
		await v2.close();
	}
});
