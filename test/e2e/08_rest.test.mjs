// 08 REST broadcast: POST /realtime/v1/api/broadcast and /api/broadcast
// (PROTOCOL.md 4.6): 202 and delivery to subscribers as text broadcasts; 401
// {"message":"Unauthorized"} for missing or bad tokens; 422 with per-item errors.
// Also realtime-js send() on an unsubscribed channel, which falls back to this
// endpoint, and httpSend(), which uses the single-message endpoint of 4.7.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
	createClient,
	closeClients,
	subscriber,
	RawClient,
	post,
	authHeaders,
	jwt,
	uniq,
	sleep,
} from './lib/helpers.mjs';
import { decodeUserBroadcast, ENC_BINARY, ENC_JSON } from './lib/v2binary.mjs';

after(closeClients);

const PATH = '/realtime/v1/api/broadcast';

test('202, empty body, and subscribers receive the message', { timeout: 10000 }, async () => {
	const name = uniq('rest');
	const inbox = await subscriber(name);
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		await raw.join(`realtime:${name}`);
		const payload = { text: 'hi', n: 42, nested: { ok: true } };
		const res = await post(PATH, { messages: [{ topic: name, event: 'e', payload }] }, { headers: authHeaders() });
		assert.equal(res.status, 202, res.text);
		assert.equal(res.text, '');

		const got = await inbox.waitCount(1, 2000);
		assert.equal(got.event, 'e');
		assert.deepEqual(got.payload, payload);
		// REST-origin broadcasts are text frames for v2 (PROTOCOL.md 2.4).
		const f = await raw.waitFor((x) => x.msg?.event === 'broadcast', 2000);
		assert.equal(f.binary, false);
		assert.deepEqual(f.json, [null, null, `realtime:${name}`, 'broadcast', { type: 'broadcast', event: 'e', payload }]);
	} finally {
		await raw.close();
	}
});

test('an item with id is delivered with meta {id}', { timeout: 10000 }, async () => {
	const name = uniq('rest');
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		await raw.join(`realtime:${name}`);
		const id = randomUUID();
		const res = await post(PATH, { messages: [{ topic: name, event: 'withid', payload: { a: 1 }, id }] }, { headers: authHeaders() });
		assert.equal(res.status, 202, res.text);
		const f = await raw.waitFor((x) => x.msg?.event === 'broadcast', 2000);
		assert.deepEqual(f.msg.payload, { type: 'broadcast', event: 'withid', payload: { a: 1 }, meta: { id } });
	} finally {
		await raw.close();
	}
});

test('/api/broadcast path, apikey header alone, and a batch over two topics in order', { timeout: 10000 }, async () => {
	const [n1, n2] = [uniq('rest'), uniq('rest')];
	const in1 = await subscriber(n1);
	const in2 = await subscriber(n2);
	const token = jwt.anon();
	const res = await post(
		'/api/broadcast',
		{
			messages: [
				{ topic: n1, event: 'a', payload: { i: 1 } },
				{ topic: n2, event: 'b', payload: { i: 2 } },
				{ topic: n1, event: 'a', payload: { i: 3 } },
			],
		},
		{ headers: { apikey: token } }
	);
	assert.equal(res.status, 202, res.text);
	await in1.waitCount(2, 2000);
	await in2.waitCount(1, 2000);
	await sleep(100);
	assert.deepEqual(in1.items.map((m) => m.payload.i), [1, 3]);
	assert.deepEqual(in2.items.map((m) => m.payload.i), [2]);
});

test('lower-case "bearer" scheme and the service_role key are accepted', { timeout: 10000 }, async () => {
	const name = uniq('rest');
	const inbox = await subscriber(name);
	const svc = jwt.serviceRole();
	const res = await post(PATH, { messages: [{ topic: name, event: 'svc', payload: {} }] }, { headers: { Authorization: `bearer ${svc}` } });
	assert.equal(res.status, 202, res.text);
	await inbox.waitCount(1, 2000);
});

test('401 {"message":"Unauthorized"} without a token or with a bad one', { timeout: 10000 }, async () => {
	const name = uniq('rest');
	const inbox = await subscriber(name);
	const body = { messages: [{ topic: name, event: 'nope', payload: {} }] };
	const cases = {
		'no token': {},
		'wrong secret': authHeaders(jwt.wrongSecret()),
		expired: authHeaders(jwt.expired()),
		malformed: authHeaders(jwt.malformed()),
		'missing role': authHeaders(jwt.missingRole()),
		'alg none': authHeaders(jwt.algNone()),
		'bad bearer, good apikey': { Authorization: `Bearer ${jwt.wrongSecret()}`, apikey: jwt.anon() },
	};
	for (const [label, headers] of Object.entries(cases)) {
		for (const path of [PATH, '/api/broadcast']) {
			const res = await post(path, body, { headers });
			assert.equal(res.status, 401, `${label} ${path}: ${res.status} ${res.text}`);
			assert.deepEqual(res.json, { message: 'Unauthorized' }, `${label} ${path}`);
		}
	}
	// Prove none of them was delivered: a good request afterwards is the first thing seen.
	const ok = await post(PATH, { messages: [{ topic: name, event: 'good', payload: {} }] }, { headers: authHeaders() });
	assert.equal(ok.status, 202);
	await inbox.waitCount(1, 2000);
	await sleep(100);
	assert.deepEqual(inbox.items.map((m) => m.event), ['good']);
});

test('422 with per-item errors; the whole batch is rejected', { timeout: 10000 }, async () => {
	const name = uniq('rest');
	const inbox = await subscriber(name);
	for (const path of [PATH, '/api/broadcast']) {
		const res = await post(
			path,
			{
				messages: [
					{ topic: name, event: 'valid', payload: { x: 1 } },
					{ topic: name, event: 'nopayload' },
					{ payload: { x: 2 } },
				],
			},
			{ headers: authHeaders() }
		);
		assert.equal(res.status, 422, `${path}: ${res.status} ${res.text}`);
		const items = res.json?.errors?.messages;
		assert.ok(Array.isArray(items) && items.length === 3, `${path}: ${res.text}`);
		assert.deepEqual(items[0], {});
		assert.deepEqual(items[1], { payload: ["can't be blank"] });
		assert.deepEqual(items[2], { topic: ["can't be blank"], event: ["can't be blank"] });
	}
	const ok = await post(PATH, { messages: [{ topic: name, event: 'after', payload: {} }] }, { headers: authHeaders() });
	assert.equal(ok.status, 202);
	await inbox.waitCount(1, 2000);
	await sleep(100);
	assert.deepEqual(inbox.items.map((m) => m.event), ['after'], 'the valid item of a rejected batch must not be sent');
});

test('realtime-js send() on a channel that is not subscribed falls back to REST', { timeout: 10000 }, async () => {
	const name = uniq('rest');
	const inbox = await subscriber(name);
	const client = createClient();
	const unsubscribed = client.channel(name);
	const status = await unsubscribed.send({ type: 'broadcast', event: 'via-rest', payload: { r: 1 } });
	assert.equal(status, 'ok');
	const got = await inbox.waitCount(1, 2000);
	assert.equal(got.event, 'via-rest');
	assert.deepEqual(got.payload, { r: 1 });
	assert.ok(client.e2eLogs.some((l) => /falling back to REST/.test(l.msg)), 'the client took its REST path');
});

// httpSend() posts to /api/broadcast/:topic/events/:event (PROTOCOL.md 4.7): a user
// broadcast like a kind 3 push, so v2 sockets get binary kind 4 and v1 sockets text (2.4).
test('realtime-js httpSend() with JSON: v2 gets kind 4 encoding 1, v1 gets text', { timeout: 10000 }, async () => {
	const name = uniq('single');
	const topic = `realtime:${name}`;
	const inbox = await subscriber(name);
	const raw2 = await RawClient.connect({ vsn: '2.0.0' });
	const raw1 = await RawClient.connect({ vsn: '1.0.0' });
	try {
		await raw2.join(topic);
		await raw1.join(topic);
		const ch = createClient().channel(name);
		const res = await ch.httpSend('single', { s: 1, t: 'ü' });
		assert.deepEqual(res, { success: true });

		const got = await inbox.waitCount(1, 2000);
		assert.equal(got.event, 'single');
		assert.deepEqual(got.payload, { s: 1, t: 'ü' });
		const k4 = decodeUserBroadcast((await raw2.waitFor((f) => f.binary, 2000, 'a binary frame')).data);
		assert.deepEqual(
			k4 && { topic: k4.topic, event: k4.event, metadata: k4.metadata, encoding: k4.encoding, payload: JSON.parse(k4.payload) },
			{ topic, event: 'single', metadata: '', encoding: ENC_JSON, payload: { s: 1, t: 'ü' } }
		);
		const t1 = await raw1.waitFor((f) => f.msg?.event === 'broadcast', 2000);
		assert.deepEqual(t1.json, { topic, event: 'broadcast', payload: { type: 'broadcast', event: 'single', payload: { s: 1, t: 'ü' } }, ref: null });
	} finally {
		await raw1.close();
		await raw2.close();
	}
});

test('realtime-js httpSend() with bytes: v2 gets kind 4 encoding 0, v1 nothing', { timeout: 10000 }, async () => {
	const name = uniq('single');
	const topic = `realtime:${name}`;
	const raw2 = await RawClient.connect({ vsn: '2.0.0' });
	const raw1 = await RawClient.connect({ vsn: '1.0.0' });
	try {
		await raw2.join(topic);
		await raw1.join(topic);
		const ch = createClient().channel(name);
		const bytes = new Uint8Array([0, 1, 2, 0xfe, 0xff, 0x80]);
		assert.deepEqual(await ch.httpSend('blob', bytes.slice().buffer), { success: true });
		const k4 = decodeUserBroadcast((await raw2.waitFor((f) => f.binary, 2000, 'a binary frame')).data);
		assert.equal(k4?.event, 'blob');
		assert.equal(k4.encoding, ENC_BINARY);
		assert.deepEqual(new Uint8Array(k4.payload), bytes);

		// A later JSON message on the same path: the v1 socket's first broadcast must be it.
		assert.deepEqual(await ch.httpSend('after', { a: 1 }), { success: true });
		const t1 = await raw1.waitFor((f) => f.msg?.event === 'broadcast', 2000);
		assert.equal(t1.msg.payload.event, 'after');
		assert.equal(raw1.frames.items.filter((f) => f.binary).length, 0);
	} finally {
		await raw1.close();
		await raw2.close();
	}
});

test('REST single endpoint: 415 for another content type, 401 for a bad token, /api path too', { timeout: 10000 }, async () => {
	const name = uniq('single');
	const inbox = await subscriber(name);
	for (const prefix of ['/realtime/v1', '']) {
		const path = `${prefix}/api/broadcast/${encodeURIComponent(name)}/events/x`;
		const bad = await post(path, 'hello', { headers: { ...authHeaders(), 'Content-Type': 'text/plain' } });
		assert.equal(bad.status, 415, `${path}: ${bad.text}`);
		assert.deepEqual(bad.json, { error: 'Unsupported Media Type. Use application/json or application/octet-stream' });
		const unauth = await post(path, { a: 1 }, { headers: authHeaders(jwt.wrongSecret()) });
		assert.equal(unauth.status, 401, `${path}: ${unauth.text}`);
		assert.deepEqual(unauth.json, { message: 'Unauthorized' });
	}
	const ok = await post(`/api/broadcast/${encodeURIComponent(name)}/events/good`, { g: 1 }, { headers: authHeaders() });
	assert.equal(ok.status, 202, ok.text);
	await inbox.waitCount(1, 2000);
	await sleep(100);
	assert.deepEqual(inbox.items.map((m) => m.event), ['good']);
});
