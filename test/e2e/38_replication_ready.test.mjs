// 38 config.broadcast.replication_ready (PROTOCOL.md 2.6, 3.8): a channel that asks is told
// "Replication connection established" once what the database sends it flows (after
// "Subscribed to PostgreSQL" when it has postgres_changes; when the ring is attached
// otherwise), and a message committed after it arrives; not ready in time, the channel ends
// with "Replication connection was not established in time".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients, subscribe, collectBroadcasts, RawClient, startSidecar, stopChecked, uniq, sleep, Inbox } from './lib/helpers.mjs';
import { openDb, ensurePublication, uniqSchema, SUBSCRIBED } from './lib/pgchanges.mjs';

const READY = { extension: 'system', status: 'ok', message: 'Replication connection established' };
const S = uniqSchema('rr');
let db;
let madePublication = false;

before(async () => {
	db = await openDb();
	madePublication = await ensurePublication(db);
	await db.query(`CREATE SCHEMA ${S}`);
	await db.query(`CREATE TABLE ${S}.t (id int PRIMARY KEY)`);
	await db.query(`GRANT USAGE ON SCHEMA ${S} TO anon; GRANT SELECT ON ${S}.t TO anon`);
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${S}.t`);
});

after(async () => {
	await closeClients();
	if (db) {
		await db.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`).catch(() => {});
		if (madePublication) {
			await db.query('DROP PUBLICATION IF EXISTS supabase_realtime').catch(() => {});
		}
		await db.end();
	}
});

function channel(client, name, broadcast, pg) {
	const ch = client.channel(name, { config: { broadcast } });
	const system = new Inbox(`${name} system`);
	ch.on('system', {}, (p) => system.push(p));
	if (pg) {
		ch.on('postgres_changes', pg.filter, (p) => pg.inbox.push(p));
	}
	return { ch, system };
}

test('a broadcast channel that asks is told once the ring is attached; a realtime.send() after it arrives', { timeout: 10000 }, async () => {
	const name = uniq('rr');
	const { ch, system } = channel(createClient(), name, { replication_ready: true });
	const got = collectBroadcasts(ch);
	await subscribe(ch);
	const ready = await system.waitFor((p) => p.message === READY.message, 5000, { what: 'the ready message' });
	assert.deepEqual(ready, { ...READY, channel: name });
	await db.query(`SELECT realtime.send('{"after": true}', 'ev', $1, false)`, [name]);
	const m = await got.waitFor((x) => x.event === 'ev', 5000);
	assert.equal(m.payload.after, true);
	await sleep(300);
	assert.equal(system.items.filter((p) => p.message === READY.message).length, 1, 'told once');
});

test('with postgres_changes: "Subscribed to PostgreSQL", then ready; a row inserted then is delivered', { timeout: 15000 }, async () => {
	const name = uniq('rr');
	const inbox = new Inbox('changes');
	const { ch, system } = channel(createClient(), name, { replication_ready: true }, { filter: { event: 'INSERT', schema: S, table: 't' }, inbox });
	let inserted = null;
	ch.on('system', {}, (p) => {
		if (p.message === READY.message && inserted === null) {
			inserted = db.query(`INSERT INTO ${S}.t VALUES (1)`);
		}
	});
	await subscribe(ch);
	await system.waitFor((p) => p.message === READY.message, 5000, { what: 'the ready message' });
	await inserted;
	const messages = system.items.map((p) => p.message);
	assert.ok(messages.indexOf(SUBSCRIBED) >= 0 && messages.indexOf(SUBSCRIBED) < messages.indexOf(READY.message), `order: ${JSON.stringify(messages)}`);
	const change = await inbox.waitFor((p) => p.new.id === 1, 5000, { what: 'the row' });
	assert.equal(change.eventType, 'INSERT');
});

test('without the option, or with false, nothing is said', { timeout: 10000 }, async () => {
	const raw = await RawClient.connect();
	for (const broadcast of [{}, { replication_ready: false }]) {
		const topic = `realtime:${uniq('rr')}`;
		const reply = await raw.join(topic, { config: { broadcast } });
		assert.equal(reply.msg.payload.status, 'ok');
	}
	await sleep(500);
	assert.deepEqual(raw.drain().filter((f) => f.msg?.event === 'system'), []);
	await raw.close();
});

test('no database stream (a sidecar whose ring file does not exist): the channel ends when its time is up', { timeout: 20000 }, async () => {
	const side = await startSidecar(['--replication-ready-timeout-ms', '1500', '--ring-path', '/nonexistent/realtime.ring']);
	try {
		const raw = await RawClient.connect({ base: side.base });
		const topic = `realtime:${uniq('rr')}`;
		const t0 = Date.now();
		const reply = await raw.join(topic, { config: { broadcast: { replication_ready: true } } });
		assert.equal(reply.msg.payload.status, 'ok');
		const sys = await raw.waitFor((f) => f.msg?.event === 'system' && f.msg.topic === topic, 5000, 'the timeout');
		assert.deepEqual(sys.msg.payload, { extension: 'system', status: 'error', message: 'Replication connection was not established in time', channel: topic.slice(9) });
		assert.ok(Date.now() - t0 >= 1400, 'not before its time');
		await raw.waitFor((f) => f.msg?.event === 'phx_close' && f.msg.topic === topic, 3000, 'phx_close');
		// the socket goes on
		assert.equal((await raw.heartbeat()).msg.payload.status, 'ok');
		await raw.close();
	} finally {
		await stopChecked(side);
	}
});
