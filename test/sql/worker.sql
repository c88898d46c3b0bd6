-- worker.sql: the decoder background worker (src/extension/worker.cpp) and realtime.stats().
-- The worker decodes committed work, so this file commits for real (autocommit, no
-- BEGIN/ROLLBACK wrapper). It runs before any sidecar is attached: with no live reader the
-- worker must keep slot "realtime" advancing, so WAL never piles up for an absent sidecar.
\unset ECHO
\i test/setup.sql

SET client_min_messages = warning;

-- Leftovers of a failed run.
ALTER SYSTEM RESET realtime.decoder_naptime;
SELECT pg_reload_conf();

-- Wait (up to 10 s) until slot "realtime" has confirmed lsn; true if it did.
CREATE FUNCTION pg_temp.wait_confirmed(lsn pg_lsn) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..200 LOOP
        IF (SELECT confirmed_flush_lsn >= lsn FROM pg_replication_slots
            WHERE slot_name = 'realtime') THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;
-- Wait (up to 10 s) until the ring's decoded_lsn has reached lsn; true if it did.
CREATE FUNCTION pg_temp.wait_decoded(lsn pg_lsn) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..200 LOOP
        IF (SELECT ring_decoded_lsn >= lsn FROM realtime.stats()) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;

CREATE TEMP TABLE marks (name text PRIMARY KEY, written bigint);
-- Wait until the worker decoded everything up to now, then remember the ring's record count.
CREATE FUNCTION pg_temp.settle(name text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    done boolean := pg_temp.wait_confirmed(pg_current_wal_lsn());
BEGIN
    INSERT INTO marks SELECT name, records_written FROM realtime.stats();
    RETURN done;
END
$$;
CREATE FUNCTION pg_temp.written(name text) RETURNS bigint LANGUAGE sql AS $$
    SELECT written FROM marks WHERE marks.name = written.name
$$;

SELECT plan(22);

-- The worker runs, owns the slot, and publishes itself.
SELECT is((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'realtime decoder'),
          1::bigint, 'one realtime decoder worker runs');
SELECT is((SELECT datname::text FROM pg_stat_activity WHERE backend_type = 'realtime decoder'),
          current_setting('realtime.database'), 'connected to realtime.database');
SELECT is((SELECT format('%s %s %s %s', plugin, slot_type, database, temporary)
           FROM pg_replication_slots WHERE slot_name = 'realtime'),
          format('realtime logical %s f', current_setting('realtime.database')),
          'slot "realtime": logical, output plugin realtime, not temporary');
SELECT is((SELECT worker_pid FROM realtime.stats()),
          (SELECT pid FROM pg_stat_activity WHERE backend_type = 'realtime decoder'),
          'realtime.stats() names the worker');

-- The ring it writes.
SELECT is((SELECT ring_path FROM realtime.stats()), current_setting('realtime.ring_path'),
          'the ring is at realtime.ring_path');
SELECT is((SELECT capacity FROM realtime.stats()), 67108864::bigint,
          'of realtime.ring_size bytes (64 MB by default)');
SELECT is((SELECT writer_pid FROM realtime.stats()),
          (SELECT worker_pid FROM realtime.stats()), 'the worker is its writer');
SELECT cmp_ok((SELECT writer_heartbeat_age_ms FROM realtime.stats()), '<', 5000::bigint,
              'the writer heartbeat is fresh');
SELECT is((SELECT live_readers FROM realtime.stats()), 0,
          'no sidecar is attached while pgTAP runs');

-- A committed send becomes one ring record and the slot moves past it.
SELECT ok(pg_temp.settle('before'), 'the worker has decoded everything so far');
SELECT realtime.send('{"w":1}', 'ev', 'worker:1');
SELECT ok(pg_temp.settle('sent'), 'with no live reader the slot is confirmed past the send');
SELECT is(pg_temp.written('sent') - pg_temp.written('before'), 1::bigint,
          'the send is one record in the ring');

-- A rolled back send is never written.
BEGIN;
SELECT realtime.send('{"w":2}', 'ev', 'worker:2');
ROLLBACK;
SELECT realtime.send('{"w":3}', 'ev', 'worker:3');
SELECT ok(pg_temp.settle('after rollback'), 'the slot moves on');
SELECT is(pg_temp.written('after rollback') - pg_temp.written('sent'), 1::bigint,
          'only the committed send of the two is in the ring');

-- Commits wake the worker: with a one-minute nap, a send is still decoded at once.
ALTER SYSTEM SET realtime.decoder_naptime = '60s';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SELECT is((SELECT setting FROM pg_settings WHERE name = 'realtime.decoder_naptime'), '60000',
          'the nap is one minute');
SELECT realtime.send('{"w":4}', 'ev', 'worker:4');
SELECT ok(pg_temp.settle('woken'),
          'the commit woke the worker: decoded within 10 s, not after the nap');
-- COMMIT PREPARED wakes it too (the transaction running it has no xid of its own).
BEGIN;
SELECT realtime.send('{"w":5}', 'ev', 'worker:5');
PREPARE TRANSACTION 'rt_worker_2pc';
COMMIT PREPARED 'rt_worker_2pc';
SELECT ok(pg_temp.settle('committed prepared'),
          'COMMIT PREPARED woke the worker: decoded within 10 s, not after the nap');
SELECT is(pg_temp.written('committed prepared') - pg_temp.written('woken'), 1::bigint,
          'the prepared send is one record in the ring');

ALTER SYSTEM RESET realtime.decoder_naptime;
SELECT pg_reload_conf();

-- Nothing was lost or forced, and the lag is what was written since.
SELECT results_eq($$SELECT records_dropped, decoder_stalls, decoder_forced FROM realtime.stats()$$,
                  $$VALUES (0::bigint, 0::bigint, 0::bigint)$$,
                  'no record dropped, no stall, nothing forced');

-- The WAL kept for the slot is shown, and small once the worker has caught up.
SELECT cmp_ok((SELECT slot_kept_bytes FROM realtime.stats()), '<', 64 * 1024 * 1024::numeric,
              'slot_kept_bytes: the WAL kept from the slot''s restart point');
-- The ring says up to where every commit is in it (readers wait on it for readiness).
SELECT ok(pg_temp.wait_decoded(pg_current_wal_lsn()),
          'ring_decoded_lsn reaches the current WAL position: every commit before it is in the ring');
-- Operators only.
SET ROLE anon;
SELECT throws_ok($$SELECT * FROM realtime.stats()$$, '42501',
                 'permission denied for function stats', 'API roles cannot read the stats');
RESET ROLE;

SELECT * FROM finish();
