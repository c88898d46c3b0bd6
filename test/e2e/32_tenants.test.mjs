// 32 tenants (PROTOCOL.md 0, 1.3, 1.4, 2.6, 9.1): one sidecar started with --config FILE serves
// two tenants, each with its own PostgreSQL cluster (the suite's, RT_DB_URL, and a throwaway one
// started here) and its own JWT secret. The tenant is the Host's first label. Clients of one
// tenant never see the other's broadcasts, presence or realtime.send messages, even on the same
// topic; a token of one is refused by the other; an unknown Host gets 403 TenantNotFound; a
// suspended tenant is refused; SIGHUP adds and removes tenants (the removed one's sockets get
// "Server requested disconnect" and close 1012, the other's stay); /metrics and /healthz are
// per tenant; --check --config prefixes lines with the tenant id.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { RT_DB_URL, RT_FANOUT_BIN, RawClient, freePort, jwt, sleep, startSidecar, stopChecked, textBroadcast, uniq, upgradeProbe } from './lib/helpers.mjs';

const RT_RING_PATH = process.env.RT_RING_PATH ?? '';
const CLUSTER_SH = fileURLToPath(new URL('../../scripts/cluster.sh', import.meta.url));
const SECRET_B = 'the-secret-of-tenant-b-0123456789abcdef';
const SECRET_C = 'the-secret-of-tenant-c-0123456789abcdef';

let clusterDir = '';
let clusterStarted = false;
let connB = '';
let dbA;
let dbB;
let confDir = '';
let confFile = '';
let sidecar;
const clients = [];

const tokenA = () => jwt.anon();
const tokenB = () => jwt.sign({ role: 'anon', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 }, { secret: SECRET_B });
const tokenC = () => jwt.sign({ role: 'anon', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 }, { secret: SECRET_C });

function tenantA() {
	return { external_id: 'a', db: RT_DB_URL, ring_path: RT_RING_PATH, jwt_secret: jwt.JWT_SECRET };
}
// no ring_path: the sidecar asks the database (SHOW realtime.ring_path)
function tenantB() {
	return { external_id: 'b', db: connB, jwt_secret: SECRET_B };
}

function writeConfig(tenants) {
	writeFileSync(confFile, JSON.stringify({ tenants }, null, 2));
}

async function connect(host, token, opts = {}) {
	const c = await RawClient.connect({ base: sidecar.base, token, vsn: '1.0.0', headers: { Host: `${host}.localhost:${sidecar.port}` }, ...opts });
	clients.push(c);
	return c;
}

// A REST request with a Host header (fetch may not set Host): {status, json}.
function rest(host, path, body, token) {
	return new Promise((resolve, reject) => {
		const data = JSON.stringify(body);
		const req = http.request(
			{
				host: '127.0.0.1',
				port: sidecar.port,
				method: body === undefined ? 'GET' : 'POST',
				path,
				agent: false,
				headers: {
					Host: `${host}.localhost:${sidecar.port}`,
					'Content-Type': 'application/json',
					...(body !== undefined ? { 'Content-Length': Buffer.byteLength(data) } : {}),
					...(token ? { Authorization: `Bearer ${token}`, apikey: token } : {}),
				},
			},
			(res) => {
				const chunks = [];
				res.on('data', (c) => chunks.push(c));
				res.on('end', () => {
					const text = Buffer.concat(chunks).toString('utf8');
					let json = null;
					try {
						json = text ? JSON.parse(text) : null;
					} catch {
						/* not JSON */
					}
					resolve({ status: res.statusCode, text, json });
				});
			}
		);
		req.setTimeout(5000, () => req.destroy(new Error(`${path}: timeout`)));
		req.on('error', reject);
		if (body !== undefined) {
			req.write(data);
		}
		req.end();
	});
}

// Wait until the sidecar's log matches re (its output arrives through a pipe).
async function logged(re, ms = 3000) {
	const deadline = Date.now() + ms;
	while (!re.test(sidecar.output()) && Date.now() < deadline) {
		await sleep(50);
	}
	assert.match(sidecar.output(), re);
}

function broadcastOf(c, event) {
	return c.frames.items.filter((f) => textBroadcast(f)?.event === event);
}

before(async () => {
	assert.ok(RT_FANOUT_BIN, 'RT_FANOUT_BIN is set (run through scripts/test.sh)');
	assert.ok(RT_DB_URL && RT_RING_PATH, 'RT_DB_URL and RT_RING_PATH are set');
	const postgresUid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
	clusterDir = mkdtempSync('/tmp/rt-tenants-pg-');
	chownSync(clusterDir, postgresUid, postgresUid);
	const port = await freePort();
	const start = spawnSync('bash', [CLUSTER_SH, 'start', clusterDir, String(port)], { encoding: 'utf8', timeout: 120000 });
	assert.equal(start.status, 0, `cluster.sh start: ${start.stderr}`);
	clusterStarted = true;
	connB = start.stdout.trim();
	dbA = new pg.Client({ connectionString: RT_DB_URL });
	await dbA.connect();
	dbB = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
	await dbB.connect();
	confDir = mkdtempSync('/tmp/rt-tenants-conf-');
	confFile = `${confDir}/tenants.json`;
	writeConfig([tenantA(), tenantB(), { external_id: 's', jwt_secret: SECRET_C, suspended: true }]);
	sidecar = await startSidecar(['--config', confFile, '--connect-error-backoff-ms', '0', '--channel-error-backoff-ms', '0'], { tenantFlags: false, ms: 20000 });
});

after(async () => {
	for (const c of clients) {
		c.terminate();
	}
	await stopChecked(sidecar);
	await dbA?.end().catch(() => {});
	await dbB?.end().catch(() => {});
	if (clusterStarted) {
		spawnSync('bash', [CLUSTER_SH, 'stop', clusterDir], { encoding: 'utf8', timeout: 120000 });
	}
	if (clusterDir) {
		rmSync(clusterDir, { recursive: true, force: true });
	}
	if (confDir) {
		rmSync(confDir, { recursive: true, force: true });
	}
});

test('same topic, two tenants: broadcasts, presence and realtime.send stay in their tenant', { timeout: 30000 }, async () => {
	const name = uniq('shared');
	const topic = `realtime:${name}`;
	const presence = { presence: { enabled: true, key: '' } };
	const a1 = await connect('a', tokenA());
	const a2 = await connect('a', tokenA());
	const b1 = await connect('b', tokenB());
	for (const c of [a1, a2, b1]) {
		const r = await c.join(topic, { config: presence });
		assert.equal(r.msg.payload.status, 'ok', JSON.stringify(r.msg));
	}

	a1.push(topic, 'broadcast', { type: 'broadcast', event: 'from-a', payload: { n: 1 } });
	b1.push(topic, 'broadcast', { type: 'broadcast', event: 'from-b', payload: { n: 2 } });
	await a2.waitFor((f) => textBroadcast(f)?.event === 'from-a');
	await a1.waitFor((f) => f.msg?.event === 'presence_state');

	a1.push(topic, 'presence', { type: 'presence', event: 'track', payload: { who: 'a1' } });
	await a2.waitFor((f) => f.msg?.event === 'presence_diff' && JSON.stringify(f.msg.payload).includes('a1'));

	// realtime.send in each cluster: tenant b's ring path came from its database
	await dbA.query(`SELECT realtime.send('{"db":"a"}', 'send-a', $1)`, [name]);
	await dbB.query(`SELECT realtime.send('{"db":"b"}', 'send-b', $1)`, [name]);
	await a2.waitFor((f) => textBroadcast(f)?.event === 'send-a', 5000);
	await b1.waitFor((f) => textBroadcast(f)?.event === 'send-b', 5000);
	await sleep(300);

	assert.equal(broadcastOf(a2, 'from-b').length, 0, 'a sees no broadcast of b');
	assert.equal(broadcastOf(a2, 'send-b').length, 0, "a sees no realtime.send of b's database");
	assert.equal(broadcastOf(b1, 'from-a').length, 0, 'b sees no broadcast of a');
	assert.equal(broadcastOf(b1, 'send-a').length, 0, "b sees no realtime.send of a's database");
	assert.equal(b1.frames.items.filter((f) => f.msg?.event === 'presence_diff').length, 0, 'b sees no presence of a');
	const stateB = b1.frames.items.find((f) => f.msg?.event === 'presence_state');
	assert.deepEqual(stateB?.msg.payload, {});
});

test('Host routing: a token of tenant a is refused by b, unknown Host gets 403 TenantNotFound', { timeout: 20000 }, async () => {
	const probe = (host, token) =>
		upgradeProbe({ base: sidecar.base, query: { apikey: token, vsn: '1.0.0' }, headers: { Host: `${host}.example.test:${sidecar.port}` } });
	assert.equal((await probe('a', tokenA())).status, 101);
	assert.equal((await probe('b', tokenB())).status, 101);
	const crossed = await probe('b', tokenA());
	assert.equal(crossed.status, 401);
	assert.deepEqual(JSON.parse(crossed.body), { error: 'Failed to validate JWT signature' });
	const unknown = await probe('zzz', tokenA());
	assert.equal(unknown.status, 403);
	assert.deepEqual(JSON.parse(unknown.body), { error: 'Tenant not found', code: 'TenantNotFound' });
	await logged(/no tenant for Host "zzz\.example\.test:\d+" \(configured: a, b, s\).*preserve the Host header/);
	const suspended = await probe('s', tokenC());
	assert.equal(suspended.status, 403);
	assert.deepEqual(JSON.parse(suspended.body), { error: 'Realtime was disabled for this tenant' });

	// REST: the Host picks the tenant, its secret verifies the token
	const name = uniq('rest');
	const a = await connect('a', tokenA());
	const b = await connect('b', tokenB());
	await a.join(`realtime:${name}`);
	await b.join(`realtime:${name}`);
	const msg = { messages: [{ topic: name, event: 'rest-b', payload: { x: 1 } }] };
	assert.equal((await rest('b', '/api/broadcast', msg, tokenB())).status, 202);
	await b.waitFor((f) => textBroadcast(f)?.event === 'rest-b');
	assert.equal((await rest('a', '/api/broadcast', msg, tokenB())).status, 401);
	const restUnknown = await rest('zzz', '/api/broadcast', msg, tokenA());
	assert.equal(restUnknown.status, 403);
	assert.deepEqual(restUnknown.json, { error: 'Tenant not found', code: 'TenantNotFound' });
	const restSuspended = await rest('s', '/api/broadcast', msg, tokenC());
	assert.equal(restSuspended.status, 403);
	assert.deepEqual(restSuspended.json, { message: 'Tenant is suspended' });
	await sleep(200);
	assert.equal(broadcastOf(a, 'rest-b').length, 0);
});

test('/healthz per tenant, /metrics with a tenant label, --check --config per tenant', { timeout: 60000 }, async () => {
	assert.equal((await rest('a', '/healthz?tenant=b')).status, 200);
	assert.equal((await rest('a', '/healthz?tenant=nope')).status, 404);
	assert.equal((await rest('b', '/healthz')).status, 200);
	const m = await rest('a', '/metrics');
	assert.equal(m.status, 200);
	assert.match(m.text, /^realtime_connections_connected\{tenant="a"\} \d+$/m);
	assert.match(m.text, /^realtime_connections_connected\{tenant="b"\} \d+$/m);
	assert.match(m.text, /^realtime_messages_out_total\{tenant="b",primitive="broadcast"\} [1-9]\d*$/m);
	assert.match(m.text, /^realtime_ring_attached\{tenant="b"\} 1$/m);
	for (const line of m.text.split('\n')) {
		if (line && !line.startsWith('#')) {
			assert.match(line, /\{tenant="[a-z]+"/, `a line without tenant label: ${line}`);
		}
	}
	const r = spawnSync(RT_FANOUT_BIN, ['--check', '--config', confFile], { encoding: 'utf8', timeout: 30000 });
	const lines = r.stdout.trim().split('\n');
	assert.ok(lines.every((l) => /^(a|b|s): /.test(l)), r.stdout);
	assert.ok(lines.some((l) => l.startsWith('a: ')), r.stdout);
	assert.ok(lines.some((l) => l.startsWith('b: ')), r.stdout);
	assert.ok(lines.some((l) => l.startsWith('s: error db: ')), r.stdout);
	assert.equal(r.status, 1, r.stdout);
	const bad = spawnSync(RT_FANOUT_BIN, ['--config', confFile, '--db', RT_DB_URL], { encoding: 'utf8', timeout: 10000 });
	assert.equal(bad.status, 2);
	assert.match(bad.stderr, /set per tenant in --config/);
});

test('SIGHUP: a bad file keeps the tenants; adding c and removing b drains b only', { timeout: 40000 }, async () => {
	const name = uniq('reload');
	const topic = `realtime:${name}`;
	const a = await connect('a', tokenA());
	const a2 = await connect('a', tokenA());
	const b = await connect('b', tokenB());
	await a.join(topic);
	await a2.join(topic);
	await b.join(topic);
	await b.join(`${topic}-2`);

	writeFileSync(confFile, '{"tenants":[{"external_id":"a","jwt_secret":"x","colour":1}]}');
	sidecar.child.kill('SIGHUP');
	await sleep(500);
	await logged(/reload refused.*unknown key "colour"/);
	assert.equal((await rest('b', '/healthz?tenant=b')).status, 200);
	assert.equal(b.isClosed, false);

	writeConfig([tenantA(), { external_id: 'c', jwt_secret: SECRET_C }]);
	sidecar.child.kill('SIGHUP');
	const disconnects = [];
	for (const t of [topic, `${topic}-2`]) {
		const f = await b.waitFor((x) => x.msg?.event === 'system' && x.msg?.topic === t, 10000, 'system', 0);
		disconnects.push(f.msg.payload);
	}
	for (const p of disconnects) {
		assert.deepEqual(p, { extension: 'system', status: 'ok', message: 'Server requested disconnect' });
	}
	const closed = await b.closed;
	assert.equal(closed.code, 1012);

	// c now works; b is unknown; a's sockets stayed and still carry broadcasts
	let probe;
	for (let i = 0; i < 100; i++) {
		probe = await upgradeProbe({ base: sidecar.base, query: { apikey: tokenC(), vsn: '1.0.0' }, headers: { Host: `c.localhost:${sidecar.port}` } });
		if (probe.status === 101) {
			break;
		}
		await sleep(100);
	}
	assert.equal(probe.status, 101);
	const gone = await upgradeProbe({ base: sidecar.base, query: { apikey: tokenB(), vsn: '1.0.0' }, headers: { Host: `b.localhost:${sidecar.port}` } });
	assert.equal(gone.status, 403);
	assert.equal(a.isClosed, false);
	assert.equal(a2.isClosed, false);
	a.push(topic, 'broadcast', { type: 'broadcast', event: 'after-reload', payload: {} });
	await a2.waitFor((f) => textBroadcast(f)?.event === 'after-reload');
	assert.equal(a.frames.items.filter((f) => f.msg?.event === 'system').length, 0);
	const c = await connect('c', tokenC());
	assert.equal((await c.join(topic)).msg.payload.status, 'ok');
	await sleep(200);
	assert.equal(broadcastOf(c, 'after-reload').length, 0);
});

test('SIGHUP: a changed tenant is drained and starts again with its new settings', { timeout: 30000 }, async () => {
	const topic = `realtime:${uniq('changed')}`;
	const a = await connect('a', tokenA());
	const c = await connect('c', tokenC());
	await a.join(topic);
	await c.join(topic);
	writeConfig([tenantA(), { external_id: 'c', jwt_secret: SECRET_C, limits: { max_channels_per_client: 1 } }]);
	sidecar.child.kill('SIGHUP');
	const sys = await c.waitFor((f) => f.msg?.event === 'system', 10000);
	assert.equal(sys.msg.payload.message, 'Server requested disconnect');
	assert.equal((await c.closed).code, 1012);
	const deadline = Date.now() + 10000;
	while ((sidecar.output().match(/reload done: tenants a, c/g) ?? []).length < 2 && Date.now() < deadline) {
		await sleep(50);
	}
	const c2 = await connect('c', tokenC());
	assert.equal((await c2.join(topic)).msg.payload.status, 'ok');
	const second = await c2.join(`${topic}-2`);
	assert.equal(second.msg.payload.status, 'error', 'the new limit applies');
	assert.equal(second.msg.payload.response.reason, 'ChannelRateLimitReached: Too many channels');
	assert.equal(a.isClosed, false);
	await a.heartbeat();
});
