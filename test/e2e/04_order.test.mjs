// 04 order: messages from one sender on one topic arrive complete and in send
// order (PROTOCOL.md 4.4), for 1,000 messages sent back to back.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, collectBroadcasts, uniq } from './lib/helpers.mjs';

after(closeClients);

const N = 1000;

async function run({ senderVsn, receiverVsn }) {
	const name = uniq('order');
	const sender = createClient({ vsn: senderVsn }).channel(name);
	const receiver = createClient({ vsn: receiverVsn }).channel(name);
	const inbox = collectBroadcasts(receiver, 'seq');
	await subscribe(sender);
	await subscribe(receiver);

	const filler = 'x'.repeat(200);
	for (let i = 0; i < N; i++) {
		// No ack: send() resolves at once; the pushes leave in this order.
		await sender.send({ type: 'broadcast', event: 'seq', payload: { i, filler } });
	}
	await inbox.waitCount(N, 10000);
	const seq = inbox.items.map((m) => m.payload.i);
	const firstBad = seq.findIndex((v, i) => v !== i);
	assert.equal(firstBad, -1, `out of order or missing at position ${firstBad}: got ${seq[firstBad]}`);
	assert.equal(seq.length, N);
	assert.ok(inbox.items.every((m) => m.payload.filler === filler));
}

test('1,000 messages v2 -> v2 arrive complete and in order', { timeout: 20000 }, () =>
	run({ senderVsn: '2.0.0', receiverVsn: '2.0.0' }));

test('1,000 messages v1 -> v2 arrive complete and in order', { timeout: 20000 }, () =>
	run({ senderVsn: '1.0.0', receiverVsn: '2.0.0' }));
