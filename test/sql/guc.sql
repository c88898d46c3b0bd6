-- guc.sql: the realtime.* settings defined by the library (src/extension/guc.cpp): defaults,
-- contexts, range checks, and the reserved "realtime" prefix.
\unset ECHO
\i test/setup.sql

BEGIN;
SELECT plan(30);

SELECT results_eq($$SELECT name::text, setting, coalesce(unit, ''), context::text
                    FROM pg_settings WHERE name LIKE 'realtime.%' AND name <> 'realtime.ring_path'
                    ORDER BY name$$,
                  $$VALUES ('realtime.database', 'postgres', '', 'postmaster'),
                           ('realtime.decoder_naptime', '200', 'ms', 'sighup'),
                           ('realtime.janitor_naptime', '60000', 'ms', 'sighup'),
                           ('realtime.max_lag_bytes', '268435456', 'B', 'sighup'),
                           ('realtime.max_message_bytes', '3000000', 'B', 'user'),
                           ('realtime.message_retention', '4320', 'min', 'sighup'),
                           ('realtime.persist_messages', 'private', '', 'user'),
                           ('realtime.publication', 'supabase_realtime', '', 'sighup'),
                           ('realtime.ring_file_mode', '0660', '', 'postmaster'),
                           ('realtime.ring_size', '67108864', 'B', 'postmaster'),
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

-- The ring: set at server start; the test cluster puts it beside the data directory.
SELECT is((SELECT context::text FROM pg_settings WHERE name = 'realtime.ring_path'), 'postmaster',
          'realtime.ring_path is set at server start');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'realtime.ring_path'), 'pg_realtime.ring',
          'by default in the data directory');
SELECT throws_ok($$SET realtime.ring_size = 4096$$, '55P02', NULL,
                 'realtime.ring_size cannot change without a restart');
SELECT is(current_setting('realtime.ring_file_mode'), '0660', 'the file mode shows in octal');
SELECT throws_ok($$SET realtime.max_lag_bytes = 0$$, '55P02', NULL,
                 'realtime.max_lag_bytes is set in the configuration files');
SELECT throws_ok($$SET realtime.decoder_naptime = 0$$, '55P02', NULL,
                 'realtime.decoder_naptime is set in the configuration files');

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

-- realtime.persist_messages: off, private or on (every message), any user may set it; the
-- spellings of when it was a boolean still work.
SELECT is((SELECT enumvals FROM pg_settings WHERE name = 'realtime.persist_messages'),
          ARRAY['off', 'private', 'on'], 'persist_messages is off, private or on');
SET LOCAL realtime.persist_messages = 'all';
SELECT is(current_setting('realtime.persist_messages'), 'on', '''all'' means on');
SET LOCAL realtime.persist_messages = false;
SELECT is(current_setting('realtime.persist_messages'), 'off', 'false means off');
SELECT throws_ok($$SET realtime.persist_messages = 'maybe'$$, '22023',
                 'invalid value for parameter "realtime.persist_messages": "maybe"',
                 'persist_messages takes one of its values');

-- The janitor's: retention in minutes (3 days; one hour at least), naptime in ms.
SELECT is((SELECT min_val FROM pg_settings WHERE name = 'realtime.message_retention'), '60',
          'message_retention is one hour at least');
SELECT throws_ok($$SET realtime.message_retention = '1d'$$, '55P02',
                 'parameter "realtime.message_retention" cannot be changed now',
                 'message_retention is taken on reload');
SELECT is((SELECT min_val || '..' || max_val FROM pg_settings
           WHERE name = 'realtime.janitor_naptime'), '100..86400000',
          'janitor_naptime is 100 ms to a day');

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
