#!/usr/bin/env bash
# Established TCP flows through xlb survive a reload of the balancer and a
# change of the service's selection table, end to end, in network namespaces.
#
#   tests/integration/test_restart.sh [SCENARIO ...]   (default: reload realadd)
#
#   reload   "Reattach after restart without dropping a flow": while
#            $LONG_CONNS long-lived connections run through the VIP,
#            "xlbctl load --iface xlbt0" runs again on the LB, twice.
#   realadd  "An established flow keeps its real server across
#            selection-table changes": while $LONG_CONNS long-lived
#            connections run, a fourth real joins the service.
#
# Each scenario builds its own topology (lib.sh) with four reals rs1..rs4,
# each holding the VIP on lo and running the decap program and xlbt-namesrv on
# VIP:80. The LB runs xlb in native mode with one IPv4 service (method ipip)
# over rs1..rs3; rs4 is up but not in the service.
#
# A long-lived connection makes $LONG_EXCHANGES request/reply exchanges,
# $INTERVAL_MS ms apart (about 3 s in all). The change to the data plane is made
# only once all $LONG_CONNS connections are established and recorded in the
# connection table, and the connections must still all be open when it is
# done, so the change happens in the middle of every one of them. Checked in
# both scenarios: no packet of the run reached the LB's own kernel (every one
# was handled by XDP; the LB has no route to the VIP, so a packet that XDP
# missed would be counted as forwarded or unroutable there). And:
#
#   reload:  every connection succeeds and is answered by one real only; the
#            XDP program id on the LB's interface changes with each load and the
#            interface stays in native mode; the pinned map directory remains,
#            with the same maps (ids, with bpftool); the service's new_flows
#            counter is not reset, and grows by exactly $LONG_CONNS over the run
#            (no established flow was looked up as new by the new program);
#            new connections after the reloads succeed.
#   realadd: every connection succeeds and is answered by one real only, none
#            by rs4, and rs4 counts no new flow; new_flows grows by exactly
#            $LONG_CONNS (no established flow was balanced again); afterwards
#            $NEW_CONNS new connections all succeed and rs4 answers some.
#
# Output: one "ok - ..." or "not ok - ..." line per check, diagnostics as
# "# ..." lines, and last exactly one line "N passed, M failed".
# Exit status: 0 all passed; 1 a check failed; 2 the test cannot run here
# (not root, BPF or a binary unavailable), reported as a failure, not skipped.
#
# Environment: XLBCTL, XLBT_NAMESRV, XLBT_CLIENT (binaries, default under
# build/), XLBT_XDP_MODE (default native), XLBT_SCENARIOS (instead of
# arguments), XLBT_KEEP_LOGS=1 (keep the log directory).
# shellcheck disable=SC2317  # functions run through step/check and the exit hook
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
source "$HERE/lib.sh"

SERVICE=web
PORT=80
NHOSTS=4           # reals in the topology
NREALS=3           # of which rs1..rs3 start in the service
LONG_CONNS=60      # long-lived connections, all at once
LONG_EXCHANGES=60  # exchanges on each ...
INTERVAL_MS=50     # ... this far apart: about 3 s per connection
LONG_TIMEOUT_MS=20000
NEW_CONNS=200      # short connections after the change
NEW_EXCHANGES=3
ESTABLISH_WAIT_S=10 # at most this long for the long-lived connections to open

# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"
TARGET=$XLBT_VIP4:$PORT

# ---------------------------------------------------------------------------
# Setup

attach_decap_all() {
	local i
	for ((i = 1; i <= NHOSTS; i++)); do
		rs_decap_attach "$i" || return 1
	done
}

start_namesrv_all() {
	local i
	for ((i = 1; i <= NHOSTS; i++)); do
		rs_start_namesrv "$i" || return 1
	done
}

configure_service() {
	local i
	xlbctl_in lb service add "$SERVICE" --vip "$XLBT_VIP4" --port "$PORT" --proto tcp \
		--method ipip || return 1
	for ((i = 1; i <= NREALS; i++)); do
		xlbctl_in lb real add "$SERVICE" "$(rs_addr4 "$i")" --weight 1 || return 1
	done
}

# setup SC: topology, decap and namesrv on rs1..rs4, xlb on the LB, the
# service over rs1..rs3, and a few connections through the VIP.
setup() {
	local sc=$1
	step "$sc: topology up (client, lb, $NHOSTS reals, bridge)" topo_up "$NHOSTS" &&
		step "$sc: decap attached on rs1..rs$NHOSTS" attach_decap_all &&
		step "$sc: xlbt-namesrv answers on every real" start_namesrv_all &&
		step "$sc: xlb loaded on lb (mode $XLBT_XDP_MODE)" lb_load &&
		step "$sc: service $SERVICE $TARGET/tcp (ipip) with rs1..rs$NREALS" configure_service &&
		step "$sc: 3 probe connections through the VIP succeed" \
			in_ns client timeout --foreground 30 "$XLBT_CLIENT" --connect "$TARGET" --count 3 \
			--parallel 3 --exchanges 3 --timeout-ms 3000 --deadline-ms 10000
}

# ---------------------------------------------------------------------------
# Observations

STATUS_JSON=

# status: "xlbctl status --json" of the LB into $STATUS_JSON.
status() {
	STATUS_JSON=$TEST_TMP/status.json
	xlbctl_in lb status --json >"$STATUS_JSON" 2>"$TEST_TMP/status.err"
}

# svc_new_flows: the service's new_flows counter (fresh status).
svc_new_flows() {
	status || return 1
	xlbt_json "[s for s in d['services'] if s['name'] == '$SERVICE'][0]['new_flows']" <"$STATUS_JSON"
}

# real_field ADDR FIELD: a field of a real of the service (from the last status).
real_field() {
	xlbt_json "[r for s in d['services'] if s['name'] == '$SERVICE' for r in s['reals'] if r['address'] == '$1'][0]['$2']" \
		<"$STATUS_JSON"
}

dump_status() {
	if xlbctl_in lb status --json >"$TEST_TMP/status.dump" 2>&1; then
		python3 -m json.tool <"$TEST_TMP/status.dump" >"$TEST_TMP/status.pretty" 2>/dev/null ||
			cp "$TEST_TMP/status.dump" "$TEST_TMP/status.pretty"
		xlbt_log "xlbctl status --json on lb:"
		xlbt_log_file "$TEST_TMP/status.pretty" 80
	else
		xlbt_log "xlbctl status --json on lb failed:"
		xlbt_log_file "$TEST_TMP/status.dump"
	fi
}

# Established TCP connections from the client to the VIP port.
established() {
	in_ns client ss -Htn state established dst "$XLBT_VIP4" "( dport = :$PORT )" | wc -l
}

# Names and ids of the maps pinned for the LB, one "name id" per line.
pinned_map_ids() {
	local f id
	for f in "$XLBT_BPFFS_BASE"/lb/*; do
		[[ -e $f ]] || continue
		id=$(bpftool -j map show pinned "$f" | xlbt_json "d['id']") || return 1
		printf '%s %s\n' "${f##*/}" "$id"
	done
}

# net_sum ROLE NAME...: the sum of SNMP counters of ROLE's namespace, named
# as nstat does (IpForwDatagrams, IpExtInNoRoutes, TcpRetransSegs, ...).
net_sum() {
	local role=$1
	shift
	# shellcheck disable=SC2016  # an awk program
	in_ns "$role" awk -v names="$*" '
		/^[A-Za-z]+:/ {
			if (!($1 in hdr)) { hdr[$1] = $0; next }
			n = split(hdr[$1], h); split($0, v)
			for (i = 2; i <= n; i++) val[substr($1, 1, length($1) - 1) h[i]] = v[i]
		}
		END {
			k = split(names, want); sum = 0
			for (i = 1; i <= k; i++) {
				if (!(want[i] in val)) exit 1
				sum += val[want[i]]
			}
			print sum
		}' /proc/net/snmp /proc/net/netstat
}

# Packets the LB's own kernel forwarded or could not route: a VIP packet
# that XDP did not handle (the LB has no route to the VIP).
lb_stack_packets() { net_sum lb IpForwDatagrams IpExtInNoRoutes; }

# ---------------------------------------------------------------------------
# The long-lived connections

CLIENT_PID=
CLIENT_JSON=
CLIENT_ERR=

# start_long NAME: the long-lived connections, in the background.
start_long() {
	CLIENT_JSON=$TEST_TMP/$1.json
	CLIENT_ERR=$TEST_TMP/$1.err
	in_ns client timeout --foreground 60 "$XLBT_CLIENT" --connect "$TARGET" \
		--count "$LONG_CONNS" --parallel "$LONG_CONNS" --exchanges "$LONG_EXCHANGES" \
		--interval-ms "$INTERVAL_MS" --timeout-ms "$LONG_TIMEOUT_MS" \
		--deadline-ms $((LONG_TIMEOUT_MS + 5000)) --json \
		>"$CLIENT_JSON" 2>"$CLIENT_ERR" {XLBT_STDOUT}>&- {XLBT_STDERR}>&- &
	CLIENT_PID=$!
	XLBT_PIDS+=("$CLIENT_PID")
}

# wait_established: wait until all long-lived connections are open (fails if
# the client ends first or it takes more than $ESTABLISH_WAIT_S s). Leaves the
# last count in N_EST.
N_EST=0
wait_established() {
	local try
	for ((try = 0; try < ESTABLISH_WAIT_S * 20; try++)); do
		N_EST=$(established)
		((N_EST >= LONG_CONNS)) && return 0
		kill -0 "$CLIENT_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# wait_long: wait for the client; its exit status goes to CLIENT_RC.
CLIENT_RC=
wait_long() {
	local p keep=()
	CLIENT_RC=0
	wait "$CLIENT_PID" || CLIENT_RC=$?
	for p in "${XLBT_PIDS[@]}"; do
		[[ $p == "$CLIENT_PID" ]] || keep+=("$p")
	done
	XLBT_PIDS=("${keep[@]}")
	CLIENT_PID=
}

# client_fields JSON: "ok failed inconsistent rs1 .. rs$NHOSTS unknown" of a
# client result into the array F.
F=()
client_fields() {
	local expr fields
	expr="' '.join(str(x) for x in [d['ok'], d['failed'], d['inconsistent']]"
	expr+=" + [d['by_name'].get('rs%d' % i, 0) for i in range(1, $NHOSTS + 1)]"
	expr+=" + [sum(v for k, v in d['by_name'].items() if k not in ['rs%d' % i for i in range(1, $NHOSTS + 1)])])"
	fields=$(xlbt_json "$expr" <"$1" 2>/dev/null) || return 1
	read -r -a F <<<"$fields"
}

# check_client SC WHAT N JSON ERR: every one of N connections succeeded, each
# answered by one real, none by an unknown server. Leaves the fields in F.
check_client() {
	local sc=$1 what=$2 n=$3 json=$4 err=$5 good=1
	if ! client_fields "$json"; then
		not_ok "$sc: xlbt-client printed a JSON result for the $what connections"
		xlbt_log_file "$json"
		xlbt_log_file "$err"
		return 1
	fi
	local n_ok=${F[0]} n_failed=${F[1]} n_incons=${F[2]} n_unknown=${F[$((NHOSTS + 3))]}
	check "$sc: $n_ok/$n $what connections succeeded ($n_failed failed)" \
		all_ok "$n_ok" "$n_failed" "$n" || good=0
	check "$sc: every $what connection was answered by one real only ($n_incons inconsistent)" \
		is_zero "$n_incons" || good=0
	check "$sc: no $what connection answered by an unknown server ($n_unknown)" \
		is_zero "$n_unknown" || good=0
	if ((!good)); then
		xlbt_log "xlbt-client ($what):"
		xlbt_log_file "$json"
		xlbt_log_file "$err"
	fi
	((good))
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Conditions of checks (arguments may be "x" where a value is missing).
all_ok() { is_uint "$1" && is_uint "$2" && (($1 == $3 && $2 == 0)); }
is_zero() { [[ $1 == 0 ]]; }
is_positive() { is_uint "$1" && (($1 > 0)); }
at_least() { is_uint "$1" && (($1 >= $2)); }
# grew_by BEFORE AFTER N: AFTER - BEFORE is exactly N (or at least N with "+").
grew_by() { is_uint "$1" && is_uint "$2" && (($2 - $1 == $3)); }
grew_by_at_least() { is_uint "$1" && is_uint "$2" && (($2 - $1 >= $3)); }
# differs NEW OLD...: NEW is an id and none of the OLD ones.
differs() {
	local new=$1 o
	shift
	is_uint "$new" || return 1
	for o in "$@"; do
		[[ $new != "$o" ]] || return 1
	done
}
pinned_dir_kept() { [[ -d $XLBT_BPFFS_BASE/lb && -e $XLBT_BPFFS_BASE/lb/xlb_conns ]]; }
same() { [[ $1 == "$2" ]]; }
delta() { if is_uint "$1" && is_uint "$2"; then echo $(($2 - $1)); else echo "?"; fi; }

# begin_long SC: base counter, start the long-lived connections and wait until
# all are open and recorded as flows. Sets NF_BASE and NF_OPEN.
NF_BASE=
NF_OPEN=
STACK_BASE=
RETRANS_BASE=
begin_long() {
	local sc=$1
	STACK_BASE=$(lb_stack_packets) || STACK_BASE=x
	RETRANS_BASE=$(net_sum client TcpRetransSegs) || RETRANS_BASE=x
	if ! NF_BASE=$(svc_new_flows); then
		not_ok "$sc: xlbctl status --json reports new_flows of $SERVICE"
		xlbt_log_file "$TEST_TMP/status.err"
		return 1
	fi
	start_long "$sc-long"
	if ! check "$sc: $LONG_CONNS long-lived connections ($LONG_EXCHANGES exchanges, ${INTERVAL_MS} ms apart) established" \
		wait_established; then
		xlbt_log "established: $N_EST"
		xlbt_log_file "$CLIENT_ERR"
		return 1
	fi
	NF_OPEN=$(svc_new_flows) || NF_OPEN=x
	check "$sc: the LB counted a new flow for each of them (new_flows $NF_BASE -> $NF_OPEN)" \
		grew_by_at_least "$NF_BASE" "$NF_OPEN" "$LONG_CONNS"
}

# end_long SC: wait for the long-lived connections and check them; then the
# service's counter. Sets NF_END.
NF_END=
end_long() {
	local sc=$1 good=1 stack retrans
	wait_long
	stack=$(lb_stack_packets) || stack=x
	retrans=$(net_sum client TcpRetransSegs) || retrans=x
	check "$sc: no packet slipped past XDP into the LB's kernel during the run ($(delta "$STACK_BASE" "$stack") forwarded or unroutable)" \
		grew_by "$STACK_BASE" "$stack" 0 || good=0
	xlbt_log "$sc: TCP retransmissions by the client during the run: $(delta "$RETRANS_BASE" "$retrans")"
	((CLIENT_RC == 0)) || xlbt_log "$sc: xlbt-client (long-lived) exited with status $CLIENT_RC"
	check_client "$sc" long-lived "$LONG_CONNS" "$CLIENT_JSON" "$CLIENT_ERR" || good=0
	NF_END=$(svc_new_flows) || NF_END=x
	check "$sc: new_flows of $SERVICE not reset ($NF_OPEN before the change, $NF_END after)" \
		grew_by_at_least "$NF_OPEN" "$NF_END" 0 || good=0
	check "$sc: no established flow counted as new again (new_flows grew by $(delta "$NF_BASE" "$NF_END") over the run, want $LONG_CONNS)" \
		grew_by "$NF_BASE" "$NF_END" "$LONG_CONNS" || good=0
	((good))
}

# new_conns SC: short connections after the change. Sets F.
new_conns() {
	local sc=$1 json=$TEST_TMP/$1-new.json err=$TEST_TMP/$1-new.err
	in_ns client timeout --foreground 90 "$XLBT_CLIENT" --connect "$TARGET" --count "$NEW_CONNS" \
		--exchanges "$NEW_EXCHANGES" --parallel 10 --timeout-ms 3000 --deadline-ms 60000 \
		--json >"$json" 2>"$err"
	check_client "$sc" new "$NEW_CONNS" "$json" "$err"
}

# ---------------------------------------------------------------------------
# Scenarios

scenario_reload() {
	local sc=reload id0 id1 id2 maps0 maps1 mode good=1
	if ! id0=$(xlbt_xdp_prog_id lb); then
		not_ok "$sc: an XDP program is attached to $XLBT_IFACE on lb"
		return
	fi
	maps0=$(pinned_map_ids 2>/dev/null) || maps0=
	begin_long "$sc" || {
		dump_status
		return
	}

	step "$sc: xlbctl load again on lb while the connections run (1st reload)" lb_load || good=0
	id1=$(xlbt_xdp_prog_id lb) || id1=none
	check "$sc: XDP program on lb replaced (id $id0 -> $id1)" differs "$id1" "$id0" || good=0
	sleep 0.2
	step "$sc: xlbctl load again on lb while the connections run (2nd reload)" lb_load || good=0
	id2=$(xlbt_xdp_prog_id lb) || id2=none
	check "$sc: XDP program on lb replaced again (id $id1 -> $id2)" \
		differs "$id2" "$id1" "$id0" || good=0
	N_EST=$(established) || N_EST=x
	check "$sc: all $LONG_CONNS connections still open after both reloads ($N_EST)" \
		at_least "$N_EST" "$LONG_CONNS" || good=0
	if [[ $XLBT_XDP_MODE == native ]]; then
		mode=$(xlbt_xdp_mode lb)
		check "$sc: XDP on lb still in native mode (ip link: $mode)" [ "$mode" = xdp ] || good=0
	fi

	end_long "$sc" || good=0

	check "$sc: pinned map directory $XLBT_BPFFS_BASE/lb still exists" pinned_dir_kept || good=0
	if [[ -z $maps0 ]]; then
		xlbt_log "$sc: map ids not compared (bpftool unavailable or failed)"
	else
		maps1=$(pinned_map_ids 2>/dev/null) || maps1=
		if ! check "$sc: the reloaded program uses the same pinned maps ($(wc -l <<<"$maps0") map ids unchanged)" \
			same "$maps0" "$maps1"; then
			good=0
			xlbt_log "before: ${maps0//$'\n'/, }"
			xlbt_log "after:  ${maps1//$'\n'/, }"
		fi
	fi

	new_conns "$sc" || good=0
	((good)) || dump_status
}

scenario_realadd() {
	local sc=realadd rs4 good=1 nreals rs4_flows c i
	rs4=$(rs_addr4 4)
	begin_long "$sc" || {
		dump_status
		return
	}

	step "$sc: real $rs4 (rs4) added to $SERVICE while the connections run" \
		xlbctl_in lb real add "$SERVICE" "$rs4" --weight 1 || good=0
	if status; then
		nreals=$(xlbt_json "len([s for s in d['services'] if s['name'] == '$SERVICE'][0]['reals'])" \
			<"$STATUS_JSON") || nreals=x
	else
		nreals=x
	fi
	check "$sc: $SERVICE has $((NREALS + 1)) reals ($nreals)" same "$nreals" $((NREALS + 1)) || good=0
	N_EST=$(established) || N_EST=x
	check "$sc: all $LONG_CONNS connections still open after the change ($N_EST)" \
		at_least "$N_EST" "$LONG_CONNS" || good=0

	end_long "$sc" || good=0
	if ((${#F[@]} > 3)); then
		check "$sc: rs4 answered none of the long-lived connections (${F[6]})" is_zero "${F[6]}" ||
			good=0
	fi
	rs4_flows=$(status && real_field "$rs4" new_flows) || rs4_flows=x
	check "$sc: rs4 got no flow while only established connections ran (new_flows $rs4_flows)" \
		is_zero "$rs4_flows" || good=0

	if new_conns "$sc"; then
		for ((i = 1; i <= NHOSTS; i++)); do
			c=${F[$((i + 2))]}
			check "$sc: rs$i answered $c of $NEW_CONNS new connections (> 0)" is_positive "$c" || good=0
		done
	else
		good=0
	fi
	((good)) || dump_status
}

run_scenario() {
	local sc=$1
	case $sc in
	reload | realadd) ;;
	*)
		not_ok "$sc: unknown scenario (known: reload realadd)"
		return
		;;
	esac
	xlbt_log "scenario $sc: VIP $TARGET, IPv4 reals rs1..rs$NREALS (rs4 spare), method ipip"
	if setup "$sc"; then
		if [[ $XLBT_XDP_MODE == native ]]; then
			local mode
			mode=$(xlbt_xdp_mode lb)
			check "$sc: XDP on lb runs in native (driver) mode (ip link: $mode)" [ "$mode" = xdp ]
		fi
		"scenario_$sc"
	fi
	topo_down
}

main() {
	local sc scenarios=()
	if (($# > 0)); then
		scenarios=("$@")
	else
		read -r -a scenarios <<<"${XLBT_SCENARIOS:-reload realadd}"
	fi

	XLBT_EXIT_HOOK=summary
	xlbt_install_traps
	if ! xlbt_preflight; then
		PREREQ_FAILED=1
		not_ok "prerequisites: $XLBT_PREFLIGHT_ERROR"
		exit 2
	fi
	if ! command -v ss >/dev/null 2>&1; then
		PREREQ_FAILED=1
		not_ok "prerequisites: required command 'ss' (iproute2) not found"
		exit 2
	fi
	TEST_TMP=$(mktemp -d "/tmp/$XLBT_PREFIX-test.XXXXXX") || {
		not_ok "prerequisites: cannot create a temporary directory"
		exit 2
	}
	xlbt_log "xlbctl: $XLBCTL"
	xlbt_log "xlbt-namesrv: $XLBT_NAMESRV, xlbt-client: $XLBT_CLIENT"
	xlbt_log "namespaces: $XLBT_PREFIX-*, bpffs: $XLBT_BPFFS_BASE"

	for sc in "${scenarios[@]}"; do
		run_scenario "$sc"
	done
	exit 0
}

main "$@"
