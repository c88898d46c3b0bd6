// 42 defaults fit for self-hosting (issue 16, point 4; PROTOCOL.md 9.1): one tenant from the
// flags starts from the `unlimited` profile, so one application's traffic never meets a
// quota; a --config tenant without limits keeps upstream's (100 events/s); --limits NAME picks
// a profile (Supabase's plan quotas) and a --max-* flag still wins over it. Without
// --ring-path the single tenant asks the database where its ring is and delivers
// realtime.send(). Each sidecar here is started without the suite's lifted limits.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { RawClient, RT_DB_URL, jwt, startSidecar, stopChecked, createClient, closeClients, collectBroadcasts, subscribe, uniq, sleep } from './lib/helpers.mjs';

const sidecars = [];
const dir = mkdtempSync('/tmp/rt-e2e-limits-');
after(async () => {
	await closeClients();
	for (const s of sidecars) await stopChecked(s);
	rmSync(dir, { recursive: true, force: true });
});

async function start(args, opts = {}) {
	const s = await startSidecar(args, { limits: false, ...opts });
	sidecars.push(s);
	return s;
}
const limitsLine = (s) => /: limits (.*)$/m.exec(s.output())?.[1] ?? '';

// a sends `rate` broadcasts/s for ms to b on one topic (2 events each: in and out); resolves
// with whether the channel was ended by the events limit and how many b got.
async function traffic(base, rate, ms, headers = {}) {
	const a = await RawClient.connect({ base, headers });
	const b = await RawClient.connect({ base, headers });
	const topic = `realtime:${uniq('ev')}`;
	await a.join(topic, { joinRef: '1' });
	await b.join(topic, { joinRef: '1' });
	let ended = null;
	a.waitFor((f) => f.msg?.event === 'system' && f.msg.payload?.status === 'error', ms + 5000)
		.then((f) => (ended = f.msg.payload.message))
		.catch(() => {});
	const t0 = Date.now();
	let sent = 0;
	while (Date.now() - t0 < ms && !ended) {
		const due = Math.floor(((Date.now() - t0) * rate) / 1000);
		for (; sent < due; sent++) a.push(topic, 'broadcast', { type: 'broadcast', event: 'e', payload: { i: sent } }, { joinRef: '1' });
		await sleep(10);
	}
	await sleep(1500); // the average is looked at once a second
	const got = b.frames.items.filter((f) => f.msg?.event === 'broadcast').length;
	await a.close();
	await b.close();
	return { ended, sent, got };
}

test('500 events/s from two clients for 14 s: a single tenant (unlimited by default) carries them; a --config tenant without limits (upstream: 100/s) is stopped', { timeout: 60000 }, async () => {
	const single = await start([]);
	assert.match(limitsLine(single), /\bmax_events_per_second=1000000000\b.*\(profile unlimited\)$/);
	const conf = join(dir, 'tenants.json');
	writeFileSync(conf, JSON.stringify({ tenants: [{ external_id: 'acme', jwt_secret: jwt.JWT_SECRET }] }));
	const multi = await start(['--config', conf], { tenantFlags: false });
	assert.match(limitsLine(multi), /\bmax_events_per_second=100\b.*\(profile upstream\)$/);
	const [a, b] = await Promise.all([
		traffic(single.base, 250, 14000),
		traffic(multi.base, 250, 14000, { Host: `acme.localhost:${multi.port}` }),
	]);
	console.log(`# single: sent ${a.sent}, received ${a.got}, ended: ${a.ended}; --config: sent ${b.sent}, ended: ${b.ended}`);
	assert.equal(a.ended, null, 'not stopped');
	assert.equal(a.got, a.sent, 'every broadcast arrived');
	assert.equal(b.ended, 'Too many messages per second', "upstream's limit still applies to a --config tenant");
});

test('--limits NAME: a profile (pro = 500 users, 500 joins/s, 500 events/s); a --max-* flag wins; an unknown name is refused', { timeout: 20000 }, async () => {
	const pro = await start(['--limits', 'pro', '--max-joins-per-second', '7']);
	const line = limitsLine(pro);
	assert.match(line, /\bmax_concurrent_users=500\b/);
	assert.match(line, /\bmax_events_per_second=500\b/);
	assert.match(line, /\bmax_presence_events_per_second=50\b/);
	assert.match(line, /\bmax_joins_per_second=7\b/, 'the flag wins');
	assert.match(line, /\(profile pro\)$/);
	const free = await start(['--limits', 'free']);
	assert.match(limitsLine(free), /\bmax_payload_size_in_kb=256\b/);
	await assert.rejects(start(['--limits', 'gold']), /invalid --limits gold \(one of upstream, free, pro, team, unlimited\)/);
	// in a --config file too, per tenant
	const conf = join(dir, 'team.json');
	writeFileSync(conf, JSON.stringify({ tenants: [{ external_id: 'acme', jwt_secret: jwt.JWT_SECRET, limits: { profile: 'team', max_events_per_second: 9 } }] }));
	const team = await start(['--config', conf], { tenantFlags: false });
	assert.match(limitsLine(team), /\bmax_concurrent_users=10000\b.*\bmax_events_per_second=9\b.*\(profile team\)$/);
});

test('no --ring-path: the single tenant asks the database for its ring and delivers realtime.send()', { timeout: 20000 }, async () => {
	const s = await start([]);
	const deadline = Date.now() + 10000;
	while (!/the database's ring is \S+/.test(s.output()) && Date.now() < deadline) await sleep(50);
	assert.match(s.output(), /the database's ring is \S+/, 'the start-up log names the ring it attached');
	const name = uniq('ringless');
	const ch = createClient({ base: s.base }).channel(name);
	const inbox = collectBroadcasts(ch);
	await subscribe(ch);
	const db = new pg.Client({ connectionString: RT_DB_URL });
	await db.connect();
	try {
		await db.query(`SELECT realtime.send('{"hello": "ring"}', 'e', $1)`, [name]);
	} finally {
		await db.end();
	}
	const m = await inbox.waitFor((x) => x.event === 'e', 5000, { what: 'the realtime.send message' });
	assert.equal(m.payload.hello, 'ring');
});
