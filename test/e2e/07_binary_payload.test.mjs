// 07 binary payload: an ArrayBuffer payload sent by realtime-js (kind 3,
// encoding 0) reaches v2 subscribers as kind 4 encoding 0 with the same bytes;
// v1 subscribers cannot carry bytes and get nothing (PROTOCOL.md 2.3, 2.4).

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
	sleep,
} from './lib/helpers.mjs';
import { decodeUserBroadcast, ENC_BINARY, KIND_USER_BROADCAST_PUSH } from './lib/v2binary.mjs';

after(closeClients);

// Every byte value, including sequences that are not valid UTF-8, plus a NUL tail.
function testBytes() {
	const b = new Uint8Array(300);
	for (let i = 0; i < b.length; i++) {
		b[i] = (i * 7 + 3) & 0xff;
	}
	b.set([0xc3, 0x28, 0xff, 0xfe, 0x00], 0);
	return b;
}

test('ArrayBuffer payload: v2 gets the exact bytes, v1 gets nothing', { timeout: 15000 }, async () => {
	const name = uniq('bin');
	const topic = `realtime:${name}`;
	const spy = spyTransport();
	const sender = createClient({ transport: spy.Transport }).channel(name);
	const v2 = createClient().channel(name);
	const v1 = createClient({ vsn: '1.0.0' }).channel(name);
	const in2 = collectBroadcasts(v2);
	const in1 = collectBroadcasts(v1);
	for (const c of [sender, v2, v1]) {
		await subscribe(c);
	}
	const raw2 = await RawClient.connect({ vsn: '2.0.0' });
	const raw1 = await RawClient.connect({ vsn: '1.0.0' });
	try {
		await raw2.join(topic);
		await raw1.join(topic);

		const bytes = testBytes();
		await sender.send({ type: 'broadcast', event: 'blob', payload: bytes.slice().buffer });
		const out = spy.sent.find((f) => f.binary);
		assert.ok(out, 'realtime-js sent a binary frame');
		assert.equal(out.data[0], KIND_USER_BROADCAST_PUSH);
		assert.equal(out.data[6], ENC_BINARY, 'encoding byte of the kind 3 push');

		// realtime-js v2 subscriber: payload is an ArrayBuffer with the same bytes.
		const got = await in2.waitFor((m) => m.event === 'blob', 2000);
		assert.ok(got.payload instanceof ArrayBuffer, `payload is ${Object.prototype.toString.call(got.payload)}`);
		assert.deepEqual(new Uint8Array(got.payload), bytes);

		// Raw v2 subscriber: kind 4, encoding 0, no metadata, exact bytes.
		const f = await raw2.waitFor((x) => x.binary, 2000, 'a binary frame');
		const k4 = decodeUserBroadcast(f.data);
		assert.ok(k4, `not kind 4: ${f.data.subarray(0, 16).toString('hex')}`);
		assert.equal(k4.topic, topic);
		assert.equal(k4.event, 'blob');
		assert.equal(k4.metadata, '');
		assert.equal(k4.encoding, ENC_BINARY);
		assert.deepEqual(new Uint8Array(k4.payload), bytes);

		// Same sender, same topic, later: a JSON marker. v1 subscribers get only the marker.
		await sender.send({ type: 'broadcast', event: 'marker', payload: { after: 'blob' } });
		await in1.waitFor((m) => m.event === 'marker', 2000);
		const m1 = await raw1.waitFor((x) => x.msg?.event === 'broadcast', 2000);
		assert.equal(m1.msg.payload.event, 'marker', `raw v1 got ${m1.text}`);
		await sleep(100);
		assert.deepEqual(in1.items.map((m) => m.event), ['marker']);
		assert.equal(raw1.frames.items.filter((x) => x.binary).length, 0, 'no binary frame on a v1 socket');
		assert.deepEqual(in2.items.map((m) => m.event), ['blob', 'marker']);
	} finally {
		await raw1.close();
		await raw2.close();
	}
});

test('an empty ArrayBuffer payload is delivered as an empty kind 4 payload', { timeout: 10000 }, async () => {
	const name = uniq('bin0');
	const sender = createClient().channel(name);
	await subscribe(sender);
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		await raw.join(`realtime:${name}`);
		await sender.send({ type: 'broadcast', event: 'empty', payload: new ArrayBuffer(0) });
		const f = await raw.waitFor((x) => x.binary, 2000, 'a binary frame');
		const k4 = decodeUserBroadcast(f.data);
		assert.equal(k4?.event, 'empty');
		assert.equal(k4.encoding, ENC_BINARY);
		assert.equal(k4.payload.length, 0);
	} finally {
		await raw.close();
	}
});
