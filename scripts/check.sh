#!/usr/bin/env bash
# Run every test suite and end with one summary line "N passed, N failed".
# Usage: scripts/check.sh BUILD_DIR
# Suites: unit (Criterion), bpf (Criterion, BPF_PROG_TEST_RUN, needs root),
# the same two built with ASan+UBSan, and the namespace integration tests
# (need root).  A suite that cannot run counts as failed, loudly.
set -uo pipefail

BUILD=${1:-build}
# Nothing from the caller's environment may narrow a suite.
unset XLBT_SCENARIOS $(env | sed -n 's/^\(CRITERION_[A-Z_]*\)=.*/\1/p')
SAN_BUILD=${BUILD}-san
total_pass=0
total_fail=0
failed_suites=()

log() { printf '\n=== %s\n' "$*"; }

# Criterion prints "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N".
run_criterion() {
    local name=$1; shift
    local out rc pass fail
    log "$name"
    out=$("$@" --jobs 1 2>&1); rc=$?
    printf '%s\n' "$out" | grep -vE '^\[----\] *$' | tail -n 40
    pass=$(printf '%s\n' "$out" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p' | tail -n1)
    fail=$(printf '%s\n' "$out" | sed -n 's/.*Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2/p' | tail -n1)
    if [ -z "$pass" ]; then
        echo "check: suite $name produced no Criterion summary (exit $rc)"
        total_fail=$((total_fail + 1)); failed_suites+=("$name"); return
    fi
    set -- $fail
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + $1 + $2))
    if [ "$pass" -eq 0 ]; then
        echo "check: suite $name ran no test"
        total_fail=$((total_fail + 1))
    fi
    if [ "$rc" -ne 0 ] || [ $(($1 + $2)) -ne 0 ] || [ "$pass" -eq 0 ]; then
        failed_suites+=("$name")
    fi
}

# Shell suites print "N passed, M failed" as their last line.
run_shell() {
    local name=$1; shift
    local out rc line
    log "$name"
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n1)
    if [ -z "$line" ]; then
        echo "check: suite $name printed no summary (exit $rc)"
        total_fail=$((total_fail + 1)); failed_suites+=("$name"); return
    fi
    local p=${line%% passed*}
    local f=${line#*passed, }; f=${f%% failed*}
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if [ "$p" -eq 0 ]; then
        echo "check: suite $name ran no test"
        total_fail=$((total_fail + 1))
    fi
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; then failed_suites+=("$name"); fi
}

if [ "$(id -u)" -ne 0 ]; then
    echo "check: the BPF and namespace suites need root; run 'sudo make check'" >&2
fi

run_criterion unit "$BUILD/tests/unit"
run_criterion bpf "$BUILD/tests/bpf"

log "building the sanitizer variant in $SAN_BUILD"
if make --no-print-directory SANITIZE=1 BUILD="$SAN_BUILD" "$SAN_BUILD/tests/unit" \
        "$SAN_BUILD/tests/bpf" "$SAN_BUILD/xlbctl" "$SAN_BUILD/xlb-agent" \
        "$SAN_BUILD/xlb-proxy" >/dev/null; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    run_criterion unit-asan "$SAN_BUILD/tests/unit"
    run_criterion bpf-asan "$SAN_BUILD/tests/bpf"
else
    echo "check: the sanitizer build failed"
    total_fail=$((total_fail + 1)); failed_suites+=("sanitizer-build")
fi

# The HTTP/1 parser under libFuzzer for a while, from the committed corpus
# (new inputs go to a scratch directory, never into the corpus).
fuzz_http1() {
    local dir=$BUILD/fuzz-http1
    rm -rf "$dir" && mkdir -p "$dir" || return 1
    if "$BUILD/tests/fuzz_http1" -max_total_time=20 -timeout=10 \
            -artifact_prefix="$dir/crash-" "$dir" tests/fuzz/corpus/http1 2>&1 | tail -n 3; then
        echo "1 passed, 0 failed"
    else
        echo "0 passed, 1 failed"
    fi
}
run_shell fuzz-http1 fuzz_http1
for t in tests/integration/test_*.sh; do
    run_shell "integration/$(basename "$t" .sh)" env BUILD="$BUILD" XLBCTL="$BUILD/xlbctl" \
        XLBT_NAMESRV="$BUILD/tests/xlbt-namesrv" XLBT_CLIENT="$BUILD/tests/xlbt-client" \
        XLB_AGENT="$BUILD/xlb-agent" XLB_PROXY="$BUILD/xlb-proxy" \
        XLBT_BACKEND="$BUILD/tests/xlbt-backend" bash "$t"
done
# The proxy scenarios with the sanitizer build of xlb-proxy.
run_shell "integration/test_proxy-asan" env XLB_PROXY="$SAN_BUILD/xlb-proxy" \
    XLBT_BACKEND="$BUILD/tests/xlbt-backend" bash tests/integration/test_proxy.sh
run_shell "integration/test_proxy_tls-asan" env XLB_PROXY="$SAN_BUILD/xlb-proxy" \
    XLB_AGENT="$BUILD/xlb-agent" XLBCTL="$BUILD/xlbctl" \
    XLBT_BACKEND="$BUILD/tests/xlbt-backend" bash tests/integration/test_proxy_tls.sh
# The encapsulation scenarios once more with the sanitizer build of xlbctl.
run_shell "integration/test_encap-asan" env XLBCTL="$SAN_BUILD/xlbctl" \
    XLBT_NAMESRV="$BUILD/tests/xlbt-namesrv" XLBT_CLIENT="$BUILD/tests/xlbt-client" \
    bash tests/integration/test_encap.sh
# The agent scenarios with the sanitizer builds of xlb-agent and xlbctl.
run_shell "integration/test_agent-asan" env XLBCTL="$SAN_BUILD/xlbctl" \
    XLB_AGENT="$SAN_BUILD/xlb-agent" XLBT_NAMESRV="$BUILD/tests/xlbt-namesrv" \
    XLBT_CLIENT="$BUILD/tests/xlbt-client" bash tests/integration/test_agent.sh

echo
if [ ${#failed_suites[@]} -gt 0 ]; then
    echo "check: failing suites: ${failed_suites[*]}"
fi
echo "check: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ ${#failed_suites[@]} -eq 0 ]
