-- setup.sql: psql settings shared by the pgTAP files (\i test/setup.sql from the repo root).
-- Quiet, unaligned tuples only, so that the output is plain TAP for pg_prove and pg_regress.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
-- A failing statement outside throws_ok stops the file (pg_prove then reports a bad plan).
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true
