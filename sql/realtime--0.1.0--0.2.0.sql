-- realtime 0.1.0 -> 0.2.0 (ALTER EXTENSION realtime UPDATE): what persisted broadcasts and
-- replay need (PROTOCOL.md 4.5, 7.2). A database updated this way has exactly the objects
-- of one created at 0.2.0 (test/sql/upgrade.sql compares them).
--   - realtime.messages: expires_at (TTL of a persisted message), times in UTC by default,
--     the replay index led by topic, an index on expires_at;
--   - realtime.expire_messages(), run by the new janitor worker, and realtime.janitor_stats();
--   - realtime.stats() gains the janitor's columns.

\echo Use "ALTER EXTENSION realtime UPDATE TO '0.2.0'" to load this file. \quit

ALTER TABLE realtime.messages
    ALTER COLUMN updated_at SET DEFAULT timezone('utc', now()),
    ALTER COLUMN inserted_at SET DEFAULT timezone('utc', now()),
    ADD COLUMN expires_at timestamp without time zone;

DROP INDEX realtime.messages_inserted_at_topic_index;
-- Replay of private broadcasts (PROTOCOL.md 4.5) reads the newest rows of one topic since a
-- time: topic first, so that a join reads only its topic's rows (upstream's index leads
-- with inserted_at and walks every topic's recent rows).
CREATE INDEX messages_topic_inserted_at_index
    ON realtime.messages (topic, inserted_at DESC)
    WHERE extension = 'broadcast' AND private IS TRUE;
-- The janitor deletes rows past their expiry (persisted with a TTL).
CREATE INDEX messages_expires_at_index
    ON realtime.messages (expires_at) WHERE expires_at IS NOT NULL;

COMMENT ON COLUMN realtime.messages.updated_at IS 'Last update time (UTC)';
COMMENT ON COLUMN realtime.messages.inserted_at IS 'Insert time (UTC); the partition key';
COMMENT ON COLUMN realtime.messages.expires_at IS
    'Time (UTC) after which the janitor deletes the row; NULL: kept for the retention period';
COMMENT ON INDEX realtime.messages_topic_inserted_at_index IS
    'Replay of recent private broadcasts by topic';
COMMENT ON INDEX realtime.messages_expires_at_index IS 'Deletion of rows past their expiry';

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

DROP FUNCTION realtime.stats();

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
