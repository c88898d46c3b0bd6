// 01 subscribe: realtime-js reaches SUBSCRIBED; the join reply is
// {"status":"ok","response":{"postgres_changes":[]}} in both serializers
// (PROTOCOL.md 2.1, 2.2, 3.4) and on both WebSocket paths (1.1).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, RawClient, uniq } from './lib/helpers.mjs';

after(closeClients);

test('realtime-js (default vsn 2.0.0) subscribe() reaches SUBSCRIBED', { timeout: 8000 }, async () => {
	const client = createClient();
	const channel = client.channel(uniq());
	let okResponse;
	await subscribe(channel);
	channel.joinPush.receive('ok', (resp) => (okResponse = resp));
	assert.equal(channel.state, 'joined');
	assert.deepEqual(okResponse, { postgres_changes: [] });
	assert.equal(client.vsn, '2.0.0');
});

test('realtime-js with vsn 1.0.0 reaches SUBSCRIBED', { timeout: 8000 }, async () => {
	const client = createClient({ vsn: '1.0.0' });
	const channel = client.channel(uniq());
	await subscribe(channel);
	assert.equal(channel.state, 'joined');
});

test('raw vsn 2.0.0 join reply is exactly [join_ref, ref, topic, "phx_reply", {ok, postgres_changes: []}]', { timeout: 8000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		const topic = `realtime:${uniq()}`;
		const reply = await raw.join(topic, { joinRef: '7', ref: '8' });
		assert.equal(reply.binary, false);
		assert.deepEqual(reply.json, ['7', '8', topic, 'phx_reply', { status: 'ok', response: { postgres_changes: [] } }]);
	} finally {
		await raw.close();
	}
});

test('raw vsn 1.0.0 join reply is an object with ref and no join_ref', { timeout: 8000 }, async () => {
	const raw = await RawClient.connect({ vsn: '1.0.0' });
	try {
		const topic = `realtime:${uniq()}`;
		const reply = await raw.join(topic, { joinRef: '1', ref: '1' });
		assert.deepEqual(reply.json, {
			topic,
			event: 'phx_reply',
			payload: { status: 'ok', response: { postgres_changes: [] } },
			ref: '1',
		});
	} finally {
		await raw.close();
	}
});

test('the native path /socket/websocket serves the same protocol', { timeout: 8000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.0', path: '/socket/websocket' });
	try {
		const topic = `realtime:${uniq()}`;
		const reply = await raw.join(topic, { joinRef: '1', ref: '1' });
		assert.deepEqual(reply.json, ['1', '1', topic, 'phx_reply', { status: 'ok', response: { postgres_changes: [] } }]);
	} finally {
		await raw.close();
	}
});
