// pgchanges.mjs: what the Postgres Changes tests (21, 22) share.
//
// - a database session as superuser (RT_DB_URL) and the publication supabase_realtime,
//   created when absent and dropped only by whoever created it;
// - auth.uid() from the extension realtime_auth, when the database has none;
// - realtime-js channels with postgres_changes bindings, each binding recording its payloads,
//   and the wait for "Subscribed to PostgreSQL";
// - raw-socket helpers for the exact postgres_changes frames (ids, columns, record);
// - barriers: a row committed after the changes under test; every channel that listens to
//   the barrier table has received everything committed before it once the barrier arrived
//   (one channel's messages keep commit order), so "nothing else arrived" needs no sleep.

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { RT_DB_URL, Inbox, subscribeResult, uniq } from './helpers.mjs';

export { randomUUID };

export const SUBSCRIBED = 'Subscribed to PostgreSQL';
export const COMMIT_TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
export const UNABLE_PUB =
	'Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: ';
export const UNABLE_EXC =
	'Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: ';

// A schema name no other run uses (lower case: quote_ident leaves it as is).
export function uniqSchema(prefix) {
	return `${prefix}_${randomBytes(4).toString('hex')}`;
}

// A connected superuser session; TimeZone UTC so to_jsonb(timestamptz) reads like the payloads.
export async function openDb() {
	assert.ok(RT_DB_URL, 'RT_DB_URL is set (run through scripts/test.sh)');
	const db = new pg.Client({ connectionString: RT_DB_URL });
	await db.connect();
	await db.query(`SET TimeZone TO 'UTC'`);
	return db;
}

// Create the publication when absent; resolves with true when this call created it.
export async function ensurePublication(db) {
	const { rows } = await db.query(
		`SELECT count(*)::int AS n FROM pg_publication WHERE pubname = 'supabase_realtime'`
	);
	if (rows[0].n > 0) {
		return false;
	}
	await db.query('CREATE PUBLICATION supabase_realtime');
	return true;
}

// auth.uid() as on the platform, from the extension realtime_auth (sql/realtime_auth--0.1.0.sql),
// unless the database already has one. Resolves with a function that drops what this call
// created (with CASCADE: policies still using it go too).
export async function ensureAuthUid(db) {
	const { rows } = await db.query(`SELECT to_regprocedure('auth.uid()') IS NOT NULL AS present`);
	if (rows[0].present) {
		return async () => {};
	}
	await db.query('CREATE EXTENSION realtime_auth');
	return async () => {
		await db.query('DROP EXTENSION IF EXISTS realtime_auth CASCADE');
	};
}

// ---------------------------------------------------------------------------
// realtime-js

// A channel with postgres_changes bindings. `bindings` maps a label to the binding's filter
// object ({event, schema, table, filter}); each label gets an Inbox of callback payloads
// ({schema, table, commit_timestamp, eventType, new, old, errors}). `system` records the
// channel's system messages.
export function pgChannel(client, bindings, name = uniq('pgc')) {
	const channel = client.channel(name);
	const inbox = {};
	for (const [label, filter] of Object.entries(bindings)) {
		inbox[label] = new Inbox(`${name} ${label}`);
		channel.on('postgres_changes', filter, (payload) => inbox[label].push(payload));
	}
	const system = new Inbox(`${name} system`);
	channel.on('system', {}, (payload) => system.push(payload));
	return { name, channel, inbox, system };
}

// Subscribe and wait until the server says the subscription is active.
export async function subscribePg(ch, ms = 5000) {
	const { status, err } = await subscribeResult(ch.channel, ms);
	assert.equal(status, 'SUBSCRIBED', `${ch.name}: ${status}${err ? `: ${err.message}` : ''}`);
	const sys = await ch.system.waitFor(
		(p) => p.extension === 'postgres_changes' && (p.message === SUBSCRIBED || p.status === 'error'),
		ms,
		{ what: `"${SUBSCRIBED}"` }
	);
	assert.deepEqual(sys, { extension: 'postgres_changes', status: 'ok', message: SUBSCRIBED, channel: ch.name });
	return ch;
}

// ---------------------------------------------------------------------------
// Raw sockets

// The postgres_changes frames of `topic` in a RawClient's frames.
export const isChange = (topic) => (f) => !f.binary && f.msg?.event === 'postgres_changes' && f.msg.topic === topic;
export const isSystem = (topic) => (f) => !f.binary && f.msg?.event === 'system' && f.msg.topic === topic;

// Join `topic` with these postgres_changes entries; returns the ids of the reply, in order.
export async function rawJoinPg(raw, topic, entries, ms = 5000, joinRef = undefined) {
	const reply = await raw.join(topic, { config: { postgres_changes: entries }, ms, joinRef });
	assert.equal(reply.msg.payload.status, 'ok', JSON.stringify(reply.msg.payload));
	const echoed = reply.msg.payload.response.postgres_changes;
	assert.equal(echoed.length, entries.length, 'every entry echoed');
	for (const e of echoed) {
		assert.ok(Number.isInteger(e.id) && e.id >= 0, `id ${e.id}`);
	}
	return echoed.map((e) => e.id);
}

// Wait for the first system message of `topic` satisfying pred (searching from frame 0).
export async function rawSystem(raw, topic, pred, ms = 5000, what = 'a system message') {
	const f = await raw.frames.waitFor((x) => isSystem(topic)(x) && pred(x.msg.payload), ms, { what: `${topic}: ${what}` });
	return f.msg.payload;
}

// Join with entries and require "Subscribed to PostgreSQL"; returns the ids.
export async function rawSubscribePg(raw, topic, entries, ms = 5000) {
	const ids = await rawJoinPg(raw, topic, entries, ms);
	const f = await raw.frames.waitFor((x) => isSystem(topic)(x) && x.msg.payload.extension === 'postgres_changes', ms, {
		what: `${topic}: postgres_changes status`,
	});
	const reply = raw.frames.items.findIndex((x) => x.msg?.event === 'phx_reply' && x.msg.topic === topic);
	assert.ok(reply >= 0 && reply < raw.frames.items.indexOf(f), 'the system message follows the join reply');
	const p = f.msg.payload;
	assert.deepEqual(p, { extension: 'postgres_changes', status: 'ok', message: SUBSCRIBED, channel: topic.replace(/^realtime:/, '') });
	return ids;
}

// ---------------------------------------------------------------------------
// Barriers

// A barrier table in `schema` (readable by every role, no RLS) and its subscription entry.
export async function createBarrierTable(db, schema) {
	await db.query(`CREATE TABLE ${schema}.barrier (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)`);
	await db.query(`GRANT SELECT ON ${schema}.barrier TO anon, authenticated, service_role`);
	await db.query(`ALTER PUBLICATION supabase_realtime ADD TABLE ${schema}.barrier`);
}

export function barrierEntry(schema) {
	return { event: 'INSERT', schema, table: 'barrier' };
}

// Commit a barrier row; resolves with its id.
export async function barrier(db, schema) {
	const { rows } = await db.query(`INSERT INTO ${schema}.barrier DEFAULT VALUES RETURNING id::int AS id`);
	return rows[0].id;
}

// Wait until a realtime-js barrier inbox has barrier row `id`.
export function waitBarrier(inbox, id, ms = 5000) {
	return inbox.waitFor((p) => p.new?.id === id, ms, { what: `barrier ${id}` });
}

// Wait until a raw socket has the barrier row `id` on `topic`; returns the frames of `topic`
// that are postgres_changes of other tables, from `from` up to the barrier.
export async function rawUntilBarrier(raw, topic, id, { from = 0, ms = 5000 } = {}) {
	const f = await raw.frames.waitFor(
		(x) => isChange(topic)(x) && x.msg.payload.data?.table === 'barrier' && x.msg.payload.data.record?.id === id,
		ms,
		{ from, what: `${topic}: barrier ${id}` }
	);
	const end = raw.frames.items.indexOf(f, from);
	return raw.frames.items
		.slice(from, end)
		.filter((x) => isChange(topic)(x) && x.msg.payload.data?.table !== 'barrier');
}

// The first n postgres_changes frames of `topic` at or after frame index `from`.
export async function rawChanges(raw, topic, n, from = 0, ms = 5000) {
	const out = [];
	let at = from;
	while (out.length < n) {
		const f = await raw.frames.waitFor(isChange(topic), ms, { from: at, what: `${topic}: change #${out.length + 1}` });
		out.push(f);
		at = raw.frames.items.indexOf(f, at) + 1;
	}
	return out;
}
