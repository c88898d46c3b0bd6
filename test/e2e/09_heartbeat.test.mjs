// 09 heartbeat: topic "phoenix", event "heartbeat" gets {"status":"ok","response":{}}
// with join_ref null, in both serializers (PROTOCOL.md 2.1, 2.2, 2.5).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, RawClient } from './lib/helpers.mjs';

after(closeClients);

test('vsn 2.0.0: [null,"5","phoenix","heartbeat",{}] -> exact reply', { timeout: 5000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		raw.sendText('[null,"5","phoenix","heartbeat",{}]');
		const f = await raw.next();
		assert.equal(f.binary, false);
		assert.deepEqual(f.json, [null, '5', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
	} finally {
		await raw.close();
	}
});

test('vsn 1.0.0: heartbeat object -> reply object with ref and no join_ref', { timeout: 5000 }, async () => {
	const raw = await RawClient.connect({ vsn: '1.0.0' });
	try {
		raw.sendText('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"5"}');
		const f = await raw.next();
		assert.deepEqual(f.json, { topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} }, ref: '5' });
	} finally {
		await raw.close();
	}
});

test('no vsn parameter means 1.0.0', { timeout: 5000 }, async () => {
	const raw = await RawClient.connect({ vsn: null });
	try {
		raw.sendText('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"9"}');
		const f = await raw.next();
		assert.deepEqual(f.json, { topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} }, ref: '9' });
	} finally {
		await raw.close();
	}
});

test('vsn 2.0.x matches ~> 2.0.0', { timeout: 5000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.7' });
	try {
		raw.sendText('[null,"1","phoenix","heartbeat",{}]');
		const f = await raw.next();
		assert.deepEqual(f.json, [null, '1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
	} finally {
		await raw.close();
	}
});

test('many heartbeats in a row: one reply each, in order', { timeout: 5000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		for (let i = 0; i < 50; i++) {
			raw.sendText(JSON.stringify([null, `hb${i}`, 'phoenix', 'heartbeat', {}]));
		}
		for (let i = 0; i < 50; i++) {
			const f = await raw.next();
			assert.equal(f.msg?.ref, `hb${i}`);
		}
	} finally {
		await raw.close();
	}
});

test('realtime-js heartbeat callback sees "ok"', { timeout: 8000 }, async () => {
	const client = createClient();
	const statuses = [];
	client.onHeartbeat((status) => statuses.push(status));
	client.connect();
	const t0 = Date.now();
	while (!client.isConnected() && Date.now() - t0 < 3000) {
		await new Promise((r) => setTimeout(r, 20));
	}
	assert.ok(client.isConnected(), 'connected');
	await client.sendHeartbeat();
	while (!statuses.includes('ok') && Date.now() - t0 < 5000) {
		await new Promise((r) => setTimeout(r, 20));
	}
	assert.deepEqual(statuses.slice(0, 2), ['sent', 'ok']);
});
