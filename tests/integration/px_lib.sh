# shellcheck shell=bash
# The harness of the xlb-proxy integration tests: one network namespace
# with only its loopback, processes started in it, one "ok"/"not ok" line
# per check and the closing "N passed, M failed" line scripts/check.sh
# reads.  Everything the test starts or creates goes at exit, also on
# failure or Ctrl-C.
#
#   NS_TAG=px source "$(dirname "$0")/px_lib.sh"   # namespace xlbt<PID><tag>
#   px_setup BINARY...                             # root, binaries, namespace
#   bg NAME CMD...   c CURL-ARGS...   wait_for SECONDS CMD...
#   finish
#
# Binaries from the environment (scripts/check.sh sets them): XLB_PROXY,
# XLB_AGENT, XLBCTL, XLBT_BACKEND; defaults under build/.

# shellcheck source=tests/integration/bpffs.sh
source "$(dirname "${BASH_SOURCE[0]}")/bpffs.sh"

PROXY=$(realpath -m "${XLB_PROXY:-build/xlb-proxy}")
AGENT=$(realpath -m "${XLB_AGENT:-build/xlb-agent}")
XLBCTL=$(realpath -m "${XLBCTL:-build/xlbctl}")
BACKEND=$(realpath -m "${XLBT_BACKEND:-build/tests/xlbt-backend}")
NS=xlbt$$${NS_TAG:-px}
BPFFS=/sys/fs/bpf/$NS
TMP=$(mktemp -d "/tmp/$NS.XXXXXX")
pass=0
fail=0
declare -A PID

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

px_cleanup() {
    local p
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PID[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    [[ -d $BPFFS ]] && rm -rf -- "$BPFFS"
    xlbt_bpffs_release
    rm -rf "$TMP"
}
trap px_cleanup EXIT
trap 'exit 130' INT TERM

finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

# px_setup BINARY...: fail loudly unless root, the binaries and curl exist
# and the namespace can be made.
px_setup() {
    local f
    if [ "$(id -u)" -ne 0 ]; then not_ok "must run as root (network namespace)"; finish; fi
    for f in "$@"; do
        [ -x "$f" ] || { not_ok "missing binary $f (run make)"; finish; }
    done
    command -v curl >/dev/null || { not_ok "curl is not installed"; finish; }
    # With the agent, bpffs: the agent would mount it itself and leave it;
    # mounted here, it goes at exit.
    for f in "$@"; do
        [[ $f == "$AGENT" ]] || continue
        xlbt_bpffs_need || { not_ok "$XLBT_BPFFS_ERROR"; finish; }
    done
    if ! ip netns add "$NS" || ! ip -n "$NS" link set lo up; then
        not_ok "cannot create network namespace $NS"; finish
    fi
}

in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }
# bg NAME CMD...: CMD in the namespace, output in $TMP/NAME.log; nsenter
# execs CMD, so PID[NAME] is CMD itself.
bg() { local n=$1; shift; nsenter --net="/run/netns/$NS" -- "$@" >"$TMP/$n.log" 2>&1 & PID[$n]=$!; }
# stop NAME: SIGTERM and wait; returns the exit status.
stop() { local rc; kill -TERM "${PID[$1]}"; wait "${PID[$1]}"; rc=$?; unset "PID[$1]"; return $rc; }
c() { in_ns curl -s -m 10 "$@"; }
# who CURL-ARGS...: the X-Backend of the answer.
who() { c -D - -o /dev/null "$@" | sed -n 's/^X-Backend: \([^\r]*\).*/\1/p'; }
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done
}
