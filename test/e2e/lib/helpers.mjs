// helpers.mjs: what every e2e test file shares.
//
// - env: the running sidecar (RT_URL, RT_JWT_SECRET, ...) set up by scripts/test.sh;
// - Inbox: an append-only list with waiters, for "wait until X arrived";
// - realtime-js clients (the official client, over the `ws` transport) and a
//   channel subscribe helper;
// - RawClient: a bare `ws` socket speaking Phoenix by hand, to see exact frames;
// - HTTP helpers: an upgrade probe that reads refused handshakes, REST posts;
// - startSidecar: an extra realtime-fanout instance with other flags.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { RealtimeClient } from '@supabase/realtime-js';
import * as jwt from './jwt.mjs';

export { sleep, jwt, WebSocket };

// ---------------------------------------------------------------------------
// Environment

function requireEnv(name) {
	const v = process.env[name];
	if (!v) {
		throw new Error(`${name} is not set: run the suite through scripts/test.sh (see package.json)`);
	}
	return v;
}

export const RT_URL = requireEnv('RT_URL').replace(/\/+$/, '');
requireEnv('RT_JWT_SECRET');
export const RT_DB_URL = process.env.RT_DB_URL ?? '';
export const RT_FANOUT_BIN = process.env.RT_FANOUT_BIN ?? '';

// ws://host:port/realtime/v1 for a base http://host:port (realtime-js appends /websocket).
export function wsEndpoint(base = RT_URL) {
	return `${base.replace(/^http/, 'ws')}/realtime/v1`;
}

// The promise's value, or `fallback` after ms; unlike racing sleep(), no timer outlives it
// (a pending timer keeps the test file's process alive).
export async function within(promise, ms, fallback = undefined) {
	let timer;
	const expiry = new Promise((resolve) => {
		timer = setTimeout(() => resolve(fallback), ms);
	});
	try {
		return await Promise.race([promise, expiry]);
	} finally {
		clearTimeout(timer);
	}
}

// A channel name no other test (or earlier run) uses.
export function uniq(prefix = 'room') {
	return `${prefix}-${randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------------------
// Inbox: items arrive over time; tests wait for a predicate or a count.

export class Inbox {
	constructor(label = 'inbox') {
		this.label = label;
		this.items = [];
		this.waiters = new Set();
	}

	push(item) {
		this.items.push(item);
		for (const w of [...this.waiters]) {
			w.check();
		}
	}

	// Resolve with the first item at index >= from that satisfies pred.
	waitFor(pred, ms, { from = 0, what = 'a matching item' } = {}) {
		return new Promise((resolve, reject) => {
			let i = from;
			const w = {
				check: () => {
					for (; i < this.items.length; i++) {
						if (pred(this.items[i], i)) {
							done();
							resolve(this.items[i]);
							return;
						}
					}
				},
			};
			const timer = setTimeout(() => {
				done();
				reject(
					new Error(
						`${this.label}: ${what} did not arrive within ${ms} ms ` +
							`(${this.items.length} items; last: ${describe(this.items.at(-1))})`
					)
				);
			}, ms);
			const done = () => {
				clearTimeout(timer);
				this.waiters.delete(w);
			};
			this.waiters.add(w);
			w.check();
		});
	}

	// Resolve once at least n items are present.
	waitCount(n, ms) {
		return this.waitFor((_, i) => i >= n - 1, ms, { what: `item #${n}` });
	}
}

function describe(item) {
	if (item === undefined) {
		return 'none';
	}
	const s = item?.text ?? JSON.stringify(item, (k, v) => (v?.type === 'Buffer' ? '<bytes>' : v));
	return s && s.length > 300 ? `${s.slice(0, 300)}...` : s;
}

// ---------------------------------------------------------------------------
// realtime-js clients

const openClients = new Set();

// The official client on the `ws` transport. vsn undefined = the client's default (2.0.0).
export function createClient({
	vsn,
	token = jwt.anon(),
	base = RT_URL,
	timeout = 3000, // push/join timeout; unanswered pushes keep the process alive this long
	transport = WebSocket,
} = {}) {
	const logs = [];
	const client = new RealtimeClient(wsEndpoint(base), {
		params: { apikey: token },
		transport,
		timeout,
		...(vsn ? { vsn } : {}),
		// A logger keeps the client's console.warn/error quiet; the log is kept for failures.
		logger: (kind, msg, data) => logs.push({ kind, msg, data }),
	});
	client.e2eLogs = logs;
	openClients.add(client);
	return client;
}

// Disconnect every client created by createClient (call from after()).
// RealtimeClient.disconnect() also arms a 10 s fallback timer that it never
// clears, which would keep each test file's process alive 10 s after its last
// test; closing the underlying Phoenix socket does the same without that timer.
export async function closeClients() {
	const all = [...openClients];
	openClients.clear();
	// teardown() also cancels the channels' rejoin timers and pending join pushes.
	for (const c of all) {
		c.getChannels().forEach((ch) => ch.teardown());
	}
	await Promise.all(
		all.map((c) => new Promise((resolve) => c.socketAdapter.getSocket().disconnect(resolve)))
	);
}

// Subscribe and settle with {status, err}: SUBSCRIBED, CHANNEL_ERROR, TIMED_OUT or CLOSED.
export function subscribeResult(channel, ms = 5000) {
	return new Promise((resolve) => {
		let settled = false;
		const timer = setTimeout(() => settle('NO_CALLBACK', new Error(`no answer in ${ms} ms`)), ms);
		const settle = (status, err) => {
			if (!settled) {
				settled = true;
				clearTimeout(timer);
				resolve({ status, err });
			}
		};
		channel.subscribe((status, err) => settle(status, err));
	});
}

// Subscribe and require SUBSCRIBED.
export async function subscribe(channel, ms = 5000) {
	const { status, err } = await subscribeResult(channel, ms);
	if (status !== 'SUBSCRIBED') {
		throw new Error(`subscribe ${channel.topic}: ${status}${err ? `: ${err.message}` : ''}`);
	}
	return channel;
}

// Record every broadcast a channel receives for `event` ('*' = all) into an Inbox.
export function collectBroadcasts(channel, event = '*') {
	const inbox = new Inbox(`${channel.topic} broadcasts`);
	channel.on('broadcast', { event }, (msg) => inbox.push(msg));
	return inbox;
}

// A subscribed realtime-js (vsn 2.0.0) client of the public room `name`; resolves with its inbox.
export async function subscriber(name) {
	const ch = createClient().channel(name);
	const inbox = collectBroadcasts(ch);
	await subscribe(ch);
	return inbox;
}

// A `ws` subclass that records what the client sends and receives on the wire.
export function spyTransport() {
	const sent = [];
	const received = new Inbox('spy received');
	class SpyWebSocket extends WebSocket {
		constructor(...args) {
			super(...args);
			this.on('message', (data, isBinary) =>
				received.push({ binary: isBinary, data: Buffer.from(data) })
			);
		}

		send(data, ...rest) {
			sent.push({
				binary: typeof data !== 'string',
				data: typeof data === 'string' ? data : Buffer.from(data),
			});
			return super.send(data, ...rest);
		}
	}
	return { Transport: SpyWebSocket, sent, received };
}

// ---------------------------------------------------------------------------
// RawClient: Phoenix by hand over `ws`.

export class RawClient {
	// Open a socket; resolves once the upgrade succeeded.
	static async connect({
		vsn = '2.0.0',
		token = jwt.anon(),
		base = RT_URL,
		path = '/realtime/v1/websocket',
		headers = {},
		ms = 5000,
	} = {}) {
		const q = new URLSearchParams();
		if (token !== null) {
			q.set('apikey', token);
		}
		if (vsn !== null) {
			q.set('vsn', vsn);
		}
		const url = `${base.replace(/^http/, 'ws')}${path}?${q}`;
		const ws = new WebSocket(url, { headers, maxPayload: 64 * 1024 * 1024 });
		const c = new RawClient(ws, vsn ?? '1.0.0');
		c.token = token ?? undefined;
		await new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`connect ${url}: timeout`)), ms);
			ws.once('open', () => {
				clearTimeout(timer);
				resolve();
			});
			ws.once('unexpected-response', (_req, res) => {
				clearTimeout(timer);
				reject(new Error(`connect ${url}: HTTP ${res.statusCode}`));
			});
			ws.once('error', (e) => {
				clearTimeout(timer);
				reject(e);
			});
		});
		return c;
	}

	constructor(ws, vsn) {
		this.ws = ws;
		this.v1 = vsn.startsWith('1.');
		this.frames = new Inbox('raw frames');
		this.pos = 0; // cursor for next()
		this.refSeq = 100;
		this.closed = new Promise((resolve) => {
			ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
		});
		this.isClosed = false;
		ws.on('close', () => (this.isClosed = true));
		ws.on('error', () => {}); // surfaced through `closed`
		ws.on('message', (data, isBinary) => this.frames.push(RawClient.parse(data, isBinary)));
	}

	// A frame as the tests see it: {binary, data, text, json, msg:{join_ref,ref,topic,event,payload}}.
	static parse(data, isBinary) {
		const buf = Buffer.from(data);
		if (isBinary) {
			return { binary: true, data: buf };
		}
		const text = buf.toString('utf8');
		let json = null;
		try {
			json = JSON.parse(text);
		} catch {
			/* left null: tests that expect JSON fail on it */
		}
		let msg = null;
		if (Array.isArray(json)) {
			const [join_ref, ref, topic, event, payload] = json;
			msg = { join_ref, ref, topic, event, payload };
		} else if (json && typeof json === 'object') {
			msg = json;
		}
		return { binary: false, text, json, msg };
	}

	nextRef() {
		return String(++this.refSeq);
	}

	// Encode one message in this socket's vsn (text frame).
	encode(joinRef, ref, topic, event, payload) {
		if (this.v1) {
			const o = { topic, event, payload, ref };
			if (joinRef !== undefined && joinRef !== null) {
				o.join_ref = joinRef;
			}
			return JSON.stringify(o);
		}
		return JSON.stringify([joinRef ?? null, ref ?? null, topic, event, payload]);
	}

	push(topic, event, payload, { joinRef = null, ref = this.nextRef() } = {}) {
		this.ws.send(this.encode(joinRef, ref, topic, event, payload));
		return ref;
	}

	sendText(text) {
		this.ws.send(text, { binary: false });
	}

	sendBinary(buf) {
		this.ws.send(buf, { binary: true });
	}

	// Wait for a frame matching pred (at or after the cursor, or `from`); moves the cursor past it.
	async waitFor(pred, ms = 3000, what = 'a matching frame', from = this.pos) {
		const f = await this.frames.waitFor(pred, ms, { from, what });
		this.pos = Math.max(this.pos, this.frames.items.indexOf(f, from) + 1);
		return f;
	}

	// The next frame after the cursor, whatever it is.
	next(ms = 3000) {
		return this.waitFor(() => true, ms, `frame #${this.pos + 1}`);
	}

	// The reply to request `ref` (text frame, event phx_reply).
	reply(ref, ms = 3000) {
		return this.waitFor(
			(f) => f.msg?.event === 'phx_reply' && f.msg?.ref === ref,
			ms,
			`phx_reply ref ${ref}`
		);
	}

	// Join a topic; resolves with the reply frame.
	async join(topic, { config = {}, joinRef, ref, accessToken, ms = 3000 } = {}) {
		ref = ref ?? this.nextRef();
		joinRef = joinRef ?? ref;
		const payload = { config: { broadcast: { self: false, ack: false }, presence: { enabled: false, key: '' }, postgres_changes: [], private: false, ...config } };
		payload.access_token = accessToken ?? this.token;
		if (payload.access_token === undefined) {
			delete payload.access_token;
		}
		this.push(topic, 'phx_join', payload, { joinRef, ref });
		return this.reply(ref, ms);
	}

	// Heartbeat round trip; resolves with the reply frame.
	async heartbeat(ms = 3000) {
		const ref = this.push('phoenix', 'heartbeat', {}, { joinRef: null });
		return this.reply(ref, ms);
	}

	// Frames received after the cursor so far (without waiting); moves the cursor to the end.
	drain() {
		const out = this.frames.items.slice(this.pos);
		this.pos = this.frames.items.length;
		return out;
	}

	close() {
		if (!this.isClosed) {
			this.ws.close();
		}
		return this.closed;
	}

	terminate() {
		this.ws.terminate();
		return this.closed;
	}
}

// A text-broadcast frame as a subscriber sees it: { event, payload } or null.
export function textBroadcast(f) {
	if (f.binary || f.msg?.event !== 'broadcast') {
		return null;
	}
	return f.msg.payload;
}

// ---------------------------------------------------------------------------
// HTTP

// Send a WebSocket upgrade request and report how the server answered:
// {status, headers, body, ms}. A 101 is reported as status 101 (socket dropped).
// rawQuery, when given, is used verbatim instead of query.
export function upgradeProbe({ base = RT_URL, path = '/realtime/v1/websocket', query = {}, rawQuery, headers = {}, ms = 10000 } = {}) {
	const u = new URL(base);
	const qs = rawQuery ?? new URLSearchParams(query).toString();
	const started = performance.now();
	return new Promise((resolve, reject) => {
		const req = http.request({
			host: u.hostname,
			port: u.port,
			path: qs ? `${path}?${qs}` : path,
			agent: false,
			headers: {
				Connection: 'Upgrade',
				Upgrade: 'websocket',
				'Sec-WebSocket-Version': '13',
				'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
				...headers,
			},
		});
		const timer = setTimeout(() => {
			req.destroy();
			reject(new Error(`upgrade probe ${path}: no answer in ${ms} ms`));
		}, ms);
		req.on('upgrade', (res, socket) => {
			clearTimeout(timer);
			socket.destroy();
			resolve({ status: res.statusCode, headers: res.headers, body: '', ms: performance.now() - started });
		});
		req.on('response', (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				clearTimeout(timer);
				resolve({
					status: res.statusCode,
					headers: res.headers,
					body: Buffer.concat(chunks).toString('utf8'),
					ms: performance.now() - started,
				});
			});
		});
		req.on('error', (e) => {
			clearTimeout(timer);
			reject(e);
		});
		req.end();
	});
}

// POST JSON (or a raw string) and return {status, headers, text, json}.
export async function post(path, body, { base = RT_URL, headers = {}, ms = 5000 } = {}) {
	const res = await fetch(`${base}${path}`, {
		method: 'POST',
		headers: { 'Content-Type': 'application/json', ...headers },
		body: typeof body === 'string' ? body : JSON.stringify(body),
		signal: AbortSignal.timeout(ms),
	});
	const text = await res.text();
	let json = null;
	try {
		json = text ? JSON.parse(text) : null;
	} catch {
		/* not JSON */
	}
	return { status: res.status, headers: res.headers, text, json };
}

// Authorization + apikey headers for a token.
export function authHeaders(token = jwt.anon()) {
	return { Authorization: `Bearer ${token}`, apikey: token };
}

// GET /healthz status code (0 when the server does not answer).
export async function healthz(base = RT_URL) {
	try {
		const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
		await res.arrayBuffer();
		return res.status;
	} catch {
		return 0;
	}
}

// ---------------------------------------------------------------------------
// Extra sidecars

export function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.once('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

// Start RT_FANOUT_BIN on a free loopback port with extra flags; resolves when /healthz answers.
// tenantFlags: false starts it without --db and --jwt-secret (e.g. with --config FILE).
// port: a given one instead (to start a sidecar again where its clients reconnect).
// limits: false leaves the suite's lifted limits out (the sidecar's own defaults apply).
export async function startSidecar(extraArgs = [], { ms = 10000, tenantFlags = true, port: fixedPort = 0, limits = true } = {}) {
	if (!RT_FANOUT_BIN) {
		throw new Error('RT_FANOUT_BIN is not set');
	}
	const port = fixedPort || (await freePort());
	const db = RT_DB_URL || 'host=127.0.0.1 port=1 dbname=unreachable connect_timeout=1';
	// the tenant limits lifted as for the suite's sidecar (scripts/test.sh); extraArgs come
	// later and win, so a test can set small ones
	// upstream's defaults otherwise (a single tenant would start from `unlimited`)
	const noLimits = ['--limits', 'upstream', '--max-concurrent-users', '100000000', '--max-joins-per-second', '100000000', '--max-events-per-second', '1000000000'];
	const tenant = tenantFlags ? ['--db', db, '--jwt-secret', jwt.JWT_SECRET] : [];
	const args = ['--host', '127.0.0.1', '--port', String(port), ...tenant, ...(limits ? noLimits : []), ...extraArgs];
	const child = spawn(RT_FANOUT_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	let output = '';
	child.stdout.on('data', (d) => (output += d));
	child.stderr.on('data', (d) => (output += d));
	let exited = null;
	const exit = new Promise((resolve) =>
		child.on('exit', (code, signal) => {
			exited = { code, signal };
			resolve(exited);
		})
	);
	const base = `http://127.0.0.1:${port}`;
	const sidecar = {
		base,
		port,
		child,
		output: () => output,
		async stop() {
			if (!exited) {
				child.kill('SIGTERM');
				const t = setTimeout(() => child.kill('SIGKILL'), 3000);
				await exit;
				clearTimeout(t);
			}
		},
	};
	const deadline = Date.now() + ms;
	while (Date.now() < deadline) {
		if (exited) {
			throw new Error(`sidecar exited early (${JSON.stringify(exited)}): ${output}`);
		}
		if ((await healthz(base)) !== 0) {
			return sidecar;
		}
		await sleep(50);
	}
	await sidecar.stop();
	throw new Error(`sidecar on port ${port} did not answer /healthz within ${ms} ms: ${output}`);
}

// Stop a sidecar from startSidecar (if any) and fail when its log has a sanitizer report
// (DEBUG=1 builds run with AddressSanitizer and UBSan).
export async function stopChecked(sidecar) {
	if (!sidecar) {
		return;
	}
	await sidecar.stop();
	const out = sidecar.output();
	if (/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(out)) {
		throw new Error(`sanitizer report in the sidecar's log:\n${out}`);
	}
}
