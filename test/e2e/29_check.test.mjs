// 29 realtime-fanout --check: diagnostics of the database and the ring, one line per problem
// ("error CODE: ..." / "warning CODE: ...", each with its fix) or one "ok: ..." line; exit 1 on
// an error, 0 otherwise. Against the suite's cluster (RT_DB_URL, RT_RING_PATH): clean, without
// the publication, with a wrong --ring-path; and against a throwaway second cluster
// (scripts/cluster.sh --no-preload, then wal_level = replica) for the server settings.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import pg from 'pg';
import { RT_FANOUT_BIN, jwt } from './lib/helpers.mjs';
import { startCluster } from './lib/cluster.mjs';
import { openDb, ensurePublication } from './lib/pgchanges.mjs';

const RT_RING_PATH = process.env.RT_RING_PATH ?? '';
let db;
let madePublication = false;

before(async () => {
	assert.ok(RT_FANOUT_BIN, 'RT_FANOUT_BIN is set (run through scripts/test.sh)');
	db = await openDb();
	madePublication = await ensurePublication(db);
});

after(async () => {
	if (db) {
		if (madePublication) {
			await db.query('DROP PUBLICATION IF EXISTS supabase_realtime').catch(() => {});
		}
		await db.end();
	}
});

// Run the check; resolves with the exit status and the printed lines.
function check(args) {
	const r = spawnSync(RT_FANOUT_BIN, ['--check', ...args], {
		encoding: 'utf8',
		timeout: 30000,
		env: { PATH: process.env.PATH, API_JWT_SECRET: jwt.JWT_SECRET },
	});
	assert.equal(r.error, undefined, `--check did not run: ${r.error}`);
	const lines = r.stdout.split('\n').filter((l) => l !== '');
	return { status: r.status, lines, out: `${r.stdout}${r.stderr}` };
}

async function serverRingPath() {
	return (await db.query(`SELECT current_setting('realtime.ring_path') AS p`)).rows[0].p;
}

test('a clean tenant: exit 0 and one "ok:" line', { timeout: 40000 }, async () => {
	const r = check(['--db', process.env.RT_DB_URL, '--ring-path', RT_RING_PATH]);
	assert.equal(r.status, 0, r.out);
	assert.equal(r.lines.length, 1, r.out);
	assert.match(r.lines[0], /^ok: database postgres as postgres, realtime preloaded, extension realtime [0-9.]+, /);
	assert.match(r.lines[0], /publication supabase_realtime with \d+ tables?/);
	assert.ok(r.lines[0].includes(`ring ${await serverRingPath()} readable and writable`), r.out);
	assert.match(r.lines[0], /decoder worker pid \d+$/);
});

test('without the publication: the warning with its fix, exit 0', { timeout: 40000 }, async () => {
	const pub = await db.query(`SELECT puballtables FROM pg_publication WHERE pubname = 'supabase_realtime'`);
	const allTables = pub.rows[0].puballtables;
	const { rows: tables } = await db.query(
		`SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'`
	);
	await db.query('DROP PUBLICATION supabase_realtime');
	try {
		const r = check(['--db', process.env.RT_DB_URL, '--ring-path', RT_RING_PATH]);
		assert.equal(r.status, 0, r.out);
		assert.deepEqual(r.lines, [
			'warning publication: publication supabase_realtime (realtime.publication) does not exist ' +
				'in database postgres, so Postgres Changes deliver nothing; fix: CREATE PUBLICATION ' +
				'supabase_realtime; ALTER PUBLICATION supabase_realtime ADD TABLE schema.table;',
		]);
	} finally {
		const list = tables.map((t) => `${db.escapeIdentifier(t.schemaname)}.${db.escapeIdentifier(t.tablename)}`);
		const what = allTables ? ' FOR ALL TABLES' : list.length ? ` FOR TABLE ${list.join(', ')}` : '';
		await db.query(`CREATE PUBLICATION supabase_realtime${what}`);
	}
});

test('a --ring-path other than realtime.ring_path: the error naming both, exit 1', { timeout: 40000 }, async () => {
	const dir = mkdtempSync('/tmp/rt-check-ring-');
	try {
		const wrong = `${dir}/elsewhere.ring`;
		const server = await serverRingPath();
		const r = check(['--db', process.env.RT_DB_URL, '--ring-path', wrong]);
		assert.equal(r.status, 1, r.out);
		assert.deepEqual(r.lines, [
			`error ring_path: realtime.ring_path is ${server} but --ring-path is ${wrong}; fix: start ` +
				`realtime-fanout with --ring-path ${server}, or ALTER SYSTEM SET realtime.ring_path = ` +
				`'${wrong}'; then restart the server`,
		]);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});

test('a server without wal_level = logical and the preload: both errors, exit 1', { timeout: 180000 }, async (t) => {
	const cluster = await startCluster(['--no-preload']);
	try {
		const conninfo = cluster.conninfo;
		const other = new pg.Client({ host: '127.0.0.1', port: cluster.port, user: 'postgres', database: 'postgres' });
		await other.connect();
		try {
			await other.query('ALTER SYSTEM SET wal_level = replica');
		} finally {
			await other.end();
		}
		cluster.pgCtl(['restart', '-w']);

		const r = check(['--db', conninfo]);
		t.diagnostic(`--check printed:\n${r.lines.join('\n')}`);
		assert.equal(r.status, 1, r.out);
		assert.ok(
			r.lines.includes(
				'error wal_level: wal_level is replica, the decoder worker needs logical; fix: ' +
					'ALTER SYSTEM SET wal_level = logical; then restart the server'
			),
			r.out
		);
		assert.ok(
			r.lines.includes(
				"error preload: shared_preload_libraries is '' and lacks realtime, so the extension " +
					'cannot load and no decoder worker runs; fix: ALTER SYSTEM SET ' +
					'shared_preload_libraries = realtime; then restart the server'
			),
			r.out
		);
		assert.ok(r.lines.includes(
			'error extension_missing: extension realtime is not installed in database postgres; ' +
				'fix: CREATE EXTENSION realtime; in database postgres'
		), r.out);
	} finally {
		cluster.stop();
	}
});
