#!/usr/bin/env bash
# broadcast.sh: public-broadcast fan-out benchmark, realtime-fanout against the
# baseline libwebsockets server (`make bench-broadcast`; docs/PERFORMANCE.md).
#
# Builds both servers and the load client, starts the baseline server and the
# sidecar on free loopback ports (the sidecar with an unreachable database: a
# public broadcast needs none), then runs the same load against each, BENCH_REPS
# times, alternating which goes first. One run: S subscribers and one publisher
# on realtime:bench, R msg/s for T s, so S x R deliveries/s are offered.
# Prints every run, the medians, and as its last line
#   deliveries_per_s=N p50_ms=X p99_ms=Y baseline_ratio=R
# for the sidecar (ratio = sidecar median deliveries/s / baseline median).
# A sidecar run that loses, repeats or reorders anything fails the bench ("!!",
# exit 1); so does a baseline run with gaps or reordering. A baseline run that only
# has a backlog left after the drain (gaps 0, in order) is its capacity ("--
# saturated"): then its deliveries/s is that capacity and the ratio a lower bound.
#
# Environment: BENCH_SUBS (100), BENCH_RATE (10000 msg/s), BENCH_SECONDS (10),
# BENCH_REPS (3), BENCH_PAD (64 payload pad bytes), BENCH_CLIENT_THREADS (1
# receiver thread), BENCH_BASELINE_THREADS (cores), BENCH_BASELINE_BATCH (1 =
# one frame per lws_write, the lws-example baseline), BENCH_DRAIN (5 s),
# BENCH_PAUSE (2 s between runs), BENCH_JWT_SECRET, BENCH_SKIP_SIDECAR=1
# (baseline only, for checking the client), BENCH_FANOUT=PATH (measure that
# realtime-fanout binary instead of building build/realtime-fanout, e.g. one
# built from an older commit). Everything it starts is stopped on exit.
# Logs: build/bench/logs/<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

SUBS=${BENCH_SUBS:-100}
RATE=${BENCH_RATE:-10000}
SECS=${BENCH_SECONDS:-10}
REPS=${BENCH_REPS:-3}
PAD=${BENCH_PAD:-64}
CLIENT_THREADS=${BENCH_CLIENT_THREADS:-1}
BASELINE_THREADS=${BENCH_BASELINE_THREADS:-$(nproc)}
BASELINE_BATCH=${BENCH_BASELINE_BATCH:-1}
DRAIN=${BENCH_DRAIN:-5}
PAUSE=${BENCH_PAUSE:-2}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
SKIP_SIDECAR=${BENCH_SKIP_SIDECAR:-0}
FANOUT=${BENCH_FANOUT:-}
DB='host=127.0.0.1 port=1 dbname=none connect_timeout=1'
HZ=$(getconf CLK_TCK)
LOGDIR=build/bench/logs/$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
mkdir -p "$LOGDIR"

echo "== build"
make -s build/bench/load_client build/bench/baseline_server || exit 1
if [ "$SKIP_SIDECAR" != 1 ] && [ -z "$FANOUT" ]; then
	FANOUT=build/realtime-fanout
	if ! make -s build/realtime-fanout >"$LOGDIR/make-fanout.log" 2>&1; then
		echo "broadcast.sh: cannot build build/realtime-fanout:" >&2
		tail -20 "$LOGDIR/make-fanout.log" >&2
		exit 1
	fi
fi

BASELINE_PID='' BASELINE_PORT='' SIDECAR_PID='' SIDECAR_PORT='' SIDECAR_STARTS=0

start_baseline() {
	BASELINE_PORT=$(bench_free_port)
	build/bench/baseline_server --port "$BASELINE_PORT" --threads "$BASELINE_THREADS" \
		--batch "$BASELINE_BATCH" >>"$LOGDIR/baseline.log" 2>&1 &
	BASELINE_PID=$!
	BENCH_PIDS+=("$BASELINE_PID")
	bench_wait_port "$BASELINE_PORT" 10 "$BASELINE_PID" || {
		echo "broadcast.sh: baseline server did not start" >&2
		cat "$LOGDIR/baseline.log" >&2
		exit 1
	}
}

start_sidecar() {
	SIDECAR_STARTS=$((SIDECAR_STARTS + 1))
	echo "--- start $SIDECAR_STARTS" >>"$LOGDIR/sidecar.log"
	bench_start_fanout "$FANOUT" "$SECRET" "$LOGDIR/sidecar.log" --db "$DB" || exit 1
	SIDECAR_PID=$BENCH_SIDECAR_PID SIDECAR_PORT=$BENCH_SIDECAR_PORT
}

# One load run against target $1 ("baseline" or "sidecar"), repetition $2.
run_load() {
	local target=$1 rep=$2 port pid out rc line t0 t1 c0 c1 cpu load
	if [ "$target" = baseline ]; then
		port=$BASELINE_PORT pid=$BASELINE_PID
	else
		port=$SIDECAR_PORT pid=$SIDECAR_PID
	fi
	load=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(date +%s.%N)
	c0=$(bench_proc_ticks "$pid")
	echo "--- $target rep $rep" >>"$LOGDIR/client.log"
	out=$(timeout $((SECS + DRAIN + 120)) build/bench/load_client --port "$port" \
		--secret "$SECRET" --subs "$SUBS" --rate "$RATE" --seconds "$SECS" --pad "$PAD" \
		--threads "$CLIENT_THREADS" --drain "$DRAIN" 2>>"$LOGDIR/client.log")
	rc=$?
	c1=$(bench_proc_ticks "$pid")
	t1=$(date +%s.%N)
	cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v s="$t0" -v e="$t1" \
		'BEGIN { printf "%.0f", 100 * (b - a) / hz / (e - s) }')
	line=$(echo "$out" | grep '^result ' | sed 's/^result //')
	if [ -z "$line" ]; then
		line="failed=1"
	fi
	echo "$target rep=$rep rc=$rc $line server_cpu_pct=$cpu load1=$load" | tee -a "$RESULTS"
	if [ "$target" = baseline ] && ! bench_run_clean "$line" lost &&
		bench_run_clean "$line" gaps out_of_order bad closed; then
		# the bare lws server past its capacity: nothing dropped mid-stream (gaps 0), in order,
		# but a backlog still queued when the client stopped waiting. Its deliveries/s is its
		# capacity, its latency is that queue; the sidecar's runs must still lose nothing.
		echo "-- baseline rep=$rep saturated: $(bench_field lost "$line") of $(bench_field expected "$line")" \
			"still queued in it after the drain (gaps 0, in order)" | tee -a "$RESULTS"
		SATURATED=$((SATURATED + 1))
	elif ! bench_run_clean "$line" lost gaps out_of_order bad closed; then
		echo "!! $target rep=$rep: not every message reached every subscriber once and in order" |
			tee -a "$RESULTS"
		LOSSY=$((LOSSY + 1))
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"
		echo "!! $target (pid $pid) exited with status $? during rep $rep; log tail:" |
			tee -a "$RESULTS"
		if [ "$target" = sidecar ]; then
			tail -20 "$LOGDIR/sidecar.log" | tee -a "$RESULTS"
			start_sidecar
		else
			tail -20 "$LOGDIR/baseline.log"
			start_baseline
		fi
	fi
}

LOSSY=0
SATURATED=0
echo "== start servers"
start_baseline
echo "baseline_server: port $BASELINE_PORT, $BASELINE_THREADS context(s), batch $BASELINE_BATCH"
if [ "$SKIP_SIDECAR" != 1 ]; then
	start_sidecar
	if [ "$FANOUT" = build/realtime-fanout ]; then
		rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
		git diff --quiet HEAD -- src/fanout 2>/dev/null || rev="$rev+uncommitted-src/fanout"
	else
		rev=$FANOUT
	fi
	echo "realtime-fanout: port $SIDECAR_PORT, source $rev (log $LOGDIR/sidecar.log)" |
		tee -a "$RESULTS"
fi

echo "== load: $SUBS subscribers, $RATE msg/s for ${SECS} s ($((SUBS * RATE)) deliveries/s offered), $REPS reps"
for rep in $(seq "$REPS"); do
	if [ "$SKIP_SIDECAR" = 1 ]; then
		order="baseline"
	else
		order=$(bench_order "$rep" baseline sidecar)
	fi
	for target in $order; do
		run_load "$target" "$rep"
		sleep "$PAUSE"
	done
done

# Medians over the runs of one target that produced a result line.
median_of() {
	bench_median_of "$RESULTS" "$1 rep=" "$2"
}

echo "== medians (logs: $LOGDIR)"
targets=baseline
[ "$SKIP_SIDECAR" = 1 ] || targets="baseline sidecar"
for target in $targets; do
	printf '%-9s deliveries_per_s=%s p50_ms=%s p99_ms=%s lost=%s out_of_order=%s server_cpu_pct=%s client_cpu_pct=%s runs_ok=%s/%s\n' \
		"$target" "$(median_of "$target" deliveries_per_s)" "$(median_of "$target" p50_ms)" \
		"$(median_of "$target" p99_ms)" "$(median_of "$target" lost)" \
		"$(median_of "$target" out_of_order)" \
		"$(median_of "$target" server_cpu_pct)" "$(median_of "$target" client_cpu_pct)" \
		"$(grep "^$target rep=" "$RESULTS" | grep -vc 'failed=1')" "$REPS"
done
if [ "$LOSSY" != 0 ]; then
	echo "!! $LOSSY run(s) lost or reordered messages (see above): lower BENCH_RATE or BENCH_SUBS" \
		"below saturation; their figures are not figures"
fi
if [ "$SATURATED" != 0 ]; then
	echo "-- the baseline was saturated in $SATURATED of $REPS runs: its deliveries_per_s is its" \
		"capacity and baseline_ratio a lower bound of the sidecar's lead (the sidecar kept up)"
fi
if [ "$SKIP_SIDECAR" = 1 ]; then
	echo "baseline_only deliveries_per_s=$(median_of baseline deliveries_per_s)" \
		"p50_ms=$(median_of baseline p50_ms) p99_ms=$(median_of baseline p99_ms)"
	[ "$LOSSY" = 0 ]
	exit
fi
if [ "$SIDECAR_STARTS" -gt 1 ]; then
	echo "!! realtime-fanout had to be restarted $((SIDECAR_STARTS - 1)) time(s); see above"
fi
base=$(median_of baseline deliveries_per_s)
side=$(median_of sidecar deliveries_per_s)
ratio=$(awk -v s="$side" -v b="$base" 'BEGIN { if (b > 0 && s == s + 0) printf "%.2f", s / b; else print "nan" }')
printf 'deliveries_per_s=%.0f p50_ms=%s p99_ms=%s baseline_ratio=%s\n' \
	"${side/nan/0}" "$(median_of sidecar p50_ms)" "$(median_of sidecar p99_ms)" "$ratio"
[ "$side" != nan ] && [ "$LOSSY" = 0 ]
