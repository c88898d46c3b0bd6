#!/usr/bin/env bash
# client_ceiling.sh: how much broadcast load bench/load_client itself can take
# on this machine (docs/PERFORMANCE.md, "The load client's own ceiling").
#
# Runs the load client at increasing publish rates against the cheapest
# server we have: the baseline server with --batch (several frames per
# lws_write), so that the client, not the server, is the first to give out.
# For each rate it prints the deliveries/s reached, loss, latency, the CPU of
# the client (whole process and receiver thread) and of the server, and the
# receiver's CPU time per delivery; the last line gives the best loss-free
# rate seen and the receiver's cost per delivery at that rate.
#
# Environment: BENCH_SUBS (100), BENCH_SECONDS (5), BENCH_CEILING_RATES
# ("5000 10000 20000 40000" msg/s), BENCH_CEILING_BATCH (64),
# BENCH_CLIENT_THREADS (1), BENCH_PAD (64), BENCH_DRAIN (5).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

SUBS=${BENCH_SUBS:-100}
SECS=${BENCH_SECONDS:-5}
RATES=${BENCH_CEILING_RATES:-5000 10000 20000 40000}
BATCH=${BENCH_CEILING_BATCH:-64}
CLIENT_THREADS=${BENCH_CLIENT_THREADS:-1}
PAD=${BENCH_PAD:-64}
DRAIN=${BENCH_DRAIN:-5}
HZ=$(getconf CLK_TCK)
LOGDIR=build/bench/logs/ceiling-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOGDIR"

make -s build/bench/load_client build/bench/baseline_server || exit 1
PORT=$(bench_free_port)
build/bench/baseline_server --port "$PORT" --batch "$BATCH" >"$LOGDIR/baseline.log" 2>&1 &
PID=$!
BENCH_PIDS+=("$PID")
bench_wait_port "$PORT" 10 "$PID" || {
	cat "$LOGDIR/baseline.log" >&2
	exit 1
}

echo "== client ceiling: $SUBS subscribers, baseline server --batch $BATCH, ${SECS} s per rate"
best=0 best_ns=nan
for rate in $RATES; do
	load=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(date +%s.%N)
	c0=$(bench_proc_ticks "$PID")
	line=$(build/bench/load_client --port "$PORT" --secret ceiling --subs "$SUBS" --rate "$rate" \
		--seconds "$SECS" --pad "$PAD" --threads "$CLIENT_THREADS" --drain "$DRAIN" \
		2>>"$LOGDIR/client.log" | grep '^result ' | sed 's/^result //')
	c1=$(bench_proc_ticks "$PID")
	t1=$(date +%s.%N)
	cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v s="$t0" -v e="$t1" \
		'BEGIN { printf "%.0f", 100 * (b - a) / hz / (e - s) }')
	[ -n "$line" ] || line="failed=1"
	echo "offered=$((SUBS * rate)) $line server_cpu_pct=$cpu load1=$load" | tee -a "$LOGDIR/results.txt"
	dps=$(bench_field deliveries_per_s "$line")
	lost=$(bench_field lost "$line")
	if [ "${lost:-1}" = 0 ] && awk -v a="$dps" -v b="$best" 'BEGIN { exit !(a > b) }'; then
		best=$dps
		best_ns=$(bench_field receiver_ns_per_delivery "$line")
	fi
	sleep 2
done
echo "client_best_lossfree_deliveries_per_s=$best receiver_ns_per_delivery=$best_ns" \
	"(one receiver core would take ~$(awk -v n="$best_ns" 'BEGIN { if (n > 0) printf "%.0f", 1e9 / n; else print "?" }') deliveries/s at that cost)"
