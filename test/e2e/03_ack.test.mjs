// 03 ack: with config.broadcast.ack the server replies {"status":"ok","response":{}}
// to each broadcast push (text and binary kind 3); without it, no reply at all
// (PROTOCOL.md 4.2 step 5, 11).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
	createClient,
	closeClients,
	subscribe,
	collectBroadcasts,
	RawClient,
	uniq,
} from './lib/helpers.mjs';
import { encodeUserBroadcastPush } from './lib/v2binary.mjs';

after(closeClients);

test('realtime-js ack: true: send() resolves "ok" once the server acknowledges', { timeout: 10000 }, async () => {
	const name = uniq();
	const sender = createClient().channel(name, { config: { broadcast: { ack: true } } });
	const other = createClient().channel(name);
	const otherIn = collectBroadcasts(other);
	await subscribe(sender);
	await subscribe(other);

	const t0 = performance.now();
	const status = await sender.send({ type: 'broadcast', event: 'acked', payload: { k: 1 } });
	const ms = performance.now() - t0;
	// Without a server reply the client would resolve "timed out" after its 3 s timeout.
	assert.equal(status, 'ok');
	assert.ok(ms < 2000, `ack took ${ms} ms`);
	const got = await otherIn.waitCount(1, 2000);
	assert.deepEqual(got.payload, { k: 1 });
});

test('realtime-js without ack: send() resolves "ok" immediately', { timeout: 10000 }, async () => {
	const client = createClient();
	const channel = client.channel(uniq());
	await subscribe(channel);
	const t0 = performance.now();
	const status = await channel.send({ type: 'broadcast', event: 'noack', payload: {} });
	assert.equal(status, 'ok');
	assert.ok(performance.now() - t0 < 100);
});

test('raw v2: ack replies carry join_ref and ref, for text and binary kind 3 pushes', { timeout: 10000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		const topic = `realtime:${uniq()}`;
		await raw.join(topic, { joinRef: '3', ref: '3', config: { broadcast: { self: false, ack: true } } });

		raw.push(topic, 'broadcast', { type: 'broadcast', event: 'cursor', payload: { x: 1 } }, { joinRef: '3', ref: '7' });
		const r1 = await raw.reply('7');
		assert.deepEqual(r1.json, ['3', '7', topic, 'phx_reply', { status: 'ok', response: {} }]);

		raw.sendBinary(encodeUserBroadcastPush({ joinRef: '3', ref: '8', topic, event: 'cursor', payload: { x: 2 } }));
		const r2 = await raw.reply('8');
		assert.deepEqual(r2.json, ['3', '8', topic, 'phx_reply', { status: 'ok', response: {} }]);
	} finally {
		await raw.close();
	}
});

test('raw v2 without ack: no reply to broadcast pushes (next frame is the heartbeat reply)', { timeout: 10000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		const topic = `realtime:${uniq()}`;
		await raw.join(topic, { joinRef: '1', ref: '1' });
		raw.push(topic, 'broadcast', { type: 'broadcast', event: 'e', payload: {} }, { joinRef: '1', ref: '2' });
		raw.sendBinary(encodeUserBroadcastPush({ joinRef: '1', ref: '3', topic, event: 'e', payload: {} }));
		const hb = await raw.heartbeat();
		// Everything received: the join reply, then the heartbeat reply, nothing between.
		const all = raw.frames.items;
		assert.equal(all.length, 2, `frames: ${all.map((f) => f.text ?? '<binary>').join(' | ')}`);
		assert.equal(all[1], hb);
	} finally {
		await raw.close();
	}
});
