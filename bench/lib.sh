# shellcheck shell=bash
# lib.sh: helpers shared by bench/broadcast.sh and bench/client_ceiling.sh
# (sourced, not run). Bash; loopback only; every process started here is
# remembered in BENCH_PIDS and stopped by bench_cleanup (installed as a trap).

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
		# give each a few seconds to print its counters, then insist
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	BENCH_PIDS=()
}

# Stop one process we started.
bench_stop() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
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

# Value of key $1 in a "k=v k=v" line $2.
bench_field() {
	local key=$1 line=$2
	echo "$line" | tr ' ' '\n' | awk -F= -v k="$key" '$1 == k { print $2; exit }'
}
