-- privileges.sql: the grants of PROTOCOL.md 7.2 on schema realtime and realtime.messages,
-- what the API roles cannot do, and that RLS without policies hides and refuses rows.
\unset ECHO
\i test/setup.sql

BEGIN;
SET LOCAL TimeZone = 'UTC';
SELECT plan(32);

-- Grants, checked in the catalogs.
SELECT schema_privs_are('realtime'::name, r::name, ARRAY['USAGE'],
                        r || ' has USAGE (only) on schema realtime')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r;
SELECT table_privs_are('realtime'::name, 'messages'::name, r::name,
                       ARRAY['SELECT', 'INSERT', 'UPDATE'],
                       r || ' has SELECT, INSERT, UPDATE (only) on realtime.messages')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r;
SELECT table_privs_are('realtime'::name, 'messages'::name, 'public'::name, ARRAY[]::text[],
                       'PUBLIC has no privilege on realtime.messages');
SELECT function_privs_are('realtime'::name, f::name, a::name[], r::name, ARRAY[]::text[],
                          format('%s cannot execute realtime.%s', r, f))
FROM (VALUES ('create_messages_partitions', ARRAY['date', 'date']),
             ('drop_messages_partitions', ARRAY['date'])) AS v(f, a),
     unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r;
SELECT function_privs_are('realtime'::name, 'topic'::name, ARRAY[]::name[], 'anon'::name,
                          ARRAY['EXECUTE'], 'anon can execute realtime.topic()');

-- A row written by the superuser, invisible to roles without a policy.
INSERT INTO realtime.messages (topic, extension, payload, event)
VALUES ('secret', 'broadcast', '{"x":1}', 'ev');

SET LOCAL ROLE anon;
SELECT is((SELECT count(*) FROM realtime.messages), 0::bigint,
          'anon sees no row: RLS without a policy denies');
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('t', 'broadcast')$$,
                 '42501', 'new row violates row-level security policy for table "messages"',
                 'anon cannot insert without a policy');
SELECT throws_ok($$DELETE FROM realtime.messages$$, '42501',
                 'permission denied for table messages', 'anon cannot DELETE');
SELECT throws_ok($$TRUNCATE realtime.messages$$, '42501',
                 'permission denied for table messages', 'anon cannot TRUNCATE');
SELECT throws_ok(format('SELECT * FROM realtime.messages_%s',
                        to_char(current_date, 'YYYY_MM_DD')),
                 '42501', format('permission denied for table messages_%s',
                                 to_char(current_date, 'YYYY_MM_DD')),
                 'anon cannot read a partition directly (bypassing RLS)');
SELECT throws_ok($$SELECT realtime.create_messages_partitions()$$, '42501',
                 'permission denied for function create_messages_partitions',
                 'anon cannot create partitions');
SELECT throws_ok($$SELECT realtime.drop_messages_partitions()$$, '42501',
                 'permission denied for function drop_messages_partitions',
                 'anon cannot drop partitions');
SELECT throws_ok($$CREATE TABLE realtime.x (i int)$$, '42501',
                 'permission denied for schema realtime', 'anon cannot create in schema realtime');
SELECT lives_ok($$SELECT realtime.topic()$$, 'anon can call realtime.topic()');
RESET ROLE;

SET LOCAL ROLE authenticated;
SELECT is((SELECT count(*) FROM realtime.messages), 0::bigint,
          'authenticated sees no row without a policy');
SELECT throws_ok($$DELETE FROM realtime.messages$$, '42501',
                 'permission denied for table messages', 'authenticated cannot DELETE');
RESET ROLE;

SET LOCAL ROLE service_role;
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'secret'), 1::bigint,
          'service_role bypasses RLS on SELECT');
SELECT lives_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('t', 'presence')$$,
                'service_role bypasses RLS on INSERT');
SELECT throws_ok($$DELETE FROM realtime.messages$$, '42501',
                 'permission denied for table messages', 'service_role cannot DELETE');
RESET ROLE;

-- The admin role (what a sidecar's janitor would SET ROLE to) maintains the partitions.
SET LOCAL ROLE supabase_realtime_admin;
SELECT is(realtime.create_messages_partitions(current_date + 7, current_date + 8), 2,
          'supabase_realtime_admin can create partitions');
SELECT is(realtime.drop_messages_partitions(current_date - 1), 0,
          'supabase_realtime_admin can run the janitor');
RESET ROLE;

-- realtime.send() is the only way for a non-superuser to write a realtime message.
SELECT ok(NOT has_function_privilege('authenticated',
          'pg_logical_emit_message(boolean,text,text)', 'EXECUTE'),
          'authenticated cannot forge messages with pg_logical_emit_message(text)');
SELECT ok(NOT has_function_privilege('anon',
          'pg_logical_emit_message(boolean,text,bytea)', 'EXECUTE'),
          'anon cannot forge messages with pg_logical_emit_message(bytea)');

SELECT * FROM finish();
ROLLBACK;
