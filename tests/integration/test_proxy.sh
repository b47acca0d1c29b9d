#!/usr/bin/env bash
# xlb-proxy end to end: real HTTP backends (xlbt-backend), the proxy, curl,
# all on the loopback of a network namespace of our own (so ports cannot
# collide and clients may use any 127.0.0.0/8 source address).  Covers
# keep-alive and pooling, pipelining, streaming in both directions with a
# slow reader, every persistence type, tampered and down-real cookies,
# content switching, retries, timeouts, smuggling, forwarded headers and the
# metrics.  Without an agent on the node every real is taken as up.
set -uo pipefail

NS_TAG=px
# shellcheck source=tests/integration/px_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/px_lib.sh"
px_setup "$PROXY" "$BACKEND"
command -v promtool >/dev/null || { not_ok "promtool is not installed (Debian: prometheus)"; finish; }
declare -A PORT

# backend NAME: start an origin on a free port of 127.0.0.1.
backend() {
    local name=$1 i
    rm -f "$TMP/$name.ready"
    nsenter --net="/run/netns/$NS" -- "$BACKEND" --name "$name" --listen 127.0.0.1:0 \
        --ready-file "$TMP/$name.ready" 2>>"$TMP/backends.log" &
    PID[$name]=$!
    for ((i = 0; i < 100; i++)); do
        [ -s "$TMP/$name.ready" ] && break
        sleep 0.05
    done
    PORT[$name]=$(sed -n '1s/.*://p' "$TMP/$name.ready")
    [ -n "${PORT[$name]}" ]
}

# proxy NAME CONFIG: start xlb-proxy, wait until its metrics answer.
proxy() {
    local name=$1 cfg=$2 mport i
    mport=$(sed -n 's/.*metrics: {listen: "127.0.0.1:\([0-9]*\)"}.*/\1/p' "$cfg")
    nsenter --net="/run/netns/$NS" -- "$PROXY" --config "$cfg" 2>"$TMP/$name.log" &
    PID[$name]=$!
    for ((i = 0; i < 100; i++)); do
        in_ns curl -sf -o /dev/null "http://127.0.0.1:$mport/metrics" && return 0
        kill -0 "${PID[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    cat "$TMP/$name.log"
    return 1
}


for b in a1 a2 a3 img api host canary post; do
    backend "$b" || { not_ok "backend $b did not start"; finish; }
done
ok "eight backends started"
# closer: a real that reads a request and closes the connection unanswered.
command -v python3 >/dev/null || { not_ok "python3 is not installed"; finish; }
nsenter --net="/run/netns/$NS" -- python3 -c '
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.close()
' "$TMP/closer.port" 2>>"$TMP/backends.log" &
PID[closer]=$!
for ((i = 0; i < 100; i++)); do [ -s "$TMP/closer.port" ] && break; sleep 0.05; done
PORT[closer]=$(cat "$TMP/closer.port" 2>/dev/null)
[ -n "${PORT[closer]}" ] || { not_ok "the closing real did not start"; finish; }

# One service per persistence type on ports 8001..8010, content switching on
# 8020, retries on 8030 (a real that refuses connections, then one that
# closes them unanswered for /close), all with reals a1 a2 a3.
reals3="      - {name: a1, address: 127.0.0.1, port: ${PORT[a1]}}
      - {name: a2, address: 127.0.0.1, port: ${PORT[a2]}}
      - {name: a3, address: 127.0.0.1, port: ${PORT[a3]}}"
svc() {  # svc NAME PORT PERSISTENCE-YAML
    cat <<EOF
  - name: $1
    address: 127.0.0.1
    ports: [$2]
    layer: 7
    scheduler: rr
    persistence: $3
    reals:
$reals3
EOF
}
cat >"$TMP/px.yaml" <<EOF
node:
  bpffs: $TMP/no-agent
proxy:
  workers: 2
  metrics: {listen: "127.0.0.1:9122"}
  access_log: $TMP/access.log
  cookie_key_file: $TMP/cookie.key
  trusted_proxies: [127.0.0.9/32]
  upstream: {fail_after: 1000}   # no passive marks here: every retry below is real
services:
  - name: plain
    address: 127.0.0.1
    ports: [8000]
    layer: 7
    scheduler: rr
    forwarded_headers: true
    reals:
$reals3
$(svc p-active 8001 "{type: active-cookie, timeout: 10m}")
$(svc p-server 8002 "{type: server-cookie, cookie: SID, timeout: 10m}")
$(svc p-hashc 8003 "{type: hash-cookies}")
$(svc p-super 8004 "{type: super-http}")
$(svc p-url 8005 "{type: url-hash}")
$(svc p-host 8006 "{type: host}")
$(svc p-query 8007 "{type: query-item, item: user}")
$(svc p-header 8008 "{type: header, header: X-User}")
$(svc p-src 8009 "{type: source-ip, netmask: 24, timeout: 10m}")
$(svc p-fallback 8010 "{type: header, header: X-User, fallback: source-ip}")
  - name: switch
    address: 127.0.0.1
    ports: [8020, 8021]
    layer: 7
    sub_services:
      - name: images
        match: {path_prefix: /images/}
        reals: [{name: img, address: 127.0.0.1, port: ${PORT[img]}}]
      - name: api
        match: {path_regex: "^/api/v[0-9]+/"}
        reals: [{name: api, address: 127.0.0.1, port: ${PORT[api]}}]
      - name: static
        match: {host: static.example.test}
        reals: [{name: host, address: 127.0.0.1, port: ${PORT[host]}}]
      - name: canary
        match: {header: {name: X-Canary, value: "1"}}
        reals: [{name: canary, address: 127.0.0.1, port: ${PORT[canary]}}]
      - name: writes
        match: {method: POST}
        reals: [{name: post, address: 127.0.0.1, port: ${PORT[post]}}]
      - name: rest
        reals: [{name: a1, address: 127.0.0.1, port: ${PORT[a1]}}]
  - name: retry
    address: 127.0.0.1
    ports: [8030]
    layer: 7
    scheduler: fixed
    reals:
      - {name: refuses, address: 127.0.0.1, port: 1, weight: 200}
      - {name: a2, address: 127.0.0.1, port: ${PORT[a2]}, weight: 100}
  - name: retry-sent
    address: 127.0.0.1
    ports: [8031]
    layer: 7
    scheduler: fixed
    reals:
      - {name: closer, address: 127.0.0.1, port: ${PORT[closer]}, weight: 200}
      - {name: img, address: 127.0.0.1, port: ${PORT[img]}, weight: 100}   # never stopped
EOF
if ! proxy px "$TMP/px.yaml"; then not_ok "xlb-proxy did not start"; finish; fi
ok "xlb-proxy started with the test config"

# ---- keep-alive, pooling, pipelining ----
out=$(c -v http://127.0.0.1:8000/ http://127.0.0.1:8000/ http://127.0.0.1:8000/ \
      http://127.0.0.1:8000/ http://127.0.0.1:8000/ http://127.0.0.1:8000/ 2>&1)
check "six requests on one client connection" \
    test "$(grep -c 'Re-using existing connection' <<<"$out")" -ge 5
check "rr spreads them over the three reals" \
    test "$(grep -o '^< X-Backend: a[123]' <<<"$out" | sort -u | wc -l)" -eq 3
check "upstream connections are kept alive and reused (X-Req 2 on the second round)" \
    grep -q '^< X-Req: 2' <<<"$out"
pipe=$(in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/8000; printf "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3; timeout 5 cat <&3')
check "three pipelined requests answered in order" \
    test "$(grep -o 'GET /p[123]' <<<"$pipe" | tr -d '\n')" = "GET /p1GET /p2GET /p3"
# raw STEPS...: one client connection to port 8000; each step is "send TEXT"
# (\r\n escapes), "many N" (GET /r1 .. /rN), "sleep S" or "shut" (half-close); then everything the
# proxy sends until it closes is printed, then XLBT-STILL-OPEN if it did not
# close within 6 s.
raw() {
    in_ns python3 - "$@" <<'PY'
import socket, sys, threading, time
s = socket.create_connection(("127.0.0.1", 8000), timeout=5)
got = []
def reader():
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return
            got.append(b)
    except OSError:
        return
t = threading.Thread(target=reader)
t.start()
for step in sys.argv[1:]:
    op, _, arg = step.partition(" ")
    if op == "send":
        s.sendall(arg.encode().decode("unicode_escape").encode("latin-1"))
    elif op == "sleep":
        time.sleep(float(arg))
    elif op == "many":
        s.sendall(b"".join(b"GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
                           for i in range(1, int(arg) + 1)))
    elif op == "shut":
        s.shutdown(socket.SHUT_WR)
t.join(6)
sys.stdout.write(b"".join(got).decode("latin-1") + ("\nXLBT-STILL-OPEN\n" if t.is_alive() else ""))
PY
}
GETQ='HTTP/1.1\r\nHost: x\r\n\r\n'
out=$(raw "send GET /q1?delay_ms=300 $GETQ" "sleep 0.1" "send GET /q2 $GETQ" "sleep 0.05" \
      "send GET /q3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
check "requests pipelined while the first waits for its real are answered in order" \
    test "$(grep -o 'GET /q[123]' <<<"$out" | tr -d '\n')" = "GET /q1GET /q2GET /q3"
out=$(raw "many 3000" "send GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
check "3000 pipelined requests (twice the proxy's 64 KiB buffer) are all answered, in order" \
    test "$(grep -o 'GET /r[0-9]*' <<<"$out" | sed 's/GET \/r//' | tr '\n' ' ')" = "$(seq -s ' ' 1 3000) "
out=$(raw "send GET /headers HTTP/1.1\r\nHost: x\r\nX-A:a\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-B:  b c  \r\nProxy-Connection: x\r\nX-C: c\r\n\r\n")
check "fields reach the real byte for byte and in order, without the hop-by-hop ones" \
    python3 -c 'import sys; body = sys.argv[1].split("\r\n\r\n", 1)[1]
sys.exit(not body.split("\r\n", 1)[1].startswith(
    "Host: x\r\nX-A:a\r\nX-B:  b c  \r\nX-C: c\r\nX-Forwarded-For: "))' "$out"
out=$(raw "send GET /h1?delay_ms=200 $GETQ" "shut")
check "a request followed by a half-close is answered, then the connection closes" \
    bash -c 'grep -q "GET /h1" <<<"$1" && ! grep -q XLBT-STILL-OPEN <<<"$1"' _ "$out"
out=$(raw "send GET /e1 $GETQ" "send POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc" "shut")
check "a half-close inside a pipelined request's body: the first answered, then closed at once" \
    bash -c 'grep -q "GET /e1" <<<"$1" && [ "$(grep -c "^HTTP/1.1 " <<<"$1")" -eq 1 ] &&
             ! grep -q XLBT-STILL-OPEN <<<"$1"' _ "$out"
out=$(raw "send GET /d1?delay_ms=100 ${GETQ}GET /d2 HTTP/1.1\r\nHo" "shut")
check "a request, part of a pipelined one and the end: the first answered, the part dropped" \
    bash -c 'grep -q "GET /d1" <<<"$1" && ! grep -q "GET /d2" <<<"$1" && [ "$(grep -c "^HTTP/1.1 " <<<"$1")" -eq 1 ]' _ "$out"
out=$(c --http1.0 -D - http://127.0.0.1:8000/?size=100000\&chunked=1 -o "$TMP/h10")
check "HTTP/1.0 client: chunked response de-chunked, no Transfer-Encoding, closed" \
    bash -c '[ "$(stat -c %s "$1")" -eq 100000 ] && ! grep -qi "^transfer-encoding" <<<"$2" && grep -qi "^connection: close" <<<"$2"' _ "$TMP/h10" "$out"

# ---- streaming ----
direct=$(c "http://127.0.0.1:${PORT[a1]}/?size=50000000&chunked=1" | md5sum)
via=$(c "http://127.0.0.1:8000/?size=50000000&chunked=1" | md5sum)
check "50 MB chunked response relayed byte for byte" test "$direct" = "$via"
via=$(c "http://127.0.0.1:8000/?size=50000000" | md5sum)
check "50 MB Content-Length response relayed byte for byte" test "$direct" = "$via"
head -c 3000000 /dev/urandom >"$TMP/up.bin"
want=$(c --data-binary @"$TMP/up.bin" "http://127.0.0.1:${PORT[a1]}/echo")
got=$(c --data-binary @"$TMP/up.bin" http://127.0.0.1:8000/echo)
check "3 MB request body with Content-Length reaches the real intact" test "$want" = "$got"
got=$(c -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/up.bin" http://127.0.0.1:8000/echo)
check "3 MB chunked request body reaches the real intact" test "$want" = "$got"
rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/${PID[px]}/status"; }
before=$(rss_kb)
in_ns curl -s -m 4 --limit-rate 10M -o /dev/null "http://127.0.0.1:8000/?size=2000000000&chunked=1"
after=$(rss_kb)
check "slow reader of a 2 GB response: proxy RSS grew by less than 16 MiB ($before -> $after KiB)" \
    test $((after - before)) -lt 16384

# ---- persistence ----
# same_real PORT ARGS...: 50 requests with the same client identity -> one real.
same_real() {
    local port=$1 i
    shift
    for ((i = 0; i < 50; i++)); do who "$@" "http://127.0.0.1:$port/"; done | sort -u | wc -l
}
# spread PORT ID-ARG-FORMAT: 30 clients with different identities -> >= 2 reals.
spread_count() {
    local port=$1 i
    shift
    for ((i = 0; i < 30; i++)); do "$@" "$i" "$port"; done | sort -u | wc -l
}
jar_who() { who -b "$TMP/jar$1" -c "$TMP/jar$1" "http://127.0.0.1:$2/"; }
rm -f "$TMP"/jar*
who -c "$TMP/jarA" http://127.0.0.1:8001/ >/dev/null
check "active-cookie: 50 requests with the cookie stay on one real" \
    test "$(same_real 8001 -b "$TMP/jarA" -c "$TMP/jarA")" -eq 1
check "active-cookie: 30 new clients spread over the reals" test "$(spread_count 8001 jar_who)" -ge 2
cookie=$(awk '$6 == "XLBID" {print $7}' "$TMP/jarA")
check "active-cookie: the value reveals no address or port" \
    bash -c '! grep -qE "127\.0\.0\.1|'"${PORT[a1]}|${PORT[a2]}|${PORT[a3]}"'" <<<"$1" && [ ${#1} -ge 20 ]' _ "$cookie"
hdr=$(c -D - -o /dev/null -b "XLBID=$cookie" http://127.0.0.1:8001/)
check "active-cookie: a valid cookie is not re-issued" bash -c '! grep -qi "^set-cookie: XLBID" <<<"$1"' _ "$hdr"
bad=${cookie:0:5}$( [ "${cookie:5:1}" = A ] && echo B || echo A )${cookie:6}
hdr=$(c -D - -o /dev/null -b "XLBID=$bad" http://127.0.0.1:8001/)
check "active-cookie: a tampered cookie is ignored and replaced" grep -qi '^set-cookie: XLBID=' <<<"$hdr"
check "active-cookie: Set-Cookie carries HttpOnly, Secure and SameSite" \
    bash -c 'grep -i "^set-cookie: XLBID" <<<"$1" | grep -qi "httponly" && grep -i "^set-cookie: XLBID" <<<"$1" | grep -qi "secure" && grep -i "^set-cookie: XLBID" <<<"$1" | grep -qi "samesite"' _ "$hdr"

sid_who() { who -b "SID=s$1" "http://127.0.0.1:$2/"; }
for i in $(seq 0 29); do c -o /dev/null "http://127.0.0.1:8002/?setcookie=SID=s$i"; done
check "server-cookie: 50 requests with a learnt cookie stay on one real" \
    test "$(same_real 8002 -b SID=s7)" -eq 1
check "server-cookie: the learnt cookies of 30 clients name several reals" \
    test "$(spread_count 8002 sid_who)" -ge 2
check "server-cookie: the real that set the cookie gets its requests" \
    test "$(who -D - "http://127.0.0.1:8002/?setcookie=SID=zz" | head -1)" = "$(who -b SID=zz http://127.0.0.1:8002/)"

hc_who() { who -b "a=$1; b=x" "http://127.0.0.1:$2/"; }
check "hash-cookies: one real for one set of cookies" test "$(same_real 8003 -b 'a=1; b=2')" -eq 1
check "hash-cookies: spread over cookie values" test "$(spread_count 8003 hc_who)" -ge 2
sh_who() { who -A "agent-$1" "http://127.0.0.1:$2/"; }
check "super-http: one real for one User-Agent + Authorization" \
    test "$(same_real 8004 -A ua1 -H 'Authorization: Basic eDp5')" -eq 1
check "super-http: spread over user agents" test "$(spread_count 8004 sh_who)" -ge 2
url_who() { who "http://127.0.0.1:$2/page$1"; }
check "url-hash: one real for one URL" test "$(for i in $(seq 50); do who http://127.0.0.1:8005/x?y=1; done | sort -u | wc -l)" -eq 1
check "url-hash: spread over URLs" test "$(spread_count 8005 url_who)" -ge 2
host_who() { who -H "Host: h$1.example.test" "http://127.0.0.1:$2/"; }
check "host: one real for one Host" test "$(same_real 8006 -H 'Host: www.example.test')" -eq 1
check "host: spread over hosts" test "$(spread_count 8006 host_who)" -ge 2
q_who() { who "http://127.0.0.1:$2/?user=u$1"; }
check "query-item: one real for one value" test "$(for i in $(seq 50); do who "http://127.0.0.1:8007/p$i?a=1&user=bob"; done | sort -u | wc -l)" -eq 1
check "query-item: spread over values" test "$(spread_count 8007 q_who)" -ge 2
h_who() { who -H "X-User: u$1" "http://127.0.0.1:$2/"; }
check "header: one real for one value" test "$(same_real 8008 -H 'X-User: alice')" -eq 1
check "header: spread over values" test "$(spread_count 8008 h_who)" -ge 2
src_who() { who --interface "127.0.$(( $1 + 1 )).5" "http://127.0.0.1:$2/"; }
check "source-ip: one real for one client address" test "$(same_real 8009 --interface 127.0.0.7)" -eq 1
check "source-ip: netmask 24 keeps two clients of one /24 together" \
    test "$(who --interface 127.0.0.7 http://127.0.0.1:8009/)" = "$(who --interface 127.0.0.8 http://127.0.0.1:8009/)"
check "source-ip: clients of 30 networks spread" test "$(spread_count 8009 src_who)" -ge 2
check "fallback source-ip: requests without the header stay on one real" \
    test "$(same_real 8010 --interface 127.0.0.20)" -eq 1

# A persisted real that goes down is replaced and the cookie rewritten.
rm -f "$TMP/jarD"
first=$(who -c "$TMP/jarD" http://127.0.0.1:8001/)
kill "${PID[$first]}"; wait "${PID[$first]}" 2>/dev/null
hdr=$(c -D - -o /dev/null -b "$TMP/jarD" http://127.0.0.1:8001/)
now=$(sed -n 's/^X-Backend: \([^\r]*\).*/\1/p' <<<"$hdr")
check "down persisted real ($first) replaced by another ($now) with a new cookie" \
    bash -c '[ -n "$1" ] && [ "$1" != "$2" ] && grep -qi "^set-cookie: XLBID" <<<"$3"' _ "$now" "$first" "$hdr"
backend "$first" >/dev/null    # back on another port: not the configured one, stays down

# ---- content switching ----
check "path prefix /images/ -> images" test "$(who http://127.0.0.1:8020/images/a.png)" = img
check "path regex ^/api/v[0-9]+/ -> api" test "$(who http://127.0.0.1:8021/api/v2/users)" = api
check "path regex does not match /api/vx/" test "$(who http://127.0.0.1:8020/api/vx/)" = a1
check "host static.example.test -> static" test "$(who -H 'Host: static.example.test' http://127.0.0.1:8020/)" = host
check "header X-Canary: 1 -> canary" test "$(who -H 'X-Canary: 1' http://127.0.0.1:8020/)" = canary
check "method POST -> writes" test "$(who -d x=1 http://127.0.0.1:8020/)" = post
check "first match wins (/images/ with X-Canary)" test "$(who -H 'X-Canary: 1' http://127.0.0.1:8020/images/x)" = img
check "nothing special -> the default pool" test "$(who http://127.0.0.1:8020/other)" = a1

# ---- retries ----
retries() { c http://127.0.0.1:9122/metrics | sed -n "s/^xlb_proxy_retries_total{vs=\"$1\"} //p"; }
code=$(c -o /dev/null -w '%{http_code}' http://127.0.0.1:8030/)
check "connect refused by the first real: retried on the next, 200" test "$code" = 200
code=$(c -o /dev/null -w '%{http_code}' -d x=1 http://127.0.0.1:8030/)
check "connect refused: a POST is retried too (nothing was sent)" test "$code" = 200
check "two retries counted in xlb_proxy_retries_total" test "$(retries retry)" = 2
code=$(c -o /dev/null -w '%{http_code}' http://127.0.0.1:8031/x)
check "a GET the real closed on unanswered is retried on the next real, 200" test "$code" = 200
code=$(c -o /dev/null -w '%{http_code}' -d x=1 http://127.0.0.1:8031/x)
check "a POST the real closed on unanswered is not retried: 502" test "$code" = 502
check "one retry (the GET's) counted" test "$(retries retry-sent)" = 1

# ---- smuggling and limits ----
raw() { in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/8000; printf "$1" >&3; timeout 3 head -1 <&3' _ "$1"; }
check "Content-Length with Transfer-Encoding: 400" \
    grep -q ' 400 ' <<<"$(raw 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')"
check "two Content-Length fields: 400" \
    grep -q ' 400 ' <<<"$(raw 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc')"
check "obs-fold: 400" grep -q ' 400 ' <<<"$(raw 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n')"
check "bare LF: 400" grep -q ' 400 ' <<<"$(raw 'GET / HTTP/1.1\nHost: x\n\n')"
check "HTTP/1.1 without Host: 400" grep -q ' 400 ' <<<"$(raw 'GET / HTTP/1.1\r\n\r\n')"
check "overlong request line: 414" \
    grep -q ' 414 ' <<<"$(raw "GET /$(head -c 9000 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: x\r\n\r\n")"

# ---- forwarded headers ----
h=$(c -H 'X-Forwarded-For: 6.6.6.6' -H 'Forwarded: for=6.6.6.6' http://127.0.0.1:8000/headers)
check "untrusted client: its X-Forwarded-For replaced by the real client address" \
    bash -c 'grep -q "^X-Forwarded-For: 127.0.0.1" <<<"$1" && ! grep -q 6.6.6.6 <<<"$1"' _ "$h"
check "Forwarded and X-Forwarded-Proto added" \
    bash -c 'grep -q "^Forwarded: for=127.0.0.1;proto=http" <<<"$1" && grep -q "^X-Forwarded-Proto: http" <<<"$1"' _ "$h"
h=$(c --interface 127.0.0.9 -H 'X-Forwarded-For: 198.18.5.5' http://127.0.0.1:8000/headers)
check "trusted proxy: X-Forwarded-For kept and extended" \
    grep -q "^X-Forwarded-For: 198.18.5.5, 127.0.0.9" <<<"$h"

# ---- access log and metrics ----
check "access log line per request with client, vs, real, status, bytes, timings" \
    grep -qE 'client=127\.0\.0\.1:[0-9]+ vs=switch pool=images real=img "GET /images/a.png HTTP/1.1" status=200 bytes_in=0 bytes_out=[0-9]+ connect_ms=[0-9-]+ header_ms=[0-9]+ total_ms=[0-9]+' "$TMP/access.log"
c http://127.0.0.1:9122/metrics >"$TMP/metrics.txt"
check "metrics pass promtool check metrics" bash -c 'promtool check metrics <"$1" >/dev/null 2>&1 || { promtool check metrics <"$1"; false; }' _ "$TMP/metrics.txt"
n=$(sed -n 's/^xlb_proxy_real_responses_total{vs="switch\/images",rs="img",class="2xx"} //p' "$TMP/metrics.txt")
check "per-real responses by class (switch/images img 2xx = 2, got $n)" test "$n" = 2

mv "$TMP/access.log" "$TMP/access.log.1"
kill -USR1 "${PID[px]}"
wait_for 3 test -e "$TMP/access.log"
c -o /dev/null http://127.0.0.1:8000/after-rotation
check "SIGUSR1 reopens the access log: the next request is in the new file" \
    wait_for 3 grep -q '"GET /after-rotation HTTP/1.1" status=200' "$TMP/access.log"
check "... and not in the rotated one" bash -c '! grep -q after-rotation "$1"' _ "$TMP/access.log.1"
stop px
check "SIGTERM stops the proxy with status 0" test $? -eq 0

# ---- timeouts (a second proxy with short ones) ----
cat >"$TMP/px2.yaml" <<EOF
node:
  bpffs: $TMP/no-agent
proxy:
  workers: 1
  metrics: {listen: "127.0.0.1:9123"}
  access_log: off
  cookie_key_file: $TMP/cookie.key
  timeouts: {client_header: 1s, keepalive: 1s, upstream_response: 1s}
services:
  - name: t
    address: 127.0.0.1
    ports: [8100]
    layer: 7
    reals: [{name: a2, address: 127.0.0.1, port: ${PORT[a2]}}]
  - name: passive
    address: 127.0.0.1
    ports: [8101]
    layer: 7
    scheduler: fixed
    reals:
      - {name: refuses, address: 127.0.0.1, port: 1, weight: 200}
      - {name: a2, address: 127.0.0.1, port: ${PORT[a2]}, weight: 100}
EOF
if ! proxy px2 "$TMP/px2.yaml"; then not_ok "second xlb-proxy did not start"; finish; fi
m2() { c http://127.0.0.1:9123/metrics | sed -n "s/^$1 //p"; }
c -o /dev/null http://127.0.0.1:8101/
check "passive check: a real refusing connections is marked failed (fail_after 1)" \
    test "$(m2 'xlb_proxy_real_failed{vs="passive",rs="refuses"}')" = 1
c -o /dev/null http://127.0.0.1:8101/
check "passive check: while failed it is not tried (one retry in all, not two)" \
    test "$(m2 'xlb_proxy_retries_total{vs="passive"}')" = 1
t0=$(date +%s%N)
code=$(c -o /dev/null -w '%{http_code}' http://127.0.0.1:8100/hang)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "upstream_response 1s: a hanging real gives 504 (after $ms ms)" \
    bash -c '[ "$1" = 504 ] && [ "$2" -ge 900 ] && [ "$2" -lt 4000 ]' _ "$code" "$ms"
out=$(in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/8100; printf "GET / HTTP/1.1\r\nHost: x\r\n" >&3; timeout 5 head -1 <&3')
check "client_header 1s: an unfinished head gets 408" grep -q ' 408 ' <<<"$out"
t0=$(date +%s%N)
in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/8100; printf "GET / HTTP/1.1\r\nHost: x\r\n\r\n" >&3; timeout 5 cat <&3 >/dev/null'
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "keepalive 1s: an idle connection is closed (after $ms ms)" \
    bash -c '[ "$1" -ge 900 ] && [ "$1" -lt 4000 ]' _ "$ms"

finish
