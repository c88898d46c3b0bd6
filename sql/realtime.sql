-- realtime 0.2.0: roles, the realtime schema's grants, realtime.messages with its daily
-- partitions, realtime.topic(), the functions of the extension and the Postgres Changes
-- registry realtime.subscription (PROTOCOL.md section 7).
--
-- Run once by the backend executing CREATE EXTENSION realtime, as a superuser (the control
-- file says superuser = true), in the schema realtime that CREATE EXTENSION creates. The
-- Makefile copies this file to sql/realtime--0.1.0.sql.

\echo Use "CREATE EXTENSION realtime" to load this file. \quit

-- Fail early, with the library's own error (55000) and hint, in a server that does not
-- preload realtime: nothing here works without the decoder worker. A no-op when preloaded.
LOAD 'MODULE_PATHNAME';

-- Roles are cluster-wide and never members of the extension, so they survive DROP EXTENSION
-- and are shared by every database. Supabase databases already have them; self-hosted
-- PostgreSQL usually does not. Existing roles are left exactly as they are.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname = 'supabase_realtime_admin') THEN
        CREATE ROLE supabase_realtime_admin NOLOGIN NOINHERIT;
        -- As upstream: the admin may SET ROLE to the API roles (NOINHERIT: no implicit rights).
        GRANT anon, authenticated, service_role TO supabase_realtime_admin;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA realtime TO anon, authenticated, service_role;
-- The admin owns the partitions it creates (create_messages_partitions below).
GRANT USAGE, CREATE ON SCHEMA realtime TO supabase_realtime_admin;

-- Broadcast and presence messages. Also the target of the authorization probes of
-- PROTOCOL.md section 8: RLS policies on this table decide who may read and write a
-- private channel. Column order and names follow upstream exactly.
CREATE TABLE realtime.messages (
    topic text NOT NULL,
    extension text NOT NULL,
    payload jsonb,
    event text,
    private boolean DEFAULT false,
    updated_at timestamp without time zone NOT NULL DEFAULT timezone('utc', now()),
    inserted_at timestamp without time zone NOT NULL DEFAULT timezone('utc', now()),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    binary_payload bytea,
    expires_at timestamp without time zone,
    CONSTRAINT messages_pkey PRIMARY KEY (id, inserted_at),
    CONSTRAINT messages_payload_exclusive CHECK (payload IS NULL OR binary_payload IS NULL)
) PARTITION BY RANGE (inserted_at);

-- Replay of private broadcasts (PROTOCOL.md 4.5) reads the newest rows of one topic since a
-- time: topic first, so that a join reads only its topic's rows (upstream's index leads
-- with inserted_at and walks every topic's recent rows).
CREATE INDEX messages_topic_inserted_at_index
    ON realtime.messages (topic, inserted_at DESC)
    WHERE extension = 'broadcast' AND private IS TRUE;
-- The janitor deletes rows past their expiry (persisted with a TTL).
CREATE INDEX messages_expires_at_index
    ON realtime.messages (expires_at) WHERE expires_at IS NOT NULL;

ALTER TABLE realtime.messages OWNER TO supabase_realtime_admin;
ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE ON realtime.messages TO anon, authenticated, service_role;

COMMENT ON TABLE realtime.messages IS
    'Realtime broadcast and presence messages, one partition per UTC day; '
    'RLS policies on it authorize private channels (SELECT to receive, INSERT to send)';
COMMENT ON COLUMN realtime.messages.topic IS 'Channel topic without the "realtime:" prefix';
COMMENT ON COLUMN realtime.messages.extension IS '''broadcast'' or ''presence''';
COMMENT ON COLUMN realtime.messages.payload IS 'JSON payload (exclusive with binary_payload)';
COMMENT ON COLUMN realtime.messages.event IS 'Broadcast event name';
COMMENT ON COLUMN realtime.messages.private IS 'True for a private (RLS-authorized) channel';
COMMENT ON COLUMN realtime.messages.updated_at IS 'Last update time (UTC)';
COMMENT ON COLUMN realtime.messages.inserted_at IS 'Insert time (UTC); the partition key';
COMMENT ON COLUMN realtime.messages.id IS 'Message id, also injected into JSON payloads';
COMMENT ON COLUMN realtime.messages.binary_payload IS 'Binary payload (exclusive with payload)';
COMMENT ON COLUMN realtime.messages.expires_at IS
    'Time (UTC) after which the janitor deletes the row; NULL: kept for the retention period';
COMMENT ON CONSTRAINT messages_payload_exclusive ON realtime.messages IS
    'A message has a JSON payload or a binary payload, not both';
COMMENT ON INDEX realtime.messages_topic_inserted_at_index IS
    'Replay of recent private broadcasts by topic';
COMMENT ON INDEX realtime.messages_expires_at_index IS 'Deletion of rows past their expiry';

-- Create the missing daily partitions messages_YYYY_MM_DD for first_day .. last_day.
-- Not SECURITY DEFINER: the caller must be allowed to create partitions of realtime.messages
-- (a superuser, or a member of supabase_realtime_admin after SET ROLE).
CREATE FUNCTION realtime.create_messages_partitions(
    first_day date DEFAULT (now() AT TIME ZONE 'utc')::date - 1,
    last_day date DEFAULT (now() AT TIME ZONE 'utc')::date + 3)
RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    day date;
    part text;
    created integer := 0;
BEGIN
    IF last_day < first_day OR last_day - first_day > 366 THEN
        RAISE EXCEPTION 'invalid partition range from % to %', first_day, last_day
            USING ERRCODE = '22023',
                  HINT = 'last_day must be between first_day and first_day + 366.';
    END IF;
    -- Nothing to do, the common case: take no lock.
    IF NOT EXISTS (SELECT 1 FROM generate_series(0, last_day - first_day) AS i
                   WHERE to_regclass(format('realtime.%I', 'messages_'
                                            || to_char(first_day + i, 'YYYY_MM_DD'))) IS NULL) THEN
        RETURN 0;
    END IF;
    -- Self-conflicting lock: concurrent callers (sidecars, janitors) create each day once.
    LOCK TABLE realtime.messages IN SHARE ROW EXCLUSIVE MODE;
    FOR day IN SELECT first_day + i FROM generate_series(0, last_day - first_day) AS i LOOP
        part := 'messages_' || to_char(day, 'YYYY_MM_DD');
        CONTINUE WHEN to_regclass(format('realtime.%I', part)) IS NOT NULL;
        EXECUTE format('CREATE TABLE realtime.%I PARTITION OF realtime.messages '
                       'FOR VALUES FROM (%L) TO (%L)', part, day, day + 1);
        EXECUTE format('ALTER TABLE realtime.%I OWNER TO supabase_realtime_admin', part);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;

-- Drop the daily partitions of days before before_day (upstream's janitor keeps 72 hours).
CREATE FUNCTION realtime.drop_messages_partitions(
    before_day date DEFAULT ((now() AT TIME ZONE 'utc') - interval '72 hours')::date)
RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    part text;
    dropped integer := 0;
BEGIN
    -- Only partitions named by create_messages_partitions; others are the user's business.
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'realtime.messages'::regclass
          AND c.relname ~ '^messages_\d{4}_\d{2}_\d{2}$'
          AND to_date(substr(c.relname, 10), 'YYYY_MM_DD') < before_day
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE realtime.%I', part);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$fn$;

REVOKE ALL ON FUNCTION realtime.create_messages_partitions(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.drop_messages_partitions(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION realtime.create_messages_partitions(date, date)
    TO supabase_realtime_admin;
GRANT EXECUTE ON FUNCTION realtime.drop_messages_partitions(date) TO supabase_realtime_admin;

COMMENT ON FUNCTION realtime.create_messages_partitions(date, date) IS
    'Create the missing daily partitions of realtime.messages from first_day to last_day '
    '(default: yesterday to today + 3, UTC); returns how many were created';
COMMENT ON FUNCTION realtime.drop_messages_partitions(date) IS
    'Drop the daily partitions of realtime.messages older than before_day '
    '(default: the day of now - 72 hours, UTC); returns how many were dropped';

-- One pass of retention (the janitor worker calls it every realtime.janitor_naptime;
-- src/extension/janitor.cpp): create the coming days' partitions, delete the rows past their
-- expiry, drop the partitions past the retention (realtime.message_retention unless given).
CREATE FUNCTION realtime.expire_messages(
    retention interval DEFAULT NULL,
    OUT messages_expired bigint, OUT partitions_dropped integer,
    OUT partitions_created integer)
RETURNS record
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- pg_settings has the value in the setting's unit (minutes); SHOW would say '3d'
    keep interval := coalesce(retention,
                              (SELECT make_interval(mins => setting::integer) FROM pg_settings
                               WHERE name = 'realtime.message_retention'),
                              interval '3 days');
BEGIN
    IF keep < interval '1 hour' THEN
        RAISE EXCEPTION 'retention of % is too short', keep
            USING ERRCODE = '22023', HINT = 'Keep messages for one hour at least.';
    END IF;
    partitions_created := realtime.create_messages_partitions();
    DELETE FROM realtime.messages
    WHERE expires_at IS NOT NULL AND expires_at <= timezone('utc', now());
    GET DIAGNOSTICS messages_expired = ROW_COUNT;
    BEGIN
        partitions_dropped := realtime.drop_messages_partitions(
            ((now() AT TIME ZONE 'utc') - keep)::date);
    EXCEPTION WHEN lock_not_available THEN
        -- a partition still in use past lock_timeout: the drops wait for the next pass, the
        -- partitions created and rows deleted above stay
        partitions_dropped := 0;
        RAISE WARNING 'realtime.expire_messages: old partitions kept until the next pass: %',
            SQLERRM;
    END;
END
$fn$;

REVOKE ALL ON FUNCTION realtime.expire_messages(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION realtime.expire_messages(interval) TO supabase_realtime_admin;

COMMENT ON FUNCTION realtime.expire_messages(interval) IS
    'Retention of realtime.messages: creates the coming partitions, deletes rows past '
    'expires_at, drops partitions older than retention (default realtime.message_retention)';

-- The partitions inserts need right now. A table created by this script would be a member
-- of the extension, and a member cannot be dropped alone: release them, so that
-- drop_messages_partitions can expire them like the ones created later.
DO $partitions$
DECLARE
    part regclass;
BEGIN
    PERFORM realtime.create_messages_partitions();
    FOR part IN SELECT inhrelid::regclass FROM pg_catalog.pg_inherits
                WHERE inhparent = 'realtime.messages'::regclass LOOP
        EXECUTE format('ALTER EXTENSION realtime DROP TABLE %s', part);
    END LOOP;
END
$partitions$;

-- The channel topic being authorized, for RLS policies on realtime.messages; NULL when
-- unset. The sidecar sets it with set_config('realtime.topic', topic, true).
CREATE FUNCTION realtime.topic()
RETURNS text
LANGUAGE sql STABLE CALLED ON NULL INPUT PARALLEL SAFE
AS $fn$ SELECT NULLIF(pg_catalog.current_setting('realtime.topic', true), '') $fn$;

COMMENT ON FUNCTION realtime.topic() IS
    'Topic of the channel being authorized (setting realtime.topic), NULL when unset or empty';

-- Broadcast a message from SQL (PROTOCOL.md 4.8, 7.4; src/extension/send.cpp). A
-- transactional logical message: delivered only when, and if, the caller commits, in
-- commit order. Never aborts the caller: bad arguments, a payload over
-- realtime.max_message_bytes or an INSERT on realtime.messages that RLS refuses to the
-- caller are a WARNING 'WarnSendingBroadcastMessage: <reason>' and nothing is sent.
-- Not SECURITY DEFINER: the caller's own right to insert the row is checked.
CREATE FUNCTION realtime.send(payload jsonb, event text, topic text,
                              private boolean DEFAULT false)
RETURNS void
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'realtime_send';

COMMENT ON FUNCTION realtime.send(jsonb, text, text, boolean) IS
    'Broadcast payload as event on topic when the transaction commits; adds "id" to the '
    'payload if absent; a WARNING instead of an error when it cannot send';

-- Trigger helper (PROTOCOL.md 7.4): send a row change as a private broadcast with the
-- payload {"id", "schema", "table", "operation", "record", "old_record"} ("id" added by
-- realtime.send). Unlike send, its own errors abort the caller, re-raised as
-- 'Failed to process the row: <error>' with the original SQLSTATE.
CREATE FUNCTION realtime.broadcast_changes(topic_name text, event_name text, operation text,
                                           table_name text, table_schema text, new record,
                                           old record, level text DEFAULT 'ROW')
RETURNS void
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF level = 'STATEMENT' THEN
        RAISE EXCEPTION 'function can only be triggered for each row, not for each statement'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF operation IS NULL OR operation NOT IN ('INSERT', 'UPDATE', 'DELETE') THEN
        RAISE EXCEPTION 'Unexpected operation type: %', operation
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM realtime.send(jsonb_build_object('old_record', old, 'record', new,
                                             'operation', operation, 'table', table_name,
                                             'schema', table_schema),
                          event_name, topic_name, true);
EXCEPTION
    WHEN OTHERS THEN
        RAISE EXCEPTION USING MESSAGE = 'Failed to process the row: ' || SQLERRM,
                              ERRCODE = SQLSTATE;
END
$fn$;

COMMENT ON FUNCTION realtime.broadcast_changes(text, text, text, text, text, record, record,
                                               text) IS
    'Trigger helper: send a row change (record, old_record) to topic_name as a private '
    'broadcast of event_name';

-- The ring and the decoder worker, as C sees them (src/extension/stats.cpp); NULL ring
-- columns while the ring file does not exist yet. realtime.stats() below adds the slot.
CREATE FUNCTION realtime.ring_stats(
    OUT ring_path text, OUT capacity bigint, OUT write_pos bigint, OUT tail_pos bigint,
    OUT next_seq bigint, OUT records_written bigint, OUT records_dropped bigint,
    OUT records_skipped bigint, OUT records_too_large bigint, OUT writer_pid integer,
    OUT writer_heartbeat_age_ms bigint, OUT readers jsonb, OUT worker_pid integer,
    OUT decoder_turns bigint, OUT decoder_records bigint, OUT decoder_stalls bigint,
    OUT decoder_forced bigint, OUT decoded_lsn pg_lsn)
RETURNS record
LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'realtime_ring_stats';

COMMENT ON FUNCTION realtime.ring_stats() IS
    'Ring header (positions, counters, reader slots) and decoder worker counters';

-- The janitor worker's counters (src/extension/janitor.cpp), since the server started.
CREATE FUNCTION realtime.janitor_stats(
    OUT janitor_pid integer, OUT janitor_passes bigint, OUT messages_expired bigint,
    OUT partitions_dropped bigint, OUT janitor_last_pass_age_ms bigint)
RETURNS record
LANGUAGE C VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'realtime_janitor_stats';

COMMENT ON FUNCTION realtime.janitor_stats() IS
    'Janitor worker: its pid, passes, expired rows deleted, partitions dropped, age of the '
    'last pass';

REVOKE ALL ON FUNCTION realtime.janitor_stats() FROM PUBLIC;

-- Everything an operator watches: ring positions, readers (slot, pid, read_pos,
-- heartbeat age), records written and dropped, how far slot "realtime" has confirmed
-- (slot_lag_bytes: WAL not yet in the ring) and how much WAL the server keeps for it
-- (slot_kept_bytes, from its restart point: what realtime.max_lag_bytes bounds), and what
-- the janitor worker removed (realtime.janitor_stats()).
CREATE FUNCTION realtime.stats(
    OUT ring_path text, OUT capacity bigint, OUT write_pos bigint, OUT tail_pos bigint,
    OUT next_seq bigint, OUT records_written bigint, OUT records_dropped bigint,
    OUT records_skipped bigint, OUT records_too_large bigint, OUT writer_pid integer,
    OUT writer_heartbeat_age_ms bigint, OUT readers jsonb, OUT live_readers integer,
    OUT worker_pid integer, OUT decoder_turns bigint, OUT decoder_records bigint,
    OUT decoder_stalls bigint, OUT decoder_forced bigint, OUT slot_active boolean,
    OUT slot_confirmed_flush_lsn pg_lsn, OUT slot_lag_bytes numeric,
    OUT slot_kept_bytes numeric, OUT ring_decoded_lsn pg_lsn, OUT janitor_pid integer,
    OUT janitor_passes bigint, OUT messages_expired bigint, OUT partitions_dropped bigint,
    OUT janitor_last_pass_age_ms bigint)
RETURNS record
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT r.ring_path, r.capacity, r.write_pos, r.tail_pos, r.next_seq, r.records_written,
           r.records_dropped, r.records_skipped, r.records_too_large, r.writer_pid,
           r.writer_heartbeat_age_ms, r.readers,
           (SELECT count(*)::integer FROM jsonb_array_elements(r.readers) e
            WHERE e->>'state' = 'live'),
           nullif(r.worker_pid, 0), r.decoder_turns, r.decoder_records, r.decoder_stalls,
           r.decoder_forced, s.active, s.confirmed_flush_lsn,
           CASE WHEN s.confirmed_flush_lsn IS NOT NULL AND NOT pg_is_in_recovery()
                THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn) END,
           CASE WHEN s.restart_lsn IS NOT NULL AND NOT pg_is_in_recovery()
                THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn) END,
           r.decoded_lsn, j.janitor_pid, j.janitor_passes, j.messages_expired,
           j.partitions_dropped, j.janitor_last_pass_age_ms
    FROM realtime.ring_stats() r
    CROSS JOIN realtime.janitor_stats() j
    LEFT JOIN pg_replication_slots s ON s.slot_name = 'realtime'
$fn$;

COMMENT ON FUNCTION realtime.stats() IS
    'Ring positions and readers, records written and dropped, decoder counters, the lag '
    'of slot "realtime" (pg_current_wal_lsn() - confirmed_flush_lsn) and the WAL it keeps '
    '(pg_current_wal_lsn() - restart_lsn), and the janitor''s passes and removals';

REVOKE ALL ON FUNCTION realtime.ring_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION realtime.stats() FROM PUBLIC;

-- Postgres Changes registry (PROTOCOL.md 6.2, 7.1, 7.3). The sidecar inserts one row per
-- postgres_changes entry of a join and per matching table of the publication; the trigger
-- below refuses what upstream's trigger refuses, with upstream's texts, which clients read
-- inside "Unable to subscribe to changes ... Exception: ERROR P0001 (raise_exception) ...".
-- Types, table and functions keep upstream's names and are owned by the admin role.

CREATE TYPE realtime.action AS ENUM ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'ERROR');
ALTER TYPE realtime.action OWNER TO supabase_realtime_admin;
COMMENT ON TYPE realtime.action IS
    'Kind of a captured change (ERROR: a change delivered with errors only)';

-- Declaration order is the sort order of op in normalized filters: append, never reorder.
CREATE TYPE realtime.equality_op AS ENUM (
    'eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'in',
    'like', 'ilike', 'is', 'match', 'imatch', 'isdistinct');
ALTER TYPE realtime.equality_op OWNER TO supabase_realtime_admin;
COMMENT ON TYPE realtime.equality_op IS
    'Operator of a postgres_changes filter (column=[not.]op.value)';

CREATE TYPE realtime.user_defined_filter AS (
    column_name text,
    op realtime.equality_op,
    value text,
    negate boolean);
ALTER TYPE realtime.user_defined_filter OWNER TO supabase_realtime_admin;
COMMENT ON TYPE realtime.user_defined_filter IS
    'One filter condition: column_name op value, inverted when negate (the not. prefix); '
    'for in, value is an array literal';

-- The role named by a JWT's role claim. IMMUTABLE is not quite true (roles come and go) but
-- a generated column needs it, and the role of a stored row never changes.
CREATE FUNCTION realtime.to_regrole(role_name text)
RETURNS regrole
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $fn$ SELECT role_name::pg_catalog.regrole $fn$;

ALTER FUNCTION realtime.to_regrole(text) OWNER TO supabase_realtime_admin;
GRANT EXECUTE ON FUNCTION realtime.to_regrole(text) TO anon, authenticated, service_role;
COMMENT ON FUNCTION realtime.to_regrole(text) IS
    'role_name::regrole (an identifier: quote mixed case); an error for an unknown role';

-- A text value as the JSON its column type gives it: val::type_ through to_jsonb, so the
-- input function of type_ validates it. bytea stays the text it came as (its escape form).
-- Only two strings reach the dynamic statement: val as a quoted literal, and the output
-- of regtype, which quotes and schema-qualifies the type's name as needed; nothing else
-- is spliced in. The fixed search_path makes that output and its parsing agree.
CREATE FUNCTION realtime.cast(val text, type_ regtype)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    result jsonb;
BEGIN
    IF type_ = 'pg_catalog.bytea'::regtype THEN
        RETURN to_jsonb(val);
    END IF;
    EXECUTE format('SELECT pg_catalog.to_jsonb(%L::%s)', val, type_) INTO result;
    RETURN result;
END
$fn$;

ALTER FUNCTION realtime.cast(text, regtype) OWNER TO supabase_realtime_admin;
GRANT EXECUTE ON FUNCTION realtime.cast(text, regtype) TO anon, authenticated, service_role;
COMMENT ON FUNCTION realtime.cast(text, regtype) IS
    'to_jsonb(val::type_), or val as a JSON string for bytea; the cast''s error when val is '
    'not a valid type_';

-- Validate and normalize a subscription's parameters (PROTOCOL.md 6.1, 7.3): what the
-- trigger of realtime.subscription checks before a row is stored, and what the sidecar asks
-- at each join without storing anything (a read-only call writes no WAL, so the decoder is
-- not kept busy by joins). Errors are P0001 with upstream's exact texts, except a value that
-- does not cast to the column type, which keeps the cast's own error. A role that does not
-- exist fails first, in has_column_privilege, even without filters. Runs as the caller.
CREATE FUNCTION realtime.subscription_check(
    entity regclass, filters realtime.user_defined_filter[], claims jsonb,
    selected_columns text[],
    OUT norm_filters realtime.user_defined_filter[], OUT norm_columns text[])
LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    readable text[];
    filter realtime.user_defined_filter;
    col_type regtype;
    list_type regtype;
    regex_op text;
    selected text;
BEGIN
    -- What the subscriber's role may SELECT of the table: the only columns a filter or a
    -- column selection may name (a dropped or system column is never one of them).
    SELECT coalesce(array_agg(a.attname::text), '{}') INTO readable
    FROM pg_attribute a
    WHERE a.attrelid = subscription_check.entity AND a.attnum > 0 AND NOT a.attisdropped
      AND has_column_privilege(subscription_check.claims ->> 'role', a.attrelid, a.attnum,
                               'SELECT');

    FOREACH filter IN ARRAY coalesce(subscription_check.filters, '{}') LOOP
        IF NOT filter.column_name = ANY (readable) THEN
            RAISE EXCEPTION 'invalid column for filter %', filter.column_name;
        END IF;
        -- Reached without a row only for a NULL column name, which matched nothing above.
        SELECT a.atttypid INTO col_type
        FROM pg_attribute a
        WHERE a.attrelid = subscription_check.entity AND a.attname = filter.column_name;
        IF col_type IS NULL THEN
            RAISE EXCEPTION 'failed to lookup type for column %', filter.column_name;
        END IF;

        CASE filter.op
        WHEN 'in' THEN
            -- The value is an array literal of the column type; an array column gets its
            -- own type back (one array type covers every dimension).
            SELECT CASE WHEN t.typarray <> 0 THEN t.typarray ELSE t.oid END INTO list_type
            FROM pg_type t WHERE t.oid = col_type;
            IF coalesce(jsonb_array_length(realtime.cast(filter.value, list_type)), 0) > 100
            THEN
                RAISE EXCEPTION 'too many values for `in` filter. Maximum 100';
            END IF;
        WHEN 'is' THEN
            IF filter.value NOT IN ('null', 'true', 'false', 'unknown') THEN
                RAISE EXCEPTION
                    'invalid value for is filter: must be null, true, false, or unknown';
            END IF;
            -- IS NULL suits any column; IS TRUE/FALSE/UNKNOWN need a boolean operand.
            IF filter.value <> 'null' AND col_type <> 'pg_catalog.bool'::regtype THEN
                RAISE EXCEPTION 'is % filter requires a boolean column, got %',
                    filter.value, col_type;
            END IF;
        WHEN 'like', 'ilike' THEN
            -- LIKE and ILIKE both need the pattern operator ~~ on the column's type.
            PERFORM FROM pg_operator o WHERE o.oprname = '~~' AND o.oprleft = col_type;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'operator % requires a text-compatible column type, got %',
                    filter.op, col_type;
            END IF;
        WHEN 'match', 'imatch' THEN
            regex_op := CASE filter.op WHEN 'match' THEN '~' ELSE '~*' END;
            PERFORM FROM pg_operator o
            WHERE o.oprname = regex_op AND o.oprleft = col_type AND o.oprright = col_type
              AND o.oprresult = 'pg_catalog.bool'::regtype;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'operator % requires a text-compatible column type, got %',
                    filter.op, col_type;
            END IF;
            -- Compile the pattern now: a bad one must fail the subscription, not every
            -- later match against it.
            BEGIN
                PERFORM '' ~ filter.value;
            EXCEPTION WHEN OTHERS THEN
                RAISE EXCEPTION 'invalid regular expression for % filter: %',
                    filter.op, SQLERRM;
            END;
        ELSE
            -- eq, neq, lt, lte, gt, gte, isdistinct (and a NULL op): the value must be a
            -- valid literal of the column type; the cast raises its own error if not.
            PERFORM realtime.cast(filter.value, col_type);
        END CASE;
    END LOOP;

    FOREACH selected IN ARRAY coalesce(subscription_check.selected_columns, '{}') LOOP
        IF NOT selected = ANY (readable) THEN
            RAISE EXCEPTION 'invalid column for select %', selected;
        END IF;
    END LOOP;

    -- One order for equivalent rows, so that the unique index sees them as duplicates
    -- whatever order the client wrote. An empty column selection becomes NULL (all).
    norm_filters := coalesce((SELECT array_agg(f ORDER BY f.column_name, f.op, f.value,
                                                         f.negate)
                              FROM unnest(subscription_check.filters) AS f), '{}');
    norm_columns := (SELECT array_agg(c ORDER BY c)
                     FROM unnest(subscription_check.selected_columns) AS c);
END
$fn$;

ALTER FUNCTION realtime.subscription_check(regclass, realtime.user_defined_filter[], jsonb,
                                           text[]) OWNER TO supabase_realtime_admin;
GRANT EXECUTE ON FUNCTION realtime.subscription_check(regclass, realtime.user_defined_filter[],
                                                      jsonb, text[])
    TO anon, authenticated, service_role;
COMMENT ON FUNCTION realtime.subscription_check(regclass, realtime.user_defined_filter[], jsonb,
                                                text[]) IS
    'Filters and selected columns of a subscription checked against the table and the claims'' '
    'role (upstream''s errors) and sorted; what tr_check_filters applies to each row';

-- The trigger of realtime.subscription: the checks above, applied to the row.
CREATE FUNCTION realtime.subscription_check_filters()
RETURNS trigger
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    SELECT c.norm_filters, c.norm_columns INTO NEW.filters, NEW.selected_columns
    FROM realtime.subscription_check(NEW.entity, NEW.filters, NEW.claims,
                                     NEW.selected_columns) AS c;
    RETURN NEW;
END
$fn$;

ALTER FUNCTION realtime.subscription_check_filters() OWNER TO supabase_realtime_admin;
GRANT EXECUTE ON FUNCTION realtime.subscription_check_filters()
    TO anon, authenticated, service_role;
COMMENT ON FUNCTION realtime.subscription_check_filters() IS
    'Trigger of realtime.subscription: filter and selected columns must be readable by the '
    'claims'' role, values must fit the column type and operator; sorts filters and columns';

CREATE TABLE realtime.subscription (
    id bigint GENERATED ALWAYS AS IDENTITY,
    subscription_id uuid NOT NULL,
    entity regclass NOT NULL,
    filters realtime.user_defined_filter[] NOT NULL DEFAULT '{}',
    claims jsonb NOT NULL,
    claims_role regrole NOT NULL
        GENERATED ALWAYS AS (realtime.to_regrole(claims ->> 'role')) STORED,
    created_at timestamp without time zone NOT NULL DEFAULT timezone('utc', now()),
    action_filter text DEFAULT '*',
    selected_columns text[],
    CONSTRAINT pk_subscription PRIMARY KEY (id),
    CONSTRAINT subscription_action_filter_check
        CHECK (action_filter IN ('*', 'INSERT', 'UPDATE', 'DELETE'))
);

CREATE INDEX ix_realtime_subscription_entity ON realtime.subscription (entity);
-- Upstream's (truncated) name; the sidecar's ON CONFLICT names the columns, not the index.
CREATE UNIQUE INDEX subscription_subscription_id_entity_filters_action_filter_selec
    ON realtime.subscription (subscription_id, entity, filters, action_filter,
                              coalesce(selected_columns, '{}'));

CREATE TRIGGER tr_check_filters
    BEFORE INSERT OR UPDATE ON realtime.subscription
    FOR EACH ROW EXECUTE FUNCTION realtime.subscription_check_filters();

ALTER TABLE realtime.subscription OWNER TO supabase_realtime_admin;
GRANT SELECT ON realtime.subscription TO anon, authenticated, service_role;

COMMENT ON TABLE realtime.subscription IS
    'Postgres Changes subscriptions: one row per postgres_changes entry of a join and '
    'subscribed table, validated and normalized by trigger tr_check_filters';
COMMENT ON COLUMN realtime.subscription.id IS 'Row id';
COMMENT ON COLUMN realtime.subscription.subscription_id IS
    'One UUID per postgres_changes entry of a join (shared by its tables)';
COMMENT ON COLUMN realtime.subscription.entity IS 'The subscribed table';
COMMENT ON COLUMN realtime.subscription.filters IS
    'Conditions a change must meet (all of them), sorted; empty: every change';
COMMENT ON COLUMN realtime.subscription.claims IS 'JWT claims of the subscriber';
COMMENT ON COLUMN realtime.subscription.claims_role IS
    'The role claim as a role: visibility is checked as this role';
COMMENT ON COLUMN realtime.subscription.created_at IS 'Insert time, UTC';
COMMENT ON COLUMN realtime.subscription.action_filter IS
    '''*'' or the one action wanted: INSERT, UPDATE or DELETE';
COMMENT ON COLUMN realtime.subscription.selected_columns IS
    'Columns to deliver besides the primary key, sorted; NULL: all columns';
COMMENT ON SEQUENCE realtime.subscription_id_seq IS 'Identity of realtime.subscription.id';
COMMENT ON INDEX realtime.ix_realtime_subscription_entity IS
    'Subscriptions of a table, for each captured change';
COMMENT ON INDEX realtime.subscription_subscription_id_entity_filters_action_filter_selec IS
    'One row per entry, table, filters, action and column selection (the upsert target)';
COMMENT ON TRIGGER tr_check_filters ON realtime.subscription IS
    'Validates and normalizes filters and selected_columns';

-- realtime.send() writes its logical message from C after checking the caller's
-- right to INSERT into realtime.messages under RLS. PostgreSQL lets every role call
-- pg_logical_emit_message(), which would write the same message with no check at
-- all (any role could broadcast to any topic, private ones included), so that
-- door is closed. Superusers keep it; grant it back to a role that needs it.
-- DROP EXTENSION does not restore the grant.
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(boolean, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(boolean, text, bytea) FROM PUBLIC;
