-- guc.sql: the realtime.* settings defined by the library (src/extension/guc.cpp): defaults,
-- contexts, range checks, and the reserved "realtime" prefix.
\unset ECHO
\i test/setup.sql

BEGIN;
SELECT plan(19);

SELECT results_eq($$SELECT name::text, setting, coalesce(unit, ''), context::text
                    FROM pg_settings WHERE name LIKE 'realtime.%' ORDER BY name$$,
                  $$VALUES ('realtime.database', 'postgres', '', 'postmaster'),
                           ('realtime.max_message_bytes', '3000000', 'B', 'user'),
                           ('realtime.persist_messages', 'off', '', 'user'),
                           ('realtime.publication', 'supabase_realtime', '', 'sighup'),
                           ('realtime.topic', '', '', 'user')$$,
                  'the realtime settings, their defaults and contexts');
SELECT ok((SELECT bool_and(short_desc IS NOT NULL) FROM pg_settings WHERE name LIKE 'realtime.%'),
          'every realtime setting has a description');

-- Contexts: database needs a restart, publication a reload.
SELECT throws_ok($$SET realtime.database = 'other'$$, '55P02',
                 'parameter "realtime.database" cannot be changed without restarting the server',
                 'realtime.database is set at server start only');
SELECT throws_ok($$SET realtime.publication = 'other'$$, '55P02',
                 'parameter "realtime.publication" cannot be changed now',
                 'realtime.publication is set in the configuration files only');

-- realtime.max_message_bytes: bytes, with units, within 1 .. 1 GB - 1.
SET LOCAL realtime.max_message_bytes = '1MB';
SELECT is(current_setting('realtime.max_message_bytes'), '1MB', 'units are accepted');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'realtime.max_message_bytes'), '1048576',
          'stored in bytes');
SET LOCAL realtime.max_message_bytes = 100;
SELECT is(current_setting('realtime.max_message_bytes'), '100B', 'a plain number is bytes');
SELECT throws_ok($$SET realtime.max_message_bytes = 0$$, '22023',
                 '0 B is outside the valid range for parameter "realtime.max_message_bytes" '
                 '(1 .. 1073741823)', 'zero is refused');
SELECT throws_ok($$SET realtime.max_message_bytes = 1073741824$$, '22023',
                 '1073741824 B is outside the valid range for parameter '
                 '"realtime.max_message_bytes" (1 .. 1073741823)', '1 GB is refused');
SELECT throws_ok($$SET realtime.max_message_bytes = 'big'$$, '22023',
                 'invalid value for parameter "realtime.max_message_bytes": "big"',
                 'a non-number is refused');

-- realtime.persist_messages: a boolean any user may set.
SET LOCAL realtime.persist_messages = on;
SELECT is(current_setting('realtime.persist_messages'), 'on', 'persist_messages can be turned on');
SELECT throws_ok($$SET realtime.persist_messages = 'maybe'$$, '22023',
                 'parameter "realtime.persist_messages" requires a Boolean value',
                 'persist_messages takes a boolean');

-- User-settable ones work for an API role too.
SET LOCAL ROLE anon;
SELECT lives_ok($$SET LOCAL realtime.persist_messages = on$$, 'anon may set persist_messages');
SELECT lives_ok($$SELECT set_config('realtime.topic', 't', true)$$, 'anon may set realtime.topic');
SELECT throws_ok($$SET realtime.database = 'x'$$, '55P02', NULL, 'anon cannot set realtime.database');
RESET ROLE;

-- The prefix is reserved: a misspelt realtime.* name is an error, not a placeholder.
SELECT throws_ok($$SET realtime.topc = 'x'$$, '42602',
                 'invalid configuration parameter name "realtime.topc"',
                 'SET of an unknown realtime.* name fails');
SELECT throws_ok($$SELECT set_config('realtime.bogus', 'x', true)$$, '42602',
                 'invalid configuration parameter name "realtime.bogus"',
                 'set_config of an unknown realtime.* name fails');
SELECT is(current_setting('realtime.bogus', true), NULL, 'no placeholder was created');
SELECT throws_ok($$SELECT current_setting('realtime.bogus')$$, '42704',
                 'unrecognized configuration parameter "realtime.bogus"',
                 'reading an unknown realtime.* name fails');

SELECT * FROM finish();
ROLLBACK;
