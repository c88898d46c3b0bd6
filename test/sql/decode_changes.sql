-- decode_changes.sql: row changes through the output plugin "realtime": INSERT, UPDATE and
-- DELETE of tables in the publication named by realtime.publication (supabase_realtime),
-- values rendered as to_jsonb renders them (PROTOCOL.md 6.4 step 7), replica identity,
-- unchanged TOAST values, TRUNCATE and other tables ignored. Commits for real (decoding sees
-- only committed work), cleans up leftovers first and drops what it made at the end.
\unset ECHO
\i test/setup.sql

SET TimeZone = 'UTC';
SET client_min_messages = warning;

-- Leftovers of a failed run.
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name = 'rt_test_changes';
DROP TABLE IF EXISTS public.chg_types, public.chg_full, public.chg_toast, public.chg_other,
                     public.chg_parted;
DROP TYPE IF EXISTS public.chg_mood, public.chg_pair;
DROP DOMAIN IF EXISTS public.chg_posint;

SELECT plan(33);

-- The publication: created here unless the cluster has one; dropped at the end if so.
CREATE TEMP TABLE made_publication AS
SELECT NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime') AS made;
DO $$
BEGIN
    IF (SELECT made FROM made_publication) THEN
        CREATE PUBLICATION supabase_realtime;
    END IF;
END
$$;

CREATE TYPE public.chg_mood AS ENUM ('sad', 'happy');
CREATE TYPE public.chg_pair AS (a int, b text);
CREATE DOMAIN public.chg_posint AS int CHECK (VALUE > 0);
CREATE TABLE public.chg_types (
    id int PRIMARY KEY, i2 int2, i8 int8, n numeric, f4 float4, f8 float8, nan float8,
    b bool, t text, vc varchar(10), u uuid, j json, jb jsonb, arr int[], tarr text[],
    ts timestamp, tstz timestamptz, d date, tm time, by bytea, m public.chg_mood,
    p public.chg_pair, dom public.chg_posint, nul text);
CREATE TABLE public.chg_full (id int PRIMARY KEY, v text);
ALTER TABLE public.chg_full REPLICA IDENTITY FULL;
ALTER TABLE public.chg_full ENABLE ROW LEVEL SECURITY;
CREATE TABLE public.chg_toast (id int PRIMARY KEY, v text, big text);
ALTER TABLE public.chg_toast ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE public.chg_other (id int PRIMARY KEY);
CREATE TABLE public.chg_parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE public.chg_parted_1 PARTITION OF public.chg_parted FOR VALUES FROM (0) TO (100);
ALTER PUBLICATION supabase_realtime ADD TABLE public.chg_types, public.chg_full,
                                              public.chg_toast, public.chg_parted;

SELECT is((SELECT slot_name::text FROM pg_create_logical_replication_slot('rt_test_changes',
                                                                            'realtime')),
          'rt_test_changes', 'a slot with the output plugin realtime');
CREATE TEMP TABLE lines (n serial, line text);
CREATE FUNCTION pg_temp.take() RETURNS bigint LANGUAGE sql AS $$
    DELETE FROM lines;
    ALTER SEQUENCE lines_n_seq RESTART;
    INSERT INTO lines (line)
    SELECT data FROM pg_logical_slot_get_changes('rt_test_changes', NULL, NULL);
    SELECT count(*) FROM lines;
$$;
CREATE FUNCTION pg_temp.j(i int) RETURNS jsonb LANGUAGE sql AS
$$ SELECT line::jsonb FROM lines WHERE n = i $$;

-- The type matrix: each value as to_jsonb renders it.
INSERT INTO public.chg_types VALUES (
    1, -2, 9007199254740993, 1.50, 1.5, -0.1, 'NaN', true, 'a"b\c', 'vc',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"x": [1, 2], "y":"z"}', '{"y": {"z": null}}',
    '{1,2,NULL}', '{"a",NULL,"c d"}', '2026-01-05 09:14:02.118', '2026-01-05 09:14:02.118+02',
    '2026-01-05', '12:34:56', '\xdeadbeef', 'happy', ROW(1, 'x'), 5, NULL);
CREATE TEMP TABLE expected AS SELECT to_jsonb(r) AS want FROM public.chg_types AS r;
SELECT is(pg_temp.take(), 1::bigint, 'one INSERT, one line');
SELECT is(pg_temp.j(1) - 'record' - 'commit_lsn' - 'commit_time' - 'relid' - 'columns',
          '{"type":"INSERT","schema":"public","table":"chg_types","rls":false,"pk":["id"]}'::jsonb,
          'INSERT: type, schema, table, rls, pk');
SELECT is((pg_temp.j(1)->>'relid')::oid, 'public.chg_types'::regclass::oid, 'relid');
SELECT is(pg_temp.j(1)->'record', (SELECT want FROM expected),
          'record: every column as to_jsonb renders it');
SELECT is(array(SELECT c->>'name' || ':' || (c->>'type')
                FROM jsonb_array_elements(pg_temp.j(1)->'columns') AS c),
          ARRAY['id:int4', 'i2:int2', 'i8:int8', 'n:numeric', 'f4:float4', 'f8:float8',
                'nan:float8', 'b:bool', 't:text', 'vc:varchar', 'u:uuid', 'j:json', 'jb:jsonb',
                'arr:_int4', 'tarr:_text', 'ts:timestamp', 'tstz:timestamptz', 'd:date',
                'tm:time', 'by:bytea', 'm:chg_mood', 'p:chg_pair', 'dom:chg_posint',
                'nul:text'], 'columns: names and pg_type.typname, in attribute order');
SELECT matches((SELECT line FROM lines WHERE n = 1),
               '"i8":9007199254740993,"n":1.50,"f4":1.5,"f8":-0.1,"nan":"NaN","b":true,'
               '"t":"a\\"b\\\\c"', 'numbers verbatim, NaN as a string, strings escaped');
SELECT matches((SELECT line FROM lines WHERE n = 1),
               '"ts":"2026-01-05T09:14:02.118","tstz":"2026-01-05T07:14:02.118\+00:00",'
               '"d":"2026-01-05","tm":"12:34:56","by":"\\\\xdeadbeef"',
               'dates and times in ISO 8601 (timestamptz in UTC), bytea text');

-- UPDATE and DELETE with the default replica identity (the primary key).
UPDATE public.chg_types SET t = 'new' WHERE id = 1;
UPDATE public.chg_types SET id = 2 WHERE id = 1;
DELETE FROM public.chg_types;
SELECT is(pg_temp.take(), 3::bigint, 'UPDATE, UPDATE of the key, DELETE: three lines');
SELECT is(array(SELECT pg_temp.j(i)->>'type' FROM generate_series(1, 3) AS i),
          ARRAY['UPDATE', 'UPDATE', 'DELETE'], 'types');
SELECT is(pg_temp.j(1)->'record'->>'t', 'new', 'UPDATE record: the new row');
SELECT is(pg_temp.j(1)->'old_record', '{"id":1}'::jsonb,
          'UPDATE old_record: the key of the row (old row not logged)');
SELECT is(pg_temp.j(2)->'old_record', '{"id":1}'::jsonb,
          'UPDATE of the key: old_record has the old key');
SELECT is(pg_temp.j(3)->'old_record', '{"id":2}'::jsonb, 'DELETE old_record: the key');
SELECT ok(NOT pg_temp.j(3) ? 'record', 'DELETE has no record');

-- REPLICA IDENTITY FULL, and a table with RLS enabled.
INSERT INTO public.chg_full VALUES (1, 'a');
UPDATE public.chg_full SET v = 'b';
DELETE FROM public.chg_full;
SELECT is(pg_temp.take(), 3::bigint, 'REPLICA IDENTITY FULL table: three lines');
SELECT ok(NOT pg_temp.j(1) ? 'old_record', 'INSERT has no old_record');
SELECT is(array(SELECT pg_temp.j(i)->'old_record' FROM generate_series(2, 3) AS i),
          ARRAY['{"id":1,"v":"a"}', '{"id":1,"v":"b"}']::jsonb[],
          'old_record: the whole old row');
SELECT is(pg_temp.j(1)->'rls', 'true'::jsonb, 'rls: true when RLS is enabled on the table');

-- An unchanged TOASTed value is not logged: left out, unless the old row has it.
INSERT INTO public.chg_toast VALUES (1, 'a', repeat('x', 10000));
UPDATE public.chg_toast SET v = 'b';
ALTER TABLE public.chg_toast REPLICA IDENTITY FULL;
UPDATE public.chg_toast SET v = 'c';
SELECT is(pg_temp.take(), 3::bigint, 'TOAST table: three lines');
SELECT is(length(pg_temp.j(1)->'record'->>'big'), 10000, 'INSERT: the TOASTed value');
SELECT is(pg_temp.j(2)->'record', '{"id":1,"v":"b"}'::jsonb,
          'UPDATE, default identity: the unchanged TOASTed column is left out');
SELECT is(length(pg_temp.j(3)->'record'->>'big'), 10000,
          'UPDATE, identity FULL: the unchanged TOASTed value comes from the old row');

-- timestamptz renders in UTC whatever the decoding session's TimeZone: clients get one form.
INSERT INTO public.chg_types (id, tstz) VALUES (3, '2026-01-05 09:14:02+02');
SET TimeZone = 'America/New_York';
SELECT is(pg_temp.take(), 1::bigint, 'one INSERT');
RESET TimeZone;
SET TimeZone = 'UTC';
SELECT is(pg_temp.j(1)->'record'->>'tstz', '2026-01-05T07:14:02+00:00',
          'timestamptz in UTC in a session with another TimeZone');
DELETE FROM public.chg_types;
DO $$ BEGIN PERFORM pg_temp.take(); END $$;

-- The per-relation encoding cache follows DDL decoded in between: each change is encoded
-- with the columns, names and types its own transaction saw.
INSERT INTO public.chg_full VALUES (10, 'a');
ALTER TABLE public.chg_full RENAME COLUMN v TO w;
INSERT INTO public.chg_full VALUES (11, 'b');
ALTER TABLE public.chg_full ADD COLUMN x int8 DEFAULT 7;
INSERT INTO public.chg_full VALUES (12, 'c');
ALTER TABLE public.chg_full ALTER COLUMN x TYPE numeric;
INSERT INTO public.chg_full VALUES (13, 'd', 1.5);
SELECT is(pg_temp.take(), 4::bigint, 'four INSERTs around three ALTER TABLEs');
SELECT is(array(SELECT (pg_temp.j(i)->'record')::text || ' ' || (pg_temp.j(i)->'columns')::text
                FROM generate_series(1, 4) AS i),
          ARRAY['{"v": "a", "id": 10} [{"name": "id", "type": "int4"}, {"name": "v", "type": "text"}]',
                '{"w": "b", "id": 11} [{"name": "id", "type": "int4"}, {"name": "w", "type": "text"}]',
                '{"w": "c", "x": 7, "id": 12} [{"name": "id", "type": "int4"}, {"name": "w", "type": "text"}, {"name": "x", "type": "int8"}]',
                '{"w": "d", "x": 1.5, "id": 13} [{"name": "id", "type": "int4"}, {"name": "w", "type": "text"}, {"name": "x", "type": "numeric"}]'],
          'each change with the columns of its time: renamed, added, retyped');
ALTER TABLE public.chg_full DROP COLUMN x;
ALTER TABLE public.chg_full RENAME COLUMN w TO v;
DELETE FROM public.chg_full;
DO $$ BEGIN PERFORM pg_temp.take(); END $$;

-- Over 1 MiB of values (upstream's max_record_bytes): flagged, and only values of at most
-- 64 bytes are kept (PROTOCOL.md 6.4 step 6).
INSERT INTO public.chg_toast VALUES (2, 'small', repeat('y', 1100000));
SELECT is(pg_temp.take(), 1::bigint, 'a change with over 1 MiB of values: one line');
SELECT is(pg_temp.j(1)->'record', '{"id":2,"v":"small"}'::jsonb,
          'too large: only values of at most 64 bytes kept');
SELECT is(pg_temp.j(1)->'too_large', 'true'::jsonb, 'too large: flagged');
DELETE FROM public.chg_toast WHERE id = 2;
DO $$ BEGIN PERFORM pg_temp.take(); END $$;

-- Not published: other tables, TRUNCATE, actions the publication does not publish.
-- Partitions are published through their published parent. Messages interleave in order.
INSERT INTO public.chg_other VALUES (1);
TRUNCATE public.chg_full;
ALTER PUBLICATION supabase_realtime SET (publish = 'insert');
UPDATE public.chg_toast SET v = 'd';
ALTER PUBLICATION supabase_realtime SET (publish = 'insert, update, delete, truncate');
-- Without psql's per-statement savepoints: a message and the row change right after it in
-- another subtransaction tie in the reorder buffer (it orders a message by its end LSN),
-- so their relative order is not guaranteed across subtransactions.
\set ON_ERROR_ROLLBACK off
BEGIN;
INSERT INTO public.chg_parted VALUES (7);
SELECT realtime.send('{"between":true}', 'ev', 'chg');
INSERT INTO public.chg_full VALUES (2, 'z');
COMMIT;
\set ON_ERROR_ROLLBACK 1
SELECT is(pg_temp.take(), 3::bigint, 'three lines');
SELECT is(array(SELECT coalesce(line::jsonb->>'table', line::jsonb->>'topic') FROM lines
                ORDER BY n),
          ARRAY['chg_parted_1', 'chg', 'chg_full'],
          'other table, TRUNCATE and an unpublished UPDATE skipped; partition, message, row in order');

-- Clean up.
SELECT is((SELECT count(*) FROM pg_drop_replication_slot('rt_test_changes')), 1::bigint,
          'slot dropped');
DROP TABLE public.chg_types, public.chg_full, public.chg_toast, public.chg_other,
           public.chg_parted;
DROP TYPE public.chg_mood, public.chg_pair;
DROP DOMAIN public.chg_posint;
DO $$
BEGIN
    IF (SELECT made FROM made_publication) THEN
        DROP PUBLICATION supabase_realtime;
    END IF;
END
$$;
SELECT * FROM finish();
