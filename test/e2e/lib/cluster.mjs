// cluster.mjs: a throwaway second PostgreSQL cluster (scripts/cluster.sh) for tests that must
// restart or reconfigure a server without disturbing the suite's own (29, 35). The server runs
// as the postgres user on a free loopback port; stop() shuts it down and removes its directory.

import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from './helpers.mjs';

const CLUSTER_SH = fileURLToPath(new URL('../../../scripts/cluster.sh', import.meta.url));

function bindir() {
	return spawnSync(process.env.PG_CONFIG ?? '/usr/lib/postgresql/15/bin/pg_config', ['--bindir'], {
		encoding: 'utf8',
	}).stdout.trim();
}

// Start a cluster (extra: e.g. ['--no-preload']). Resolves with its port, conninfo (TCP, as
// cluster.sh prints it), ringPath (realtime.ring_path), and pgCtl(args) / stop().
export async function startCluster(extra = []) {
	const postgresUid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
	const dir = mkdtempSync('/tmp/rt-e2e-pg-');
	chownSync(dir, postgresUid, postgresUid);
	const port = await freePort();
	const cluster = {
		dir,
		port,
		ringPath: `${dir}/realtime.ring`,
		conninfo: '',
		// pg_ctl as the postgres user on this cluster's data directory; throws on failure
		pgCtl(args) {
			const r = spawnSync(
				'runuser',
				['-u', 'postgres', '--', `${bindir()}/pg_ctl`, '-D', `${dir}/data`, '-l', `${dir}/log/postgres.log`, ...args],
				{ encoding: 'utf8', timeout: 120000 }
			);
			if (r.status !== 0) {
				throw new Error(`pg_ctl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
			}
		},
		stop() {
			spawnSync('bash', [CLUSTER_SH, 'stop', dir], { encoding: 'utf8', timeout: 120000 });
			rmSync(dir, { recursive: true, force: true });
		},
	};
	const start = spawnSync('bash', [CLUSTER_SH, 'start', dir, String(port), ...extra], {
		encoding: 'utf8',
		timeout: 120000,
	});
	if (start.status !== 0) {
		cluster.stop();
		throw new Error(`cluster.sh start: ${start.stderr}`);
	}
	cluster.conninfo = start.stdout.trim();
	return cluster;
}
