#!/usr/bin/env bash
# Layer-4 services of xlb-agent end to end, in network namespaces: several
# ports and both protocols, source-IP persistence, and the dsr and nat
# forwarding methods.
#
#   tests/integration/test_l4.sh [SCENARIO ...]
#       (default: multiport persistence dsr dsr6 nat nat6)
#
#   multiport    one "protocol: tcp+udp" service on seven ports over ipip.
#   persistence  source-ip persistence (timeout 1m, netmask 24) on a wrr
#                service, beside a control service without persistence.
#   dsr, dsr6    "forwarding: dsr" (MAC rewrite only), IPv4 and IPv6.
#   nat, nat6    "forwarding: nat" on a two-arm LB, port 80 -> 8080, IPv4
#                and IPv6.
#
# A scenario whose config "xlb-agent --check" rejects fails ("not ok"); no
# scenario is ever skipped.
#
# Each scenario builds its own topology (lib.sh) and runs xlb-agent on the
# LB with a config written by this script (health checks: tcp every
# ${CHECK_INTERVAL_MS} ms, rise $RISE, fall $FALL); xlbctl talks to the
# agent's API from inside the LB's namespace. Every real runs xlbt-namesrv,
# which answers every request with the real's name, so the client knows
# which real answered each connection and that all of its packets reached
# that one real.
#
#   multiport: topo_up with 3 reals (decap attached). Service "multi" on
#     $XLBT_VIP4, ports [80, 443, 3389, 4172, "50001-50002", 53] (seven),
#     tcp+udp, ipip, wrr; the reals' xlbt-namesrv listens on every port, TCP
#     and UDP (--udp). Checked: "xlbctl list" shows the seven ports and
#     tcp+udp; on every port $MP_CONNS TCP connections and $MP_CONNS UDP
#     "connections" (own source port each, $EXCHANGES datagrams) all succeed,
#     each answered by one real, and reach at least 2 reals; over all ports
#     each real answers at least a sixth of each protocol's connections; the
#     service's new_flows in "xlbctl list --json" grew by exactly the number
#     of connections made, and the reals' new_flows add up to the same.
#   persistence: topo_up with 3 reals (decap attached); the client also
#     holds $CLIENT4_B, in the same /24 as $XLBT_CLIENT4. Service "sticky"
#     on port 80 (wrr, persistence source-ip, timeout 1m, netmask 24) and
#     service "control" on port $CONTROL_PORT (wrr, no persistence), the
#     same reals. Checked, with connections made one at a time:
#     - $P_CONNS connections from A to "control" reach all 3 reals (each at
#       least a sixth): without persistence the service spreads;
#     - $P_CONNS from A and then $P_CONNS from B ($CLIENT4_B) to "sticky": all
#       of them land on one real X;
#     - X drained: $P_CONNS from A and $P_CONNS from B: none on X (a drained
#       real's persistence entry is ignored), all on one real Y (the entry
#       is rewritten);
#     - X enabled, weights X and Z $HEAVY, Y $LIGHT ("xlbctl weight"): $P_CONNS
#       from A all on Y: a fresh entry beats the scheduler's weights;
#     - $PERSIST_WAIT_S s later (timeout 60 s, counted from the last new
#       connection): $P_CONNS from A: none on Y (the expired entry no longer
#       binds; the table gives Y 1 entry of 2001), and all on
#       one real: the first connection wrote a new entry that the others
#       follow.
#   dsr, dsr6: topo_up with 3 reals (VIPs on lo, arp_ignore=1,
#     arp_announce=2, no decap). Service "web" on $XLBT_VIP4:80 (dsr6:
#     [$XLBT_VIP6]:80 with the reals' IPv6 addresses), forwarding dsr, wrr.
#     $BULK_CONNS connections succeed, each answered by one real, each real
#     at least a sixth. The frames that cross the switch ports are counted
#     (xlbt_sniff_start): the replies (from VIP:80) reach the client's port
#     and none crosses the LB's port; every client frame to VIP:80 reaches
#     the LB's port, leaves it again and reaches a real's port as plain TCP
#     to VIP:80 (not encapsulated); the service's packets in "xlbctl status
#     --json" grew by the client's frames only (within 2%), less than 3/4 of
#     the frames both ways.
#   nat, nat6: topo_up_two_arm with 3 reals on the farm bridge (no VIP, default
#     route via the LB), XDP on both of the LB's interfaces
#     (node.interfaces: [xlbt0, xlbt1]). Service "web" on $XLBT_VIP4:80
#     (nat6: [$XLBT_VIP6]:80, IPv6 reals), forwarding nat, wrr, reals
#     "port: $NAT_PORT", the only port xlbt-namesrv listens on. $BULK_CONNS
#     connections succeed, spread as for dsr; counted frames: the requests reach the
#     reals' ports translated (client source kept, destination port
#     $NAT_PORT) and none still addressed to the VIP; the reals' replies go
#     to the LB's farm port, and the same number of replies from VIP:80
#     leave the LB's front port and reach the client's port; no untranslated
#     reply reaches the client. $LONG_CONNS long-lived connections are open
#     while "ss" in the reals' namespaces shows every one of them with the
#     client's address as the peer and the real's own address:$NAT_PORT as
#     the local end; all of them end well.
#   every scenario: afterwards no agent runs, no namespace and no pinned
#     object of this run is left.
#
# Output: one "ok - ..." or "not ok - ..." line per check, diagnostics as
# "# ..." lines, and last exactly one line "N passed, M failed".
# Exit status: 0 all passed; 1 a check failed; 2 the test cannot run here
# (not root, BPF, a binary or ss unavailable), reported as a failure, not
# skipped.
#
# Environment: XLB_AGENT, XLBCTL, XLBT_NAMESRV, XLBT_CLIENT (binaries,
# default under build/), XLBT_XDP_MODE (default native), XLBT_SCENARIOS
# (instead of arguments), XLBT_KEEP_LOGS=1 (keep the log directory, with the
# agent's log).
# shellcheck disable=SC2317  # functions run through step/check and the exit hook
# shellcheck disable=SC2016  # conditions given to check as 'eval' strings expand when checked
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
source "$HERE/lib.sh"

XLB_AGENT=$(xlbt_abs_bin "${XLB_AGENT:-$XLBT_ROOT/build/xlb-agent}")

KNOWN_SCENARIOS="multiport persistence dsr dsr6 nat nat6"
DEFAULT_SCENARIOS=$KNOWN_SCENARIOS

NREALS=3
WEIGHT=100
CHECK_INTERVAL_MS=200
CHECK_TIMEOUT_MS=150
RISE=2
FALL=2
UP_WAIT_MS=3000     # first decision of every check: the first probe comes within one interval
AGENT_START_S=15    # at most this long for a started agent's API to answer
METRICS_ADDR=127.0.0.1:9120
API_ADDR=127.0.0.1:9121
EXCHANGES=3         # request/reply exchanges of each connection

MP_PORTS=(80 443 3389 4172 50001 50002 53)
MP_PORTS_CFG='[80, 443, 3389, 4172, "50001-50002", 53]'
MP_CONNS=12         # per port and protocol

CLIENT4_B=198.18.0.3 # the second client of $XLBT_CLIENT4's /24
CONTROL_PORT=81
P_CONNS=30          # connections of each persistence step
PERSIST_TIMEOUT_S=60
PERSIST_WAIT_S=62   # after the last new connection: timeout + the 1 s refresh granularity + 1 s
HEAVY=1000          # weights of the two other reals ...
LIGHT=1             # ... and of the persisted real before the entry expires

BULK_CONNS=300      # dsr and nat
NAT_PORT=8080
LONG_CONNS=30       # nat: long-lived connections, all at once ...
LONG_EXCHANGES=40   # ... this many exchanges ...
INTERVAL_MS=50      # ... this far apart (about 2 s)
LONG_TIMEOUT_MS=20000
ESTABLISH_WAIT_S=10
SNIFF_MAX_S=120     # the frame counter stops by itself after this long

# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"

# Per scenario: the config file, the token file, the service's address.
CFG=
TOKEN_FILE=
FAM=4
VIP=$XLBT_VIP4
CLIENT_ADDR=$XLBT_CLIENT4

# ---------------------------------------------------------------------------
# Setup

attach_decap_all() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		rs_decap_attach "$i" || return 1
	done
}

# start_namesrv N PROBE [ARGS...]: xlbt-namesrv --name rsN ARGS in rsN; waits
# until a TCP connection from inside rsN to PROBE (ADDR:PORT) is answered
# (at most ~5 s).
start_namesrv() {
	local i=$1 probe=$2 try pid
	shift 2
	in_ns_bg "rs$i" "namesrv-rs$i" "$XLBT_NAMESRV" --name "rs$i" "$@"
	pid=$XLBT_LAST_PID
	for ((try = 0; try < 50; try++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "xlbt-namesrv on rs$i exited:"
			tail -n 20 -- "$XLBT_TMPDIR/namesrv-rs$i.log"
			return 1
		fi
		in_ns "rs$i" "$XLBT_CLIENT" --connect "$probe" --count 1 --timeout-ms 200 \
			>/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "xlbt-namesrv on rs$i does not answer on $probe"
	return 1
}

# The reals' own address of the scenario's family: ADDR, or [ADDR] for IPv6.
real_addr() {
	local a
	case $TOPO in
	two-arm) if [[ $FAM == 6 ]]; then a=$(rs_farm_addr6 "$1"); else a=$(rs_farm_addr4 "$1"); fi ;;
	*) if [[ $FAM == 6 ]]; then a=$(rs_addr6 "$1"); else a=$(rs_addr4 "$1"); fi ;;
	esac
	printf '%s\n' "$a"
}
hostport() { if [[ $1 == *:* ]]; then printf '[%s]:%s\n' "$1" "$2"; else printf '%s:%s\n' "$1" "$2"; fi; }

# namesrv_all PROBE_PORT ARGS...: xlbt-namesrv on every real with ARGS,
# probed on the real's own address and PROBE_PORT.
namesrv_all() {
	local port=$1 i
	shift
	for ((i = 1; i <= NREALS; i++)); do
		start_namesrv "$i" "$(hostport "$(real_addr "$i")" "$port")" "$@" || return 1
	done
}

# write_node FILE IFACE...: the node part of the config.
write_node() {
	local f=$1 ifs
	shift
	ifs=$(printf '%s, ' "$@")
	{
		printf '# xlb-agent configuration of tests/integration/test_l4.sh\n'
		printf 'node:\n'
		printf '  interfaces: [%s]\n' "${ifs%, }"
		printf '  xdp_mode: %s\n' "$XLBT_XDP_MODE"
		printf '  bpffs: %s\n' "$XLBT_BPFFS_BASE/lb"
		printf '  tunnel_source: {ipv4: "%s", ipv6: "%s"}\n' "$XLBT_TUNSRC4" "$XLBT_TUNSRC6"
		printf '  gue_port: %d\n' "$XLBT_GUE_PORT"
		printf '  metrics: {listen: "%s"}\n' "$METRICS_ADDR"
		printf '  api: {listen: "%s", token_file: %s}\n' "$API_ADDR" "$TOKEN_FILE"
		printf '  rebalance_interval: 200ms\n'
		printf 'services:\n'
	} >"$f"
}

# write_service FILE NAME ADDR PORTS PROTO FWD CHECK_PORT REAL_PORT [EXTRA]:
# append a service over rs1..rsN (their own addresses of the family);
# EXTRA is one more line of the service's keys.
write_service() {
	local f=$1 name=$2 addr=$3 ports=$4 proto=$5 fwd=$6 cport=$7 rport=$8 extra=${9:-} i rp=
	((rport)) && rp=", port: $rport"
	{
		printf '  - name: %s\n' "$name"
		printf '    address: "%s"\n' "$addr"
		printf '    ports: %s\n' "$ports"
		printf '    protocol: %s\n' "$proto"
		printf '    forwarding: %s\n' "$fwd"
		printf '    scheduler: wrr\n'
		[[ -n $extra ]] && printf '    %s\n' "$extra"
		printf '    health_check: {type: tcp, port: %d, interval: %dms, timeout: %dms, rise: %d, fall: %d}\n' \
			"$cport" "$CHECK_INTERVAL_MS" "$CHECK_TIMEOUT_MS" "$RISE" "$FALL"
		printf '    reals:\n'
		for ((i = 1; i <= NREALS; i++)); do
			printf '      - {name: rs%d, address: "%s", weight: %d%s}\n' "$i" "$(real_addr "$i")" \
				"$WEIGHT" "$rp"
		done
	} >>"$f"
}

# xlbctl's API commands inside the LB's namespace.
api() {
	in_ns lb timeout --foreground 15 "$XLBCTL" "$@" --api "$API_ADDR" --token-file "$TOKEN_FILE"
}

AGENT_PID=
AGENT_LOG=

# start_agent NAME: xlb-agent --config $CFG in the LB's namespace, with
# libxdp's pins under the LB's bpffs directory (as xlbctl_in has them);
# waits until its API answers. Output to $XLBT_TMPDIR/NAME.log.
start_agent() {
	local name=$1 try
	mkdir -p "$XLBT_BPFFS_BASE/libxdp-lb" || return 1
	in_ns_bg lb "$name" env LIBXDP_BPFFS="$XLBT_BPFFS_BASE/libxdp-lb" "$XLB_AGENT" --config "$CFG"
	AGENT_PID=$XLBT_LAST_PID
	AGENT_LOG=$XLBT_TMPDIR/$name.log
	for ((try = 0; try < AGENT_START_S * 10; try++)); do
		if ! kill -0 "$AGENT_PID" 2>/dev/null; then
			echo "xlb-agent exited; its output:"
			tail -n 30 -- "$AGENT_LOG"
			return 1
		fi
		api list --json >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the API of xlb-agent at $API_ADDR does not answer after $AGENT_START_S s; its output:"
	tail -n 30 -- "$AGENT_LOG"
	return 1
}

dump_agent() {
	[[ -n $AGENT_LOG ]] || return 0
	xlbt_log "xlb-agent's output ($AGENT_LOG):"
	xlbt_log_file "$AGENT_LOG" 30
	if api list >"$TEST_TMP/list.dump" 2>&1; then
		xlbt_log "xlbctl list:"
	else
		xlbt_log "xlbctl list failed:"
	fi
	xlbt_log_file "$TEST_TMP/list.dump"
	if xlbctl_in lb status >"$TEST_TMP/status.dump" 2>&1; then
		xlbt_log "xlbctl status:"
		xlbt_log_file "$TEST_TMP/status.dump" 60
	fi
}

# The scenario's topology, reals and config.
TOPO=one-arm

setup_multiport() {
	local p args=()
	for p in "${MP_PORTS[@]}"; do
		args+=(--listen "0.0.0.0:$p")
	done
	write_node "$CFG" "$XLBT_IFACE"
	write_service "$CFG" multi "$XLBT_VIP4" "$MP_PORTS_CFG" tcp+udp ipip 80 0
	step "multiport: topology up (client, lb, $NREALS reals, bridge)" topo_up "$NREALS" &&
		step "multiport: decap attached on rs1..rs$NREALS" attach_decap_all &&
		step "multiport: xlbt-namesrv on every real, TCP and UDP on the seven ports" \
			namesrv_all 80 "${args[@]}" --udp
}

setup_persistence() {
	write_node "$CFG" "$XLBT_IFACE"
	write_service "$CFG" sticky "$XLBT_VIP4" "[80]" tcp ipip 80 0 \
		"persistence: {type: source-ip, timeout: 1m, netmask: 24}"
	write_service "$CFG" control "$XLBT_VIP4" "[$CONTROL_PORT]" tcp ipip 80 0
	step "persistence: topology up (client, lb, $NREALS reals, bridge)" topo_up "$NREALS" &&
		step "persistence: the client also holds $CLIENT4_B/24" \
			ip -n "$(xlbt_ns client)" addr add "$CLIENT4_B/24" dev "$XLBT_IFACE" &&
		step "persistence: decap attached on rs1..rs$NREALS" attach_decap_all &&
		step "persistence: xlbt-namesrv on every real, ports 80 and $CONTROL_PORT" \
			namesrv_all 80 --listen 0.0.0.0:80 --listen "0.0.0.0:$CONTROL_PORT"
}

setup_dsr() {
	local sc=$1
	write_node "$CFG" "$XLBT_IFACE"
	write_service "$CFG" web "$VIP" "[80]" tcp dsr 80 0
	step "$sc: topology up (client, lb, $NREALS reals with the VIPs on lo, arp_ignore=1, arp_announce=2)" \
		topo_up "$NREALS" &&
		step "$sc: xlbt-namesrv on every real, port 80 (no decap: dsr sends plain frames)" \
			namesrv_all 80 --listen 0.0.0.0:80 --listen "[::]:80"
}

setup_nat() {
	local sc=$1
	TOPO=two-arm
	write_node "$CFG" "$XLBT_IFACE" "$XLBT_FARM_IFACE"
	write_service "$CFG" web "$VIP" "[80]" tcp nat 0 "$NAT_PORT"
	step "$sc: two-arm topology up (client and lb on the front bridge, lb and $NREALS reals on the farm bridge)" \
		topo_up_two_arm "$NREALS" &&
		step "$sc: xlbt-namesrv on every real, port $NAT_PORT only" \
			namesrv_all "$NAT_PORT" --listen "0.0.0.0:$NAT_PORT" --listen "[::]:$NAT_PORT"
}

# setup SC: topology and servers of SC, then the agent, all reals up.
setup() {
	local sc=$1
	CFG=$TEST_TMP/$sc-xlb.yaml
	TOKEN_FILE=$TEST_TMP/$sc-api.token
	AGENT_PID=
	AGENT_LOG=
	TOPO=one-arm
	FAM=4
	VIP=$XLBT_VIP4
	CLIENT_ADDR=$XLBT_CLIENT4
	if [[ $sc == *6 ]]; then
		FAM=6
		VIP=$XLBT_VIP6
		CLIENT_ADDR=$XLBT_CLIENT6
	fi
	case $sc in
	multiport) setup_multiport ;;
	persistence) setup_persistence ;;
	dsr | dsr6) setup_dsr "$sc" ;;
	nat | nat6) setup_nat "$sc" ;;
	esac || return 1
	step "$sc: xlb-agent --check accepts the config" \
		in_ns lb timeout --foreground 30 "$XLB_AGENT" --check "$CFG" || {
		xlbt_log "the config:"
		xlbt_log_file "$CFG" 60
		return 1
	}
	step "$sc: xlb-agent runs on lb and its API answers" start_agent "$sc-agent" &&
		check_all_up "$sc"
}

# ---------------------------------------------------------------------------
# Observations

LIST_JSON=

# list: "xlbctl list --json" into $LIST_JSON.
list() {
	LIST_JSON=$TEST_TMP/list.json
	api list --json >"$LIST_JSON" 2>"$TEST_TMP/list.err"
}

# svc_field SERVICE EXPR: a field of a service in the last list ("['vs_id']").
svc_field() {
	xlbt_json "[s for s in d['services'] if s['name'] == '$1'][0]$2" <"$LIST_JSON"
}

# real_field SERVICE NAME EXPR: a field of a real in the last list.
real_field() {
	xlbt_json "[r for s in d['services'] if s['name'] == '$1' for r in s['reals'] if r['name'] == '$2'][0]$3" \
		<"$LIST_JSON"
}

# states: "rs1=up rs2=down ..." of every service in the last list.
states() {
	xlbt_json "' '.join('%s/%s=%s' % (s['name'], r['name'], r['state']) for s in d['services'] for r in s['reals'])" \
		<"$LIST_JSON"
}

# checked_up: every real of every service is up on a check decision, after
# at least $RISE probes and no failure (from the last list).
checked_up() {
	[[ $(xlbt_json "len(d['services']) > 0 and all(r['state'] == 'up' and r['usable'] and r['check']['up'] and r['check'].get('probes', 0) >= $RISE and r['check'].get('failures', 1) == 0 for s in d['services'] for r in s['reals'])" \
		<"$LIST_JSON" 2>/dev/null) == True ]]
}

# check_all_up SC: all reals up with their checks run, within $UP_WAIT_MS.
check_all_up() {
	local sc=$1 t0 waited
	t0=$(xlbt_now_ms)
	while :; do
		list && checked_up && break
		(($(xlbt_now_ms) - t0 < UP_WAIT_MS)) || break
		sleep 0.05
	done
	waited=$(($(xlbt_now_ms) - t0))
	if ! check "$sc: every real up, each after >= $RISE passing TCP checks (${waited} ms; $(states 2>/dev/null))" \
		checked_up; then
		xlbt_log_file "$LIST_JSON" 60
		return 1
	fi
}

# svc_status SERVICE FIELD: a counter of a service from the pinned maps
# ("xlbctl status --json"; every data-plane entry of the service summed).
svc_status() {
	xlbctl_in lb status --json >"$TEST_TMP/status.json" 2>"$TEST_TMP/status.err" || return 1
	xlbt_json "sum(s['$2'] for s in d['services'] if s['name'] == '$1')" <"$TEST_TMP/status.json"
}

# ---------------------------------------------------------------------------
# Connections

# client_fields JSON: "ok failed inconsistent rs1 .. rs$NREALS unknown" of a
# client result into the array F.
F=()
client_fields() {
	local expr fields
	expr="' '.join(str(x) for x in [d['ok'], d['failed'], d['inconsistent']]"
	expr+=" + [d['by_name'].get('rs%d' % i, 0) for i in range(1, $NREALS + 1)]"
	expr+=" + [sum(v for k, v in d['by_name'].items() if k not in ['rs%d' % i for i in range(1, $NREALS + 1)])])"
	fields=$(xlbt_json "$expr" <"$1" 2>/dev/null) || return 1
	read -r -a F <<<"$fields"
}

# answered N: connections answered by rsN in F ("x" if unknown).
answered() { if ((${#F[@]} > $1 + 2)); then echo "${F[$(($1 + 2))]}"; else echo x; fi; }

# by_real: "rs1 A, rs2 B, rs3 C" from F.
by_real() {
	local i out=
	for ((i = 1; i <= NREALS; i++)); do
		out+="${out:+, }rs$i $(answered "$i")"
	done
	printf '%s\n' "$out"
}

# reals_used: how many reals answered a connection in F.
reals_used() {
	local i n=0
	for ((i = 1; i <= NREALS; i++)); do
		is_positive "$(answered "$i")" && n=$((n + 1))
	done
	echo "$n"
}

# only_real N: the real that answered all N connections in F, or "none".
only_real() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		if [[ $(answered "$i") == "$1" ]]; then
			echo "rs$i"
			return 0
		fi
	done
	echo none
}

# client_ok N: all N connections in F succeeded, none inconsistent, none
# answered by an unknown server.
client_ok() {
	((${#F[@]} == NREALS + 4)) && all_ok "${F[0]}" "${F[1]}" "$1" && is_zero "${F[2]}" &&
		is_zero "${F[$((NREALS + 3))]}"
}

CLIENT_OUT=
CLIENT_ERR=
# run_client NAME TARGET N PARALLEL [ARGS...]: N connections of $EXCHANGES
# exchanges to TARGET from the client's namespace; fields into F. Fails if
# there is no result.
run_client() {
	local name=$1 target=$2 n=$3 par=$4
	shift 4
	CLIENT_OUT=$TEST_TMP/$name.json
	CLIENT_ERR=$TEST_TMP/$name.err
	in_ns client timeout --foreground 90 "$XLBT_CLIENT" --connect "$target" --count "$n" \
		--exchanges "$EXCHANGES" --parallel "$par" --timeout-ms 3000 --deadline-ms 60000 \
		--json "$@" >"$CLIENT_OUT" 2>"$CLIENT_ERR"
	F=()
	client_fields "$CLIENT_OUT"
}

client_diag() {
	xlbt_log "xlbt-client:"
	xlbt_log_file "$CLIENT_OUT"
	xlbt_log_file "$CLIENT_ERR"
}

# conns SC WHAT TARGET N PARALLEL [ARGS...]: N connections, checked: all
# succeed, each answered by one real, none by an unknown server. Sets F.
conns() {
	local sc=$1 what=$2 target=$3 n=$4 par=$5
	shift 5
	run_client "$sc-${what//[^a-zA-Z0-9]/_}" "$target" "$n" "$par" "$@"
	if ! check "$sc: $what: ${F[0]:-?}/$n connections to $target succeeded, each answered by one real (failed ${F[1]:-?}, inconsistent ${F[2]:-?}, unknown ${F[$((NREALS + 3))]:-?}; $(by_real))" \
		client_ok "$n"; then
		client_diag
		return 1
	fi
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Conditions of checks (arguments may be "x" where a value is missing).
all_ok() { is_uint "$1" && is_uint "$2" && (($1 == $3 && $2 == 0)); }
is_zero() { [[ $1 == 0 ]]; }
is_positive() { is_uint "$1" && (($1 > 0)); }
at_least() { is_uint "$1" && (($1 >= $2)); }
same() { [[ $1 == "$2" ]]; }
differ() { [[ $1 != "$2" ]]; }
# each_real_at_least MIN: every real answered at least MIN connections in F.
each_real_at_least() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		at_least "$(answered "$i")" "$1" || return 1
	done
}
# within A B PCT: A is within PCT percent of B (both counts, B > 0).
within() { is_uint "$1" && is_uint "$2" && (($2 > 0 && 100 * ($1 > $2 ? $1 - $2 : $2 - $1) <= $3 * $2)); }
delta() { if is_uint "$1" && is_uint "$2"; then echo $(($2 - $1)); else echo x; fi; }
not_running() { ! kill -0 "$1" 2>/dev/null; }
# agent_up: the agent started in this scenario still runs.
agent_up() { [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null; }

# ---------------------------------------------------------------------------
# multiport

scenario_multiport() {
	local sc=multiport good=1 p proto nf0 nf1 total=0 i sum_tcp sum_udp
	local -a tcp_by=() udp_by=() r0=() r1=()
	list || good=0
	check "$sc: xlbctl list shows service multi with the seven ports and tcp+udp ($(svc_field multi "['ports']" 2>/dev/null) $(svc_field multi "['protocol']" 2>/dev/null))" \
		same "$(svc_field multi "['ports']" 2>/dev/null) $(svc_field multi "['protocol']" 2>/dev/null)" \
		"[53, 80, 443, 3389, 4172, 50001, 50002] tcp+udp" || good=0
	nf0=$(svc_field multi "['counters']['new_flows']" 2>/dev/null) || nf0=x
	for ((i = 1; i <= NREALS; i++)); do
		r0[i]=$(real_field multi "rs$i" "['counters']['new_flows']" 2>/dev/null) || r0[i]=x
		tcp_by[i]=0
		udp_by[i]=0
	done

	for p in "${MP_PORTS[@]}"; do
		for proto in tcp udp; do
			local args=()
			[[ $proto == udp ]] && args=(--udp)
			run_client "$sc-$proto-$p" "$XLBT_VIP4:$p" "$MP_CONNS" 4 "${args[@]}"
			if ! check "$sc: $proto $p: ${F[0]:-?}/$MP_CONNS succeeded, each answered by one real, $(reals_used) reals used ($(by_real); failed ${F[1]:-?}, inconsistent ${F[2]:-?})" \
				eval 'client_ok "$MP_CONNS" && at_least "$(reals_used)" 2'; then
				client_diag
				good=0
			fi
			total=$((total + MP_CONNS))
			for ((i = 1; i <= NREALS; i++)); do
				if is_uint "$(answered "$i")"; then
					if [[ $proto == tcp ]]; then
						tcp_by[i]=$((tcp_by[i] + $(answered "$i")))
					else
						udp_by[i]=$((udp_by[i] + $(answered "$i")))
					fi
				fi
			done
		done
	done
	local n_proto=$((MP_CONNS * ${#MP_PORTS[@]})) min
	min=$((n_proto / 6))
	sum_tcp="rs1 ${tcp_by[1]}, rs2 ${tcp_by[2]}, rs3 ${tcp_by[3]}"
	sum_udp="rs1 ${udp_by[1]}, rs2 ${udp_by[2]}, rs3 ${udp_by[3]}"
	check "$sc: over the seven ports each real answered at least $min of the $n_proto TCP connections ($sum_tcp)" \
		eval '((tcp_by[1] >= min && tcp_by[2] >= min && tcp_by[3] >= min))' || good=0
	check "$sc: ... and at least $min of the $n_proto UDP ones ($sum_udp)" \
		eval '((udp_by[1] >= min && udp_by[2] >= min && udp_by[3] >= min))' || good=0

	list || good=0
	nf1=$(svc_field multi "['counters']['new_flows']" 2>/dev/null) || nf1=x
	check "$sc: xlbctl list --json: the service's new_flows grew by the $total connections made ($nf0 -> $nf1)" \
		same "$(delta "$nf0" "$nf1")" "$total" || good=0
	local rsum=0 rdesc=
	for ((i = 1; i <= NREALS; i++)); do
		r1[i]=$(real_field multi "rs$i" "['counters']['new_flows']" 2>/dev/null) || r1[i]=x
		if is_uint "$(delta "${r0[i]}" "${r1[i]}")"; then
			rsum=$((rsum + r1[i] - r0[i]))
		else
			rsum=x
		fi
		rdesc+="${rdesc:+, }rs$i +$(delta "${r0[i]}" "${r1[i]}")"
	done
	check "$sc: ... and so did the reals' new_flows together ($rdesc)" same "$rsum" "$total" || good=0
	((good)) || dump_agent
}

# ---------------------------------------------------------------------------
# persistence

# pconns SC WHAT PORT SRC: $P_CONNS connections, one at a time, from SRC to
# $XLBT_VIP4:PORT, checked. Sets F.
pconns() {
	conns "$1" "$2" "$XLBT_VIP4:$3" "$P_CONNS" 1 --source "$4"
}

scenario_persistence() {
	local sc=persistence good=1 x y z t_last left
	pconns "$sc" "control service (no persistence) from $XLBT_CLIENT4" "$CONTROL_PORT" "$XLBT_CLIENT4" ||
		good=0
	check "$sc: without persistence the $P_CONNS connections reach all $NREALS reals, each at least $((P_CONNS / 6)) ($(by_real))" \
		each_real_at_least $((P_CONNS / 6)) || good=0

	pconns "$sc" "sticky from $XLBT_CLIENT4" 80 "$XLBT_CLIENT4" || good=0
	x=$(only_real "$P_CONNS")
	check "$sc: all $P_CONNS connections of $XLBT_CLIENT4 land on one real ($x; $(by_real))" \
		differ "$x" none || good=0
	pconns "$sc" "sticky from $CLIENT4_B" 80 "$CLIENT4_B" || good=0
	check "$sc: all $P_CONNS connections of $CLIENT4_B (same /24) land on the same real $x ($(only_real "$P_CONNS"); $(by_real))" \
		eval '[[ $x != none && $(only_real "$P_CONNS") == "$x" ]]' || good=0
	if [[ $x == none ]]; then
		xlbt_log "$sc: no persisted real; the remaining steps need one"
		dump_agent
		return
	fi

	# A drained real's entry is ignored; the entry is rewritten.
	step "$sc: xlbctl drain sticky $x" api drain sticky "$x" || good=0
	pconns "$sc" "sticky from $XLBT_CLIENT4 with $x drained" 80 "$XLBT_CLIENT4" || good=0
	y=$(only_real "$P_CONNS")
	check "$sc: with $x drained none of them reaches $x and all land on one other real ($y; $(by_real))" \
		eval '[[ $y != none && $y != "$x" ]]' || good=0
	pconns "$sc" "sticky from $CLIENT4_B with $x drained" 80 "$CLIENT4_B" || good=0
	check "$sc: ... and $CLIENT4_B's follow them to $y ($(only_real "$P_CONNS"); $(by_real))" \
		eval '[[ $y != none && $(only_real "$P_CONNS") == "$y" ]]' || good=0
	if [[ $y == none || $y == "$x" ]]; then
		dump_agent
		return
	fi

	# A fresh entry beats the weights.
	local i r w desc=
	step "$sc: xlbctl enable sticky $x" api enable sticky "$x" || good=0
	for ((i = 1; i <= NREALS; i++)); do
		r=rs$i
		w=$HEAVY
		[[ $r == "$y" ]] && w=$LIGHT
		step "$sc: xlbctl weight sticky $r $w" api weight sticky "$r" "$w" || good=0
	done
	list || good=0
	for ((i = 1; i <= NREALS; i++)); do
		desc+="${desc:+ }rs$i=$(real_field sticky "rs$i" "['state']" 2>/dev/null)/$(real_field sticky "rs$i" "['effective_weight']" 2>/dev/null)"
	done
	local want=
	for ((i = 1; i <= NREALS; i++)); do
		w=$HEAVY
		[[ rs$i == "$y" ]] && w=$LIGHT
		want+="${want:+ }rs$i=up/$w"
	done
	check "$sc: every real up, effective weights $HEAVY but $y $LIGHT ($desc)" same "$desc" "$want" ||
		good=0
	pconns "$sc" "sticky from $XLBT_CLIENT4 after the weight change" 80 "$XLBT_CLIENT4" || good=0
	t_last=$(xlbt_now_ms)
	check "$sc: all $P_CONNS land on $y still, the real of the fresh entry, weight $LIGHT against $HEAVY ($(only_real "$P_CONNS"); $(by_real))" \
		same "$(only_real "$P_CONNS")" "$y" || good=0

	# The entry expires $PERSIST_TIMEOUT_S s after the last new connection.
	left=$(((t_last + PERSIST_WAIT_S * 1000 - $(xlbt_now_ms) + 999) / 1000))
	xlbt_log "$sc: waiting ${left} s for the persistence entry to expire (timeout ${PERSIST_TIMEOUT_S} s)"
	((left > 0 && left <= PERSIST_WAIT_S)) && sleep "$left"
	check "$sc: the agent still runs after the wait" agent_up || good=0
	pconns "$sc" "sticky from $XLBT_CLIENT4 after the timeout" 80 "$XLBT_CLIENT4" || good=0
	z=$(only_real "$P_CONNS")
	check "$sc: $(((t_last > 0 ? $(xlbt_now_ms) - t_last : 0) / 1000)) s later none reaches $y (the entry expired; the table has $y once in $((2 * HEAVY + LIGHT))), and all land on one real ($z; $(by_real))" \
		eval '[[ $(answered "${y#rs}") == 0 && $z != none ]]' || good=0
	((good)) || dump_agent
}

# ---------------------------------------------------------------------------
# dsr and nat: frames on the switch ports

# The switch ports of the reals, comma-separated.
real_ports() {
	local i out=
	for ((i = 1; i <= NREALS; i++)); do
		out+="${out:+,}xlbt-rs$i"
	done
	printf '%s\n' "$out"
}

# sum_reals DIR LABEL: a count summed over the reals' ports.
sum_reals() {
	local i v sum=0
	for ((i = 1; i <= NREALS; i++)); do
		v=$(xlbt_sniff_count "xlbt-rs$i" "$1" "$2") || {
			echo x
			return 1
		}
		sum=$((sum + v))
	done
	echo "$sum"
}

# bulk SC: $BULK_CONNS connections to VIP:80, checked, spread over the reals.
bulk() {
	local sc=$1 good=1
	conns "$sc" bulk "$(hostport "$VIP" 80)" "$BULK_CONNS" 10 || good=0
	check "$sc: each real answered at least $((BULK_CONNS / 6)) of the $BULK_CONNS connections ($(by_real))" \
		each_real_at_least $((BULK_CONNS / 6)) || good=0
	((good))
}

scenario_dsr() {
	local sc=$1 good=1 p0 p1 ports
	ports="xlbt-lb,xlbt-client,$(real_ports)"
	p0=$(svc_status web packets) || p0=x
	if ! step "$sc: frame counter on the switch ports ($ports)" \
		xlbt_sniff_start "$sc-sniff" "$SNIFF_MAX_S" "$ports" \
		"req=tcp,$CLIENT_ADDR,*,$VIP,80" "rep=tcp,$VIP,80,$CLIENT_ADDR,*"; then
		dump_agent
		return
	fi
	bulk "$sc" || good=0
	sleep 0.5 # the last FIN and ACK
	step "$sc: frame counter stopped with a result" xlbt_sniff_stop || good=0
	p1=$(svc_status web packets) || p1=x

	local drops c_req c_rep l_req_to l_req_from l_rep r_req lb_pk total
	drops=$(xlbt_json "d['drops']" <"$XLBT_SNIFF_OUT" 2>/dev/null) || drops=x
	c_req=$(xlbt_sniff_count xlbt-client in req)
	c_rep=$(xlbt_sniff_count xlbt-client out rep)
	l_req_to=$(xlbt_sniff_count xlbt-lb out req)
	l_req_from=$(xlbt_sniff_count xlbt-lb in req)
	l_rep=$(xlbt_sniff_count xlbt-lb out rep)+$(xlbt_sniff_count xlbt-lb in rep)
	if [[ $l_rep =~ ^[0-9]+\+[0-9]+$ ]]; then l_rep=$((l_rep)); else l_rep=x; fi
	r_req=$(sum_reals out req)
	lb_pk=$(delta "$p0" "$p1")
	total=x
	is_uint "$c_req" && is_uint "$c_rep" && total=$((c_req + c_rep))
	xlbt_log "$sc: frames: client->VIP $c_req at the client's port, $l_req_to to and $l_req_from from the LB's port, $r_req at the reals' ports; VIP->client $c_rep at the client's port, $l_rep at the LB's; LB counted $lb_pk packets"
	check "$sc: the frame counter lost no frame (drops $drops)" is_zero "$drops" || good=0
	check "$sc: the replies reach the client's port: $c_rep frames from VIP:80 (at least one per exchange, $((BULK_CONNS * EXCHANGES)))" \
		at_least "$c_rep" $((BULK_CONNS * EXCHANGES)) || good=0
	check "$sc: no reply crosses the LB's port ($l_rep frames from VIP:80 there)" is_zero "$l_rep" || good=0
	check "$sc: every client frame to VIP:80 reaches the LB's port ($l_req_to of $c_req)" \
		eval 'is_positive "$c_req" && same "$l_req_to" "$c_req"' || good=0
	check "$sc: ... leaves it again ($l_req_from) and reaches a real's port as plain TCP to VIP:80, MACs rewritten, not encapsulated ($r_req)" \
		eval 'same "$l_req_from" "$l_req_to" && same "$r_req" "$l_req_to"' || good=0
	check "$sc: the LB's counters (xlbctl status --json, packets of web) saw the client's frames only: $lb_pk packets, within 2% of $l_req_to and below 3/4 of the $total frames both ways" \
		eval 'within "$lb_pk" "$l_req_to" 2 && is_uint "$total" && ((4 * lb_pk < 3 * total))' || good=0
	((good)) || dump_agent
}

# Established connections at the client to VIP:80.
client_established() {
	local dst=$VIP
	[[ $VIP == *:* ]] && dst="[$VIP]"
	in_ns client ss -Htn state established dst "$dst" "( dport = :80 )" | wc -l
}

# real_peers N: "LOCAL PEER" (addresses without ports) of the established
# TCP connections on port $NAT_PORT in rsN, one line each.
real_peers() {
	in_ns "rs$1" ss -Htn state established "( sport = :$NAT_PORT )" |
		awk '{ l = $3; p = $4; sub(/:[0-9]+$/, "", l); sub(/:[0-9]+$/, "", p);
		       gsub(/[][]/, "", l); gsub(/[][]/, "", p); print l, p }'
}

LONG_PID=
N_EST=0
# wait_established: all $LONG_CONNS long-lived connections open at the
# client (at most $ESTABLISH_WAIT_S s; fails if the client ends first).
wait_established() {
	local try
	for ((try = 0; try < ESTABLISH_WAIT_S * 20; try++)); do
		N_EST=$(client_established)
		((N_EST >= LONG_CONNS)) && return 0
		kill -0 "$LONG_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# nat_peers SC: long-lived connections; while they are open, every one is
# seen in a real's namespace with the client's address as its peer.
nat_peers() {
	local sc=$1 good=1 json=$TEST_TMP/$1-long.json err=$TEST_TMP/$1-long.err i lines
	local n_peer=0 n_bad=0 bad='' rc=0
	in_ns client timeout --foreground 60 "$XLBT_CLIENT" --connect "$(hostport "$VIP" 80)" \
		--count "$LONG_CONNS" --parallel "$LONG_CONNS" --exchanges "$LONG_EXCHANGES" \
		--interval-ms "$INTERVAL_MS" --timeout-ms "$LONG_TIMEOUT_MS" \
		--deadline-ms $((LONG_TIMEOUT_MS + 5000)) --json \
		>"$json" 2>"$err" {XLBT_STDOUT}>&- {XLBT_STDERR}>&- &
	LONG_PID=$!
	XLBT_PIDS+=("$LONG_PID")
	if check "$sc: $LONG_CONNS long-lived connections ($LONG_EXCHANGES exchanges, ${INTERVAL_MS} ms apart) established at the client" \
		wait_established; then
		for ((i = 1; i <= NREALS; i++)); do
			lines=$(real_peers "$i") || lines=
			while read -r l p; do
				[[ -n $l ]] || continue
				n_peer=$((n_peer + 1))
				if [[ $p != "$CLIENT_ADDR" || $l != "$(real_addr "$i")" ]]; then
					n_bad=$((n_bad + 1))
					bad+=" rs$i:$l<-$p"
				fi
			done <<<"$lines"
		done
		check "$sc: ss in the reals' namespaces shows the $LONG_CONNS connections, each with the client $CLIENT_ADDR as its peer and the real's own address:$NAT_PORT as its local end ($n_peer seen, $n_bad otherwise:${bad:- none})" \
			eval '((n_peer == LONG_CONNS && n_bad == 0))' || good=0
	else
		xlbt_log "established: $N_EST"
		good=0
	fi
	wait "$LONG_PID" || rc=$?
	xlbt_forget_pid "$LONG_PID"
	LONG_PID=
	CLIENT_OUT=$json
	CLIENT_ERR=$err
	F=()
	client_fields "$json"
	if ! check "$sc: all $LONG_CONNS long-lived connections ended well, each on one real (ok ${F[0]:-?}, exit $rc; $(by_real))" \
		client_ok "$LONG_CONNS"; then
		client_diag
		good=0
	fi
	((good))
}

scenario_nat() {
	local sc=$1 good=1 ports m0 m1
	m0=$(xlbt_xdp_mode_of lb "$XLBT_IFACE")
	m1=$(xlbt_xdp_mode_of lb "$XLBT_FARM_IFACE")
	check "$sc: XDP attached on both of the LB's interfaces ($XLBT_IFACE: $m0, $XLBT_FARM_IFACE: $m1)" \
		eval '[[ $m0 != none && $m1 != none ]]' || good=0
	local fwd rports
	list || good=0
	fwd=$(svc_field web "['forwarding']" 2>/dev/null) || fwd=x
	rports=$(svc_field web "['reals']" 2>/dev/null | xlbt_json "[r['port'] for r in d]" 2>/dev/null) ||
		rports=x
	check "$sc: xlbctl list shows forwarding nat and every real on port $NAT_PORT ($fwd, $rports)" \
		same "$fwd $rports" "nat [$NAT_PORT, $NAT_PORT, $NAT_PORT]" || good=0

	ports="xlbt-lb,xlbt-client,$XLBT_FARM_PORT,$(real_ports)"
	if ! step "$sc: frame counter on the switch ports ($ports)" \
		xlbt_sniff_start "$sc-sniff" "$SNIFF_MAX_S" "$ports" \
		"req=tcp,$CLIENT_ADDR,*,$VIP,80" "rep=tcp,$VIP,80,$CLIENT_ADDR,*" \
		"dnat=tcp,$CLIENT_ADDR,*,*,$NAT_PORT" "back=tcp,*,$NAT_PORT,$CLIENT_ADDR,*"; then
		dump_agent
		return
	fi
	bulk "$sc" || good=0
	sleep 0.5
	step "$sc: frame counter stopped with a result" xlbt_sniff_stop || good=0

	local drops c_req r_dnat r_vip r_back f_back f_dnat l_rep c_rep c_back
	drops=$(xlbt_json "d['drops']" <"$XLBT_SNIFF_OUT" 2>/dev/null) || drops=x
	c_req=$(xlbt_sniff_count xlbt-client in req)
	f_dnat=$(xlbt_sniff_count "$XLBT_FARM_PORT" in dnat)
	r_dnat=$(sum_reals out dnat)
	r_vip=$(sum_reals out req)
	r_back=$(sum_reals in back)
	f_back=$(xlbt_sniff_count "$XLBT_FARM_PORT" out back)
	l_rep=$(xlbt_sniff_count xlbt-lb in rep)
	c_rep=$(xlbt_sniff_count xlbt-client out rep)
	c_back=$(xlbt_sniff_count xlbt-client out back)
	xlbt_log "$sc: frames: client->VIP:80 $c_req at the client's port; client->real:$NAT_PORT $f_dnat from the LB's farm port, $r_dnat at the reals' ports (to the VIP there: $r_vip); real:$NAT_PORT->client $r_back from the reals, $f_back to the LB's farm port; VIP:80->client $l_rep from the LB's front port, $c_rep at the client's (untranslated there: $c_back)"
	check "$sc: the frame counter lost no frame (drops $drops)" is_zero "$drops" || good=0
	check "$sc: every client frame to VIP:80 leaves the LB translated, to a real's port $NAT_PORT with the client's address kept ($c_req to the VIP, $f_dnat from the LB's farm port, $r_dnat at the reals')" \
		eval 'is_positive "$c_req" && same "$f_dnat" "$c_req" && same "$r_dnat" "$c_req"' || good=0
	check "$sc: no frame reaches a real still addressed to VIP:80 ($r_vip)" is_zero "$r_vip" || good=0
	check "$sc: the reals' replies go to the LB ($r_back sent, $f_back to the LB's farm port, at least one per exchange, $((BULK_CONNS * EXCHANGES)))" \
		eval 'at_least "$r_back" $((BULK_CONNS * EXCHANGES)) && same "$f_back" "$r_back"' || good=0
	check "$sc: ... and come back through it as replies from VIP:80 ($l_rep from the LB's front port, $c_rep at the client's port)" \
		eval 'same "$l_rep" "$f_back" && same "$c_rep" "$l_rep"' || good=0
	check "$sc: no untranslated reply reaches the client's port ($c_back)" is_zero "$c_back" || good=0

	nat_peers "$sc" || good=0
	((good)) || dump_agent
}

# ---------------------------------------------------------------------------
# Running

# gone SC: after topo_down, no agent of this scenario runs, no namespace and
# no bpffs directory of this run is left.
gone() {
	local left
	left=$(compgen -G "/run/netns/$XLBT_PREFIX-*")
	[[ -z $left ]] || {
		xlbt_log "namespaces left: $left"
		return 1
	}
	[[ ! -e $XLBT_BPFFS_BASE ]] || {
		xlbt_log "left: $XLBT_BPFFS_BASE"
		return 1
	}
	[[ -z $AGENT_PID ]] || not_running "$AGENT_PID"
}

run_scenario() {
	local sc=$1
	case " $KNOWN_SCENARIOS " in
	*" $sc "*) ;;
	*)
		not_ok "$sc: unknown scenario (known: $KNOWN_SCENARIOS)"
		return
		;;
	esac
	xlbt_log "scenario $sc"
	if setup "$sc"; then
		if [[ $XLBT_XDP_MODE == native ]]; then
			local mode
			mode=$(xlbt_xdp_mode lb)
			check "$sc: XDP on lb runs in native (driver) mode (ip link: $mode)" [ "$mode" = xdp ]
		fi
		case $sc in
		dsr | dsr6) scenario_dsr "$sc" ;;
		nat | nat6) scenario_nat "$sc" ;;
		*) "scenario_$sc" ;;
		esac
	else
		dump_agent
	fi
	if [[ $TOPO == two-arm ]]; then topo_down_two_arm; else topo_down; fi
	check "$sc: cleanup: the agent stopped, no namespace and no pinned object left" gone
}

main() {
	local sc scenarios=()
	if (($# > 0)); then
		scenarios=("$@")
	else
		read -r -a scenarios <<<"${XLBT_SCENARIOS:-$DEFAULT_SCENARIOS}"
	fi

	XLBT_EXIT_HOOK=summary
	xlbt_install_traps
	if ! xlbt_preflight; then
		PREREQ_FAILED=1
		not_ok "prerequisites: $XLBT_PREFLIGHT_ERROR"
		exit 2
	fi
	if [[ $XLB_AGENT != /* || ! -x $XLB_AGENT ]]; then
		PREREQ_FAILED=1
		not_ok "prerequisites: binary $XLB_AGENT is missing or not executable (run 'make' first, or set XLB_AGENT)"
		exit 2
	fi
	if ! command -v ss >/dev/null 2>&1; then
		PREREQ_FAILED=1
		not_ok "prerequisites: required command 'ss' not found (package iproute2)"
		exit 2
	fi
	TEST_TMP=$(mktemp -d "/tmp/$XLBT_PREFIX-test.XXXXXX") || {
		not_ok "prerequisites: cannot create a temporary directory"
		exit 2
	}
	xlbt_log "xlb-agent: $XLB_AGENT, xlbctl: $XLBCTL"
	xlbt_log "xlbt-namesrv: $XLBT_NAMESRV, xlbt-client: $XLBT_CLIENT"
	xlbt_log "namespaces: $XLBT_PREFIX-*, bpffs: $XLBT_BPFFS_BASE"

	for sc in "${scenarios[@]}"; do
		run_scenario "$sc"
	done
	exit 0
}

main "$@"
