#!/usr/bin/env bash
# persist.sh: persisted broadcasts through one sidecar into PostgreSQL (`make bench-persist`;
# docs/PERFORMANCE.md).
#
# make install (unless BENCH_INSTALL=0), then a throwaway cluster (scripts/cluster.sh) with
# two policies on realtime.messages (authenticated may read and write realtime:persist:*)
# and the sidecar attached to it. Then BENCH_REPS rounds of build/bench/persist_client, the
# order alternating every round:
#   persist: BENCH_SENDERS sockets, each on its own private topic with BENCH_RECEIVERS
#     receiving sockets, send BENCH_RATE kind-3 broadcasts per second in all for
#     BENCH_SECONDS with metadata {"persist":true} and ack: each is a row (the sidecar's COPY
#     batches) before it is acked and delivered;
#   plain: the same without persist (the baseline: the private broadcast path, ring-only).
# A run fails when a push is not acked ok or a broadcast does not arrive at every receiver;
# after a persist run the rows of realtime.messages must be as many as the acks.
# CPU (ms) of the sidecar and of the store's backend (application_name realtime_store).
# Prints every run, medians, ratios and last:
#   persist_per_s=.. persist_ack_p50_ms=.. persist_ack_p99_ms=.. plain_... p99_ratio=..
#
# Environment: BENCH_RATE (20000), BENCH_SECONDS (5), BENCH_SENDERS (20), BENCH_RECEIVERS (1),
# BENCH_REPS (3), BENCH_TIMEOUT (60 s), BENCH_INSTALL (1), BENCH_FANOUT, BENCH_JWT_SECRET.
# Everything it starts is stopped on exit. Logs: build/bench/logs/persist-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

RATE=${BENCH_RATE:-20000}
SECONDS_=${BENCH_SECONDS:-5}
SENDERS=${BENCH_SENDERS:-20}
RECEIVERS=${BENCH_RECEIVERS:-1}
REPS=${BENCH_REPS:-3}
TIMEOUT=${BENCH_TIMEOUT:-60}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
LOGDIR=build/bench/logs/persist-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
SIDELOG=$LOGDIR/sidecar.log
mkdir -p "$LOGDIR"

bench_db_setup "$LOGDIR" "start cluster and sidecar" build/bench/persist_client build/bench/load_client \
	build/realtime-fanout || exit 1
bench_psql "
create policy persist_read on realtime.messages for select to authenticated
  using (realtime.topic() like 'persist:%');
create policy persist_write on realtime.messages for insert to authenticated
  with check (realtime.topic() like 'persist:%');
" >/dev/null || exit 1
bench_start_db_sidecar "$SECRET" "$SIDELOG" || exit 1
echo "cluster: $BENCH_CONNINFO (dir $BENCH_CLUSTER_DIR); sidecar: port $BENCH_SIDECAR_PORT" \
	"pid $BENCH_SIDECAR_PID" | tee -a "$RESULTS"
TOKENS=$LOGDIR/tokens.txt
bench_user_tokens 1 "$SECRET" "$TOKENS" || exit 1
client=(build/bench/persist_client --port "$BENCH_SIDECAR_PORT" --tokens "$TOKENS"
	--senders "$SENDERS" --receivers "$RECEIVERS" --rate "$RATE" --seconds "$SECONDS_"
	--timeout "$TIMEOUT")

# A short warm-up persist run: the store's connection exists and can be watched.
"${client[@]}" --persist 1 --seconds 1 --rate 1000 >"$LOGDIR/warmup.out" 2>>"$LOGDIR/client.log" || {
	echo "!! warm-up failed:"
	cat "$LOGDIR/warmup.out"
	tail -5 "$LOGDIR/client.log"
	exit 1
}
spid=$(bench_psql "select pid from pg_stat_activity where application_name = 'realtime_store'
	order by backend_start limit 1")
[ -n "$spid" ] || echo "!! no realtime_store backend found" | tee -a "$RESULTS"
watch=(--watch "sidecar=$BENCH_SIDECAR_PID" --watch "store=${spid:-0}")
echo "store backend pid ${spid:-none}; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" \
	"($(nproc) cores)" | tee -a "$RESULTS"

rows() { bench_psql "select count(*) from realtime.messages where topic like 'persist:%'"; }

# One run of mode $1 (persist or plain): its result line; failed=1 when anything was lost.
run() {
	local mode=$1 p=0 r0 out rc stored failed=0
	[ "$mode" = persist ] && p=1
	r0=$(rows)
	out=$("${client[@]}" "${watch[@]}" --persist "$p" 2>>"$LOGDIR/client.log")
	rc=$?
	stored=$(($(rows) - r0))
	[ "$rc" = 0 ] || failed=1
	if [ "$p" = 1 ] && [ "$stored" != "$(bench_field acked "${out#result }")" ]; then
		echo "!! $stored rows for $(bench_field acked "${out#result }") acked persisted broadcasts" |
			tee -a "$RESULTS"
		failed=1
	fi
	[ "$p" = 0 ] && [ "$stored" != 0 ] && failed=1
	echo "mode=$mode ${out#result } rows=$stored rc=$rc failed=$failed" | tee -a "$RESULTS"
	[ "$rc" = 0 ] || tail -3 "$LOGDIR/client.log"
}

echo "== $REPS rounds: $RATE broadcasts/s for $SECONDS_ s from $SENDERS senders" \
	"($RECEIVERS receiver(s) a topic), persisted and not"
for rep in $(seq "$REPS"); do
	for m in $(bench_order "$rep" persist plain); do
		run "$m"
	done
done
if ! kill -0 "$BENCH_SIDECAR_PID" 2>/dev/null; then
	echo "!! the sidecar exited; log tail:" | tee -a "$RESULTS"
	tail -20 "$SIDELOG"
	exit 1
fi

med() { bench_median_of "$RESULTS" "mode=$1 " "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
fails=$(grep -c 'failed=1' "$RESULTS")
echo "== medians of $REPS runs each (failed runs left out: $fails)"
summary="persist_per_s=$(med persist per_s) persist_ack_p50_ms=$(med persist ack_p50_ms)"
summary+=" persist_ack_p99_ms=$(med persist ack_p99_ms) plain_per_s=$(med plain per_s)"
summary+=" plain_ack_p50_ms=$(med plain ack_p50_ms) plain_ack_p99_ms=$(med plain ack_p99_ms)"
summary+=" p50_ratio=$(ratio "$(med persist ack_p50_ms)" "$(med plain ack_p50_ms)")"
summary+=" p99_ratio=$(ratio "$(med persist ack_p99_ms)" "$(med plain ack_p99_ms)")"
summary+=" persist_cpu_sidecar_ms=$(med persist run_sidecar_cpu_ms) plain_cpu_sidecar_ms=$(med plain run_sidecar_cpu_ms)"
summary+=" persist_cpu_store_ms=$(med persist run_store_cpu_ms) failed_runs=$fails"
echo "$summary" | tee -a "$RESULTS"
echo "results: $RESULTS"
[ "$fails" = 0 ]
