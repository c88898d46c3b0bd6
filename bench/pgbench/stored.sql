-- bench/send_cost.sh, workload "stored": one private realtime.send per transaction, to topic
-- "cost": also a row of realtime.messages (realtime.persist_messages = private, the default).
select realtime.send(jsonb_build_object('c', :client_id::int), 'e', 'cost', true);
