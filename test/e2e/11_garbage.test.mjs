// 11 garbage and oversized input: malformed frames are dropped and the socket stays open
// (PROTOCOL.md 1.6); one whose ref and topic can still be read is answered with an error
// reply naming the problem (`MalformedWebSocketMessage: ...`), the others get nothing; frames
// over 5,000,000 bytes close that socket only (1.2); broadcast payloads over
// max_payload_size_in_kb (3000 -> 3,000,500 bytes) are not sent and answered
// payload_size_exceeded when the push has a ref (4.2). A well-behaved subscriber on the same
// channel keeps working throughout.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, collectBroadcasts, RawClient, uniq, sleep, within } from './lib/helpers.mjs';
import { encodeUserBroadcastPush, ENC_BINARY, ENC_JSON } from './lib/v2binary.mjs';

const FRAME_LIMIT = 5000000;
const PAYLOAD_LIMIT = 3000 * 1000 + 500;

let topic;
let garbage; // raw v2 socket joined with ack, the misbehaving one
let wellIn; // realtime-js subscriber's inbox
const JOIN_REF = '1';

before(async () => {
	const name = uniq('garbage');
	topic = `realtime:${name}`;
	const well = createClient().channel(name);
	wellIn = collectBroadcasts(well);
	await subscribe(well);
	garbage = await RawClient.connect({ vsn: '2.0.0' });
	const r = await garbage.join(topic, { joinRef: JOIN_REF, ref: JOIN_REF, config: { broadcast: { self: false, ack: true } } });
	assert.equal(r.msg.payload.status, 'ok');
});

after(async () => {
	await garbage?.close();
	await closeClients();
});

// The garbage socket sends a valid acked broadcast; the subscriber must get it next.
async function proveChannelWorks(event) {
	const ref = garbage.push(topic, 'broadcast', { type: 'broadcast', event, payload: { ok: 1 } }, { joinRef: JOIN_REF });
	const reply = await garbage.reply(ref, 2000);
	assert.deepEqual(reply.json, [JOIN_REF, ref, topic, 'phx_reply', { status: 'ok', response: {} }]);
	const got = await wellIn.waitFor((m) => m.event === event, 2000);
	assert.deepEqual(got.payload, { ok: 1 });
}

// What comes back for the garbage sent since `from` (an index into sock.frames): exactly one
// error reply per readable ref of `told` ([ref, topic] pairs, in order), then the heartbeat
// reply. `sock` is a vsn 2.0.0 RawClient.
async function assertToldThenHeartbeat(label, from, told = [], sock = garbage) {
	const hb = await sock.heartbeat(2000);
	const extra = sock.frames.items.slice(from).filter((f) => f !== hb);
	const shown = extra.map((f) => f.text ?? `<binary ${f.data.toString('hex')}>`);
	assert.equal(extra.length, told.length, `${label}: frames ${JSON.stringify(shown)}`);
	told.forEach(([ref, t], i) => {
		const [, gotRef, gotTopic, event, payload] = extra[i].json;
		assert.deepEqual([gotRef, gotTopic, event, payload.status], [ref, t, 'phx_reply', 'error'], `${label}: ${shown[i]}`);
		assert.match(payload.response.reason, /^MalformedWebSocketMessage: \S/, `${label}: ${shown[i]}`);
	});
	assert.deepEqual(hb.json[4], { status: 'ok', response: {} });
	assert.equal(sock.isClosed, false);
}

async function assertNoReplyThenHeartbeat(label) {
	await assertToldThenHeartbeat(label, garbage.frames.items.length);
}

test('malformed text frames are dropped, those with a readable ref told why; the socket stays open', { timeout: 10000 }, async () => {
	const from = garbage.frames.items.length;
	const frames = [
		'not json',
		'{"unterminated": ',
		'[null,"1","realtime:x","broadcast",{"type":"broadcast"',
		'null',
		'42',
		'"a string"',
		'{}',
		`{"topic":"${topic}","event":"broadcast","payload":{"type":"broadcast","event":"obj","payload":{}},"ref":"1"}`,
		'[]',
		'[null,"hb4","phoenix","heartbeat"]',
		'[1,2,3,4,5]',
		'[null,"9","phoenix",7,{}]',
		`[null,"9","${topic}","broadcast","not an object"]`,
		'['.repeat(100000),
		`[${'{"a":'.repeat(50000)}1${'}'.repeat(50000)}]`,
	];
	for (const f of frames) {
		garbage.sendText(f);
	}
	await assertToldThenHeartbeat('text garbage', from, [
		['1', 'realtime:x'], // truncated after the envelope
		['hb4', 'phoenix'], // four elements
		['9', 'phoenix'], // event not a string
		['9', topic], // payload not an object
	]);
	await proveChannelWorks('after-text-garbage');
});

test('invalid binary frames are dropped, those with a readable header told why; the socket stays open', { timeout: 10000 }, async () => {
	const from = garbage.frames.items.length;
	const valid = encodeUserBroadcastPush({ joinRef: JOIN_REF, ref: '50', topic, event: 'bin', payload: { a: 1 } });
	const frames = [
		Buffer.alloc(0),
		Buffer.from([9]),
		Buffer.from([255, 1, 2, 3]),
		Buffer.from([5, 0, 0, 0, 0]),
		// kind 4 is server->client only
		Buffer.concat([Buffer.from([4, topic.length, 1, 0, 1]), Buffer.from(topic), Buffer.from('e{}')]),
		// kind 3 whose lengths run past the end
		Buffer.from([3, 5, 5, 200, 5, 0, 1, 0x41, 0x42]),
		// kind 3 with only the kind byte / a short header
		Buffer.from([3]),
		Buffer.from([3, 0, 0]),
		// kind 3 with an unknown encoding
		Buffer.concat([valid.subarray(0, 6), Buffer.from([7]), valid.subarray(7)]),
		// kind 3, encoding JSON, payload not JSON
		encodeUserBroadcastPush({ joinRef: JOIN_REF, ref: '51', topic, event: 'badjson', encoding: ENC_JSON, payload: Buffer.from('{nope') }),
	];
	for (const f of frames) {
		garbage.sendBinary(f);
	}
	await assertToldThenHeartbeat('binary garbage', from, [
		['50', topic], // unknown encoding
		['51', topic], // payload not JSON
	]);
	await proveChannelWorks('after-binary-garbage');
	await sleep(100);
	assert.ok(!wellIn.items.some((m) => m.event === 'badjson' || m.event === 'e'), 'garbage must not be delivered');
});

test('vsn 1.0.0 socket: malformed objects are dropped, those with a ref and a topic told why', { timeout: 10000 }, async () => {
	const v1 = await RawClient.connect({ vsn: '1.0.0' });
	try {
		v1.sendText('{"topic":"phoenix","event":"heartbeat","payload":{}}'); // no ref
		v1.sendText('{"event":"heartbeat","payload":{},"ref":"2"}'); // no topic
		v1.sendText('{"topic":"phoenix","payload":{},"ref":"3"}'); // no event: told
		v1.sendText('{"topic":"phoenix","event":"heartbeat","ref":"4"}'); // no payload: told
		v1.sendText('[null,"5","phoenix","heartbeat",{}]'); // v2 shape on a v1 socket
		v1.sendText('garbage');
		v1.sendBinary(encodeUserBroadcastPush({ topic: 'realtime:x', event: 'e', payload: {} }));
		// realtime-js 1.0.0 writes payload before ref: a lone surrogate in it still gets an answer
		v1.sendText('{"topic":"realtime:q","event":"broadcast","payload":{"s":"\\udc00"},"ref":"6","join_ref":"1"}');
		v1.sendText('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"ok"}');
		for (const ref of ['3', '4', '6']) {
			const f = await v1.next(2000);
			assert.equal(f.json.ref, ref, f.text);
			assert.equal(f.json.event, 'phx_reply');
			assert.equal(f.json.payload.status, 'error');
			assert.match(f.json.payload.response.reason, /^MalformedWebSocketMessage: \S/);
		}
		const f = await v1.next(2000);
		assert.deepEqual(f.json, { topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} }, ref: 'ok' });
		assert.equal(v1.isClosed, false);
	} finally {
		await v1.close();
	}
});

test('a text frame just under the frame limit is accepted', { timeout: 15000 }, async () => {
	// Extra trailing array elements are ignored (PROTOCOL.md 2.2): a heartbeat padded to ~4.9 MB.
	const pad = 'p'.repeat(FRAME_LIMIT - 100000);
	garbage.sendText(`[null,"bighb","phoenix","heartbeat",{},"${pad}"]`);
	const r = await garbage.reply('bighb', 5000);
	assert.deepEqual(r.json, [null, 'bighb', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
});

for (const [label, send] of [
	['one text frame', (ws, n) => ws.send('x'.repeat(n))],
	[
		'a fragmented message',
		(ws, n) => {
			const third = Math.ceil(n / 3);
			ws.send('y'.repeat(third), { fin: false });
			ws.send('y'.repeat(third), { fin: false });
			ws.send('y'.repeat(n - 2 * third), { fin: true });
		},
	],
]) {
	test(`over the frame limit (${label}): that socket is closed with an error code, others unaffected`, { timeout: 15000 }, async () => {
		const big = await RawClient.connect({ vsn: '2.0.0' });
		await big.join(topic);
		send(big.ws, FRAME_LIMIT + 1000);
		const closed = await within(big.closed, 5000, null);
		if (!closed) {
			big.terminate();
		}
		assert.ok(closed, 'the oversized sender was not closed within 5 s');
		// 1009 message too big is the natural one; 1002/1008/1011 are also error closes.
		// 1006 means the TCP connection was dropped without a close frame.
		assert.ok([1002, 1008, 1009, 1011].includes(closed.code), `close code ${closed.code} (${closed.reason})`);

		await assertNoReplyThenHeartbeat(`after oversized ${label}`);
		await proveChannelWorks(`after-oversized-${label.replace(/ /g, '-')}`);
	});
}

test('payload over the payload limit with ack: payload_size_exceeded, not delivered', { timeout: 20000 }, async () => {
	const big = 'z'.repeat(PAYLOAD_LIMIT + 100000); // ~3.1 MB: under the frame limit, over the payload limit

	const ref1 = garbage.push(topic, 'broadcast', { type: 'broadcast', event: 'too-big-text', payload: { big } }, { joinRef: JOIN_REF });
	const r1 = await garbage.reply(ref1, 5000);
	assert.deepEqual(r1.json, [JOIN_REF, ref1, topic, 'phx_reply', { status: 'error', response: 'payload_size_exceeded' }]);

	garbage.sendBinary(encodeUserBroadcastPush({ joinRef: JOIN_REF, ref: 'b2', topic, event: 'too-big-bin', encoding: ENC_BINARY, payload: Buffer.alloc(PAYLOAD_LIMIT + 100000, 7) }));
	const r2 = await garbage.reply('b2', 5000);
	assert.deepEqual(r2.json, [JOIN_REF, 'b2', topic, 'phx_reply', { status: 'error', response: 'payload_size_exceeded' }]);

	// Control: a 2 MB payload is under the limit, acked ok and delivered.
	const ok = 'k'.repeat(2000000);
	const ref3 = garbage.push(topic, 'broadcast', { type: 'broadcast', event: 'big-ok', payload: { ok } }, { joinRef: JOIN_REF });
	const r3 = await garbage.reply(ref3, 5000);
	assert.deepEqual(r3.json, [JOIN_REF, ref3, topic, 'phx_reply', { status: 'ok', response: {} }]);
	const got = await wellIn.waitFor((m) => m.event === 'big-ok', 5000);
	assert.equal(got.payload.ok.length, ok.length);

	await proveChannelWorks('after-too-big');
	assert.ok(!wellIn.items.some((m) => m.event.startsWith('too-big')), 'oversized payloads must not be delivered');
	assert.equal(garbage.isClosed, false);
});

// Told, not timed out: realtime-js waits `timeout` (10 s by default) for the reply to an acked
// send. A payload that is not valid Unicode (JSON.stringify sends a lone surrogate as "\ud800")
// is refused, and the client hears why at once, on both wire versions.
for (const vsn of ['2.0.0', '1.0.0']) {
	test(`vsn ${vsn}: an acked send whose payload is not valid Unicode resolves 'error' at once`, { timeout: 15000 }, async () => {
		const name = uniq('lone');
		const client = createClient({ vsn, timeout: 10000 });
		const ch = client.channel(name, { config: { broadcast: { self: true, ack: true } } });
		const inbox = collectBroadcasts(ch);
		await subscribe(ch);
		const t0 = Date.now();
		const bad = await ch.send({ type: 'broadcast', event: 'lone', payload: { s: 'a\ud800b' } });
		const ms = Date.now() - t0;
		assert.equal(bad, 'error');
		assert.ok(ms < 1000, `answered after ${ms} ms`);
		// the channel and the socket go on: the next send is acked and delivered, the bad one never
		assert.equal(await ch.send({ type: 'broadcast', event: 'fine', payload: { s: 'ok' } }), 'ok');
		await inbox.waitFor((m) => m.event === 'fine', 2000);
		assert.ok(!inbox.items.some((m) => m.event === 'lone'));
	});
}

test('an unknown event with a ref gets an error reply naming it; an oversized push without ack is answered too', { timeout: 15000 }, async () => {
	const raw = await RawClient.connect({ vsn: '2.0.0' });
	try {
		const t = `realtime:${uniq('unknown')}`;
		const j = await raw.join(t, { joinRef: '1', ref: '1', config: { broadcast: { ack: false } } });
		assert.equal(j.msg.payload.status, 'ok');
		const ref = raw.push(t, 'no_such_event', { a: 1 }, { joinRef: '1' });
		const r = await raw.reply(ref, 2000);
		assert.deepEqual(r.json, ['1', ref, t, 'phx_reply', { status: 'error', response: { reason: 'unknown event: no_such_event' } }]);
		// without a ref there is nothing to answer: dropped (and counted)
		raw.sendText(JSON.stringify(['1', null, t, 'no_such_event', {}]));
		const big = 'z'.repeat(PAYLOAD_LIMIT + 1000);
		const ref2 = raw.push(t, 'broadcast', { type: 'broadcast', event: 'big', payload: { big } }, { joinRef: '1' });
		const r2 = await raw.reply(ref2, 5000);
		assert.deepEqual(r2.json, ['1', ref2, t, 'phx_reply', { status: 'error', response: 'payload_size_exceeded' }]);
		await assertToldThenHeartbeat('unknown events', raw.frames.items.length, [], raw);
	} finally {
		await raw.close();
	}
});
