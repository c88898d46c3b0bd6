-- load.sql: in a server WITHOUT shared_preload_libraries = 'realtime', the library refuses to
-- load (src/extension/module.cpp) and CREATE EXTENSION realtime fails with the same error.
-- Run by scripts/test.sh against a cluster started with scripts/cluster.sh --no-preload.
\unset ECHO
\i test/setup.sql

BEGIN;
SELECT plan(6);

SELECT is(current_setting('shared_preload_libraries'), '', 'nothing is preloaded here');
SELECT throws_ok($$LOAD 'realtime'$$, '55000',
                 'realtime must be loaded via "shared_preload_libraries"',
                 'LOAD refuses when not preloaded');
SELECT throws_ok($$LOAD 'realtime'$$, '55000',
                 'realtime must be loaded via "shared_preload_libraries"',
                 'and again on a second attempt');
-- In case the cluster had it from an earlier preloaded run (rolled back with the rest).
SET LOCAL client_min_messages = warning;
DROP EXTENSION IF EXISTS realtime;
SELECT throws_ok($$CREATE EXTENSION realtime$$, '55000',
                 'realtime must be loaded via "shared_preload_libraries"',
                 'CREATE EXTENSION refuses when not preloaded');

-- The hint tells how to fix it.
CREATE FUNCTION pg_temp.load_hint() RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    hint text;
BEGIN
    LOAD 'realtime';
    RETURN NULL;
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN hint;
END
$fn$;
SELECT is(pg_temp.load_hint(),
          'Add realtime to "shared_preload_libraries" in postgresql.conf, for example '
          'shared_preload_libraries = ''realtime'', and restart the server.',
          'the hint says how to set shared_preload_libraries');
SELECT is(current_setting('realtime.database', true), NULL,
          'no realtime setting was defined by the failed load');

SELECT * FROM finish();
ROLLBACK;
