-- bench/send_cost.sh, workload "write": a transaction that updates a row and notifies.
\set id random(1, 1000)
BEGIN;
UPDATE bench_cost SET n = n + 1 WHERE id = :id;
SELECT pg_notify('cost', jsonb_build_object('c', :client_id::int)::text);
COMMIT;
