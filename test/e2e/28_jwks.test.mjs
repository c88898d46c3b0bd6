// 28 asymmetric JWTs through a JWKS (PROTOCOL.md 1.4, 1.5, 3.5): an extra sidecar started with
// --jwt-jwks @file, where the file holds RS256, ES256 and EdDSA public keys generated here with
// node:crypto; tokens are signed here too. Each is accepted by realtime-js (join and broadcast);
// a token whose kid the JWKS lacks is refused at connect (401, signer message) and at join
// (JwtSignerError reason); the shared secret keeps working beside the JWKS. Also: a JWKS that
// is not JSON refuses to start, and --jwt-claim-validators refuses a token whose claim differs.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
	startSidecar,
	createClient,
	closeClients,
	subscribe,
	collectBroadcasts,
	upgradeProbe,
	RawClient,
	uniq,
	jwt,
} from './lib/helpers.mjs';

const b64url = (data) => Buffer.from(data).toString('base64url');

// One key per algorithm family: [alg, kid, node:crypto key pair, digest for sign()].
const keys = [
	['RS256', 'e2e-rsa', generateKeyPairSync('rsa', { modulusLength: 2048 }), 'sha256'],
	['ES256', 'e2e-ec', generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'sha256'],
	['EdDSA', 'e2e-ed', generateKeyPairSync('ed25519'), null],
];

// Sign claims as a compact JWS, built by hand like lib/jwt.mjs does for HS256. ES256 wants
// the raw r || s form (ieee-p1363), not DER.
function signJwt(claims, alg, kid, privateKey, digest) {
	const head = b64url(JSON.stringify({ alg, kid, typ: 'JWT' }));
	const body = b64url(JSON.stringify(claims));
	const input = Buffer.from(`${head}.${body}`);
	const key = alg.startsWith('ES') ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey;
	return `${head}.${body}.${b64url(cryptoSign(digest, input, key))}`;
}

function claims(role = 'anon') {
	const t = Math.floor(Date.now() / 1000);
	return { iss: 'supabase', ref: 'e2e', role, iat: t, exp: t + 3600 };
}

const unknownKidMessage = (kid) =>
	`Failed to generate JWT signer for key ID (kid) "${kid}", check your JWT secret or JWKS configuration`;

let side;
let dir;

before(async () => {
	dir = mkdtempSync(join(tmpdir(), 'rt-jwks-'));
	const jwks = {
		keys: keys.map(([alg, kid, pair]) => ({ ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' })),
	};
	const file = join(dir, 'jwks.json');
	writeFileSync(file, JSON.stringify(jwks));
	side = await startSidecar(['--jwt-jwks', `@${file}`, '--connect-error-backoff-ms', '0', '--channel-error-backoff-ms', '0']);
});

after(async () => {
	await closeClients();
	await side?.stop();
	if (dir) {
		rmSync(dir, { recursive: true, force: true });
	}
});

for (const [alg, kid, pair, digest] of keys) {
	test(`${alg} token (kid ${kid}): realtime-js connects, joins and broadcasts`, { timeout: 15000 }, async () => {
		const token = signJwt(claims(), alg, kid, pair.privateKey, digest);
		const probe = await upgradeProbe({ base: side.base, query: { apikey: token, vsn: '2.0.0' } });
		assert.equal(probe.status, 101, probe.body);

		const name = uniq(`jwks-${alg}`);
		const sender = createClient({ base: side.base, token }).channel(name, { config: { broadcast: { self: false } } });
		const receiver = createClient({ base: side.base, token }).channel(name);
		const inbox = collectBroadcasts(receiver, 'greet');
		await subscribe(receiver);
		await subscribe(sender);
		const sent = await sender.send({ type: 'broadcast', event: 'greet', payload: { alg } });
		assert.equal(sent, 'ok');
		const got = await inbox.waitFor(() => true, 3000, { what: 'the broadcast' });
		assert.deepEqual(got.payload, { alg });
	});
}

test('unknown kid at connect: HTTP 401 with the exact signer message', { timeout: 10000 }, async () => {
	const [alg, , pair, digest] = keys[0];
	const token = signJwt(claims(), alg, 'not-in-the-jwks', pair.privateKey, digest);
	const r = await upgradeProbe({ base: side.base, query: { apikey: token, vsn: '2.0.0' } });
	assert.equal(r.status, 401);
	assert.match(r.headers['content-type'], /application\/json/);
	assert.deepEqual(JSON.parse(r.body), { error: unknownKidMessage('not-in-the-jwks') });
});

test('unknown kid at join: JwtSignerError reason', { timeout: 10000 }, async () => {
	const [alg, kid, pair, digest] = keys[1];
	const raw = await RawClient.connect({ base: side.base, token: signJwt(claims(), alg, kid, pair.privateKey, digest) });
	try {
		const topic = `realtime:${uniq('jwks-kid')}`;
		const bad = signJwt(claims(), alg, 'gone-kid', pair.privateKey, digest);
		const reply = await raw.join(topic, { joinRef: '1', ref: '1', accessToken: bad });
		assert.deepEqual(reply.json, [
			'1',
			'1',
			topic,
			'phx_reply',
			{ status: 'error', response: { reason: `JwtSignerError: ${unknownKidMessage('gone-kid')}` } },
		]);
	} finally {
		await raw.close();
	}
});

test('a token signed by another key under a known kid: 401 signature error', { timeout: 10000 }, async () => {
	const [alg, kid, , digest] = keys[2];
	const other = generateKeyPairSync('ed25519');
	const token = signJwt(claims(), alg, kid, other.privateKey, digest);
	const r = await upgradeProbe({ base: side.base, query: { apikey: token, vsn: '2.0.0' } });
	assert.equal(r.status, 401);
	assert.deepEqual(JSON.parse(r.body), { error: 'Failed to validate JWT signature' });
});

test('the shared secret still verifies HS256 tokens beside the JWKS', { timeout: 10000 }, async () => {
	const r = await upgradeProbe({ base: side.base, query: { apikey: jwt.anon(), vsn: '2.0.0' } });
	assert.equal(r.status, 101, r.body);
});

test('a JWKS that is not JSON refuses to start; --help documents the flags', () => {
	const bin = process.env.RT_FANOUT_BIN;
	const bad = spawnSync(bin, ['--jwt-jwks', 'not json'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
	assert.equal(bad.status, 2);
	assert.match(bad.stderr, /JWKS is not a JSON object/);
	const help = spawnSync(bin, ['--help'], { encoding: 'utf8' });
	for (const word of ['--jwt-jwks', 'JWT_JWKS', '--jwt-claim-validators', 'JWT_CLAIM_VALIDATORS']) {
		assert.ok(help.stdout.includes(word), `--help lacks ${word}`);
	}
});

test('--jwt-claim-validators: a differing iss is refused with 401 "Invalid token"', { timeout: 15000 }, async () => {
	const [alg, kid, pair, digest] = keys[0];
	const jwks = JSON.stringify({ keys: [{ ...pair.publicKey.export({ format: 'jwk' }), kid }] });
	const strict = await startSidecar(['--jwt-jwks', jwks, '--jwt-claim-validators', '{"iss":"supabase","aud":"authenticated"}', '--connect-error-backoff-ms', '0']);
	try {
		const good = signJwt({ ...claims(), aud: ['x', 'authenticated'] }, alg, kid, pair.privateKey, digest);
		const ok = await upgradeProbe({ base: strict.base, query: { apikey: good, vsn: '2.0.0' } });
		assert.equal(ok.status, 101, ok.body);
		const other = signJwt({ ...claims(), iss: 'elsewhere', aud: 'authenticated' }, alg, kid, pair.privateKey, digest);
		const r = await upgradeProbe({ base: strict.base, query: { apikey: other, vsn: '2.0.0' } });
		assert.equal(r.status, 401);
		assert.deepEqual(JSON.parse(r.body), { error: 'Invalid token' });
	} finally {
		await strict.stop();
	}
});
