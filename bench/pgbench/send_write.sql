-- bench/send_cost.sh, workload "write": a transaction that updates a row and sends, as a
-- trigger calling realtime.send() would.
\set id random(1, 1000)
BEGIN;
UPDATE bench_cost SET n = n + 1 WHERE id = :id;
SELECT realtime.send(jsonb_build_object('c', :client_id::int), 'e', 'cost');
COMMIT;
