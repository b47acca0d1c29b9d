#!/usr/bin/env bash
# make bench: data-plane ns/packet and Maglev build time.  Reported, never asserted.
set -euo pipefail
BUILD=${1:-build}
if [ "$(id -u)" -ne 0 ]; then
    echo "bench: needs root (BPF_PROG_TEST_RUN, network namespaces)" >&2
    exit 1
fi
"$BUILD/bench/bench_bpf" "${XLB_BENCH_REPEAT:-1000000}"
echo
"$BUILD/bench/bench_maglev"
echo
bench/bench_agent_checks.sh "$BUILD" "${XLB_BENCH_REALS:-5000}" "${XLB_BENCH_SECONDS:-20}"
echo
bench/bench_proxy.sh "$BUILD" "${XLB_BENCH_PROXY_SECONDS:-6}"
