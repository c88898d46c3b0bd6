-- subscription.sql: the Postgres Changes registry (PROTOCOL.md 6.1, 7.1, 7.3): its types,
-- realtime.to_regrole, realtime.cast, realtime.subscription and what its trigger
-- tr_check_filters accepts, refuses (with upstream's texts) and normalizes. Rows are
-- inserted the way the sidecar inserts them.
\unset ECHO
\i test/setup.sql

BEGIN;
SET LOCAL TimeZone = 'UTC';
SELECT plan(154);

-- A subscribed table: authenticated may read every column but secret, service_role all.
CREATE TABLE public.sub_items (
    id bigint PRIMARY KEY,
    title text,
    done boolean,
    qty integer,
    tags text[],
    price numeric,
    secret text,
    "Mixed Case" text,
    label varchar(20));
GRANT SELECT (id, title, done, qty, tags, price, "Mixed Case", label)
    ON public.sub_items TO authenticated;
GRANT SELECT ON public.sub_items TO service_role;
-- What the injection attempts below would drop if anything executed them.
CREATE TABLE public.sub_canary (i integer);

-- One filter, and the sidecar's INSERT of one row (returns the row as stored).
CREATE FUNCTION pg_temp.flt(col text, op text, val text, negate boolean DEFAULT false)
RETURNS realtime.user_defined_filter
LANGUAGE sql IMMUTABLE
AS $$ SELECT ROW(col, op::realtime.equality_op, val, negate)::realtime.user_defined_filter $$;

CREATE FUNCTION pg_temp.subscribe(filters realtime.user_defined_filter[],
                                  role text DEFAULT 'authenticated',
                                  selected text[] DEFAULT NULL, action text DEFAULT '*')
RETURNS realtime.subscription
LANGUAGE sql VOLATILE
AS $$
    INSERT INTO realtime.subscription (subscription_id, entity, filters, claims, action_filter,
                                       selected_columns)
    VALUES (gen_random_uuid(), 'public.sub_items'::regclass, filters,
            jsonb_build_object('role', role, 'sub', 'user-1'), action, selected)
    RETURNING *
$$;

-- Types (PROTOCOL.md 7.1).
SELECT enum_has_labels('realtime'::name, 'action'::name,
                       ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'ERROR']::name[],
                       'realtime.action labels, in order');
SELECT enum_has_labels('realtime'::name, 'equality_op'::name,
                       ARRAY['eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'in', 'like', 'ilike', 'is',
                             'match', 'imatch', 'isdistinct']::name[],
                       'realtime.equality_op labels, in order');
SELECT is(array_agg(format('%s %s', attname, format_type(atttypid, atttypmod)) ORDER BY attnum),
          ARRAY['column_name text', 'op realtime.equality_op', 'value text', 'negate boolean'],
          'realtime.user_defined_filter attributes')
FROM pg_attribute WHERE attrelid = 'realtime.user_defined_filter'::regclass AND attnum > 0;
SELECT type_owner_is('realtime'::name, t::name, 'supabase_realtime_admin'::name,
                     format('realtime.%s is owned by supabase_realtime_admin', t))
FROM unnest(ARRAY['action', 'equality_op', 'user_defined_filter']) AS t;

-- The table (PROTOCOL.md 7.3).
SELECT has_table('realtime'::name, 'subscription'::name, 'table realtime.subscription exists');
SELECT is(array_agg(attname::text ORDER BY attnum),
          ARRAY['id', 'subscription_id', 'entity', 'filters', 'claims', 'claims_role',
                'created_at', 'action_filter', 'selected_columns'], 'columns, in order')
FROM pg_attribute
WHERE attrelid = 'realtime.subscription'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT col_type_is('realtime'::name, 'subscription'::name, c::name, t, format('%s is %s', c, t))
FROM (VALUES ('id', 'bigint'), ('subscription_id', 'uuid'), ('entity', 'regclass'),
             ('filters', 'realtime.user_defined_filter[]'), ('claims', 'jsonb'),
             ('claims_role', 'regrole'), ('created_at', 'timestamp without time zone'),
             ('action_filter', 'text'), ('selected_columns', 'text[]')) AS v(c, t);
SELECT col_not_null('realtime'::name, 'subscription'::name, c::name, c || ' is NOT NULL')
FROM unnest(ARRAY['id', 'subscription_id', 'entity', 'filters', 'claims', 'claims_role',
                  'created_at']) AS c;
SELECT col_is_null('realtime'::name, 'subscription'::name, c::name, c || ' is nullable')
FROM unnest(ARRAY['action_filter', 'selected_columns']) AS c;
SELECT is((SELECT attidentity FROM pg_attribute
           WHERE attrelid = 'realtime.subscription'::regclass AND attname = 'id'),
          'a', 'id is GENERATED ALWAYS AS IDENTITY');
SELECT is(format('%s %s', a.attgenerated, pg_get_expr(d.adbin, d.adrelid)),
          's realtime.to_regrole((claims ->> ''role''::text))',
          'claims_role is generated, stored, from the role claim')
FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'realtime.subscription'::regclass AND a.attname = 'claims_role';
SELECT is(pg_get_expr(d.adbin, d.adrelid), v.def, v.col || ' default')
FROM (VALUES ('filters', '''{}''::realtime.user_defined_filter[]'),
             ('created_at', 'timezone(''utc''::text, now())'),
             ('action_filter', '''*''::text')) AS v(col, def)
JOIN pg_attribute a ON a.attrelid = 'realtime.subscription'::regclass AND a.attname = v.col
JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum;
SELECT col_is_pk('realtime'::name, 'subscription'::name, ARRAY['id']::name[],
                 'primary key is (id)');
SELECT is((SELECT conname::text FROM pg_constraint
           WHERE conrelid = 'realtime.subscription'::regclass AND contype = 'p'),
          'pk_subscription', 'primary key is named pk_subscription');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'realtime.subscription'::regclass
             AND conname = 'subscription_action_filter_check'),
          'CHECK ((action_filter = ANY (ARRAY[''*''::text, ''INSERT''::text, ''UPDATE''::text, '
          '''DELETE''::text])))', 'action_filter check');
SELECT is(pg_get_indexdef('realtime.ix_realtime_subscription_entity'::regclass),
          'CREATE INDEX ix_realtime_subscription_entity ON realtime.subscription '
          'USING btree (entity)', 'index on entity');
SELECT is(pg_get_indexdef(
              'realtime.subscription_subscription_id_entity_filters_action_filter_selec'::regclass),
          'CREATE UNIQUE INDEX subscription_subscription_id_entity_filters_action_filter_selec '
          'ON realtime.subscription USING btree (subscription_id, entity, filters, action_filter, '
          'COALESCE(selected_columns, ''{}''::text[]))', 'unique index');
SELECT trigger_is('realtime'::name, 'subscription'::name, 'tr_check_filters'::name,
                  'realtime'::name, 'subscription_check_filters'::name,
                  'tr_check_filters runs realtime.subscription_check_filters()');
SELECT is(pg_get_triggerdef(oid),
          'CREATE TRIGGER tr_check_filters BEFORE INSERT OR UPDATE ON realtime.subscription '
          'FOR EACH ROW EXECUTE FUNCTION realtime.subscription_check_filters()',
          'tr_check_filters is BEFORE INSERT OR UPDATE, FOR EACH ROW')
FROM pg_trigger WHERE tgrelid = 'realtime.subscription'::regclass AND NOT tgisinternal;
SELECT table_owner_is('realtime'::name, 'subscription'::name, 'supabase_realtime_admin'::name,
                      'realtime.subscription is owned by supabase_realtime_admin');
SELECT table_privs_are('realtime'::name, 'subscription'::name, r::name, ARRAY['SELECT'],
                       r || ' has SELECT (only) on realtime.subscription')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r;
SELECT table_privs_are('realtime'::name, 'subscription'::name, 'public'::name, ARRAY[]::text[],
                       'PUBLIC has no privilege on realtime.subscription');

-- Functions: owners, volatility, EXECUTE for the API roles.
SELECT function_owner_is('realtime'::name, f::name, a::name[], 'supabase_realtime_admin'::name,
                         format('realtime.%s is owned by supabase_realtime_admin', f))
FROM (VALUES ('to_regrole', ARRAY['text']), ('cast', ARRAY['text', 'regtype']),
             ('subscription_check_filters', ARRAY[]::text[])) AS v(f, a);
SELECT volatility_is('realtime'::name, f::name, a::name[], 'immutable',
                     format('realtime.%s is IMMUTABLE', f))
FROM (VALUES ('to_regrole', ARRAY['text']), ('cast', ARRAY['text', 'regtype'])) AS v(f, a);
SELECT is(count(*) FILTER (WHERE has_function_privilege(r, f, 'EXECUTE')), 9::bigint,
          'anon, authenticated and service_role can execute the three functions')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r,
     unnest(ARRAY['realtime.to_regrole(text)', 'realtime.cast(text, regtype)',
                  'realtime.subscription_check_filters()']) AS f;

-- realtime.to_regrole.
SELECT is(realtime.to_regrole('authenticated'), 'authenticated'::regrole,
          'to_regrole of a role name');
SELECT is(realtime.to_regrole(NULL), NULL, 'to_regrole(NULL) is NULL');
SELECT throws_ok($$SELECT realtime.to_regrole('nobody_sub')$$, '42704',
                 'role "nobody_sub" does not exist', 'to_regrole of an unknown role fails');

-- realtime.cast: what to_jsonb gives for the value of the type.
SELECT is(realtime.cast('2026-01-05 09:14:02.118+00', 'timestamptz')::text,
          '"2026-01-05T09:14:02.118+00:00"', 'timestamptz under TimeZone UTC');
SELECT is(realtime.cast(v, t::regtype)::text, e, format('%s %s renders as %s', t, v, e))
FROM (VALUES ('42', 'int4', '42'), ('-9000000000', 'int8', '-9000000000'),
             ('7b0f3c2e-1d4a-4a57-9b59-2f1f6f0c8e21', 'uuid',
              '"7b0f3c2e-1d4a-4a57-9b59-2f1f6f0c8e21"'),
             ('t', 'bool', 'true'), ('off', 'bool', 'false'), ('1.50', 'numeric', '1.50'),
             ('{a,"b c",NULL}', 'text[]', '["a", "b c", null]'),
             ('{"k": [1, 2]}', 'jsonb', '{"k": [1, 2]}'), ('2026-01-05', 'date', '"2026-01-05"'),
             ('say "hi"', 'text', '"say \"hi\""')) AS v(v, t, e);
SELECT is(count(*) FILTER (WHERE realtime.cast(v, t::regtype) IS DISTINCT FROM ref), 0::bigint,
          'cast equals to_jsonb of the typed value')
FROM (VALUES ('42', 'int4', to_jsonb(42::int4)), ('1.50', 'numeric', to_jsonb(1.50::numeric)),
             ('t', 'bool', to_jsonb(true)),
             ('7b0f3c2e-1d4a-4a57-9b59-2f1f6f0c8e21', 'uuid',
              to_jsonb('7b0f3c2e-1d4a-4a57-9b59-2f1f6f0c8e21'::uuid)),
             ('{a,"b c",NULL}', 'text[]', to_jsonb('{a,"b c",NULL}'::text[])),
             ('2026-01-05 09:14:02.118+00', 'timestamptz',
              to_jsonb('2026-01-05 09:14:02.118+00'::timestamptz))) AS v(v, t, ref);
SELECT is(realtime.cast('\x01ff', 'bytea')::text, '"\\x01ff"', 'bytea: the text unchanged');
SELECT is(realtime.cast('not hex', 'bytea')::text, '"not hex"', 'bytea: not even decoded');
SELECT is(realtime.cast(NULL, 'int4'), NULL, 'NULL value: NULL');
SELECT throws_ok($$SELECT realtime.cast('abc', 'int4')$$, '22P02',
                 'invalid input syntax for type integer: "abc"', 'a value the type refuses');
SELECT throws_ok($q$SELECT realtime.cast($$1'); DROP TABLE public.sub_canary; --$$, 'int4')$q$,
                 '22P02', 'invalid input syntax for type integer: "1''); DROP TABLE '
                          'public.sub_canary; --"',
                 'a value with SQL in it is an invalid integer');
SELECT is(realtime.cast($$1'); DROP TABLE public.sub_canary; --$$, 'text'),
          to_jsonb($$1'); DROP TABLE public.sub_canary; --$$::text),
          'a value with SQL in it is just text');
SELECT is(realtime.cast('a\''b\\', 'text')::text, '"a\\''b\\\\"',
          'quotes and backslashes are data');
SELECT has_table('public'::name, 'sub_canary'::name, 'nothing was executed: the canary lives');

-- Type names that need quoting and qualifying, and one that shadows a built-in name.
CREATE SCHEMA "sub Schema";
CREATE TYPE "sub Schema"."Mood ""x""" AS ENUM ('ok', 'bad');
CREATE DOMAIN "sub Schema".positive AS integer CHECK (VALUE > 0);
CREATE TYPE public.int4 AS ENUM ('x');
SELECT is(realtime.cast('ok', '"sub Schema"."Mood ""x"""')::text, '"ok"',
          'an enum with a quoted, qualified name');
SELECT throws_ok($$SELECT realtime.cast('nope', '"sub Schema"."Mood ""x"""')$$, '22P02',
                 'invalid input value for enum "sub Schema"."Mood ""x""": "nope"',
                 'the enum refuses other labels');
SELECT is(realtime.cast('5', '"sub Schema".positive')::text, '5', 'a domain');
SELECT throws_ok($$SELECT realtime.cast('-1', '"sub Schema".positive')$$, '23514',
                 'value for domain "sub Schema".positive violates check constraint '
                 '"positive_check"', 'the domain''s check applies');
SELECT is(realtime.cast('x', 'public.int4')::text, '"x"', 'public.int4 is not integer');
SELECT is(realtime.cast('7', 'pg_catalog.int4')::text, '7', 'pg_catalog.int4 is integer');

-- Inserting as the sidecar does: claims_role, filters sorted by column, op (in enum order:
-- lt before gt), value, negate; selected columns sorted.
WITH inserted AS (
    INSERT INTO realtime.subscription (subscription_id, entity, filters, claims, action_filter,
                                       selected_columns)
    VALUES ('0b6c6a52-6f1e-4c4b-9f4e-51d0a2f3c001', 'public.sub_items',
            ARRAY[pg_temp.flt('title', 'ilike', '%milk%'), pg_temp.flt('qty', 'gt', '10'),
                  pg_temp.flt('qty', 'lt', '100'), pg_temp.flt('id', 'in', '{1,2,3}', true)],
            '{"role": "authenticated", "sub": "user-1"}', 'UPDATE', ARRAY['title', 'qty'])
    RETURNING claims_role, filters, selected_columns, action_filter)
SELECT is(format('%s %s %s %s', claims_role, filters, selected_columns, action_filter),
          'authenticated {"(id,in,\"{1,2,3}\",t)","(qty,lt,100,f)","(qty,gt,10,f)",'
          '"(title,ilike,%milk%,f)"} {qty,title} UPDATE',
          'a valid row: role from the claims, filters and columns normalized')
FROM inserted;
SELECT is((SELECT created_at FROM realtime.subscription
           WHERE subscription_id = '0b6c6a52-6f1e-4c4b-9f4e-51d0a2f3c001'),
          timezone('utc', now()), 'created_at is the UTC insert time');
SELECT is((pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'eq', '9', true),
                                   pg_temp.flt('qty', 'eq', '9'),
                                   pg_temp.flt('qty', 'eq', '10')])).filters::text,
          '{"(qty,eq,10,f)","(qty,eq,9,f)","(qty,eq,9,t)"}',
          'same column and op: sorted by value as text, then negate');
SELECT is((pg_temp.subscribe('{}', 'authenticated', ARRAY['title', 'id', 'done'])).selected_columns,
          ARRAY['done', 'id', 'title'], 'selected columns sorted');
SELECT is((pg_temp.subscribe('{}', 'authenticated', '{}')).selected_columns,
          NULL, 'an empty column selection is stored as NULL (all columns), as upstream');
SELECT is((pg_temp.subscribe(NULL)).filters,
          '{}'::realtime.user_defined_filter[], 'NULL filters are stored as no filter');
SELECT is((pg_temp.subscribe('{}', 'service_role')).claims_role,
          'service_role'::regrole, 'claims_role follows the role claim');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('Mixed Case', 'eq', 'x')])$$,
                'a column name with a space and capitals, as the catalog spells it');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', c, '3')])
                  FROM unnest(ARRAY['eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'isdistinct']) AS c$$,
                'every comparison operator with a valid value');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('price', 'eq', '12.5'),
                                                 pg_temp.flt('done', 'neq', 'true', true)])$$,
                'numeric and boolean values');

-- Duplicates: the normalized order makes two spellings of one subscription collide, and
-- the sidecar's upsert replaces the claims.
SELECT throws_ok($$INSERT INTO realtime.subscription (subscription_id, entity, filters, claims,
                                                      action_filter, selected_columns)
                   VALUES ('0b6c6a52-6f1e-4c4b-9f4e-51d0a2f3c001', 'public.sub_items',
                           ARRAY[pg_temp.flt('id', 'in', '{1,2,3}', true),
                                 pg_temp.flt('qty', 'lt', '100'),
                                 pg_temp.flt('title', 'ilike', '%milk%'),
                                 pg_temp.flt('qty', 'gt', '10')],
                           '{"role": "authenticated"}', 'UPDATE', ARRAY['qty', 'title'])$$,
                 '23505', 'duplicate key value violates unique constraint '
                          '"subscription_subscription_id_entity_filters_action_filter_selec"',
                 'the same subscription in another order is a duplicate');
SELECT lives_ok($$INSERT INTO realtime.subscription (subscription_id, entity, filters, claims,
                                                     action_filter, selected_columns)
                  VALUES ('0b6c6a52-6f1e-4c4b-9f4e-51d0a2f3c001', 'public.sub_items',
                          ARRAY[pg_temp.flt('qty', 'gt', '10'),
                                pg_temp.flt('title', 'ilike', '%milk%'),
                                pg_temp.flt('id', 'in', '{1,2,3}', true),
                                pg_temp.flt('qty', 'lt', '100')],
                          '{"role": "service_role", "sub": "user-2"}', 'UPDATE',
                          ARRAY['title', 'qty'])
                  ON CONFLICT (subscription_id, entity, filters, action_filter,
                               coalesce(selected_columns, '{}'))
                  DO UPDATE SET claims = excluded.claims$$,
                'the upsert on conflict');
SELECT is(format('%s %s %s', count(*), min(claims_role::text), min(claims ->> 'sub')),
          '1 service_role user-2', 'the upsert replaced the claims of the one row')
FROM realtime.subscription
WHERE subscription_id = '0b6c6a52-6f1e-4c4b-9f4e-51d0a2f3c001';
SELECT throws_ok($$UPDATE realtime.subscription
                   SET claims = '{"role": "authenticated"}',
                       filters = ARRAY[pg_temp.flt('secret', 'eq', 'x')]
                   WHERE subscription_id = '0b6c6a52-6f1e-4c4b-9f4e-51d0a2f3c001'$$,
                 'P0001', 'invalid column for filter secret', 'an UPDATE is checked too');
SELECT throws_ok($$INSERT INTO realtime.subscription (id, subscription_id, entity, claims)
                   VALUES (1, gen_random_uuid(), 'public.sub_items', '{"role": "anon"}')$$,
                 '428C9', 'cannot insert a non-DEFAULT value into column "id"',
                 'id is always generated');

-- Columns: they must exist and be readable by the claims' role; names are compared with
-- the catalog's, never parsed nor executed.
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('secret', 'eq', 'x')])$$,
                 'P0001', 'invalid column for filter secret',
                 'a column the role cannot SELECT is an invalid filter column');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('secret', 'eq', 'x')],
                                           'service_role')$$,
                'a role that may SELECT it can filter on it');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('id', 'eq', '1')], 'anon')$$,
                 'P0001', 'invalid column for filter id', 'a role without any grant on the table');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('nope', 'eq', '1')])$$,
                 'P0001', 'invalid column for filter nope', 'a column that does not exist');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('"id"', 'eq', '1')])$$,
                 'P0001', 'invalid column for filter "id"', 'a quoted name is not the column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('mixed case', 'eq', '1')])$$,
                 'P0001', 'invalid column for filter mixed case', 'names are case sensitive');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('ctid', 'eq', '(0,1)')])$$,
                 'P0001', 'invalid column for filter ctid', 'a system column');
SELECT throws_ok($$SELECT pg_temp.subscribe(
                       ARRAY[pg_temp.flt('id = id; DROP TABLE public.sub_canary; --', 'eq',
                                         '1')])$$,
                 'P0001', 'invalid column for filter id = id; DROP TABLE public.sub_canary; --',
                 'SQL in a column name is an unknown column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt(NULL, 'eq', '1')])$$,
                 'P0001', 'failed to lookup type for column <NULL>', 'a NULL column name');
SELECT throws_ok($$SELECT pg_temp.subscribe('{}', 'authenticated', ARRAY['id', 'secret'])$$,
                 'P0001', 'invalid column for select secret',
                 'a selected column the role cannot SELECT');
SELECT throws_ok($$SELECT pg_temp.subscribe('{}', 'authenticated', ARRAY['title', 'nope'])$$,
                 'P0001', 'invalid column for select nope', 'a selected column that does not exist');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('id', 'eq', '1')],
                                            'authenticated', ARRAY['secret'])$$,
                 'P0001', 'invalid column for select secret', 'select is checked after filters');
SELECT throws_ok($$SELECT pg_temp.subscribe('{}', 'nobody_sub')$$, '42704',
                 'role "nobody_sub" does not exist', 'a role that does not exist');
SELECT throws_ok($$INSERT INTO realtime.subscription (subscription_id, entity, claims)
                   VALUES (gen_random_uuid(), 'public.sub_items', '{"sub": "user-1"}')$$,
                 '23502', 'null value in column "claims_role" of relation "subscription" '
                          'violates not-null constraint', 'claims without a role');
SELECT throws_ok($$SELECT pg_temp.subscribe('{}', 'authenticated', NULL, 'TRUNCATE')$$,
                 '23514', 'new row for relation "subscription" violates check constraint '
                          '"subscription_action_filter_check"', 'action_filter TRUNCATE');

-- Values of the comparison operators must cast to the column type; the cast's own error.
SELECT throws_ok(format($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', %L, 'abc')])$$, c),
                 '22P02',
                 'invalid input syntax for type integer: "abc"',
                 c || ' with a value that is not an integer')
FROM unnest(ARRAY['eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'isdistinct']) AS c;
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'isdistinct', 'null')])$$,
                 '22P02', 'invalid input syntax for type integer: "null"',
                 'isdistinct casts its value like eq (no null keyword), as upstream');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('id', 'gt', '1.5')])$$,
                 '22P02', 'invalid input syntax for type bigint: "1.5"', 'a bigint column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('done', 'eq', 'maybe')])$$,
                 '22P02', 'invalid input syntax for type boolean: "maybe"', 'a boolean column');
SELECT throws_ok($q$SELECT pg_temp.subscribe(
                       ARRAY[pg_temp.flt('qty', 'eq', $$1'); DROP TABLE public.sub_canary; --$$)])$q$,
                 '22P02', 'invalid input syntax for type integer: "1''); DROP TABLE '
                          'public.sub_canary; --"',
                 'SQL in an integer value is an invalid integer');
SELECT is((pg_temp.subscribe(ARRAY[pg_temp.flt('title', 'eq',
                                              $$1'); DROP TABLE public.sub_canary; --$$)])
           ).filters[1].value,
          $$1'); DROP TABLE public.sub_canary; --$$,
          'SQL in a text value is stored as the value');
SELECT has_table('public'::name, 'sub_canary'::name, 'nothing was executed: the canary lives');

-- in: an array literal of the column type, at most 100 values.
SELECT lives_ok(format($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'in', %L)])$$,
                       (SELECT '{' || string_agg(i::text, ',') || '}'
                        FROM generate_series(1, 100) AS i)),
                'in with 100 values');
SELECT throws_ok(format($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'in', %L)])$$,
                        (SELECT '{' || string_agg(i::text, ',') || '}'
                         FROM generate_series(1, 101) AS i)),
                 'P0001', 'too many values for `in` filter. Maximum 100', 'in with 101 values');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'in', '{1,x}')])$$,
                 '22P02', 'invalid input syntax for type integer: "x"',
                 'in with a value that is not an integer');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'in', '1')])$$,
                 '22P02', 'malformed array literal: "1"', 'in with a value that is not an array');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('title', 'in', '{red,"a,b"}'),
                                                 pg_temp.flt('id', 'in', '{}')])$$,
                'in with text values, and with none');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('tags', 'in', '{{a,b},{c,d}}')])$$,
                'in on an array column takes an array of its own type');

-- is: a keyword, and only null for a column that is not boolean.
SELECT throws_ok(format($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('done', 'is', %L)])$$, v),
                 'P0001', 'invalid value for is filter: must be null, true, false, or unknown',
                 format('is %L is refused', v))
FROM unnest(ARRAY['maybe', 'NULL', 'True', '', 'null; DROP TABLE public.sub_canary']) AS v;
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'is', 'true')])$$,
                 'P0001', 'is true filter requires a boolean column, got integer',
                 'is true on an integer column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('title', 'is', 'unknown', true)])$$,
                 'P0001', 'is unknown filter requires a boolean column, got text',
                 'is not unknown on a text column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('tags', 'is', 'false')])$$,
                 'P0001', 'is false filter requires a boolean column, got text[]',
                 'is false on an array column');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'is', 'null'),
                                                 pg_temp.flt('title', 'is', 'null', true)])$$,
                'is [not] null on any column');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('done', 'is', v)])
                  FROM unnest(ARRAY['true', 'false', 'unknown']) AS v$$,
                'is true/false/unknown on a boolean column');

-- like, ilike: the column type needs the ~~ operator.
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'like', '1%')])$$,
                 'P0001', 'operator like requires a text-compatible column type, got integer',
                 'like on an integer column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('done', 'ilike', 't%')])$$,
                 'P0001', 'operator ilike requires a text-compatible column type, got boolean',
                 'ilike on a boolean column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('label', 'like', 'a%')])$$,
                 'P0001',
                 'operator like requires a text-compatible column type, got character varying',
                 'like on a varchar column: no ~~ (varchar) operator, refused as upstream does');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('title', 'like', '%a''b%'),
                                                 pg_temp.flt('title', 'ilike', '%\_x%', true)])$$,
                'like and not.ilike on a text column');

-- match, imatch: the column type needs ~ or ~*, and the pattern must compile.
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('qty', 'match', '^1')])$$,
                 'P0001', 'operator match requires a text-compatible column type, got integer',
                 'match on an integer column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('price', 'imatch', '^1')])$$,
                 'P0001', 'operator imatch requires a text-compatible column type, got numeric',
                 'imatch on a numeric column');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('title', 'match', '(')])$$,
                 'P0001', 'invalid regular expression for match filter: invalid regular '
                          'expression: parentheses () not balanced', 'match with a bad pattern');
SELECT throws_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('title', 'imatch', 'a[b', true)])$$,
                 'P0001', 'invalid regular expression for imatch filter: invalid regular '
                          'expression: brackets [] not balanced', 'not.imatch with a bad pattern');
SELECT lives_ok($$SELECT pg_temp.subscribe(ARRAY[pg_temp.flt('title', 'match', '^milk( |$)'),
                                                 pg_temp.flt('title', 'imatch', '\d{2,}')])$$,
                'match and imatch with valid patterns');

-- Who may write the table: the owner (a sidecar may SET ROLE to it), not the API roles.
SET LOCAL ROLE supabase_realtime_admin;
SELECT lives_ok($$INSERT INTO realtime.subscription (subscription_id, entity, filters, claims)
                  VALUES (gen_random_uuid(), 'public.sub_items',
                          ARRAY[ROW('id', 'eq', '1', false)]::realtime.user_defined_filter[],
                          '{"role": "authenticated"}')$$,
                'supabase_realtime_admin can insert');
SELECT lives_ok($$DELETE FROM realtime.subscription WHERE entity = 'public.sub_items'::regclass$$,
                'supabase_realtime_admin can delete');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT throws_ok($$INSERT INTO realtime.subscription (subscription_id, entity, claims)
                   VALUES (gen_random_uuid(), 'public.sub_items', '{"role": "anon"}')$$,
                 '42501', 'permission denied for table subscription', 'anon cannot insert');
SELECT throws_ok($$DELETE FROM realtime.subscription$$, '42501',
                 'permission denied for table subscription', 'anon cannot delete');
SELECT lives_ok($$SELECT * FROM realtime.subscription$$, 'anon can read');
RESET ROLE;

-- The sidecar asks realtime.subscription_check at each join instead of storing a row: the
-- same checks and order, and no WAL (a join must not give the decoder work to wait for).
SELECT is((SELECT c.norm_filters::text FROM realtime.subscription_check(
              'public.sub_items', ARRAY[pg_temp.flt('title', 'eq', 'b'), pg_temp.flt('id', 'gt', '1')],
              '{"role":"authenticated"}', ARRAY['title', 'done']) c),
          '{"(id,gt,1,f)","(title,eq,b,f)"}',
          'subscription_check sorts filters as the trigger does');
SELECT throws_ok($$SELECT realtime.subscription_check('public.sub_items',
                     ARRAY[pg_temp.flt('secret', 'eq', 'x')], '{"role":"authenticated"}', NULL)$$,
                 'P0001', 'invalid column for filter secret',
                 'subscription_check refuses what the trigger refuses, in the same words');
-- (background WAL, e.g. bgwriter's running-xacts record, may slip in: three tries)
CREATE FUNCTION pg_temp.check_writes_wal() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    before pg_lsn;
BEGIN
    FOR i IN 1..3 LOOP
        before := pg_current_wal_insert_lsn();
        PERFORM realtime.subscription_check('public.sub_items',
            ARRAY[pg_temp.flt('qty', 'in', '{1,2}'), pg_temp.flt('title', 'match', '^a')],
            '{"role":"authenticated"}', ARRAY['qty']);
        IF pg_current_wal_insert_lsn() = before THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END $$;
SELECT ok(NOT pg_temp.check_writes_wal(), 'subscription_check writes no WAL');

SELECT * FROM finish();
ROLLBACK;
