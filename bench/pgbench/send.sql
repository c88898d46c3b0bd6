-- bench/send_cost.sh: one realtime.send per transaction (autocommit), to topic "cost".
select realtime.send(jsonb_build_object('c', :client_id::int), 'e', 'cost');
