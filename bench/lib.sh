# shellcheck shell=bash
# lib.sh: helpers shared by bench/broadcast.sh, bench/client_ceiling.sh,
# bench/db_latency.sh, bench/send_cost.sh, bench/changes.sh and bench/private.sh
# (sourced, not run).
# Bash; loopback only; every process started here is remembered in BENCH_PIDS
# and stopped by bench_cleanup (installed as a trap), and so is the cluster of
# bench_start_cluster.

# PG_CONFIG pinned to 15, pg_bindir (scripts are run from the repository root).
# shellcheck source=scripts/common.sh
. scripts/common.sh

BENCH_PIDS=()

# Stop what we started, by pid only.
bench_cleanup() {
	local pid
	for pid in "${BENCH_PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
		fi
	done
	for pid in "${BENCH_PIDS[@]}"; do
		bench_reap "$pid"
	done
	BENCH_PIDS=()
	bench_stop_cluster
}

# Wait for process $1 (signalled already) to exit: a few seconds to print its
# counters, then insist.
bench_reap() {
	local pid=$1
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Stop one process we started.
bench_stop() {
	kill -TERM "$1" 2>/dev/null || true
	bench_reap "$1"
}

# A free loopback port (bind to port 0 and release it).
bench_free_port() {
	build/bench/load_client --free-port
}

# Wait until 127.0.0.1:$1 accepts a TCP connection; fail after $2 seconds
# or as soon as process $3 is gone.
bench_wait_port() {
	local port=$1 timeout=$2 pid=$3
	for _ in $(seq $((timeout * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# CPU ticks (user + system) used so far by process $1 and all its threads.
bench_proc_ticks() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
		echo 0
		return
	}
	# fields after "(comm)": state is $1, utime is $12, stime is $13
	echo "${stat##*) }" | awk '{ print $12 + $13 }'
}

# Median of the numbers on stdin (mean of the two middle ones for an even count).
bench_median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The values of key $3, one a line, in the lines of results file $1 that start
# with $2 (a grep pattern), leaving out the failed runs (failed=1).
bench_values() {
	grep "^$2" "$1" | grep -v 'failed=1' | while read -r l; do
		bench_field "$3" "$l"
	done
}

# The median of those values (bench_values).
bench_median_of() {
	bench_values "$@" | bench_median
}

# Repetition $1 runs modes $2 and $3 in this order if odd, the other way if even:
# neither always comes first on a warming machine.
bench_order() {
	if [ $(($1 % 2)) = 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi
}

# True when "k=v ..." line $1 has a result (no failed=1) and each of the keys $2... is 0
# (a key missing from the line counts as not 0).
bench_run_clean() {
	local line=$1 key
	shift
	[[ " $line " != *" failed=1 "* ]] || return 1
	for key in "$@"; do
		[ "$(bench_field "$key" "$line")" = 0 ] || return 1
	done
}

# Value of key $1 in a "k=v k=v" line $2.
bench_field() {
	local key=$1 line=$2
	echo "$line" | tr ' ' '\n' | awk -F= -v k="$key" '$1 == k { print $2; exit }'
}

# ---------------------------------------------------------------------------
# Database benchmarks (bench/db_latency.sh, bench/send_cost.sh): a throwaway
# cluster from scripts/cluster.sh with the installed extension, and the sidecar
# attached to it. bench_cleanup stops both.

BENCH_CLUSTER_DIR=''
BENCH_CONNINFO=''
BENCH_SIDECAR_PID=''
BENCH_SIDECAR_PORT=''
BENCH_LOGDIR=''

# Stop the cluster we started and remove its directory.
bench_stop_cluster() {
	if [ -n "$BENCH_CLUSTER_DIR" ]; then
		bash scripts/cluster.sh stop "$BENCH_CLUSTER_DIR" >/dev/null 2>&1 || true
		# the server's own log (the decoder worker's messages) outlives the cluster; a cluster
		# that never started has none
		local log=$BENCH_CLUSTER_DIR/log/postgres.log
		if [ -n "$BENCH_LOGDIR" ] && [ -f "$log" ]; then
			cp "$log" "$BENCH_LOGDIR/postgres.log" || echo "bench: could not keep $log" >&2
		fi
		rm -rf "$BENCH_CLUSTER_DIR"
		BENCH_CLUSTER_DIR=''
	fi
}

# psql on the cluster, unaligned and quiet: bench_psql SQL
bench_psql() {
	"$(pg_bindir)/psql" -X -qAt \
		-v ON_ERROR_STOP=1 -d "$BENCH_CONNINFO" -c "$1"
}

# Start a cluster (realtime preloaded, CREATE EXTENSION done) in a fresh directory
# under build/bench (under /tmp if that path is too long for a unix socket) on a
# free port; sets BENCH_CLUSTER_DIR and BENCH_CONNINFO. Its log goes to $1.
bench_start_cluster() {
	local log=$1 parent=$PWD/build/bench port
	mkdir -p "$parent"
	[ ${#parent} -le 70 ] || parent=/tmp
	BENCH_CLUSTER_DIR=$(mktemp -d "$parent/pg.XXXXXX") || return 1
	chmod 711 "$BENCH_CLUSTER_DIR"
	port=$(bench_free_port)
	BENCH_CONNINFO=$(bash scripts/cluster.sh start "$BENCH_CLUSTER_DIR" "$port" 2>>"$log") || {
		echo "cluster.sh start failed; its log:" >&2
		tail -20 "$log" >&2
		return 1
	}
}

# Unless BENCH_INSTALL=0: make install, so that the cluster loads this tree's
# extension (the system PostgreSQL's; other users of the machine see it too).
# Prints which realtime.so the clusters will load.
bench_install_extension() {
	local so
	so=$("$PG_CONFIG" --pkglibdir)/realtime.so
	if [ "${BENCH_INSTALL:-1}" != 0 ]; then
		make -s install >"$1" 2>&1 || {
			echo "make install failed:" >&2
			tail -20 "$1" >&2
			return 1
		}
		echo "extension: $so installed from $(git rev-parse --short HEAD 2>/dev/null)" \
			"$(git diff --quiet HEAD -- src/extension sql 2>/dev/null || echo '+uncommitted')" \
			"md5 $(md5sum <"$so" | cut -c1-12)"
	else
		echo "extension: $so as found (BENCH_INSTALL=0) md5 $(md5sum <"$so" | cut -c1-12)"
	fi
}

# The start of a database benchmark whose logs go to directory $1: make -s the
# targets $3... (make.log), bench_install_extension (install.log; its line also
# appended to results.txt), then print "== $2" and bench_start_cluster (cluster.log).
bench_db_setup() {
	local dir=$1 title=$2
	shift 2
	BENCH_LOGDIR=$dir
	echo "== build"
	make -s "$@" >"$dir/make.log" 2>&1 || {
		tail -20 "$dir/make.log" >&2
		return 1
	}
	bench_install_extension "$dir/install.log" | tee -a "$dir/results.txt"
	[ "${PIPESTATUS[0]}" = 0 ] || return 1
	echo "== $title"
	bench_start_cluster "$dir/cluster.log"
}

# Start realtime-fanout binary $1 on a free port with JWT secret $2, log $3, the
# limits lifted and the options $4...; sets BENCH_SIDECAR_PID and
# BENCH_SIDECAR_PORT once it accepts connections.
bench_start_fanout() {
	local bin=$1 secret=$2 log=$3
	shift 3
	local from
	BENCH_SIDECAR_PORT=$(bench_free_port)
	from=0
	[ ! -f "$log" ] || from=$(wc -l <"$log")
	# shellcheck disable=SC2046 # one word per flag
	"$bin" --host 127.0.0.1 --port "$BENCH_SIDECAR_PORT" --jwt-secret "$secret" \
		$(bench_no_limits "$bin") "$@" >>"$log" 2>&1 &
	BENCH_SIDECAR_PID=$!
	BENCH_PIDS+=("$BENCH_SIDECAR_PID")
	bench_wait_port "$BENCH_SIDECAR_PORT" 20 "$BENCH_SIDECAR_PID" || {
		echo "realtime-fanout did not accept on port $BENCH_SIDECAR_PORT; its log:" >&2
		tail -30 "$log" >&2
		return 1
	}
	bench_check_limits "$log" "$from"
}

# Start build/realtime-fanout (or $BENCH_FANOUT) attached to the cluster (--db,
# --ring-path), with JWT secret $1, log $2 and the options $3... (bench_start_fanout).
bench_start_db_sidecar() {
	local secret=$1 log=$2
	shift 2
	bench_start_fanout "${BENCH_FANOUT:-build/realtime-fanout}" "$secret" "$log" \
		--db "$BENCH_CONNINFO" --ring-path "$BENCH_CLUSTER_DIR/realtime.ring" "$@"
}

# One token a line into file $3 for users 1..$1 (role authenticated, sub the uuid
# 00000000-0000-4000-8000-<u in 12 hex digits>, as UserUuid in bench/bench_util.hpp
# gives for 0-based u - 1), signed with JWT secret $2 by build/realtime-fanout
# (or $BENCH_FANOUT).
bench_user_tokens() {
	local users=$1 secret=$2 file=$3 u
	: >"$file"
	for u in $(seq "$users"); do
		"${BENCH_FANOUT:-build/realtime-fanout}" token --jwt-secret "$secret" --role authenticated \
			--sub "$(printf '00000000-0000-4000-8000-%012x' "$u")" --ttl 86400 >>"$file" || return 1
	done
}

# Pid of the realtime decoder background worker (empty if none is running).
bench_decoder_pid() {
	bench_psql "select pid from pg_stat_activity where backend_type = 'realtime decoder' limit 1" \
		2>/dev/null
}

# Percent of one core used by process $1 between tick counts $2 and $3 over $4 s.
bench_cpu_pct() {
	awk -v a="$2" -v b="$3" -v hz="$(getconf CLK_TCK)" -v s="$4" \
		'BEGIN { if (s > 0) printf "%.0f", 100 * (b - a) / hz / s; else print "nan" }'
}

# The limits a benchmark runs under (upstream's defaults are 200 users, 100 joins/s, 100
# events/s): the benchmarks measure the server, not its limits. As the keys of the
# sidecar's start-up line "tenant <id>: limits k=v ..." (and of /metrics
# realtime_tenant_limit), which bench_check_limits reads back.
BENCH_LIMITS='max_concurrent_users=100000000 max_joins_per_second=100000000 max_events_per_second=1000000000 max_presence_events_per_second=100000000'

# The flags for BENCH_LIMITS when binary $1 has them (an older one given as BENCH_FANOUT may
# not; bench_check_limits then fails the run). The help is read whole first: a `grep -q` on
# the pipe may exit before the writer is done, and pipefail counts its SIGPIPE as failure.
bench_no_limits() {
	local help kv
	help=$("$1" --help 2>/dev/null) || true
	[[ $help == *--max-events-per-second* ]] || return 0
	for kv in $BENCH_LIMITS; do
		printf -- '--%s %s ' "$(echo "${kv%%=*}" | tr _ -)" "${kv#*=}"
	done
}

# Fail with a "!!" line unless the sidecar's start-up line(s) after line $2 of log $1 show
# every limit of BENCH_LIMITS in force.
bench_check_limits() {
	local log=$1 from=$2 line kv
	line=$(tail -n +"$((from + 1))" "$log" | grep -m1 ': limits ' || true)
	for kv in $BENCH_LIMITS; do
		if [[ " $line " != *" $kv "* ]]; then
			echo "!! the sidecar does not run with $kv; its start-up line: ${line:-none}" >&2
			return 1
		fi
	done
}
