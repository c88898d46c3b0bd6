-- retention.sql: realtime.expire_messages() (rows past expires_at, partitions past the
-- retention, the coming partitions), its grants, the janitor worker that runs it and the
-- figures realtime.stats() shows. The first part runs in one rolled back transaction; the
-- last commits rows and waits for the janitor's own pass, then removes what it made.
\unset ECHO
\i test/setup.sql

SELECT plan(18);

BEGIN;
SET LOCAL TimeZone = 'Asia/Tokyo'; -- the function works in UTC whatever the session says

SELECT has_function('realtime'::name, 'expire_messages'::name, ARRAY['interval']::name[],
                    'realtime.expire_messages(interval) exists');
SELECT is(pg_get_function_arguments('realtime.expire_messages(interval)'::regprocedure),
          'retention interval DEFAULT NULL::interval, OUT messages_expired bigint, '
          'OUT partitions_dropped integer, OUT partitions_created integer',
          'its arguments: the retention (default realtime.message_retention) and three counts');

-- Rows: one past its expiry, one not yet, one without expiry.
INSERT INTO realtime.messages (topic, extension, payload, event, private, expires_at)
VALUES ('ret:past', 'broadcast', '{}', 'e', true, timezone('utc', now()) - interval '1 second'),
       ('ret:future', 'broadcast', '{}', 'e', true, timezone('utc', now()) + interval '1 hour'),
       ('ret:none', 'broadcast', '{}', 'e', true, NULL);
-- Partitions: two days far past the retention, and the first day just inside it is kept.
SELECT realtime.create_messages_partitions((now() AT TIME ZONE 'utc')::date - 10,
                                           (now() AT TIME ZONE 'utc')::date - 9);
SELECT realtime.create_messages_partitions((now() AT TIME ZONE 'utc')::date - 3,
                                           (now() AT TIME ZONE 'utc')::date - 3);
CREATE TEMP TABLE pass AS SELECT * FROM realtime.expire_messages();

SELECT is((SELECT messages_expired FROM pass), 1::bigint, 'one row was past its expiry');
SELECT is(array_agg(topic ORDER BY topic), ARRAY['ret:future', 'ret:none'],
          'the expired row is gone, the others are kept')
FROM realtime.messages WHERE topic LIKE 'ret:%';
SELECT is((SELECT partitions_dropped FROM pass), 2, 'the two days past 3 days are dropped');
SELECT ok(to_regclass(format('realtime.messages_%s',
                             to_char((now() AT TIME ZONE 'utc')::date - 3, 'YYYY_MM_DD')))
          IS NOT NULL, 'the day of now - 3 days is kept: all of it is not yet past 72 hours');
SELECT is((SELECT partitions_created FROM pass), 0, 'the coming partitions existed already');

-- A shorter retention given as the argument drops more; less than an hour is refused.
SELECT is((SELECT partitions_dropped FROM realtime.expire_messages(interval '2 days')), 1,
          'a retention of 2 days drops the day of now - 3 days too');
SELECT throws_ok($$SELECT realtime.expire_messages(interval '59 minutes')$$, '22023',
                 'retention of 00:59:00 is too short', 'a retention under one hour is refused');
-- Missing coming partitions are created (the janitor keeps inserts working on its own).
SELECT realtime.drop_messages_partitions((now() AT TIME ZONE 'utc')::date + 4);
SELECT is((SELECT partitions_created FROM realtime.expire_messages()), 5,
          'yesterday .. today + 3 are created again when missing');

-- Grants: only the admin role (and superusers) may run it.
SELECT ok(NOT has_function_privilege(r, 'realtime.expire_messages(interval)', 'EXECUTE'),
          r || ' may not expire messages')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r;
SELECT ok(has_function_privilege('supabase_realtime_admin', 'realtime.expire_messages(interval)',
                                 'EXECUTE'), 'supabase_realtime_admin may expire messages');
ROLLBACK;

-- The janitor worker: running, and its pass deletes what expired (naptime 100 ms here).
SELECT is((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'realtime janitor'),
          1::bigint, 'one janitor worker runs');
ALTER SYSTEM SET realtime.janitor_naptime = '100ms';
SELECT pg_reload_conf();
SELECT janitor_passes AS passes_before FROM realtime.stats() \gset
INSERT INTO realtime.messages (topic, extension, payload, event, private, expires_at)
VALUES ('ret:worker', 'broadcast', '{}', 'e', true, timezone('utc', now()));
DO $wait$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM realtime.messages WHERE topic = 'ret:worker');
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$wait$;
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'ret:worker'), 0::bigint,
          'the janitor deleted the expired row on its own');
SELECT cmp_ok((SELECT janitor_passes FROM realtime.stats()), '>', :passes_before::bigint,
              'realtime.stats() counts its passes');
SELECT cmp_ok((SELECT messages_expired FROM realtime.stats()), '>=', 1::bigint,
              'realtime.stats() counts the rows it expired');
ALTER SYSTEM RESET realtime.janitor_naptime;
SELECT pg_reload_conf();

SELECT * FROM finish();
