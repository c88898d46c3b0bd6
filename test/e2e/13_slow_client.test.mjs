// 13 slow client: a subscriber that stops reading never stalls the others
// (ARCHITECTURE.md "Backpressure and loss"): its own bounded queue overflows and
// it loses messages or is closed (either is allowed), while a normal subscriber
// gets everything promptly and the sidecar stays healthy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, healthz, uniq, sleep, within } from './lib/helpers.mjs';

const N = 5000;
const SIZE = 6000; // ~30 MB in all: beyond the paused socket's kernel buffers plus its send queue
// The sender stays at most WINDOW messages (~3 MB) ahead of the normal subscriber, so a
// normal reader never needs more than that queued for it; the paused one needs all of it.
const WINDOW = 500;

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
					resolve(); // fail now rather than at the deadline
				}
				if (++received === N) {
					resolve();
				}
			});
		});

		const t0 = performance.now();
		const sending = (async () => {
			for (let i = 0; i < N; i++) {
				sender.push(topic, 'broadcast', { type: 'broadcast', event: 'load', payload: { i, filler } }, { joinRef: '1' });
				while (i - received >= WINDOW && outOfOrder === null && performance.now() - t0 < 20000) {
					await sleep(2);
				}
			}
		})();
		const outcome = await within(allIn.then(() => 'done'), 20000, 'timeout');
		const ms = performance.now() - t0;
		await sending;
		assert.equal(outOfOrder, null, `lost or out of order: ${JSON.stringify(outOfOrder)}`);
		assert.equal(outcome, 'done', `the normal subscriber got ${received}/${N} in ${ms.toFixed(0)} ms`);
		assert.ok(ms < 15000, `5,000 messages took ${ms.toFixed(0)} ms`);

		// The normal client still gets heartbeat replies promptly.
		const hb = await fast.heartbeat(2000);
		assert.deepEqual(hb.json[4], { status: 'ok', response: {} });

		// Resume the slow one and give it a moment: it is closed or has lost messages; either is fine.
		slow.ws._socket.resume();
		await within(slow.closed, 2000);
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
