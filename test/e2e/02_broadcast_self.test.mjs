// 02 broadcast self: with config.broadcast.self true the sender gets its own
// message back; with false it does not, while another client does (PROTOCOL.md 4.2, 4.4).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, collectBroadcasts, uniq, sleep } from './lib/helpers.mjs';

after(closeClients);

test('self: true delivers the message to the sender and to others', { timeout: 10000 }, async () => {
	const name = uniq();
	const a = createClient().channel(name, { config: { broadcast: { self: true } } });
	const b = createClient().channel(name);
	const aIn = collectBroadcasts(a);
	const bIn = collectBroadcasts(b);
	await subscribe(a);
	await subscribe(b);

	const status = await a.send({ type: 'broadcast', event: 'hello', payload: { n: 1, s: 'ünïcode ✓' } });
	assert.equal(status, 'ok');

	const mine = await aIn.waitCount(1, 2000);
	assert.equal(mine.event, 'hello');
	assert.deepEqual(mine.payload, { n: 1, s: 'ünïcode ✓' });
	const theirs = await bIn.waitCount(1, 2000);
	assert.deepEqual(theirs.payload, { n: 1, s: 'ünïcode ✓' });
});

test('self: false: the sender does not get its message, another client does', { timeout: 10000 }, async () => {
	const name = uniq();
	const a = createClient().channel(name, { config: { broadcast: { self: false } } });
	const b = createClient().channel(name, { config: { broadcast: { self: false } } });
	const aIn = collectBroadcasts(a);
	const bIn = collectBroadcasts(b);
	await subscribe(a);
	await subscribe(b);

	await a.send({ type: 'broadcast', event: 'from-a', payload: { n: 1 } });
	// B has it, so the server has fanned it out (A's own copy, if any, was queued first).
	const got = await bIn.waitFor((m) => m.event === 'from-a', 2000);
	assert.deepEqual(got.payload, { n: 1 });

	// A later marker from B reaches A; anything A got before it must not be A's own message.
	await b.send({ type: 'broadcast', event: 'marker', payload: { n: 2 } });
	await aIn.waitFor((m) => m.event === 'marker', 2000);
	await sleep(100);
	assert.deepEqual(
		aIn.items.map((m) => m.event),
		['marker'],
		'sender with self:false must receive only the marker'
	);
	assert.deepEqual(
		bIn.items.map((m) => m.event),
		['from-a'],
		'B (self:false) must not get its own marker'
	);
});
