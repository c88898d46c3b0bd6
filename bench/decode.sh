#!/usr/bin/env bash
# decode.sh: logical decoding throughput of the output plugin "realtime" against
# wal2json (format 2, upstream Supabase Realtime's options), pgoutput and
# test_decoding, on the same WAL, through the SQL interface (`make bench-decode`;
# docs/PERFORMANCE.md).
#
# Starts a throwaway cluster (scripts/cluster.sh: wal_level=logical, realtime
# preloaded, its decoder worker running) on a free port, loads bench/decode.sql,
# then for each case: publishes the case's tables in supabase_realtime, seeds them,
# creates one logical slot per plugin, writes BENCH_ROWS row changes (60 % INSERT,
# 30 % UPDATE, 10 % DELETE, in transactions of BENCH_TXN_ROWS), waits until the
# decoder worker has caught up with its own slot, and times
#   SELECT count(*) FROM pg_logical_slot_peek_changes(slot, NULL, NULL, ...)
# (peek_binary_changes for pgoutput) for each plugin, in the server, BENCH_REPS
# times, rotating the order each repetition. rows/s = row changes decoded / median
# seconds; every run must decode exactly the row changes written. Prints every run,
# a table per case, and as its last line, for the first case (default "mix"):
#   plugin_rows_per_s=N wal2json_rows_per_s=M ratio=R
# for the plugin's JSON lines, preceded by the same for its ring format (wal2json from
# scripts/deps.sh; without it the run fails unless BENCH_PLUGINS leaves it out).
#
# Environment: BENCH_ROWS (300000 row changes), BENCH_REPS (5), BENCH_TXN_ROWS
# (100 row changes per transaction), BENCH_SEED_ROWS (10000 rows per table before
# the slots exist), BENCH_CASES ("mix"; the per-type cases of decode.sql, e.g.
# "mix int4 text timestamptz jsonb", tell where the time goes; "types" = all of
# them), BENCH_PLUGINS ("realtime realtime_ring wal2json pgoutput test_decoding floor";
# realtime_ring = the plugin in format "ring", binary records as the decoder worker
# writes them to the ring; floor =
# pgoutput with a publication without tables: decoding every change and printing
# none, the least any plugin can take; its rows/s counts the changes it skipped),
# BENCH_WORK_MEM (work_mem of the timed sessions, e.g. 1GB: the SQL functions gather
# their output in a tuplestore that spills to a temporary file past work_mem),
# BENCH_KEEP=1 (leave the cluster directory for inspection; the server is stopped).
# Measures the realtime.so installed in PostgreSQL's lib directory (make install) as
# the cluster's postmaster loads it at start (later installs do not affect the run).
# Logs: build/bench/logs/decode-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/common.sh
. scripts/common.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROWS=${BENCH_ROWS:-300000}
REPS=${BENCH_REPS:-5}
TXN_ROWS=${BENCH_TXN_ROWS:-100}
SEED_ROWS=${BENCH_SEED_ROWS:-10000}
CASES=${BENCH_CASES:-mix}
PLUGINS=${BENCH_PLUGINS:-realtime realtime_ring wal2json pgoutput test_decoding floor}
KEEP=${BENCH_KEEP:-0}
WORK_MEM=${BENCH_WORK_MEM:-}
ALL_TYPES="int4_1 int4 int4_32 int8 bool text numeric float8 uuid timestamptz jsonb text_array"
CASES=$(for c in $CASES; do [ "$c" = types ] && echo "$ALL_TYPES" || echo "$c"; done | tr '\n' ' ')
LOGDIR=build/bench/logs/decode-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
HZ=$(getconf CLK_TCK)
LIBDIR=$("$PG_CONFIG" --pkglibdir)
mkdir -p "$LOGDIR"
: >"$RESULTS"

for v in ROWS REPS TXN_ROWS SEED_ROWS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer: ${!v}"
done
((TXN_ROWS % 100 == 0 && ROWS % TXN_ROWS == 0)) ||
	die "BENCH_TXN_ROWS must be a multiple of 100 that divides BENCH_ROWS"

# wal2json is the baseline of the headline ratio: scripts/deps.sh installs it; a run asked to
# measure it without it fails rather than print ratio=NA.
have_wal2json=0
if [ -f "$LIBDIR/wal2json.so" ]; then
	have_wal2json=1
fi
plugins=()
for p in $PLUGINS; do
	case $p in
		realtime | realtime_ring | pgoutput | test_decoding | floor) plugins+=("$p") ;;
		wal2json)
			if ((have_wal2json)); then
				plugins+=("$p")
			else
				echo "!! wal2json is not installed ($LIBDIR/wal2json.so is missing): run" \
					"scripts/deps.sh (it installs postgresql-15-wal2json), or leave wal2json out" \
					"of BENCH_PLUGINS" | tee -a "$RESULTS"
				exit 1
			fi
			;;
		*) die "unknown plugin in BENCH_PLUGINS: $p" ;;
	esac
done
((${#plugins[@]} > 0)) || die "no plugin to measure"

TMP=$(mktemp -d /tmp/realtime-bench-decode.XXXXXX)
chmod 711 "$TMP" # the postgres user must reach the cluster directory inside
CLUSTER=$TMP/pg
cleanup() {
	bash scripts/cluster.sh stop "$CLUSTER" >/dev/null 2>&1 || true
	if [ -f "$CLUSTER/log/postgres.log" ]; then
		cp "$CLUSTER/log/postgres.log" "$LOGDIR/postgres.log" 2>/dev/null || true
	fi
	if [ "$KEEP" = 1 ]; then
		echo "cluster directory kept: $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

so=$LIBDIR/realtime.so
[ -f "$so" ] || die "$so is missing: run make install"
so_sum() { md5sum "$so" | cut -c1-12; }
SO_SUM=$(so_sum)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "realtime.so: $so (md5 $SO_SUM, loaded once at cluster start; installed $(date -u -r "$so" '+%Y-%m-%d %H:%M:%S UTC'));" \
	"this tree: $rev$(git diff --quiet HEAD -- src/extension 2>/dev/null || echo '+uncommitted src/extension')" |
	tee -a "$RESULTS"

echo "== cluster"
PORT=$(free_port)
if ! bash scripts/cluster.sh start "$CLUSTER" "$PORT" >"$LOGDIR/cluster.log" 2>&1; then
	cat "$LOGDIR/cluster.log" >&2
	die "cluster start failed"
fi
# The postmaster loaded realtime.so (shared_preload_libraries) and every backend uses
# that copy, even if make install replaces the file later; make sure it is the one
# whose checksum was printed.
[ "$(so_sum)" = "$SO_SUM" ] || die "$so changed while the cluster started (make install elsewhere?); run again"
PSQL=("$(pg_bindir)/psql" -X -q -At -F ' ' -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres)
# Each argument one command (psql -c): a multi-statement string is one transaction,
# in which bench_decode.generate could not COMMIT. Empty arguments are skipped.
sql() {
	local args=() c
	for c in "$@"; do
		[ -n "$c" ] && args+=(-c "$c")
	done
	"${PSQL[@]}" "${args[@]}"
}

# Debian's 15.19+ loads only the output plugins listed in output_plugin_libraries
# (superuser-settable); cluster.sh lists pgoutput, test_decoding, realtime.
SET_LIBS=
if [ "$(sql "SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'")" = 1 ]; then
	SET_LIBS="SET output_plugin_libraries = pgoutput, test_decoding, realtime"
	((have_wal2json)) && SET_LIBS="$SET_LIBS, wal2json"
fi
SET_WORK_MEM=
if [ -n "$WORK_MEM" ]; then
	SET_WORK_MEM="SET work_mem = '$WORK_MEM'"
fi
"${PSQL[@]}" -f bench/decode.sql >"$LOGDIR/setup.log" 2>&1 || {
	cat "$LOGDIR/setup.log" >&2
	die "bench/decode.sql failed"
}
echo "PostgreSQL $(sql 'SHOW server_version') on 127.0.0.1:$PORT ($CLUSTER);" \
	"$(nproc) cores, load1 $(cut -d' ' -f1 /proc/loadavg); timed sessions: work_mem" \
	"$(sql "$SET_WORK_MEM" "SHOW work_mem")" | tee -a "$RESULTS"

# The decoder worker (slot "realtime") decodes the same WAL as it is written. Wait
# until its slot reaches $1 or stops moving for 10 s (it pauses when nobody reads its
# ring), so that it idles while the plugins are timed; say which.
wait_worker() {
	local target=$1 last='' same=0 lsn
	for _ in $(seq 600); do
		lsn=$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'realtime'")
		if [ -z "$lsn" ]; then
			echo "decoder worker: no slot 'realtime'"
			return
		fi
		if [ "$(sql "SELECT '$lsn'::pg_lsn >= '$target'::pg_lsn")" = t ]; then
			echo "decoder worker: caught up (slot realtime at $lsn >= $target)"
			return
		fi
		if [ "$lsn" = "$last" ]; then
			same=$((same + 1))
			if ((same >= 20)); then
				echo "decoder worker: idle at $lsn, short of $target (paused?)"
				return
			fi
		else
			same=0
			last=$lsn
		fi
		sleep 0.5
	done
	echo "decoder worker: still behind after 300 s (slot realtime at $lsn, WAL at $target)"
}

worker_pid() {
	sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'realtime decoder'" | head -1
}

# Rotate the plugin list by $1 places.
rotated() {
	local k=$1 n=${#plugins[@]} i
	for ((i = 0; i < n; i++)); do
		printf '%s\n' "${plugins[$(((i + k) % n))]}"
	done
}

failed=0
first_case=
for case_name in $CASES; do
	[ -n "$first_case" ] || first_case=$case_name
	echo "== case $case_name: $ROWS row changes, $TXN_ROWS per transaction"
	sql "CALL bench_decode.use_case('$case_name')" "CALL bench_decode.seed('$case_name', $SEED_ROWS)" ||
		die "case $case_name: setup failed"
	echo "tables: $(sql "SELECT string_agg(tablename, ', ') FROM pg_publication_tables WHERE pubname = 'supabase_realtime'")"
	for p in "${plugins[@]}"; do
		plugin=$p
		[ "$p" = floor ] && plugin=pgoutput
		[ "$p" = realtime_ring ] && plugin=realtime
		sql "$SET_LIBS" "SELECT 1 FROM pg_create_logical_replication_slot('bench_$p', '$plugin')" >/dev/null ||
			die "cannot create a slot with plugin $p"
	done
	t0=$(date +%s.%N)
	changed=$(sql "SET synchronous_commit = off" "CALL bench_decode.generate('$case_name', $ROWS, $TXN_ROWS)") ||
		die "case $case_name: generate failed"
	t1=$(date +%s.%N)
	end_lsn=$(sql "SELECT pg_current_wal_flush_lsn()")
	wal_mb=$(sql "SELECT round(pg_wal_lsn_diff('$end_lsn', min(restart_lsn)) / 1048576.0, 1) FROM pg_replication_slots WHERE slot_name LIKE 'bench\_%'")
	echo "generated: $changed row changes in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s," \
		"$wal_mb MB of WAL from the slots' restart point" | tee -a "$RESULTS"
	if [ "$changed" != "$ROWS" ]; then
		echo "!! the generator changed $changed rows, not $ROWS" | tee -a "$RESULTS"
		failed=1
	fi
	wait_worker "$end_lsn" | tee -a "$RESULTS"
	wpid=$(worker_pid)
	w0=0
	[ -n "$wpid" ] && w0=$(bench_proc_ticks "$wpid")

	for rep in $(seq "$REPS"); do
		for p in $(rotated $((rep - 1))); do
			load=$(cut -d' ' -f1 /proc/loadavg)
			out=$(sql "$SET_LIBS" "$SET_WORK_MEM" "SELECT rows, lines, bytes, seconds, coalesce(cpu_seconds::text, 'nan') FROM bench_decode.time_peek('$p', 'bench_$p')" 2>>"$LOGDIR/errors.log")
			if [ -z "$out" ]; then
				echo "case=$case_name plugin=$p rep=$rep failed=1 (see $LOGDIR/errors.log)" | tee -a "$RESULTS"
				tail -3 "$LOGDIR/errors.log"
				failed=1
				continue
			fi
			read -r rows lines bytes secs cpu <<<"$out"
			floor_lines=0
			if [ "$p" = floor ]; then
				# it prints nothing; its rows are the changes it decoded and dropped
				floor_lines=$lines
				rows=$changed
			fi
			rps=$(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
			echo "case=$case_name plugin=$p rep=$rep rows=$rows lines=$lines bytes=$bytes seconds=$secs cpu_seconds=$cpu rows_per_s=$rps load1=$load" |
				tee -a "$RESULTS"
			if [ "$floor_lines" != 0 ]; then
				echo "!! floor printed $floor_lines lines, expected none" | tee -a "$RESULTS"
				failed=1
			elif [ "$rows" != "$changed" ]; then
				echo "!! $p decoded $rows row changes, $changed were written" | tee -a "$RESULTS"
				failed=1
			fi
		done
	done
	if [ -n "$wpid" ]; then
		w1=$(bench_proc_ticks "$wpid")
		echo "decoder worker (pid $wpid) CPU while timing: $(awk -v a="$w0" -v b="$w1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }') s" |
			tee -a "$RESULTS"
	fi
	for p in "${plugins[@]}"; do
		sql "SELECT pg_drop_replication_slot('bench_$p')" >/dev/null || true
	done
done

# Median of key $3 over the runs of plugin $2 in case $1.
median_of() {
	bench_median_of "$RESULTS" "case=$1 plugin=$2 rep=" "$3"
}

echo "== medians (rows/s = row changes / median wall seconds; per CPU s: / median backend CPU seconds; logs: $LOGDIR)"
for case_name in $CASES; do
	w=nan wc=nan
	if ((have_wal2json)); then
		w=$(median_of "$case_name" wal2json seconds)
		wc=$(median_of "$case_name" wal2json cpu_seconds)
	fi
	printf '%-12s %-14s %8s %8s %7s %7s %10s %11s %7s %13s %10s\n' case plugin rows lines MB seconds rows_per_s vs_wal2json cpu_s rows_per_cpu_s vs_wal2json
	for p in "${plugins[@]}"; do
		awk -v c="$case_name" -v p="$p" -v s="$(median_of "$case_name" "$p" seconds)" \
			-v r="$(median_of "$case_name" "$p" rows)" -v w="$w" -v wc="$wc" \
			-v cs="$(median_of "$case_name" "$p" cpu_seconds)" \
			-v l="$(median_of "$case_name" "$p" lines)" -v b="$(median_of "$case_name" "$p" bytes)" 'BEGIN {
			if (s == "nan" || s <= 0) { printf "%-12s %-14s failed\n", c, p; exit }
			x = (w == "nan" || w <= 0) ? "NA" : sprintf("%.2f", w / s)
			cr = (cs == "nan" || cs <= 0) ? "NA" : sprintf("%.0f", r / cs)
			xc = (cs == "nan" || cs <= 0 || wc == "nan" || wc <= 0) ? "NA" : sprintf("%.2f", wc / cs)
			printf "%-12s %-14s %8d %8d %7.1f %7.3f %10.0f %11s %7.3f %13s %10s\n", c, p, r, l, b / 1048576, s, r / s, x, cs, cr, xc }'
	done
done | tee -a "$RESULTS"

((failed)) && echo "!! some runs failed or decoded the wrong number of rows; see above"

if ((!have_wal2json)); then
	echo "wal2json: not installed ($LIBDIR/wal2json.so is missing): no comparison (ratio=NA)"
fi
ps=$(median_of "$first_case" realtime seconds)
pr=$(median_of "$first_case" realtime rows)
ws=nan wr=0
if ((have_wal2json)); then
	ws=$(median_of "$first_case" wal2json seconds)
	wr=$(median_of "$first_case" wal2json rows)
fi
rs=$(median_of "$first_case" realtime_ring seconds)
rr=$(median_of "$first_case" realtime_ring rows)
awk -v rs="$rs" -v rr="$rr" -v ws="$ws" -v wr="$wr" 'BEGIN {
	p = (rs == "nan" || rs <= 0) ? "NA" : sprintf("%.0f", rr / rs)
	w = (ws == "nan" || ws <= 0) ? "NA" : sprintf("%.0f", wr / ws)
	r = (p == "NA" || w == "NA") ? "NA" : sprintf("%.2f", (rr / rs) / (wr / ws))
	printf "ring format (as the decoder worker writes it): ring_rows_per_s=%s ratio=%s\n", p, r }'
awk -v ps="$ps" -v pr="$pr" -v ws="$ws" -v wr="$wr" 'BEGIN {
	p = (ps == "nan" || ps <= 0) ? "NA" : sprintf("%.0f", pr / ps)
	w = (ws == "nan" || ws <= 0) ? "NA" : sprintf("%.0f", wr / ws)
	r = (p == "NA" || w == "NA") ? "NA" : sprintf("%.2f", (pr / ps) / (wr / ws))
	printf "plugin_rows_per_s=%s wal2json_rows_per_s=%s ratio=%s\n", p, w, r }'
exit "$failed"
