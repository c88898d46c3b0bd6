// 23 Postgres Changes follow the publication (PROTOCOL.md 6.2): the sidecar re-reads
// supabase_realtime every 10 s; a schema-wide channel then matches a table added to it (and
// hears "Subscribed to PostgreSQL" again), and stops matching a table dropped from it. Needs
// RT_DB_URL (scripts/test.sh); the file creates its own schema.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, closeClients } from './lib/helpers.mjs';
import { SUBSCRIBED, uniqSchema, openDb, ensurePublication, pgChannel, subscribePg } from './lib/pgchanges.mjs';

const S = uniqSchema('e2e_pub');
let db;
let madePublication = false;

before(async () => {
	db = await openDb();
	madePublication = await ensurePublication(db);
	await db.query(`CREATE SCHEMA ${S}`);
	await db.query(`GRANT USAGE ON SCHEMA ${S} TO anon`);
	for (const t of ['a', 'b']) {
		await db.query(`CREATE TABLE ${S}.${t} (id int PRIMARY KEY)`);
		await db.query(`GRANT SELECT ON ${S}.${t} TO anon`);
	}
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${S}.a`);
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

test('a table added to the publication reaches a schema-wide channel; a dropped one stops', { timeout: 60000 }, async () => {
	const ch = pgChannel(createClient(), { all: { event: 'INSERT', schema: S, table: '*' } });
	await subscribePg(ch);
	await db.query(`INSERT INTO ${S}.b VALUES (1)`); // not published yet: never delivered
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${S}.b`);
	// within the re-read period (10 s) the channel is matched again and told so
	const again = await ch.system.waitFor((p, i) => i > 0 && p.message === SUBSCRIBED, 15000,
		{ what: `a second "${SUBSCRIBED}"` });
	assert.equal(again.status, 'ok');
	await db.query(`INSERT INTO ${S}.b VALUES (2)`);
	await db.query(`INSERT INTO ${S}.a VALUES (3)`);
	await ch.inbox.all.waitFor((p) => p.table === 'a' && p.new.id === 3, 5000);
	assert.deepEqual(ch.inbox.all.items.map((p) => `${p.table}${p.new.id}`), ['b2', 'a3'],
		'b from when it was published on, in commit order');

	await db.query(`ALTER PUBLICATION supabase_realtime DROP TABLE ${S}.a`);
	const third = await ch.system.waitFor((p, i) => i > 1 && p.message === SUBSCRIBED, 15000,
		{ what: `a third "${SUBSCRIBED}"` });
	assert.equal(third.status, 'ok');
	await db.query(`INSERT INTO ${S}.a VALUES (4)`);
	await db.query(`INSERT INTO ${S}.b VALUES (5)`);
	await ch.inbox.all.waitFor((p) => p.table === 'b' && p.new.id === 5, 5000);
	assert.deepEqual(ch.inbox.all.items.map((p) => `${p.table}${p.new.id}`), ['b2', 'a3', 'b5']);
});
