-- topic.sql: realtime.topic() and the realtime.topic setting, alone and inside RLS policies
-- on realtime.messages, as the sidecar's authorization probes use them (PROTOCOL.md 8).
\unset ECHO
\i test/setup.sql

BEGIN;
SELECT plan(30);

SELECT has_function('realtime'::name, 'topic'::name, ARRAY[]::name[], 'realtime.topic() exists');
SELECT function_returns('realtime'::name, 'topic'::name, ARRAY[]::name[], 'text',
                        'realtime.topic() returns text');
SELECT volatility_is('realtime'::name, 'topic'::name, ARRAY[]::name[], 'stable',
                     'realtime.topic() is STABLE');
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'realtime.topic()'::regprocedure), 's',
          'realtime.topic() is PARALLEL SAFE');

-- Value of the setting.
SELECT is(current_setting('realtime.topic'), '', 'realtime.topic is defined, empty by default');
SELECT is(realtime.topic(), NULL, 'NULL when unset');
SELECT is(set_config('realtime.topic', '', true), '', 'set_config topic to ''''');
SELECT is(realtime.topic(), NULL, 'NULL when empty');
SELECT is(set_config('realtime.topic', 'room:1', true), 'room:1', 'set_config topic to ''room:1''');
SELECT is(realtime.topic(), 'room:1', 'the value after set_config');
SET LOCAL realtime.topic = 'room:2';
SELECT is(realtime.topic(), 'room:2', 'the value after SET LOCAL');
SELECT lives_ok($$SELECT set_config('realtime.topic', 'x', false)$$,
                'set_config at session level works (the prefix is reserved, the name defined)');
RESET realtime.topic;
SELECT is(realtime.topic(), NULL, 'NULL after RESET');

-- Policies as a project would write them: authenticated may send to and read the topic
-- being authorized, broadcast only.
CREATE POLICY topic_insert ON realtime.messages FOR INSERT TO authenticated
    WITH CHECK (topic = realtime.topic() AND extension = 'broadcast');
CREATE POLICY topic_select ON realtime.messages FOR SELECT TO authenticated
    USING (topic = realtime.topic() AND extension = 'broadcast');
SELECT policies_are('realtime'::name, 'messages'::name,
                    ARRAY['topic_insert', 'topic_select']::name[], 'the two test policies');

-- Read probes, inserted as the privileged role (as the sidecar does), then read back.
INSERT INTO realtime.messages (id, topic, extension) VALUES
    ('00000000-0000-0000-0000-000000000001', 'room1', 'broadcast'),
    ('00000000-0000-0000-0000-000000000002', 'room2', 'broadcast'),
    ('00000000-0000-0000-0000-000000000003', 'room1', 'presence');

SET LOCAL ROLE authenticated;
SELECT is(set_config('realtime.topic', 'room1', true), 'room1', 'set_config topic to ''room1''');
SELECT results_eq($$SELECT id::text FROM realtime.messages ORDER BY id$$,
                  ARRAY['00000000-0000-0000-0000-000000000001'],
                  'read probe: only the room1 broadcast row is visible');
SELECT lives_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('room1', 'broadcast')$$,
                'write probe: insert into the authorized topic passes');
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('room2', 'broadcast')$$,
                 '42501', 'new row violates row-level security policy for table "messages"',
                 'write probe: another topic is refused');
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('room1', 'presence')$$,
                 '42501', 'new row violates row-level security policy for table "messages"',
                 'write probe: presence is refused by a broadcast-only policy');

SELECT is(set_config('realtime.topic', 'room2', true), 'room2', 'set_config topic to ''room2''');
SELECT results_eq($$SELECT id::text FROM realtime.messages ORDER BY id$$,
                  ARRAY['00000000-0000-0000-0000-000000000002'],
                  'after set_config: only the room2 row is visible');
SELECT lives_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('room2', 'broadcast')$$,
                'write probe follows the new topic');

SELECT is(set_config('realtime.topic', '', true), '', 'set_config topic to ''''');
SELECT is((SELECT count(*) FROM realtime.messages), 0::bigint,
          'empty topic: NULL, nothing visible');
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('room1', 'broadcast')$$,
                 '42501', 'new row violates row-level security policy for table "messages"',
                 'empty topic: writes refused');

-- The savepoint pattern of the write check: a refused probe does not abort the transaction.
SELECT is(set_config('realtime.topic', 'room1', true), 'room1', 'set_config topic to ''room1''');
SAVEPOINT probe;
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('room3', 'broadcast')$$,
                 '42501', NULL, 'probe in a savepoint refused');
ROLLBACK TO SAVEPOINT probe;
SELECT is(realtime.topic(), 'room1', 'the topic survives the rolled back probe');
RESET ROLE;

-- anon has no policy: the same topic gives nothing.
SET LOCAL ROLE anon;
SELECT is((SELECT count(*) FROM realtime.messages), 0::bigint, 'anon: no policy, no row');
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension) VALUES ('room1', 'broadcast')$$,
                 '42501', 'new row violates row-level security policy for table "messages"',
                 'anon: no policy, no write');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
