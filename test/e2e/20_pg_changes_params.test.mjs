// 20 postgres_changes parameters at join (PROTOCOL.md 6.1, 6.6): the join reply echoes every
// entry with its id, then one `system` message (extension "postgres_changes", status "error")
// gives the first entry's parameter error in upstream's exact words, never retried. Valid
// parameters naming a table outside the publication get upstream's "Please check Realtime is
// enabled" text (21 covers subscriptions that work). Hostile filters are refused the same way
// and the socket keeps serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, uniq } from './lib/helpers.mjs';

// Join with these postgres_changes entries; resolves with the system message's payload.
async function systemFor(entries) {
	const s = await RawClient.connect({ vsn: '2.0.0' });
	try {
		const topic = `realtime:${uniq('pgc')}`;
		const reply = await s.join(topic, { config: { postgres_changes: entries } });
		assert.equal(reply.msg.payload.status, 'ok');
		assert.equal(reply.msg.payload.response.postgres_changes.length, entries.length,
			'every entry echoed');
		const sys = await s.waitFor((f) => f.msg?.event === 'system' && f.msg.topic === topic, 3000);
		const hb = await s.heartbeat(2000);
		assert.equal(hb.msg.payload.status, 'ok', 'the socket still serves');
		return sys.msg.payload;
	} finally {
		await s.close();
	}
}

const pre = 'Error parsing `filter` params: ';

test('an unknown filter operator: the upstream parse error', { timeout: 8000 }, async () => {
	const p = await systemFor([{ event: '*', schema: 'public', table: 'todos', filter: 'subject=foo.hey' }]);
	assert.equal(p.extension, 'postgres_changes');
	assert.equal(p.status, 'error');
	assert.equal(p.message, `${pre}["foo", "hey"]`);
});

test('an in filter without parentheses, and empty segments', { timeout: 8000 }, async () => {
	assert.equal((await systemFor([{ schema: 'public', table: 't', filter: 'id=in.1,2' }])).message,
		`${pre}\`in\` filter value must be wrapped by parentheses`);
	assert.equal((await systemFor([{ schema: 'public', table: 't', filter: 'id=eq.1,,a=eq.2' }])).message,
		`${pre}filter must not contain empty segments (check for extra commas)`);
});

test('no schema and no table: the upstream message with the params', { timeout: 8000 }, async () => {
	const p = await systemFor([{ event: 'INSERT' }]);
	assert.ok(p.message.startsWith('No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: '),
		p.message);
});

test('the first failing entry of several is the one reported', { timeout: 8000 }, async () => {
	const p = await systemFor([
		{ event: '*', schema: 'public', table: 'ok' },
		{ event: '*', schema: 'public', table: 't', filter: 'a=nope.1' },
		{ event: 'INSERT' },
	]);
	assert.equal(p.message, `${pre}["nope", "1"]`);
});

const noTable = 'Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: ';

test('valid parameters, no such table in the publication: upstream\'s text', { timeout: 8000 }, async () => {
	const table = uniq('nosuch').replace('-', '_');
	const p = await systemFor([{ event: 'UPDATE', schema: 'public', table, filter: 'id=in.(1,2,3)' }]);
	assert.equal(p.status, 'error');
	assert.equal(p.message, `${noTable}[event: UPDATE, schema: public, table: ${table}, filters: [{"id", "in", "{1,2,3}", false}], select: nil]`);
});

test('hostile filters: an error or plain data, never SQL; the socket keeps serving', { timeout: 15000 }, async () => {
	// SQL in a value is a value: it parses (and is only ever a bound parameter)
	const sql = await systemFor([{ event: '*', schema: 'public', table: 't', filter: `id=eq.1'); drop table todos; --` }]);
	assert.ok(sql.message.startsWith(`${noTable}[event: *, schema: public, table: t, filters: [`), sql.message);
	const hostile = [
		[`id=eq.1,${','.repeat(10000)}`, `${pre}filter must not contain empty segments (check for extra commas)`],
		[`${'x'.repeat(100000)}`, null],
		['id=eq."unterminated', null],
		['=eq.1', null],
	];
	for (const [filter, want] of hostile) {
		const p = await systemFor([{ event: '*', schema: 'public', table: 't', filter }]);
		assert.equal(p.status, 'error');
		if (want !== null) {
			assert.equal(p.message, want);
		} else {
			assert.ok(typeof p.message === 'string' && p.message.length > 0 && p.message.length < 300_000,
				`${filter.slice(0, 40)}: ${p.message.slice(0, 120)}`);
		}
	}
});
