// jwt.mjs: HS256 tokens for the e2e suite, minted with node:crypto only.
//
// Each helper returns a compact JWT string. The secret is the sidecar's
// (RT_JWT_SECRET) unless a test asks for another one on purpose.

import { createHmac } from 'node:crypto';

export const JWT_SECRET = process.env.RT_JWT_SECRET ?? '';

function b64url(data) {
	return Buffer.from(data).toString('base64url');
}

function now() {
	return Math.floor(Date.now() / 1000);
}

// Sign claims with HS256 (or emit an unsigned token when header.alg is "none").
export function sign(claims, { secret = JWT_SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
	const head = b64url(JSON.stringify(header));
	const body = b64url(JSON.stringify(claims));
	if (header.alg === 'none') {
		return `${head}.${body}.`;
	}
	const mac = createHmac('sha256', secret).update(`${head}.${body}`).digest();
	return `${head}.${body}.${b64url(mac)}`;
}

function baseClaims(role, extra = {}) {
	const t = now();
	return { iss: 'supabase', ref: 'e2e', role, iat: t, exp: t + 3600, ...extra };
}

export const anon = () => sign(baseClaims('anon'));
export const authenticated = (sub = '6a1f1cce-0000-4000-8000-000000000001') =>
	sign(baseClaims('authenticated', { sub, email: 'e2e@example.test' }));
export const serviceRole = () => sign(baseClaims('service_role'));
export const expired = () => sign(baseClaims('anon', { iat: now() - 7200, exp: now() - 3600 }));
export const wrongSecret = () =>
	sign(baseClaims('anon'), { secret: 'not-the-secret-of-this-sidecar-0123456789' });
export const missingRole = () => {
	const c = baseClaims('anon');
	delete c.role;
	return sign(c);
};
export const missingExp = () => {
	const c = baseClaims('anon');
	delete c.exp;
	return sign(c);
};
export const algNone = () => sign(baseClaims('anon'), { header: { alg: 'none', typ: 'JWT' } });
export const malformed = () => 'this-is-not-a-jwt';
