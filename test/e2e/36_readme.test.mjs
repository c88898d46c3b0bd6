// 36 the README runs as written, and the docs' links lead somewhere.
//
// The examples are taken from README.md itself, so that an edit that breaks one fails here:
// - every ```sql block runs verbatim, in the order of the file, with `psql -X -v ON_ERROR_STOP=1`,
//   on the database that `scripts/run.sh` starts (through the psql URL it prints), and on a
//   plain cluster set up as the README's operator contract says (scripts/cluster.sh:
//   postgresql.conf settings + CREATE EXTENSION realtime, no publication);
// - every ```js block runs as a program with node against the sidecar of that scripts/run.sh,
//   with ANON_KEY and REALTIME_URL set from what it printed (and USER_ID, USER_TOKEN: a user
//   token as the README's sh block mints it), and must exit 0.
// Convention: a block that is only a fragment (not meant to run alone) has the line
// `<!-- fragment -->` right before its opening fence; it is skipped here, and there should be
// few (the test prints how many). Blocks of other languages (sh, json, plain) are not run.
// Links: every link in README.md and docs/*.md must be relative, stay inside the repository,
// name a file that exists and, with a #fragment, a heading of that file.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, jwt } from './lib/helpers.mjs';
import { startCluster } from './lib/cluster.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README = join(ROOT, 'README.md');
const FRAGMENT = '<!-- fragment -->';

// The fenced blocks of a markdown file: { lang, code, line, fragment }.
function fencedBlocks(text) {
	const lines = text.split('\n');
	const blocks = [];
	for (let i = 0; i < lines.length; i++) {
		const open = /^```(\S*)\s*$/.exec(lines[i]);
		if (!open) {
			continue;
		}
		let j = i + 1;
		while (j < lines.length && !/^```\s*$/.test(lines[j])) {
			j++;
		}
		let k = i - 1;
		while (k >= 0 && lines[k].trim() === '') {
			k--;
		}
		blocks.push({ lang: open[1], code: lines.slice(i + 1, j).join('\n') + '\n', line: i + 1, fragment: k >= 0 && lines[k].trim() === FRAGMENT });
		i = j;
	}
	return blocks;
}

const blocks = fencedBlocks(readFileSync(README, 'utf8'));
const runnable = (lang) => blocks.filter((b) => b.lang === lang && !b.fragment);

// scripts/run.sh --no-build in a directory of its own, on free ports; resolves once it printed
// its banner, with what it printed.
let run; // { proc, out, psqlUrl, anonKey, wsUrl }
let runDir;

function startRunSh() {
	runDir = mkdtempSync('/tmp/rt-e2e-readme-');
	chmodSync(runDir, 0o755);
	return freePort().then(
		(port) =>
			new Promise((resolvePromise, reject) => {
				const proc = spawn('bash', [join(ROOT, 'scripts/run.sh'), '--no-build'], {
					env: { ...process.env, PORT: String(port), RUN_DIR: runDir },
					stdio: ['ignore', 'pipe', 'pipe'],
				});
				const r = { proc, out: '' };
				const timer = setTimeout(() => reject(new Error(`scripts/run.sh printed no banner in 90 s:\n${r.out}`)), 90000);
				const onData = (d) => {
					r.out += d;
					const psql = /^ {2}psql: +psql "([^"]+)"$/m.exec(r.out);
					const anon = /^ {2}anon key: +(\S+)$/m.exec(r.out);
					const ws = /^ {2}WebSocket URL: +(\S+)$/m.exec(r.out);
					const secret = /^ {2}JWT secret: +(\S+)$/m.exec(r.out);
					if (psql && anon && ws && secret) {
						clearTimeout(timer);
						Object.assign(r, { psqlUrl: psql[1], anonKey: anon[1], wsUrl: ws[1], jwtSecret: secret[1] });
						resolvePromise(r);
					}
				};
				proc.stdout.on('data', onData);
				proc.stderr.on('data', onData);
				proc.on('exit', (code) => {
					clearTimeout(timer);
					reject(new Error(`scripts/run.sh exited with ${code}:\n${r.out}`));
				});
			})
	);
}

before(async () => {
	run = await startRunSh();
});

after(async () => {
	if (run?.proc.exitCode === null) {
		const exited = new Promise((r) => run.proc.once('exit', r));
		run.proc.kill('SIGINT'); // its trap stops the sidecar and the cluster
		await Promise.race([exited, new Promise((r) => setTimeout(r, 30000))]);
	}
	if (runDir) {
		rmSync(runDir, { recursive: true, force: true });
	}
});

// Run one block with psql on `url`; throws with psql's output when it fails.
function psqlBlock(url, block, where) {
	const file = join(runDir, `block-${block.line}.sql`);
	writeFileSync(file, block.code);
	const r = spawnSync('psql', [url, '-X', '-v', 'ON_ERROR_STOP=1', '-f', file], { encoding: 'utf8', timeout: 60000 });
	assert.equal(r.status, 0, `README.md line ${block.line} (sql) failed on ${where}:\n${block.code}\n${r.stdout}${r.stderr}`);
}

test('the README has sql and js examples, few of them fragments', () => {
	assert.ok(runnable('sql').length >= 3, `sql blocks: ${runnable('sql').length}`);
	assert.ok(runnable('js').length >= 1, `js blocks: ${runnable('js').length}`);
	const fragments = blocks.filter((b) => b.fragment && (b.lang === 'sql' || b.lang === 'js'));
	assert.ok(fragments.length <= 2, `fragments at lines ${fragments.map((b) => b.line)}`);
});

test('every sql block runs verbatim, in order, on the database scripts/run.sh starts', { timeout: 120000 }, () => {
	for (const block of runnable('sql')) {
		psqlBlock(run.psqlUrl, block, 'the scripts/run.sh database');
	}
});

test('every sql block runs verbatim, in order, on a plain cluster set up as the README says', { timeout: 180000 }, async () => {
	const plain = await startCluster();
	try {
		const url = `postgresql://postgres@127.0.0.1:${plain.port}/postgres`;
		const pub = spawnSync('psql', [url, '-XAtc', `SELECT count(*) FROM pg_publication WHERE pubname = 'supabase_realtime'`], { encoding: 'utf8' });
		assert.equal(pub.stdout.trim(), '0', 'the plain cluster starts without the publication');
		for (const block of runnable('sql')) {
			psqlBlock(url, block, 'a plain cluster');
		}
	} finally {
		plain.stop();
	}
});

// The user of the README's private examples, with the token its sh block mints (realtime-fanout
// token --role authenticated --sub USER_ID) signed with the secret scripts/run.sh printed.
const USER = '6a1f1cce-0000-4000-8000-000000000001';
function userToken(secret) {
	const t = Math.floor(Date.now() / 1000);
	return jwt.sign({ role: 'authenticated', sub: USER, iat: t, exp: t + 3600 }, { secret });
}

test('every js block runs against the scripts/run.sh sidecar and exits 0', { timeout: 120000 }, () => {
	// Beside test/e2e/node_modules, so that its imports resolve to the pinned packages.
	const dir = join(ROOT, 'test/e2e/.readme');
	mkdirSync(dir, { recursive: true });
	try {
		for (const block of runnable('js')) {
			const file = join(dir, `block-${block.line}.mjs`);
			writeFileSync(file, block.code);
			const r = spawnSync(process.execPath, [file], {
				encoding: 'utf8',
				timeout: 30000,
				env: { ...process.env, ANON_KEY: run.anonKey, REALTIME_URL: run.wsUrl, USER_ID: USER, USER_TOKEN: userToken(run.jwtSecret) },
			});
			assert.equal(r.status, 0, `README.md line ${block.line} (js) exited ${r.status}${r.signal ? ` (${r.signal})` : ''}:\n${r.stdout}${r.stderr}`);
		}
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
});

// GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats.
function anchors(markdown) {
	const seen = new Map();
	const out = new Set();
	let fenced = false;
	for (const line of markdown.split('\n')) {
		if (/^```/.test(line)) {
			fenced = !fenced;
		}
		const h = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
		if (!h) {
			continue;
		}
		const base = h[1]
			.toLowerCase()
			.replace(/[^\p{L}\p{N}\s_-]/gu, '')
			.replace(/\s/g, '-');
		const n = seen.get(base) ?? 0;
		seen.set(base, n + 1);
		out.add(n === 0 ? base : `${base}-${n}`);
	}
	return out;
}

// The links of a markdown file outside code: [text](target) and [text]: target definitions.
function links(markdown) {
	const found = [];
	let fenced = false;
	markdown.split('\n').forEach((line, i) => {
		if (/^```/.test(line)) {
			fenced = !fenced;
			return;
		}
		if (fenced) {
			return;
		}
		const text = line.replace(/`[^`]*`/g, '');
		for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
			found.push({ target: m[1], line: i + 1 });
		}
		const def = /^\s*\[[^\]]+\]:\s*(\S+)/.exec(text);
		if (def) {
			found.push({ target: def[1], line: i + 1 });
		}
	});
	return found;
}

test('no link in README.md or docs/ is dead or points outside the repository', () => {
	const files = [README, ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f))];
	const problems = [];
	let checked = 0;
	for (const file of files) {
		const where = relative(ROOT, file);
		for (const { target, line } of links(readFileSync(file, 'utf8'))) {
			checked++;
			if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) {
				problems.push(`${where}:${line}: ${target} points outside the repository`);
				continue;
			}
			const [path, fragment] = target.split('#');
			const dest = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
			const rel = relative(ROOT, dest);
			if (rel.startsWith('..') || rel.startsWith('/')) {
				problems.push(`${where}:${line}: ${target} points outside the repository`);
			} else if (!existsSync(dest)) {
				problems.push(`${where}:${line}: ${target}: no such file`);
			} else if (fragment !== undefined && dest.endsWith('.md') && !anchors(readFileSync(dest, 'utf8')).has(fragment)) {
				problems.push(`${where}:${line}: ${target}: no heading with that anchor in ${rel}`);
			}
		}
	}
	assert.deepEqual(problems, []);
	assert.ok(checked > 10, `only ${checked} links found: is the link pattern still right?`);
});
