// 12 Phoenix rules (PROTOCOL.md 2.5, 3.1, 3.5, 11): unmatched topics, leave
// then close, duplicate joins, stale join_refs, access_token without reply,
// unknown events dropped (told when they have a ref), and the empty topic name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, jwt, uniq } from './lib/helpers.mjs';

const OK_JOIN = { status: 'ok', response: { postgres_changes: [] } };
const OK = { status: 'ok', response: {} };
const UNMATCHED = { status: 'error', response: { reason: 'unmatched topic' } };
const bcast = (event, payload = {}) => ({ type: 'broadcast', event, payload });

// Run fn with fresh raw v2 sockets, closed afterwards.
async function withRaw(n, fn) {
	const socks = [];
	try {
		for (let i = 0; i < n; i++) {
			socks.push(await RawClient.connect({ vsn: '2.0.0' }));
		}
		return await fn(...socks);
	} finally {
		await Promise.all(socks.map((s) => s.close()));
	}
}

// Everything the socket receives up to (excluding) a heartbeat reply sent now.
async function framesUntilHeartbeat(sock) {
	const from = sock.frames.items.length;
	const hb = await sock.heartbeat(2000);
	return sock.frames.items.slice(from).filter((f) => f !== hb);
}

test('a push to a topic that is not joined gets "unmatched topic" with join_ref null', { timeout: 5000 }, () =>
	withRaw(1, async (s) => {
		const topic = `realtime:${uniq()}`;
		s.push(topic, 'broadcast', bcast('x'), { joinRef: '4', ref: '5' });
		const r = await s.reply('5');
		assert.deepEqual(r.json, [null, '5', topic, 'phx_reply', UNMATCHED]);
		s.push(topic, 'presence', { type: 'presence', event: 'track', payload: {} }, { ref: '6' });
		assert.deepEqual((await s.reply('6')).json, [null, '6', topic, 'phx_reply', UNMATCHED]);
	}));

test('phx_join for a topic without the realtime: prefix gets "unmatched topic"', { timeout: 5000 }, () =>
	withRaw(1, async (s) => {
		for (const topic of ['room1', 'phoenix', 'Realtime:room1']) {
			const ref = s.nextRef();
			s.push(topic, 'phx_join', { config: {}, access_token: jwt.anon() }, { joinRef: ref, ref });
			const r = await s.reply(ref);
			assert.deepEqual(r.json, [null, ref, topic, 'phx_reply', UNMATCHED], `topic ${topic}`);
		}
	}));

test('join for "realtime:" -> TopicNameRequired', { timeout: 12000 }, () =>
	withRaw(1, async (s) => {
		// Join failures may be delayed by CHANNEL_ERROR_BACKOFF_MS (5 s upstream).
		const r = await s.join('realtime:', { joinRef: '1', ref: '1', ms: 9000 });
		assert.deepEqual(r.json, ['1', '1', 'realtime:', 'phx_reply', { status: 'error', response: { reason: 'TopicNameRequired: You must provide a topic name' } }]);
	}));

test('phx_leave: ok reply, then phx_close with the join_ref; the topic is no longer joined', { timeout: 5000 }, () =>
	withRaw(2, async (s, other) => {
		const topic = `realtime:${uniq()}`;
		assert.deepEqual((await s.join(topic, { joinRef: '1', ref: '1' })).json[4], OK_JOIN);
		await other.join(topic, { joinRef: '1', ref: '1' });

		s.push(topic, 'phx_leave', {}, { joinRef: '1', ref: '2' });
		const reply = await s.next();
		assert.deepEqual(reply.json, ['1', '2', topic, 'phx_reply', OK]);
		const close = await s.next();
		assert.deepEqual(close.json, ['1', '1', topic, 'phx_close', {}]);

		// Left: pushes are unmatched and broadcasts from others no longer arrive.
		s.push(topic, 'broadcast', bcast('after-leave'), { joinRef: '1', ref: '3' });
		assert.deepEqual((await s.reply('3')).json, [null, '3', topic, 'phx_reply', UNMATCHED]);
		other.push(topic, 'broadcast', bcast('to-left'), { joinRef: '1', ref: '9' });
		await other.heartbeat();
		assert.deepEqual(await framesUntilHeartbeat(s), []);
	}));

test('phx_leave for a topic that is not joined: ok reply only, no phx_close', { timeout: 5000 }, () =>
	withRaw(1, async (s) => {
		const topic = `realtime:${uniq()}`;
		s.push(topic, 'phx_leave', {}, { joinRef: '3', ref: '4' });
		const r = await s.reply('4');
		assert.equal(r.msg.ref, '4');
		assert.equal(r.msg.topic, topic);
		assert.deepEqual(r.msg.payload, OK);
		assert.deepEqual(await framesUntilHeartbeat(s), []);
	}));

test('duplicate join: phx_close with the old join_ref, then the new join reply; one delivery per message', { timeout: 5000 }, () =>
	withRaw(2, async (s, sender) => {
		const topic = `realtime:${uniq()}`;
		await s.join(topic, { joinRef: '1', ref: '1' });
		await sender.join(topic, { joinRef: '1', ref: '1' });

		s.push(topic, 'phx_join', { config: { broadcast: { self: false, ack: true } }, access_token: jwt.anon() }, { joinRef: '5', ref: '5' });
		const close = await s.next();
		assert.deepEqual(close.json, ['1', '1', topic, 'phx_close', {}]);
		const reply = await s.next();
		assert.deepEqual(reply.json, ['5', '5', topic, 'phx_reply', OK_JOIN]);

		sender.push(topic, 'broadcast', bcast('once', { n: 1 }), { joinRef: '1' });
		const got = await s.waitFor((f) => f.msg?.event === 'broadcast', 2000);
		assert.deepEqual(got.json, [null, null, topic, 'broadcast', bcast('once', { n: 1 })]);
		assert.deepEqual(await framesUntilHeartbeat(s), [], 'a second copy means the old channel still lives');

		// The new join's config is in force: ack true.
		s.push(topic, 'broadcast', bcast('acked'), { joinRef: '5', ref: '6' });
		assert.deepEqual((await s.reply('6')).json, ['5', '6', topic, 'phx_reply', OK]);
	}));

test('a push with a stale join_ref is dropped silently; one without join_ref is accepted', { timeout: 5000 }, () =>
	withRaw(2, async (s, watcher) => {
		const topic = `realtime:${uniq()}`;
		await s.join(topic, { joinRef: '1', ref: '1', config: { broadcast: { self: false, ack: true } } });
		await watcher.join(topic, { joinRef: '1', ref: '1' });

		s.push(topic, 'broadcast', bcast('stale'), { joinRef: '99', ref: '2' });
		s.push(topic, 'broadcast', bcast('no-join-ref'), { joinRef: null, ref: '3' });
		const r = await s.reply('3');
		assert.deepEqual(r.json, ['1', '3', topic, 'phx_reply', OK]);
		assert.ok(!s.frames.items.some((f) => f.msg?.ref === '2'), 'no reply to the stale push');

		const got = await watcher.waitFor((f) => f.msg?.event === 'broadcast', 2000);
		assert.equal(got.msg.payload.event, 'no-join-ref');
		assert.deepEqual(await framesUntilHeartbeat(watcher), []);
	}));

test('access_token on a joined topic: no reply, the channel keeps working', { timeout: 5000 }, () =>
	withRaw(2, async (s, sender) => {
		const topic = `realtime:${uniq()}`;
		await s.join(topic, { joinRef: '1', ref: '1' });
		await sender.join(topic, { joinRef: '1', ref: '1' });

		s.push(topic, 'access_token', { access_token: jwt.authenticated() }, { joinRef: '1', ref: '2' });
		s.push(topic, 'access_token', { access_token: 'sb_publishable_ignored' }, { joinRef: '1', ref: '3' });
		s.push(topic, 'access_token', { access_token: null }, { joinRef: '1', ref: '4' });
		assert.deepEqual(await framesUntilHeartbeat(s), []);

		sender.push(topic, 'broadcast', bcast('still-here'), { joinRef: '1' });
		const got = await s.waitFor((f) => f.msg?.event === 'broadcast', 2000);
		assert.equal(got.msg.payload.event, 'still-here');
	}));

test('unknown channel events are dropped, answered with an error naming the event when they have a ref', { timeout: 5000 }, () =>
	withRaw(1, async (s) => {
		const topic = `realtime:${uniq()}`;
		await s.join(topic, { joinRef: '1', ref: '1' });
		const from = s.frames.items.length;
		s.push(topic, 'no_such_event', { a: 1 }, { joinRef: '1', ref: '2' });
		s.push(topic, 'phx_reply', {}, { joinRef: '1', ref: '3' });
		s.sendText(JSON.stringify(['1', null, topic, 'no_ref_event', {}]));
		const unknown = (event) => ({ status: 'error', response: { reason: `unknown event: ${event}` } });
		const hb = await s.heartbeat(2000);
		const frames = s.frames.items.slice(from).filter((f) => f !== hb);
		assert.deepEqual(frames.map((f) => f.json), [
			['1', '2', topic, 'phx_reply', unknown('no_such_event')],
			['1', '3', topic, 'phx_reply', unknown('phx_reply')],
		]);
		s.push(topic, 'phx_leave', {}, { joinRef: '1', ref: '4' });
		assert.deepEqual((await s.reply('4')).json, ['1', '4', topic, 'phx_reply', OK], 'the channel is still joined');
	}));

test('several channels on one socket, each with its own join_ref', { timeout: 5000 }, () =>
	withRaw(2, async (s, sender) => {
		const [t1, t2] = [`realtime:${uniq()}`, `realtime:${uniq()}`];
		assert.deepEqual((await s.join(t1, { joinRef: '1', ref: '1' })).json, ['1', '1', t1, 'phx_reply', OK_JOIN]);
		assert.deepEqual((await s.join(t2, { joinRef: '2', ref: '2' })).json, ['2', '2', t2, 'phx_reply', OK_JOIN]);
		await sender.join(t1, { joinRef: '1', ref: '1' });
		await sender.join(t2, { joinRef: '2', ref: '2' });
		sender.push(t2, 'broadcast', bcast('two'), { joinRef: '2' });
		const f = await s.waitFor((x) => x.msg?.event === 'broadcast', 2000);
		assert.equal(f.msg.topic, t2);
		s.push(t1, 'phx_leave', {}, { joinRef: '1', ref: '3' });
		await s.reply('3');
		const close = await s.waitFor((x) => x.msg?.event === 'phx_close', 2000);
		assert.deepEqual(close.json, ['1', '1', t1, 'phx_close', {}]);
		sender.push(t2, 'broadcast', bcast('two-again'), { joinRef: '2' });
		const g = await s.waitFor((x) => x.msg?.event === 'broadcast', 2000);
		assert.equal(g.msg.payload.event, 'two-again');
	}));
