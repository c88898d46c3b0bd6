#!/usr/bin/env bash
# fuzz.sh: run libFuzzer targets (build/fuzz/fuzz_*, `make fuzz-build`) for a bounded time each.
#
#   scripts/fuzz.sh SECONDS BIN...
#
# Each BIN (build/fuzz/fuzz_<name>) starts from its committed corpus test/c/corpus/<name>
# (read only: what it finds goes to a temporary directory) with its -max_len, a 10 s
# per-input timeout and a 2 GB RSS limit, under the AddressSanitizer and UBSan it was built
# with. One TAP line per target: "ok - fuzz_<name>: N execs in S s, 0 crashes", or "not ok"
# with the reproducer kept under build/fuzz/crashes/. With RT_COUNTS_FILE set, "passed failed"
# is written there (scripts/test.sh). Exit status 0 only if every target ran clean.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:?usage: fuzz.sh SECONDS BIN...}
shift
[[ $secs =~ ^[1-9][0-9]*$ ]] || {
	echo "fuzz.sh: SECONDS must be a positive integer: $secs" >&2
	exit 2
}
work=$(mktemp -d /tmp/realtime-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
crashes=$root/build/fuzz/crashes
passed=0 failed=0
# RapidJSON's one known report (test/c/ubsan_fuzz.supp); anything else UBSan prints fails
export UBSAN_OPTIONS="suppressions=$root/test/c/ubsan_fuzz.supp:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
for bin in "$@"; do
	[[ $bin == *.d ]] && continue # make's dependency files beside the binaries
	full=$(basename "$bin")
	name=${full#fuzz_}
	seeds=$root/test/c/corpus/$name
	mkdir -p "$work/$name" "$crashes"
	if [[ ! -d "$seeds" ]]; then
		echo "not ok - $full: no committed corpus at test/c/corpus/$name"
		failed=$((failed + 1))
		continue
	fi
	# the inputs each target reads (its header comment): a ring image is larger
	case $name in
		ring) max_len=20000 ;;
		pg_filter_eval) max_len=512 ;;
		*) max_len=4096 ;;
	esac
	log=$work/$name.log
	rc=0
	"$bin" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$crashes/$full-" "$work/$name" "$seeds" \
		>"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -1)
	if ((rc == 0)) && [[ -n "$execs" ]] && ! grep -qE 'ERROR: (AddressSanitizer|libFuzzer)|runtime error:' "$log"; then
		echo "ok - $full: ${execs} execs in ${secs} s, 0 crashes (corpus test/c/corpus/$name)"
		passed=$((passed + 1))
	else
		echo "not ok - $full: status $rc after ${execs:-?} execs; reproducer in build/fuzz/crashes/; log tail:"
		tail -n 30 "$log" | sed 's/^/    /'
		failed=$((failed + 1))
	fi
done
if [[ -n "${RT_COUNTS_FILE:-}" ]]; then
	echo "$passed $failed" >"$RT_COUNTS_FILE"
fi
((failed == 0))
