# shellcheck shell=bash
# Reporting for the integration scripts: one "ok - ..." / "not ok - ..."
# line per assertion and, from summary (the exit hook, after topo_down),
# the closing "N passed, M failed" line that scripts/check.sh reads.
# Exit status: 0 all passed, 1 an assertion failed, 2 a prerequisite failed.

PASSED=0
FAILED=0
PREREQ_FAILED=0
TEST_TMP=

ok() {
	printf 'ok - %s\n' "$*"
	PASSED=$((PASSED + 1))
}

not_ok() {
	printf 'not ok - %s\n' "$*"
	FAILED=$((FAILED + 1))
}

# check DESC CONDITION...: one assertion from a test command.
check() {
	local desc=$1
	shift
	if "$@"; then
		ok "$desc"
		return 0
	fi
	not_ok "$desc"
	return 1
}

# step DESC CMD...: run a setup command; on failure show its output.
step() {
	local desc=$1 out=$TEST_TMP/step.out
	shift
	if "$@" >"$out" 2>&1; then
		ok "$desc"
		return 0
	fi
	not_ok "$desc"
	xlbt_log_file "$out"
	return 1
}

# Exit hook (after topo_down): the one summary line and the exit status.
summary() {
	local rc=$1
	if [[ -n $XLBT_INTERRUPTED ]]; then
		not_ok "interrupted by SIG$XLBT_INTERRUPTED"
	elif ((rc != 0 && FAILED == 0)); then
		not_ok "test script ended unexpectedly (exit status $rc)"
	fi
	[[ -n $TEST_TMP ]] && rm -rf -- "$TEST_TMP"
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	if ((PREREQ_FAILED)); then return 2; fi
	if [[ -n $XLBT_INTERRUPTED ]]; then return "$rc"; fi
	((FAILED == 0)) && return 0
	return 1
}
