-- install.sql: what CREATE EXTENSION realtime creates (PROTOCOL.md 7.2): roles, schema,
-- realtime.messages (columns, keys, check, index, RLS, owner), its daily partitions and the
-- partition functions. Runs as postgres in a preloaded cluster with realtime and pgtap.
\unset ECHO
\i test/setup.sql

BEGIN;
SET LOCAL TimeZone = 'UTC';
SELECT plan(86);

-- Roles: created when missing, with upstream's attributes.
SELECT has_role(r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role',
                                     'supabase_realtime_admin']) AS r;
SELECT is((SELECT count(*) FROM pg_roles
           WHERE rolname IN ('anon', 'authenticated', 'service_role', 'supabase_realtime_admin')
             AND NOT rolcanlogin AND NOT rolinherit AND NOT rolsuper),
          4::bigint, 'the four roles are NOLOGIN NOINHERIT and not superusers');
SELECT ok((SELECT rolbypassrls FROM pg_roles WHERE rolname = 'service_role'),
          'service_role has BYPASSRLS');
SELECT ok(NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'anon'),
          'anon does not bypass RLS');
SELECT is_member_of(r, 'supabase_realtime_admin')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r;

-- Schema and table.
SELECT has_extension('realtime'::name, 'realtime'::name, 'extension realtime is in schema realtime');
SELECT has_schema('realtime');
SELECT has_table('realtime'::name, 'messages'::name, 'table realtime.messages exists');
SELECT is_partitioned('realtime'::name, 'messages'::name, 'realtime.messages is partitioned');
SELECT is(pg_get_partkeydef('realtime.messages'::regclass), 'RANGE (inserted_at)',
          'partitioned by range of inserted_at');
SELECT table_owner_is('realtime'::name, 'messages'::name, 'supabase_realtime_admin'::name,
                      'realtime.messages is owned by supabase_realtime_admin');
SELECT ok((SELECT relrowsecurity AND NOT relforcerowsecurity FROM pg_class
           WHERE oid = 'realtime.messages'::regclass), 'row level security is enabled');
SELECT columns_are('realtime', 'messages',
                   ARRAY['topic', 'extension', 'payload', 'event', 'private', 'updated_at',
                         'inserted_at', 'id', 'binary_payload', 'expires_at']);
SELECT is(array_agg(attname::text ORDER BY attnum),
          ARRAY['topic', 'extension', 'payload', 'event', 'private', 'updated_at',
                'inserted_at', 'id', 'binary_payload', 'expires_at'],
          'columns are in upstream order, ours after them')
FROM pg_attribute WHERE attrelid = 'realtime.messages'::regclass AND attnum > 0;

SELECT col_type_is('realtime'::name, 'messages'::name, c::name, t, format('%s is %s', c, t))
FROM (VALUES ('topic', 'text'), ('extension', 'text'), ('payload', 'jsonb'), ('event', 'text'),
             ('private', 'boolean'), ('updated_at', 'timestamp without time zone'),
             ('inserted_at', 'timestamp without time zone'), ('id', 'uuid'),
             ('binary_payload', 'bytea'), ('expires_at', 'timestamp without time zone')) AS v(c, t);
SELECT col_not_null('realtime'::name, 'messages'::name, c::name, c || ' is NOT NULL')
FROM unnest(ARRAY['topic', 'extension', 'updated_at', 'inserted_at', 'id']) AS c;
SELECT col_is_null('realtime'::name, 'messages'::name, c::name, c || ' is nullable')
FROM unnest(ARRAY['payload', 'event', 'private', 'binary_payload', 'expires_at']) AS c;
SELECT col_default_is('realtime'::name, 'messages'::name, 'private'::name, 'false'::text,
                      'private defaults to false');
SELECT col_default_is('realtime'::name, 'messages'::name, 'updated_at'::name,
                      'timezone(''utc''::text, now())'::text,
                      'updated_at defaults to now() in UTC');
SELECT col_default_is('realtime'::name, 'messages'::name, 'inserted_at'::name,
                      'timezone(''utc''::text, now())'::text,
                      'inserted_at defaults to now() in UTC');
SELECT col_default_is('realtime'::name, 'messages'::name, 'id'::name, 'gen_random_uuid()'::text,
                      'id defaults to gen_random_uuid()');
SELECT col_hasnt_default('realtime'::name, 'messages'::name, c::name, c || ' has no default')
FROM unnest(ARRAY['topic', 'extension', 'payload', 'event', 'binary_payload', 'expires_at']) AS c;

SELECT col_is_pk('realtime'::name, 'messages'::name, ARRAY['id', 'inserted_at']::name[],
                 'primary key is (id, inserted_at)');
SELECT is((SELECT conname::text FROM pg_constraint
           WHERE conrelid = 'realtime.messages'::regclass AND contype = 'p'),
          'messages_pkey', 'primary key is named messages_pkey');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'realtime.messages'::regclass
             AND conname = 'messages_payload_exclusive'),
          'CHECK (((payload IS NULL) OR (binary_payload IS NULL)))',
          'check messages_payload_exclusive');
SELECT has_index('realtime'::name, 'messages'::name, 'messages_topic_inserted_at_index'::name,
                 'replay index exists'::text);
SELECT is(pg_get_indexdef('realtime.messages_topic_inserted_at_index'::regclass),
          'CREATE INDEX messages_topic_inserted_at_index ON ONLY realtime.messages '
          'USING btree (topic, inserted_at DESC) '
          'WHERE ((extension = ''broadcast''::text) AND (private IS TRUE))',
          'partial replay index definition: topic first');
SELECT is(pg_get_indexdef('realtime.messages_expires_at_index'::regclass),
          'CREATE INDEX messages_expires_at_index ON ONLY realtime.messages '
          'USING btree (expires_at) WHERE (expires_at IS NOT NULL)',
          'partial index on expires_at');

-- Partitions: one per UTC day, yesterday .. today + 3, owned by the admin, not members of
-- the extension (so that they can be dropped one by one).
SELECT partitions_are('realtime'::name, 'messages'::name,
                      ARRAY(SELECT format('realtime.messages_%s',
                                          to_char(current_date + i, 'YYYY_MM_DD'))
                            FROM generate_series(-1, 3) AS i)::name[],
                      'partitions are yesterday .. today + 3 (UTC)');
SELECT is(pg_get_expr(relpartbound, oid),
          format('FOR VALUES FROM (%L) TO (%L)', current_date::timestamp,
                 (current_date + 1)::timestamp),
          'today''s partition covers today (UTC)')
FROM pg_class WHERE oid = format('realtime.messages_%s',
                                 to_char(current_date, 'YYYY_MM_DD'))::regclass;
SELECT is(count(*), 0::bigint, 'every partition is owned by supabase_realtime_admin')
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'realtime.messages'::regclass
  AND c.relowner <> 'supabase_realtime_admin'::regrole;
SELECT is(count(*), 0::bigint, 'no partition is a member of the extension')
FROM pg_inherits i JOIN pg_depend d ON d.classid = 'pg_class'::regclass
                                   AND d.objid = i.inhrelid AND d.deptype = 'e'
WHERE i.inhparent = 'realtime.messages'::regclass;

-- Inserts land in today's partition; without a partition, or with both payloads, they fail.
SELECT lives_ok($$INSERT INTO realtime.messages (topic, extension, payload, event)
                  VALUES ('room1', 'broadcast', '{"a":1}', 'ev')$$, 'insert with defaults');
SELECT is((SELECT tableoid::regclass::text FROM realtime.messages WHERE topic = 'room1'),
          format('realtime.messages_%s', to_char(current_date, 'YYYY_MM_DD')),
          'the row is in today''s partition');
SELECT row_eq($$SELECT private, id IS NOT NULL, inserted_at = updated_at
                FROM realtime.messages WHERE topic = 'room1'$$,
              ROW(false, true, true), 'defaults: private false, id and timestamps set');
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension, inserted_at)
                   VALUES ('room1', 'broadcast', now() + interval '30 days')$$,
                 '23514', 'no partition of relation "messages" found for row',
                 'insert outside the partitions fails (MissingPartition)');
SELECT throws_ok($$INSERT INTO realtime.messages (topic, extension, payload, binary_payload)
                   VALUES ('room1', 'broadcast', '{}', '\x00')$$,
                 '23514',
                 format('new row for relation "messages_%s" violates check constraint '
                        '"messages_payload_exclusive"', to_char(current_date, 'YYYY_MM_DD')),
                 'payload and binary_payload are exclusive');
SELECT throws_ok($$INSERT INTO realtime.messages (extension) VALUES ('broadcast')$$,
                 '23502', NULL, 'topic is required');

-- Partition maintenance functions.
SELECT function_returns('realtime', 'create_messages_partitions', ARRAY['date', 'date'],
                        'integer');
SELECT volatility_is('realtime', 'create_messages_partitions', ARRAY['date', 'date'],
                     'volatile');
SELECT is_strict('realtime', 'create_messages_partitions', ARRAY['date', 'date']);
SELECT function_returns('realtime', 'drop_messages_partitions', ARRAY['date'], 'integer');
SELECT volatility_is('realtime', 'drop_messages_partitions', ARRAY['date'], 'volatile');
SELECT is_strict('realtime', 'drop_messages_partitions', ARRAY['date']);
SELECT is(realtime.create_messages_partitions(), 0, 'partitions already exist: none created');
SELECT is(realtime.create_messages_partitions(current_date + 4, current_date + 5), 2,
          'creates the missing days');
SELECT has_table('realtime'::name, 'messages_' || to_char(current_date + 5, 'YYYY_MM_DD'),
                 'partition of today + 5 exists');
SELECT is(realtime.create_messages_partitions(current_date - 1, current_date + 5), 0,
          'creating again is a no-op');
SELECT is(realtime.drop_messages_partitions(), 0, 'nothing is older than 72 hours');
SELECT is(realtime.create_messages_partitions(current_date - 10, current_date - 8), 3,
          'old days can be created');
SELECT is(realtime.drop_messages_partitions(), 3, 'days before now - 72 hours are dropped');
SELECT hasnt_table('realtime'::name, 'messages_' || to_char(current_date - 9, 'YYYY_MM_DD'),
                   'an expired partition is gone');
SELECT has_table('realtime'::name, 'messages_' || to_char(current_date - 1, 'YYYY_MM_DD'),
                 'yesterday''s partition is kept');
SELECT throws_ok($$SELECT realtime.create_messages_partitions(current_date, current_date - 1)$$,
                 '22023', format('invalid partition range from %s to %s', current_date,
                                 current_date - 1),
                 'an inverted range is refused');
SELECT throws_ok($$SELECT realtime.create_messages_partitions(current_date, current_date + 400)$$,
                 '22023', format('invalid partition range from %s to %s', current_date,
                                 current_date + 400),
                 'more than a year at once is refused');
SELECT is(realtime.create_messages_partitions(NULL, current_date), NULL, 'STRICT: NULL in, NULL out');

-- Every object of the extension, and every column of realtime.messages, has a comment.
SELECT is(count(*), 0::bigint, 'every member of the extension has a comment')
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'realtime')
  AND d.deptype = 'e'
  AND obj_description(d.objid, d.classid::regclass::name) IS NULL;
SELECT is(count(*), 0::bigint, 'every column of realtime.messages has a comment')
FROM pg_attribute
WHERE attrelid = 'realtime.messages'::regclass AND attnum > 0
  AND col_description(attrelid, attnum) IS NULL;
SELECT ok(obj_description('realtime.messages_topic_inserted_at_index'::regclass, 'pg_class')
          IS NOT NULL AND obj_description('realtime.messages_expires_at_index'::regclass,
                                          'pg_class') IS NOT NULL,
          'the replay and expiry indexes have a comment');

SELECT * FROM finish();
ROLLBACK;
