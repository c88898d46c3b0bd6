#!/usr/bin/env bash
# private.sh: private channels (RLS on realtime.messages) and presence on the real
# cluster and sidecar (`make bench-private`; docs/PERFORMANCE.md).
#
# make install (unless BENCH_INSTALL=0), then a throwaway cluster (scripts/cluster.sh,
# realtime preloaded) with auth.uid() from the extension realtime_auth (reading
# request.jwt.claim.sub or request.jwt.claims ->> 'sub') and two
# policies on realtime.messages, each user's own room "user:<uid>":
#   FOR SELECT TO authenticated USING (realtime.topic() = 'user:' || auth.uid()::text)
#   FOR INSERT TO authenticated WITH CHECK (realtime.topic() = 'user:' || auth.uid()::text)
# and the sidecar attached to it with --log-level debug (the authorizer logs one line per
# round trip; nothing per message) and the presence limits raised out of the way. One token
# per user (`realtime-fanout token --role authenticated --sub <uuid>`).
#
# Then BENCH_REPS rounds of build/bench/private_client runs (fresh sockets each), the order
# alternating every round:
#   join private / join public: BENCH_CLIENTS channels of BENCH_USERS users over sockets of
#     BENCH_PER_SOCKET channels, each joining realtime:user:<its user's uuid> (private or
#     public), all joins written at once: joins/s and join-reply p50/p99; then each channel
#     sends one broadcast with ack (private: the first, so it waits for the write check):
#     ack p50/p99. Authorizer round trips counted from the sidecar log.
#   presence / fanout: BENCH_PRESENCE_CLIENTS sockets in one public room; each tracks a
#     small meta (presence) or sends one broadcast with self:true (fanout, the baseline),
#     all at once: time until every client saw all N metas / messages, frames delivered.
# CPU (ms) of the sidecar and of the authorizer's backend (application_name
# realtime_connect) in each phase, from /proc/<pid>/stat.
# Prints every run, medians, ratios and last:
#   private_joins_per_s=.. public_joins_per_s=.. join_ratio=.. ... presence_all_ms=.. fanout_all_ms=..
#
# Environment: BENCH_CLIENTS (1000), BENCH_USERS (100), BENCH_PER_SOCKET (20, at most
# BENCH_USERS: a socket joins each topic once), BENCH_PRESENCE_CLIENTS (500), BENCH_REPS (3),
# BENCH_TIMEOUT (120 s per phase), BENCH_INSTALL (1), BENCH_FANOUT (another realtime-fanout
# binary), BENCH_JWT_SECRET. Everything it starts is stopped on exit.
# Logs: build/bench/logs/private-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

CLIENTS=${BENCH_CLIENTS:-1000}
USERS=${BENCH_USERS:-100}
PER_SOCKET=${BENCH_PER_SOCKET:-20}
PCLIENTS=${BENCH_PRESENCE_CLIENTS:-500}
REPS=${BENCH_REPS:-3}
TIMEOUT=${BENCH_TIMEOUT:-120}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
LOGDIR=build/bench/logs/private-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
SIDELOG=$LOGDIR/sidecar.log
mkdir -p "$LOGDIR"

bench_db_setup "$LOGDIR" "start cluster and sidecar" \
	build/bench/private_client build/bench/load_client build/realtime-fanout || exit 1
bench_psql "
create extension if not exists realtime_auth; -- auth.uid() as on Supabase (sql/realtime_auth--0.1.0.sql)
create policy own_room_read on realtime.messages for select to authenticated
  using (realtime.topic() = 'user:' || auth.uid()::text);
create policy own_room_write on realtime.messages for insert to authenticated
  with check (realtime.topic() = 'user:' || auth.uid()::text);
" >/dev/null || exit 1
# the debug log (authorizer round trips) and the presence limits out of the way
bench_start_db_sidecar "$SECRET" "$SIDELOG" --log-level debug \
	--max-client-presence-events 1000000 --max-presence-events-per-second 100000000 || exit 1
echo "cluster: $BENCH_CONNINFO (dir $BENCH_CLUSTER_DIR); sidecar: port $BENCH_SIDECAR_PORT" \
	"pid $BENCH_SIDECAR_PID" | tee -a "$RESULTS"

TOKENS=$LOGDIR/tokens.txt
bench_user_tokens "$USERS" "$SECRET" "$TOKENS" || exit 1

client=(build/bench/private_client --port "$BENCH_SIDECAR_PORT" --tokens "$TOKENS"
	--users "$USERS" --timeout "$TIMEOUT")
rounds() { grep -c 'round requests=' "$SIDELOG"; }
authreqs() { grep -o 'round requests=[0-9]*' "$SIDELOG" | awk -F= '{ s += $2 } END { print s + 0 }'; }

# A warm-up private join, so that the authorizer's connection exists and can be watched.
"${client[@]}" --mode join --private 1 --clients "$USERS" --per-socket "$PER_SOCKET" \
	>"$LOGDIR/warmup.out" 2>>"$LOGDIR/client.log" || {
	echo "!! warm-up private join failed:"
	cat "$LOGDIR/warmup.out"
	tail -5 "$LOGDIR/client.log"
	exit 1
}
apid=$(bench_psql "select pid from pg_stat_activity where application_name = 'realtime_connect'
	order by backend_start limit 1")
[ -n "$apid" ] || echo "!! no realtime_connect backend found" | tee -a "$RESULTS"
watch=(--watch "sidecar=$BENCH_SIDECAR_PID" --watch "authdb=${apid:-0}")
echo "authorizer backend pid ${apid:-none}; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" \
	"($(nproc) cores)" | tee -a "$RESULTS"

# One run: its result line, with the authorizer rounds and requests it caused.
run() {
	local r0 q0 out rc
	r0=$(rounds) q0=$(authreqs)
	out=$("${client[@]}" "${watch[@]}" "$@" 2>>"$LOGDIR/client.log")
	rc=$?
	sleep 0.5 # the sockets' close and the last log lines
	echo "${out#result } auth_rounds=$(($(rounds) - r0)) auth_requests=$(($(authreqs) - q0)) rc=$rc" |
		tee -a "$RESULTS"
	[ "$rc" = 0 ] || tail -3 "$LOGDIR/client.log"
}

echo "== $REPS rounds: joins of $CLIENTS channels ($USERS users, $PER_SOCKET per socket)," \
	"private and public; presence and fanout with $PCLIENTS clients"
for rep in $(seq "$REPS"); do
	for p in $(bench_order "$rep" 1 0); do
		run --mode join --private "$p" --clients "$CLIENTS" --per-socket "$PER_SOCKET"
	done
	for m in $(bench_order "$rep" presence fanout); do
		run --mode "$m" --clients "$PCLIENTS"
	done
done
if ! kill -0 "$BENCH_SIDECAR_PID" 2>/dev/null; then
	echo "!! the sidecar exited; log tail:" | tee -a "$RESULTS"
	tail -20 "$SIDELOG"
	exit 1
fi
echo "sidecar log: $(grep -c . "$SIDELOG") lines, $(grep -ci warn "$SIDELOG") warnings" |
	tee -a "$RESULTS"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"

# Median of key $2 over the result lines matching the regex $1.
median_of() {
	grep -E "^$1 " "$RESULTS" | while read -r l; do
		bench_field "$2" "$l"
	done | bench_median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
failed=$(grep -E '^mode=' "$RESULTS" | grep -vc ' rc=0$')

echo "== medians of $REPS runs (logs: $LOGDIR)"
for p in 1 0; do
	k="mode=join private=$p"
	echo "join private=$p: joins_per_s=$(median_of "$k" joins_per_s)" \
		"join_p50_ms=$(median_of "$k" join_p50_ms) join_p99_ms=$(median_of "$k" join_p99_ms)" \
		"ack_p50_ms=$(median_of "$k" ack_p50_ms) ack_p99_ms=$(median_of "$k" ack_p99_ms)" \
		"auth_rounds=$(median_of "$k" auth_rounds) auth_requests=$(median_of "$k" auth_requests)" \
		"join_sidecar_cpu_ms=$(median_of "$k" join_sidecar_cpu_ms)" \
		"join_authdb_cpu_ms=$(median_of "$k" join_authdb_cpu_ms)" \
		"join_client_cpu_ms=$(median_of "$k" join_client_cpu_ms)" \
		"ack_sidecar_cpu_ms=$(median_of "$k" ack_sidecar_cpu_ms)" \
		"ack_authdb_cpu_ms=$(median_of "$k" ack_authdb_cpu_ms)"
done
for m in presence fanout; do
	k="mode=$m"
	echo "$m: all_ms=$(median_of "$k" all_ms) client_p50_ms=$(median_of "$k" client_p50_ms)" \
		"client_p99_ms=$(median_of "$k" client_p99_ms) frames=$(median_of "$k" frames)" \
		"seen_per_s=$(median_of "$k" seen_per_s) sidecar_cpu_ms=$(median_of "$k" run_sidecar_cpu_ms)" \
		"client_cpu_ms=$(median_of "$k" run_client_cpu_ms)"
done
pj=$(median_of "mode=join private=1" joins_per_s) uj=$(median_of "mode=join private=0" joins_per_s)
pj99=$(median_of "mode=join private=1" join_p99_ms) uj99=$(median_of "mode=join private=0" join_p99_ms)
pa50=$(median_of "mode=join private=1" ack_p50_ms) ua50=$(median_of "mode=join private=0" ack_p50_ms)
pa99=$(median_of "mode=join private=1" ack_p99_ms) ua99=$(median_of "mode=join private=0" ack_p99_ms)
rounds_med=$(median_of "mode=join private=1" auth_rounds)
pres=$(median_of "mode=presence" all_ms) fan=$(median_of "mode=fanout" all_ms)
pframes=$(median_of "mode=presence" frames)
echo "== summary ($CLIENTS joins, $PCLIENTS presence clients; ratios private/public and" \
	"presence/fanout of the medians; failed runs: $failed)"
echo "private_joins_per_s=$pj public_joins_per_s=$uj join_ratio=$(ratio "$pj" "$uj")" \
	"private_join_p99_ms=$pj99 public_join_p99_ms=$uj99 private_ack_p50_ms=$pa50" \
	"public_ack_p50_ms=$ua50 private_ack_p99_ms=$pa99 public_ack_p99_ms=$ua99" \
	"ack_p99_ratio=$(ratio "$pa99" "$ua99") auth_rounds_per_run=$rounds_med" \
	"presence_all_ms=$pres fanout_all_ms=$fan presence_ratio=$(ratio "$pres" "$fan")" \
	"presence_frames=$pframes failed_runs=$failed"
[ "$failed" = 0 ]
