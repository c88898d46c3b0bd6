// 41 persisted broadcasts when the database goes away, and their TTL (issue 15): on a throwaway
// cluster (lib/cluster.mjs) with its own sidecar. After a restart the store and the
// authorizer find their connections dead and connect again at once. While PostgreSQL is down, a persisted send is
// answered `error` (never a false `ok`) and is not delivered, while broadcasts that need no
// database still go out; once it is back, persisting works again by itself. A message with
// `persist: {ttl: 1}` is replayed while it lives and is gone, row and replay, after the janitor
// worker's next pass (realtime.janitor_naptime lowered to 200 ms on this cluster). A persisted
// payload over the limit (1 kB here) is refused over both paths, and nothing is stored.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createClient, closeClients, subscribe, collectBroadcasts, startSidecar, stopChecked, jwt, uniq, sleep } from './lib/helpers.mjs';
import { startCluster } from './lib/cluster.mjs';
import { randomUUID } from './lib/pgchanges.mjs';

const A = randomUUID();
const tok = () => jwt.authenticated(A);
const P = uniq('pf');
let cluster;
let sidecar;

async function sql(text, params = []) {
	const c = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${cluster.port}/postgres` });
	await c.connect();
	try {
		return (await c.query(text, params)).rows;
	} finally {
		await c.end();
	}
}

before(async () => {
	cluster = await startCluster();
	await sql(`CREATE POLICY pf_read ON realtime.messages FOR SELECT TO authenticated USING (realtime.topic() LIKE '${P}%')`);
	await sql(`CREATE POLICY pf_write ON realtime.messages FOR INSERT TO authenticated WITH CHECK (realtime.topic() LIKE '${P}%')`);
	sidecar = await startSidecar(['--db', cluster.conninfo, '--max-payload-kb', '1']); // 1,500 bytes
});

after(async () => {
	await closeClients();
	await stopChecked(sidecar);
	cluster?.stop();
});

const UNSTORED = 'UnableToPersistMessage: Realtime was unable to store the message';
const priv = (name, broadcast = {}) => createClient({ base: sidecar.base, token: tok(), timeout: 10000 }).channel(name, { config: { private: true, broadcast } });

test('PostgreSQL restarted: the first persisted send and the first private join after it just work (dead links are reconnected at once)', { timeout: 60000 }, async () => {
	const topic = `${P}-restart`;
	const tx = priv(topic, { ack: true });
	await subscribe(tx);
	assert.equal(await tx.send({ type: 'broadcast', event: 'e', payload: { n: 1 }, persist: true }), 'ok');
	cluster.pgCtl(['restart', '-m', 'fast', '-w']);
	assert.equal(await tx.send({ type: 'broadcast', event: 'e', payload: { n: 2 }, persist: true }), 'ok', 'the store finds its link dead and connects again');
	const late = priv(topic, { replay: { since: Date.now() - 60000, limit: 10 } });
	const got = collectBroadcasts(late);
	await subscribe(late, 4000); // under the 5 s join-error delay: no refusal on the way
	await got.waitCount(2, 5000);
	assert.deepEqual(got.items.map((m) => m.payload.n), [1, 2], 'the authorizer finds its link dead and connects again');
});

test('PostgreSQL down: a persisted send is answered error and not delivered, plain broadcasts go on; back: persisting works again', { timeout: 90000 }, async () => {
	const topic = `${P}-down`;
	const rx = priv(topic);
	const got = collectBroadcasts(rx);
	await subscribe(rx);
	const tx = priv(topic, { ack: true });
	await subscribe(tx);
	const send = (n, persist) => tx.send({ type: 'broadcast', event: 'e', payload: { n }, ...(persist ? { persist: true } : {}) });
	assert.equal(await send(1, true), 'ok', 'stored while the database is up (the write right is known from now on)');

	cluster.pgCtl(['stop', '-m', 'fast']);
	let answeredMs;
	try {
		const t0 = Date.now();
		// realtime-js resolves a refused push with the server's error text
		assert.equal(await send(2, true), UNSTORED, 'never a false ok');
		answeredMs = Date.now() - t0;
		assert.equal(await send(3, false), 'ok', 'a broadcast that needs no row still goes out');
		assert.equal(await send(4, true), UNSTORED);
		await got.waitFor((m) => m.payload.n === 3, 5000, { what: 'the plain broadcast' });
	} finally {
		cluster.pgCtl(['start', '-w']);
	}
	await sleep(1100); // the store tries to connect at most once a second while the database is away
	assert.equal(await send(5, true), 'ok', 'the store connects again by itself');
	await got.waitFor((m) => m.payload.n === 5, 5000, { what: 'the first stored one after the restart' });
	await sleep(200);
	assert.deepEqual(got.items.map((m) => m.payload.n), [1, 3, 5], 'the refused ones were not delivered');
	const rows = await sql("SELECT (payload->>'n')::int AS n FROM realtime.messages WHERE topic = $1 ORDER BY inserted_at", [topic]);
	assert.deepEqual(rows.map((r) => r.n), [1, 5], 'rows exactly for the ok ones');
	console.log(`# error answer ${answeredMs} ms after the stop`);
});

test('persist {ttl: 1}: replayed while it lives, gone (row and replay) after the janitor pass', { timeout: 30000 }, async () => {
	await sql(`ALTER SYSTEM SET realtime.janitor_naptime = 200`);
	await sql('SELECT pg_reload_conf()');
	const topic = `${P}-ttl`;
	const since = Date.now() - 1000;
	const tx = priv(topic, { ack: true });
	await subscribe(tx);
	assert.equal(await tx.send({ type: 'broadcast', event: 'e', payload: { n: 'short' }, persist: { ttl: 1 } }), 'ok');
	assert.equal(await tx.send({ type: 'broadcast', event: 'e', payload: { n: 'kept' }, persist: true }), 'ok');
	const replay = async () => {
		const ch = priv(topic, { replay: { since, limit: 10 } });
		const inbox = collectBroadcasts(ch);
		await subscribe(ch);
		await inbox.waitFor((m) => m.payload.n === 'kept', 5000, { what: 'the kept message' });
		await sleep(100);
		return inbox.items.map((m) => m.payload.n);
	};
	assert.deepEqual(await replay(), ['short', 'kept'], 'both while the TTL runs');
	const { total_before } = (await sql(`SELECT count(*)::int AS total_before FROM realtime.messages WHERE topic = $1`, [topic]))[0];
	assert.equal(total_before, 2);
	await sleep(1500);
	const deadline = Date.now() + 10000;
	let left = 2;
	while (left !== 1 && Date.now() < deadline) {
		left = (await sql(`SELECT count(*)::int AS n FROM realtime.messages WHERE topic = $1`, [topic]))[0].n;
		if (left !== 1) await sleep(100);
	}
	assert.equal(left, 1, 'the expired row is deleted by the janitor (nobody called expire_messages here)');
	// and reported to the statistics, or autovacuum would never see those dead rows
	const deleted = async () => Number((await sql("SELECT coalesce(sum(n_tup_del), 0) AS n FROM pg_stat_user_tables WHERE schemaname = 'realtime' AND relname LIKE 'messages%'"))[0].n);
	const statsDeadline = Date.now() + 5000;
	while ((await deleted()) < 1 && Date.now() < statsDeadline) await sleep(100);
	assert.ok((await deleted()) >= 1, 'the janitor reports its deletes to pg_stat_user_tables');
	assert.deepEqual(await replay(), ['kept'], 'and no longer replayed');
	const stats = (await sql('SELECT janitor_passes, messages_expired FROM realtime.stats()'))[0];
	assert.ok(Number(stats.messages_expired) >= 1, `realtime.stats() counts it: ${JSON.stringify(stats)}`);
});

test('a persisted payload over the limit: refused over WebSocket and REST, nothing stored, the socket goes on', { timeout: 20000 }, async () => {
	const topic = `${P}-big`;
	const tx = priv(topic, { ack: true });
	await subscribe(tx);
	const big = { s: 'x'.repeat(2000) };
	assert.equal(await tx.send({ type: 'broadcast', event: 'e', payload: big, persist: true }), 'error', 'payload_size_exceeded: realtime-js says error');
	await assert.rejects(tx.httpSend('e', big, { persist: true }), /Unprocessable Entity/, 'realtime-js throws on the 422');
	assert.equal(await tx.send({ type: 'broadcast', event: 'e', payload: { s: 'small' }, persist: true }), 'ok', 'the socket goes on');
	const rows = await sql("SELECT payload->>'s' AS s FROM realtime.messages WHERE topic = $1", [topic]);
	assert.deepEqual(rows.map((r) => r.s), ['small'], 'only the small one is a row');
});

