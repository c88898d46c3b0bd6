#!/usr/bin/env bash
# test.sh: THE test command (make test, .ci/run). Run as root on Debian 12, from anywhere.
#
#   1. scripts/deps.sh: missing Debian packages, npm ci for test/e2e
#   2. make format-check (RT_FORMAT_CHECK=0 skips it), make, make install (warnings are errors)
#   3. make unitcheck: CMocka binaries through scripts/run_unit.sh; then the libFuzzer
#      targets (make fuzz-build, clang with ASan + UBSan), RT_FUZZ_SECONDS (15) each from
#      their committed corpora (scripts/fuzz.sh)
#   4. pgTAP, test/nopreload/*.sql: a throwaway cluster WITHOUT the preload (load refused)
#   5. pgTAP, test/sql/*.sql: the same cluster restarted with shared_preload_libraries=realtime
#   6. the sidecar build/realtime-fanout on a free port: GET /healthz must answer 200 in 30 s
#   7. the end-to-end suite in test/e2e (node --test; a missing suite is a failure); it gets
#      RT_URL, RT_PORT, RT_JWT_SECRET, RT_DB_URL, RT_DB_HOST, RT_DB_PORT, RT_DB_USER, RT_DB_NAME,
#      RT_FANOUT_BIN (to start more sidecars on other ports), RT_RING_PATH (the ring file the
#      decoder worker writes and the sidecar follows with --ring-path) and RT_RING_HOLD_BIN
#      (build/test/ring_hold: a ring reader that stops reading, test/c/ring_hold.cpp) and
#      RT_RING_DUMP_BIN (build/test/ring_dump: prints what the sidecar's ring reader reads)
#   8. the sidecar stops cleanly on SIGTERM with no sanitizer report in its log (DEBUG=1 builds
#      everything with AddressSanitizer and UBSan: `rm -rf build; DEBUG=1 scripts/test.sh`)
#
# Everything it starts (cluster, sidecar, temp files) is removed on exit, also on failure or
# Ctrl-C. The last line printed is "N passed, N failed" summed over CMocka, pgTAP, the health
# check and node (plus one failure for a step that could not run); the exit status is 0 only
# if nothing failed and at least one test passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$here/common.sh"

passed=0
failed=0
abort_counted=0
tmp=
cluster_dir=
fanout_pid=

# Stop and remove what this run started; quiet, so the summary stays the last line.
# shellcheck disable=SC2317 # run from the EXIT trap
cleanup() {
	if [[ -n "$fanout_pid" ]]; then
		kill "$fanout_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$fanout_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$fanout_pid" 2>/dev/null || true
		wait "$fanout_pid" 2>/dev/null || true
		fanout_pid=
	fi
	if [[ -n "$cluster_dir" ]]; then
		bash "$here/cluster.sh" stop "$cluster_dir" >/dev/null 2>&1 || true
		cluster_dir=
	fi
	if [[ -n "$tmp" ]]; then
		rm -rf "$tmp"
		tmp=
	fi
}

# EXIT trap: clean up, then print the summary line last and set the exit status.
# shellcheck disable=SC2317 # run from the EXIT trap
on_exit() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	cleanup
	# An unexpected error or an interrupt is a failure too.
	if ((rc != 0 && !abort_counted)); then
		failed=$((failed + 1))
	fi
	echo "$passed passed, $failed failed"
	if ((failed == 0 && passed > 0)); then
		exit 0
	fi
	exit 1
}
trap on_exit EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# A step that the rest depends on failed: count it, stop here.
abort() {
	echo "FAILED: $*"
	failed=$((failed + 1))
	abort_counted=1
	exit 1
}

section() {
	printf '\n=== %s\n' "$*"
}

# Count TAP lines of file $1: ok passes, not ok fails (TODO and SKIP count neither way).
tap_counts() {
	local p f
	p=$(grep -cE '^ok [0-9]' "$1" || true)
	f=$(grep -E '^not ok [0-9]' "$1" | grep -cvE '# (TODO|SKIP|todo|skip)' || true)
	echo "$p $f"
}

# pg_prove over files $2.. against 127.0.0.1:$1 as postgres; adds its counts.
run_pg_prove() {
	local port=$1 rc=0 p f
	shift
	pg_prove --verbose --host 127.0.0.1 --port "$port" --username postgres --dbname postgres \
		"$@" 2>&1 | tee "$tmp/pg_prove.out" || rc=$?
	read -r p f < <(tap_counts "$tmp/pg_prove.out")
	# A file that died or ran a different number of tests than planned.
	if ((rc != 0 && f == 0)); then
		echo "not ok - pg_prove exited with status $rc"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

tmp=$(mktemp -d /tmp/realtime-test.XXXXXX)
chmod 711 "$tmp" # the postgres user must reach the cluster directory inside

section "dependencies"
bash "$here/deps.sh" || abort "scripts/deps.sh"

section "build"
if [[ "${RT_FORMAT_CHECK:-1}" == 1 ]]; then
	if make format-check; then
		echo "ok - make format-check"
		passed=$((passed + 1))
	else
		echo "not ok - make format-check"
		failed=$((failed + 1))
	fi
fi
make -j"$(nproc)" || abort "make"
make install || abort "make install"

section "unit tests (CMocka)"
unit_rc=0
RT_COUNTS_FILE=$tmp/unit.counts make unitcheck || unit_rc=$?
if [[ -s "$tmp/unit.counts" ]]; then
	read -r p f <"$tmp/unit.counts"
	passed=$((passed + p))
	failed=$((failed + f))
	if ((unit_rc != 0 && f == 0)); then
		failed=$((failed + 1))
	fi
else
	echo "not ok - make unitcheck did not run the tests (build failure?)"
	failed=$((failed + 1))
fi

section "fuzz (libFuzzer, AddressSanitizer + UBSan)"
# Each target of test/c/fuzz_*.cpp for RT_FUZZ_SECONDS (15) from its committed corpus;
# `make fuzz` runs them longer.
if make -j"$(nproc)" fuzz-build >"$tmp/fuzz-build.log" 2>&1; then
	fuzz_rc=0
	RT_COUNTS_FILE=$tmp/fuzz.counts bash "$here/fuzz.sh" "${RT_FUZZ_SECONDS:-15}" build/fuzz/fuzz_* ||
		fuzz_rc=$?
	p=0 f=0
	[[ -s "$tmp/fuzz.counts" ]] && read -r p f <"$tmp/fuzz.counts"
	((fuzz_rc == 0 || f > 0)) || f=1
	passed=$((passed + p))
	failed=$((failed + f))
else
	echo "not ok - make fuzz-build; its log:"
	tail -n 30 "$tmp/fuzz-build.log" | sed 's/^/    /'
	failed=$((failed + 1))
fi

section "pgTAP without the preload"
cluster_dir=$tmp/pg
pg_port=$(free_port)
bash "$here/cluster.sh" start "$cluster_dir" "$pg_port" --no-preload --pgtap >/dev/null ||
	abort "cluster start (no preload)"
run_pg_prove "$pg_port" test/nopreload/*.sql
bash "$here/cluster.sh" stop "$cluster_dir" || abort "cluster stop"

section "pgTAP"
conninfo=$(bash "$here/cluster.sh" start "$cluster_dir" "$pg_port" --pgtap) || abort "cluster start"
echo "cluster: $conninfo"
run_pg_prove "$pg_port" test/sql/*.sql

section "sidecar"
fanout_bin=$root/build/realtime-fanout
fanout_port=$(free_port)
jwt_secret=$(random_secret)
[[ -x "$fanout_bin" ]] || abort "$fanout_bin was not built"
ring_path=$cluster_dir/realtime.ring
# Upstream's default limits (--limits upstream; a single tenant would start from unlimited),
# three of them lifted: the suite's traffic is far above 100 events/s; the limit tests start
# their own sidecars with small limits.
"$fanout_bin" --host 127.0.0.1 --port "$fanout_port" --db "$conninfo" --ring-path "$ring_path" \
	--jwt-secret "$jwt_secret" --connect-error-backoff-ms 0 --channel-error-backoff-ms 0 \
	--limits upstream --max-concurrent-users 100000000 --max-joins-per-second 100000000 \
	--max-events-per-second 1000000000 >"$tmp/fanout.log" 2>&1 &
fanout_pid=$!
healthy=0
if wait_http_ok "$fanout_port" /healthz 30 "$fanout_pid"; then
	echo "ok - realtime-fanout answers GET /healthz on 127.0.0.1:$fanout_port"
	passed=$((passed + 1))
	healthy=1
else
	echo "not ok - realtime-fanout did not answer GET /healthz with 200 within 30 s; its log:"
	sed 's/^/    /' "$tmp/fanout.log"
	failed=$((failed + 1))
fi

section "end-to-end (node)"
if [[ ! -f test/e2e/package.json ]]; then
	echo "not ok - test/e2e/package.json is missing: the end-to-end suite cannot run"
	failed=$((failed + 1))
elif ((!healthy)); then
	echo "not run: the sidecar is not healthy (counted above)"
else
	# The suite's own "test" script says which files and how many at once; run it with the
	# TAP reporter (options must come before the file arguments).
	e2e_cmd="node --test --test-reporter=tap"
	script=$(cd test/e2e && node -p 'require("./package.json").scripts?.test ?? ""')
	if [[ "$script" == "node --test"* ]]; then
		e2e_cmd="node --test --test-reporter=tap${script#node --test}"
	fi
	echo "$e2e_cmd"
	e2e_rc=0
	(
		cd test/e2e
		export RT_URL="http://127.0.0.1:$fanout_port" RT_PORT="$fanout_port"
		export RT_JWT_SECRET="$jwt_secret" RT_FANOUT_BIN="$fanout_bin" RT_RING_PATH="$ring_path"
		export RT_RING_DUMP_BIN="$root/build/test/ring_dump" RT_RING_HOLD_BIN="$root/build/test/ring_hold"
		export RT_DB_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
		export RT_DB_HOST=127.0.0.1 RT_DB_PORT="$pg_port" RT_DB_USER=postgres RT_DB_NAME=postgres
		exec timeout 900 bash -c "$e2e_cmd"
	) 2>&1 | tee "$tmp/e2e.out" || e2e_rc=$?
	p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tmp/e2e.out" | tail -n 1)
	f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tmp/e2e.out" | tail -n 1)
	c=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$tmp/e2e.out" | tail -n 1)
	p=${p:-0} f=$((${f:-0} + ${c:-0}))
	if ((e2e_rc != 0 && f == 0)); then
		echo "not ok - the e2e suite exited with status $e2e_rc"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if ((f > 0)); then
		echo "sidecar log (last 50 lines):"
		tail -n 50 "$tmp/fanout.log" | sed 's/^/    /'
	fi
fi

# The sidecar must stop cleanly on SIGTERM, and (in a DEBUG=1 build) without any
# AddressSanitizer, LeakSanitizer or UBSan report in its log.
if [[ -n "$fanout_pid" ]]; then
	section "sidecar shutdown"
	kill -TERM "$fanout_pid" 2>/dev/null || true
	stop_rc=0
	timeout 20 tail --pid="$fanout_pid" -f /dev/null || stop_rc=$?
	wait "$fanout_pid" 2>/dev/null || stop_rc=$?
	fanout_pid=
	if ((stop_rc != 0)); then
		echo "not ok - realtime-fanout did not exit cleanly on SIGTERM (status $stop_rc)"
		failed=$((failed + 1))
	elif grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$tmp/fanout.log"; then
		echo "not ok - sanitizer report in the sidecar log:"
		grep -A20 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$tmp/fanout.log" |
			head -n 60 | sed 's/^/    /'
		failed=$((failed + 1))
	else
		echo "ok - realtime-fanout exited cleanly on SIGTERM, no sanitizer report"
		passed=$((passed + 1))
	fi
fi

section "summary"
exit 0
