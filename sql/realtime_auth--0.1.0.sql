-- realtime_auth: Supabase's auth.uid(), auth.role() and auth.jwt() for a PostgreSQL without
-- Supabase Auth, so that the policies Supabase users write (RLS on realtime.messages for private
-- channels, on published tables for Postgres Changes) work unchanged.
--
-- They read the claims of the request's JWT from the settings that realtime-fanout sets in the
-- transaction of every check it runs (and PostgREST sets per request): request.jwt.claims, the
-- whole claims object as JSON, and request.jwt.claim.sub / request.jwt.claim.role. Without
-- claims each returns NULL. They are SQL functions, STABLE, that the planner inlines; in a
-- policy, `(select auth.uid())` evaluates the call once per statement instead of once per row.
--
-- Where auth.uid() already exists (a database with Supabase Auth, or one with its own helpers)
-- this extension creates nothing and says so: it never replaces an existing auth schema or
-- function. It creates the schema auth only when there is none; DROP EXTENSION removes what
-- it created and nothing else.

\echo Use "CREATE EXTENSION realtime_auth" to load this file. \quit

DO $realtime_auth$
DECLARE
	made_schema boolean := false;
	r text;
BEGIN
	IF to_regprocedure('auth.uid()') IS NOT NULL THEN
		RAISE NOTICE 'realtime_auth: auth.uid() exists already (Supabase Auth?): nothing created, the schema auth is left as it is';
		RETURN;
	END IF;
	IF to_regnamespace('auth') IS NULL THEN
		CREATE SCHEMA auth;
		made_schema := true;
	END IF;

	CREATE FUNCTION auth.uid() RETURNS uuid
	LANGUAGE sql STABLE
	AS $fn$
		SELECT coalesce(
			nullif(current_setting('request.jwt.claim.sub', true), ''),
			nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
		)::uuid
	$fn$;
	COMMENT ON FUNCTION auth.uid() IS
		'The sub claim of the request''s JWT as a uuid, NULL without one (realtime_auth)';

	CREATE FUNCTION auth.role() RETURNS text
	LANGUAGE sql STABLE
	AS $fn$
		SELECT coalesce(
			nullif(current_setting('request.jwt.claim.role', true), ''),
			nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
		)
	$fn$;
	COMMENT ON FUNCTION auth.role() IS
		'The role claim of the request''s JWT, NULL without one (realtime_auth)';

	CREATE FUNCTION auth.jwt() RETURNS jsonb
	LANGUAGE sql STABLE
	AS $fn$
		SELECT coalesce(
			nullif(current_setting('request.jwt.claim', true), ''),
			nullif(current_setting('request.jwt.claims', true), '')
		)::jsonb
	$fn$;
	COMMENT ON FUNCTION auth.jwt() IS
		'The claims of the request''s JWT as jsonb, NULL without them (realtime_auth)';

	-- The API roles (the extension realtime creates them) reach the schema; the functions are
	-- executable by PUBLIC, as every new function is.
	FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
		IF to_regrole(r) IS NOT NULL AND made_schema THEN
			EXECUTE format('GRANT USAGE ON SCHEMA auth TO %I', r);
		END IF;
	END LOOP;
	IF NOT made_schema THEN
		RAISE NOTICE 'realtime_auth: the schema auth existed: auth.uid(), auth.role(), auth.jwt() added to it; grant USAGE on it to the roles your policies apply to';
	END IF;
END
$realtime_auth$;
