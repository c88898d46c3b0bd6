// 35 fault figures (docs/OPERATIONS.md "Faults, measured"): the sidecar killed with -9 while
// the database commits 1,000 realtime.send a second, and PostgreSQL restarted (-m fast, then
// -m immediate) under a subscribed realtime-js client. Each test prints its figures as
// diagnostics. The restarts run on a throwaway second cluster (lib/cluster.mjs), never on the
// suite's. Needs RT_DB_URL, RT_RING_PATH and RT_FANOUT_BIN (scripts/test.sh).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
	RT_DB_URL,
	Inbox,
	createClient,
	closeClients,
	subscribe,
	collectBroadcasts,
	startSidecar,
	healthz,
	uniq,
	sleep,
} from './lib/helpers.mjs';
import { startCluster } from './lib/cluster.mjs';

const RT_RING_PATH = process.env.RT_RING_PATH ?? '';
const sidecars = [];
const clusters = [];
after(async () => {
	await closeClients();
	for (const s of sidecars) {
		await s.stop();
	}
	clusters.forEach((c) => c.stop());
});

async function sidecarOn(args, opts = {}) {
	const s = await startSidecar(args, opts);
	sidecars.push(s);
	return s;
}

// realtime.send from `conns` connections, paced to `rate` a second in all; commit times kept.
function pacedSender(conns, rate, topic) {
	const commits = [];
	let n = 0;
	let stop = false;
	const interval = (1000 * conns.length) / rate;
	const loops = conns.map(async (c, k) => {
		let next = performance.now() + (k * interval) / conns.length;
		while (!stop) {
			const wait = next - performance.now();
			if (wait > 0) {
				await sleep(wait);
			}
			next += interval;
			await c.query(`SELECT realtime.send(jsonb_build_object('n', $2::int), 'ev', $1)`, [topic, n++]);
			commits.push(performance.now());
		}
	});
	return {
		commits,
		sent: () => n,
		rate: (from, to) => (commits.filter((t) => t >= from && t < to).length * 1000) / (to - from),
		stop: async () => {
			stop = true;
			await Promise.all(loops);
		},
	};
}

async function slotLag(db) {
	const { rows } = await db.query(`SELECT slot_lag_bytes::bigint AS lag FROM realtime.stats()`);
	return Number(rows[0].lag);
}

test('kill -9 the sidecar during 1,000 commits/s: commits go on, WAL stays bounded, clients are back within 5 s', { timeout: 60000 }, async (t) => {
	assert.ok(RT_DB_URL && RT_RING_PATH, 'RT_DB_URL and RT_RING_PATH are set');
	const conns = [];
	for (let i = 0; i < 4; i++) {
		const c = new pg.Client({ connectionString: RT_DB_URL });
		await c.connect();
		conns.push(c);
	}
	try {
		const name = uniq('kill9');
		const first = await sidecarOn(['--ring-path', RT_RING_PATH]);
		const ch = createClient({ base: first.base }).channel(name);
		const inbox = collectBroadcasts(ch, 'ev');
		await subscribe(ch);

		const sender = pacedSender(conns, 1000, name);
		await inbox.waitFor(() => true, 5000, { what: 'a first message' });
		const t0 = performance.now();
		await sleep(2500);
		const tKill = performance.now();
		first.child.kill('SIGKILL');
		let maxLag = 0;
		while (performance.now() - tKill < 2500) {
			maxLag = Math.max(maxLag, await slotLag(conns[0]));
			await sleep(250);
		}
		const second = await sidecarOn(['--ring-path', RT_RING_PATH], { port: first.port });
		const tUp = performance.now();
		const sentAtUp = sender.sent();
		const back = await inbox.waitFor((m) => m.payload.n >= sentAtUp, 5000, {
			what: 'a message sent after the restart',
		});
		const tBack = performance.now();
		await sender.stop();
		maxLag = Math.max(maxLag, await slotLag(conns[0]));

		const before = sender.rate(t0 + 500, tKill);
		const without = sender.rate(tKill + 500, tKill + 2500);
		t.diagnostic(
			`commits/s: ${before.toFixed(0)} with the sidecar, ${without.toFixed(0)} after kill -9; ` +
				`slot lag at most ${maxLag} bytes; first message sent after the restart arrived ` +
				`${(tBack - tUp).toFixed(0)} ms after it (n=${back.payload.n})`
		);
		assert.ok(before >= 900, `the sender reaches 1,000/s (${before.toFixed(0)})`);
		assert.ok(without >= before * 0.9, `commit rate without the sidecar ${without.toFixed(0)} vs ${before.toFixed(0)}`);
		assert.ok(maxLag < 4 * 1024 * 1024, `WAL kept for the slot stays bounded (${maxLag} bytes)`);
		assert.ok(tBack - tUp < 5000, 'the client receives again within 5 s of the restart');
		assert.ok(second.output().includes('ring'), second.output());
	} finally {
		await Promise.all(conns.map((c) => c.end()));
	}
});

// One client on `side`: a channel with a broadcast listener (realtime.send) and Postgres Changes
// on table public.t; its system messages are kept.
async function watcher(side) {
	const name = uniq('restart');
	const ch = createClient({ base: side.base }).channel(name);
	const broadcasts = collectBroadcasts(ch, 'ev');
	const changes = new Inbox('changes');
	const system = new Inbox('system');
	ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 't' }, (m) => changes.push(m));
	ch.on('system', {}, (m) => system.push(m));
	await subscribe(ch);
	return { name, broadcasts, changes, system };
}

const subscribedCount = (w) => w.system.items.filter((m) => m.message === 'Subscribed to PostgreSQL').length;

// Once the server is back: send and insert every 200 ms until both arrive; ms it took.
async function deliveringAgain(cluster, w, tag, ms) {
	const t0 = performance.now();
	let i = 0;
	const gotSend = w.broadcasts.waitFor((m) => m.payload.tag === tag, ms, { what: `realtime.send ${tag}` });
	const gotChange = w.changes.waitFor((m) => m.new?.v === tag, ms, { what: `an INSERT ${tag}` });
	let done = false;
	const both = Promise.all([gotSend, gotChange]).finally(() => (done = true));
	const poke = (async () => {
		while (!done && performance.now() - t0 < ms) {
			const db = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${cluster.port}/postgres` });
			try {
				await db.connect();
				await db.query(`SELECT realtime.send(jsonb_build_object('tag', $1::text), 'ev', $2)`, [tag, w.name]);
				await db.query('INSERT INTO public.t (v) VALUES ($1)', [tag]);
			} catch {
				// not accepting connections yet
			} finally {
				await db.end().catch(() => {});
			}
			i++;
			await sleep(200);
		}
	})();
	await both;
	await poke;
	return performance.now() - t0;
}

test('PostgreSQL restarted (-m fast, -m immediate): /healthz, realtime.send, Postgres Changes and "Subscribed to PostgreSQL" are back within 5 s', { timeout: 240000 }, async (t) => {
	const cluster = await startCluster();
	clusters.push(cluster);
	const db = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${cluster.port}/postgres` });
	await db.connect();
	await db.query(`CREATE TABLE public.t (id serial PRIMARY KEY, v text);
		GRANT SELECT ON public.t TO anon;
		CREATE PUBLICATION supabase_realtime FOR TABLE public.t`);
	await db.end();
	const side = await sidecarOn(['--db', cluster.conninfo, '--ring-path', cluster.ringPath]);
	for (let i = 0; i < 100 && (await healthz(side.base)) !== 200; i++) {
		await sleep(100);
	}
	assert.equal(await healthz(side.base), 200);
	const w = await watcher(side);
	await w.system.waitFor((m) => m.message === 'Subscribed to PostgreSQL', 10000);
	assert.ok((await deliveringAgain(cluster, w, 'first', 5000)) < 5000);

	for (const mode of ['fast', 'immediate']) {
		const confirmed = subscribedCount(w);
		const sysFrom = w.system.items.length;
		cluster.pgCtl(['restart', '-m', mode, '-w']);
		const tUp = performance.now();
		// /healthz polled from the moment the server is back: the first 200
		const healthy = (async () => {
			while (performance.now() - tUp < 15000) {
				if ((await healthz(side.base)) === 200) {
					return performance.now() - tUp;
				}
				await sleep(50);
			}
			return Infinity;
		})();
		const again = await deliveringAgain(cluster, w, mode, 5000);
		await w.system
			.waitFor((m) => m.message === 'Subscribed to PostgreSQL', Math.max(1, 5000 - (performance.now() - tUp)), {
				from: sysFrom,
			})
			.catch(() => {});
		const tConfirmed = performance.now() - tUp;
		const tHealthy = await healthy;
		t.diagnostic(
			`-m ${mode}: send and change delivered ${again.toFixed(0)} ms after the server was back, ` +
				`/healthz 200 after ${tHealthy.toFixed(0)} ms, "Subscribed to PostgreSQL" ${subscribedCount(w) - confirmed} more time(s) ` +
				`by ${tConfirmed.toFixed(0)} ms; ` +
				`system messages: ${JSON.stringify(w.system.items.slice(-3).map((m) => [m.status, m.message]))}`
		);
		assert.ok(tHealthy < 5000, `/healthz 200 within 5 s of -m ${mode}`);
		assert.ok(again < 5000, `delivering again within 5 s of -m ${mode}`);
		assert.ok(subscribedCount(w) > confirmed && tConfirmed < 5000, `"Subscribed to PostgreSQL" is sent again within 5 s of -m ${mode}`);
	}
});
