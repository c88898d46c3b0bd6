// 10 connect errors: the upgrade request is answered with a plain HTTP error and
// a JSON body {"error": ...} (PROTOCOL.md 1.2, 1.4, 1.5); a bad vsn is 403 with
// an empty body. The connect-error back-off delays refused upgrades without
// blocking the server (section 0: configurable, 0 in tests).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { upgradeProbe, startSidecar, RawClient, jwt, sleep } from './lib/helpers.mjs';

const sidecars = [];
after(() => Promise.all(sidecars.map((s) => s.stop())));

const SIGNER_ERROR = 'Failed to generate JWT signer, check your JWT secret or JWKS configuration';
const FIELDS_REQUIRED = 'Fields `role` and `exp` are required in JWT';

const cases = [
	['missing apikey', null, 401, 'API key is missing'],
	['expired token', jwt.expired(), 401, 'Token has expired'],
	['wrong signature', jwt.wrongSecret(), 401, 'Failed to validate JWT signature'],
	['malformed token', jwt.malformed(), 401, 'The token provided is not a valid JWT'],
	['three garbage segments', 'aaaa.bbbb.cccc', 401, 'The token provided is not a valid JWT'],
	['missing role', jwt.missingRole(), 401, FIELDS_REQUIRED],
	['missing exp', jwt.missingExp(), 401, FIELDS_REQUIRED],
	['alg none', jwt.algNone(), 401, SIGNER_ERROR],
];

for (const path of ['/realtime/v1/websocket', '/socket/websocket']) {
	for (const [label, token, status, message] of cases) {
		test(`${path}: ${label} -> ${status} {"error":"${message}"}`, { timeout: 5000 }, async () => {
			const query = { vsn: '2.0.0' };
			if (token !== null) {
				query.apikey = token;
			}
			const res = await upgradeProbe({ path, query });
			assert.equal(res.status, status, `body: ${res.body}`);
			assert.match(res.headers['content-type'] ?? '', /^application\/json/);
			assert.deepEqual(JSON.parse(res.body), { error: message });
		});
	}
}

test('a valid anon token upgrades (101) on both paths', { timeout: 5000 }, async () => {
	for (const path of ['/realtime/v1/websocket', '/socket/websocket']) {
		const res = await upgradeProbe({ path, query: { apikey: jwt.anon(), vsn: '2.0.0' } });
		assert.equal(res.status, 101, `${path}: ${res.status} ${res.body}`);
	}
});

for (const vsn of ['3.0.0', '2.1.0', '1.1.0', 'abc', '']) {
	test(`vsn=${JSON.stringify(vsn)} -> 403 with an empty body`, { timeout: 5000 }, async () => {
		const res = await upgradeProbe({ query: { apikey: jwt.anon(), vsn } });
		assert.equal(res.status, 403, `body: ${res.body}`);
		assert.equal(res.body, '');
	});
}

test('the same refusal through the ws client: "unexpected-response" with status and body', { timeout: 5000 }, async () => {
	const url = `${process.env.RT_URL.replace(/^http/, 'ws')}/realtime/v1/websocket?apikey=${jwt.expired()}&vsn=2.0.0`;
	const { status, body } = await new Promise((resolve, reject) => {
		const ws = new WebSocket(url);
		ws.on('open', () => reject(new Error('upgrade accepted')));
		ws.on('error', () => {});
		ws.on('unexpected-response', (_req, res) => {
			let b = '';
			res.on('data', (d) => (b += d));
			res.on('end', () => resolve({ status: res.statusCode, body: b }));
		});
	});
	assert.equal(status, 401);
	assert.deepEqual(JSON.parse(body), { error: 'Token has expired' });
});

test('x-api-key header takes precedence over the apikey parameter', { timeout: 5000 }, async () => {
	const goodHeader = await upgradeProbe({
		query: { apikey: jwt.wrongSecret(), vsn: '2.0.0' },
		headers: { 'x-api-key': jwt.anon() },
	});
	assert.equal(goodHeader.status, 101, `good header, bad param: ${goodHeader.status} ${goodHeader.body}`);

	const badHeader = await upgradeProbe({
		query: { apikey: jwt.anon(), vsn: '2.0.0' },
		headers: { 'x-api-key': jwt.wrongSecret() },
	});
	assert.equal(badHeader.status, 401, `bad header, good param: ${badHeader.body}`);
	assert.deepEqual(JSON.parse(badHeader.body), { error: 'Failed to validate JWT signature' });

	const headerOnly = await upgradeProbe({ query: { vsn: '2.0.0' }, headers: { 'x-api-key': jwt.anon() } });
	assert.equal(headerOnly.status, 101, `header only: ${headerOnly.body}`);
});

// PROTOCOL.md 1.5: the token is URL-decoded and all whitespace/newlines are removed.
for (const [label, insert] of [
	['a space', ' '],
	['a tab', '\t'],
	['a newline', '\n'],
	['CR LF', '\r\n'],
]) {
	test(`a token with ${label} inside and at the end (URL-encoded) is accepted`, { timeout: 5000 }, async () => {
		const t = jwt.anon();
		const spaced = encodeURIComponent(`${t.slice(0, 20)}${insert}${t.slice(20)}${insert}`);
		const res = await upgradeProbe({ rawQuery: `apikey=${spaced}&vsn=2.0.0` });
		assert.equal(res.status, 101, `${res.status} ${res.body}`);
	});
}

test('back-off: refused upgrades wait >= 300 ms while the server keeps serving', { timeout: 20000 }, async () => {
	// One shard, so a back-off that blocked the event loop would block everyone else too.
	const side = await startSidecar(['--connect-error-backoff-ms', '300', '--shards', '1']);
	sidecars.push(side);
	const connected = await RawClient.connect({ base: side.base, vsn: '2.0.0' });
	try {
		await connected.heartbeat(2000);

		// Four refused upgrades at once; meanwhile the connected client heartbeats and a
		// new client connects.
		const t0 = performance.now();
		const refused = [1, 2, 3, 4].map(() =>
			upgradeProbe({ base: side.base, query: { apikey: jwt.expired(), vsn: '2.0.0' } }).then(
				(r) => ({ ...r, doneAt: performance.now() - t0 }),
				(e) => ({ error: e.message, doneAt: performance.now() - t0 })
			)
		);
		await sleep(100);
		const hb = await connected.heartbeat(2000);
		const hbDoneAt = performance.now() - t0;
		assert.deepEqual(hb.json[4], { status: 'ok', response: {} });
		const fresh = await RawClient.connect({ base: side.base, vsn: '2.0.0' });
		const hb2 = await fresh.heartbeat(2000);
		await fresh.close();
		assert.deepEqual(hb2.json[4], { status: 'ok', response: {} });

		const results = await Promise.all(refused);
		const times = results.map((r) => r.doneAt.toFixed(0)).join(', ');
		for (const r of results) {
			assert.equal(r.error, undefined, `refused upgrade got no HTTP answer after ${r.doneAt.toFixed(0)} ms: ${r.error}`);
			assert.equal(r.status, 401);
			assert.deepEqual(JSON.parse(r.body), { error: 'Token has expired' });
			assert.ok(r.ms >= 295, `refused upgrade answered after ${r.ms.toFixed(0)} ms (< 300)`);
			assert.ok(r.ms < 3000, `refused upgrade answered after ${r.ms.toFixed(0)} ms`);
		}
		// Side by side: one after another they would be answered >= 300 ms apart.
		const done = results.map((r) => r.doneAt);
		assert.ok(Math.max(...done) - Math.min(...done) < 250, `refusals answered at ${times} ms: back-offs serialized?`);
		assert.ok(
			hbDoneAt < Math.min(...done),
			`heartbeat answered at ${hbDoneAt.toFixed(0)} ms, refusals at ${times} ms: the back-off blocked the server`
		);
	} finally {
		await connected.close();
	}
});
