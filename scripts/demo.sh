#!/usr/bin/env bash
# xlb demo: the whole system on a topology of network namespaces: a client,
# one load balancer node running xlb-agent (XDP data plane, health checks,
# API, status page) and xlb-proxy (layer 7), and a farm of real servers.
#
#   scripts/demo.sh [--reals N] [--count N] [--method ipip|gue] [--hold]
#
# One config drives both daemons: an L4 service (encapsulated DSR to the
# reals, which answer the client directly) and an L7 service on the LB's
# address (TLS, cookie persistence, compression, cache) in front of small
# HTTP servers on the same reals.  It sends traffic through both, shows the
# distribution per real, takes a real down (its health check fails) and
# drains another, shows the metrics and the status page address.  --hold
# keeps everything running until Ctrl-C.  Everything it creates is removed
# at the end, also on Ctrl-C.  Needs root; run through "make demo".
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
source "$HERE/../tests/integration/lib.sh"

XLB_AGENT=$(xlbt_abs_bin "${XLB_AGENT:-$XLBT_ROOT/build/xlb-agent}")
XLB_PROXY=$(xlbt_abs_bin "${XLB_PROXY:-$XLBT_ROOT/build/xlb-proxy}")
XLBT_BACKEND=$(xlbt_abs_bin "${XLBT_BACKEND:-$XLBT_ROOT/build/tests/xlbt-backend}")
NREALS=3
COUNT=300
METHOD=ipip
HOLD=0
PORT=80
SERVICE=web-l4
L7=shop
API_ADDR=127.0.0.1:9121

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
	--hold) HOLD=1 && shift ;;
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

xlbt_install_traps
xlbt_preflight || die "$XLBT_PREFLIGHT_ERROR"
RUN_LOG=$(mktemp "/tmp/$XLBT_PREFIX-demo.XXXXXX") || die "cannot create a temporary file"

VIP=$XLBT_VIP4
TARGET="$VIP:$PORT"
LBIP=$XLBT_LB4
for b in "$XLB_AGENT" "$XLB_PROXY" "$XLBT_BACKEND"; do
	[[ -x $b ]] || die "missing $b: run make"
done
command -v curl >/dev/null || die "curl is missing (make demo installs it)"

say "topology: client, lb and $NREALS real servers on one bridge (namespaces $XLBT_PREFIX-*)"
run topo_up "$NREALS"

say "real servers: VIP on lo, decap program, xlbt-namesrv on $TARGET (L4), xlbt-backend on :8080 (L7)"
declare -A BACKEND_PID
for ((i = 1; i <= NREALS; i++)); do
	run rs_decap_attach "$i"
	run rs_start_namesrv "$i" --listen "$(rs_addr4 "$i"):$PORT"   # also on its own address, for the check
	in_ns_bg "rs$i" "backend-rs$i" "$XLBT_BACKEND" --name "rs$i" --listen "$(rs_addr4 "$i"):8080"
	BACKEND_PID[$i]=$XLBT_LAST_PID
done

DEMO_DIR=$XLBT_TMPDIR/demo
mkdir -p "$DEMO_DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$DEMO_DIR/key.pem" -out "$DEMO_DIR/cert.pem" -subj /CN=shop.demo.test \
	-addext subjectAltName=DNS:shop.demo.test >"$RUN_LOG" 2>&1 || die "openssl could not make a certificate"
cat "$DEMO_DIR/cert.pem" "$DEMO_DIR/key.pem" >"$DEMO_DIR/shop.pem"
CFG=$DEMO_DIR/xlb.yaml
{
	xlbt_node_yaml "127.0.0.1:9120" "$API_ADDR" "$DEMO_DIR/api.token"
	printf 'proxy:\n'
	printf '  workers: 2\n'
	printf '  metrics: {listen: "127.0.0.1:9122"}\n'
	printf '  access_log: %s\n' "$DEMO_DIR/access.log"
	printf '  cookie_key_file: %s\n' "$DEMO_DIR/cookie.key"
	printf 'services:\n'
	printf '  - name: %s\n    address: %s\n    ports: [%d]\n    forwarding: %s\n' "$SERVICE" "$VIP" "$PORT" "$METHOD"
	printf '    scheduler: wrr\n'
	printf '    health_check: {type: tcp, interval: 500ms, timeout: 300ms, rise: 1, fall: 2}\n'
	printf '    reals:\n'
	for ((i = 1; i <= NREALS; i++)); do printf '      - {name: rs%d, address: %s}\n' "$i" "$(rs_addr4 "$i")"; done
	printf '  - name: %s\n    address: %s\n    ports: [443]\n    layer: 7\n' "$L7" "$LBIP"
	printf '    scheduler: rr\n'
	printf '    tls: {certificates: [%s], redirect_http: true}\n' "$DEMO_DIR/shop.pem"
	printf '    persistence: {type: active-cookie, timeout: 10m}\n'
	printf '    compression: {enabled: true, min_size: 1KiB, types: ["text/*"]}\n'
	printf '    cache: {enabled: true, cache_query: true}\n'
	printf '    forwarded_headers: true\n'
	printf '    health_check: {type: http, port: 8080, path: /health, interval: 500ms, timeout: 300ms, rise: 1, fall: 2}\n'
	printf '    reals:\n'
	for ((i = 1; i <= NREALS; i++)); do printf '      - {name: rs%d, address: %s, port: 8080}\n' "$i" "$(rs_addr4 "$i")"; done
} >"$CFG"
run in_ns lb "$XLB_AGENT" --check "$CFG"

say "lb: xlb-agent (XDP on $XLBT_IFACE, $XLBT_XDP_MODE mode) and xlb-proxy from one config"
mkdir -p "$XLBT_BPFFS_BASE/libxdp-lb"
in_ns_bg lb agent env LIBXDP_BPFFS="$XLBT_BPFFS_BASE/libxdp-lb" "$XLB_AGENT" --config "$CFG"
AGENT_PID=$XLBT_LAST_PID
api() { in_ns lb timeout --foreground 15 "$XLBCTL" "$@" --api "$API_ADDR" --token-file "$DEMO_DIR/api.token"; }
for ((t = 0; t < 100; t++)); do api list --json >/dev/null 2>&1 && break; sleep 0.1; done
api list --json >/dev/null 2>&1 || { tail -n 20 "$XLBT_TMPDIR/agent.log" >&2; die "xlb-agent did not start"; }
in_ns_bg lb proxy "$XLB_PROXY" --config "$CFG"
for ((t = 0; t < 100; t++)); do in_ns lb curl -sf -o /dev/null http://127.0.0.1:9122/metrics && break; sleep 0.1; done
in_ns lb curl -sf -o /dev/null http://127.0.0.1:9122/metrics || { tail -n 20 "$XLBT_TMPDIR/proxy.log" >&2; die "xlb-proxy did not start"; }
for ((t = 0; t < 50; t++)); do [[ $(api list --json 2>/dev/null | grep -o '"state": *"up"' | wc -l) -ge $((2 * NREALS)) ]] && break; sleep 0.2; done
api list | sed 's/^/    /'

say "client: $COUNT connections to $TARGET, 3 request/reply exchanges each"
CLIENT_OUT=$(in_ns client timeout --foreground 150 "$XLBT_CLIENT" --connect "$TARGET" --count "$COUNT" \
	--exchanges 3 --parallel 10 --timeout-ms 3000 --deadline-ms 120000 --json 2>/dev/null)
STATUS_JSON=$(xlbctl_in lb status --json 2>/dev/null)

# One row per real: name, address, connections seen by the client, new
# flows counted by the LB, share and bar.
ADDRS=()
for ((i = 1; i <= NREALS; i++)); do
	ADDRS+=("$(rs_addr4 "$i")")
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

L4_OK=0
[[ -n $CLIENT_OUT ]] && [[ $(xlbt_json 'd["failed"]' <<<"$CLIENT_OUT" 2>/dev/null) == 0 ]] && L4_OK=1

# ---- layer 7 ----
U="https://shop.demo.test"
C7=(-s -m 5 --cacert "$DEMO_DIR/cert.pem" --resolve "shop.demo.test:443:$LBIP")
cl() { in_ns client curl "${C7[@]}" "$@"; }
who() { cl -D - -o /dev/null "$@" | sed -n 's/^X-Backend: \([^\r]*\).*/\1/p'; }
# spread N: N new clients (no cookie), with a progress line; prints a table.
spread() {
	local n=$1 i
	: >"$DEMO_DIR/who"
	for ((i = 1; i <= n; i++)); do
		who "$U/" >>"$DEMO_DIR/who"
		[[ -t 2 ]] && printf '\r    %s %d/%d requests' "$2" "$i" "$n" >&2
	done
	[[ -t 2 ]] && printf '\r%60s\r' '' >&2
	printf '    %s\n' "$2"
	sort "$DEMO_DIR/who" | uniq -c | awk -v bar="$BAR" '{ s = ""; for (k = 0; k < $1; k++) s = s bar; printf "    %-4s %4d  %s\n", $2, $1, s }'
}
echo
say "L7: $U (TLS offload on the LB): 30 new clients, scheduler rr"
spread 30 "new clients:"
rm -f "$DEMO_DIR/jar"
first=$(who -c "$DEMO_DIR/jar" "$U/")
for ((i = 0; i < 20; i++)); do who -b "$DEMO_DIR/jar" "$U/"; done | sort | uniq -c | sed 's/^/    cookie client:/'
say "cookie persistence: a browser-like client stays on $first (cookie XLBID, HMAC-signed)"
plain=$(cl -o /dev/null -w '%{size_download}' "$U/page?size=200000&h=Content-Type:text/html")
gz=$(cl -o /dev/null -w '%{size_download}' -H 'Accept-Encoding: gzip' "$U/page?size=200000&h=Content-Type:text/html")
say "compression: a 200000-byte page is $gz bytes with gzip ($plain without)"
q="$U/logo?size=5000&h=Cache-Control:max-age%3D300"
cl -o /dev/null "$q"
age=$(cl -D - -o /dev/null "$q" | sed -n 's/^Age: \([^\r]*\).*/\1/p')
say "cache: the second request for a cacheable URL is a hit (Age: ${age:-none}; access log: $(grep -c 'real=(cache)' "$DEMO_DIR/access.log") hit)"
redirect=$(in_ns client curl -s -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' "http://$LBIP/x?y=1")
say "port 80 answers: $redirect"

echo
victim=2
((NREALS < 2)) && victim=1
say "failure: rs$victim's HTTP server stops; its health check fails and the agent takes it out"
kill "${BACKEND_PID[$victim]}" 2>/dev/null
for ((t = 0; t < 50; t++)); do
	api list --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(r["name"]=="rs'$victim'" and r["state"]=="down" for s in d["services"] if s.get("layer")==7 for r in s["reals"]) else 1)' && break
	sleep 0.2
done
api list | sed 's/^/    /'
spread 30 "after the failure:"
if ((NREALS >= 3)); then
	say "drain: xlbctl drain $L7 rs3 - no new clients, the persistent ones stay"
	api drain "$L7" rs3 >/dev/null
	sleep 0.5
	spread 30 "after the drain:"
fi

echo
say "metrics: agent http://127.0.0.1:9120/metrics, proxy http://127.0.0.1:9122/metrics (in the lb namespace)"
in_ns lb curl -s http://127.0.0.1:9120/metrics | grep -E '^xlb_real_state\{vs="'"$L7"'".*state="(up|down|drain)"\} 1' | sed 's/^/    /'
in_ns lb curl -s http://127.0.0.1:9122/metrics | grep -E '^xlb_proxy_(requests_total|cache_lookups_total\{[^}]*hit|tls_handshakes_total\{[^}]*ok)' | sed 's/^/    /'
say "status page: http://$API_ADDR/ in the lb namespace (token in $DEMO_DIR/api.token);"
say "  e.g. nsenter --net=/run/netns/$(xlbt_ns lb) curl -s http://$API_ADDR/status | head"
if ((HOLD)); then
	say "running; Ctrl-C ends the demo and removes everything"
	while kill -0 "$AGENT_PID" 2>/dev/null; do sleep 1; done
fi
echo
if ((L4_OK)); then
	say "${G}all L4 connections went through the load balancer; L7 served over TLS${N}"
	exit 0
fi
say "${R}some connections failed${N} ${D}(see the table above)${N}"
exit 1
