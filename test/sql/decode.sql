-- decode.sql: what the output plugin "realtime" prints for realtime.send() and
-- realtime.broadcast_changes() through pg_logical_slot_get_changes. Decoding sees only
-- committed work, so this file commits for real (autocommit, no BEGIN/ROLLBACK wrapper),
-- cleans up leftovers of an earlier failed run first, and drops its slot, table, trigger
-- and policies at the end. The WARNING texts of refused sends are read from a second psql
-- session (\copy ... FROM PROGRAM), which also gives a second connection for commit order.
\unset ECHO
\i test/setup.sql

SET TimeZone = 'UTC';
-- Warnings of this session are expected (refused sends, the malformed message).
SET client_min_messages = error;
-- Settings of the helper psql sessions started below.
\setenv PGHOST :HOST
\setenv PGPORT :PORT
\setenv PGUSER :USER
\setenv PGDATABASE :DBNAME
\setenv PGOPTIONS '-c client_min_messages=warning'

-- Leftovers of a failed run.
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name = 'rt_test_decode';
DROP TABLE IF EXISTS public.decode_t;
DROP POLICY IF EXISTS decode_send ON realtime.messages;
DELETE FROM realtime.messages WHERE topic LIKE 'decode:%';

SELECT plan(36);

SELECT is((SELECT slot_name::text FROM pg_create_logical_replication_slot('rt_test_decode',
                                                                            'realtime')),
          'rt_test_decode', 'a logical slot created');
SELECT is((SELECT plugin::text FROM pg_replication_slots WHERE slot_name = 'rt_test_decode'),
          'realtime', 'with the output plugin realtime');

-- The lines decoded since the last call, and the same with random parts replaced:
-- UUIDs by UUID, the commit LSN and time removed.
CREATE FUNCTION pg_temp.changes() RETURNS SETOF text LANGUAGE sql AS
$$ SELECT data FROM pg_logical_slot_get_changes('rt_test_decode', NULL, NULL) $$;
CREATE FUNCTION pg_temp.norm(line text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regexp_replace(line,
        ',"commit_lsn":"[0-9A-F]+/[0-9A-F]+","commit_time":"[^"]+"}$', '}'),
        '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}', 'UUID', 'g')
$$;
CREATE TEMP TABLE lines (n serial, line text);
CREATE TEMP TABLE warns (n serial, line text);
-- Save the lines decoded so far in lines (emptied first)
CREATE FUNCTION pg_temp.take() RETURNS bigint LANGUAGE sql AS $$
    DELETE FROM lines;
    ALTER SEQUENCE lines_n_seq RESTART;
    INSERT INTO lines (line) SELECT pg_temp.changes();
    SELECT count(*) FROM lines;
$$;

-- Nothing yet.
SELECT is(pg_temp.take(), 0::bigint, 'nothing decoded before any send');

-- Committed sends, exact lines.
SELECT realtime.send('{"b":1,"a":"x"}', 'ev', 'decode:1');
SELECT realtime.send('{"a":[1,2.50,null],"id":7}', 'ev "2"', 'decode:ü', true);
SELECT is(pg_temp.take(), 2::bigint, 'two committed sends, two lines');
SELECT is(array_agg(pg_temp.norm(line) ORDER BY n),
          ARRAY['{"type":"message","topic":"decode:1","event":"ev","private":false,"id":"UUID",'
                '"payload":{"a": "x", "b": 1, "id": "UUID"}}',
                '{"type":"message","topic":"decode:ü","event":"ev \"2\"","private":true,'
                '"id":"UUID","payload":{"a": [1, 2.50, null], "id": 7}}'],
          'exact JSON lines: topic, event, private, id, payload as jsonb prints it')
FROM lines;
SELECT is(count(*), 2::bigint, 'every line is valid JSON with all the keys')
FROM lines
WHERE line::jsonb ?& ARRAY['type', 'topic', 'event', 'private', 'id', 'payload', 'commit_lsn',
                            'commit_time'];
SELECT is((SELECT line::jsonb->'payload'->>'id' FROM lines WHERE n = 1),
          (SELECT line::jsonb->>'id' FROM lines WHERE n = 1),
          'the "id" added to the payload is the message id');
SELECT is((SELECT line::jsonb->'payload'->'id' FROM lines WHERE n = 2), '7'::jsonb,
          'a payload''s own "id" is kept');
SELECT ok((SELECT (line::jsonb->>'id')::uuid IS NOT NULL FROM lines WHERE n = 2),
          'the message id is still a UUID');
SELECT ok((SELECT (l2.line::jsonb->>'commit_lsn')::pg_lsn > (l1.line::jsonb->>'commit_lsn')::pg_lsn
           FROM lines l1, lines l2 WHERE l1.n = 1 AND l2.n = 2),
          'commit LSNs increase from one transaction to the next');
SELECT ok((SELECT (line::jsonb->>'commit_time')::timestamptz BETWEEN now() - interval '1 hour'
                                                                  AND now() + interval '1 minute'
           FROM lines WHERE n = 2), 'commit_time is a timestamp of the commit');
SELECT matches((SELECT line::jsonb->>'commit_time' FROM lines WHERE n = 1),
               '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$', 'commit_time in ISO 8601, UTC');

-- Rolled back: never. A rolled back savepoint: never; the rest of its transaction: yes.
BEGIN;
SELECT realtime.send('{"n":1}', 'ev', 'decode:rollback');
ROLLBACK;
BEGIN;
SELECT realtime.send('{"n":1}', 'ev', 'decode:kept');
SAVEPOINT s;
SELECT realtime.send('{"n":2}', 'ev', 'decode:savepoint');
ROLLBACK TO SAVEPOINT s;
SELECT realtime.send('{"n":3}', 'ev', 'decode:kept');
COMMIT;
SELECT is(pg_temp.take(), 2::bigint, 'a rolled back send and a rolled back savepoint: nothing');
SELECT is(array_agg(line::jsonb->'payload'->'n' ORDER BY n), ARRAY['1', '3']::jsonb[],
          'the committed part of the transaction, in order')
FROM lines;

-- Several sends of one transaction come at its commit, together, in call order.
BEGIN;
SELECT realtime.send(jsonb_build_object('n', i), 'bulk', 'decode:bulk')
FROM generate_series(1, 1000) AS i;
COMMIT;
SELECT is(pg_temp.take(), 1000::bigint, '1,000 sends in one transaction: 1,000 lines');
SELECT is(array_agg((line::jsonb->'payload'->>'n')::int ORDER BY n),
          array(SELECT generate_series(1, 1000)), 'in the order of the calls')
FROM lines;
SELECT is(count(DISTINCT line::jsonb->>'commit_lsn'), 1::bigint, 'all with the same commit LSN')
FROM lines;

-- Commit order, not call order: the other session sends first and commits last. It waits
-- for the advisory lock this session holds; it cannot block forever (lock_timeout).
SELECT pg_advisory_lock(727001);
\! psql -X -q -c "SET application_name = 'rt_decode_bg'; SET lock_timeout = '20s'" -c "BEGIN; SELECT realtime.send('{\"who\":\"first caller\"}', 'ev', 'decode:order'); SELECT pg_advisory_xact_lock(727001); COMMIT;" >/dev/null 2>&1 &
CREATE FUNCTION pg_temp.wait_for(cond text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1..2000 LOOP
        -- pg_stat_activity is a snapshot taken once per transaction unless cleared
        PERFORM pg_stat_clear_snapshot();
        EXECUTE cond INTO ok;
        IF ok THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END
$$;
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                            WHERE application_name = 'rt_decode_bg'
                                              AND wait_event_type = 'Lock')$$),
          'the other session has sent and waits');
SELECT realtime.send('{"who":"second caller"}', 'ev', 'decode:order');
SELECT pg_advisory_unlock(727001);
SELECT ok(pg_temp.wait_for($$SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity
                                                WHERE application_name = 'rt_decode_bg')$$),
          'the other session committed and left');
SELECT is(pg_temp.take(), 2::bigint, 'both sends decoded');
SELECT is(array_agg(line::jsonb->'payload'->>'who' ORDER BY n),
          ARRAY['second caller', 'first caller'], 'in commit order')
FROM lines;

-- Refused sends: a WARNING each, nothing decoded; the last send of that session is valid
-- and shows that it committed. Its warnings are read through \copy FROM PROGRAM.
CREATE POLICY decode_send ON realtime.messages FOR INSERT TO authenticated
    WITH CHECK (realtime.topic() = 'decode:allowed' AND extension = 'broadcast');
\setenv RT_SQL 'SELECT realtime.send(''{}'', ''ev'', NULL); SELECT realtime.send(''{}'', ''ev'', ''''); SELECT realtime.send(''{}'', NULL, ''decode:x''); SELECT realtime.send(''{}'', '''', ''decode:x''); SELECT realtime.send(NULL, ''ev'', ''decode:x''); SELECT realtime.send(''[1]'', ''ev'', ''decode:x''); SELECT realtime.send(''{}'', ''ev'', ''decode:x'', NULL); SET realtime.max_message_bytes = 60; SELECT realtime.send(''{"p":"012345"}'', ''ev'', ''decode:x''); SELECT realtime.send(''{"p":"01234"}'', ''ev'', ''decode:limit''); RESET realtime.max_message_bytes; SET ROLE authenticated; SELECT realtime.send(''{}'', ''ev'', ''decode:denied''); SELECT realtime.send(''{}'', ''ev'', ''decode:allowed''); SET ROLE anon; SELECT realtime.send(''{}'', ''ev'', ''decode:allowed''); RESET ROLE; BEGIN READ ONLY; SELECT realtime.send(''{}'', ''ev'', ''decode:x''); COMMIT; SELECT realtime.send(''{"last":true}'', ''ev'', ''decode:control'')'
\copy warns (line) FROM PROGRAM 'psql -X -q -c "$RT_SQL" 2>&1 >/dev/null'
SELECT is(array_agg(line ORDER BY n), ARRAY[
    'WARNING:  WarnSendingBroadcastMessage: topic must not be null',
    'WARNING:  WarnSendingBroadcastMessage: topic must not be empty',
    'WARNING:  WarnSendingBroadcastMessage: event must not be null',
    'WARNING:  WarnSendingBroadcastMessage: event must not be empty',
    'WARNING:  WarnSendingBroadcastMessage: payload must not be null',
    'WARNING:  WarnSendingBroadcastMessage: payload must be a JSON object',
    'WARNING:  WarnSendingBroadcastMessage: private must not be null',
    'WARNING:  WarnSendingBroadcastMessage: payload of 61 bytes exceeds '
        'realtime.max_message_bytes (60)',
    'WARNING:  WarnSendingBroadcastMessage: new row violates row-level security policy for '
        'table "messages"',
    'WARNING:  WarnSendingBroadcastMessage: new row violates row-level security policy for '
        'table "messages"',
    'WARNING:  WarnSendingBroadcastMessage: cannot send in a read-only transaction'],
    'each refused send is a WARNING with its reason')
FROM warns;
SELECT is(pg_temp.take(), 3::bigint, 'only the three valid sends are decoded');
SELECT is(array_agg(line::jsonb->>'topic' ORDER BY n),
          ARRAY['decode:limit', 'decode:allowed', 'decode:control'],
          'at the size limit, allowed by the policy, and the last one')
FROM lines;
SELECT is((SELECT length(line::jsonb->>'payload') FROM lines WHERE n = 1), 60,
          'a payload of exactly realtime.max_message_bytes is sent');

-- persist_messages: the row and the message share the id.
SET realtime.persist_messages = on;
SELECT realtime.send('{"p":1}', 'ev', 'decode:persist');
RESET realtime.persist_messages;
SELECT is(pg_temp.take(), 1::bigint, 'a persisted send is decoded once');
SELECT is((SELECT id::text FROM realtime.messages WHERE topic = 'decode:persist'),
          (SELECT line::jsonb->>'id' FROM lines), 'the stored row has the message id');
SELECT is((SELECT payload FROM realtime.messages WHERE topic = 'decode:persist'),
          (SELECT line::jsonb->'payload' FROM lines), 'and the payload sent');

-- broadcast_changes from row triggers: upstream's payload, private.
CREATE TABLE public.decode_t (id int PRIMARY KEY, name text);
CREATE FUNCTION pg_temp.decode_t_broadcast() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM realtime.broadcast_changes('decode:' || TG_TABLE_NAME, TG_OP, TG_OP, TG_TABLE_NAME,
                                       TG_TABLE_SCHEMA, NEW, OLD, TG_LEVEL);
    RETURN NULL;
END
$$;
CREATE TRIGGER decode_t_broadcast AFTER INSERT OR UPDATE OR DELETE ON public.decode_t
    FOR EACH ROW EXECUTE FUNCTION pg_temp.decode_t_broadcast();
INSERT INTO public.decode_t VALUES (1, 'one');
UPDATE public.decode_t SET name = 'uno' WHERE id = 1;
DELETE FROM public.decode_t;
SELECT is(pg_temp.take(), 3::bigint, 'INSERT, UPDATE, DELETE: three messages');
SELECT is(array_agg(pg_temp.norm(line) ORDER BY n), ARRAY[
    '{"type":"message","topic":"decode:decode_t","event":"INSERT","private":true,"id":"UUID",'
    '"payload":{"id": "UUID", "table": "decode_t", "record": {"id": 1, "name": "one"}, '
    '"schema": "public", "operation": "INSERT", "old_record": null}}',
    '{"type":"message","topic":"decode:decode_t","event":"UPDATE","private":true,"id":"UUID",'
    '"payload":{"id": "UUID", "table": "decode_t", "record": {"id": 1, "name": "uno"}, '
    '"schema": "public", "operation": "UPDATE", "old_record": {"id": 1, "name": "one"}}}',
    '{"type":"message","topic":"decode:decode_t","event":"DELETE","private":true,"id":"UUID",'
    '"payload":{"id": "UUID", "table": "decode_t", "record": null, "schema": "public", '
    '"operation": "DELETE", "old_record": {"id": 1, "name": "uno"}}}'],
    'broadcast_changes payloads, exact')
FROM lines;
CREATE TRIGGER decode_t_statement AFTER TRUNCATE ON public.decode_t
    FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.decode_t_broadcast();
SELECT throws_ok($$TRUNCATE public.decode_t$$, '0A000',
                 'Failed to process the row: function can only be triggered for each row, '
                 'not for each statement',
                 'a statement-level trigger: an error that aborts the statement');

-- Other logical messages are not ours: non-transactional, other prefixes, malformed.
SELECT pg_logical_emit_message(false, 'realtime', 'not transactional') IS NOT NULL;
SELECT pg_logical_emit_message(true, 'other', 'another prefix') IS NOT NULL;
SELECT pg_logical_emit_message(true, 'realtime', '\x0100000000'::bytea) IS NOT NULL;
SELECT realtime.send('{}', 'ev', 'decode:after');
SELECT is(pg_temp.take(), 1::bigint, 'other messages are skipped; the next send is decoded');
SELECT is((SELECT line::jsonb->>'topic' FROM lines), 'decode:after', 'it is the send');

-- Options, and the list of plugins PostgreSQL 15.20 lets a session use.
SELECT throws_ok($$SELECT * FROM pg_logical_slot_peek_changes('rt_test_decode', NULL, NULL,
                                                              'format', 'xml')$$,
                 '22023', 'option "format" = "xml" is unknown', 'an unknown option is an error');
SET output_plugin_libraries = pgoutput, test_decoding;
SELECT throws_ok($$SELECT * FROM pg_logical_slot_peek_changes('rt_test_decode', NULL, NULL)$$,
                 '42501', 'library "realtime" may not be used as an output plugin',
                 'without realtime in output_plugin_libraries the plugin is refused');
RESET output_plugin_libraries;

-- Clean up.
SELECT is((SELECT count(*) FROM pg_drop_replication_slot('rt_test_decode')), 1::bigint,
          'slot dropped');
DROP TABLE public.decode_t;
DROP POLICY decode_send ON realtime.messages;
DELETE FROM realtime.messages WHERE topic LIKE 'decode:%';
SELECT * FROM finish();
