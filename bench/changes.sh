#!/usr/bin/env bash
# changes.sh: Postgres Changes delivery rate and commit-to-client latency, with and
# without row level security (`make bench-changes`; docs/PERFORMANCE.md).
#
# make install (unless BENCH_INSTALL=0), then a throwaway cluster (scripts/cluster.sh,
# realtime preloaded) with publication supabase_realtime over two tables:
#   bench_rls    RLS enabled, policy "for select to authenticated using (user_id = auth.uid())"
#   bench_norls  no RLS
# (both: id bigserial primary key, user_id uuid, run, seq, sent_us int8, body text;
# SELECT granted to authenticated), auth.uid() from the extension realtime_auth (reading
# request.jwt.claim.sub or request.jwt.claims ->> 'sub'), and the sidecar attached to the cluster (--db,
# --ring-path). One token per user (`realtime-fanout token --role authenticated --sub
# <uuid>`). build/bench/changes_client then connects BENCH_USERS x BENCH_CLIENTS_PER_USER
# WebSocket clients (all clients of a user use its token), each joining two channels:
# postgres_changes INSERT on bench_rls and on bench_norls (no filter: RLS decides; with
# BENCH_FILTER=1 also filter user_id=eq.<uuid>), waits for every "Subscribed to
# PostgreSQL", and runs the plan: BENCH_REPS rounds, each every RLS rate and every no-RLS
# rate (the order reversed every other round), inserting rows for BENCH_SECONDS at each.
# Every row must reach exactly its user's clients (RLS table, or any table with a filter)
# or every client (no-RLS table): lost, dup and foreign count the exceptions.
#
# Prints every run, the medians per table and rate, and the headline: per table the
# highest median deliveries/s among the rates whose median p99 stays under
# BENCH_P99_LIMIT_MS (1000) with nothing lost, duplicated or misdelivered in any of its
# BENCH_REPS runs (a rate skipped in some round does not count).
# Last line:
#   rls_deliveries_per_s=N rls_p99_ms=X norls_deliveries_per_s=M
#
# Within a round, rates above one that failed (late, lost, duplicated, misdelivered, or p99
# over the limit) are skipped; after each run the client keeps counting until every expected
# delivery is in and none has arrived for 1 s, or none for 5 s (backlog_s; at most
# BENCH_SETTLE s), so a backlog does not spill into the next run (stale= there if it does).
#
# Environment: BENCH_USERS (100), BENCH_CLIENTS_PER_USER (10), BENCH_RLS_RATES
# ("1000 2000 5000 10000 15000 20000 25000" rows/s; each row is CLIENTS deliveries),
# BENCH_NORLS_RATES ("20 50 100 200 500" rows/s; each row is USERS x CLIENTS deliveries),
# BENCH_SECONDS (10), BENCH_REPS (3), BENCH_DRAIN (10 s), BENCH_SETTLE (120 s),
# BENCH_TICK_MS (10: one multi-row INSERT per tick), BENCH_MAX_INFLIGHT (8),
# BENCH_FILTER (0), BENCH_THREADS (1 receiver thread), BENCH_P99_LIMIT_MS (1000),
# BENCH_INSTALL (1), BENCH_FANOUT (another realtime-fanout binary), BENCH_JWT_SECRET.
# Everything it starts is stopped on exit. Logs: build/bench/logs/changes-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

USERS=${BENCH_USERS:-100}
PER_USER=${BENCH_CLIENTS_PER_USER:-10}
RLS_RATES=${BENCH_RLS_RATES:-1000 2000 5000 10000 15000 20000 25000}
NORLS_RATES=${BENCH_NORLS_RATES:-20 50 100 200 500}
SECS=${BENCH_SECONDS:-10}
REPS=${BENCH_REPS:-3}
DRAIN=${BENCH_DRAIN:-10}
TICK_MS=${BENCH_TICK_MS:-10}
MAX_INFLIGHT=${BENCH_MAX_INFLIGHT:-8}
FILTER=${BENCH_FILTER:-0}
THREADS=${BENCH_THREADS:-1}
P99_LIMIT=${BENCH_P99_LIMIT_MS:-1000}
SETTLE=${BENCH_SETTLE:-120}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
LOGDIR=build/bench/logs/changes-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
mkdir -p "$LOGDIR"

bench_db_setup "$LOGDIR" "start cluster and sidecar" \
	build/bench/changes_client build/bench/load_client build/realtime-fanout || exit 1
bench_psql "
create extension if not exists realtime_auth; -- auth.uid() as on Supabase (sql/realtime_auth--0.1.0.sql)
create table public.bench_rls (id bigserial primary key, user_id uuid not null, run int8 not null,
  seq int8 not null, sent_us int8 not null, body text);
create table public.bench_norls (like public.bench_rls including defaults);
alter table public.bench_norls add primary key (id);
alter table public.bench_rls enable row level security;
create policy own_rows on public.bench_rls for select to authenticated using (user_id = auth.uid());
grant select on public.bench_rls, public.bench_norls to authenticated;
create publication supabase_realtime for table public.bench_rls, public.bench_norls;
" >/dev/null || exit 1
bench_start_db_sidecar "$SECRET" "$LOGDIR/sidecar.log" || exit 1
echo "cluster: $BENCH_CONNINFO (dir $BENCH_CLUSTER_DIR); sidecar: port $BENCH_SIDECAR_PORT" |
	tee -a "$RESULTS"
echo "settings: $(bench_psql "select string_agg(name || '=' || setting, ' ' order by name)
	from pg_settings where name in ('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections')")" |
	tee -a "$RESULTS"

# One token per user; user u's uuid is the one changes_client derives (UserUuid).
TOKENS=$LOGDIR/tokens.txt
bench_user_tokens "$USERS" "$SECRET" "$TOKENS" || exit 1

# The plan: REPS rounds, each every RLS rate and every no-RLS rate, rates ascending;
# odd rounds start with the RLS table, even rounds with the other.
plan=''
for rep in $(seq "$REPS"); do
	rls='' norls=''
	for r in $RLS_RATES; do rls="$rls rls:$r"; done
	for r in $NORLS_RATES; do norls="$norls norls:$r"; done
	if [ $((rep % 2)) = 1 ]; then plan="$plan |$rls$norls"; else plan="$plan |$norls$rls"; fi
done

dpid=$(bench_decoder_pid)
[ -n "$dpid" ] || echo "!! no 'realtime decoder' process found" | tee -a "$RESULTS"
watch=(--watch "sidecar=$BENCH_SIDECAR_PID" --watch "decoder=${dpid:-0}")
# (changes_client adds the sidecar's RLS connection, application_name realtime_rls, itself)
echo "== $((USERS * PER_USER)) clients ($USERS users x $PER_USER), filter=$FILTER," \
	"$SECS s per run, $REPS rounds: rls rows/s {$RLS_RATES}, norls rows/s {$NORLS_RATES}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" | tee -a "$RESULTS"
# in the background, so that a signal reaches the trap at once (bench_cleanup stops it);
# its output file exists before tail looks for it
: >"$LOGDIR/client.out"
build/bench/changes_client --port "$BENCH_SIDECAR_PORT" --db "$BENCH_CONNINFO" --tokens "$TOKENS" \
	--users "$USERS" --clients-per-user "$PER_USER" --filter "$FILTER" --seconds "$SECS" \
	--drain "$DRAIN" --tick-ms "$TICK_MS" --max-inflight "$MAX_INFLIGHT" --threads "$THREADS" \
	--p99-limit-ms "$P99_LIMIT" --settle "$SETTLE" \
	--plan "$plan" "${watch[@]}" >"$LOGDIR/client.out" 2>>"$LOGDIR/client.log" &
client_pid=$!
BENCH_PIDS+=("$client_pid")
tail -n +1 -f --pid="$client_pid" "$LOGDIR/client.out" | sed -u 's/^result //' | tee -a "$RESULTS" &
tail_pid=$!
BENCH_PIDS+=("$tail_pid")
wait "$client_pid"
rc=$?
wait "$tail_pid"
[ "$rc" = 0 ] || {
	echo "!! changes_client exited with status $rc; its log:"
	tail -20 "$LOGDIR/client.log"
}
if ! kill -0 "$BENCH_SIDECAR_PID" 2>/dev/null; then
	echo "!! the sidecar exited; log tail:" | tee -a "$RESULTS"
	tail -20 "$LOGDIR/sidecar.log"
	exit 1
fi
echo "sidecar log: $(grep -c . "$LOGDIR/sidecar.log") lines, $(grep -ci warn "$LOGDIR/sidecar.log") warnings" |
	tee -a "$RESULTS"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"

# Median of key $3 over the runs of table $1 at rate $2.
median_of() {
	grep "^table=$1 rate=$2 " "$RESULTS" | while read -r l; do
		bench_field "$3" "$l"
	done | bench_median
}
# Sum of key $3 over the runs of table $1 at rate $2.
sum_of() {
	grep "^table=$1 rate=$2 " "$RESULTS" | while read -r l; do
		bench_field "$3" "$l"
	done | awk '{ s += $1 } END { print s + 0 }'
}

echo "== medians of $REPS runs (logs: $LOGDIR)"
best_rls=0 best_rls_p99=nan best_norls=0 best_norls_p99=nan
for table in rls norls; do
	rates=$RLS_RATES
	[ $table = rls ] || rates=$NORLS_RATES
	for rate in $rates; do
		n=$(grep -c "^table=$table rate=$rate " "$RESULTS")
		if [ "$n" = 0 ]; then
			echo "$table rate=$rate rows/s: skipped in every round"
			continue
		fi
		dps=$(median_of $table "$rate" deliveries_per_s) p99=$(median_of $table "$rate" p99_ms)
		lost=$(sum_of $table "$rate" lost) late=$(sum_of $table "$rate" late)
		dup=$(sum_of $table "$rate" dup) foreign=$(sum_of $table "$rate" foreign)
		bad=$((lost + late + dup + foreign)) wrong=$((dup + foreign))
		printf '%-5s rate=%s rows/s deliveries_per_s=%s p50_ms=%s p99_ms=%s max_ms=%s send_rate=%s send_lag_max_ms=%s late=%s lost=%s dup=%s foreign=%s sidecar_cpu_pct=%s decoder_cpu_pct=%s rls_backend_cpu_pct=%s client_cpu_pct=%s runs=%s/%s\n' \
			$table "$rate" "$dps" "$(median_of $table "$rate" p50_ms)" "$p99" \
			"$(median_of $table "$rate" max_ms)" "$(median_of $table "$rate" send_rate)" \
			"$(median_of $table "$rate" send_lag_max_ms)" "$late" "$lost" "$dup" "$foreign" \
			"$(median_of $table "$rate" sidecar_cpu_pct)" "$(median_of $table "$rate" decoder_cpu_pct)" \
			"$(median_of $table "$rate" rls_backend_cpu_pct)" "$(median_of $table "$rate" client_cpu_pct)" "$n" "$REPS"
		under=0
		awk -v p="$p99" -v l="$P99_LIMIT" 'BEGIN { exit !(p == p + 0 && p < l) }' && under=1
		# a repeat or a row shown to the wrong user is never load; a loss is, only past the limit
		if [ "$wrong" != 0 ]; then
			echo "!! $table rate=$rate: $wrong deliveries repeated or to a client that must not see them"
			rc=1
		fi
		if [ "$lost" != 0 ] && [ "$under" = 1 ]; then
			echo "!! $table rate=$rate: $lost deliveries lost below saturation (p99 under $P99_LIMIT ms)"
			rc=1
		elif [ "$lost" != 0 ]; then
			echo "$table rate=$rate: saturated (p99 over $P99_LIMIT ms), $lost deliveries lost"
		fi
		if [ "$bad" = 0 ] && [ "$n" = "$REPS" ] && [ "$under" = 1 ]; then
			if [ $table = rls ] && awk -v a="$dps" -v b="$best_rls" 'BEGIN { exit !(a > b) }'; then
				best_rls=$dps best_rls_p99=$p99
			fi
			if [ $table = norls ] && awk -v a="$dps" -v b="$best_norls" 'BEGIN { exit !(a > b) }'; then
				best_norls=$dps best_norls_p99=$p99
			fi
		fi
	done
done
echo "== headline: per table, the highest median deliveries/s among the rates whose median p99 is" \
	"under $P99_LIMIT ms with nothing late, lost, duplicated or misdelivered in all $REPS runs" \
	"(filter=$FILTER; norls p99 at that rate: $best_norls_p99 ms; target >= 100000 RLS-checked deliveries/s)"
echo "rls_deliveries_per_s=$best_rls rls_p99_ms=$best_rls_p99 norls_deliveries_per_s=$best_norls"
exit "$rc"
