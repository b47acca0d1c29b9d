#!/usr/bin/env bash
# xlb-agent end to end, in network namespaces: health checks, operator
# commands, a crash and restart of the agent, its API and its metrics.
#
#   tests/integration/test_agent.sh [SCENARIO ...]   (default: checks drain restart api)
#
#   checks   the three reals come up on their health checks; stopping rs2's
#            server takes rs2 out within a bounded time, starting it again
#            brings it back.
#   drain    "xlbctl drain" while long-lived connections run: they all end
#            well, new connections avoid the drained real; "xlbctl enable"
#            brings it back.
#   restart  kill -9 of the agent while long-lived connections run, then a
#            new agent over the same pinned maps: forwarding never stops, and
#            the new agent adopts the state (a drained real stays drained).
#   api      the API's bearer token, GET /metrics in the Prometheus format,
#            a reload with a broken config (rejected, the running config
#            stays) and a SIGHUP with a fixed one (applied).
#
# Each scenario builds its own topology (lib.sh): three reals rs1..rs3 hold
# the VIP on lo, run the decap program and xlbt-namesrv on VIP:80 and on
# their own address, port 80, where the agent's TCP health check connects.
# The LB runs xlb-agent (not xlbctl load) with a config written by this
# script: one service $SERVICE on $XLBT_VIP4:80/tcp, ipip, wrr, weights 100,
# checks every ${CHECK_INTERVAL_MS} ms (timeout ${CHECK_TIMEOUT_MS} ms, rise
# $RISE, fall $FALL). xlbctl talks to the agent's API from inside the LB's
# namespace (127.0.0.1 is the LB's loopback).
#
# Checked:
#   checks:  all three reals are up, each after at least $RISE passing probes;
#            $CONNS connections succeed and each real answers at least a sixth
#            of them. After rs2's server stops, rs2 is "down" within
#            $DOWN_BOUND_MS ms (the time is logged; at most about
#            interval * fall + timeout is expected), after at least $FALL
#            failed probes; rs1 and rs3 stay up, and $CONNS new connections
#            all succeed with none answered by rs2. After the server starts
#            again, rs2 is "up" within $UP_BOUND_MS ms, after at least $RISE
#            passing probes, and new connections reach it again.
#   drain:   $LONG_CONNS long-lived connections (about 3 s each) are open
#            when rs1 is drained; rs1 is "drain", not usable, with effective
#            weight 0; $CONNS new connections made meanwhile all succeed and
#            none reaches rs1; every long-lived connection succeeds, some of
#            them on rs1. After "xlbctl enable", rs1 is "up" and new
#            connections reach it.
#   restart: rs3 is drained; $LONG_CONNS long-lived connections (about 6 s)
#            are open when the agent is killed with SIGKILL; the XDP program
#            stays attached; $DOWN_CONNS connections made while no agent runs
#            succeed (none on rs3). A new agent with the same config answers,
#            rs3 is still "drain", the service keeps its vs_id, its new_flows
#            counter (xlbctl status) was not reset and counted the connections
#            made meanwhile; all long-lived connections were still open after
#            the restart and all succeed; $CONNS new connections succeed with
#            none on rs3.
#   api:     the agent created node.api.token_file (mode 0600); the API
#            answers 401 without a token, with a wrong one and with the
#            right one in another scheme than Bearer, 200 with it as a
#            bearer token; GET /metrics passes "promtool check metrics" and
#            xlb_service_new_flows_total{vs="web"} equals new_flows of
#            "xlbctl status --json"; with an unknown key written into the
#            config, "xlb-agent --check" and "xlbctl reload" fail naming
#            FILE:LINE:COLUMN of the key, "xlbctl config" still shows the old
#            text, traffic still flows and the failure is counted; with the
#            config fixed and a weight changed, SIGHUP applies it ("xlbctl
#            list" shows it, rs1 gets the larger share of new connections,
#            "xlbctl config" shows the new text) and
#            xlb_config_reloads_total{result="success"} grows by one.
#   every scenario: afterwards no agent runs and no namespace is left.
#
# Output: one "ok - ..." or "not ok - ..." line per check, diagnostics as
# "# ..." lines, and last exactly one line "N passed, M failed".
# Exit status: 0 all passed; 1 a check failed; 2 the test cannot run here
# (not root, BPF, a binary, curl or promtool unavailable), reported as a
# failure, not skipped.
#
# Environment: XLB_AGENT, XLBCTL, XLBT_NAMESRV, XLBT_CLIENT (binaries,
# default under build/), XLBT_XDP_MODE (default native), XLBT_SCENARIOS
# (instead of arguments), XLBT_KEEP_LOGS=1 (keep the log directory, with the
# agent's log).
# shellcheck disable=SC2317  # functions run through step/check and the exit hook
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
source "$HERE/lib.sh"

XLB_AGENT=$(xlbt_abs_bin "${XLB_AGENT:-$XLBT_ROOT/build/xlb-agent}")

SERVICE=web
PORT=80
NREALS=3
WEIGHT=100
CHECK_INTERVAL_MS=200
CHECK_TIMEOUT_MS=150
RISE=2
FALL=2
UP_WAIT_MS=3000     # first decision of every check: the first probe comes within one interval
DOWN_BOUND_MS=3000  # a functional bound, not a benchmark: expected ~ interval * fall + timeout
UP_BOUND_MS=3000    # the same for rise
CONNS=60            # short connections of each traffic step ...
EXCHANGES=3         # ... with this many exchanges each
DOWN_CONNS=30       # connections made while no agent runs
LONG_CONNS=60       # long-lived connections, all at once
INTERVAL_MS=50      # their exchanges this far apart
DRAIN_EXCHANGES=60  # about 3 s
RESTART_EXCHANGES=120 # about 6 s: the agent is killed and started again within
LONG_TIMEOUT_MS=20000
ESTABLISH_WAIT_S=10 # at most this long for the long-lived connections to open
AGENT_START_S=15    # at most this long for a started agent's API to answer
NEW_WEIGHT=300      # rs1's weight in the config of the api scenario's SIGHUP
METRICS_ADDR=127.0.0.1:9120
API_ADDR=127.0.0.1:9121

# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"
TARGET=$XLBT_VIP4:$PORT

# Per scenario: the config file and the token file.
CFG=
TOKEN_FILE=

# ---------------------------------------------------------------------------
# Setup

attach_decap_all() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		rs_decap_attach "$i" || return 1
	done
}

# The namesrv of each real also listens on the real's own address, for the
# health check; NAMESRV_PID[N] is real N's.
NAMESRV_PID=()
start_namesrv() {
	rs_start_namesrv "$1" --listen "$(rs_addr4 "$1"):$PORT" || return 1
	NAMESRV_PID[$1]=$XLBT_LAST_PID
}

start_namesrv_all() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		start_namesrv "$i" || return 1
	done
}

# write_config FILE [RS1_WEIGHT [EXTRA_SERVICE_LINE]]: the agent's config;
# EXTRA_SERVICE_LINE is put after drop_on_failure, indented as a key of the
# service.
write_config() {
	local f=$1 w1=${2:-$WEIGHT} extra=${3:-} i w
	{
		printf '# xlb-agent configuration of tests/integration/test_agent.sh\n'
		xlbt_node_yaml "$METRICS_ADDR" "$API_ADDR" "$TOKEN_FILE"
		printf '  rebalance_interval: 200ms\n'
		printf 'services:\n'
		printf '  - name: %s\n' "$SERVICE"
		printf '    address: %s\n' "$XLBT_VIP4"
		printf '    ports: [%d]\n' "$PORT"
		printf '    protocol: tcp\n'
		printf '    forwarding: ipip\n'
		printf '    scheduler: wrr\n'
		printf '    drop_on_failure: false\n'
		[[ -n $extra ]] && printf '    %s\n' "$extra"
		printf '    health_check: {type: tcp, port: %d, interval: %dms, timeout: %dms, rise: %d, fall: %d}\n' \
			"$PORT" "$CHECK_INTERVAL_MS" "$CHECK_TIMEOUT_MS" "$RISE" "$FALL"
		printf '    reals:\n'
		for ((i = 1; i <= NREALS; i++)); do
			w=$WEIGHT
			((i == 1)) && w=$w1
			printf '      - {name: rs%d, address: %s, weight: %d}\n' "$i" "$(rs_addr4 "$i")" "$w"
		done
	} >"$f"
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
	xlbt_log "xlb-agent's output ($AGENT_LOG):"
	xlbt_log_file "$AGENT_LOG" 30
	if api list >"$TEST_TMP/list.dump" 2>&1; then
		xlbt_log "xlbctl list:"
	else
		xlbt_log "xlbctl list failed:"
	fi
	xlbt_log_file "$TEST_TMP/list.dump"
}

# setup SC: topology, decap and namesrv on every real, the agent on the LB,
# all reals up on their checks, a few connections through the VIP.
setup() {
	local sc=$1
	CFG=$TEST_TMP/$sc-xlb.yaml
	TOKEN_FILE=$TEST_TMP/$sc-api.token
	NAMESRV_PID=()
	AGENT_PID=
	AGENT_LOG=
	write_config "$CFG"
	step "$sc: topology up (client, lb, $NREALS reals, bridge)" topo_up "$NREALS" &&
		step "$sc: decap attached on rs1..rs$NREALS" attach_decap_all &&
		step "$sc: xlbt-namesrv answers on every real (VIP and own address)" start_namesrv_all &&
		step "$sc: xlb-agent --check accepts the config" \
			in_ns lb timeout --foreground 30 "$XLB_AGENT" --check "$CFG" &&
		step "$sc: xlb-agent runs on lb and its API answers" start_agent "$sc-agent" &&
		check_all_up "$sc" &&
		step "$sc: 3 probe connections through the VIP succeed" \
			in_ns client timeout --foreground 30 "$XLBT_CLIENT" --connect "$TARGET" --count 3 \
			--parallel 3 --exchanges 3 --timeout-ms 3000 --deadline-ms 10000
}

# ---------------------------------------------------------------------------
# Observations

LIST_JSON=

# list: "xlbctl list --json" into $LIST_JSON.
list() {
	LIST_JSON=$TEST_TMP/list.json
	api list --json >"$LIST_JSON" 2>"$TEST_TMP/list.err"
}

# svc_field EXPR: a field of the service in the last list ("['vs_id']").
svc_field() {
	xlbt_json "[s for s in d['services'] if s['name'] == '$SERVICE'][0]$1" <"$LIST_JSON"
}

# real_field NAME EXPR: a field of a real in the last list ("['state']").
real_field() {
	xlbt_json "[r for s in d['services'] if s['name'] == '$SERVICE' for r in s['reals'] if r['name'] == '$1'][0]$2" \
		<"$LIST_JSON"
}

# check_counts NAME: "PROBES FAILURES" of a real's check in the last list.
check_counts() {
	real_field "$1" "['check']" 2>/dev/null | xlbt_json "'%d %d' % (d['probes'], d['failures'])"
}

# states: "rs1=up rs2=down ..." from the last list.
states() {
	xlbt_json "' '.join('%s=%s' % (r['name'], r['state']) for s in d['services'] if s['name'] == '$SERVICE' for r in s['reals'])" \
		<"$LIST_JSON"
}

STATES=
WAIT_MS=
SEEN_CHECK=
# wait_states WANT MAX_MS [REAL]: poll the API (GET /api/v1/services/$SERVICE
# from inside the LB, every 20 ms: xlbctl and a JSON parse per poll would
# measure in steps of ~150 ms) until the states of the reals are WANT, then
# take the states from "xlbctl list". WAIT_MS is the time from the call to
# the first poll that saw WANT (or to giving up); SEEN_CHECK is "PROBES
# FAILURES" of REAL's check at that poll (a probe takes an interval, so these
# are the counts at the decision); STATES is what xlbctl list shows.
wait_states() {
	local want=$1 max=$2 real=${3:-} t0 out rc=0
	t0=$(xlbt_now_ms)
	out=$(in_ns lb timeout --foreground $((max / 1000 + 10)) python3 - \
		"http://$API_ADDR/api/v1/services/$SERVICE" "$TOKEN_FILE" "$want" "$t0" "$max" "$real" <<'PY'
import json, sys, time, urllib.request
url, token_file, want, t0, limit, real = sys.argv[1:7]
t0, limit = int(t0), int(limit)
with open(token_file) as f:
    token = f.read().strip()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + token})
counts = 'x x'
while True:
    try:
        with opener.open(req, timeout=2) as r:
            d = json.load(r)
        seen = ' '.join('%s=%s' % (x['name'], x['state']) for x in d['reals'])
        for x in d['reals']:
            if x['name'] == real:
                counts = '%d %d' % (x['check']['probes'], x['check']['failures'])
    except Exception as e:
        seen = 'error: %s' % e
    ms = int(time.time() * 1000) - t0
    if seen == want or ms >= limit:
        print(ms, counts)
        sys.exit(0 if seen == want else 1)
    time.sleep(0.02)
PY
	) || rc=$?
	WAIT_MS=${out%% *}
	SEEN_CHECK=${out#* }
	[[ -n $WAIT_MS ]] || WAIT_MS=x
	if list && STATES=$(states 2>/dev/null); then :; else STATES="(xlbctl list failed)"; fi
	((rc == 0)) && [[ $STATES == "$want" ]]
}

# checked_up: every real is up on a check decision, after at least $RISE
# probes and no failure (from the last list).
checked_up() {
	[[ $(xlbt_json "all(r['state'] == 'up' and r['usable'] and r['check']['up'] and r['check'].get('probes', 0) >= $RISE and r['check'].get('failures', 1) == 0 for s in d['services'] if s['name'] == '$SERVICE' for r in s['reals'])" \
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
	if ! check "$sc: rs1..rs$NREALS up, each after >= $RISE passing TCP checks (${waited} ms; $(states 2>/dev/null))" \
		checked_up; then
		xlbt_log_file "$LIST_JSON" 60
		return 1
	fi
}

# Established TCP connections from the client to the VIP port.
established() {
	in_ns client ss -Htn state established dst "$XLBT_VIP4" "( dport = :$PORT )" | wc -l
}

STATUS_JSON=
# svc_new_flows: new_flows of the service from the pinned maps ("xlbctl status").
svc_new_flows() {
	STATUS_JSON=$TEST_TMP/status.json
	xlbctl_in lb status --json >"$STATUS_JSON" 2>"$TEST_TMP/status.err" || return 1
	xlbt_json "[s for s in d['services'] if s['name'] == '$SERVICE'][0]['new_flows']" <"$STATUS_JSON"
}

# http_get URL OUT [CURL-ARGS...]: GET from inside the LB; the body goes to
# OUT and the status is printed (000: no answer).
http_get() {
	local url=$1 out=$2
	shift 2
	in_ns lb curl -s --noproxy '*' -o "$out" -w '%{http_code}' --max-time 5 "$@" "$url"
}

METRICS=
# scrape: GET /metrics into $METRICS; fails unless the status is 200.
scrape() {
	local code
	METRICS=$TEST_TMP/metrics.txt
	code=$(http_get "http://$METRICS_ADDR/metrics" "$METRICS")
	[[ $code == 200 ]]
}

# metric SAMPLE: the value of one sample line of the last scrape, e.g.
# 'xlb_config_reloads_total{result="success"}'.
metric() {
	awk -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$METRICS"
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

# check_client SC WHAT N JSON ERR: every one of N connections succeeded, each
# answered by one real, none by an unknown server. Leaves the fields in F.
check_client() {
	local sc=$1 what=$2 n=$3 json=$4 err=$5 good=1
	F=()
	if ! client_fields "$json"; then
		not_ok "$sc: xlbt-client printed a JSON result for the $what connections"
		xlbt_log_file "$json"
		xlbt_log_file "$err"
		return 1
	fi
	local n_ok=${F[0]} n_failed=${F[1]} n_incons=${F[2]} n_unknown=${F[$((NREALS + 3))]}
	check "$sc: $n_ok/$n $what connections succeeded ($n_failed failed)" \
		all_ok "$n_ok" "$n_failed" "$n" || good=0
	check "$sc: every $what connection was answered by one real only ($n_incons inconsistent)" \
		is_zero "$n_incons" || good=0
	check "$sc: no $what connection answered by an unknown server ($n_unknown)" \
		is_zero "$n_unknown" || good=0
	xlbt_log "$sc: $what connections by real: rs1 $(answered 1), rs2 $(answered 2), rs3 $(answered 3)"
	if ((!good)); then
		xlbt_log "xlbt-client ($what):"
		xlbt_log_file "$json"
		xlbt_log_file "$err"
	fi
	((good))
}

# conns SC WHAT N: N short connections through the VIP, checked. Sets F.
conns() {
	local sc=$1 what=$2 n=$3 json=$TEST_TMP/$1-$2.json err=$TEST_TMP/$1-$2.err
	in_ns client timeout --foreground 90 "$XLBT_CLIENT" --connect "$TARGET" --count "$n" \
		--exchanges "$EXCHANGES" --parallel 10 --timeout-ms 3000 --deadline-ms 60000 \
		--json >"$json" 2>"$err"
	check_client "$sc" "$what" "$n" "$json" "$err"
}

CLIENT_PID=
CLIENT_JSON=
CLIENT_ERR=

# start_long NAME EXCHANGES: the long-lived connections, in the background.
start_long() {
	CLIENT_JSON=$TEST_TMP/$1.json
	CLIENT_ERR=$TEST_TMP/$1.err
	in_ns client timeout --foreground 60 "$XLBT_CLIENT" --connect "$TARGET" \
		--count "$LONG_CONNS" --parallel "$LONG_CONNS" --exchanges "$2" \
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

# begin_long SC EXCHANGES: start the long-lived connections and wait until
# all are open.
begin_long() {
	local sc=$1 ex=$2
	start_long "$sc-long" "$ex"
	if ! check "$sc: $LONG_CONNS long-lived connections ($ex exchanges, ${INTERVAL_MS} ms apart) established" \
		wait_established; then
		xlbt_log "established: $N_EST"
		xlbt_log_file "$CLIENT_ERR"
		return 1
	fi
}

# still_open SC WHEN: the long-lived connections are all still open.
still_open() {
	local sc=$1
	N_EST=$(established) || N_EST=x
	check "$sc: all $LONG_CONNS long-lived connections still open $2 ($N_EST established)" \
		at_least "$N_EST" "$LONG_CONNS"
}

# end_long SC: wait for the long-lived connections and check them. Sets F.
CLIENT_RC=
end_long() {
	local sc=$1
	CLIENT_RC=0
	wait "$CLIENT_PID" || CLIENT_RC=$?
	xlbt_forget_pid "$CLIENT_PID"
	CLIENT_PID=
	((CLIENT_RC == 0)) || xlbt_log "$sc: xlbt-client (long-lived) exited with status $CLIENT_RC"
	check_client "$sc" long-lived "$LONG_CONNS" "$CLIENT_JSON" "$CLIENT_ERR"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Conditions of checks (arguments may be "x" where a value is missing).
all_ok() { is_uint "$1" && is_uint "$2" && (($1 == $3 && $2 == 0)); }
is_zero() { [[ $1 == 0 ]]; }
is_positive() { is_uint "$1" && (($1 > 0)); }
all_positive() {
	local v
	for v in "$@"; do
		is_positive "$v" || return 1
	done
}
at_least() { is_uint "$1" && (($1 >= $2)); }
same() { [[ $1 == "$2" ]]; }
# more_than A B...: A is larger than every B.
more_than() {
	local a=$1 b
	shift
	is_uint "$a" || return 1
	for b in "$@"; do
		is_uint "$b" && ((a > b)) || return 1
	done
}
grew_by_at_least() { is_uint "$1" && is_uint "$2" && (($2 - $1 >= $3)); }
# passes P0 F0 P1 F1: passing probes between two (probes, failures) readings.
passes() {
	if is_uint "$1" && is_uint "$2" && is_uint "$3" && is_uint "$4"; then
		echo $((($3 - $4) - ($1 - $2)))
	else
		echo x
	fi
}
delta() { if is_uint "$1" && is_uint "$2"; then echo $(($2 - $1)); else echo "?"; fi; }

# each_real_at_least MIN: every real answered at least MIN connections in F.
each_real_at_least() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		at_least "$(answered "$i")" "$1" || return 1
	done
}

# ---------------------------------------------------------------------------
# Scenarios

scenario_checks() {
	local sc=checks good=1 expect_ms=$((CHECK_INTERVAL_MS * FALL + CHECK_TIMEOUT_MS))
	conns "$sc" first "$CONNS" || good=0
	check "$sc: each real answered at least $((CONNS / 6)) of the $CONNS connections (rs1 $(answered 1), rs2 $(answered 2), rs3 $(answered 3))" \
		each_real_at_least $((CONNS / 6)) || good=0

	# rs2's server goes away: its check fails.
	local down_ok=0 up_ok=0 p0 f0 p1 f1
	list && read -r p0 f0 < <(check_counts rs2)
	xlbt_stop_pid "${NAMESRV_PID[2]}"
	wait_states "rs1=up rs2=down rs3=up" "$DOWN_BOUND_MS" rs2 && down_ok=1
	read -r p1 f1 <<<"$SEEN_CHECK"
	xlbt_log "$sc: rs2 seen down ${WAIT_MS} ms after its server stopped (at most about interval * fall + timeout = $expect_ms ms expected)"
	check "$sc: rs2 down within $DOWN_BOUND_MS ms of its server stopping, rs1 and rs3 up (${WAIT_MS} ms; $STATES)" \
		same "$down_ok" 1 || good=0
	check "$sc: ... after at least $FALL failed probes (failures ${f0:-?} -> ${f1:-?} when first seen down)" \
		grew_by_at_least "${f0:-x}" "${f1:-x}" "$FALL" || good=0
	local usable eff up
	usable=$(real_field rs2 "['usable']" 2>/dev/null) || usable=x
	eff=$(real_field rs2 "['effective_weight']" 2>/dev/null) || eff=x
	up=$(real_field rs2 "['check']['up']" 2>/dev/null) || up=x
	check "$sc: rs2 not usable, effective weight 0, check down (usable $usable, effective_weight $eff, check up $up)" \
		same "$usable $eff $up" "False 0 False" || good=0
	conns "$sc" rs2-down "$CONNS" || good=0
	check "$sc: rs2 answered none of the connections while down ($(answered 2))" \
		is_zero "$(answered 2)" || good=0

	# rs2's server is back: its check passes again.
	p0='' f0=''
	list && read -r p0 f0 < <(check_counts rs2)
	if step "$sc: xlbt-namesrv on rs2 started again" start_namesrv 2; then
		wait_states "rs1=up rs2=up rs3=up" "$UP_BOUND_MS" rs2 && up_ok=1
		read -r p1 f1 <<<"$SEEN_CHECK"
		xlbt_log "$sc: rs2 seen up ${WAIT_MS} ms after its server answered again"
		check "$sc: rs2 up again within $UP_BOUND_MS ms of its server answering (${WAIT_MS} ms; $STATES)" \
			same "$up_ok" 1 || good=0
		check "$sc: ... after at least $RISE passing probes ($(passes "$p0" "$f0" "$p1" "$f1") when first seen up)" \
			at_least "$(passes "$p0" "$f0" "$p1" "$f1")" "$RISE" || good=0
		conns "$sc" rs2-back "$CONNS" || good=0
		check "$sc: rs2 answers new connections again ($(answered 2) of $CONNS)" \
			is_positive "$(answered 2)" || good=0
	else
		good=0
	fi
	((good)) || dump_agent
}

scenario_drain() {
	local sc=drain good=1 usable eff admin
	begin_long "$sc" "$DRAIN_EXCHANGES" || {
		dump_agent
		return
	}
	step "$sc: xlbctl drain $SERVICE rs1 while the connections run" api drain "$SERVICE" rs1 || good=0
	list || good=0
	STATES=$(states 2>/dev/null) || STATES=x
	check "$sc: rs1 is drain, rs2 and rs3 up ($STATES)" same "$STATES" "rs1=drain rs2=up rs3=up" ||
		good=0
	admin=$(real_field rs1 "['admin']" 2>/dev/null) || admin=x
	usable=$(real_field rs1 "['usable']" 2>/dev/null) || usable=x
	eff=$(real_field rs1 "['effective_weight']" 2>/dev/null) || eff=x
	check "$sc: rs1 admin drain, not usable, effective weight 0 ($admin, usable $usable, effective_weight $eff)" \
		same "$admin $usable $eff" "drain False 0" || good=0
	conns "$sc" during-drain "$CONNS" || good=0
	check "$sc: rs1 answered none of the new connections after the drain ($(answered 1))" \
		is_zero "$(answered 1)" || good=0
	still_open "$sc" "after the drain and the new connections" || good=0

	end_long "$sc" || good=0
	check "$sc: some long-lived connections were on rs1 and ended well ($(answered 1))" \
		is_positive "$(answered 1)" || good=0

	step "$sc: xlbctl enable $SERVICE rs1" api enable "$SERVICE" rs1 || good=0
	list || good=0
	STATES=$(states 2>/dev/null) || STATES=x
	admin=$(real_field rs1 "['admin']" 2>/dev/null) || admin=x
	check "$sc: rs1 up again, admin none ($STATES; admin $admin)" \
		same "$STATES $admin" "rs1=up rs2=up rs3=up none" || good=0
	conns "$sc" after-enable "$CONNS" || good=0
	check "$sc: rs1 answers new connections again ($(answered 1) of $CONNS)" \
		is_positive "$(answered 1)" || good=0
	((good)) || dump_agent
}

scenario_restart() {
	local sc=restart good=1 vs0 vs1 prog0 prog1 nf0 nf1 admin
	step "$sc: xlbctl drain $SERVICE rs3" api drain "$SERVICE" rs3 || good=0
	list || good=0
	STATES=$(states 2>/dev/null) || STATES=x
	check "$sc: rs3 is drain before the kill ($STATES)" same "$STATES" "rs1=up rs2=up rs3=drain" ||
		good=0
	vs0=$(svc_field "['vs_id']" 2>/dev/null) || vs0=x
	prog0=$(xlbt_xdp_prog_id lb) || prog0=none
	begin_long "$sc" "$RESTART_EXCHANGES" || {
		dump_agent
		return
	}
	nf0=$(svc_new_flows) || nf0=x

	# kill -9: the data plane forwards on its own.
	kill -KILL "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	xlbt_forget_pid "$AGENT_PID"
	check "$sc: xlb-agent killed with SIGKILL" not_running "$AGENT_PID" || good=0
	prog1=$(xlbt_xdp_prog_id lb) || prog1=none
	check "$sc: the XDP program stays attached on lb (id $prog0, now $prog1)" \
		same "$prog1" "$prog0" || good=0
	conns "$sc" no-agent "$DOWN_CONNS" || good=0
	check "$sc: rs3 stays drained without an agent (answered $(answered 3))" is_zero "$(answered 3)" ||
		good=0

	# A new agent over the same pins.
	if ! step "$sc: xlb-agent started again with the same config; its API answers" \
		start_agent "$sc-agent2"; then
		end_long "$sc"
		return
	fi
	still_open "$sc" "after the restart" || good=0
	list || good=0
	STATES=$(states 2>/dev/null) || STATES=x
	admin=$(real_field rs3 "['admin']" 2>/dev/null) || admin=x
	check "$sc: the new agent adopted rs3's drain ($STATES; admin $admin)" \
		same "$STATES $admin" "rs1=up rs2=up rs3=drain drain" || good=0
	vs1=$(svc_field "['vs_id']" 2>/dev/null) || vs1=x
	check "$sc: service $SERVICE keeps its vs_id ($vs0, now $vs1)" same "$vs1" "$vs0" || good=0
	nf1=$(svc_new_flows) || nf1=x
	check "$sc: new_flows not reset and counted the $DOWN_CONNS connections without an agent ($nf0 before the kill, $nf1 after the restart)" \
		grew_by_at_least "$nf0" "$nf1" "$DOWN_CONNS" || good=0

	end_long "$sc" || good=0
	conns "$sc" after-restart "$CONNS" || good=0
	check "$sc: rs3 answered none of the new connections after the restart ($(answered 3))" \
		is_zero "$(answered 3)" || good=0
	check "$sc: rs1 and rs2 answered the new connections ($(answered 1), $(answered 2))" \
		all_positive "$(answered 1)" "$(answered 2)" || good=0
	((good)) || dump_agent
}

not_running() { ! kill -0 "$1" 2>/dev/null; }

token_created() {
	[[ -f $TOKEN_FILE && $(stat -c %a -- "$TOKEN_FILE") == 600 ]] &&
		[[ $(tr -d '\n' <"$TOKEN_FILE" | wc -c) -ge 16 ]]
}

scenario_api() {
	local sc=api good=1 code tok body=$TEST_TMP/api-body.json url
	url="http://$API_ADDR/api/v1/services"

	# The token.
	check "$sc: the agent created node.api.token_file with a token, mode 0600" token_created || good=0
	tok=$(tr -d '\n' <"$TOKEN_FILE" 2>/dev/null) || tok=
	code=$(http_get "$url" "$body")
	check "$sc: GET /api/v1/services without a token: 401 ($code)" same "$code" 401 || good=0
	code=$(http_get "$url" "$body" -H "Authorization: Bearer wrong${tok}")
	check "$sc: ... with a wrong token: 401 ($code)" same "$code" 401 || good=0
	code=$(http_get "$url" "$body" -H "Authorization: Basic ${tok}")
	check "$sc: ... with the token but not as a bearer token: 401 ($code)" same "$code" 401 || good=0
	code=$(http_get "$url" "$body" -H "Authorization: Bearer ${tok}")
	check "$sc: ... with the token: 200 ($code)" same "$code" 200 || good=0

	# Metrics against the data plane's counters.
	conns "$sc" first "$CONNS" || good=0
	local nf_metric nf_status out=$TEST_TMP/promtool.out
	if ! check "$sc: GET /metrics answers 200" scrape; then
		good=0
	else
		if ! check "$sc: promtool check metrics accepts /metrics" \
			promtool_ok "$METRICS" "$out"; then
			xlbt_log_file "$out"
			good=0
		fi
		nf_metric=$(metric "xlb_service_new_flows_total{vs=\"$SERVICE\"}") || nf_metric=x
		nf_status=$(svc_new_flows) || nf_status=x
		check "$sc: xlb_service_new_flows_total{vs=\"$SERVICE\"} equals new_flows of xlbctl status ($nf_metric, $nf_status)" \
			same "$nf_metric" "$nf_status" || good=0
		check "$sc: ... and counts the $CONNS connections ($nf_status)" at_least "$nf_status" "$CONNS" ||
			good=0
	fi
	local ok0 fail0 ok1 fail1 last
	ok0=$(metric 'xlb_config_reloads_total{result="success"}') || ok0=x
	fail0=$(metric 'xlb_config_reloads_total{result="failure"}') || fail0=x

	# A broken config: rejected with the place of the mistake.
	local good_cfg=$TEST_TMP/$sc-good.yaml line col=5 msg=$TEST_TMP/reload.out rc=0 shown
	cp -- "$CFG" "$good_cfg"
	write_config "$CFG" "$WEIGHT" "bogus_key: 1"
	line=$(grep -n 'bogus_key' "$CFG" | cut -d: -f1)
	in_ns lb timeout --foreground 30 "$XLB_AGENT" --check "$CFG" >"$msg" 2>&1 || rc=$?
	if ! check "$sc: xlb-agent --check rejects an unknown key naming $CFG:$line:$col (exit $rc)" \
		rejected_at "$rc" "$msg" "$CFG:$line:$col:" bogus_key; then
		xlbt_log_file "$msg"
		good=0
	fi
	rc=0
	api reload >"$msg" 2>&1 || rc=$?
	if ! check "$sc: xlbctl reload fails and names $CFG:$line:$col and the key (exit $rc)" \
		rejected_at "$rc" "$msg" "$CFG:$line:$col:" bogus_key; then
		xlbt_log_file "$msg"
		good=0
	fi
	shown=$TEST_TMP/config.shown
	api config >"$shown" 2>&1
	if ! check "$sc: xlbctl config still shows the config in force" cmp -s "$shown" "$good_cfg"; then
		xlbt_log_file "$shown"
		good=0
	fi
	conns "$sc" after-bad-reload "$CONNS" || good=0
	list || good=0
	STATES=$(states 2>/dev/null) || STATES=x
	check "$sc: services and reals unchanged ($STATES, rs1 weight $(real_field rs1 "['weight']" 2>/dev/null))" \
		same "$STATES $(real_field rs1 "['weight']" 2>/dev/null)" "rs1=up rs2=up rs3=up $WEIGHT" || good=0
	if scrape; then
		ok1=$(metric 'xlb_config_reloads_total{result="success"}') || ok1=x
		fail1=$(metric 'xlb_config_reloads_total{result="failure"}') || fail1=x
		last=$(metric 'xlb_config_last_reload_successful') || last=x
	else
		ok1=x fail1=x last=x
	fi
	check "$sc: the failed reload is counted (failure $fail0 -> $fail1, success $ok0 -> $ok1, last successful $last)" \
		same "$(delta "$fail0" "$fail1") $(delta "$ok0" "$ok1") $last" "1 0 0" || good=0

	# Fixed, with another weight for rs1: SIGHUP applies it.
	write_config "$CFG" "$NEW_WEIGHT"
	step "$sc: xlb-agent --check accepts the fixed config" \
		in_ns lb timeout --foreground 30 "$XLB_AGENT" --check "$CFG" || good=0
	kill -HUP "$AGENT_PID"
	local t0 w=x eff=x
	t0=$(xlbt_now_ms)
	while (($(xlbt_now_ms) - t0 < 5000)); do
		if list && w=$(real_field rs1 "['weight']" 2>/dev/null) && [[ $w == "$NEW_WEIGHT" ]]; then
			break
		fi
		sleep 0.05
	done
	eff=$(real_field rs1 "['effective_weight']" 2>/dev/null) || eff=x
	check "$sc: after SIGHUP xlbctl list shows rs1 with weight $NEW_WEIGHT (weight $w, effective $eff)" \
		same "$w $eff" "$NEW_WEIGHT $NEW_WEIGHT" || good=0
	if scrape; then
		ok1=$(metric 'xlb_config_reloads_total{result="success"}') || ok1=x
		last=$(metric 'xlb_config_last_reload_successful') || last=x
	else
		ok1=x last=x
	fi
	check "$sc: xlb_config_reloads_total{result=\"success\"} grew by 1 ($ok0 -> $ok1; last successful $last)" \
		same "$(delta "$ok0" "$ok1") $last" "1 1" || good=0
	api config >"$shown" 2>&1
	if ! check "$sc: xlbctl config shows the new config" cmp -s "$shown" "$CFG"; then
		xlbt_log_file "$shown"
		good=0
	fi
	conns "$sc" after-sighup "$CONNS" || good=0
	check "$sc: rs1 ($NEW_WEIGHT) answered more new connections than rs2 and rs3 ($WEIGHT each): $(answered 1) vs $(answered 2), $(answered 3)" \
		more_than "$(answered 1)" "$(answered 2)" "$(answered 3)" || good=0
	((good)) || dump_agent
}

# promtool_ok FILE OUT: promtool check metrics on FILE, its output to OUT.
promtool_ok() { promtool check metrics <"$1" >"$2" 2>&1; }

# rejected_at RC OUT PLACE WORD: a non-zero exit, OUT has PLACE and WORD.
rejected_at() {
	(($1 != 0)) && grep -qF -- "$3" "$2" && grep -qF -- "$4" "$2"
}

# gone SC: after topo_down, no agent of this scenario runs and no namespace
# of this run is left.
gone() {
	local left
	left=$(compgen -G "/run/netns/$XLBT_PREFIX-*")
	[[ -z $left ]] || {
		xlbt_log "namespaces left: $left"
		return 1
	}
	[[ -z $AGENT_PID ]] || not_running "$AGENT_PID"
}

run_scenario() {
	local sc=$1
	case $sc in
	checks | drain | restart | api) ;;
	*)
		not_ok "$sc: unknown scenario (known: checks drain restart api)"
		return
		;;
	esac
	xlbt_log "scenario $sc: VIP $TARGET, reals rs1..rs$NREALS (ipip, wrr), managed by xlb-agent"
	if setup "$sc"; then
		if [[ $XLBT_XDP_MODE == native ]]; then
			local mode
			mode=$(xlbt_xdp_mode lb)
			check "$sc: XDP on lb runs in native (driver) mode (ip link: $mode)" [ "$mode" = xdp ]
		fi
		"scenario_$sc"
	elif [[ -n $AGENT_LOG ]]; then
		dump_agent
	fi
	topo_down
	check "$sc: cleanup: the agent stopped, no namespace left" gone
}

main() {
	local sc scenarios=()
	if (($# > 0)); then
		scenarios=("$@")
	else
		read -r -a scenarios <<<"${XLBT_SCENARIOS:-checks drain restart api}"
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
	local c
	for c in ss curl promtool; do
		if ! command -v "$c" >/dev/null 2>&1; then
			PREREQ_FAILED=1
			not_ok "prerequisites: required command '$c' not found (packages iproute2, curl, prometheus)"
			exit 2
		fi
	done
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
