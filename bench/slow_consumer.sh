#!/usr/bin/env bash
# slow_consumer.sh: what subscribers that stop reading cost the others
# (`make bench-slow-consumer`; docs/PERFORMANCE.md).
#
# One sidecar (--send-queue-kb BENCH_SEND_QUEUE_KB, 512: the default 16 MB would take a
# stalled reader minutes to fill at this rate; --slow-client-close-ms
# BENCH_SLOW_CLIENT_CLOSE_MS, 3 s instead of 5 s, so that the close falls inside a run once
# the kernel's socket buffers and the queue are full; --slow-client-grace-ms its default
# 30 s: PROTOCOL.md 3.10, docs/OPERATIONS.md) and build/bench/load_client runs of BENCH_SUBS
# subscribers on one channel at BENCH_RATE msg/s of BENCH_PAD-byte payloads for
# BENCH_SECONDS (25: a stalled socket's kernel send buffer, up to 4 MB on loopback, takes
# about 13 s to fill at 2,000 msg/s, then the queue and the close delay), alternating
# "without" (no stalled reader) and "with" (BENCH_STALLED more
# subscribers that join and then never read until the end, when each is read out: told of
# its loss (a system notice, slow_client)? closed by the server with a close frame?),
# BENCH_REPS runs of each, the order swapped every round. The others must get every
# message, in order, each run (else "!!" and exit 1); the stalled ones must be told and
# closed. Prints every run, the sidecar's RSS after it, and last:
#   p99_without_ms=.. p99_with_ms=.. p99_ratio=.. p50_ratio=.. stalled_told=K/K stalled_closed=K/K
#
# Environment: BENCH_SUBS (100), BENCH_RATE (2000), BENCH_SECONDS (25), BENCH_STALLED (5),
# BENCH_REPS (4), BENCH_PAD (64), BENCH_SEND_QUEUE_KB (512), BENCH_SLOW_CLIENT_CLOSE_MS
# (3000), BENCH_PAUSE (2 s), BENCH_FANOUT (another realtime-fanout binary), BENCH_JWT_SECRET. Logs: build/bench/logs/slow-consumer-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

SUBS=${BENCH_SUBS:-100}
RATE=${BENCH_RATE:-2000}
SECS=${BENCH_SECONDS:-25}
STALLED=${BENCH_STALLED:-5}
REPS=${BENCH_REPS:-4}
PAD=${BENCH_PAD:-64}
QUEUE_KB=${BENCH_SEND_QUEUE_KB:-512}
CLOSE_MS=${BENCH_SLOW_CLIENT_CLOSE_MS:-3000}
PAUSE=${BENCH_PAUSE:-2}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
FANOUT=${BENCH_FANOUT:-build/realtime-fanout}
DB='host=127.0.0.1 port=1 dbname=none connect_timeout=1'
LOGDIR=build/bench/logs/slow-consumer-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
mkdir -p "$LOGDIR"

echo "== build"
make -s build/bench/load_client build/realtime-fanout >"$LOGDIR/make.log" 2>&1 || {
	tail -20 "$LOGDIR/make.log" >&2
	exit 1
}
bench_start_fanout "$FANOUT" "$SECRET" "$LOGDIR/sidecar.log" --db "$DB" \
	--send-queue-kb "$QUEUE_KB" --slow-client-close-ms "$CLOSE_MS" || exit 1
echo "commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src bench 2>/dev/null || echo '+uncommitted')" \
	"$(date -u +%Y-%m-%dT%H:%MZ) sidecar port $BENCH_SIDECAR_PORT: $SUBS subscribers, $RATE msg/s" \
	"for $SECS s, pad $PAD, $STALLED stalled, $REPS runs each, send queue $QUEUE_KB KB, slow-client close $CLOSE_MS ms" | tee -a "$RESULTS"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

failed=0
# One run, mode $1 ("without" or "with"), repetition $2.
run() {
	local mode=$1 rep=$2 stalled=0 out line
	[ "$mode" = with ] && stalled=$STALLED
	out=$(timeout $((SECS + 60)) build/bench/load_client --port "$BENCH_SIDECAR_PORT" \
		--secret "$SECRET" --subs "$SUBS" --rate "$RATE" --seconds "$SECS" --pad "$PAD" \
		--stalled "$stalled" 2>>"$LOGDIR/client.log")
	line=$(echo "$out" | grep '^result ' | sed 's/^result //')
	[ -n "$line" ] || line="failed=1"
	echo "$mode rep=$rep $line sidecar_rss_kb=$(rss_kb "$BENCH_SIDECAR_PID")" | tee -a "$RESULTS"
	if ! bench_run_clean "$line" lost gaps out_of_order bad closed; then
		echo "!! $mode rep=$rep: not every message reached every reading subscriber once and in order" |
			tee -a "$RESULTS"
		failed=1
	fi
	# a stalled subscriber that lost nothing (its kernel buffers held it all) need not be told
	local got pub
	got=$(bench_field stalled_delivered "$line") pub=$(bench_field published "$line")
	if [ "$mode" = with ] && ((${got:-0} < STALLED * ${pub:-1})) &&
		{ [ "$(bench_field stalled_told "$line")" != "$STALLED" ] ||
			[ "$(bench_field stalled_closed "$line")" != "$STALLED" ]; }; then
		echo "!! with rep=$rep: of $STALLED stalled subscribers $(bench_field stalled_told "$line") were told" \
			"and $(bench_field stalled_closed "$line") closed" | tee -a "$RESULTS"
		failed=1
	fi
}

for rep in $(seq "$REPS"); do
	for mode in $(bench_order "$rep" without with); do
		run "$mode" "$rep"
		sleep "$PAUSE"
	done
done

med() { bench_median_of "$RESULTS" "$1 rep=" "$2"; }
p99_without=$(med without p99_ms) p99_with=$(med with p99_ms)
p50_without=$(med without p50_ms) p50_with=$(med with p50_ms)
told=$(bench_values "$RESULTS" "with rep=" stalled_told | awk '{ s += $1 } END { print s + 0 }')
closed=$(bench_values "$RESULTS" "with rep=" stalled_closed | awk '{ s += $1 } END { print s + 0 }')
# the kernel updates VmHWM lazily: the largest of it and of the samples after each run
hwm=$({
	awk '/^VmHWM:/ { print $2 }' "/proc/$BENCH_SIDECAR_PID/status"
	bench_values "$RESULTS" "with rep=" sidecar_rss_kb
	bench_values "$RESULTS" "without rep=" sidecar_rss_kb
} | sort -n | tail -n 1)
awk -v a="$p99_without" -v b="$p99_with" -v c="$p50_without" -v d="$p50_with" \
	-v t="$told" -v k="$closed" -v n="$((STALLED * REPS))" -v h="$hwm" \
	-v r="$(med with sidecar_rss_kb)" -v r0="$(med without sidecar_rss_kb)" 'BEGIN {
	printf "p99_without_ms=%s p99_with_ms=%s p99_ratio=%.2f p50_ratio=%.2f stalled_told=%d/%d stalled_closed=%d/%d sidecar_rss_without_kb=%s sidecar_rss_with_kb=%s sidecar_peak_rss_kb=%s\n",
		a, b, b / a, d / c, t, n, k, n, r0, r, h
}' | tee -a "$RESULTS"
echo "results: $RESULTS"
exit "$failed"
