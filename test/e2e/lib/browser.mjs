// browser.mjs: Debian's chromium, headless, driven by puppeteer-core (no browser download), for
// the tests of the --ui pages; and a check that a screenshot is not blank.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import puppeteer from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const UI_DIR = fileURLToPath(new URL('../../../build/ui', import.meta.url));
export const SHOTS = fileURLToPath(new URL('../../../build/e2e-screenshots', import.meta.url));

// A headless browser; as root, chromium needs --no-sandbox. Loopback only: no proxy, no
// network service besides the pages' own origin.
export async function launch() {
	if (!existsSync(CHROMIUM)) {
		throw new Error(`${CHROMIUM} is missing: scripts/deps.sh installs Debian's chromium`);
	}
	return puppeteer.launch({
		executablePath: CHROMIUM,
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-proxy-server'],
	});
}

// A page that records console errors and page errors into page.errors.
export async function openPage(browser, url) {
	const page = await browser.newPage();
	page.errors = [];
	page.on('console', (m) => {
		if (m.type() === 'error') page.errors.push(m.text());
	});
	page.on('pageerror', (e) => page.errors.push(String(e)));
	await page.setViewport({ width: 1200, height: 800 });
	await page.goto(url, { waitUntil: 'load' });
	return page;
}

// Save a screenshot as build/e2e-screenshots/<name>.png; returns its distinct colours (a blank
// page has one or two).
export async function screenshot(page, name) {
	const png = await page.screenshot({ type: 'png' });
	mkdirSync(SHOTS, { recursive: true });
	const file = join(SHOTS, `${name}.png`);
	writeFileSync(file, png);
	return { file, colours: pngColours(Buffer.from(png)) };
}

// The number of distinct colours of an 8-bit RGB or RGBA PNG (counted up to 1,000).
export function pngColours(png) {
	let at = 8;
	let width = 0, height = 0, channels = 0;
	const idat = [];
	while (at < png.length) {
		const len = png.readUInt32BE(at);
		const type = png.toString('latin1', at + 4, at + 8);
		const data = png.subarray(at + 8, at + 8 + len);
		if (type === 'IHDR') {
			width = data.readUInt32BE(0);
			height = data.readUInt32BE(4);
			if (data[8] !== 8 || (data[9] !== 2 && data[9] !== 6)) throw new Error('not an 8-bit RGB(A) PNG');
			channels = data[9] === 6 ? 4 : 3;
		} else if (type === 'IDAT') {
			idat.push(data);
		}
		at += 12 + len;
	}
	const raw = inflateSync(Buffer.concat(idat));
	const stride = width * channels;
	const prev = Buffer.alloc(stride);
	const cur = Buffer.alloc(stride);
	const colours = new Set();
	for (let y = 0; y < height; y++) {
		const filter = raw[y * (stride + 1)];
		const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
		for (let x = 0; x < stride; x++) {
			const a = x >= channels ? cur[x - channels] : 0;
			const b = prev[x];
			const c = x >= channels ? prev[x - channels] : 0;
			let v = line[x];
			if (filter === 1) v += a;
			else if (filter === 2) v += b;
			else if (filter === 3) v += (a + b) >> 1;
			else if (filter === 4) {
				const p = a + b - c;
				const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
				v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
			}
			cur[x] = v & 0xff;
		}
		for (let x = 0; x < stride && colours.size < 1000; x += channels * 7) colours.add(cur.readUIntBE(x, 3));
		cur.copy(prev);
	}
	return colours.size;
}

