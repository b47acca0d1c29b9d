#!/usr/bin/env bash
# A real Prometheus server scrapes xlb-agent and xlb-proxy, in network
# namespaces.
#
#   tests/integration/test_prometheus.sh
#
# Topology (lib.sh, prefix xlbt-pm<PID>): a client, the LB and two reals on
# one bridge. The reals hold the VIP on lo, run the decap program and
# xlbt-namesrv on VIP:80 and on their own address (the agent's TCP check).
# The LB runs xlb-agent with one service "$SERVICE" ($XLBT_VIP4:80/tcp,
# ipip, rr) and Debian's prometheus server, both inside the LB's namespace,
# so that Prometheus scrapes the agent's /metrics on the LB's loopback.
#
# Checked:
#   - promtool accepts the generated Prometheus config;
#   - $CONNS connections from the client through the VIP succeed;
#   - after the traffic stopped, xlbctl status --json (the pinned maps)
#     counts exactly $CONNS new flows for the service;
#   - Prometheus answers /-/ready, and within $SCRAPE_WAIT_S s it has a
#     sample of every job in SCRAPE_JOBS with up == 1;
#   - the newest xlb_service_new_flows_total{vs="$SERVICE"} sample that
#     Prometheus took after the traffic stopped equals the data plane's
#     value, and so do the per-real xlb_real_new_flows_total samples summed;
#   - xlb-proxy (layer-7 service "$L7" on the LB's address, port 8000, reals
#     xlbt-backend on the reals' port 8080) answers $L7_REQUESTS requests,
#     and the newest xlb_proxy_requests_total{vs="$L7"} sample equals that;
#   - afterwards prometheus and the agent are gone, and no namespace is
#     left.
#
# SCRAPE_JOBS lists "JOB=HOST:PORT" scrape targets inside the LB's
# namespace: the agent and the proxy.
#
# Output: one "ok - ..." or "not ok - ..." line per check, diagnostics as
# "# ..." lines, and last exactly one line "N passed, M failed".
# Exit status: 0 all passed; 1 a check failed; 2 the test cannot run here
# (not root, BPF, a binary or a tool missing), reported as a failure.
#
# Environment (required, as scripts/check.sh sets them): XLB_AGENT,
# XLB_PROXY, XLBT_BACKEND, XLBCTL, XLBT_NAMESRV, XLBT_CLIENT. Optional: XLBT_XDP_MODE (default native),
# XLBT_KEEP_LOGS=1.
# shellcheck disable=SC2317,SC2034  # functions run through step/check and the exit hook; report.sh reads PREREQ_FAILED, lib.sh XLBT_EXIT_HOOK
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

MISSING_ENV=()
for v in XLB_AGENT XLB_PROXY XLBT_BACKEND XLBCTL XLBT_NAMESRV XLBT_CLIENT; do
	[[ -n ${!v:-} ]] || MISSING_ENV+=("$v")
done

# Names unique to this test: namespaces xlbt-pm<PID>-<role>.
if [[ -z ${XLBT_PREFIX:-} ]]; then
	XLBT_PREFIX=xlbt-pm$$
	for ((try = 0; try < 20; try++)); do
		compgen -G "/run/netns/$XLBT_PREFIX-*" >/dev/null || compgen -G "/tmp/$XLBT_PREFIX.*" >/dev/null ||
			[[ -e /sys/fs/bpf/$XLBT_PREFIX ]] || break
		XLBT_PREFIX=xlbt-pm$$r$RANDOM
	done
fi

# shellcheck source=tests/integration/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"

XLB_AGENT=$(xlbt_abs_bin "${XLB_AGENT:-}")
XLB_PROXY=$(xlbt_abs_bin "${XLB_PROXY:-}")
XLBT_BACKEND=$(xlbt_abs_bin "${XLBT_BACKEND:-}")
L7=shop
L7_REQUESTS=25
PROXY_METRICS_ADDR=127.0.0.1:9122
PROXY_PID=

SERVICE=web
PORT=80
NREALS=2
CONNS=40
METRICS_ADDR=127.0.0.1:9120
API_ADDR=127.0.0.1:9121
SCRAPE_JOBS=("xlb-agent=$METRICS_ADDR" "xlb-proxy=$PROXY_METRICS_ADDR")
AGENT_START_S=15
PROM_START_S=20
UP_WAIT_S=5
SCRAPE_WAIT_S=15

CFG=
TOKEN_FILE=
AGENT_PID=
PROM_PID=
PROM_ADDR=

# ---------------------------------------------------------------------------
# Setup

write_agent_config() {
	local i
	{
		xlbt_node_yaml "$METRICS_ADDR" "$API_ADDR" "$TOKEN_FILE"
		printf 'proxy:\n'
		printf '  workers: 2\n'
		printf '  metrics: {listen: "%s"}\n' "$PROXY_METRICS_ADDR"
		printf '  access_log: off\n'
		printf '  cookie_key_file: %s\n' "$TEST_TMP/cookie.key"
		printf 'services:\n'
		printf '  - name: %s\n    address: %s\n    ports: [8000]\n    layer: 7\n' "$L7" "$XLBT_LB4"
		printf '    health_check: {type: http, port: 8080, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}\n'
		printf '    reals:\n'
		for ((i = 1; i <= NREALS; i++)); do
			printf '      - {name: rs%d, address: %s, port: 8080}\n' "$i" "$(rs_addr4 "$i")"
		done
		printf '  - name: %s\n' "$SERVICE"
		printf '    address: %s\n' "$XLBT_VIP4"
		printf '    ports: [%d]\n' "$PORT"
		printf '    forwarding: ipip\n'
		printf '    scheduler: rr\n'
		printf '    health_check: {type: tcp, port: %d, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}\n' "$PORT"
		printf '    reals:\n'
		for ((i = 1; i <= NREALS; i++)); do
			printf '      - {name: rs%d, address: %s}\n' "$i" "$(rs_addr4 "$i")"
		done
	} >"$CFG"
}

# The Prometheus config: one job per SCRAPE_JOBS entry.
write_prom_config() {
	local f=$1 e
	{
		printf 'global:\n'
		printf '  scrape_interval: 1s\n'
		printf '  scrape_timeout: 1s\n'
		printf '  evaluation_interval: 1s\n'
		printf 'scrape_configs:\n'
		for e in "${SCRAPE_JOBS[@]}"; do
			printf '  - job_name: %s\n' "${e%%=*}"
			printf '    static_configs:\n'
			printf '      - targets: ["%s"]\n' "${e#*=}"
		done
	} >"$f"
}

api() {
	in_ns lb timeout --foreground 15 "$XLBCTL" "$@" --api "$API_ADDR" --token-file "$TOKEN_FILE"
}

attach_and_serve() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		rs_decap_attach "$i" || return 1
		rs_start_namesrv "$i" --listen "$(rs_addr4 "$i"):$PORT" || return 1
		in_ns_bg "rs$i" "backend-rs$i" "$XLBT_BACKEND" --name "rs$i" --listen "$(rs_addr4 "$i"):8080"
	done
}

start_proxy() {
	local try
	in_ns_bg lb proxy "$XLB_PROXY" --config "$CFG"
	PROXY_PID=$XLBT_LAST_PID
	for ((try = 0; try < 100; try++)); do
		in_ns lb curl -sf -o /dev/null "http://$PROXY_METRICS_ADDR/metrics" && return 0
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 30 -- "$XLBT_TMPDIR/proxy.log"
	return 1
}

# l7_requests: L7_REQUESTS requests through the proxy, all answered 200.
l7_requests() {
	local i code
	for ((i = 0; i < L7_REQUESTS; i++)); do
		code=$(in_ns client curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$XLBT_LB4:8000/r$i")
		[[ $code == 200 ]] || { echo "request $i: $code"; return 1; }
	done
}

start_agent() {
	local try
	mkdir -p "$XLBT_BPFFS_BASE/libxdp-lb" || return 1
	in_ns_bg lb agent env LIBXDP_BPFFS="$XLBT_BPFFS_BASE/libxdp-lb" "$XLB_AGENT" --config "$CFG"
	AGENT_PID=$XLBT_LAST_PID
	for ((try = 0; try < AGENT_START_S * 10; try++)); do
		if ! kill -0 "$AGENT_PID" 2>/dev/null; then
			echo "xlb-agent exited; its output:"
			tail -n 30 -- "$XLBT_TMPDIR/agent.log"
			return 1
		fi
		api list --json >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the agent's API does not answer after $AGENT_START_S s"
	tail -n 30 -- "$XLBT_TMPDIR/agent.log"
	return 1
}

# all_up: every real of the service is up (xlbctl list --json).
all_up() {
	local t0 out
	t0=$(xlbt_now_ms)
	while (($(xlbt_now_ms) - t0 < UP_WAIT_S * 1000)); do
		out=$(api list --json 2>/dev/null | xlbt_json \
			"all(r['state'] == 'up' for s in d['services'] if s['name'] == '$SERVICE' for r in s['reals'])" \
			2>/dev/null)
		[[ $out == True ]] && return 0
		sleep 0.1
	done
	api list
	return 1
}

# A free TCP port on the LB's loopback, for Prometheus' web listener.
free_port() {
	in_ns lb python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

start_prometheus() {
	local port try code
	port=$(free_port) || return 1
	PROM_ADDR=127.0.0.1:$port
	mkdir -p "$TEST_TMP/prom-data" || return 1
	in_ns_bg lb prometheus prometheus --config.file="$TEST_TMP/prometheus.yml" \
		--storage.tsdb.path="$TEST_TMP/prom-data" --web.listen-address="$PROM_ADDR" \
		--log.level=warn
	PROM_PID=$XLBT_LAST_PID
	for ((try = 0; try < PROM_START_S * 10; try++)); do
		if ! kill -0 "$PROM_PID" 2>/dev/null; then
			echo "prometheus exited; its output:"
			tail -n 30 -- "$XLBT_TMPDIR/prometheus.log"
			return 1
		fi
		code=$(in_ns lb curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 \
			"http://$PROM_ADDR/-/ready") || code=000
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	echo "prometheus at $PROM_ADDR is not ready after $PROM_START_S s"
	tail -n 30 -- "$XLBT_TMPDIR/prometheus.log"
	return 1
}

# prom_query EXPR: the JSON answer of an instant query, on stdout.
prom_query() {
	in_ns lb curl -s --noproxy '*' --max-time 5 -G "http://$PROM_ADDR/api/v1/query" \
		--data-urlencode "query=$1"
}

# ---------------------------------------------------------------------------
# Observations

DP_NEW_FLOWS=x
DP_REAL_SUM=x
# dp_counters: the service's new flows and the sum over its reals, from the
# pinned maps.
dp_counters() {
	local j=$TEST_TMP/status.json
	xlbctl_in lb status --json >"$j" || return 1
	DP_NEW_FLOWS=$(xlbt_json "[s for s in d['services'] if s['name'] == '$SERVICE'][0]['new_flows']" <"$j") ||
		return 1
	DP_REAL_SUM=$(xlbt_json "sum(r['new_flows'] for s in d['services'] if s['name'] == '$SERVICE' for r in s['reals'])" \
		<"$j") || return 1
}

# job_up JOB: within $SCRAPE_WAIT_S s, up{job="JOB"} is 1.
UP_SEEN=
job_up() {
	local t0
	t0=$(xlbt_now_ms)
	UP_SEEN=none
	while (($(xlbt_now_ms) - t0 < SCRAPE_WAIT_S * 1000)); do
		UP_SEEN=$(prom_query "up{job=\"$1\"}" |
			jq -r '[.data.result[].value[1]] | if length == 0 then "none" else join(",") end' 2>/dev/null) ||
			UP_SEEN=error
		[[ $UP_SEEN == 1 ]] && return 0
		sleep 0.2
	done
	return 1
}

# prom_sample METRIC_SELECTOR SINCE: "VALUE" of the newest raw samples taken
# after SINCE, from a range query (raw samples carry their scrape time).
prom_sample() {
	local sel=$1 since=$2 t0 out
	t0=$(xlbt_now_ms)
	while (($(xlbt_now_ms) - t0 < SCRAPE_WAIT_S * 1000)); do
		out=$(prom_query "${sel}[20s]" | jq -r --argjson since "$since" '
			[.data.result[] | .values | last] as $l
			| if ($l | length) == 0 or ($l | map(.[0]) | min) <= $since then empty
			  else ($l | map(.[1] | tonumber) | add) end' 2>/dev/null)
		if [[ -n $out ]]; then
			printf '%s\n' "$out"
			return 0
		fi
		sleep 0.2
	done
	return 1
}

same() { [[ $1 == "$2" ]]; }

not_running() { ! kill -0 "$1" 2>/dev/null; }

gone() {
	local left
	left=$(compgen -G "/run/netns/$XLBT_PREFIX-*")
	[[ -z $left ]] || {
		xlbt_log "namespaces left: $left"
		return 1
	}
	{ [[ -z $AGENT_PID ]] || not_running "$AGENT_PID"; } &&
		{ [[ -z $PROM_PID ]] || not_running "$PROM_PID"; }
}

# ---------------------------------------------------------------------------

run() {
	local e job stop_s nf rs_sum up_rc
	CFG=$TEST_TMP/xlb.yaml
	TOKEN_FILE=$TEST_TMP/api.token
	write_agent_config
	write_prom_config "$TEST_TMP/prometheus.yml"
	step "promtool check config accepts the Prometheus config (jobs: ${SCRAPE_JOBS[*]})" \
		promtool check config "$TEST_TMP/prometheus.yml" || return
	step "topology up (client, lb, $NREALS reals)" topo_up "$NREALS" || return
	step "decap and xlbt-namesrv on rs1..rs$NREALS" attach_and_serve || return
	step "xlb-agent runs on lb and its API answers" start_agent || return
	step "rs1..rs$NREALS are up on their checks" all_up || return
	step "xlb-proxy runs on lb" start_proxy || return
	step "prometheus runs in lb and is ready" start_prometheus || return

	step "$CONNS connections through $XLBT_VIP4:$PORT succeed" \
		in_ns client timeout --foreground 30 "$XLBT_CLIENT" --connect "$XLBT_VIP4:$PORT" \
		--count "$CONNS" --parallel 4 --timeout-ms 3000 --deadline-ms 20000 || return
	step "$L7_REQUESTS requests through xlb-proxy ($XLBT_LB4:8000) answered 200" l7_requests || return
	# Traffic has stopped: the counters no longer move. Samples scraped
	# from now on must show exactly what the data plane holds.
	stop_s=$(date +%s.%N)
	sleep 0.2
	if ! step "xlbctl status --json reads the pinned counters" dp_counters; then
		return
	fi
	check "the data plane counted exactly $CONNS new flows ($DP_NEW_FLOWS; reals: $DP_REAL_SUM)" \
		same "$DP_NEW_FLOWS $DP_REAL_SUM" "$CONNS $CONNS"

	for e in "${SCRAPE_JOBS[@]}"; do
		job=${e%%=*}
		up_rc=0
		job_up "$job" || up_rc=1
		check "Prometheus scraped job $job (${e#*=}): up{job=\"$job\"} == 1 (seen: $UP_SEEN)" \
			same "$up_rc" 0 || xlbt_log_file "$XLBT_TMPDIR/prometheus.log"
	done
	nf=$(prom_sample "xlb_service_new_flows_total{job=\"xlb-agent\",vs=\"$SERVICE\"}" "$stop_s") || nf=none
	check "Prometheus' xlb_service_new_flows_total{vs=\"$SERVICE\"} scraped after the traffic equals the data plane's ($nf, $DP_NEW_FLOWS)" \
		same "$nf" "$DP_NEW_FLOWS"
	rs_sum=$(prom_sample "xlb_real_new_flows_total{job=\"xlb-agent\",vs=\"$SERVICE\"}" "$stop_s") || rs_sum=none
	check "... and xlb_real_new_flows_total summed over the reals too ($rs_sum, $DP_REAL_SUM)" \
		same "$rs_sum" "$DP_REAL_SUM"
	local pr
	pr=$(prom_sample "xlb_proxy_requests_total{job=\"xlb-proxy\",vs=\"$L7\"}" "$stop_s") || pr=none
	check "Prometheus' xlb_proxy_requests_total{vs=\"$L7\"} equals the requests the proxy served ($pr, $L7_REQUESTS)" \
		same "$pr" "$L7_REQUESTS"
	dp_counters || DP_NEW_FLOWS=x
	check "the data plane still holds $nf new flows after the scrapes ($DP_NEW_FLOWS)" \
		same "$DP_NEW_FLOWS" "$nf"
}

main() {
	local c
	XLBT_EXIT_HOOK=summary
	xlbt_install_traps
	if ((${#MISSING_ENV[@]} > 0)); then
		PREREQ_FAILED=1
		not_ok "prerequisites: environment variable(s) ${MISSING_ENV[*]} not set (scripts/check.sh sets them)"
		exit 2
	fi
	if ! xlbt_preflight; then
		PREREQ_FAILED=1
		not_ok "prerequisites: $XLBT_PREFLIGHT_ERROR"
		exit 2
	fi
	for c in "$XLB_AGENT" "$XLB_PROXY" "$XLBT_BACKEND"; do
		if [[ $c != /* || ! -x $c ]]; then
			PREREQ_FAILED=1
			not_ok "prerequisites: binary $c is missing or not executable (XLB_AGENT, XLB_PROXY, XLBT_BACKEND)"
			exit 2
		fi
	done
	for c in prometheus promtool curl jq date; do
		if ! command -v "$c" >/dev/null 2>&1; then
			PREREQ_FAILED=1
			not_ok "prerequisites: required command '$c' not found (packages prometheus, curl, jq, coreutils)"
			exit 2
		fi
	done
	TEST_TMP=$(mktemp -d "/tmp/$XLBT_PREFIX-test.XXXXXX") || {
		PREREQ_FAILED=1
		not_ok "prerequisites: cannot create a temporary directory"
		exit 2
	}
	xlbt_log "namespaces: $XLBT_PREFIX-*, bpffs: $XLBT_BPFFS_BASE, agent: $XLB_AGENT"
	run
	topo_down
	check "cleanup: prometheus and the agent stopped, no namespace left" gone
	exit 0
}

main "$@"
