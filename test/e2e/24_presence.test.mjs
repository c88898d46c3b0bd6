// 24 presence: track / untrack, presence_state and presence_diff (PROTOCOL.md 5) with the
// official client and on the wire; clients spread over the shards of a 4-shard sidecar; a
// closed or dropped socket leaves at once; the per-channel window and the meta size limit.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
	createClient,
	closeClients,
	subscribe,
	RawClient,
	Inbox,
	startSidecar,
	uniq,
	sleep,
	within,
} from './lib/helpers.mjs';

let multi; // a sidecar with 4 shards: 12 sockets all on one shard would be a 1-in-4-million draw
before(async () => {
	multi = await startSidecar(['--shards', '4', '--channel-error-backoff-ms', '0']);
});
after(async () => {
	await closeClients();
	await multi?.stop();
});

// A realtime-js channel with presence on; `syncs` records presenceState() after each sync,
// `joins` / `leaves` the keys of each join/leave event.
function presenceChannel(client, name, key = '') {
	const ch = client.channel(name, { config: { presence: { key } } });
	const syncs = new Inbox(`${name} syncs`);
	const joins = new Inbox(`${name} joins`);
	const leaves = new Inbox(`${name} leaves`);
	ch.on('presence', { event: 'sync' }, () => syncs.push(structuredClone(ch.presenceState())));
	ch.on('presence', { event: 'join' }, ({ key: k, newPresences }) => joins.push({ key: k, newPresences }));
	ch.on('presence', { event: 'leave' }, ({ key: k, leftPresences }) => leaves.push({ key: k, leftPresences }));
	return { client, ch, syncs, joins, leaves };
}

// The client's WebSocket: closed cleanly (close frame), or dropped (TCP reset, no close frame).
const phoenixSocket = (client) => client.socketAdapter.getSocket();
const closeSocket = (client) => new Promise((resolve) => phoenixSocket(client).disconnect(resolve));
const dropSocket = (client) => {
	const s = phoenixSocket(client);
	s.reconnectTimer?.reset?.();
	s.conn.terminate();
};

// Keys of a presence state (sorted: diffs of different keys come from different shards in any
// order, and the comparisons are of JSON text) mapped to the sorted user fields of their metas.
function summary(state) {
	const out = {};
	for (const [k, metas] of Object.entries(state).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
		out[k] = metas.map((m) => m.name ?? null).sort();
	}
	return out;
}

// A want map (key -> names) as a presence state, for summary().
const wantState = (want) => Object.fromEntries(Object.entries(want).map(([k, names]) => [k, names.map((name) => ({ name }))]));

test('12 clients on 4 shards see each other: one state, identical everywhere', { timeout: 20000 }, async () => {
	const name = uniq('pres-shards');
	const peers = [];
	for (let i = 0; i < 12; i++) {
		const p = presenceChannel(createClient({ base: multi.base }), name, `user-${i}`);
		await subscribe(p.ch);
		peers.push(p);
	}
	for (let i = 0; i < peers.length; i++) {
		assert.equal(await peers[i].ch.track({ name: `n${i}` }), 'ok');
	}
	const want = {};
	for (let i = 0; i < 12; i++) {
		want[`user-${i}`] = [`n${i}`];
	}
	for (const p of peers) {
		await p.syncs.waitFor((s) => JSON.stringify(summary(s)) === JSON.stringify(summary(wantState(want))), 5000, {
			what: 'the 12 tracked users',
		});
	}
	// one leaves by closing its socket: everyone else sees exactly that key go
	const gone = peers.pop();
	await closeSocket(gone.client);
	delete want['user-11'];
	for (const p of peers) {
		await p.syncs.waitFor((s) => JSON.stringify(summary(s)) === JSON.stringify(summary(wantState(want))), 5000, {
			what: 'user-11 gone',
		});
		const left = await p.leaves.waitFor((l) => l.key === 'user-11', 2000);
		assert.equal(left.leftPresences[0].name, 'n11');
	}
});

test('wire: presence_state after the join reply, diff to every subscriber including self', { timeout: 10000 }, async () => {
	const topic = `realtime:${uniq('pres-wire')}`;
	const a = await RawClient.connect();
	const b = await RawClient.connect();
	const ja = await a.join(topic, { joinRef: '1', ref: '1', config: { presence: { enabled: true, key: 'alice' } } });
	assert.equal(ja.msg.payload.status, 'ok');
	const st = await a.next();
	assert.deepEqual([st.msg.join_ref, st.msg.ref, st.msg.event, st.msg.payload], ['1', null, 'presence_state', {}]);

	const ref = a.push(topic, 'presence', { type: 'presence', event: 'track', payload: { name: 'A', n: 1 } }, { joinRef: '1' });
	const reply = await a.reply(ref);
	assert.deepEqual(reply.msg.payload, { status: 'ok', response: {} });
	const diffA = await a.waitFor((f) => f.msg?.event === 'presence_diff');
	assert.equal(diffA.msg.join_ref, null);
	assert.equal(diffA.msg.ref, null);
	const metas = diffA.msg.payload.joins.alice.metas;
	assert.equal(metas.length, 1);
	assert.equal(typeof metas[0].phx_ref, 'string');
	assert.ok(metas[0].phx_ref.length > 0);
	assert.equal(metas[0].name, 'A');
	assert.equal(metas[0].n, 1);
	assert.deepEqual(diffA.msg.payload.leaves, {});

	// a later joiner gets the state with alice's meta, server-made key for itself
	await b.join(topic, { joinRef: '7', config: { presence: { enabled: true, key: '' } } });
	const stB = await b.waitFor((f) => f.msg?.event === 'presence_state');
	assert.deepEqual(Object.keys(stB.msg.payload), ['alice']);
	assert.equal(stB.msg.payload.alice.metas[0].phx_ref, metas[0].phx_ref);
	const refB = b.push(topic, 'presence', { type: 'presence', event: 'TRACK', payload: {} }, { joinRef: '7' });
	await b.reply(refB);
	const diffB = await a.waitFor((f) => f.msg?.event === 'presence_diff');
	const [keyB] = Object.keys(diffB.msg.payload.joins);
	assert.match(keyB, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

	// same payload again: ok, no diff; a new payload: one diff with the old meta leaving
	const same = a.push(topic, 'presence', { type: 'presence', event: 'track', payload: { name: 'A', n: 1 } }, { joinRef: '1' });
	await a.reply(same);
	const upd = a.push(topic, 'presence', { type: 'presence', event: 'track', payload: { name: 'A2' } }, { joinRef: '1' });
	await a.reply(upd);
	const diffU = await b.waitFor((f) => f.msg?.event === 'presence_diff' && f.msg.payload.joins.alice);
	const newMeta = diffU.msg.payload.joins.alice.metas[0];
	assert.equal(newMeta.name, 'A2');
	assert.equal(newMeta.phx_ref_prev, metas[0].phx_ref);
	assert.notEqual(newMeta.phx_ref, metas[0].phx_ref);
	assert.equal(diffU.msg.payload.leaves.alice.metas[0].phx_ref, metas[0].phx_ref);
	// the unchanged track made no diff: the update is the first diff b saw about alice after joining
	const aliceDiffs = b.frames.items.filter((f) => f.msg?.event === 'presence_diff' && (f.msg.payload.joins.alice || f.msg.payload.leaves.alice));
	assert.equal(aliceDiffs.length, 1);

	// untrack: a leave; untracking again changes nothing but is still ok
	const un = a.push(topic, 'presence', { type: 'presence', event: 'untrack' }, { joinRef: '1' });
	assert.deepEqual((await a.reply(un)).msg.payload, { status: 'ok', response: {} });
	const diffL = await b.waitFor((f) => f.msg?.event === 'presence_diff' && f.msg.payload.leaves.alice);
	assert.equal(diffL.msg.payload.leaves.alice.metas[0].phx_ref, newMeta.phx_ref);
	assert.deepEqual(diffL.msg.payload.joins, {});

	// leaving the channel leaves b's meta too
	const leave = b.push(topic, 'phx_leave', {}, { joinRef: '7' });
	await b.reply(leave);
	const diffLeave = await a.waitFor((f) => f.msg?.event === 'presence_diff' && f.msg.payload.leaves[keyB]);
	assert.equal(diffLeave.msg.payload.leaves[keyB].metas.length, 1);
	await a.close();
	await b.close();
});

test('wire: errors: payload not a map, unknown event, no event', { timeout: 10000 }, async () => {
	const topic = `realtime:${uniq('pres-err')}`;
	const a = await RawClient.connect();
	await a.join(topic, { joinRef: '1' });
	const r1 = a.push(topic, 'presence', { type: 'presence', event: 'track', payload: [1, 2] }, { joinRef: '1' });
	assert.deepEqual((await a.reply(r1)).msg.payload, {
		status: 'error',
		response: { reason: 'Presence track payload must be a map' },
	});
	const r2 = a.push(topic, 'presence', { type: 'presence', event: 'dance' }, { joinRef: '1' });
	assert.deepEqual((await a.reply(r2)).msg.payload, { status: 'error', response: {} });
	const r3 = a.push(topic, 'presence', { type: 'presence' }, { joinRef: '1' });
	assert.deepEqual((await a.reply(r3)).msg.payload, { status: 'ok', response: {} });
	await a.close();
});

test('two channels sharing a key: two metas; one socket drop removes only its own', { timeout: 10000 }, async () => {
	const name = uniq('pres-shared');
	const watcher = presenceChannel(createClient(), name, 'watcher');
	await subscribe(watcher.ch);
	const tab1 = presenceChannel(createClient(), name, 'u1');
	const tab2 = presenceChannel(createClient(), name, 'u1');
	await subscribe(tab1.ch);
	await subscribe(tab2.ch);
	await tab1.ch.track({ name: 'tab1' });
	await tab2.ch.track({ name: 'tab2' });
	const two = await watcher.syncs.waitFor((s) => s.u1?.length === 2, 3000, { what: 'two metas under u1' });
	// a dropped TCP connection (no close frame) is noticed by the server at once
	dropSocket(tab2.client);
	// after the two-meta state: an earlier sync may hold tab2 alone (the tracks come from
	// different shards in any order)
	const from = watcher.syncs.items.indexOf(two) + 1;
	const s = await watcher.syncs.waitFor((st) => st.u1?.length === 1, 3000, { from, what: 'one meta left under u1' });
	assert.equal(s.u1[0].name, 'tab1');
});

test('no spurious leave/join for a client whose meta did not change', { timeout: 10000 }, async () => {
	const name = uniq('pres-quiet');
	const watcher = presenceChannel(createClient(), name, 'w');
	await subscribe(watcher.ch);
	const u = presenceChannel(createClient(), name, 'quiet');
	await subscribe(u.ch);
	await u.ch.track({ name: 'same' });
	await watcher.joins.waitFor((j) => j.key === 'quiet', 3000);
	await u.ch.track({ name: 'same' });
	await u.ch.track({ name: 'same' });
	await sleep(300);
	assert.equal(watcher.joins.items.filter((j) => j.key === 'quiet').length, 1);
	assert.equal(watcher.leaves.items.filter((l) => l.key === 'quiet').length, 0);
});

test('limits: 6th presence push in the window ends the channel; an oversized meta too', { timeout: 15000 }, async () => {
	const small = await startSidecar(['--max-payload-kb', '1', '--channel-error-backoff-ms', '0']);
	try {
		const topic = `realtime:${uniq('pres-limit')}`;
		const a = await RawClient.connect({ base: small.base });
		await a.join(topic, { joinRef: '1' });
		for (let i = 0; i < 5; i++) {
			const r = a.push(topic, 'presence', { type: 'presence', event: 'track', payload: { i } }, { joinRef: '1' });
			assert.equal((await a.reply(r)).msg.payload.status, 'ok');
		}
		a.push(topic, 'presence', { type: 'presence', event: 'track', payload: { i: 6 } }, { joinRef: '1' });
		const sys = await a.waitFor((f) => f.msg?.event === 'system');
		assert.deepEqual(sys.msg.payload, {
			extension: 'system',
			status: 'error',
			message: 'Client presence rate limit exceeded',
			channel: topic.slice('realtime:'.length),
		});
		const close = await a.next();
		assert.equal(close.msg.event, 'phx_close');

		const topic2 = `realtime:${uniq('pres-size')}`;
		await a.join(topic2, { joinRef: '2' });
		a.push(topic2, 'presence', { type: 'presence', event: 'track', payload: { blob: 'x'.repeat(2000) } }, { joinRef: '2' });
		const sys2 = await a.waitFor((f) => f.msg?.event === 'system' && f.msg.topic === topic2);
		assert.equal(sys2.msg.payload.message, 'Track message size exceeded');
		// the socket and its other work go on
		assert.equal((await a.heartbeat()).msg.payload.status, 'ok');
		await a.close();
	} finally {
		await small.stop();
	}
});

test('a channel that never tracked sees others but adds nothing; a closed socket leaves at once', { timeout: 10000 }, async () => {
	const name = uniq('pres-passive');
	const tracker = presenceChannel(createClient(), name, 't');
	await subscribe(tracker.ch);
	await tracker.ch.track({ name: 'T' });
	const passive = presenceChannel(createClient(), name, 'p');
	await subscribe(passive.ch);
	const s = await passive.syncs.waitFor((st) => st.t?.length === 1, 3000);
	assert.deepEqual(Object.keys(s), ['t']);
	const t0 = Date.now();
	await closeSocket(tracker.client);
	await passive.leaves.waitFor((l) => l.key === 't', 3000);
	assert.ok(Date.now() - t0 < 1000, 'leave delivered within a second');
	assert.equal(await within(passive.joins.waitFor((j) => j.key === 'p', 300).then(() => true, () => false), 500, false), false);
});

test('tenant presence rate: over the 60 s average the tracking channel ends', { timeout: 15000 }, async () => {
	// limit 1/s over a 60 s window: after 61 tracks the average (61/60) is over it, and the
	// next track is refused (upstream compares average > limit before counting)
	const limited = await startSidecar(['--max-presence-events-per-second', '1', '--channel-error-backoff-ms', '0']);
	try {
		const a = await RawClient.connect({ base: limited.base });
		const base = uniq('pres-rate');
		for (let i = 0; i < 61; i++) {
			const topic = `realtime:${base}-${i}`;
			await a.join(topic, { joinRef: String(i + 1) });
			const r = a.push(topic, 'presence', { type: 'presence', event: 'track', payload: {} }, { joinRef: String(i + 1) });
			assert.equal((await a.reply(r)).msg.payload.status, 'ok', `track ${i}`);
		}
		const topic = `realtime:${base}-last`;
		await a.join(topic, { joinRef: '99' });
		a.push(topic, 'presence', { type: 'presence', event: 'track', payload: {} }, { joinRef: '99' });
		const sys = await a.waitFor((f) => f.msg?.event === 'system' && f.msg.topic === topic);
		assert.equal(sys.msg.payload.message, 'Too many presence messages per second');
		assert.equal((await a.next()).msg.event, 'phx_close');
		await a.close();
	} finally {
		await limited.stop();
	}
});
