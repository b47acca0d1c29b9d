#!/usr/bin/env bash
# xlb demo: a client, an XDP load balancer and real servers, each in its own
# network namespace, with traffic through a virtual service.
#
#   scripts/demo.sh [--reals N] [--count N] [--method ipip|gue] [--ipv6]
#
# Builds the topology of tests/integration/lib.sh, prepares the reals (VIP on
# lo, decap program, a server that answers with its name), loads xlb on the
# LB, sends --count connections (default 300) to the VIP and shows which real
# answered how many, next to the LB's own counters. Everything it creates is
# removed at the end, also on Ctrl-C. Needs root; run through "make demo".
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
source "$HERE/../tests/integration/lib.sh"

NREALS=3
COUNT=300
METHOD=ipip
FAMILY=4
PORT=80
SERVICE=demo

usage() {
	sed -n '5p' "${BASH_SOURCE[0]}" | sed 's/^#  */usage: /'
	exit "${1:-2}"
}

while (($# > 0)); do
	case $1 in
	--reals)
		if ! [[ ${2:-} =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 16)); then
			echo "demo: --reals takes 1..16" >&2
			exit 2
		fi
		NREALS=$2
		shift 2
		;;
	--count)
		if ! [[ ${2:-} =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 100000)); then
			echo "demo: --count takes 1..100000" >&2
			exit 2
		fi
		COUNT=$2
		shift 2
		;;
	--method)
		[[ ${2:-} == ipip || ${2:-} == gue ]] || { echo "demo: --method takes ipip or gue" >&2; exit 2; }
		METHOD=$2
		shift 2
		;;
	--ipv6) FAMILY=6 && shift ;;
	-h | --help) usage 0 ;;
	*) usage 2 ;;
	esac
done

if [[ -t 1 ]]; then
	B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
	B='' G='' R='' D='' N=''
fi
BAR='#'
[[ ${LC_ALL:-${LC_CTYPE:-${LANG:-}}} == *[Uu][Tt][Ff]-8* || ${LC_ALL:-${LC_CTYPE:-${LANG:-}}} == *utf8* ]] && BAR='█'

say() { printf '%s==>%s %s\n' "$B" "$N" "$*"; }
die() {
	printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2
	exit 1
}

# Run a step quietly (in this shell: the helpers record what they create);
# on failure show its output and stop.
RUN_LOG=
run() {
	if ! "$@" >"$RUN_LOG" 2>&1; then
		sed 's/^/    /' "$RUN_LOG" >&2
		die "failed: $*"
	fi
}

XLBT_EXIT_HOOK=demo_exit
# shellcheck disable=SC2317  # run by the exit trap
demo_exit() {
	local rc=$1
	[[ -n $RUN_LOG ]] && rm -f -- "$RUN_LOG"
	if [[ -n $XLBT_INTERRUPTED ]]; then
		say "interrupted; everything removed"
	else
		say "cleaned up: namespaces, XDP programs and pinned maps are gone"
	fi
	return "$rc"
}

xlbt_preflight || die "$XLBT_PREFLIGHT_ERROR"
xlbt_install_traps
RUN_LOG=$(mktemp "/tmp/$XLBT_PREFIX-demo.XXXXXX") || die "cannot create a temporary file"

if ((FAMILY == 6)); then
	VIP=$XLBT_VIP6
	TARGET="[$VIP]:$PORT"
else
	VIP=$XLBT_VIP4
	TARGET="$VIP:$PORT"
fi
rs_addr() { if ((FAMILY == 6)); then rs_addr6 "$1"; else rs_addr4 "$1"; fi; }

say "topology: client, lb and $NREALS real servers on one bridge (namespaces $XLBT_PREFIX-*)"
run topo_up "$NREALS"

say "real servers: VIP on lo, decap program attached, xlbt-namesrv on $TARGET"
for ((i = 1; i <= NREALS; i++)); do
	run rs_decap_attach "$i"
	run rs_start_namesrv "$i"
done

say "lb: xlb attached to $XLBT_IFACE ($XLBT_XDP_MODE mode), service $SERVICE $TARGET/tcp via $METHOD"
run lb_load
run xlbctl_in lb service add "$SERVICE" --vip "$VIP" --port "$PORT" --proto tcp --method "$METHOD"
for ((i = 1; i <= NREALS; i++)); do
	run xlbctl_in lb real add "$SERVICE" "$(rs_addr "$i")"
done

say "client: $COUNT connections to $TARGET, 3 request/reply exchanges each"
CLIENT_OUT=$(in_ns client timeout --foreground 150 "$XLBT_CLIENT" --connect "$TARGET" --count "$COUNT" \
	--exchanges 3 --parallel 10 --timeout-ms 3000 --deadline-ms 120000 --json 2>/dev/null)
STATUS_JSON=$(xlbctl_in lb status --json 2>/dev/null)

# One row per real: name, address, connections seen by the client, new
# flows counted by the LB, share and bar.
ADDRS=()
for ((i = 1; i <= NREALS; i++)); do
	ADDRS+=("$(rs_addr "$i")")
done
python3 - "$CLIENT_OUT" "$STATUS_JSON" "$SERVICE" "$BAR" "${ADDRS[@]}" <<'EOF'
import json, sys

client_raw, status_raw, service, bar = sys.argv[1:5]
addrs = sys.argv[5:]
nreals = len(addrs)
try:
    client = json.loads(client_raw)
except ValueError:
    print("    (no result from xlbt-client)")
    sys.exit(0)
lb_flows = {}
try:
    status = json.loads(status_raw)
    for s in status.get("services", []):
        if s.get("name") == service:
            for r in s.get("reals", []):
                lb_flows[r.get("address")] = r.get("new_flows")
except ValueError:
    pass

total = client.get("ok", 0) + client.get("failed", 0)
by_name = client.get("by_name", {})
peak = max(list(by_name.values()) + [1])
width = 36
print()
aw = max(len(a) for a in addrs + ["address"])
print("    %-5s %-*s %6s %9s %7s" % ("real", aw, "address", "conns", "lb flows", "share"))
for i, addr in enumerate(addrs, 1):
    name = "rs%d" % i
    n = by_name.get(name, 0)
    flows = lb_flows.get(addr)
    share = 100.0 * n / total if total else 0.0
    print("    %-5s %-*s %6d %9s %6.1f%%  %s" % (
        name, aw, addr, n, "-" if flows is None else flows, share, bar * round(width * n / peak)))
others = {k: v for k, v in by_name.items() if k not in ["rs%d" % i for i in range(1, nreals + 1)]}
for k, v in sorted(others.items()):
    print("    %-5s %-*s %6d" % (k, aw, "?", v))
print()
print("    %d of %d connections ok, %d failed, %d answered by more than one real" % (
    client.get("ok", 0), total, client.get("failed", 0), client.get("inconsistent", 0)))
EOF

echo
say "xlbctl status on lb"
xlbctl_in lb status 2>&1 | sed 's/^/    /'
echo

if [[ -n $CLIENT_OUT ]] && [[ $(xlbt_json 'd["failed"]' <<<"$CLIENT_OUT" 2>/dev/null) == 0 ]]; then
	say "${G}all connections went through the load balancer${N}"
	exit 0
fi
say "${R}some connections failed${N} ${D}(see the table above)${N}"
exit 1
