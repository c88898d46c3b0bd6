// policies.mjs: RLS policies on realtime.messages for the private-channel tests.
//
// openPolicies(prefix) opens a superuser connection, makes sure auth.uid() exists (as
// pgchanges.mjs ensureAuthUid does) and returns { db, policy(name, sql), close() }:
// policy() creates `"<prefix> <name>" ON realtime.messages <sql>`; close() drops every
// policy it created, what ensureAuthUid made, and ends the connection. Policies apply to
// every topic, so each test file scopes its own to topics starting with its prefix.
// close(cleanup) runs cleanup(db) after the policies are gone (objects they used).

import { openDb, ensureAuthUid } from './pgchanges.mjs';

export async function openPolicies(prefix) {
	const db = await openDb();
	const dropAuth = await ensureAuthUid(db);
	const names = [];
	return {
		db,
		async policy(name, sql) {
			await db.query(`CREATE POLICY "${prefix} ${name}" ON realtime.messages ${sql}`);
			names.push(`${prefix} ${name}`);
		},
		async close(cleanup = async () => {}) {
			for (const n of names) {
				await db.query(`DROP POLICY IF EXISTS "${n}" ON realtime.messages`);
			}
			await cleanup(db);
			await dropAuth();
			await db.end();
		},
	};
}
