#!/usr/bin/env bash
# run_unit.sh: run CMocka unit-test binaries and add up their TAP results.
#
#   scripts/run_unit.sh BIN...        (make unitcheck passes build/test/test_*)
#
# Each binary runs with CMOCKA_MESSAGE_OUTPUT=TAP (and a 300 s timeout); its output is printed
# as is. Counting: "ok" passes, "not ok" fails, "not ok ... # SKIP" is skipped. A binary that
# exits non-zero without a failed test (crash, sanitizer abort, timeout), or prints fewer
# results than its plans announce, counts as one more failure. The last line is
#   unit: P passed, F failed, S skipped (N binaries)
# and the exit status is non-zero if F > 0. With RT_COUNTS_FILE set, that file is overwritten
# with one line "P F" (two integers) for scripts/test.sh to add up.
set -euo pipefail

passed=0
failed=0
skipped=0

for bin in "$@"; do
	echo "# $bin"
	out=$(mktemp)
	rc=0
	CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$bin" >"$out" 2>&1 || rc=$?
	cat "$out"

	p=0 f=0 s=0 planned=0
	while IFS= read -r line; do
		if [[ $line =~ ^1\.\.([0-9]+) ]]; then
			planned=$((planned + BASH_REMATCH[1]))
			continue
		fi
		case $line in
			ok\ *) p=$((p + 1)) ;;
			not\ ok*'# SKIP'* | not\ ok*'# skip'*) s=$((s + 1)) ;;
			not\ ok*'# TODO'* | not\ ok*'# todo'*) ;;
			not\ ok\ [0-9]*) f=$((f + 1)) ;;
		esac
	done <"$out"
	rm -f "$out"

	if ((p + f + s < planned)); then
		echo "not ok - $bin: $((planned - p - f - s)) planned tests did not run"
		f=$((f + 1))
	fi
	if ((rc != 0 && f == 0)); then
		if ((rc == 124)); then
			echo "not ok - $bin: timed out"
		else
			echo "not ok - $bin: exited with status $rc"
		fi
		f=$((f + 1))
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
done

echo "unit: $passed passed, $failed failed, $skipped skipped ($# binaries)"
if [[ -n "${RT_COUNTS_FILE:-}" ]]; then
	echo "$passed $failed" >"$RT_COUNTS_FILE"
fi
((failed == 0))
