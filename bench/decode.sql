-- decode.sql: schema, workload generator and timing function of bench/decode.sh
-- (`make bench-decode`, docs/PERFORMANCE.md). Run once, by psql, in the throwaway
-- cluster's database postgres; everything lives in schema bench_decode except the
-- benchmark tables, which are in public (as application tables would be).
--
-- A "case" is a set of tables decoded together. Each table has an int8 primary key
-- "id" and a share of the row changes per 100 (the shares of a case add up to 100;
-- each a multiple of 10): of a table's share, 60 % are INSERTs, 30 % UPDATEs and 10 %
-- DELETEs, so a transaction of 100 row changes has exactly 60 / 30 / 10 of them.
-- Case "mix" is the benchmark proper (a narrow and a wide table); the other cases
-- (one table of 8 columns of one type each) tell where the time goes per type.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE SCHEMA bench_decode;

-- What the generator needs to know about each table.
CREATE TABLE bench_decode.tables (
    case_name text NOT NULL,
    tbl       text NOT NULL,      -- public.<tbl>
    cols      text NOT NULL,      -- columns after id, as in INSERT (id, <cols>)
    vals      text NOT NULL,      -- their values, an expression list in i (the new id)
    upd       text NOT NULL,      -- SET list of an UPDATE, may use id
    share     int NOT NULL CHECK (share > 0 AND share % 10 = 0),
    PRIMARY KEY (case_name, tbl)
);

-- The benchmark: a narrow table (int8 key, text, timestamptz, bool, jsonb) and a wide
-- one (11 columns: uuid, text, numeric, int4, float8, text[], timestamptz, bool).
CREATE TABLE public.bench_narrow (
    id int8 PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL, done bool NOT NULL,
    meta jsonb);
CREATE TABLE public.bench_wide (
    id int8 PRIMARY KEY, account uuid NOT NULL, name text NOT NULL, email text,
    amount numeric(12, 2) NOT NULL, qty int4 NOT NULL, score float8, tags text[],
    created_at timestamptz NOT NULL, updated_at timestamptz, active bool NOT NULL);
INSERT INTO bench_decode.tables VALUES
('mix', 'bench_narrow', 'body, at, done, meta',
 $$'message ' || i || ': ' || md5(i::text) || repeat(' lorem ipsum', (i % 5)::int),
   timestamptz '2026-01-01 00:00:00+00' + i * interval '1.25 second', i % 3 = 0,
   jsonb_build_object('n', i, 'kind', 'note', 'tags', jsonb_build_array('a', 'b'), 'ok', i % 2 = 0)$$,
 $$body = 'edited ' || md5(id::text), done = NOT done, at = at + interval '1 minute'$$,
 70),
('mix', 'bench_wide', 'account, name, email, amount, qty, score, tags, created_at, updated_at, active',
 $$md5(i::text)::uuid, 'Customer ' || i, 'user' || i || '@example.com',
   (i * 1.37 % 100000)::numeric(12, 2), (i % 1000)::int4, i / 7.0::float8,
   ARRAY['tag' || i % 10, 'x', 'y z'], timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second',
   NULL, i % 2 = 0$$,
 $$amount = amount + 1, qty = qty + 1, updated_at = created_at + interval '1 day', active = NOT active$$,
 30);

-- The per-type cases: id + c1..c8 of one type (int4_1 and int4_32: 1 and 32 int4
-- columns, to separate the cost per row from the cost per column); INSERT / UPDATE /
-- DELETE as above.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('int4', 'int4', '(i %% 100000 + %s)::int4', 8),
        ('int4_1', 'int4', '(i %% 100000 + %s)::int4', 1),
        ('int4_32', 'int4', '(i %% 100000 + %s)::int4', 32),
        ('int8', 'int8', '(i::int8 * 1000003 + %s)', 8),
        ('bool', 'bool', '(i + %s) %% 2 = 0', 8),
        ('text', 'text', 'md5((i + %s)::text)', 8),
        ('numeric', 'numeric(12,2)', '((i + %s) * 1.37 %% 100000)::numeric(12,2)', 8),
        ('float8', 'float8', '(i + %s) / 7.0::float8', 8),
        ('uuid', 'uuid', 'md5((i + %s)::text)::uuid', 8),
        ('timestamptz', 'timestamptz', $x$timestamptz '2026-01-01 00:00:00+00' + (i + %s) * interval '1.25 second'$x$, 8),
        ('jsonb', 'jsonb', $x$jsonb_build_object('n', i + %s, 'kind', 'note', 'ok', true)$x$, 8),
        ('text_array', 'text[]', $x$ARRAY['tag' || (i + %s) %% 10, 'x', 'y z']$x$, 8)
    ) AS v(name, typ, expr, ncols)
    LOOP
        EXECUTE format('CREATE TABLE public.bench_t_%s (id int8 PRIMARY KEY, %s)', t.name,
                       (SELECT string_agg(format('c%s %s', k, t.typ), ', ')
                        FROM generate_series(1, t.ncols) AS k));
        INSERT INTO bench_decode.tables VALUES (
            t.name, 'bench_t_' || t.name,
            (SELECT string_agg('c' || k, ', ') FROM generate_series(1, t.ncols) AS k),
            (SELECT string_agg(format(t.expr, k), ', ') FROM generate_series(1, t.ncols) AS k),
            -- c1 takes the value of a row inserted a million later: a different value
            format('c1 = (SELECT %s FROM (SELECT id + 1000000 AS i) AS n)', format(t.expr, 1)),
            100);
    END LOOP;
END
$$;

-- The publication holds the tables of the case being measured (use_case).
CREATE PUBLICATION supabase_realtime;
-- No tables: pgoutput with this one decodes the same WAL and prints no change, the
-- cost of decoding itself ("floor").
CREATE PUBLICATION bench_empty;

-- Live ids of each table are lo..hi (DELETEs take the lowest, INSERTs append).
-- Unlogged: its updates are not in the WAL, so no plugin sees them.
CREATE UNLOGGED TABLE bench_decode.live (tbl text PRIMARY KEY, lo int8 NOT NULL, hi int8 NOT NULL);

-- Publish the tables of one case, and only those (before its slots are created).
CREATE PROCEDURE bench_decode.use_case(case_name text)
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bench_decode.tables AS x WHERE x.case_name = use_case.case_name) THEN
        RAISE EXCEPTION 'unknown case %', case_name;
    END IF;
    EXECUTE 'ALTER PUBLICATION supabase_realtime SET TABLE ' ||
            (SELECT string_agg('public.' || quote_ident(tbl), ', ')
             FROM bench_decode.tables AS x WHERE x.case_name = use_case.case_name);
END
$$;

-- Fill each table of a case with seed rows (before the slots exist: not decoded).
CREATE PROCEDURE bench_decode.seed(case_name text, rows int8)
LANGUAGE plpgsql AS $$
DECLARE
    t bench_decode.tables;
BEGIN
    FOR t IN SELECT * FROM bench_decode.tables AS x WHERE x.case_name = seed.case_name LOOP
        EXECUTE format('TRUNCATE public.%I', t.tbl);
        EXECUTE format('INSERT INTO public.%I (id, %s) SELECT i, %s FROM generate_series(1, %s) AS i',
                       t.tbl, t.cols, t.vals, rows);
        DELETE FROM bench_decode.live AS l WHERE l.tbl = t.tbl;
        INSERT INTO bench_decode.live VALUES (t.tbl, 1, rows);
    END LOOP;
END
$$;

-- Write `total` row changes in transactions of `txn_rows` (a multiple of 100), each
-- transaction the case's mix; returns how many rows the statements changed (= total).
CREATE PROCEDURE bench_decode.generate(case_name text, total int8, txn_rows int,
                                       INOUT changed int8 DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    t bench_decode.tables;
    l bench_decode.live;
    n int8;
    ins int8;
    upd int8;
    del int8;
    x int8;
BEGIN
    IF txn_rows <= 0 OR txn_rows % 100 <> 0 OR total % txn_rows <> 0 THEN
        RAISE EXCEPTION 'txn_rows (%) must be a positive multiple of 100 dividing total (%)',
            txn_rows, total;
    END IF;
    IF (SELECT sum(share) FROM bench_decode.tables AS c WHERE c.case_name = generate.case_name)
       IS DISTINCT FROM 100 THEN
        RAISE EXCEPTION 'the shares of case % do not add up to 100', case_name;
    END IF;
    PERFORM setseed(0.42);
    changed := 0;
    FOR b IN 1 .. total / txn_rows LOOP
        FOR t IN SELECT * FROM bench_decode.tables AS c WHERE c.case_name = generate.case_name
                 ORDER BY c.tbl LOOP
            ins := t.share * txn_rows / 100 * 6 / 10;
            upd := t.share * txn_rows / 100 * 3 / 10;
            del := t.share * txn_rows / 100 / 10;
            SELECT * INTO l FROM bench_decode.live AS v WHERE v.tbl = t.tbl;
            IF l.hi - l.lo + 1 < del + upd + ins THEN
                RAISE EXCEPTION 'table % has too few live rows; seed more', t.tbl;
            END IF;
            EXECUTE format('INSERT INTO public.%I (id, %s) SELECT i, %s FROM generate_series(%s, %s) AS i',
                           t.tbl, t.cols, t.vals, l.hi + 1, l.hi + ins);
            GET DIAGNOSTICS n = ROW_COUNT;
            changed := changed + n;
            -- a random run of live rows, past the ones deleted below
            x := l.lo + del + floor(random() * (l.hi - l.lo + 1 - del - upd))::int8;
            EXECUTE format('UPDATE public.%I SET %s WHERE id BETWEEN %s AND %s',
                           t.tbl, t.upd, x, x + upd - 1);
            GET DIAGNOSTICS n = ROW_COUNT;
            changed := changed + n;
            EXECUTE format('DELETE FROM public.%I WHERE id BETWEEN %s AND %s',
                           t.tbl, l.lo, l.lo + del - 1);
            GET DIAGNOSTICS n = ROW_COUNT;
            changed := changed + n;
            UPDATE bench_decode.live AS v SET lo = l.lo + del, hi = l.hi + ins WHERE v.tbl = t.tbl;
        END LOOP;
        COMMIT;
    END LOOP;
END
$$;

-- Nanoseconds this backend has run on a CPU (first field of /proc/self/schedstat).
CREATE FUNCTION bench_decode.cpu_ns() RETURNS int8
LANGUAGE plpgsql AS $$
BEGIN
    RETURN split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::int8;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- Decode everything slot `slot` holds with `plugin`'s SQL function and options,
-- without consuming it (peek), timed in the server. wal2json gets add-tables = the
-- published tables, as upstream passes the publication's tables. rows = lines that are row changes
-- (each plugin's own marker), lines = all output rows, bytes = their total size,
-- seconds = wall time, cpu_seconds = time this backend spent on a CPU meanwhile
-- (Linux /proc/self/schedstat, NULL where it is unreadable): less sensitive than the
-- wall time to other jobs on the machine.
CREATE FUNCTION bench_decode.time_peek(plugin text, slot name,
                                       OUT rows int8, OUT lines int8, OUT bytes int8,
                                       OUT seconds float8, OUT cpu_seconds float8)
LANGUAGE plpgsql AS $$
DECLARE
    q text;
    t0 timestamptz;
    c0 int8;
BEGIN
    q := CASE plugin
        -- one JSON line per row change (and per realtime.send() message: none here)
        WHEN 'realtime' THEN
            $q$SELECT count(*) FILTER (WHERE left(data, 16) IN ('{"type":"INSERT"',
                   '{"type":"UPDATE"', '{"type":"DELETE"')), count(*), sum(octet_length(data))
               FROM pg_logical_slot_peek_changes($1, NULL, NULL)$q$
        -- the same plugin as the decoder worker runs it: binary ring records, one per row
        -- change, starting with their record type (3 = RT_REC_CHANGE, rt_ring.h)
        WHEN 'realtime_ring' THEN
            $q$SELECT count(*) FILTER (WHERE get_byte(data, 0) = 3), count(*),
                   sum(octet_length(data))
               FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'format', 'ring')$q$
        -- upstream Supabase Realtime's options (PROTOCOL.md 6.3): no B/C lines
        WHEN 'wal2json' THEN
            $q$SELECT count(*) FILTER (WHERE left(data, 13) IN ('{"action":"I"', '{"action":"U"',
                   '{"action":"D"')), count(*), sum(octet_length(data))
               FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'format-version', '2',
                   'include-pk', '1', 'include-transaction', 'false', 'include-timestamp', '1',
                   'include-type-oids', '1', 'actions', 'insert,update,delete',
                   'add-tables', $2)$q$
        -- binary messages: B, R (per relation), I / U / D, C
        WHEN 'pgoutput' THEN
            $q$SELECT count(*) FILTER (WHERE get_byte(data, 0) IN (73, 85, 68)), count(*),
                   sum(octet_length(data))
               FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1',
                   'publication_names', 'supabase_realtime')$q$
        -- the floor: pgoutput with a publication without tables prints nothing (it
        -- skips empty transactions), so this is decoding and dropping every change
        WHEN 'floor' THEN
            $q$SELECT count(*) FILTER (WHERE get_byte(data, 0) IN (73, 85, 68)), count(*),
                   coalesce(sum(octet_length(data)), 0)
               FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1',
                   'publication_names', 'bench_empty')$q$
        -- BEGIN, "table s.t: ACTION: ..." lines, COMMIT
        WHEN 'test_decoding' THEN
            $q$SELECT count(*) FILTER (WHERE left(data, 6) = 'table '), count(*),
                   sum(octet_length(data))
               FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'include-xids', '0',
                   'skip-empty-xacts', '1')$q$
    END;
    IF q IS NULL THEN
        RAISE EXCEPTION 'unknown plugin %', plugin;
    END IF;
    c0 := bench_decode.cpu_ns();
    t0 := clock_timestamp();
    EXECUTE q INTO rows, lines, bytes
        USING slot, (SELECT string_agg(format('%s.%s', schemaname, tablename), ',')
                     FROM pg_publication_tables WHERE pubname = 'supabase_realtime');
    seconds := extract(epoch FROM clock_timestamp() - t0);
    cpu_seconds := (bench_decode.cpu_ns() - c0) / 1e9;
END
$$;
