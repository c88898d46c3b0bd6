#!/usr/bin/env bash
# db_latency.sh: commit-to-client latency of realtime.send() against NOTIFY -> LISTEN
# measured in the same invocation (`make bench-db-latency`; docs/PERFORMANCE.md).
#
# make install (unless BENCH_INSTALL=0), then a throwaway cluster (scripts/cluster.sh,
# realtime preloaded) and the sidecar attached to it (--db, --ring-path) on free loopback
# ports. build/bench/db_latency then sends messages at each rate, BENCH_REPS times per
# mode, alternating which mode goes first: "send" (select realtime.send(...), received by
# a WebSocket subscriber of the sidecar) and "notify" (select pg_notify(...), received by
# a LISTEN connection). A short warm-up run of each mode comes first and is not counted.
# Prints every run, the medians per rate and mode, one summary line per rate, and as its
# last line the medians at the last (highest) rate:
#   send_p50_ms=X send_p99_ms=Y notify_p50_ms=Z notify_p99_ms=W
#
# Environment: BENCH_RATES ("1000 10000" msg/s), BENCH_SECONDS (10), BENCH_REPS (3),
# BENCH_CONNS (8 sending connections), BENCH_MAX_INFLIGHT (16 statements per connection),
# BENCH_DRAIN (5 s), BENCH_PAUSE (1 s between runs),
# BENCH_WARMUP (2 s per mode; 0 = none), BENCH_LATE_MS (5), BENCH_INSTALL (1),
# BENCH_WRITE (0; 1 = each statement also updates a row, its connection's own, in the same
# transaction: both modes then commit with a WAL flush, as from a trigger; bare
# pg_notify writes no WAL and does not wait for the disk, realtime.send does),
# BENCH_FANOUT (another realtime-fanout binary), BENCH_JWT_SECRET.
# Everything it starts is stopped on exit. Logs: build/bench/logs/db-latency-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

RATES=${BENCH_RATES:-1000 10000}
SECS=${BENCH_SECONDS:-10}
REPS=${BENCH_REPS:-3}
CONNS=${BENCH_CONNS:-8}
MAX_INFLIGHT=${BENCH_MAX_INFLIGHT:-16}
DRAIN=${BENCH_DRAIN:-5}
PAUSE=${BENCH_PAUSE:-1}
WARMUP=${BENCH_WARMUP:-2}
LATE_MS=${BENCH_LATE_MS:-5}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
WRITE=${BENCH_WRITE:-0}
LOGDIR=build/bench/logs/db-latency-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
mkdir -p "$LOGDIR"

bench_db_setup "$LOGDIR" "start cluster and sidecar" \
	build/bench/db_latency build/bench/load_client build/realtime-fanout || exit 1
bench_psql "create table bench_lat (id int primary key, n int not null default 0);
	insert into bench_lat (id) select generate_series(1, $CONNS)" >/dev/null || exit 1
[ "$WRITE" = 1 ] && echo "workload: write (each statement also updates one row)" | tee -a "$RESULTS"
bench_start_db_sidecar "$SECRET" "$LOGDIR/sidecar.log" || exit 1
echo "cluster: $BENCH_CONNINFO (dir $BENCH_CLUSTER_DIR); sidecar: port $BENCH_SIDECAR_PORT" |
	tee -a "$RESULTS"
echo "settings: $(bench_psql "select string_agg(name || '=' || setting, ' ' order by name)
	from pg_settings where name in ('synchronous_commit', 'fsync', 'wal_sync_method',
	'commit_delay', 'shared_buffers')")" | tee -a "$RESULTS"

# One run: mode $1, rate $2, seconds $3, label $4 (rep number or "warmup").
run_one() {
	local mode=$1 rate=$2 secs=$3 label=$4 out rc line t0 t1 d0 d1 s0 s1 dpid load el
	dpid=$(bench_decoder_pid)
	load=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(date +%s.%N)
	d0=$(bench_proc_ticks "${dpid:-0}")
	s0=$(bench_proc_ticks "$BENCH_SIDECAR_PID")
	echo "--- $mode rate=$rate $label" >>"$LOGDIR/client.log"
	out=$(timeout $((secs + 3 * DRAIN + 60)) build/bench/db_latency --mode "$mode" \
		--port "$BENCH_SIDECAR_PORT" --secret "$SECRET" --db "$BENCH_CONNINFO" \
		--rate "$rate" --seconds "$secs" --conns "$CONNS" --max-inflight "$MAX_INFLIGHT" \
		--drain "$DRAIN" --write "$WRITE" \
		--late-ms "$LATE_MS" 2>>"$LOGDIR/client.log")
	rc=$?
	d1=$(bench_proc_ticks "${dpid:-0}")
	s1=$(bench_proc_ticks "$BENCH_SIDECAR_PID")
	t1=$(date +%s.%N)
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	line=$(echo "$out" | grep '^result ' | sed 's/^result //')
	[ -n "$line" ] || line="failed=1"
	echo "$mode rate=$rate rep=$label rc=$rc $line decoder_cpu_pct=$(bench_cpu_pct 0 "$d0" "$d1" "$el")" \
		"sidecar_cpu_pct=$(bench_cpu_pct 0 "$s0" "$s1" "$el") load1=$load" |
		sed 's/ rate=[0-9]* / /2' | tee -a "$RESULTS"
	# a counted run that lost, repeated, reordered or failed anything fails the benchmark
	if [ "$label" != warmup ] && ! bench_run_clean "$line" lost dup misordered bad errors; then
		echo "!! $mode rate=$rate rep=$label: not everything sent arrived once and in order (rc=$rc)" |
			tee -a "$RESULTS"
		LOSSY=$((LOSSY + 1))
	fi
	if ! kill -0 "$BENCH_SIDECAR_PID" 2>/dev/null; then
		echo "!! the sidecar exited during this run; log tail:" | tee -a "$RESULTS"
		tail -20 "$LOGDIR/sidecar.log"
		exit 1
	fi
}

LOSSY=0
[ -n "$(bench_decoder_pid)" ] || echo "!! no 'realtime decoder' process found" | tee -a "$RESULTS"
if [ "$WARMUP" != 0 ]; then
	echo "== warm-up (${WARMUP} s per mode at the first rate, not counted)"
	first_rate=${RATES%% *}
	run_one send "$first_rate" "$WARMUP" warmup
	run_one notify "$first_rate" "$WARMUP" warmup
fi

for rate in $RATES; do
	echo "== $rate msg/s for ${SECS} s over $CONNS connections, $REPS reps per mode"
	for rep in $(seq "$REPS"); do
		for mode in $(bench_order "$rep" send notify); do
			sleep "$PAUSE"
			run_one "$mode" "$rate" "$SECS" "$rep"
		done
	done
done
echo "extension after the runs: md5 $(md5sum <"$("$PG_CONFIG" --pkglibdir)/realtime.so" | cut -c1-12)" \
	"(the server loaded it at start; a different md5 only means someone reinstalled meanwhile)" |
	tee -a "$RESULTS"

# Median of key $3 over the counted runs of mode $1 at rate $2.
median_of() {
	bench_median_of "$RESULTS" "$1 rate=$2 rep=[0-9]" "$3"
}

echo "== medians (logs: $LOGDIR)"
for rate in $RATES; do
	for mode in send notify; do
		printf '%-6s rate=%s p50_ms=%s p99_ms=%s p999_ms=%s max_ms=%s ack_p50_ms=%s ack_p99_ms=%s send_rate=%s lost=%s misordered=%s late_over_%sms=%s errors=%s decoder_cpu_pct=%s sidecar_cpu_pct=%s runs_ok=%s/%s\n' \
			"$mode" "$rate" "$(median_of $mode "$rate" p50_ms)" "$(median_of $mode "$rate" p99_ms)" \
			"$(median_of $mode "$rate" p999_ms)" "$(median_of $mode "$rate" max_ms)" \
			"$(median_of $mode "$rate" ack_p50_ms)" "$(median_of $mode "$rate" ack_p99_ms)" \
			"$(median_of $mode "$rate" send_rate)" "$(median_of $mode "$rate" lost)" \
			"$(median_of $mode "$rate" misordered)" \
			"$LATE_MS" "$(median_of $mode "$rate" "late_over_${LATE_MS}ms")" \
			"$(median_of $mode "$rate" errors)" "$(median_of $mode "$rate" decoder_cpu_pct)" \
			"$(median_of $mode "$rate" sidecar_cpu_pct)" \
			"$(grep "^$mode rate=$rate rep=[0-9]" "$RESULTS" | grep -vc 'failed=1')" "$REPS"
	done
done

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "nan" }'
}
echo "== summary (ratio = send / notify; targets: send p50 < 1 ms, p99 < 5 ms, ratio <= 1.5)"
status=0
for rate in $RATES; do
	sp50=$(median_of send "$rate" p50_ms) sp99=$(median_of send "$rate" p99_ms)
	np50=$(median_of notify "$rate" p50_ms) np99=$(median_of notify "$rate" p99_ms)
	[ "$sp50" != nan ] && [ "$np50" != nan ] || status=1
	sr=$(median_of send "$rate" send_rate) nr=$(median_of notify "$rate" send_rate)
	echo "rate=$rate send_p50_ms=$sp50 send_p99_ms=$sp99 notify_p50_ms=$np50" \
		"notify_p99_ms=$np99 ratio_p50=$(ratio "$sp50" "$np50") ratio_p99=$(ratio "$sp99" "$np99")" \
		"send_rate=$sr notify_rate=$nr"
	for m in send notify; do
		achieved=$sr
		[ $m = send ] || achieved=$nr
		if awk -v a="$achieved" -v r="$rate" 'BEGIN { exit !(a == a + 0 && a < 0.95 * r) }'; then
			echo "!! $m did not sustain $rate msg/s (median $achieved msg/s sent): latency at saturation"
		fi
	done
done
if [ "$LOSSY" != 0 ]; then
	echo "!! $LOSSY counted run(s) lost, repeated or reordered messages (see above): their latency is not a figure"
	status=1
fi
echo "# last line: medians at $rate msg/s"
echo "send_p50_ms=$sp50 send_p99_ms=$sp99 notify_p50_ms=$np50 notify_p99_ms=$np99"
exit $status
