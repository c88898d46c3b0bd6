-- bench/send_cost.sh: one pg_notify per transaction (autocommit), on channel "cost".
select pg_notify('cost', jsonb_build_object('c', :client_id::int)::text);
