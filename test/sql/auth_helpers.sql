-- auth_helpers.sql: the optional extension realtime_auth (auth.uid(), auth.role(), auth.jwt() as
-- on Supabase): what they read from the claims realtime-fanout sets, NULL without claims, what
-- the API roles may call, a policy that uses them, and that it changes nothing where auth.uid()
-- exists already. Everything happens in one transaction that is rolled back.
\unset ECHO
\i test/setup.sql

BEGIN;
SELECT plan(23);
-- A database without auth (whatever an earlier run left is dropped, and back at the ROLLBACK).
SET LOCAL client_min_messages = warning;
DROP SCHEMA IF EXISTS auth CASCADE;
RESET client_min_messages;

SELECT lives_ok('CREATE EXTENSION realtime_auth', 'CREATE EXTENSION realtime_auth on a database without auth');
SELECT has_schema('auth', 'it creates the schema auth');
SELECT has_function('auth', 'uid', ARRAY[]::name[], 'auth.uid() exists');
SELECT has_function('auth', 'role', ARRAY[]::name[], 'auth.role() exists');
SELECT has_function('auth', 'jwt', ARRAY[]::name[], 'auth.jwt() exists');
SELECT function_returns('auth', 'uid', ARRAY[]::name[], 'uuid', 'auth.uid() returns uuid');
SELECT function_returns('auth', 'jwt', ARRAY[]::name[], 'jsonb', 'auth.jwt() returns jsonb');

-- Without claims (settings never set, or set to '' as a finished transaction leaves them).
SELECT is(auth.uid(), NULL, 'auth.uid() is NULL without claims');
SELECT is(auth.role(), NULL, 'auth.role() is NULL without claims');
SELECT is(auth.jwt(), NULL, 'auth.jwt() is NULL without claims');
SET LOCAL request.jwt.claims = '';
SET LOCAL request.jwt.claim.sub = '';
SELECT is(auth.uid(), NULL, 'auth.uid() is NULL when the settings are empty');

-- The settings a private join's read check and a Postgres Changes RLS check set
-- (src/fanout/auth/authorizer_db.cpp, src/fanout/postgres_changes/pg_changes_db.cpp).
SET LOCAL request.jwt.claims =
  '{"sub":"6f1d2c0a-1b2c-4d5e-8f90-0a1b2c3d4e5f","role":"authenticated","email":"a@example.com","app_metadata":{"team":7}}';
SET LOCAL request.jwt.claim.sub = '6f1d2c0a-1b2c-4d5e-8f90-0a1b2c3d4e5f';
SET LOCAL request.jwt.claim.role = 'authenticated';
SELECT is(auth.uid(), '6f1d2c0a-1b2c-4d5e-8f90-0a1b2c3d4e5f'::uuid, 'auth.uid() is the sub claim');
SELECT is(auth.role(), 'authenticated', 'auth.role() is the role claim');
SELECT is(auth.jwt() -> 'app_metadata' ->> 'team', '7', 'auth.jwt() is the whole claims object');

-- Only the claims object (PostgREST 9+ style): uid and role come from it.
SET LOCAL request.jwt.claim.sub = '';
SET LOCAL request.jwt.claim.role = '';
SELECT is(auth.uid(), '6f1d2c0a-1b2c-4d5e-8f90-0a1b2c3d4e5f'::uuid, 'auth.uid() falls back to request.jwt.claims');
SELECT is(auth.role(), 'authenticated', 'auth.role() falls back to request.jwt.claims');

-- The API roles can call them inside a policy, as the sidecar's checks run them.
CREATE TABLE public.auth_helpers_notes (id int PRIMARY KEY, user_id uuid);
INSERT INTO public.auth_helpers_notes VALUES (1, '6f1d2c0a-1b2c-4d5e-8f90-0a1b2c3d4e5f'),
                                             (2, '00000000-0000-0000-0000-000000000002');
ALTER TABLE public.auth_helpers_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON public.auth_helpers_notes FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));
GRANT SELECT ON public.auth_helpers_notes TO authenticated;
SET LOCAL ROLE authenticated;
SELECT results_eq('SELECT id FROM public.auth_helpers_notes', ARRAY[1],
                  'as authenticated, a policy on auth.uid() shows the user''s own row only');
RESET ROLE;
SELECT throws_ok('DROP EXTENSION realtime_auth', '2BP01', NULL,
                   'DROP EXTENSION refuses while a policy uses the helpers');
DROP TABLE public.auth_helpers_notes;

-- Where auth.uid() exists already (Supabase Auth), the extension creates nothing.
DROP EXTENSION realtime_auth;
SELECT hasnt_schema('auth', 'DROP EXTENSION removes the schema it created');
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS $$ SELECT '11111111-1111-1111-1111-111111111111'::uuid $$;
SELECT lives_ok('CREATE EXTENSION realtime_auth', 'CREATE EXTENSION realtime_auth where auth.uid() exists');
SELECT is(auth.uid(), '11111111-1111-1111-1111-111111111111'::uuid, 'the existing auth.uid() is kept');
SELECT hasnt_function('auth', 'role', ARRAY[]::name[], 'auth.role() is not added next to an existing auth.uid()');
SELECT is((SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
           WHERE e.extname = 'realtime_auth' AND d.deptype = 'e')::int, 0,
          'the extension owns no object there');

SELECT * FROM finish();
ROLLBACK;
