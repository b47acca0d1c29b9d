#!/usr/bin/env bash
# xlb-agent's cache commands: "xlbctl cache flush|purge" through the API,
# written into the pinned xlb_l7_cmds map that xlb-proxy polls
# (bpf/xlb_abi.h: struct xlb_l7_cmd_key / xlb_l7_cmd_val).
#
#   tests/integration/test_cache_cmds.sh
#
# One network namespace ($PREFIX) with only its loopback.  The agent runs
# with a config without layer-4 services and without node.interfaces: a
# layer-7 service "shop" with cache.enabled (and a sub-service "img"), and a
# layer-7 service "plain" without a cache; checks are of type none, so no
# server is needed.  Its bpffs directory is /sys/fs/bpf/$PREFIX; the map is
# read with bpftool -j and decoded here.
#
# Checked: a pinned xlb_l7_cmds of another layout is replaced with a log
# line; the map is an LRU hash of 512-byte keys, 16-byte values, 1024
# entries; "cache flush shop" writes the entry (shop, "") with gen 1 and the
# wall clock, again gen 2; "cache purge shop /a/b?x=1" writes an entry with
# that URL and gen 1; absolute http:// and https:// URLs are accepted, a
# 463-byte URL too; bad URLs (no leading slash, ftp://, a space, no path,
# 464 bytes) fail with exit 1, the rule in the message and no entry; a
# service without a cache fails naming the fix, a sub-service pool and an
# unknown service fail; usage errors exit 2; the API without or with a
# wrong token answers 401 and GET 405; --json answers parse with jq; each
# command is logged; an agent restart keeps the map (same id) and its
# entries, and the generations continue.
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

PREFIX=xlbt-cc$$
NS=$PREFIX
BPFFS=/sys/fs/bpf/$PREFIX
MAP=$BPFFS/xlb_l7_cmds
API_ADDR=127.0.0.1:9121
METRICS_ADDR=127.0.0.1:9120

PIDS=()
AGENT_PID=
XLBT_INTERRUPTED=

cleanup() {
	local rc=$? p
	trap '' INT TERM HUP
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	[[ $BPFFS == /sys/fs/bpf/xlbt-cc* && -d $BPFFS ]] && rm -rf -- "$BPFFS"
	xlbt_bpffs_release
	if [[ -n $TEST_TMP && ${XLBT_KEEP_LOGS:-0} == 1 ]]; then
		cp -r -- "$TEST_TMP" "$TEST_TMP.kept" && echo "# logs kept in $TEST_TMP.kept"
	fi
	summary "$rc"
	exit $?
}

in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }

LAST_PID=
bg() {
	local name=$1
	shift
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

# run NAME CMD...: CMD's stdout, stderr and exit status into $TEST_TMP/NAME.{out,err,rc}.
run() {
	local name=$1
	shift
	"$@" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err"
	echo $? >"$TEST_TMP/$name.rc"
}
rc_of() { cat "$TEST_TMP/$1.rc"; }
# q CMD...: CMD with its standard output dropped.
q() { "$@" >/dev/null; }
# fails_with NAME STATUS TEXT: the run exited with STATUS and its stderr has TEXT.
fails_with() {
	[[ $(rc_of "$1") == "$2" ]] && grep -qF -- "$3" "$TEST_TMP/$1.err" && return 0
	echo "# exit $(rc_of "$1"): $(head -c 300 "$TEST_TMP/$1.err")" >&2
	return 1
}

write_config() {
	{
		printf 'node:\n'
		printf '  bpffs: %s\n' "$BPFFS"
		printf '  metrics: {listen: "%s"}\n' "$METRICS_ADDR"
		printf '  api: {listen: "%s", token_file: %s}\n' "$API_ADDR" "$TEST_TMP/api.token"
		printf 'services:\n'
		printf '  - name: shop\n'
		printf '    address: 198.18.71.10\n'
		printf '    ports: [80]\n'
		printf '    layer: 7\n'
		printf '    health_check: {type: none}\n'
		printf '    cache: {enabled: true, max_size: 8MiB}\n'
		printf '    reals:\n'
		printf '      - {name: web1, address: 127.0.0.11, port: 8080}\n'
		printf '    sub_services:\n'
		printf '      - name: img\n'
		printf '        match: {path_prefix: /img}\n'
		printf '        reals:\n'
		printf '          - {name: img1, address: 127.0.0.21, port: 8081}\n'
		printf '  - name: plain\n'
		printf '    address: 198.18.71.11\n'
		printf '    ports: [80]\n'
		printf '    layer: 7\n'
		printf '    health_check: {type: none}\n'
		printf '    reals:\n'
		printf '      - {name: app1, address: 127.0.0.31, port: 8080}\n'
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

# dump: the map's entries as "VS GEN TIME_MS URL" lines (URL "-" for a
# flush) into $TEST_TMP/map.txt.
dump() {
	bpftool map dump pinned "$MAP" -j >"$TEST_TMP/map.json" 2>"$TEST_TMP/map.err" || return 1
	python3 - "$TEST_TMP/map.json" >"$TEST_TMP/map.txt" <<'EOF'
import json, struct, sys
for e in json.load(open(sys.argv[1])):
    k = bytes(int(x, 16) for x in e['key'])
    v = bytes(int(x, 16) for x in e['value'])
    assert len(k) == 512 and len(v) == 16, (len(k), len(v))
    vs = k[0:48].rstrip(b'\0').decode()
    url = k[48:512]
    assert url.rstrip(b'\0').find(b'\0') < 0, 'a URL not NUL-padded'
    url = url.rstrip(b'\0').decode() or '-'
    gen, time_ms = struct.unpack('=QQ', v)
    print(vs, gen, time_ms, url)
EOF
}

# field VS URL FIELD: gen or time of the entry (VS, URL) in the last dump;
# URL "-" for the flush entry.
field() {
	awk -v vs="$1" -v u="$2" -v f="$3" '$1 == vs && $4 == u {
		if (f == "gen") print $2; else if (f == "time") print $3 }' "$TEST_TMP/map.txt"
}
gen_of() { dump && field "$1" "$2" gen; }
nentries() { dump && wc -l <"$TEST_TMP/map.txt"; }

map_field() { bpftool map show pinned "$MAP" -j | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
map_id() { map_field id; }

# ---------------------------------------------------------------------------

TEST_TMP=$(mktemp -d "/tmp/$PREFIX.XXXXXX") || exit 2
trap cleanup EXIT
trap 'XLBT_INTERRUPTED=INT; exit 130' INT
trap 'XLBT_INTERRUPTED=TERM; exit 143' TERM
trap 'XLBT_INTERRUPTED=HUP; exit 129' HUP

prereq() {
	[[ $EUID -eq 0 ]] || { echo "must run as root"; return 1; }
	local c
	for c in ip nsenter bpftool python3 curl jq timeout; do
		command -v "$c" >/dev/null || { echo "$c not found"; return 1; }
	done
	[[ -x $XLB_AGENT && -x $XLBCTL ]] || { echo "no $XLB_AGENT or $XLBCTL"; return 1; }
	xlbt_bpffs_need || { echo "$XLBT_BPFFS_ERROR"; return 1; }
}
if ! step "prerequisites (root, bpftool, python3, curl, jq, binaries, bpffs)" prereq; then
	PREREQ_FAILED=1
	exit 2
fi

setup() {
	ip netns add "$NS" && ip -n "$NS" link set lo up && mkdir -p "$BPFFS" || return 1
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TEST_TMP/api.token"
	write_config
}
step "namespace $NS with only loopback, a config with layer-7 services only" setup || exit 1
step "a pinned xlb_l7_cmds of another layout (hash, 4-byte keys) is left in the bpffs directory" \
	bpftool map create "$MAP" type hash key 4 value 4 entries 16 name xlb_l7_cmds
stale_id=$(map_id)
[[ -n $stale_id ]] || stale_id=none
step "xlb-agent starts without XDP interfaces and its API answers" start_agent agent1 || exit 1
layout() {
	[[ $(map_field type) == lru_hash && $(map_field bytes_key) == 512 &&
		$(map_field bytes_value) == 16 && $(map_field max_entries) == 1024 &&
		$(map_field name) == xlb_l7_cmds && $(map_id) != "$stale_id" ]] &&
		grep -q "xlb_l7_cmds is not an LRU hash.*replacing it" "$AGENT_LOG"
}
check "$MAP is an LRU hash (512-byte keys, 16-byte values, 1024 entries), the stale map replaced with a log line" layout
check "xlb_l7_reals is pinned next to it" test -e "$BPFFS/xlb_l7_reals"
check "the map is empty at start" test "$(nentries)" = 0

# Flush
t0=$(now_ms)
run flush1 api cache flush shop
t1=$(now_ms)
check "xlbctl cache flush shop succeeds and prints the generation" \
	bash -c "[[ \$(cat '$TEST_TMP/flush1.rc') == 0 ]] && grep -q 'cache flush sent (gen 1)' '$TEST_TMP/flush1.out'"
check "the map has the entry (shop, empty URL) with gen 1" test "$(gen_of shop -)" = 1
tm=$(field shop - time)
check "its time_ms is the wall clock of the request ($t0 <= ${tm:-none} <= $t1)" \
	test "${tm:-0}" -ge "$t0" -a "${tm:-0}" -le "$t1"
check "a second flush succeeds" q api cache flush shop
check "the flush entry has gen 2, and is the only entry" \
	test "$(gen_of shop -) $(wc -l <"$TEST_TMP/map.txt")" = "2 1"
check "the agent logs the command at info level" \
	grep -q '<6>xlb-agent: info: cache flush of service shop (gen 2)' "$AGENT_LOG"

# Purge
check "xlbctl cache purge shop '/a/b?x=1' succeeds" q api cache purge shop '/a/b?x=1'
check "the map has an entry with URL /a/b?x=1 and gen 1; the flush entry keeps gen 2" \
	test "$(gen_of shop '/a/b?x=1') $(field shop - gen)" = "1 2"
check "the same purge again succeeds" q api cache purge shop '/a/b?x=1'
check "... the entry has gen 2" test "$(gen_of shop '/a/b?x=1')" = 2
check "xlbctl cache purge shop http://www.example.test/x succeeds" \
	q api cache purge shop http://www.example.test/x
check "... its entry has gen 1" test "$(gen_of shop http://www.example.test/x)" = 1
check "an https:// URL with a port is accepted" q api cache purge shop 'https://[2001:db8::1]:8443/y'
long463=/$(printf 'a%.0s' $(seq 462))
check "a URL of 463 bytes (the longest) is accepted" q api cache purge shop "$long463"
check "... and stored whole" test "$(gen_of shop "$long463")" = 1
check "the map holds 5 entries now" test "$(nentries)" = 5
check "the agent logs the purge with its URL" \
	grep -q 'cache purge of service shop, URL /a/b?x=1 (gen 1)' "$AGENT_LOG"

# Bad URLs
rule_start='the URL must start with "/"'
run bad1 api cache purge shop a/b
check "a URL without a leading slash: exit 1 with the rule" fails_with bad1 1 "$rule_start"
run bad2 api cache purge shop ftp://x/
check "ftp://x/: exit 1 with the rule" fails_with bad2 1 "$rule_start"
run bad3 api cache purge shop '/a b'
check "a URL with a space: exit 1 with the rule" fails_with bad3 1 'must not contain spaces, control characters'
run bad4 api cache purge shop http://www.example.test
check "http://HOST without a path: exit 1 with the rule" fails_with bad4 1 "$rule_start"
run bad5 api cache purge shop "${long463}b"
check "a URL of 464 bytes: exit 1 with the rule" fails_with bad5 1 'the URL must be 1 to 463 bytes long, not 464'
run bad6 api cache purge shop ''
check "an empty URL: exit 1 with the rule" fails_with bad6 1 'the URL must be 1 to 463 bytes long, not 0'
run bad7 api cache purge shop $'/a\tb'
check "a URL with a control character: exit 1 with the rule" fails_with bad7 1 'control characters'
check "no bad URL wrote an entry" test "$(nentries)" = 5

# Services
run nocache api cache flush plain
check "a service without a cache: exit 1 naming the fix" \
	fails_with nocache 1 'service plain has no cache: set cache.enabled: true in services[1]'
run nocache2 api cache purge plain /x
check "... also for purge" fails_with nocache2 1 'set cache.enabled: true in services[1]'
run sub api cache flush shop/img
check "a sub-service pool (shop/img): exit 1, the cache is per service" \
	fails_with sub 1 'shop/img is a sub-service pool: the cache is per service; use shop'
run unknown api cache flush nope
check "an unknown service: exit 1" fails_with unknown 1 'no layer-7 service named nope'
check "no failed command wrote an entry" test "$(nentries)" = 5

# Usage
run use1 api cache purge shop
check "cache purge without URL: usage, exit 2" fails_with use1 2 'cache purge SERVICE URL'
run use2 api cache frob shop
check "an unknown cache command: usage, exit 2" fails_with use2 2 'cache flush SERVICE'
run use3 api cache flush
check "cache flush without SERVICE: usage, exit 2" fails_with use3 2 'cache flush SERVICE'

# HTTP
http() { in_ns curl -s --noproxy '*' --max-time 5 -o "$TEST_TMP/http.out" -w '%{http_code}' "$@"; }
check "POST .../cache/flush without a token: 401" \
	test "$(http -X POST "http://$API_ADDR/api/v1/services/shop/cache/flush")" = 401
check "POST .../cache/flush with a wrong token: 401" \
	test "$(http -X POST -H 'Authorization: Bearer nope' "http://$API_ADDR/api/v1/services/shop/cache/flush")" = 401
check "the refused requests wrote nothing (flush gen still 2)" test "$(gen_of shop -)" = 2
auth="Authorization: Bearer $(cat "$TEST_TMP/api.token")"
check "GET .../cache/flush: 405" \
	test "$(http -H "$auth" "http://$API_ADDR/api/v1/services/shop/cache/flush")" = 405
check "POST .../cache/purge with a body without url: 400" \
	test "$(http -X POST -H "$auth" -d '{"path": "/x"}' "http://$API_ADDR/api/v1/services/shop/cache/purge")" = 400
check "POST .../cache/flush of a service without a cache: 409" \
	test "$(http -X POST -H "$auth" "http://$API_ADDR/api/v1/services/plain/cache/flush")" = 409
check "POST .../cache/flush of an unknown service: 404" \
	test "$(http -X POST -H "$auth" "http://$API_ADDR/api/v1/services/nope/cache/flush")" = 404
check "POST .../services/shop/img/cache/flush (literal slash): 404" \
	test "$(http -X POST -H "$auth" "http://$API_ADDR/api/v1/services/shop/img/cache/flush")" = 404

# JSON
api cache flush shop --json >"$TEST_TMP/j1.json" 2>/dev/null
check "--json flush: ok, service, command flush, url null, gen 3 (jq)" \
	test "$(jq -r '[.ok, .service, .command, .url, .gen] | map(tostring) | join(" ")' "$TEST_TMP/j1.json")" = "true shop flush null 3"
api cache purge shop /j --json >"$TEST_TMP/j2.json" 2>/dev/null
check "--json purge: command purge, url /j, gen 1 (jq)" \
	test "$(jq -r '[.command, .url, .gen] | map(tostring) | join(" ")' "$TEST_TMP/j2.json")" = "purge /j 1"
api cache flush plain --json >"$TEST_TMP/j3.json" 2>/dev/null
check "--json failure: an object with the agent's sentence in .error (jq)" \
	q jq -e '.error | test("set cache.enabled: true")' "$TEST_TMP/j3.json"

# Restart
dump
cp "$TEST_TMP/map.txt" "$TEST_TMP/map.before"
id1=$(map_id)
stop_pid "$AGENT_PID"
step "a new xlb-agent starts" start_agent agent2
check "the restarted agent reuses the map (map id $id1)" test "$(map_id)" = "$id1"
dump
check "every entry is kept as it was" cmp -s "$TEST_TMP/map.before" "$TEST_TMP/map.txt"
run flush4 api cache flush shop
check "a flush after the restart continues the generation: gen 4" \
	grep -q 'cache flush sent (gen 4)' "$TEST_TMP/flush4.out"
check "... and the map says gen 4" test "$(gen_of shop -)" = 4
stop_pid "$AGENT_PID"
check "no sanitizer report in the agents' logs" \
	bash -c "! grep -qiE 'sanitizer|leak' '$TEST_TMP/agent1.log' '$TEST_TMP/agent2.log'"
exit 0
