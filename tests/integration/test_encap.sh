#!/usr/bin/env bash
# Encapsulated forwarding through xlb, end to end, in network namespaces.
#
#   tests/integration/test_encap.sh [SCENARIO ...]   (default: ipip 6in6 4in6 gue)
#
#   ipip   IPv4 VIP, IPv4 reals, --method ipip   (IPv4-in-IPv4)
#   6in6   IPv6 VIP, IPv6 reals, --method ipip   (IPv6-in-IPv6)
#   4in6   IPv4 VIP, IPv6 reals, --method ipip   (IPv4-in-IPv6)
#   gue    IPv4 VIP, IPv4 reals, --method gue    (GUE, UDP port $XLBT_GUE_PORT)
#
# Each scenario builds its own topology (lib.sh): three reals rs1..rs3 hold the
# VIP on lo, run the decap program and xlbt-namesrv on VIP:80; the LB runs xlb
# in native mode with one service over the three reals. The client then makes
# 300 connections of 3 request/reply exchanges each through the VIP (after 3
# probe connections, so that a broken path fails in seconds). Checked: every
# connection succeeds, no connection is answered by two reals, each real gets
# 23%..43% of the 300, and "xlbctl status --json" counts at least 303 new
# flows for the service.
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
NREALS=3
CONNS=300
PROBES=3 # connections made before the main run, to fail fast on a broken path
EXCHANGES=3
SHARE_MIN=23 # percent of CONNS each real must get at least ...
SHARE_MAX=43 # ... and at most

# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"

attach_decap_all() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		rs_decap_attach "$i" || return 1
	done
}

start_namesrv_all() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		rs_start_namesrv "$i" || return 1
	done
}

# configure_service VIP METHOD FAMILY: the service and its reals on the LB.
configure_service() {
	local vip=$1 method=$2 fam=$3 i addr
	xlbctl_in lb service add "$SERVICE" --vip "$vip" --port "$PORT" --proto tcp \
		--method "$method" || return 1
	for ((i = 1; i <= NREALS; i++)); do
		if [[ $fam == 6 ]]; then addr=$(rs_addr6 "$i"); else addr=$(rs_addr4 "$i"); fi
		xlbctl_in lb real add "$SERVICE" "$addr" --weight 1 || return 1
	done
}

in_range() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }

all_succeeded() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && (($1 == CONNS && $2 == 0)); }

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

run_scenario() {
	local sc=$1 vip fam method target i
	case $sc in
	ipip) vip=$XLBT_VIP4 fam=4 method=ipip ;;
	6in6) vip=$XLBT_VIP6 fam=6 method=ipip ;;
	4in6) vip=$XLBT_VIP4 fam=6 method=ipip ;;
	gue) vip=$XLBT_VIP4 fam=4 method=gue ;;
	*)
		not_ok "$sc: unknown scenario (known: ipip 6in6 4in6 gue)"
		return
		;;
	esac
	if [[ $vip == *:* ]]; then target="[$vip]:$PORT"; else target="$vip:$PORT"; fi
	xlbt_log "scenario $sc: VIP $target, IPv$fam reals, method $method"

	if ! step "$sc: topology up (client, lb, $NREALS reals, bridge)" topo_up "$NREALS" ||
		! step "$sc: decap attached on rs1..rs$NREALS" attach_decap_all ||
		! step "$sc: xlbt-namesrv answers on every real" start_namesrv_all ||
		! step "$sc: xlb loaded on lb (mode $XLBT_XDP_MODE)" lb_load ||
		! step "$sc: service $SERVICE $target/tcp ($method) with $NREALS IPv$fam reals" \
			configure_service "$vip" "$method" "$fam"; then
		topo_down
		return
	fi
	if [[ $XLBT_XDP_MODE == native ]]; then
		local mode
		mode=$(xlbt_xdp_mode lb)
		check "$sc: XDP on lb runs in native (driver) mode (ip link: $mode)" [ "$mode" = xdp ]
	fi

	# Traffic: a few connections first, so a broken path fails in seconds.
	local json=$TEST_TMP/client.json err=$TEST_TMP/client.err
	local probe_rc=0
	in_ns client timeout --foreground 30 "$XLBT_CLIENT" --connect "$target" --count "$PROBES" \
		--parallel "$PROBES" --exchanges "$EXCHANGES" --timeout-ms 3000 --deadline-ms 10000 \
		>"$json" 2>"$err" || probe_rc=$?
	if ! check "$sc: $PROBES probe connections through the VIP succeed" [ "$probe_rc" -eq 0 ]; then
		xlbt_log_file "$json"
		xlbt_log_file "$err"
		not_ok "$sc: $CONNS connections not attempted: the path through the VIP does not work"
		dump_status
		topo_down
		return
	fi
	in_ns client timeout --foreground 90 "$XLBT_CLIENT" --connect "$target" --count "$CONNS" \
		--exchanges "$EXCHANGES" --parallel 10 --timeout-ms 3000 --deadline-ms 60000 \
		--json >"$json" 2>"$err"
	local expr fields
	expr="' '.join(str(x) for x in [d['ok'], d['failed'], d['inconsistent']]"
	expr+=" + [d['by_name'].get('rs%d' % i, 0) for i in range(1, $NREALS + 1)]"
	expr+=" + [sum(v for k, v in d['by_name'].items() if k not in ['rs%d' % i for i in range(1, $NREALS + 1)])])"
	if ! fields=$(xlbt_json "$expr" <"$json" 2>&1); then
		not_ok "$sc: xlbt-client printed a JSON result"
		xlbt_log_file "$json"
		xlbt_log_file "$err"
		dump_status
		topo_down
		return
	fi
	local -a f
	read -r -a f <<<"$fields"
	local n_ok=${f[0]} n_failed=${f[1]} n_incons=${f[2]} n_unknown=${f[$((NREALS + 3))]}
	local traffic_ok=1
	check "$sc: $n_ok/$CONNS connections with $EXCHANGES exchanges succeeded ($n_failed failed)" \
		all_succeeded "$n_ok" "$n_failed" || traffic_ok=0
	check "$sc: every connection was answered by one real only ($n_incons inconsistent)" \
		[ "$n_incons" -eq 0 ] || traffic_ok=0
	check "$sc: no reply from an unknown server ($n_unknown)" [ "$n_unknown" -eq 0 ] || traffic_ok=0

	local lo=$(((CONNS * SHARE_MIN + 99) / 100)) hi=$((CONNS * SHARE_MAX / 100)) c
	for ((i = 1; i <= NREALS; i++)); do
		c=${f[$((i + 2))]}
		check "$sc: rs$i answered $c of $CONNS connections (allowed $lo..$hi)" \
			in_range "$c" "$lo" "$hi" || traffic_ok=0
	done
	if ((!traffic_ok)); then
		xlbt_log "xlbt-client:"
		xlbt_log_file "$json"
		xlbt_log_file "$err"
	fi

	# Counters of the data plane.
	local status=$TEST_TMP/status.json nf
	if ! xlbctl_in lb status --json >"$status" 2>"$TEST_TMP/status.err"; then
		not_ok "$sc: xlbctl status --json on lb"
		xlbt_log_file "$TEST_TMP/status.err"
	elif ! nf=$(xlbt_json "[s for s in d['services'] if s['name'] == '$SERVICE'][0]['new_flows']" \
		<"$status" 2>"$TEST_TMP/status.err"); then
		not_ok "$sc: xlbctl status --json lists service $SERVICE with new_flows"
		xlbt_log_file "$TEST_TMP/status.err" 5
		xlbt_log_file "$status"
	elif ! check "$sc: service $SERVICE counted $nf new flows (>= $CONNS + $PROBES probes)" \
		[ "$nf" -ge $((CONNS + PROBES)) ]; then
		dump_status
	elif ((!traffic_ok)); then
		dump_status
	fi

	topo_down
}

main() {
	local sc scenarios=()
	if (($# > 0)); then
		scenarios=("$@")
	else
		read -r -a scenarios <<<"${XLBT_SCENARIOS:-ipip 6in6 4in6 gue}"
	fi

	XLBT_EXIT_HOOK=summary
	xlbt_install_traps
	if ! xlbt_preflight; then
		PREREQ_FAILED=1
		not_ok "prerequisites: $XLBT_PREFLIGHT_ERROR"
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
