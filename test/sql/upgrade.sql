-- upgrade.sql: a database created at 0.1.0 and updated (ALTER EXTENSION realtime UPDATE,
-- sql/realtime--0.1.0--0.2.0.sql) has exactly what one created at the current version has:
-- the same member objects, function definitions, columns, defaults, comments, indexes,
-- constraints and privileges. Runs in one rolled back transaction (DDL is transactional):
-- the extension is dropped, created at 0.1.0 and updated, and nothing of it survives.
\unset ECHO
\i test/setup.sql

BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(7);

-- Everything an update could get wrong, one text line per fact.
CREATE FUNCTION pg_temp.shape() RETURNS SETOF text LANGUAGE sql AS $fn$
    -- member objects of the extension, with their comments and privileges
    SELECT 'member ' || pg_describe_object(d.classid, d.objid, 0) || ' comment '
           || coalesce(obj_description(d.objid, d.classid::regclass::name), '-')
           || ' acl ' || coalesce(CASE d.classid
                 WHEN 'pg_proc'::regclass THEN (SELECT proacl::text FROM pg_proc
                                                WHERE oid = d.objid)
                 WHEN 'pg_class'::regclass THEN (SELECT relacl::text FROM pg_class
                                                 WHERE oid = d.objid) END, '-')
    FROM pg_depend d
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'realtime')
    UNION ALL
    -- function definitions (body, volatility, strictness, settings)
    SELECT 'function ' || pg_get_functiondef(p.oid)
    FROM pg_proc p WHERE p.pronamespace = 'realtime'::regnamespace AND p.prokind <> 'a'
    UNION ALL
    -- columns of the schema's tables (partitions excluded): position, type, null, default
    SELECT format('column %s.%s #%s %s %s default %s comment %s', c.relname, a.attname,
                  a.attnum, format_type(a.atttypid, a.atttypmod),
                  CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                  coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'),
                  coalesce(col_description(c.oid, a.attnum), '-'))
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    WHERE c.relnamespace = 'realtime'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    UNION ALL
    -- indexes of those tables, with their comments
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) || ' comment '
           || coalesce(obj_description(i.indexrelid, 'pg_class'), '-')
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    WHERE c.relnamespace = 'realtime'::regnamespace AND NOT c.relispartition
    UNION ALL
    -- constraints and triggers
    SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = 'realtime'::regnamespace
      AND (conrelid = 0 OR NOT (SELECT relispartition FROM pg_class WHERE oid = conrelid))
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'realtime'::regnamespace AND NOT t.tgisinternal
      AND NOT c.relispartition
    UNION ALL
    -- row level security and owners of the tables
    SELECT format('table %s rls %s owner %s', c.relname, c.relrowsecurity, c.relowner::regrole)
    FROM pg_class c
    WHERE c.relnamespace = 'realtime'::regnamespace AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
    UNION ALL
    -- the partitions' indexes, by name (an index added to the parent reaches old partitions)
    SELECT 'partition index ' || regexp_replace(ic.relname, '\d{4}_\d{2}_\d{2}', 'D')
    FROM pg_inherits p JOIN pg_index i ON i.indrelid = p.inhrelid
    JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE p.inhparent = 'realtime.messages'::regclass
$fn$;

SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'realtime'), '0.2.0',
          'the extension is at 0.2.0');
CREATE TEMP TABLE fresh AS SELECT DISTINCT s FROM pg_temp.shape() AS s;

DROP EXTENSION realtime CASCADE;
CREATE EXTENSION realtime VERSION '0.1.0';
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'realtime'), '0.1.0',
          'a database can still be created at 0.1.0');
SELECT hasnt_column('realtime'::name, 'messages'::name, 'expires_at'::name,
                    '0.1.0 has no expires_at');
ALTER EXTENSION realtime UPDATE TO '0.2.0';
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'realtime'), '0.2.0',
          'ALTER EXTENSION realtime UPDATE takes it to 0.2.0');
CREATE TEMP TABLE updated AS SELECT DISTINCT s FROM pg_temp.shape() AS s;

SELECT is(ARRAY(SELECT DISTINCT split_part(s, ' ', 1) FROM fresh ORDER BY 1),
          ARRAY['column', 'constraint', 'function', 'index', 'member', 'partition', 'table',
                'trigger'], 'the comparison covers every kind of object');
SELECT is(ARRAY(SELECT s FROM fresh EXCEPT SELECT s FROM updated ORDER BY 1), '{}'::text[],
          'nothing of a fresh 0.2.0 is missing after the update');
SELECT is(ARRAY(SELECT s FROM updated EXCEPT SELECT s FROM fresh ORDER BY 1), '{}'::text[],
          'nothing is left from 0.1.0 that a fresh 0.2.0 does not have');

SELECT * FROM finish();
ROLLBACK;
