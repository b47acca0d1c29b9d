#!/usr/bin/env bash
# The agent's status page (docs/status-page.md) in a real browser: headless
# Chromium driven through chromedriver's WebDriver HTTP API (curl + jq),
# against xlb-agent managing one layer-4 service in network namespaces.
#
#   tests/integration/test_status.sh
#
# Setup (lib.sh): reals rs1..rs$NREALS run xlbt-namesrv on their own
# address, port 80, where the agent's TCP health check connects; the LB runs
# xlb-agent with one service $SERVICE on $XLBT_VIP4:80/tcp (ipip, wrr). The
# browser, chromedriver and curl all run inside the LB's namespace, where
# the API listens on $API_ADDR.
#
# Checked:
#   - without a token, GET /status and /status.js answer 200 with their
#     content types, a Content-Security-Policy of 'self' and Cache-Control:
#     no-store; POST /status is 405; the API itself still answers 401;
#   - the page asks for the token; a wrong one gives a message naming 401;
#   - with the right one, the page shows the service (address, ports,
#     protocol, layer, forwarding, scheduler), every real with its address,
#     state "up", check type and result, and the node summary "N/N reals up";
#   - "last updated" moves on by itself (the 2 s refresh);
#   - clicking Drain on rs1: the data plane has the DRAIN flag on rs1 only
#     (xlbctl status --json, read from the pinned maps), the page shows rs1
#     as "drain" and reports the action as done;
#   - a change made elsewhere (rs2 halted through the API) appears on the
#     page without any action in it;
#   - a screenshot is a valid PNG of the window's size with real content,
#     saved as ${XLBT_ARTIFACTS:-$BUILD/artifacts}/status.png;
#   - the browser's console has no error (CSP violations would be errors);
#   - the agent exits with status 0 on SIGTERM (with ASan: no leak), and
#     then the page shows its error banner;
#   - "forget token" removes the token from sessionStorage and asks again.
#   - afterwards no browser, chromedriver or namespace of this run is left.
#
# Output: "ok - ..." / "not ok - ..." per check, "# ..." diagnostics, and last
# exactly one line "N passed, M failed". Exit status: 0 all passed; 1 a check
# failed; 2 the test cannot run here (not root, BPF, a binary, Chromium,
# chromedriver, curl or jq unavailable or not starting), reported as a
# failure, not skipped.
#
# Environment: XLB_AGENT, XLBCTL, XLBT_NAMESRV, XLBT_CLIENT (binaries, default
# under build/), BUILD (default: the directory of XLB_AGENT), XLBT_ARTIFACTS,
# XLBT_CHROMIUM and XLBT_CHROMEDRIVER (default /usr/lib/chromium/chromium or
# chromium, and chromedriver), XLBT_XDP_MODE, XLBT_KEEP_LOGS=1.
# shellcheck disable=SC2317,SC2016  # functions run through step/check and the traps; jq programs and eval'd conditions are single-quoted on purpose
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Names of this test's namespaces and pins: xlbtst<PID>-<role>.
: "${XLBT_PREFIX:=xlbtst$$}"
# shellcheck source=tests/integration/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"

XLB_AGENT=$(xlbt_abs_bin "${XLB_AGENT:-$XLBT_ROOT/build/xlb-agent}")
BUILD=${BUILD:-$(dirname "$XLB_AGENT")}
ARTIFACTS=${XLBT_ARTIFACTS:-$BUILD/artifacts}
if [[ -z ${XLBT_CHROMIUM:-} ]]; then
	if [[ -x /usr/lib/chromium/chromium ]]; then
		XLBT_CHROMIUM=/usr/lib/chromium/chromium
	else
		XLBT_CHROMIUM=$(command -v chromium || echo chromium)
	fi
fi
XLBT_CHROMEDRIVER=$(xlbt_abs_bin "${XLBT_CHROMEDRIVER:-chromedriver}")

SERVICE=web
PORT=80
NREALS=3
CHECK_INTERVAL_MS=200
API_ADDR=127.0.0.1:9121
METRICS_ADDR=127.0.0.1:9120
BASE=http://$API_ADDR
WD_PORT=9515           # chromedriver, inside the LB's namespace
WIN_W=1280
WIN_H=900
AGENT_START_S=15
PAGE_WAIT_S=10         # at most this long for the page to show something

CFG=
TOKEN_FILE=
TOKEN=
AGENT_PID=
AGENT_LOG=
WD_PID=
WD_LOG=
SID=
PROFILE=
PROFILE_USED=
WD_PID_USED=

same() { [[ $1 == "$2" ]]; }

# ---------------------------------------------------------------------------
# Agent

write_config() {
	local i
	{
		xlbt_node_yaml "$METRICS_ADDR" "$API_ADDR" "$TOKEN_FILE"
		printf 'services:\n'
		printf '  - name: %s\n' "$SERVICE"
		printf '    address: %s\n' "$XLBT_VIP4"
		printf '    ports: [%d]\n' "$PORT"
		printf '    protocol: tcp\n'
		printf '    forwarding: ipip\n'
		printf '    scheduler: wrr\n'
		printf '    health_check: {type: tcp, port: %d, interval: %dms, timeout: 150ms, rise: 2, fall: 2}\n' \
			"$PORT" "$CHECK_INTERVAL_MS"
		printf '    reals:\n'
		for ((i = 1; i <= NREALS; i++)); do
			printf '      - {name: rs%d, address: %s, weight: 100}\n' "$i" "$(rs_addr4 "$i")"
		done
	} >"$1"
}

start_namesrv_all() {
	local i
	for ((i = 1; i <= NREALS; i++)); do
		rs_start_namesrv "$i" --listen "$(rs_addr4 "$i"):$PORT" || return 1
	done
}

# api_curl METHOD PATH OUT [CURL-ARGS...]: the agent's HTTP listener from
# inside the LB; the body to OUT, the status printed (000: no answer).
api_curl() {
	local m=$1 p=$2 out=$3
	shift 3
	in_ns lb curl -s --noproxy '*' -o "$out" -w '%{http_code}' --max-time 5 -X "$m" "$@" "$BASE$p"
}

start_agent() {
	local try code
	mkdir -p "$XLBT_BPFFS_BASE/libxdp-lb" || return 1
	in_ns_bg lb agent env LIBXDP_BPFFS="$XLBT_BPFFS_BASE/libxdp-lb" "$XLB_AGENT" --config "$CFG"
	AGENT_PID=$XLBT_LAST_PID
	AGENT_LOG=$XLBT_TMPDIR/agent.log
	for ((try = 0; try < AGENT_START_S * 10; try++)); do
		if ! kill -0 "$AGENT_PID" 2>/dev/null; then
			echo "xlb-agent exited; its output:"
			tail -n 30 -- "$AGENT_LOG"
			return 1
		fi
		if [[ -s $TOKEN_FILE ]]; then
			code=$(api_curl GET /api/v1/services "$TEST_TMP/wait.json" \
				-H "Authorization: Bearer $(tr -d '\n' <"$TOKEN_FILE")")
			[[ $code == 200 ]] && return 0
		fi
		sleep 0.1
	done
	echo "the API of xlb-agent at $API_ADDR does not answer after $AGENT_START_S s; its output:"
	tail -n 30 -- "$AGENT_LOG"
	return 1
}

# all_up: GET /api/v1/services shows every real up on its check.
all_up() {
	[[ $(api_curl GET /api/v1/services "$TEST_TMP/up.json" -H "Authorization: Bearer $TOKEN") == 200 ]] &&
		jq -e --argjson n "$NREALS" '[.services[0].reals[] | select(.state == "up" and .check.up)] | length == $n' \
			"$TEST_TMP/up.json" >/dev/null
}

wait_all_up() {
	local t0
	t0=$(xlbt_now_ms)
	until all_up; do
		(($(xlbt_now_ms) - t0 < 5000)) || return 1
		sleep 0.1
	done
}

# dp_flags REAL: the real's state flags in the data plane, comma-separated,
# from the pinned maps (xlbctl status --json, no agent involved).
dp_flags() {
	xlbctl_in lb status --json >"$XLBT_TMPDIR/status.json" 2>"$XLBT_TMPDIR/status.err" || return 1
	jq -r --arg s "$SERVICE" --arg r "$1" \
			'[.services[] | select(.name == $s) | .reals[] | select(.name == $r)] |
			 if length == 1 then (.[0].flags | join(",")) else error("no such real") end' \
		"$XLBT_TMPDIR/status.json"
}

# ---------------------------------------------------------------------------
# Browser

# wd METHOD PATH [JSON]: one WebDriver command; prints the answer and fails
# if there is none or it is a WebDriver error.
wd() {
	local m=$1 p=$2 d=${3:-} out
	[[ $m == POST && -z $d ]] && d='{}'
	local args=(-s --noproxy '*' --max-time "${WD_MAX_TIME:-30}" -X "$m")
	[[ -n $d ]] && args+=(-H 'Content-Type: application/json' --data-binary "$d")
	out=$(in_ns lb curl "${args[@]}" "http://127.0.0.1:$WD_PORT$p") || {
		xlbt_log "webdriver $m $p: no answer"
		return 1
	}
	printf '%s\n' "$out"
	if ! jq -e '(.value | type) != "object" or .value.error == null' >/dev/null 2>&1 <<<"$out"; then
		xlbt_log "webdriver $m $p: $(jq -r '.value.error + ": " + (.value.message | split("\n")[0])' <<<"$out" 2>/dev/null || printf '%s' "$out")"
		return 1
	fi
}

# js SCRIPT: run SCRIPT (a function body) in the page, print its value.
js() {
	wd POST "/session/$SID/execute/sync" "$(jq -cn --arg s "$1" '{script: $s, args: []}')" |
		jq -r '.value'
}

# find CSS: the WebDriver element id of the first match.
find_el() {
	wd POST "/session/$SID/element" "$(jq -cn --arg v "$1" '{using: "css selector", value: $v}')" |
		jq -r '.value | to_entries[0].value'
}

click() {
	local e
	e=$(find_el "$1") && [[ -n $e && $e != null ]] && wd POST "/session/$SID/element/$e/click" >/dev/null
}

type_into() {
	local e
	e=$(find_el "$1") && [[ -n $e && $e != null ]] &&
		wd POST "/session/$SID/element/$e/clear" >/dev/null &&
		wd POST "/session/$SID/element/$e/value" "$(jq -cn --arg t "$2" '{text: $t}')" >/dev/null
}

# The page as JSON: what the checks look at.
PAGE_STATE_JS='
const q = (s) => document.querySelector(s);
const vis = (e) => !!e && !e.hidden;
const sum = q("#node-summary");
return JSON.stringify({
  token_form: vis(q("#token-form")),
  token_error: vis(q("#token-error")) ? q("#token-error").textContent : "",
  error_banner: vis(q("#error-banner")) ? q("#error-banner").textContent : "",
  action: vis(q("#action-result")) ? {status: q("#action-result").dataset.status,
    real: q("#action-result").dataset.real, action: q("#action-result").dataset.action,
    text: q("#action-result").textContent} : null,
  updated: q("#last-updated").dataset.time || "",
  summary: sum.textContent,
  forget: vis(q("#forget-token")),
  stored: sessionStorage.getItem("xlb.api.token") !== null,
  services: [...document.querySelectorAll("section[data-service]")].map((s) => ({
    name: s.dataset.service,
    head: Object.fromEntries([...s.querySelectorAll(".head [data-field]")].map((k) =>
      [k.dataset.field, k.querySelector("b").textContent])),
    reals: [...s.querySelectorAll("tr[data-real]")].map((r) => Object.assign(
      {real: r.dataset.real, state: r.dataset.state,
       badge: r.querySelector(".badge").textContent, badge_class: r.querySelector(".badge").className,
       drain_button: !!r.querySelector("button[data-action=drain]")},
      Object.fromEntries([...r.querySelectorAll("td[data-field]")].map((c) =>
        [c.dataset.field, c.textContent]))))
  }))
});'

PAGE=
# page: the page state into $PAGE.
page() {
	PAGE=$(js "$PAGE_STATE_JS") && [[ -n $PAGE && $PAGE != null ]]
}

# wait_page JQ [SECONDS]: poll the page until the jq expression is true.
wait_page() {
	local expr=$1 max=${2:-$PAGE_WAIT_S} t0
	t0=$(xlbt_now_ms)
	while :; do
		page && jq -e "$expr" >/dev/null 2>&1 <<<"$PAGE" && return 0
		(($(xlbt_now_ms) - t0 < max * 1000)) || break
		sleep 0.2
	done
	xlbt_log "page state: ${PAGE:-(none)}"
	return 1
}

start_browser() {
	local try caps out
	WD_LOG=$XLBT_TMPDIR/chromedriver.log
	PROFILE=$(mktemp -d "$XLBT_TMPDIR/chromium-profile.XXXXXX") || return 1
	in_ns_bg lb chromedriver-out "$XLBT_CHROMEDRIVER" --port="$WD_PORT" --log-path="$WD_LOG"
	WD_PID=$XLBT_LAST_PID
	WD_PID_USED=$WD_PID
	PROFILE_USED=$PROFILE
	for ((try = 0; try < 100; try++)); do
		kill -0 "$WD_PID" 2>/dev/null || {
			echo "chromedriver exited:"
			tail -n 20 -- "$XLBT_TMPDIR/chromedriver-out.log"
			return 1
		}
		WD_MAX_TIME=2 wd GET /status 2>/dev/null | jq -e '.value.ready' >/dev/null 2>&1 && break
		sleep 0.1
	done
	((try < 100)) || {
		echo "chromedriver does not answer on port $WD_PORT"
		return 1
	}
	caps=$(jq -cn --arg bin "$XLBT_CHROMIUM" --arg prof "$PROFILE" --arg size "$WIN_W,$WIN_H" '{
		capabilities: {alwaysMatch: {
			browserName: "chrome",
			"goog:chromeOptions": {binary: $bin, args: [
				"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
				"--no-first-run", "--no-default-browser-check", "--no-proxy-server",
				"--disable-extensions", "--disable-background-networking",
				"--disable-component-update", "--disable-sync",
				("--user-data-dir=" + $prof), ("--window-size=" + $size)]},
			"goog:loggingPrefs": {browser: "ALL"},
			timeouts: {script: 10000, pageLoad: 15000, implicit: 0}}}}')
	out=$(WD_MAX_TIME=60 wd POST /session "$caps") || {
		echo "chromium does not start under chromedriver ($XLBT_CHROMIUM):"
		printf '%s\n' "$out" | jq -r '.value.message // .' 2>/dev/null | head -n 20
		tail -n 20 -- "$WD_LOG"
		return 1
	}
	SID=$(jq -r '.value.sessionId' <<<"$out")
	[[ -n $SID && $SID != null ]]
}

# Close the browser, stop chromedriver and whatever of Chromium is left
# (found by this run's profile directory), remove the profile. Idempotent;
# runs on every exit, before topo_down.
stop_browser() {
	local pids=()
	if [[ -n $SID ]]; then
		WD_MAX_TIME=10 wd DELETE "/session/$SID" >/dev/null 2>&1
		SID=
	fi
	if [[ -n $WD_PID ]]; then
		xlbt_stop_pid "$WD_PID"
		WD_PID=
	fi
	if [[ -n $PROFILE ]]; then
		mapfile -t pids < <(profile_pids "$PROFILE")
		((${#pids[@]} == 0)) || xlbt_stop_pids "${pids[@]}"
		rm -rf -- "$PROFILE"
		PROFILE=
	fi
	return 0
}

on_exit() {
	local rc=$?
	stop_browser
	(exit "$rc")
	xlbt_on_exit
}

# profile_pids DIR: processes started with --user-data-dir=DIR. (The "[=]"
# keeps grep's own command line from matching.)
profile_pids() {
	[[ -n $1 ]] || return 0
	grep -lsE -- "--user-data-dir[=]$1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
}

# browser_gone: nothing of this run's browser or chromedriver runs, and no
# namespace of this run is left.
browser_gone() {
	local left
	left=$(profile_pids "$PROFILE_USED" | tr '\n' ' ')
	[[ -z $left ]] || {
		xlbt_log "Chromium processes left: $left"
		return 1
	}
	[[ -z $WD_PID_USED ]] || ! kill -0 "$WD_PID_USED" 2>/dev/null || {
		xlbt_log "chromedriver $WD_PID_USED still runs"
		return 1
	}
	[[ ! -e $PROFILE_USED ]] && [[ -z $(compgen -G "/run/netns/$XLBT_PREFIX-*") ]]
}

# ---------------------------------------------------------------------------
# Checks

headers_ok() {
	local p=$1 type=$2 h=$TEST_TMP/headers.txt code
	code=$(api_curl GET "$p" "$TEST_TMP/asset" -D "$h") || return 1
	[[ $code == 200 && -s $TEST_TMP/asset ]] || {
		xlbt_log "GET $p: $code"
		return 1
	}
	if ! grep -qi "^content-type: $type" "$h" ||
		! grep -qi "^content-security-policy: default-src 'self'" "$h" ||
		! grep -qi '^cache-control: no-store' "$h"; then
		xlbt_log_file "$h"
		return 1
	fi
}

# png_ok FILE W H: a PNG with good chunk CRCs and W x H pixels, whose top
# part (header and the service's table; decoded in Python, so not all of
# it) has many distinct colours, as rendered text has.
png_ok() {
	python3 - "$@" <<'EOF'
import struct, sys, zlib
path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG signature'
pos, idat, ihdr, end = 8, b'', None, False
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    crc, = struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(kind + body) == crc, 'bad CRC in chunk %r' % kind
    if kind == b'IHDR':
        ihdr = struct.unpack('>IIBBBBB', body)
    elif kind == b'IDAT':
        idat += body
    elif kind == b'IEND':
        end = True
        break
    pos += 12 + n
assert ihdr and end, 'no IHDR or IEND'
w, h, depth, ctype = ihdr[:4]
assert (w, h) == (want_w, want_h), 'size %dx%d, not %dx%d' % (w, h, want_w, want_h)
assert depth == 8 and ctype in (2, 6), 'unexpected format depth %d type %d' % (depth, ctype)
raw = zlib.decompress(idat)
bpp = 3 if ctype == 2 else 4
stride = w * bpp + 1
assert len(raw) == stride * h, 'pixel data of the wrong size'
assert len(data) > 10000, 'only %d bytes: an empty page?' % len(data)
# Undo the row filters to count distinct colours.
prev, colours = bytearray(w * bpp), set()
for y in range(min(h, 400)):
    f, line = raw[y * stride], bytearray(raw[y * stride + 1:(y + 1) * stride])
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 4 == 0:
        for x in range(0, w, 2):
            colours.add(bytes(line[x * bpp:x * bpp + 3]))
    prev = line
assert len(colours) >= 16, 'only %d distinct colours: an empty page?' % len(colours)
print('%dx%d, %d bytes, %d colours sampled' % (w, h, len(data), len(colours)))
EOF
}

# console_errors: SEVERE entries of the browser's console log (prints them),
# except the 401 of the API that the wrong token got.
console_errors() {
	local out
	out=$(wd POST "/session/$SID/se/log" '{"type": "browser"}') || return 2
	jq -r '.value[] | select(.level == "SEVERE") | .message |
		select(test("/api/v1/services - .*status of 401") | not)' <<<"$out"
}

no_console_errors() {
	local errs rc=0
	errs=$(console_errors) || rc=$?
	((rc == 0)) || return 1
	[[ -z $errs ]] || {
		xlbt_log "console: $errs"
		return 1
	}
}

run() {
	local code t0 t1 out png=$ARTIFACTS/status.png info

	# Static answers, without a token.
	check "GET /status without a token: 200 text/html, CSP 'self', no-store" \
		headers_ok /status 'text/html' || return
	check "GET /status.js and /status.css without a token: 200 with their types, CSP, no-store" \
		eval 'headers_ok /status.js text/javascript && headers_ok /status.css text/css'
	check "GET / is the page too" eval 'headers_ok / text/html && grep -q "id=\"token-form\"" "$TEST_TMP/asset"'
	code=$(api_curl POST /status "$TEST_TMP/post.out")
	check "POST /status: 405 ($code)" same "$code" 405
	code=$(api_curl GET /api/v1/services "$TEST_TMP/noauth.out")
	check "the API still needs the token: GET /api/v1/services without it is 401 ($code)" same "$code" 401

	if ! step "headless Chromium ($XLBT_CHROMIUM) starts under chromedriver in the LB's namespace" \
		start_browser; then
		PREREQ_FAILED=1
		return
	fi
	step "the browser opens $BASE/status" \
		wd POST "/session/$SID/url" "$(jq -cn --arg u "$BASE/status" '{url: $u}')" || return
	check "the page asks for the token" wait_page '.token_form and (.services | length) == 0' || return

	# A wrong token first.
	type_into '#token-input' "not-$TOKEN" && click '#token-submit'
	check "a wrong token: the page says the agent answered 401 and asks again" \
		wait_page '.token_form and (.token_error | test("401")) and (.stored | not)'

	type_into '#token-input' "$TOKEN" && click '#token-submit'
	check "with the token: service $SERVICE and its $NREALS reals are shown, all up" \
		wait_page "(.token_form | not) and .forget and .stored and .error_banner == \"\" and
			(.services | length) == 1 and .services[0].name == \"$SERVICE\" and
			(.services[0].reals | length) == $NREALS and
			all(.services[0].reals[]; .state == \"up\" and .badge == \"up\" and .drain_button)" ||
		return
	check "the service's header: address, ports, protocol, layer, forwarding, scheduler" \
		jq -e --arg a "$XLBT_VIP4" '.services[0].head | .address == $a and .ports == "80" and
			.protocol == "tcp" and .layer == "L4" and .forwarding == "ipip" and
			(.scheduler | startswith("wrr")) and ."reals up" == "3/3"' <<<"$PAGE" >/dev/null
	check "the reals' rows: address:port, badge class, weight, check type tcp, check up, result pass" \
		jq -e --arg a "$(rs_addr4 1)" '.services[0].reals | (.[0].address == ($a + ":80")) and
			all(.[]; .badge_class == "badge state-up" and .weight == "100 / 100" and
			    ."check-type" == "tcp" and .check == "up" and (.latency | test("ms$")) and
			    (.detail | startswith("pass")) and (.active | test("^[0-9]+$")))' <<<"$PAGE" >/dev/null
	check "the node summary: 1 service, $NREALS/$NREALS reals up" \
		jq -e --arg n "$NREALS" '.summary | test("1 service, " + $n + "/" + $n + " reals up")' \
		<<<"$PAGE" >/dev/null
	t1=$(jq -r '.updated' <<<"$PAGE")
	check "\"last updated\" moves on by itself within 5 s (was $t1)" \
		wait_page "(.updated != \"$t1\") and .updated != \"\"" 5

	# Drain rs1 from the page.
	check "clicking Drain on rs1" click "button[data-service=\"$SERVICE\"][data-real=\"rs1\"][data-action=\"drain\"]"
	local f1=x f2=x f3=x
	t0=$(xlbt_now_ms)
	while :; do
		f1=$(dp_flags rs1) || f1=x
		[[ $f1 == *drain* ]] && break
		(($(xlbt_now_ms) - t0 < 5000)) || break
		sleep 0.1
	done
	f2=$(dp_flags rs2) || f2=x
	f3=$(dp_flags rs3) || f3=x
	check "the data plane has DRAIN on rs1 only (xlbctl status --json flags: rs1 [$f1], rs2 [$f2], rs3 [$f3])" \
		eval '[[ $f1 == drain && -z $f2 && -z $f3 ]]' || xlbt_log_file "$XLBT_TMPDIR/status.err"
	check "the page shows rs1 as drain and reports the drain as done" \
		wait_page '(.services[0].reals[] | select(.real == "rs1") | .state == "drain" and .badge == "drain" and
			.badge_class == "badge state-drain") and .action.status == "ok" and .action.real == "rs1" and
			.action.action == "drain" and (.action.text | test("drain done"))' 5

	# A change made elsewhere shows up by the refresh alone.
	code=$(api_curl POST "/api/v1/services/$SERVICE/reals/rs2/halt" "$TEST_TMP/halt.out" \
		-H "Authorization: Bearer $TOKEN")
	check "rs2 halted through the API ($code) appears on the page within 5 s" \
		eval '[[ $code == 200 ]] && wait_page "(.services[0].reals[] | select(.real == \"rs2\") | .state == \"halt\") and
			(.summary | test(\"1/$NREALS reals up\"))" 5'

	# The screenshot, with the drained and halted reals.
	mkdir -p -- "$ARTIFACTS"
	rm -f -- "$png"
	if out=$(wd GET "/session/$SID/screenshot"); then
		jq -r '.value' <<<"$out" | base64 -d >"$png" 2>/dev/null
	fi
	# The screenshot is of the viewport: the window less what the browser
	# keeps for itself.
	local vw vh
	vw=$(js 'return Math.round(window.innerWidth * window.devicePixelRatio);') || vw=x
	vh=$(js 'return Math.round(window.innerHeight * window.devicePixelRatio);') || vh=x
	if info=$(png_ok "$png" "$vw" "$vh" 2>&1); then
		ok "screenshot saved to $png: a valid PNG with content ($info)"
	else
		not_ok "screenshot $png is a valid PNG with content: ${info##*$'\n'}"
	fi
	check "the browser's console has no error but the wrong token's 401 (no CSP violation, no failed request)" \
		no_console_errors

	# The agent stops answering.
	local arc=0
	kill -TERM "$AGENT_PID"
	t0=$(xlbt_now_ms)
	while kill -0 "$AGENT_PID" 2>/dev/null && (($(xlbt_now_ms) - t0 < 10000)); do
		sleep 0.1
	done
	kill -0 "$AGENT_PID" 2>/dev/null && kill -KILL "$AGENT_PID"
	wait "$AGENT_PID" || arc=$?
	xlbt_forget_pid "$AGENT_PID"
	AGENT_PID=
	check "xlb-agent exits by itself on SIGTERM with status 0 ($arc)" same "$arc" 0
	check "after the agent stops, the page shows the error banner within 6 s" \
		wait_page '.error_banner | test("not answering")' 6

	click '#forget-token'
	check "\"forget token\" removes the token and asks for it again" \
		wait_page '.token_form and (.stored | not) and (.services | length) == 0 and (.forget | not)' 5
}

main() {
	XLBT_EXIT_HOOK=summary
	xlbt_install_traps
	trap on_exit EXIT
	if ! xlbt_preflight; then
		PREREQ_FAILED=1
		not_ok "prerequisites: $XLBT_PREFLIGHT_ERROR"
		exit 2
	fi
	local c
	for c in "$XLB_AGENT" "$XLBT_CHROMEDRIVER" "$XLBT_CHROMIUM"; do
		if [[ ! -x $c ]]; then
			PREREQ_FAILED=1
			not_ok "prerequisites: $c is missing or not executable (XLB_AGENT: run 'make'; Chromium: scripts/deps.sh installs chromium and chromium-driver)"
			exit 2
		fi
	done
	for c in curl jq base64; do
		if ! command -v "$c" >/dev/null 2>&1; then
			PREREQ_FAILED=1
			not_ok "prerequisites: required command '$c' not found (scripts/deps.sh)"
			exit 2
		fi
	done
	TEST_TMP=$(mktemp -d "/tmp/$XLBT_PREFIX-test.XXXXXX") || {
		not_ok "prerequisites: cannot create a temporary directory"
		exit 2
	}
	CFG=$TEST_TMP/xlb.yaml
	TOKEN_FILE=$TEST_TMP/api.token
	write_config "$CFG"
	xlbt_log "xlb-agent: $XLB_AGENT; browser: $XLBT_CHROMIUM, $XLBT_CHROMEDRIVER; namespaces: $XLBT_PREFIX-*"

	if step "topology up (client, lb, $NREALS reals)" topo_up "$NREALS" &&
		step "xlbt-namesrv answers on every real" start_namesrv_all &&
		step "xlb-agent runs on lb and its API answers" start_agent; then
		TOKEN=$(tr -d '\n' <"$TOKEN_FILE")
		if check "rs1..rs$NREALS are up on their TCP checks" wait_all_up; then
			run
		fi
		if ((FAILED > 0)); then
			xlbt_log "xlb-agent's output:"
			xlbt_log_file "$AGENT_LOG" 20
			[[ -n $WD_LOG ]] && xlbt_log "chromedriver's log: $WD_LOG (XLBT_KEEP_LOGS=1 keeps it)"
		fi
	fi
	stop_browser
	topo_down
	check "cleanup: no browser, chromedriver or namespace of this run left" browser_gone
	if ((PREREQ_FAILED)); then
		exit 2
	fi
	exit 0
}

main "$@"
