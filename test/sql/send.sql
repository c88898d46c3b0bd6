-- send.sql: realtime.send() and realtime.broadcast_changes() inside one rolled back
-- transaction: signatures, what is stored (private messages by default, every one with
-- realtime.persist_messages = on: the row, its id, the "id" added to the payload, the time
-- in UTC), RLS deciding who may send, broadcast_changes' errors.
-- What is decoded after commit (and the WARNING texts) is in decode.sql.
\unset ECHO
\i test/setup.sql

BEGIN;
SET LOCAL TimeZone = 'UTC';
-- The WARNINGs of refused sends are expected here; decode.sql checks their text.
SET LOCAL client_min_messages = error;
SELECT plan(43);

-- Signatures (PROTOCOL.md 7.4, private defaulting to false as section 0 decides).
SELECT has_function('realtime'::name, 'send'::name,
                    ARRAY['jsonb', 'text', 'text', 'boolean']::name[], 'realtime.send exists');
SELECT function_returns('realtime'::name, 'send'::name,
                        ARRAY['jsonb', 'text', 'text', 'boolean']::name[], 'void',
                        'realtime.send returns void');
SELECT function_lang_is('realtime'::name, 'send'::name,
                        ARRAY['jsonb', 'text', 'text', 'boolean']::name[], 'c'::name,
                        'realtime.send is C');
SELECT volatility_is('realtime'::name, 'send'::name,
                     ARRAY['jsonb', 'text', 'text', 'boolean']::name[], 'volatile',
                     'realtime.send is VOLATILE');
SELECT isnt_strict('realtime'::name, 'send'::name,
                   ARRAY['jsonb', 'text', 'text', 'boolean']::name[],
                   'realtime.send is not STRICT (NULL arguments are warnings)');
SELECT isnt_definer('realtime'::name, 'send'::name,
                    ARRAY['jsonb', 'text', 'text', 'boolean']::name[],
                    'realtime.send is not SECURITY DEFINER');
SELECT is(pg_get_function_arguments('realtime.send(jsonb, text, text, boolean)'::regprocedure),
          'payload jsonb, event text, topic text, private boolean DEFAULT false',
          'argument names and the default of private');
SELECT has_function('realtime'::name, 'broadcast_changes'::name,
                    ARRAY['text', 'text', 'text', 'text', 'text', 'record', 'record', 'text']::name[],
                    'realtime.broadcast_changes exists');
SELECT is(pg_get_function_arguments('realtime.broadcast_changes(text, text, text, text, text, '
                                    'record, record, text)'::regprocedure),
          'topic_name text, event_name text, operation text, table_name text, '
          'table_schema text, new record, old record, level text DEFAULT ''ROW''::text',
          'broadcast_changes argument names and the default of level');

-- It never aborts the caller.
SELECT lives_ok($$SELECT realtime.send('{"a":1}', 'ev', 'room')$$, 'a send returns');
SELECT lives_ok($$SELECT realtime.send('{"a":1}', 'ev', NULL)$$, 'a NULL topic is no error');
SELECT lives_ok($$SELECT realtime.send('{"a":1}', '', 'room')$$, 'an empty event is no error');
SELECT lives_ok($$SELECT realtime.send(NULL, 'ev', 'room')$$, 'a NULL payload is no error');
SELECT lives_ok($$SELECT realtime.send('[1, 2]', 'ev', 'room')$$, 'an array payload is no error');
SELECT lives_ok($$SELECT realtime.send('{"a":1}', 'ev', 'room', NULL)$$,
                'a NULL private is no error');

-- By default (persist_messages = private) a private message is stored, for replay
-- (PROTOCOL.md 4.5), and a public one is not; off stores none.
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT realtime.send('{"a":1}', 'ev', 'default:private', true);
SELECT realtime.send('{"a":1}', 'ev', 'default:public', false);
SET LOCAL TimeZone = 'UTC';
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'default:private'), 1::bigint,
          'by default a private send stores its row');
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'default:public'), 0::bigint,
          'by default a public send stores nothing');
SELECT ok((SELECT abs(extract(epoch FROM inserted_at - (clock_timestamp() AT TIME ZONE 'utc')))
                  < 60 FROM realtime.messages WHERE topic = 'default:private'),
          'inserted_at is the time of the send in UTC, whatever the session''s time zone');
SELECT is((SELECT expires_at FROM realtime.messages WHERE topic = 'default:private'), NULL,
          'a send has no expiry: kept for the retention period');
SET LOCAL realtime.persist_messages = off;
SELECT realtime.send('{"a":1}', 'ev', 'off:private', true);
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'off:private'), 0::bigint,
          'persist_messages off: a private send stores nothing');

-- persist_messages = on: the row upstream's send stores, with the message's id.
SET LOCAL realtime.persist_messages = on;
SELECT realtime.send('{"a":1}', 'ev', 'persist:1');
SELECT realtime.send('{"a":2,"id":"mine"}', 'ev2', 'persist:2', true);
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic LIKE 'persist:%'), 2::bigint,
          'persist_messages on: each send inserts a row');
SELECT is((SELECT payload - 'id' FROM realtime.messages WHERE topic = 'persist:1'),
          '{"a":1}'::jsonb, 'the stored payload is the one sent');
SELECT is((SELECT payload->>'id' FROM realtime.messages WHERE topic = 'persist:1'),
          (SELECT id::text FROM realtime.messages WHERE topic = 'persist:1'),
          'an "id" is added to a payload without one: the row id');
SELECT is((SELECT payload FROM realtime.messages WHERE topic = 'persist:2'),
          '{"a":2,"id":"mine"}'::jsonb, 'a payload''s own "id" is kept');
SELECT isnt((SELECT id::text FROM realtime.messages WHERE topic = 'persist:2'), 'mine',
            'the row id is still a fresh UUID');
SELECT is((SELECT (event, extension, private)::text FROM realtime.messages
           WHERE topic = 'persist:1'), '(ev,broadcast,f)', 'event, extension, private = false');
SELECT is((SELECT private FROM realtime.messages WHERE topic = 'persist:2'), true,
          'private = true is stored');
SELECT is(current_setting('realtime.topic'), '', 'realtime.topic is not left set by send');

-- Refused sends store nothing either.
SELECT realtime.send('{"a":1}', 'ev', '');
SELECT realtime.send('{"a":1}', NULL, 'persist:3');
SELECT realtime.send('"scalar"', 'ev', 'persist:3');
SET LOCAL realtime.max_message_bytes = 20;
SELECT realtime.send('{"a":"0123456789"}', 'ev', 'persist:3');
RESET realtime.max_message_bytes;
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic IN ('', 'persist:3')),
          0::bigint, 'refused sends insert nothing');

-- RLS: the right to send is the right to INSERT the row with realtime.topic set.
CREATE POLICY send_allowed ON realtime.messages FOR INSERT TO authenticated
    WITH CHECK (realtime.topic() LIKE 'allowed:%' AND extension = 'broadcast');
SET LOCAL ROLE authenticated;
SELECT realtime.send('{"a":1}', 'ev', 'allowed:1');
SELECT realtime.send('{"a":1}', 'ev', 'denied:1');
SELECT is(current_setting('realtime.topic'), '', 'realtime.topic restored after a probe');
RESET ROLE;
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'allowed:1'), 1::bigint,
          'authenticated with an INSERT policy: sent and stored');
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'denied:1'), 0::bigint,
          'authenticated refused by the policy: nothing stored');
SET LOCAL ROLE anon;
SELECT lives_ok($$SELECT realtime.send('{"a":1}', 'ev', 'allowed:2')$$,
                'anon without a policy: no error');
RESET ROLE;
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'allowed:2'), 0::bigint,
          'anon without a policy: nothing stored');
SET LOCAL ROLE service_role;
SELECT realtime.send('{"a":1}', 'ev', 'bypass:1');
RESET ROLE;
SELECT is((SELECT count(*) FROM realtime.messages WHERE topic = 'bypass:1'), 1::bigint,
          'service_role (BYPASSRLS) sends without a policy');

-- broadcast_changes: upstream's payload, sent private; its errors abort the caller.
CREATE TABLE public.send_t (id int PRIMARY KEY, name text);
SELECT lives_ok($$SELECT realtime.broadcast_changes('bc:1', 'UPDATE', 'UPDATE', 'send_t',
                                                    'public', ROW(1, 'new')::public.send_t,
                                                    ROW(1, 'old')::public.send_t)$$,
                'broadcast_changes with a row pair');
SELECT is((SELECT payload - 'id' FROM realtime.messages WHERE topic = 'bc:1'),
          '{"schema":"public","table":"send_t","operation":"UPDATE",'
          '"record":{"id":1,"name":"new"},"old_record":{"id":1,"name":"old"}}'::jsonb,
          'broadcast_changes payload: schema, table, operation, record, old_record');
SELECT is((SELECT (event, private, payload->>'id' = id::text)::text FROM realtime.messages
           WHERE topic = 'bc:1'), '(UPDATE,t,t)', 'event as given, private, "id" added');
SELECT lives_ok($$SELECT realtime.broadcast_changes('bc:2', 'DELETE', 'DELETE', 'send_t',
                                                    'public', NULL,
                                                    ROW(2, 'gone')::public.send_t)$$,
                'broadcast_changes for a DELETE');
SELECT is((SELECT payload->'record' FROM realtime.messages WHERE topic = 'bc:2'), 'null'::jsonb,
          'record is null for DELETE');
SELECT throws_ok($$SELECT realtime.broadcast_changes('bc:3', 'X', 'TRUNCATE', 'send_t', 'public',
                                                     NULL, NULL)$$,
                 '22023', 'Failed to process the row: Unexpected operation type: TRUNCATE',
                 'an unknown operation is an error');
SELECT throws_ok($$SELECT realtime.broadcast_changes('bc:3', 'X', NULL, 'send_t', 'public',
                                                     NULL, NULL)$$,
                 '22023', 'Failed to process the row: Unexpected operation type: <NULL>',
                 'a NULL operation is an error');
SELECT throws_ok($$SELECT realtime.broadcast_changes('bc:3', 'X', 'INSERT', 'send_t', 'public',
                                                     NULL, NULL, 'STATEMENT')$$,
                 '0A000', 'Failed to process the row: function can only be triggered for each '
                          'row, not for each statement',
                 'STATEMENT level is an error');

SELECT * FROM finish();
ROLLBACK;
