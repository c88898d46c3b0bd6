#!/usr/bin/env bash
# connections.sh: connection scale (`make bench-connections`; docs/PERFORMANCE.md).
#
# For each size of BENCH_SIZES, a fresh sidecar (no database: public channels) and one
# build/bench/connections_client process (client and sidecar are separate processes, each
# with its own open-files limit, raised to the hard one), then the same client against
# bench/baseline_server (a bare libwebsockets server, BENCH_BASELINE_CYCLES cycles, 3) at
# the largest size: BENCH_CYCLES cycles of
#   connect  N sockets as realtime-js holds them (vsn 2.0.0, one channel joined, a
#            heartbeat every 25 s; the first cycle stays 26 s so that every socket sends
#            one and has its reply), the time until all are joined
#   RSS      the sidecar's VmRSS joined, less its idle figure, per connection
#   fan-out  one broadcast from one more socket (kind 3, self:false): the time until all N
#            have it
#   close    all sockets; the sidecar's RSS once /metrics says none is left
# A join, heartbeat reply or broadcast that does not arrive fails the run (a "!!" line,
# exit 1), and so does memory that climbs over the cycles (a leak: the last cycle's
# closed RSS more than 10 % + 1 MiB over the first's).
# Prints every cycle, then per server and size the medians:
#   server=sidecar connections=.. per_conn_b=.. connects_per_s=.. fanout_ms=.. closed_vs_idle=..
# and last the slope between the sizes, extrapolated to 100,000 connections, and the ratios
# per_conn_vs_baseline, fanout_vs_baseline at the largest size.
#
# Environment: BENCH_SIZES ("2000 N" with N the hard open-files limit less 1,000, at most
# 18,000), BENCH_CYCLES (10), BENCH_HOLD_MS (1000), BENCH_SHARDS (the sidecar's default),
# BENCH_FANOUT (another realtime-fanout binary), BENCH_JWT_SECRET.
# Logs: build/bench/logs/connections-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

hard=$(ulimit -Hn)
[[ "$hard" == unlimited ]] && hard=1048576
big=$((hard - 1000 < 18000 ? hard - 1000 : 18000))
SIZES=${BENCH_SIZES:-"2000 $big"}
CYCLES=${BENCH_CYCLES:-10}
BASELINE_CYCLES=${BENCH_BASELINE_CYCLES:-3}
HOLD_MS=${BENCH_HOLD_MS:-1000}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
FANOUT=${BENCH_FANOUT:-build/realtime-fanout}
LOGDIR=build/bench/logs/connections-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
mkdir -p "$LOGDIR"

echo "== build"
make -s build/bench/connections_client build/bench/load_client build/bench/baseline_server \
	build/realtime-fanout \
	>"$LOGDIR/make.log" 2>&1 || {
	tail -20 "$LOGDIR/make.log" >&2
	exit 1
}
echo "commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src bench 2>/dev/null || echo '+uncommitted')" \
	"$(date -u +%Y-%m-%d) open-files hard limit $hard sizes: $SIZES cycles: $CYCLES" | tee -a "$RESULTS"

failed=0
# One size against one server: $1 "sidecar" or "baseline", $2 sockets, $3 cycles. Prints
# and appends to results.txt the line "server=.. connections=.. per_conn_b=.. ...".
run_size() {
	local server=$1 n=$2 cycles=$3 log pid port out rc
	log=$LOGDIR/$server-$n.log
	if [ "$server" = sidecar ]; then
		shards=()
		[ -z "${BENCH_SHARDS:-}" ] || shards=(--shards "$BENCH_SHARDS")
		bench_start_fanout "$FANOUT" "$SECRET" "$log" "${shards[@]}" || return 1
		pid=$BENCH_SIDECAR_PID port=$BENCH_SIDECAR_PORT
		grep -m1 'open files:' "$log" | sed 's/^/sidecar: /' | tee -a "$RESULTS"
	else
		port=$(bench_free_port)
		(ulimit -n "$hard" && exec build/bench/baseline_server --port "$port") >"$log" 2>&1 &
		pid=$!
		BENCH_PIDS+=("$pid")
		bench_wait_port "$port" 20 "$pid" || return 1
	fi
	sleep 1 # start-up settled
	out=$LOGDIR/client-$server-$n.txt
	build/bench/connections_client --port "$port" --secret "$SECRET" --sidecar-pid "$pid" \
		--connections "$n" --cycles "$cycles" --hold-ms "$HOLD_MS" \
		--baseline "$([ "$server" = baseline ] && echo 1 || echo 0)" | tee "$out"
	rc=${PIPESTATUS[0]}
	bench_stop "$pid"
	if [ "$rc" != 0 ]; then
		echo "!! connections_client exited with $rc ($server, $n connections)" | tee -a "$RESULTS"
		return 1
	fi
	local idle first last per rate fan joined
	idle=$(bench_field rss_idle_kb "$(grep '^rss_idle_kb=' "$out")")
	first=$(bench_values "$out" "cycle=1 " rss_closed_kb)
	last=$(bench_values "$out" "cycle=$cycles " rss_closed_kb)
	per=$(bench_median_of "$out" cycle= per_conn_b)
	rate=$(bench_median_of "$out" cycle= connects_per_s)
	fan=$(bench_median_of "$out" cycle= fanout_ms)
	joined=$(bench_median_of "$out" cycle= rss_joined_kb)
	echo "server=$server connections=$n per_conn_b=$per connects_per_s=$rate fanout_ms=$fan" \
		"rss_idle_kb=$idle rss_joined_kb=$joined rss_closed_first_kb=$first" \
		"rss_closed_last_kb=$last" \
		"closed_vs_idle=$(awk -v c="$last" -v i="$idle" 'BEGIN { printf "%.2f", c / i }')" \
		"closed_growth=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.2f", b / a }')" |
		tee -a "$RESULTS"
	if [ "$server" = sidecar ] &&
		awk -v a="$first" -v b="$last" 'BEGIN { exit !(b > a * 1.1 + 1024) }'; then
		echo "!! the sidecar's RSS after close climbed from $first KiB to $last KiB over $cycles cycles" |
			tee -a "$RESULTS"
		return 1
	fi
}

for n in $SIZES; do
	echo "== sidecar, $n connections"
	run_size sidecar "$n" "$CYCLES" || failed=1
done
read -r -a sizes <<<"$SIZES"
hi=${sizes[${#sizes[@]} - 1]}
echo "== baseline (bench/baseline_server: bare libwebsockets), $hi connections"
run_size baseline "$hi" "$BASELINE_CYCLES" || failed=1

# the slope between the smallest and the largest size, 100,000 connections by it, and the
# ratios against the baseline at the largest size
if ((${#sizes[@]} >= 2)) && ((!failed)); then
	lo=${sizes[0]}
	line_lo=$(grep "^server=sidecar connections=$lo " "$RESULTS")
	line_hi=$(grep "^server=sidecar connections=$hi " "$RESULTS")
	line_base=$(grep "^server=baseline connections=$hi " "$RESULTS")
	awk -v lo="$lo" -v hi="$hi" -v jlo="$(bench_field rss_joined_kb "$line_lo")" \
		-v jhi="$(bench_field rss_joined_kb "$line_hi")" -v i="$(bench_field rss_idle_kb "$line_lo")" \
		-v per="$(bench_field per_conn_b "$line_hi")" -v bper="$(bench_field per_conn_b "$line_base")" \
		-v fan="$(bench_field fanout_ms "$line_hi")" -v bfan="$(bench_field fanout_ms "$line_base")" \
		'BEGIN {
		slope = 1024 * (jhi - jlo) / (hi - lo)
		printf "slope_b_per_conn=%.0f rss_at_100000_mb=%.0f per_conn_vs_baseline=%.2f fanout_vs_baseline=%.2f\n",
			slope, (i * 1024 + slope * 100000) / 1048576, per / bper, fan / bfan
	}' | tee -a "$RESULTS"
fi
echo "results: $RESULTS"
exit "$failed"
