// 30 metrics: GET /metrics is Prometheus text (format 0.0.4) and its counters move with the
// traffic: connections, joins (ok / refused), messages and bytes in and out per primitive,
// drops by reason, presence topics, the authorizer's checks and latency, the ring; and the
// tenant limits in force.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startSidecar, jwt, uniq, sleep, RT_URL } from './lib/helpers.mjs';
import { openDb } from './lib/pgchanges.mjs';

const sidecars = [];
after(async () => {
	for (const s of sidecars) {
		await s.stop();
	}
});

// Parse the exposition text: every sample as {name, labels, value}; checks the line syntax
// and that each sample's family was declared by # TYPE before it.
async function scrape(base) {
	const res = await fetch(`${base}/metrics`);
	assert.equal(res.status, 200);
	assert.match(res.headers.get('content-type'), /^text\/plain/);
	const text = await res.text();
	const types = new Map();
	const samples = new Map();
	for (const line of text.split('\n')) {
		if (line === '') {
			continue;
		}
		let m = line.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/);
		if (m) {
			types.set(m[1], m[2]);
			continue;
		}
		if (line.startsWith('# HELP ')) {
			continue;
		}
		m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|\+Inf)$/);
		assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
		const family = m[1].replace(/_(bucket|sum|count)$/, '');
		assert.ok(types.has(m[1]) || types.has(family), `no # TYPE before ${m[1]}`);
		samples.set(m[1] + (m[2] ?? ''), Number(m[3]));
	}
	// every sample names its tenant: the test sidecars serve one, "realtime" (--tenant-id)
	return (name, labels = '') => {
		const key = `${name}{tenant="realtime"${labels ? `,${labels}` : ''}}`;
		assert.ok(samples.has(key), `metric ${key} is exposed`);
		return samples.get(key);
	};
}

test('counters follow connections, joins, broadcasts, presence and drops', { timeout: 15000 }, async () => {
	const s = await startSidecar(['--max-payload-kb', '1', '--channel-error-backoff-ms', '0']);
	sidecars.push(s);
	let m = await scrape(s.base);
	assert.equal(m('realtime_connections_connected'), 0);
	assert.equal(m('realtime_channel_joins_total', 'result="ok"'), 0);
	// the limits in force, as /metrics and the start-up line show them (the benchmarks check them)
	assert.equal(m('realtime_tenant_limit', 'limit="max_payload_size_in_kb"'), 1);
	assert.equal(m('realtime_tenant_limit', 'limit="max_events_per_second"'), 1000000000);
	assert.equal(m('realtime_tenant_limit', 'limit="max_channels_per_client"'), 100);
	assert.match(s.output(), /tenant realtime: limits .*\bmax_events_per_second=1000000000 .*\bmax_payload_size_in_kb=1\b/);

	const a = await RawClient.connect({ base: s.base });
	const b = await RawClient.connect({ base: s.base });
	const topic = `realtime:${uniq('metrics')}`;
	await a.join(topic, { joinRef: '1', config: { broadcast: { self: false, ack: true } } });
	await b.join(topic, { joinRef: '1' });
	const refused = await a.join('realtime:', { joinRef: '2' });
	assert.equal(refused.msg.payload.status, 'error');
	for (let i = 0; i < 3; i++) {
		await a.reply(a.push(topic, 'broadcast', { type: 'broadcast', event: 'e', payload: { i } }, { joinRef: '1' }));
	}
	await b.waitFor((f) => f.msg?.payload?.payload?.i === 2);
	a.push(topic, 'broadcast', { type: 'broadcast', event: 'big', payload: { x: 'y'.repeat(2000) } }, { joinRef: '1' });
	await a.waitFor((f) => f.msg?.event === 'phx_reply' && f.msg.payload.response === 'payload_size_exceeded');
	await a.reply(a.push(topic, 'presence', { type: 'presence', event: 'track', payload: { n: 1 } }, { joinRef: '1' }));
	await b.waitFor((f) => f.msg?.event === 'presence_diff');

	m = await scrape(s.base);
	assert.equal(m('realtime_connections_connected'), 2);
	assert.equal(m('realtime_connections_total'), 2);
	assert.equal(m('realtime_channels_joined'), 2);
	assert.equal(m('realtime_channel_joins_total', 'result="ok"'), 2);
	assert.equal(m('realtime_channel_joins_total', 'result="refused"'), 1);
	assert.equal(m('realtime_messages_in_total', 'primitive="broadcast"'), 4);
	assert.equal(m('realtime_messages_in_total', 'primitive="presence"'), 1);
	assert.equal(m('realtime_messages_out_total', 'primitive="broadcast"'), 3, 'to b only: self is off');
	assert.equal(m('realtime_messages_out_total', 'primitive="presence"'), 2, 'the diff to both');
	assert.ok(m('realtime_bytes_in_total', 'primitive="broadcast"') > 2000);
	assert.ok(m('realtime_bytes_out_total', 'primitive="broadcast"') > 0);
	assert.equal(m('realtime_messages_dropped_total', 'reason="payload_too_large"'), 1);
	assert.equal(m('realtime_presence_topics'), 1);

	await a.close();
	await b.close();
	await sleep(200);
	m = await scrape(s.base);
	assert.equal(m('realtime_connections_connected'), 0);
	assert.equal(m('realtime_channels_joined'), 0);
	assert.equal(m('realtime_presence_topics'), 0, 'the closed socket left');
});

test('authorizer checks and their latency histogram; the ring', { timeout: 15000 }, async () => {
	let m = await scrape(RT_URL);
	const okBefore = m('realtime_authorizer_checks_total', 'status="ok"');
	const countBefore = m('realtime_authorizer_latency_seconds_count');
	const ringBefore = m('realtime_ring_messages_total');
	assert.equal(m('realtime_ring_attached'), 1);

	const c = await RawClient.connect({ token: jwt.anon() });
	const r = await c.join(`realtime:${uniq('metrics-priv')}`, { config: { private: true } });
	assert.equal(r.msg.payload.status, 'error', 'no policy lets anon read');
	await c.close();
	const db = await openDb();
	try {
		await db.query(`SELECT realtime.send('{}'::jsonb, 'm', $1, false)`, [uniq('metrics-ring')]);
	} finally {
		await db.end();
	}
	const deadline = Date.now() + 3000;
	do {
		await sleep(50);
		m = await scrape(RT_URL);
	} while (m('realtime_ring_messages_total') === ringBefore && Date.now() < deadline);
	assert.equal(m('realtime_ring_messages_total'), ringBefore + 1);
	assert.equal(m('realtime_authorizer_checks_total', 'status="ok"'), okBefore + 1, 'a denial is an ok check');
	assert.equal(m('realtime_authorizer_latency_seconds_count'), countBefore + 1);
	assert.equal(m('realtime_authorizer_latency_seconds_bucket', 'le="+Inf"'), countBefore + 1);
	assert.ok(m('realtime_authorizer_latency_seconds_sum') > 0);
	assert.equal(m('realtime_authorizer_queue'), 0);
});

test('--metrics-jwt-secret: /metrics needs a Bearer JWT signed with it, else 403', { timeout: 15000 }, async () => {
	const secret = 'metrics-secret-0123456789-0123456789';
	const s = await startSidecar(['--metrics-jwt-secret', secret]);
	sidecars.push(s);
	const get = (token) =>
		fetch(`${s.base}/metrics`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
	const exp = Math.floor(Date.now() / 1000) + 60;
	assert.equal((await get()).status, 403);
	assert.equal((await get(jwt.anon())).status, 403, 'a project token is not a metrics token');
	const ok = await get(jwt.sign({ role: 'metrics', exp }, { secret }));
	assert.equal(ok.status, 200);
	assert.match(await ok.text(), /^# HELP realtime_connections_connected /);
});
