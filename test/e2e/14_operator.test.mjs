// 14 operator contract: /healthz (200 once it can serve, 503 while the database does not
// answer), --help documenting every option and its environment variable, environment
// equivalents of the flags, and refusal of unknown options.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { RT_URL, RT_DB_URL, startSidecar, freePort, healthz, upgradeProbe, jwt, sleep, RawClient, uniq } from './lib/helpers.mjs';

const BIN = process.env.RT_FANOUT_BIN;
const sidecars = [];
after(async () => Promise.all(sidecars.map((s) => s.stop())));

async function getJson(url) {
	const res = await fetch(url);
	return { status: res.status, body: await res.json() };
}

test('/healthz is 200 {"status":"ok"} on the suite sidecar (database reachable)', async () => {
	assert.deepEqual(await getJson(`${RT_URL}/healthz`), { status: 200, body: { status: 'ok' } });
});

test('/healthz is 503 while the database does not answer, and the socket still serves', { timeout: 20000 }, async () => {
	const side = await startSidecar(['--db', 'host=127.0.0.1 port=1 dbname=unreachable connect_timeout=1']);
	sidecars.push(side);
	assert.deepEqual(await getJson(`${side.base}/healthz`), { status: 503, body: { status: 'starting' } });
	const ok = await upgradeProbe({ base: side.base, query: { apikey: jwt.anon(), vsn: '2.0.0' } });
	assert.equal(ok.status, 101);
});

test('--help documents every option with its environment variable', () => {
	const r = spawnSync(BIN, ['--help'], { encoding: 'utf8' });
	assert.equal(r.status, 0);
	for (const word of ['--port', 'PORT', '--db', 'DB_URL', '--jwt-secret', 'API_JWT_SECRET',
		'--connect-error-backoff-ms', 'CONNECT_ERROR_BACKOFF_MS', '--host', '--shards']) {
		assert.ok(r.stdout.includes(word), `--help lacks ${word}:\n${r.stdout}`);
	}
});

test('unknown options and bad values are refused with exit status 2', () => {
	const bad = spawnSync(BIN, ['--jwt-secret', 'x', '--no-such-flag'], { encoding: 'utf8' });
	assert.equal(bad.status, 2);
	assert.match(bad.stderr, /unknown option --no-such-flag/);
	const port = spawnSync(BIN, ['--jwt-secret', 'x', '--port', 'eighty'], { encoding: 'utf8' });
	assert.equal(port.status, 2);
	assert.match(port.stderr, /invalid value for --port/);
	const secret = spawnSync(BIN, ['--port', '1'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
	assert.equal(secret.status, 2);
	assert.match(secret.stderr, /jwt-secret/);
});

test('environment equivalents: PORT, DB_URL, API_JWT_SECRET, CONNECT_ERROR_BACKOFF_MS', { timeout: 20000 }, async () => {
	const port = await freePort();
	const env = {
		PATH: process.env.PATH,
		HOST: '127.0.0.1',
		PORT: String(port),
		DB_URL: RT_DB_URL,
		API_JWT_SECRET: jwt.JWT_SECRET,
		CONNECT_ERROR_BACKOFF_MS: '400',
	};
	const child = spawn(BIN, [], { env, stdio: 'ignore' });
	const exited = new Promise((resolve) => child.on('exit', resolve));
	sidecars.push({ stop: async () => { child.kill('SIGTERM'); await exited; } });
	const base = `http://127.0.0.1:${port}`;
	let status = 0;
	for (let i = 0; i < 200 && status !== 200; i++) {
		status = await healthz(base);
		if (status !== 200) await sleep(50);
	}
	assert.equal(status, 200, 'the sidecar configured from the environment became healthy');
	// the secret came from API_JWT_SECRET: a token signed with it upgrades
	const ok = await upgradeProbe({ base, query: { apikey: jwt.anon(), vsn: '2.0.0' } });
	assert.equal(ok.status, 101);
	// the back-off came from CONNECT_ERROR_BACKOFF_MS: a refusal takes at least 400 ms
	const t0 = performance.now();
	const refused = await upgradeProbe({ base, query: { vsn: '2.0.0' } });
	const ms = performance.now() - t0;
	assert.equal(refused.status, 401);
	assert.ok(ms >= 390, `refusal answered after ${ms.toFixed(0)} ms`);
});

test('SIGTERM drains: every channel gets "Server requested disconnect", the socket closes with 1012', { timeout: 15000 }, async () => {
	const s = await startSidecar();
	const c = await RawClient.connect({ base: s.base });
	const topic = `realtime:${uniq('shutdown')}`;
	await c.join(topic, { joinRef: '1' });
	const stopped = s.stop();
	const sys = await c.waitFor((f) => f.msg?.event === 'system', 5000);
	assert.deepEqual(sys.msg.payload, { extension: 'system', status: 'ok', message: 'Server requested disconnect' });
	assert.equal((await c.closed).code, 1012);
	await stopped;
});
