// 33 tenants, review findings (PROTOCOL.md 1.3, 1.6, 2.6, 3.3): a sidecar of its own with
// --config and two tenants without a database.
// - The tenant is the Host's first label, and a Host is case-insensitive (RFC 9110 4.2.3,
//   RFC 4343): "A.example.com" names tenant "a", at connect, REST and /healthz alike.
// - A socket of a tenant that a reload is draining ("Server requested disconnect" sent, the
//   close waiting for a delayed join refusal) takes no new join: it is refused with
//   RealtimeRestarting instead of joining a tenant that is being stopped.
// - A reload that drains several tenants drains them at once: its time is one drain, not the sum.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { RT_FANOUT_BIN, RawClient, jwt, sleep, startSidecar, stopChecked, uniq, upgradeProbe } from './lib/helpers.mjs';

const SECRET_A = 'review-secret-of-tenant-a-0123456789abcdef';
const SECRET_B = 'review-secret-of-tenant-b-0123456789abcdef';
const SECRET_D = 'review-secret-of-tenant-d-0123456789abcdef';
const BACKOFF_MS = 2500;

let confDir = '';
let confFile = '';
let sidecar;
const clients = [];

const token = (secret) => jwt.sign({ role: 'anon', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 }, { secret });

function writeConfig(ids) {
	const secrets = { a: SECRET_A, b: SECRET_B, d: SECRET_D };
	writeFileSync(confFile, JSON.stringify({ tenants: ids.map((id) => ({ external_id: id, jwt_secret: secrets[id] })) }));
}

async function connect(host, secret) {
	const c = await RawClient.connect({ base: sidecar.base, token: token(secret), vsn: '1.0.0', headers: { Host: host } });
	clients.push(c);
	return c;
}

// POST /api/broadcast with this Host and token: the status.
function restBroadcast(host, tok, topic) {
	const data = JSON.stringify({ messages: [{ topic, event: 'rest', payload: { x: 1 } }] });
	return new Promise((resolve, reject) => {
		const headers = { Host: host, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), Authorization: `Bearer ${tok}` };
		const req = http.request({ host: '127.0.0.1', port: sidecar.port, method: 'POST', path: '/api/broadcast', agent: false, headers }, (res) => {
			res.resume();
			res.on('end', () => resolve(res.statusCode));
		});
		req.setTimeout(5000, () => req.destroy(new Error('/api/broadcast: timeout')));
		req.on('error', reject);
		req.end(data);
	});
}

before(async () => {
	assert.ok(RT_FANOUT_BIN, 'RT_FANOUT_BIN is set (run through scripts/test.sh)');
	confDir = mkdtempSync('/tmp/rt-tenants-review-');
	confFile = `${confDir}/tenants.json`;
	writeConfig(['a', 'b', 'd']);
	sidecar = await startSidecar(['--config', confFile, '--connect-error-backoff-ms', '0', '--channel-error-backoff-ms', String(BACKOFF_MS)], { tenantFlags: false, ms: 20000 });
});

after(async () => {
	for (const c of clients) {
		c.terminate();
	}
	await stopChecked(sidecar);
	if (confDir) {
		rmSync(confDir, { recursive: true, force: true });
	}
});

test('the Host names its tenant whatever its case (connect and REST)', async () => {
	for (const host of [`A.localhost:${sidecar.port}`, `a.LOCALHOST:${sidecar.port}`, `A.Example.COM.`]) {
		const probe = await upgradeProbe({ base: sidecar.base, query: { apikey: token(SECRET_A), vsn: '1.0.0' }, headers: { Host: host } });
		assert.equal(probe.status, 101, `Host ${host}: ${probe.body ?? ''}`);
	}
	// the other tenant's token is still refused under an upper-case Host of a
	const cross = await upgradeProbe({ base: sidecar.base, query: { apikey: token(SECRET_B), vsn: '1.0.0' }, headers: { Host: `A.localhost:${sidecar.port}` } });
	assert.equal(cross.status, 401);
	const sub = uniq('case');
	const c = await connect(`B.localhost:${sidecar.port}`, SECRET_B);
	assert.equal((await c.join(`realtime:${sub}`)).msg.payload.status, 'ok');
	assert.equal(await restBroadcast(`B.LOCALHOST:${sidecar.port}`, token(SECRET_B), sub), 202);
	await c.waitFor((f) => f.msg?.event === 'broadcast' && f.msg?.payload?.event === 'rest');
	assert.equal(await restBroadcast(`B.localhost:${sidecar.port}`, token(SECRET_A), sub), 401);
});

test('a draining socket takes no new join (RealtimeRestarting), then closes 1012', { timeout: 30000 }, async () => {
	const topic = `realtime:${uniq('drain')}`;
	const d = await connect(`d.localhost:${sidecar.port}`, SECRET_D);
	assert.equal((await d.join(topic)).msg.payload.status, 'ok');
	// a refusal answered BACKOFF_MS later keeps the socket open while it drains
	d.push('realtime:', 'phx_join', { config: {}, access_token: d.token }, { joinRef: '900', ref: '900' });
	writeConfig(['a', 'b']);
	sidecar.child.kill('SIGHUP');
	const sys = await d.waitFor((f) => f.msg?.event === 'system', 10000);
	assert.equal(sys.msg.payload.message, 'Server requested disconnect');
	assert.equal(d.isClosed, false, 'still open: the delayed refusal is not out yet');
	const late = await d.join(`${topic}-late`, { ms: 2 * BACKOFF_MS + 2000 });
	assert.equal(late.msg.payload.status, 'error', `a join after the disconnect: ${JSON.stringify(late.msg.payload)}`);
	assert.equal(late.msg.payload.response.reason, 'RealtimeRestarting: Realtime is restarting, please standby');
	assert.equal((await d.closed).code, 1012);
	await sleep(100);
});

// Keeps c open after its disconnect: a refused join (empty topic) every 300 ms until the
// "Server requested disconnect" arrives, each answered BACKOFF_MS later.
async function holdOpen(c) {
	let n = 0;
	while (!c.isClosed && !c.frames.items.some((f) => f.msg?.event === 'system')) {
		c.push('realtime:', 'phx_join', { config: {}, access_token: c.token }, { joinRef: `h${n}`, ref: `h${n++}` });
		await sleep(300);
	}
}

test('a reload changing two tenants drains them together, not one after the other', { timeout: 40000 }, async () => {
	const done = () => (sidecar.output().match(/reload done/g) ?? []).length;
	let before = done();
	writeConfig(['a', 'b', 'd']);
	sidecar.child.kill('SIGHUP');
	for (let i = 0; i < 200 && done() === before; i++) {
		await sleep(50);
	}
	const topic = `realtime:${uniq('both')}`;
	const b = await connect(`b.localhost:${sidecar.port}`, SECRET_B);
	const d = await connect(`d.localhost:${sidecar.port}`, SECRET_D);
	assert.equal((await b.join(topic)).msg.payload.status, 'ok');
	assert.equal((await d.join(topic)).msg.payload.status, 'ok');
	const holds = [holdOpen(b), holdOpen(d)];
	await sleep(BACKOFF_MS); // both have refusals in flight all along
	before = done();
	const secrets = { a: SECRET_A, b: SECRET_B, d: SECRET_D };
	writeFileSync(confFile, JSON.stringify({ tenants: ['a', 'b', 'd'].map((id) => ({ external_id: id, jwt_secret: secrets[id], ...(id === 'a' ? {} : { limits: { max_channels_per_client: 7 } }) })) }));
	const t0 = Date.now();
	sidecar.child.kill('SIGHUP');
	while (done() === before && Date.now() - t0 < 20000) {
		await sleep(20);
	}
	const took = Date.now() - t0;
	await Promise.all(holds);
	assert.equal((await b.closed).code, 1012);
	assert.equal((await d.closed).code, 1012);
	// each socket needs about BACKOFF_MS after its disconnect; one after the other is twice that
	assert.ok(took < 1.6 * BACKOFF_MS, `the reload took ${took} ms for two drains of about ${BACKOFF_MS} ms each`);
});

test('unknown Hosts are logged at most once a second, escaped, the rest counted', { timeout: 15000 }, async () => {
	const before = sidecar.output().split('\n').filter((l) => l.includes('no tenant for Host')).length;
	await sleep(1100); // a line logged by an earlier test does not hold back the first one here
	const probes = [];
	for (let i = 0; i < 40; i++) {
		probes.push(upgradeProbe({ base: sidecar.base, query: { apikey: token(SECRET_A), vsn: '1.0.0' }, headers: { Host: `nobody"${i}\\.example.test` } }).catch(() => null));
	}
	await Promise.all(probes);
	await sleep(200);
	const lines = sidecar.output().split('\n').filter((l) => l.includes('no tenant for Host')).slice(before);
	assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} lines for 40 bad Hosts`);
	assert.ok(!/nobody"/.test(lines.join('\n')), 'quotes of the Host are escaped');
	assert.match(lines[0], /nobody\\x22\d+\\x5c\.example\.test/);
});
