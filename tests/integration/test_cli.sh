#!/usr/bin/env bash
# xlbctl's answers to an operator's mistakes: each names the cause and the
# fix, with exit status 1 (operation failed) or 2 (usage).  Runs in its own
# network namespace; removes everything it creates.
set -uo pipefail

XLBCTL=$(realpath -m "${XLBCTL:-build/xlbctl}")
NS=xlbt$$cli
BPFFS=/sys/fs/bpf/$NS
# shellcheck source=tests/integration/bpffs.sh
source "$(dirname "${BASH_SOURCE[0]}")/bpffs.sh"
# libxdp's own state of this test goes here, not into the shared /sys/fs/bpf/xdp.
export LIBXDP_BPFFS=$BPFFS-libxdp
pass=0
fail=0

cleanup() {
    ip netns del "$NS" 2>/dev/null
    rm -rf "$BPFFS" "$BPFFS-decap" "$LIBXDP_BPFFS" 2>/dev/null
    xlbt_bpffs_release
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }

# expect RC PATTERN DESCRIPTION -- CMD...: exit status and a message matching PATTERN
expect() {
    local want_rc=$1 pattern=$2 what=$3 out rc
    shift 4
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -eq "$want_rc" ] && grep -qE -- "$pattern" <<<"$out"; then
        ok "$what"
    else
        not_ok "$what (exit $rc, expected $want_rc; output: $(head -c 300 <<<"$out"))"
    fi
}

if [ "$(id -u)" -ne 0 ]; then
    not_ok "must run as root (network namespaces, XDP)"
    echo "$pass passed, $fail failed"
    exit 1
fi
if ! xlbt_bpffs_need || ! mkdir -p "$LIBXDP_BPFFS"; then
    not_ok "${XLBT_BPFFS_ERROR:-cannot create $LIBXDP_BPFFS}"
    echo "$pass passed, $fail failed"
    exit 1
fi
if ! ip netns add "$NS" || ! ip -n "$NS" link add xlbt0 type veth peer name xlbt1 ||
   ! ip -n "$NS" link set xlbt0 up || ! ip -n "$NS" link set xlbt1 up; then
    not_ok "cannot create network namespace $NS"
    echo "$pass passed, $fail failed"
    exit 1
fi
in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }

expect 2 "load needs --iface" "usage: load without --iface" -- "$XLBCTL" load
expect 2 "--port must be a number from 0 to 65535" "usage: port out of range" -- \
    "$XLBCTL" service add x --vip 198.18.10.10 --port 70000 --proto tcp --method ipip
expect 2 "--method must be ipip, gue, dsr or nat" "usage: unknown method" -- \
    "$XLBCTL" service add x --vip 198.18.10.10 --port 80 --proto tcp --method foo
expect 2 "does not take --weight" "usage: option of another command" -- \
    "$XLBCTL" status --weight 3
expect 1 "needs root.*run xlbctl as root" "not root: says so" -- \
    in_ns setpriv --reuid=65534 --regid=65534 --clear-groups "$XLBCTL" load --iface xlbt0 \
    --bpffs "$BPFFS"
expect 1 "no interface named nope0" "unknown interface named" -- \
    in_ns "$XLBCTL" load --iface nope0 --bpffs "$BPFFS"
expect 1 "not on a BPF filesystem.*mount -t bpf bpf /sys/fs/bpf" "pin directory outside bpffs" -- \
    in_ns "$XLBCTL" load --iface xlbt0 --bpffs "/tmp/$NS"
expect 1 "no xlb data plane pinned at $BPFFS.*xlbctl load" "status before load names the fix" -- \
    in_ns "$XLBCTL" status --bpffs "$BPFFS"

# Another XDP program in the way: the decap program on the same interface.
expect 0 "decap attached" "decap attach" -- \
    in_ns "$XLBCTL" decap attach --iface xlbt0 --addr 198.18.0.5 --bpffs "$BPFFS-decap"
expect 1 "another XDP program is in the way on xlbt0.*remove it" "program in the way" -- \
    in_ns "$XLBCTL" load --iface xlbt0 --bpffs "$BPFFS"
expect 0 "decap detached" "decap detach" -- \
    in_ns "$XLBCTL" decap detach --iface xlbt0 --bpffs "$BPFFS-decap"

expect 0 "attached to xlbt0" "load" -- in_ns "$XLBCTL" load --iface xlbt0 --bpffs "$BPFFS"
expect 1 "pinned connection table .* has [0-9]+ entries, not 4096" "conn table size is kept" -- \
    in_ns "$XLBCTL" load --iface xlbt0 --bpffs "$BPFFS" --conn-table-size 4096
expect 0 "" "service add" -- in_ns "$XLBCTL" service add web --vip 198.18.10.10 --port 80 \
    --proto tcp --method ipip --bpffs "$BPFFS"
expect 1 "service web exists already" "duplicate service name" -- \
    in_ns "$XLBCTL" service add web --vip 198.18.10.11 --port 80 --proto tcp --method ipip \
    --bpffs "$BPFFS"
expect 1 "already belong to another service" "duplicate VIP, port and protocol" -- \
    in_ns "$XLBCTL" service add web2 --vip 198.18.10.10 --port 80 --proto tcp --method ipip \
    --bpffs "$BPFFS"
expect 1 "ring size 65536 must be a prime" "ring size not prime" -- \
    in_ns "$XLBCTL" service add web3 --vip 198.18.10.12 --port 80 --proto tcp --method ipip \
    --ring-size 65536 --bpffs "$BPFFS"
expect 1 "no service named nosuch" "real for an unknown service" -- \
    in_ns "$XLBCTL" real add nosuch 198.18.1.1 --bpffs "$BPFFS"
expect 0 "" "real add" -- in_ns "$XLBCTL" real add web 198.18.1.1 --bpffs "$BPFFS"
expect 1 "real 198.18.1.1 is already in service web" "duplicate real" -- \
    in_ns "$XLBCTL" real add web 198.18.1.1 --bpffs "$BPFFS"
expect 0 '"name": "web"' "status --json lists the service" -- \
    in_ns "$XLBCTL" status --json --bpffs "$BPFFS"
expect 0 "detached from xlbt0" "unload" -- in_ns "$XLBCTL" unload --iface xlbt0 --bpffs "$BPFFS"
if [ -e "$BPFFS/xlb_conns" ]; then
    not_ok "unload of the last interface removes the pinned maps"
else
    ok "unload of the last interface removes the pinned maps"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
