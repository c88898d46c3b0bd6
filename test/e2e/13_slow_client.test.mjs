// 13 slow client: a subscriber that stops reading never stalls the others
// (ARCHITECTURE.md "Backpressure and loss"): its own bounded queue overflows and
// it loses messages or is closed (either is allowed), while a normal subscriber
// gets everything promptly and the sidecar stays healthy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, healthz, uniq, sleep } from './lib/helpers.mjs';

const N = 5000;
const SIZE = 4000; // ~20 MB in all: far beyond socket buffers and any sane per-session cap

test('a paused subscriber does not slow down a normal one', { timeout: 60000 }, async () => {
	const healthBefore = await healthz();
	const topic = `realtime:${uniq('slow')}`;
	const slow = await RawClient.connect({ vsn: '2.0.0' });
	const fast = await RawClient.connect({ vsn: '2.0.0' });
	const sender = await RawClient.connect({ vsn: '2.0.0' });
	try {
		await slow.join(topic);
		await fast.join(topic);
		await sender.join(topic, { joinRef: '1', ref: '1' });
		// Stop reading: the kernel buffers fill, then the server's queue for this socket.
		slow.ws._socket.pause();

		const filler = 'f'.repeat(SIZE);
		let received = 0;
		let outOfOrder = null;
		const allIn = new Promise((resolve) => {
			fast.ws.on('message', (data, isBinary) => {
				if (isBinary) {
					return;
				}
				const m = JSON.parse(data.toString());
				if (m[3] !== 'broadcast') {
					return;
				}
				if (m[4].payload.i !== received && outOfOrder === null) {
					outOfOrder = { expected: received, got: m[4].payload.i };
				}
				if (++received === N) {
					resolve();
				}
			});
		});

		const t0 = performance.now();
		for (let i = 0; i < N; i++) {
			sender.push(topic, 'broadcast', { type: 'broadcast', event: 'load', payload: { i, filler } }, { joinRef: '1' });
			if (i % 500 === 499) {
				// Let the sender's own socket drain so the test measures the server, not ws buffering.
				while (sender.ws.bufferedAmount > 4 * 1024 * 1024) {
					await sleep(5);
				}
			}
		}
		const deadline = sleep(20000).then(() => 'timeout');
		const outcome = await Promise.race([allIn.then(() => 'done'), deadline]);
		const ms = performance.now() - t0;
		assert.equal(outcome, 'done', `the normal subscriber got ${received}/${N} in ${ms.toFixed(0)} ms`);
		assert.equal(outOfOrder, null, `out of order: ${JSON.stringify(outOfOrder)}`);
		assert.ok(ms < 15000, `5,000 messages took ${ms.toFixed(0)} ms`);

		// The normal client still gets heartbeat replies promptly.
		const hb = await fast.heartbeat(2000);
		assert.deepEqual(hb.json[4], { status: 'ok', response: {} });

		// Resume the slow one and give it a moment: it is closed or has lost messages; either is fine.
		slow.ws._socket.resume();
		await Promise.race([slow.closed, sleep(2000)]);
	} finally {
		await Promise.all([slow.terminate(), fast.close(), sender.close()]);
	}

	// The sidecar is as healthy as before and accepts new clients.
	assert.equal(await healthz(), healthBefore, 'healthz changed');
	const probe = await RawClient.connect({ vsn: '2.0.0' });
	try {
		const hb = await probe.heartbeat(2000);
		assert.deepEqual(hb.json[4], { status: 'ok', response: {} });
	} finally {
		await probe.close();
	}
});
