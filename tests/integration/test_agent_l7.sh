#!/usr/bin/env bash
# xlb-agent and layer-7 services: the health of every layer-7 real in the
# pinned xlb_l7_reals map that xlb-proxy reads (bpf/xlb_abi.h).
#
#   tests/integration/test_agent_l7.sh
#
# One network namespace ($PREFIX) with only its loopback: the reals are
# python3 http.server instances on 127.0.0.11/12 (the service's own reals
# web1, web2, port 8080), 127.0.0.21 (img1 of sub-service "img", port 8081)
# and 127.0.0.22 (img2, no port: checked on the service's port 80); web3
# (127.0.0.13) is "enabled: false" and has no server.  The agent runs with
# a config that has only this layer-7 service and no node.interfaces, HTTP
# checks every ${INTERVAL_MS} ms (rise $RISE, fall $FALL), its bpffs
# directory under /sys/fs/bpf/$PREFIX.  The map is read with bpftool.
#
# Checked: a pinned map of another layout is replaced; the agent starts
# without XDP interfaces; the map is pinned with
# one entry per real: web1, web2, img1, img2 "up" with their weights, web3
# "halt", img2 with port 0; the API lists the pools "shop" and "shop/img"
# with layer 7 and no vs_id; "xlbctl list" prints them; /metrics passes
# promtool and has xlb_real_state for the layer-7 reals; after img1's
# server stops, its entry is "down" within $DOWN_BOUND_MS ms; "xlbctl drain"
# of web1 (shop) and of img2 (shop/img, sent as shop%2Fimg) makes their
# entries "drain" at once, "enable" "up" again, "weight" changes the entry's
# weight; a reload without web2 removes web2's entry and keeps the others;
# an agent restart reuses the map (same map id), rewrites every entry
# (generations grow) and adopts the drain and the down state.
#
# Output: "ok - ..." / "not ok - ..." lines, last "N passed, M failed".
# Exit status 0 all passed, 1 a check failed, 2 cannot run here.
# Environment: XLB_AGENT, XLBCTL (default under build/), XLBT_KEEP_LOGS=1.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"
# shellcheck source=tests/integration/bpffs.sh
source "$HERE/bpffs.sh"

abs() { [[ $1 == /* ]] && printf '%s\n' "$1" || printf '%s/%s\n' "$PWD" "$1"; }
XLB_AGENT=$(abs "${XLB_AGENT:-$ROOT/build/xlb-agent}")
XLBCTL=$(abs "${XLBCTL:-$ROOT/build/xlbctl}")

PREFIX=xlbt-a7$$
NS=$PREFIX
BPFFS=/sys/fs/bpf/$PREFIX
MAP=$BPFFS/xlb_l7_reals
API_ADDR=127.0.0.1:9121
METRICS_ADDR=127.0.0.1:9120
INTERVAL_MS=200
TIMEOUT_MS=150
RISE=2
FALL=2
UP_WAIT_MS=5000
DOWN_BOUND_MS=3000  # expected ~ interval * fall + timeout

PIDS=()
AGENT_PID=
XLBT_INTERRUPTED=
declare -A SRV_PID

cleanup() {
	local rc=$? p
	trap '' INT TERM HUP
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	[[ $BPFFS == /sys/fs/bpf/xlbt-a7* && -d $BPFFS ]] && rm -rf -- "$BPFFS"
	xlbt_bpffs_release
	if [[ -n $TEST_TMP && ${XLBT_KEEP_LOGS:-0} == 1 ]]; then
		cp -r -- "$TEST_TMP" "$TEST_TMP.kept" && echo "# logs kept in $TEST_TMP.kept"
	fi
	summary "$rc"
	exit $?
}

in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }

# bg NAME CMD...: CMD in the namespace, output to $TEST_TMP/NAME.log.
LAST_PID=
bg() {
	local name=$1
	shift
	# nsenter execs CMD: $! is CMD's PID.
	nsenter --net="/run/netns/$NS" -- "$@" >"$TEST_TMP/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

stop_pid() {
	kill -TERM "$1" 2>/dev/null
	local i
	for ((i = 0; i < 30; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

api() { in_ns timeout --foreground 15 "$XLBCTL" "$@" --api "$API_ADDR" --token-file "$TEST_TMP/api.token"; }

# server NAME ADDR PORT: an HTTP server for real NAME.
server() {
	bg "srv-$1" python3 -m http.server --bind "$2" --directory "$TEST_TMP/www" "$3"
	SRV_PID[$1]=$LAST_PID
}

# write_config [with_web2]
write_config() {
	local web2=${1:-1}
	{
		printf 'node:\n'
		printf '  bpffs: %s\n' "$BPFFS"
		printf '  metrics: {listen: "%s"}\n' "$METRICS_ADDR"
		printf '  api: {listen: "%s", token_file: %s}\n' "$API_ADDR" "$TEST_TMP/api.token"
		printf '  rebalance_interval: 200ms\n'
		printf 'services:\n'
		printf '  - name: shop\n'
		printf '    address: 198.18.70.10\n'
		printf '    ports: [80]\n'
		printf '    layer: 7\n'
		printf '    scheduler: rr\n'
		printf '    persistence: {type: active-cookie}\n'
		printf '    health_check: {type: http, path: /, interval: %dms, timeout: %dms, rise: %d, fall: %d}\n' \
			"$INTERVAL_MS" "$TIMEOUT_MS" "$RISE" "$FALL"
		printf '    reals:\n'
		printf '      - {name: web1, address: 127.0.0.11, port: 8080}\n'
		((web2)) && printf '      - {name: web2, address: 127.0.0.12, port: 8080, weight: 50}\n'
		printf '      - {name: web3, address: 127.0.0.13, port: 8080, enabled: false}\n'
		printf '    sub_services:\n'
		printf '      - name: img\n'
		printf '        match: {path_prefix: /img}\n'
		printf '        scheduler: lc\n'
		printf '        health_check: {type: http, path: /ok, interval: %dms, timeout: %dms, rise: %d, fall: %d}\n' \
			"$INTERVAL_MS" "$TIMEOUT_MS" "$RISE" "$FALL"
		printf '        reals:\n'
		printf '          - {name: img1, address: 127.0.0.21, port: 8081, weight: 20}\n'
		printf '          - {name: img2, address: 127.0.0.22}\n'
	} >"$TEST_TMP/xlb.yaml"
}

start_agent() {
	local name=$1 try
	bg "$name" env LIBXDP_BPFFS="$BPFFS/libxdp" "$XLB_AGENT" --config "$TEST_TMP/xlb.yaml"
	AGENT_PID=$LAST_PID
	AGENT_LOG=$TEST_TMP/$name.log
	for ((try = 0; try < 150; try++)); do
		if ! kill -0 "$AGENT_PID" 2>/dev/null; then
			echo "xlb-agent exited:"
			tail -n 30 -- "$AGENT_LOG"
			return 1
		fi
		api list --json >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the API does not answer after 15 s"
	tail -n 30 -- "$AGENT_LOG"
	return 1
}

# dump: the map's entries as "VS SUB NAME PORT STATE WEIGHT GEN CHANGED_MS"
# lines into $TEST_TMP/map.txt (NAME: the address; SUB "-" for none).
dump() {
	bpftool map dump pinned "$MAP" -j >"$TEST_TMP/map.json" 2>"$TEST_TMP/map.err" || return 1
	python3 - "$TEST_TMP/map.json" >"$TEST_TMP/map.txt" <<'EOF'
import json, socket, struct, sys
for e in json.load(open(sys.argv[1])):
    k = bytes(int(x, 16) for x in e['key'])
    v = bytes(int(x, 16) for x in e['value'])
    vs = k[0:48].rstrip(b'\0').decode()
    sub = k[48:96].rstrip(b'\0').decode() or '-'
    fam = k[112]
    addr = socket.inet_ntop(socket.AF_INET if fam == 4 else socket.AF_INET6,
                            k[96:100] if fam == 4 else k[96:112])
    port, = struct.unpack_from('=H', k, 114)
    state, weight, changed, check_us, gen = struct.unpack('=IIQII', v)
    print(vs, sub, addr, port, ['up', 'down', 'drain', 'halt'][state], weight, gen, changed,
          check_us)
EOF
}

# entry ADDR FIELD: a field of ADDR's entry in the last dump (state, weight,
# gen, port, sub, changed, check_us).
entry() {
	awk -v a="$1" -v f="$2" '$3 == a {
		if (f == "sub") print $2; else if (f == "port") print $4; else if (f == "state") print $5;
		else if (f == "weight") print $6; else if (f == "gen") print $7;
		else if (f == "changed") print $8; else if (f == "check_us") print $9 }' "$TEST_TMP/map.txt"
}

# wait_state ADDR STATE BOUND_MS: until ADDR's entry has STATE; prints the ms waited.
wait_state() {
	local t0 t
	t0=$(now_ms)
	while :; do
		dump && [[ $(entry "$1" state) == "$2" ]] && { echo $(($(now_ms) - t0)); return 0; }
		t=$(now_ms)
		((t - t0 > $3)) && { echo "after $3 ms: $(entry "$1" state)"; cat "$TEST_TMP/map.txt"; return 1; }
		sleep 0.05
	done
}

# now_state ADDR STATE: ADDR's entry has STATE now.
now_state() {
	dump && [[ $(entry "$1" state) == "$2" ]] && return 0
	echo "# $1 is $(entry "$1" state), not $2" >&2
	return 1
}

# q CMD...: CMD with its standard output dropped.
q() { "$@" >/dev/null; }

all_up() {
	local a
	for a in 127.0.0.11 127.0.0.12 127.0.0.21 127.0.0.22; do
		wait_state "$a" up "$UP_WAIT_MS" >/dev/null || { cat "$TEST_TMP/map.txt"; return 1; }
	done
}

nentries() { dump && wc -l <"$TEST_TMP/map.txt"; }

map_field() { bpftool map show pinned "$MAP" -j | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
map_id() { map_field id; }

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---------------------------------------------------------------------------

TEST_TMP=$(mktemp -d "/tmp/$PREFIX.XXXXXX") || exit 2
trap cleanup EXIT
trap 'XLBT_INTERRUPTED=INT; exit 130' INT
trap 'XLBT_INTERRUPTED=TERM; exit 143' TERM
trap 'XLBT_INTERRUPTED=HUP; exit 129' HUP

prereq() {
	[[ $EUID -eq 0 ]] || { echo "must run as root"; return 1; }
	local c
	for c in ip nsenter bpftool python3 curl promtool timeout; do
		command -v "$c" >/dev/null || { echo "$c not found"; return 1; }
	done
	[[ -x $XLB_AGENT && -x $XLBCTL ]] || { echo "no $XLB_AGENT or $XLBCTL"; return 1; }
	xlbt_bpffs_need || { echo "$XLBT_BPFFS_ERROR"; return 1; }
}
if ! step "prerequisites (root, bpftool, python3, curl, promtool, binaries, bpffs)" prereq; then
	PREREQ_FAILED=1
	exit 2
fi

setup() {
	ip netns add "$NS" && ip -n "$NS" link set lo up && mkdir -p "$TEST_TMP/www" "$BPFFS" &&
		echo ok >"$TEST_TMP/www/ok" || return 1
	server web1 127.0.0.11 8080
	server web2 127.0.0.12 8080
	server img1 127.0.0.21 8081
	server img2 127.0.0.22 80
	write_config
}
step "namespace $NS and four HTTP servers" setup || exit 1
step "xlb-agent --check accepts a config with only a layer-7 service and no interfaces" \
	"$XLB_AGENT" --check "$TEST_TMP/xlb.yaml" || exit 1
# A leftover pin of another layout must be replaced.
step "a pinned xlb_l7_reals of another layout (4-byte keys) is left in the bpffs directory" \
	bpftool map create "$MAP" type hash key 4 value 4 entries 16 name xlb_l7_reals
stale_id=$(map_id)
[[ -n $stale_id ]] || stale_id=none
step "xlb-agent starts without XDP interfaces and its API answers" start_agent agent1 || exit 1
replaced() {
	[[ -e $MAP && $(map_field bytes_key) == 116 && $(map_field bytes_value) == 24 &&
		$(map_field max_entries) == 8192 && $(map_id) != "$stale_id" ]] &&
		grep -q 'replacing it' "$TEST_TMP/agent1.log"
}
check "$MAP is pinned (116-byte keys, 24-byte values, 8192 entries), the stale map replaced with a log line" replaced
check "web1, web2, img1, img2 come up in the map (http checks)" all_up
check "the map holds exactly the 5 configured reals" test "$(nentries)" = 5
dump
check "web3 (enabled: false, no server) is halt" test "$(entry 127.0.0.13 state)" = halt
check "weights in force: web1 100, web2 50, img1 20" \
	test "$(entry 127.0.0.11 weight) $(entry 127.0.0.12 weight) $(entry 127.0.0.21 weight)" = "100 50 20"
check "keys: own reals with no sub-service, img1/img2 under 'img', img2 with port 0" \
	test "$(entry 127.0.0.11 sub) $(entry 127.0.0.21 sub) $(entry 127.0.0.22 sub) $(entry 127.0.0.22 port) $(entry 127.0.0.21 port)" = "- img img 0 8081"
check "entries carry a change time and a check duration" \
	test "$(entry 127.0.0.11 changed)" -gt 1600000000000 -a "$(entry 127.0.0.11 check_us)" -gt 0

# API
api list --json >"$TEST_TMP/list.json" 2>&1
check "the API lists the pools shop and shop/img with layer 7, their scheduler and persistence, no vs_id" \
	test "$(json '" ".join("%s:%s:%s:%s:%s" % (s["name"], s.get("layer"), s["scheduler"], s["persistence"], "vs_id" in s) for s in d["services"])' <"$TEST_TMP/list.json")" \
	= "shop:7:rr:active-cookie:False shop/img:7:lc:active-cookie:False"
check "the API shows img1 up with its http check" \
	test "$(json '[r["state"]+":"+r["check"]["type"] for s in d["services"] for r in s["reals"] if r["name"]=="img1"][0]' <"$TEST_TMP/list.json")" = "up:http"
api list >"$TEST_TMP/list.txt" 2>&1
check "xlbctl list prints the layer-7 pools" grep -q 'shop/img' "$TEST_TMP/list.txt"
check "GET /api/v1/services/shop%2Fimg answers the sub-service pool" \
	test "$(api list shop/img --json | json 'd["name"]+":"+str(len(d["reals"]))')" = "shop/img:2"

# Metrics
in_ns curl -s --noproxy '*' --max-time 5 "http://$METRICS_ADDR/metrics" >"$TEST_TMP/metrics.txt"
check "/metrics passes promtool check metrics" promtool check metrics <"$TEST_TMP/metrics.txt"
check "xlb_real_state of the layer-7 reals: img1 up in shop/img, web3 halt in shop" \
	grep -q '^xlb_real_state{vs="shop/img",rs="img1",state="up"} 1' "$TEST_TMP/metrics.txt" &&
	grep -q '^xlb_real_state{vs="shop",rs="web3",state="halt"} 1' "$TEST_TMP/metrics.txt"
check "no data-plane counters for layer-7 reals" \
	bash -c "! grep -q '^xlb_real_packets_total{vs=\"shop' '$TEST_TMP/metrics.txt'"

# Down
stop_pid "${SRV_PID[img1]}"
if waited=$(wait_state 127.0.0.21 down "$DOWN_BOUND_MS"); then
	ok "img1's entry is down ${waited} ms after its server stopped (bound $DOWN_BOUND_MS ms)"
else
	not_ok "img1's entry is down within $DOWN_BOUND_MS ms: $waited"
fi
dump
check "the others stay up" test "$(entry 127.0.0.11 state) $(entry 127.0.0.22 state)" = "up up"

# Operator commands
check "xlbctl drain shop web1" q api drain shop web1
check "web1's entry is drain when xlbctl returns" now_state 127.0.0.11 drain
check "xlbctl drain shop/img img2 (sent as shop%2Fimg)" q api drain shop/img img2
check "img2's entry is drain when xlbctl returns" now_state 127.0.0.22 drain
check "xlbctl weight shop/img img2 7" q api weight shop/img img2 7
dump
check "img2's entry has weight 7" test "$(entry 127.0.0.22 weight)" = 7
check "xlbctl enable shop/img img2" q api enable shop/img img2
check "img2's entry is up again when xlbctl returns" now_state 127.0.0.22 up
fails() { ! "$@"; }
check "drain of a real of an unknown pool fails" fails api drain shop/nope img2

# Reload without web2
write_config 0
check "xlbctl reload without web2" q api reload
dump
check "web2's entry is removed, 4 entries remain" \
	test "$(entry 127.0.0.12 state)|$(nentries)" = "|4"
check "web1 stays drained and img1 down across the reload" \
	test "$(entry 127.0.0.11 state) $(entry 127.0.0.21 state)" = "drain down"

# Restart
dump
id1=$(map_id)
declare -A gen1
for a in 127.0.0.11 127.0.0.13 127.0.0.21 127.0.0.22; do gen1[$a]=$(entry $a gen); done
stop_pid "$AGENT_PID"
step "a new xlb-agent starts" start_agent agent2
check "the restarted agent reuses the map (map id $id1)" test "$(map_id)" = "$id1"
rewritten() {
	local a
	dump || return 1
	for a in 127.0.0.11 127.0.0.13 127.0.0.21 127.0.0.22; do
		(($(entry $a gen) > ${gen1[$a]})) || { echo "$a: gen $(entry $a gen) <= ${gen1[$a]}"; return 1; }
	done
}
check "every entry was rewritten (generations grew)" rewritten
dump
check "the drain of web1 and the down state of img1 are adopted" \
	test "$(entry 127.0.0.11 state) $(entry 127.0.0.21 state) $(entry 127.0.0.13 state)" = "drain down halt"
server img1 127.0.0.21 8081
check "img1 comes back up when its server returns" q wait_state 127.0.0.21 up "$UP_WAIT_MS"
stop_pid "$AGENT_PID"
check "no sanitizer report in the agents' logs" \
	bash -c "! grep -qiE 'sanitizer|leak' '$TEST_TMP/agent1.log' '$TEST_TMP/agent2.log'"
exit 0
