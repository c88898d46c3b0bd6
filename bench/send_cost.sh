#!/usr/bin/env bash
# send_cost.sh: transactions/s of realtime.send() against pg_notify() with pgbench at
# several client counts, measured in the same invocation (`make bench-send-cost`;
# docs/PERFORMANCE.md).
#
# make install (unless BENCH_INSTALL=0), then a throwaway cluster (scripts/cluster.sh,
# realtime preloaded) and the sidecar attached to it (--db, --ring-path) on free loopback
# ports, and one delivery sink (build/bench/db_latency --sink): a WebSocket subscriber of
# realtime:cost on the sidecar and a LISTEN cost connection, both attached for the whole
# invocation, so each message of either kind is delivered to one client. For each client
# count, BENCH_REPS times per mode, alternating which goes first, pgbench -n -M prepared
# runs one workload for BENCH_SECONDS (default synchronous_commit):
#   bare   bench/pgbench/{send,notify}.sql: one autocommit statement per transaction. A
#          send gives its transaction an xid, so it commits with a WAL flush; a
#          transaction that only notifies writes no WAL and does not wait for the disk.
#   write  bench/pgbench/{send,notify}_write.sql: UPDATE one of 1,000 rows, then send or
#          notify, in one transaction: both wait for the WAL flush, as in a trigger; NOTIFY
#          holds its global lock through the commit.
#   stored modes stored and send instead: bench/pgbench/stored.sql, a private
#          realtime.send() (the message is also a row of realtime.messages, as
#          realtime.persist_messages = private has it, for replay) against send.sql, the
#          public one (ring only): the cost of storing. A second sink joins the private
#          room (a policy lets anon read topic "cost"); the rows are counted too.
# pgbench, the backends, the decoder worker, the sidecar and the sink all share the
# machine's cores. Prints every run, the medians per workload, a line per workload
#   workload=bare send_tps_c1=N notify_tps_c1=N ratio_c1=R ... ratio_c8=R
#   workload=stored stored_tps_c1=N send_tps_c1=N ratio_c1=R ...
# and as its last line the same for the last workload, without the prefix
# (ratio = the first mode's median tps / the second's: send / notify, stored / send).
#
# Environment: BENCH_WORKLOADS ("bare write stored"), BENCH_CLIENTS ("1 2 8"), BENCH_SECONDS (10), BENCH_REPS (3), BENCH_THREADS
# (pgbench -j, default min(clients, cores)), BENCH_PAUSE (1 s between runs), BENCH_DRAIN
# (5 s for the sink at the end), BENCH_SIDECAR (1; 0 = no sidecar and no WebSocket
# subscriber: the cost of send without delivery), BENCH_INSTALL (1), BENCH_FANOUT,
# BENCH_JWT_SECRET.
# Everything it starts is stopped on exit. Logs: build/bench/logs/send-cost-<time>/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

WORKLOADS=${BENCH_WORKLOADS:-bare write stored}
CLIENTS=${BENCH_CLIENTS:-1 2 8}
SECS=${BENCH_SECONDS:-10}
REPS=${BENCH_REPS:-3}
PAUSE=${BENCH_PAUSE:-1}
DRAIN=${BENCH_DRAIN:-5}
SIDECAR=${BENCH_SIDECAR:-1}
SECRET=${BENCH_JWT_SECRET:-bench-jwt-secret-with-at-least-32-characters}
CORES=$(nproc)
LOGDIR=build/bench/logs/send-cost-$(date +%Y%m%d-%H%M%S)
RESULTS=$LOGDIR/results.txt
mkdir -p "$LOGDIR"
PGBENCH=$(pg_bindir)/pgbench

[ -x "$PGBENCH" ] || {
	echo "send_cost.sh: no pgbench at $PGBENCH" >&2
	exit 1
}
bench_db_setup "$LOGDIR" "start cluster, sidecar and sink" \
	build/bench/db_latency build/bench/load_client build/realtime-fanout || exit 1
ws_args=()
if [ "$SIDECAR" != 0 ]; then
	bench_start_db_sidecar "$SECRET" "$LOGDIR/sidecar.log" || exit 1
	ws_args=(--port "$BENCH_SIDECAR_PORT" --secret "$SECRET")
else
	BENCH_SIDECAR_PID=0 BENCH_SIDECAR_PORT=none
	echo "!! BENCH_SIDECAR=0: no sidecar, nothing reads the ring; realtime.send is delivered to nobody" |
		tee -a "$RESULTS"
fi
# The two modes of workload $1, the first one first in the first repetition.
modes_of() {
	if [ "$1" = stored ]; then echo "stored send"; else echo "send notify"; fi
}
STORED=0
[[ " $WORKLOADS " == *" stored "* ]] && [ "$SIDECAR" != 0 ] && STORED=1
if [ "$STORED" = 1 ]; then
	bench_psql "create policy cost_read on realtime.messages for select to anon
		using (realtime.topic() = 'cost')" >/dev/null || exit 1
fi

# A delivery sink: name $1, then db_latency's options.
start_sink() {
	local name=$1 pid
	shift
	build/bench/db_latency --sink "$@" --db "$BENCH_CONNINFO" --topic cost \
		>"$LOGDIR/$name.out" 2>"$LOGDIR/$name.log" &
	pid=$!
	BENCH_PIDS+=("$pid")
	for _ in $(seq 100); do
		grep -q '^db_latency: sink on' "$LOGDIR/$name.log" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^db_latency: sink on' "$LOGDIR/$name.log" || {
		echo "send_cost.sh: the $name did not attach:" >&2
		cat "$LOGDIR/$name.log" >&2
		exit 1
	}
	SINK_PID=$pid
}
start_sink sink "${ws_args[@]}" --channel cost
PUBLIC_SINK_PID=$SINK_PID
PRIVATE_SINK_PID=0
if [ "$STORED" = 1 ]; then
	start_sink private-sink "${ws_args[@]}" --channel cost_private --private 1
	PRIVATE_SINK_PID=$SINK_PID
fi
SINK_PID=$PUBLIC_SINK_PID
DPID=$(bench_decoder_pid)
[ -n "$DPID" ] || echo "!! no 'realtime decoder' process found" | tee -a "$RESULTS"
echo "cluster: $BENCH_CONNINFO; sidecar: port $BENCH_SIDECAR_PORT; sink pid $SINK_PID;" \
	"decoder pid ${DPID:-none}; $CORES cores shared by everything" | tee -a "$RESULTS"
echo "settings: $(bench_psql "select string_agg(name || '=' || setting, ' ' order by name)
	from pg_settings where name in ('synchronous_commit', 'fsync', 'wal_sync_method',
	'commit_delay', 'shared_buffers')")" | tee -a "$RESULTS"

bench_psql "create table bench_cost (id int primary key, n int not null default 0);
	insert into bench_cost (id) select generate_series(1, 1000)" >/dev/null || exit 1

# One pgbench run: workload $1 (bare|write), mode $2 (send|notify), clients $3, label $4.
run_one() {
	local wl=$1 mode=$2 c=$3 label=$4 j out rc tps lat n warn t0 t1 el d0 d1 s0 s1 k0 k1 load
	local script=bench/pgbench/$mode.sql
	[ "$wl" = write ] && script=bench/pgbench/${mode}_write.sql
	j=${BENCH_THREADS:-$((c < CORES ? c : CORES))}
	load=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(date +%s.%N)
	d0=$(bench_proc_ticks "${DPID:-0}")
	s0=$(bench_proc_ticks "$BENCH_SIDECAR_PID")
	k0=$(bench_proc_ticks "$SINK_PID")
	echo "--- $wl $mode c=$c $label" >>"$LOGDIR/pgbench.log"
	out=$(timeout $((SECS + 60)) "$PGBENCH" -n -M prepared -f "$script" \
		-c "$c" -j "$j" -T "$SECS" "$BENCH_CONNINFO" 2>"$LOGDIR/pgbench.err")
	rc=$?
	d1=$(bench_proc_ticks "${DPID:-0}")
	s1=$(bench_proc_ticks "$BENCH_SIDECAR_PID")
	k1=$(bench_proc_ticks "$SINK_PID")
	t1=$(date +%s.%N)
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	echo "$out" >>"$LOGDIR/pgbench.log"
	cat "$LOGDIR/pgbench.err" >>"$LOGDIR/pgbench.log"
	warn=$(grep -c WARNING "$LOGDIR/pgbench.err")
	tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)
	lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' | head -1)
	n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
	if [ "$rc" != 0 ] || [ -z "$tps" ]; then
		echo "$mode c=$c rep=$label wl=$wl rc=$rc failed=1" | tee -a "$RESULTS"
		tail -5 "$LOGDIR/pgbench.err"
		return
	fi
	echo "$mode c=$c rep=$label wl=$wl tps=$tps xacts=$n latency_avg_ms=$lat warnings=$warn j=$j" \
		"decoder_cpu_pct=$(bench_cpu_pct 0 "$d0" "$d1" "$el")" \
		"sidecar_cpu_pct=$(bench_cpu_pct 0 "$s0" "$s1" "$el")" \
		"sink_cpu_pct=$(bench_cpu_pct 0 "$k0" "$k1" "$el") load1=$load" | tee -a "$RESULTS"
	for pid in "$BENCH_SIDECAR_PID" "$SINK_PID" "$PRIVATE_SINK_PID"; do
		if [ "$pid" != 0 ] && ! kill -0 "$pid" 2>/dev/null; then
			echo "!! process $pid (sidecar or sink) exited during this run" | tee -a "$RESULTS"
			tail -20 "$LOGDIR/sidecar.log" "$LOGDIR/sink.log"
			exit 1
		fi
	done
}

echo "== pgbench -T $SECS, workloads $WORKLOADS, at $CLIENTS client(s), $REPS reps per mode"
for wl in $WORKLOADS; do
	for c in $CLIENTS; do
		for rep in $(seq "$REPS"); do
			# shellcheck disable=SC2046 # two words
			for mode in $(bench_order "$rep" $(modes_of "$wl")); do
				sleep "$PAUSE"
				run_one "$wl" "$mode" "$c" "$rep"
			done
		done
	done
done

# Every committed message should have reached the sink: compare once it caught up.
sum_xacts() {
	bench_values "$RESULTS" "$1 c=" xacts | awk '{ s += $1 } END { print s + 0 }'
}
sleep "$DRAIN"
bench_stop "$SINK_PID"
[ "$PRIVATE_SINK_PID" = 0 ] || bench_stop "$PRIVATE_SINK_PID"
sink=$(grep '^sink ' "$LOGDIR/sink.out" | sed 's/^sink //')
echo "delivered to the sink: send_xacts=$(sum_xacts send) ws_received=$(bench_field ws_received "$sink")" \
	"notify_xacts=$(sum_xacts notify) notify_received=$(bench_field notify_received "$sink")" |
	tee -a "$RESULTS"
lossy=0
if [ "$(bench_field notify_received "$sink")" != "$(sum_xacts notify)" ]; then
	echo "!! the LISTEN sink did not get every committed pg_notify once" | tee -a "$RESULTS"
	lossy=1
fi
if [ "$SIDECAR" != 0 ] && [ "$(bench_field ws_received "$sink")" != "$(sum_xacts send)" ]; then
	echo "!! the WebSocket sink did not get every committed realtime.send once" | tee -a "$RESULTS"
	lossy=1
fi
if [ "$STORED" = 1 ]; then
	psink=$(grep '^sink ' "$LOGDIR/private-sink.out" | sed 's/^sink //')
	rows=$(bench_psql "select count(*) from realtime.messages where topic = 'cost' and private")
	echo "stored: stored_xacts=$(sum_xacts stored) ws_received=$(bench_field ws_received "$psink")" \
		"rows=$rows" | tee -a "$RESULTS"
	if [ "$(bench_field ws_received "$psink")" != "$(sum_xacts stored)" ] ||
		[ "$rows" != "$(sum_xacts stored)" ]; then
		echo "!! not every committed private realtime.send was delivered once and stored" |
			tee -a "$RESULTS"
		lossy=1
	fi
fi

median_of() {
	bench_median_of "$RESULTS" "$1 c=$2 rep=[0-9]* wl=$WL " "$3"
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "nan" }'
}
int() {
	awk -v v="$1" 'BEGIN { if (v == v + 0) printf "%.0f", v; else print v }'
}

last='' status=$lossy
first_c=${CLIENTS%% *}
for WL in $WORKLOADS; do
	echo "== medians, workload $WL (logs: $LOGDIR)"
	printf '%-8s %8s %12s %12s %8s %14s %14s %12s %8s\n' clients mode tps latency_ms scale \
		decoder_cpu% sidecar_cpu% sink_cpu% runs_ok
	last=''
	read -r ma mb <<<"$(modes_of "$WL")"
	for c in $CLIENTS; do
		for mode in $ma $mb; do
			printf '%-8s %8s %12s %12s %8s %14s %14s %12s %8s\n' "$c" "$mode" \
				"$(int "$(median_of $mode "$c" tps)")" "$(median_of $mode "$c" latency_avg_ms)" \
				"$(ratio "$(median_of $mode "$c" tps)" "$(median_of $mode "$first_c" tps)")" \
				"$(median_of $mode "$c" decoder_cpu_pct)" "$(median_of $mode "$c" sidecar_cpu_pct)" \
				"$(median_of $mode "$c" sink_cpu_pct)" \
				"$(grep "^$mode c=$c rep=[0-9]* wl=$WL " "$RESULTS" | grep -vc 'failed=1')/$REPS"
		done
		st=$(median_of "$ma" "$c" tps) nt=$(median_of "$mb" "$c" tps)
		[ "$st" != nan ] && [ "$nt" != nan ] || status=1
		last="$last ${ma}_tps_c$c=$(int "$st") ${mb}_tps_c$c=$(int "$nt") ratio_c$c=$(ratio "$st" "$nt")"
	done
	echo "(scale = median tps / median tps at $first_c client(s), same mode; ratio = $ma / $mb)"
	echo "workload=$WL${last}" | tee -a "$RESULTS"
done
echo "${last# }"
exit $status
