// 43 the --ui pages (issue 16; src/ui, server/static_ui.hpp): off by default; with --ui the
// sidecar serves them from memory with their content types, an ETag (304 on If-None-Match), a
// strict Content-Security-Policy and nothing outside its directory. In Debian's chromium
// (headless, puppeteer-core) the inspector, with the official client bundled in, joins a
// public channel, sends and shows a broadcast, and shows a private join's refusal exactly as
// the server words it; no console error on the page; its screenshot is not blank.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startSidecar, stopChecked, jwt, uniq } from './lib/helpers.mjs';
import { UI_DIR, launch, openPage, screenshot } from './lib/browser.mjs';

let plain;
let ui;
let browser;

before(async () => {
	assert.ok(existsSync(`${UI_DIR}/inspector.html`), `${UI_DIR} is built by make (make ui)`);
	plain = await startSidecar([]);
	ui = await startSidecar(['--ui', '--ui-dir', UI_DIR]);
	browser = await launch();
});

after(async () => {
	await browser?.close();
	await stopChecked(plain);
	await stopChecked(ui);
});

test('off by default; with --ui: content types, ETag and 304, a strict CSP, nothing outside the directory', { timeout: 20000 }, async () => {
	assert.equal((await fetch(`${plain.base}/inspector`)).status, 404, 'no pages without --ui');
	const page = await fetch(`${ui.base}/inspector`);
	assert.equal(page.status, 200);
	assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
	const csp = page.headers.get('content-security-policy') ?? '';
	for (const d of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
		assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
	}
	assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
	assert.equal(page.headers.get('cache-control'), 'no-cache');
	const etag = page.headers.get('etag');
	assert.match(etag, /^"[0-9a-f]{16}"$/);
	assert.match(await page.text(), /<script type="module" src="\/ui\/inspector.js">/);
	const again = await fetch(`${ui.base}/inspector`, { headers: { 'if-none-match': etag } });
	assert.equal(again.status, 304);
	assert.equal(await again.text(), '');
	const js = await fetch(`${ui.base}/ui/inspector.js`);
	assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
	assert.ok((await js.text()).length > 10000, 'the bundle holds the official client');
	for (const path of ['/ui/missing.js', '/ui/../realtime-fanout', '/ui/%2e%2e/x', '/ui/.hidden']) {
		assert.equal((await fetch(`${ui.base}${path}`)).status, 404, path);
	}
	assert.equal((await fetch(`${ui.base}/inspector`, { method: 'POST', body: 'x' })).status, 405);
	// a bad --ui-dir is a start-up error, not an empty site
	await assert.rejects(startSidecar(['--ui', '--ui-dir', '/nonexistent-ui-dir']), /--ui: cannot read --ui-dir \/nonexistent-ui-dir/);
});

test('in chromium: the inspector joins, sends and shows a broadcast, and shows a private refusal as the server words it', { timeout: 60000 }, async () => {
	const page = await openPage(browser, `${ui.base}/inspector`);
	const join = async (name, priv, token) => {
		await page.$eval('#channel', (el, v) => (el.value = v), name);
		await page.$eval('#private', (el, v) => (el.checked = v), priv);
		await page.$eval('#token', (el, v) => (el.value = v), token);
		await page.click('#join-button');
	};
	const state = () => page.$eval('#state', (el) => el.textContent);
	const room = uniq('insp');
	await join(room, false, jwt.anon());
	await page.waitForFunction((n) => document.getElementById('state').textContent === `joined ${n}`, { timeout: 10000 }, room);
	await page.$eval('#payload', (el) => (el.value = '{"text": "from the inspector"}'));
	await page.click('#send-button');
	await page.waitForFunction(() => [...document.querySelectorAll('#log li[data-kind=broadcast] pre')].some((p) => p.textContent.includes('from the inspector')), { timeout: 10000 });
	assert.ok([...(await page.$$eval('#log li[data-kind=sent]', (els) => els.map((e) => e.textContent)))].some((t) => t.includes('message: ok')), 'acked ok');
	const shot = await screenshot(page, 'inspector');
	assert.ok(shot.colours > 20, `the screenshot is not blank (${shot.colours} colours, ${shot.file})`);

	// private, and no policy lets this user read the topic
	const secret = uniq('insp-private');
	await join(secret, true, jwt.authenticated());
	const want = `Unauthorized: You do not have permissions to read from this Channel topic: ${secret}`;
	await page
		.waitForFunction((w) => document.getElementById('state').textContent.includes(w), { timeout: 15000 }, want)
		.catch(async (e) => {
			throw new Error(`${e.message}; state: ${await state()}; log: ${await page.$eval('#log', (el) => el.textContent)}`);
		});
	assert.match(await state(), /^CHANNEL_ERROR: /);
	assert.deepEqual(page.errors, [], 'no console errors');
	await page.close();
});
