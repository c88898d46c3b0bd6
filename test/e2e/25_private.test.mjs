// 25 private channels: authorization by RLS on realtime.messages (PROTOCOL.md 8) with
// policies that use realtime.topic() and auth.uid(); private broadcast, presence, database
// messages (realtime.send, broadcast_changes) and REST; the token lifecycle (3.6).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
	createClient,
	closeClients,
	subscribe,
	subscribeResult,
	collectBroadcasts,
	RawClient,
	post,
	authHeaders,
	jwt,
	uniq,
	sleep,
} from './lib/helpers.mjs';
import { randomUUID } from './lib/pgchanges.mjs';
import { openPolicies } from './lib/policies.mjs';
import { decodeUserBroadcast } from './lib/v2binary.mjs';

const A = randomUUID();
const B = randomUUID();
const P = uniq('pv'); // every topic and policy of this file starts with it
const tokA = () => jwt.authenticated(A);
const tokB = () => jwt.authenticated(B);
const own = (uid) => `${P}:${uid}`;
const ROOM = `${P}-room`; // everyone reads; only A writes broadcast and presence
const PRES = `${P}-pres`; // presence read only
const BOOM = `${P}-boom`; // the read policy raises
const HDR = `${P}-hdr`; // readable with header x-room-key: open-sesame
const unauthorized = (t) => `Unauthorized: You do not have permissions to read from this Channel topic: ${t}`;

let db;
let pol;
const policy = (name, sql) => pol.policy(name, sql);

before(async () => {
	pol = await openPolicies(P);
	db = pol.db;
	await policy('read own', `FOR SELECT TO authenticated USING (realtime.topic() = '${P}:' || auth.uid()::text)`);
	await policy('write own', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() = '${P}:' || auth.uid()::text)`);
	await policy('room read', `FOR SELECT TO authenticated USING (realtime.topic() = '${ROOM}')`);
	await policy('room write', `FOR INSERT TO authenticated WITH CHECK (topic = '${ROOM}' AND auth.uid() = '${A}')`);
	await policy('pres read', `FOR SELECT TO authenticated USING (realtime.topic() = '${PRES}' AND extension = 'presence')`);
	await policy('boom', `FOR SELECT TO authenticated USING (CASE WHEN realtime.topic() = '${BOOM}' THEN 1 / (length(topic) - length(topic)) = 1 ELSE false END)`);
	await policy('hdr', `FOR SELECT TO authenticated USING (realtime.topic() = '${HDR}' AND current_setting('request.headers', true)::jsonb ->> 'x-room-key' = 'open-sesame')`);
});

after(async () => {
	await closeClients();
	await pol?.close();
});

const priv = (client, name, config = {}) => client.channel(name, { config: { private: true, ...config } });

test('own topic joins; another user\'s topic and anon are refused with the exact reason', { timeout: 10000 }, async () => {
	await subscribe(priv(createClient({ token: tokA() }), own(A)));
	const other = await subscribeResult(priv(createClient({ token: tokA(), timeout: 4000 }), own(B)), 5000);
	assert.equal(other.status, 'CHANNEL_ERROR');
	assert.equal(other.err?.message, unauthorized(own(B)));
	const anon = await subscribeResult(priv(createClient({ token: jwt.anon(), timeout: 4000 }), own(A)), 5000);
	assert.equal(anon.status, 'CHANNEL_ERROR');
	assert.equal(anon.err?.message, unauthorized(own(A)));
	const svc = await subscribeResult(priv(createClient({ token: jwt.serviceRole() }), own(B)), 5000);
	assert.equal(svc.status, 'SUBSCRIBED', 'service_role bypasses RLS');
});

test('private broadcast reaches the authorized subscriber; the public room of that name sees nothing', { timeout: 10000 }, async () => {
	const sender = priv(createClient({ token: tokA() }), own(A));
	const receiver = priv(createClient({ token: tokA() }), own(A));
	const pub = createClient({ token: tokA() }).channel(own(A));
	const got = collectBroadcasts(receiver);
	const leaked = collectBroadcasts(pub);
	for (const c of [sender, receiver, pub]) {
		await subscribe(c);
	}
	for (let i = 0; i < 3; i++) {
		assert.equal(await sender.send({ type: 'broadcast', event: 'secret', payload: { i } }), 'ok');
	}
	await got.waitFor((m) => m.payload.i === 2, 3000);
	assert.deepEqual(got.items.map((m) => m.payload.i), [0, 1, 2]);
	// and the public room's own traffic does not reach the private one
	await pub.send({ type: 'broadcast', event: 'public', payload: {} });
	await sleep(200);
	assert.equal(leaked.items.length, 0);
	assert.equal(got.items.filter((m) => m.event === 'public').length, 0);
});

test('database messages: private send and broadcast_changes reach only authorized private subscribers', { timeout: 15000 }, async () => {
	const schema = `${P.replace(/-/g, '_')}_s`;
	await db.query(`CREATE SCHEMA ${schema}`);
	try {
		await db.query(`CREATE TABLE ${schema}.notes (id bigserial PRIMARY KEY, owner uuid NOT NULL, body text)`);
		await db.query(`CREATE FUNCTION ${schema}.notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
			BEGIN
				PERFORM realtime.broadcast_changes('${P}:' || coalesce(NEW.owner, OLD.owner)::text, TG_OP, TG_OP,
					TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
				RETURN NULL;
			END $$`);
		await db.query(`CREATE TRIGGER notes_notify AFTER INSERT OR UPDATE OR DELETE ON ${schema}.notes
			FOR EACH ROW EXECUTE FUNCTION ${schema}.notify()`);

		const chA = priv(createClient({ token: tokA() }), own(A));
		const chB = priv(createClient({ token: tokB() }), own(B));
		const pubA = createClient({ token: tokA() }).channel(own(A));
		const inA = collectBroadcasts(chA);
		const inB = collectBroadcasts(chB);
		const inPub = collectBroadcasts(pubA);
		for (const c of [chA, chB, pubA]) {
			await subscribe(c);
		}
		await db.query(`INSERT INTO ${schema}.notes (owner, body) VALUES ($1, 'for A')`, [A]);
		const ins = await inA.waitFor((m) => m.event === 'INSERT', 5000);
		assert.equal(ins.payload.operation, 'INSERT');
		assert.equal(ins.payload.table, 'notes');
		assert.equal(ins.payload.schema, schema);
		assert.equal(ins.payload.record.body, 'for A');
		assert.equal(ins.payload.old_record, null);
		await db.query(`DELETE FROM ${schema}.notes WHERE owner = $1`, [A]);
		const del = await inA.waitFor((m) => m.event === 'DELETE', 5000);
		assert.equal(del.payload.record, null);
		assert.equal(del.payload.old_record.body, 'for A');

		await db.query(`SELECT realtime.send('{"n":1}'::jsonb, 'sql-private', $1, true)`, [own(A)]);
		await db.query(`SELECT realtime.send('{"n":2}'::jsonb, 'sql-public', $1, false)`, [own(A)]);
		await inA.waitFor((m) => m.event === 'sql-private', 5000);
		await inPub.waitFor((m) => m.event === 'sql-public', 5000);
		await sleep(200);
		assert.deepEqual(inA.items.map((m) => m.event), ['INSERT', 'DELETE', 'sql-private']);
		assert.deepEqual(inPub.items.map((m) => m.event), ['sql-public']);
		assert.equal(inB.items.length, 0);
	} finally {
		await db.query(`DROP SCHEMA ${schema} CASCADE`);
	}
});

test('REST: private items need the caller\'s write right; denied topics are skipped, single is 403', { timeout: 10000 }, async () => {
	const chA = priv(createClient({ token: tokA() }), own(A));
	const chB = priv(createClient({ token: tokB() }), own(B));
	const pub = createClient().channel(own(B));
	const inA = collectBroadcasts(chA);
	const inB = collectBroadcasts(chB);
	const inPub = collectBroadcasts(pub);
	for (const c of [chA, chB, pub]) {
		await subscribe(c);
	}
	const r = await post('/realtime/v1/api/broadcast', {
		messages: [
			{ topic: own(A), event: 'rest-own', payload: { k: 1 }, private: true },
			{ topic: own(B), event: 'rest-other', payload: { k: 2 }, private: true },
			{ topic: own(B), event: 'rest-public', payload: { k: 3 } },
		],
	}, { headers: authHeaders(tokA()) });
	assert.equal(r.status, 202);
	await inA.waitFor((m) => m.event === 'rest-own', 3000);
	await inPub.waitFor((m) => m.event === 'rest-public', 3000);

	const denied = await post(`/api/broadcast/${encodeURIComponent(own(B))}/events/single?private=true`, { x: 1 }, { headers: authHeaders(tokA()) });
	assert.equal(denied.status, 403);
	assert.deepEqual(denied.json, { message: 'Unauthorized' });
	const ok = await post(`/api/broadcast/${encodeURIComponent(own(A))}/events/single?private=true`, { x: 2 }, { headers: authHeaders(tokA()) });
	assert.equal(ok.status, 202);
	await inA.waitFor((m) => m.event === 'single', 3000);
	await sleep(200);
	assert.equal(inB.items.length, 0, 'B\'s private channel got nothing from A');
});

test('shared room: the reader\'s sends and tracks are refused; the writer\'s arrive', { timeout: 10000 }, async () => {
	const w = await RawClient.connect({ token: tokA() });
	const r = await RawClient.connect({ token: tokB() });
	const topic = `realtime:${ROOM}`;
	const cfg = { private: true, broadcast: { self: false, ack: true }, presence: { enabled: true, key: '' } };
	assert.equal((await w.join(topic, { joinRef: '1', config: { ...cfg, presence: { enabled: true, key: 'writer' } } })).msg.payload.status, 'ok');
	assert.equal((await r.join(topic, { joinRef: '1', config: { ...cfg, presence: { enabled: true, key: 'reader' } } })).msg.payload.status, 'ok');
	await w.waitFor((f) => f.msg?.event === 'presence_state');
	await r.waitFor((f) => f.msg?.event === 'presence_state');

	// the reader's broadcast: dropped without a reply even though ack is on
	const denied = r.push(topic, 'broadcast', { type: 'broadcast', event: 'from-reader', payload: {} }, { joinRef: '1' });
	const ok = w.push(topic, 'broadcast', { type: 'broadcast', event: 'from-writer', payload: {} }, { joinRef: '1' });
	assert.deepEqual((await w.reply(ok)).msg.payload, { status: 'ok', response: {} });
	await r.waitFor((f) => f.msg?.event === 'broadcast' && f.msg.payload.event === 'from-writer');
	await assert.rejects(r.reply(denied, 500));
	assert.equal(w.frames.items.filter((f) => f.msg?.payload?.event === 'from-reader').length, 0);

	// presence: the writer's track is seen by both; the reader's is an error and no diff
	const tw = w.push(topic, 'presence', { type: 'presence', event: 'track', payload: { who: 'w' } }, { joinRef: '1' });
	assert.equal((await w.reply(tw)).msg.payload.status, 'ok');
	await r.waitFor((f) => f.msg?.event === 'presence_diff' && f.msg.payload.joins.writer);
	const tr = r.push(topic, 'presence', { type: 'presence', event: 'track', payload: { who: 'r' } }, { joinRef: '1' });
	assert.deepEqual((await r.reply(tr)).msg.payload, { status: 'error', response: {} });
	await sleep(200);
	assert.equal(w.frames.items.filter((f) => f.msg?.event === 'presence_diff' && f.msg.payload.joins.reader).length, 0);
	await w.close();
	await r.close();
});

test('presence-only read: joins, gets presence, never broadcasts', { timeout: 10000 }, async () => {
	const p = await RawClient.connect({ token: tokB() });
	const topic = `realtime:${PRES}`;
	const j = await p.join(topic, { joinRef: '1', config: { private: true, presence: { enabled: true, key: 'p' } } });
	assert.equal(j.msg.payload.status, 'ok');
	await p.waitFor((f) => f.msg?.event === 'presence_state');
	const svc = await RawClient.connect({ token: jwt.serviceRole() });
	await svc.join(topic, { joinRef: '1', config: { private: true, presence: { enabled: true, key: 'svc' } } });
	svc.push(topic, 'broadcast', { type: 'broadcast', event: 'hidden', payload: {} }, { joinRef: '1' });
	const t = svc.push(topic, 'presence', { type: 'presence', event: 'track', payload: {} }, { joinRef: '1' });
	await svc.reply(t);
	await p.waitFor((f) => f.msg?.event === 'presence_diff' && f.msg.payload.joins.svc);
	await sleep(200);
	assert.equal(p.frames.items.filter((f) => f.msg?.event === 'broadcast').length, 0);
	// without presence enabled at join there is no read right at all: refused
	const q = await RawClient.connect({ token: tokB() });
	const jq = await q.join(`realtime:${PRES}`, { joinRef: '2', config: { private: true } });
	assert.equal(jq.msg.payload.response.reason, unauthorized(PRES));
	for (const c of [p, svc, q]) {
		await c.close();
	}
});

test('a read policy that raises refuses the join; request.headers reach the policy', { timeout: 10000 }, async () => {
	const c = await RawClient.connect({ token: tokA() });
	const boom = await c.join(`realtime:${BOOM}`, { config: { private: true } });
	assert.equal(boom.msg.payload.response.reason, unauthorized(BOOM));
	const noHeader = await c.join(`realtime:${HDR}`, { config: { private: true } });
	assert.equal(noHeader.msg.payload.response.reason, unauthorized(HDR));
	const h = await RawClient.connect({ token: tokA(), headers: { 'X-Room-Key': 'open-sesame' } });
	assert.equal((await h.join(`realtime:${HDR}`, { config: { private: true } })).msg.payload.status, 'ok');
	await c.close();
	await h.close();
});

test('token refresh: same user keeps the channel; another user\'s token ends it', { timeout: 10000 }, async () => {
	const c = await RawClient.connect({ token: tokA() });
	const topic = `realtime:${own(A)}`;
	assert.equal((await c.join(topic, { joinRef: '1', config: { private: true } })).msg.payload.status, 'ok');
	c.push(topic, 'access_token', { access_token: tokA() + '' }, { joinRef: '1' }); // same text: ignored
	await sleep(1100); // a token minted a second later differs
	c.push(topic, 'access_token', { access_token: tokA() }, { joinRef: '1' });
	await sleep(300);
	assert.equal(c.frames.items.filter((f) => f.msg?.event === 'system' || f.msg?.event === 'phx_close').length, 0);
	await db.query(`SELECT realtime.send('{}'::jsonb, 'still-here', $1, true)`, [own(A)]);
	await c.waitFor((f) => f.binary && decodeUserBroadcast(f.data)?.event === 'still-here', 3000);

	c.push(topic, 'access_token', { access_token: tokB() }, { joinRef: '1' });
	const sys = await c.waitFor((f) => f.msg?.event === 'system', 3000);
	assert.deepEqual(sys.msg.payload, {
		extension: 'system',
		status: 'error',
		message: `You no longer have permission to read from this Channel topic: ${own(A)}`,
		channel: own(A),
	});
	assert.equal((await c.next()).msg.event, 'phx_close');
	await c.close();
});

test('expiry: the channel ends with the upstream message when the token expires', { timeout: 10000 }, async () => {
	const now = Math.floor(Date.now() / 1000);
	const short = jwt.sign({ role: 'authenticated', sub: A, iat: now, exp: now + 2 });
	const c = await RawClient.connect({ token: tokA() });
	const topic = `realtime:${own(A)}`;
	assert.equal((await c.join(topic, { joinRef: '1', accessToken: short, config: { private: true } })).msg.payload.status, 'ok');
	const sys = await c.waitFor((f) => f.msg?.event === 'system', 5000);
	assert.match(sys.msg.payload.message, /^Token has expired \d+ seconds ago$/);
	assert.equal(sys.msg.payload.extension, 'system');
	assert.equal((await c.next()).msg.event, 'phx_close');
	await c.close();
});

test('concurrent private joins on one socket are checked together and keep their order', { timeout: 10000 }, async () => {
	const c = await RawClient.connect({ token: tokA() });
	const topics = [own(A), own(B), ROOM, BOOM, PRES];
	const refs = topics.map((t, i) => c.push(`realtime:${t}`, 'phx_join', { config: { private: true }, access_token: tokA() }, { joinRef: String(i + 1), ref: String(i + 1) }));
	const replies = await Promise.all(refs.map((r) => c.reply(r, 5000)));
	assert.deepEqual(replies.map((f) => f.msg.payload.status), ['ok', 'error', 'ok', 'error', 'error']);
	// a broadcast right after the join (no wait for the reply) is handled after it: delivered
	const peer = await RawClient.connect({ token: tokA() });
	const topic = `realtime:${own(A)}`;
	peer.push(topic, 'phx_join', { config: { private: true, broadcast: { self: true } }, access_token: tokA() }, { joinRef: '9', ref: '9' });
	peer.push(topic, 'broadcast', { type: 'broadcast', event: 'right-after', payload: {} }, { joinRef: '9' });
	await peer.waitFor((f) => f.msg?.event === 'broadcast' && f.msg.payload.event === 'right-after', 3000);
	await c.close();
	await peer.close();
});
