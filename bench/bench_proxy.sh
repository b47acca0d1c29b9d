#!/usr/bin/env bash
# xlb-proxy against HAProxy and nginx, side by side, in one run:
#   1. plain HTTP proxying of a 1 KiB response     (xlb-proxy, HAProxy, nginx)
#   2. cookie-insert persistence over two reals, 1 KiB: clients that send
#      the cookie they were given (ck-ret) and new clients that are given
#      one with every response (ck-new)          (xlb-proxy, HAProxy, nginx)
#   3. TLS 1.3 keep-alive, a 1 KiB response       (xlb-proxy, HAProxy, nginx)
#   4. gzip level 1 and 6 of a 100 KiB text/html   (xlb-proxy, nginx)
#   5. cache hits of a 1 KiB object (max-age=600)  (xlb-proxy, HAProxy, nginx)
#
# nginx (open source) has no cookie insertion: it is configured to do the
# same with a map from the cookie to an upstream and a Set-Cookie naming
# the upstream it chose when the request had no valid cookie.  HAProxy uses
# "cookie XLBID insert indirect nocache", xlb-proxy active-cookie (whose
# value is an HMAC-signed real id with an expiry, where the others send a
# plain server name).
#
#   bench/bench_proxy.sh BUILD [SECONDS=6]
#
# Everything runs on loopback in a network namespace of its own
# (xlbtbenchPID), behind one nginx origin that serves static files.  Each
# proxy has one worker (xlb-proxy proxy.workers: 1, HAProxy nbthread 1,
# nginx worker_processes 1), access logs off, keep-alive on both sides,
# the same ECDSA P-256 certificate and TLS 1.3 suite.  The proxies are
# pinned to CPU 1, wrk and the origin to CPU 0 (when there are two CPUs).
# Each load is wrk, 1 thread, 50 connections, SECONDS after a 1 s warm-up,
# repeated XLB_BENCH_PROXY_ROUNDS (2) times with the proxies in turn; the
# table shows the best of the rounds.  CPU per request is the proxy's
# utime+stime (all its threads and processes, /proc/PID/stat) over the
# measured run divided by the requests wrk completed; "user" is the utime
# part of it (the proxy's own code; the rest is the kernel, mostly loopback
# TCP, whose receive path runs on the sender's CPU).  While wrk runs, a
# curl on a connection of its own checks the bytes every 0.25 s.  Targets
# are reported PASS/MISS, never asserted; the script fails only when
# something cannot be run or a response is wrong.
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-${XLB_BENCH_PROXY_SECONDS:-6}}
# XLB_BENCH_PROXY_ONLY: the sections to run, of "plain cookie tls gzip cache" (all)
ONLY=${XLB_BENCH_PROXY_ONLY:-plain cookie tls gzip cache}
want() { [[ " $ONLY " == *" $1 "* ]]; }
ROUNDS=${XLB_BENCH_PROXY_ROUNDS:-2}
CONNS=50
WARM=1

if [ "$(id -u)" -ne 0 ]; then
    echo "bench_proxy: needs root (network namespaces)" >&2
    exit 1
fi
PROXY=$(realpath "$BUILD/xlb-proxy")
[ -x "$PROXY" ] || { echo "bench_proxy: $BUILD/xlb-proxy not built" >&2; exit 1; }

# Debian packages of the comparison, installed when missing.
need=()
for p in wrk:wrk haproxy:haproxy nginx:nginx curl:curl openssl:openssl python3:python3 \
         taskset:util-linux nsenter:util-linux ip:iproute2 gzip:gzip; do
    command -v "${p%%:*}" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "${p%%:*}" \
        >/dev/null 2>&1 || need+=("${p#*:}")
done
export PATH=$PATH:/usr/sbin:/sbin
if [ ${#need[@]} -gt 0 ]; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    echo "bench_proxy: installing missing Debian packages: ${need[*]} (apt-get install -y)"
    # Keep the packages' own services (nginx, haproxy on port 80) from starting.
    rcd=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        rcd=1
    fi
    rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null || rc=$?
    [ -z "$rcd" ] || rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || { echo "bench_proxy: apt-get install ${need[*]} failed" >&2; exit 1; }
fi

NS=xlbtbench$$
TMP=$(mktemp -d /tmp/xlbt-bench-proxy.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

ip netns add "$NS"
IN=(nsenter --net=/run/netns/"$NS")
"${IN[@]}" ip link set lo up

# CPUs: proxies on one, wrk and the origin on another.
if [ "$(nproc)" -ge 2 ]; then
    CPU_PROXY=(taskset -c 1); CPU_LOAD=(taskset -c 0); PINNED="proxy on CPU 1, wrk and origin on CPU 0"
else
    CPU_PROXY=(); CPU_LOAD=(); PINNED="one CPU: nothing pinned"
fi

# ---- content, certificate, configurations ---------------------------------
mkdir -p "$TMP/www/cache" "$TMP/ngo" "$TMP/ngp" "$TMP/ngp/cache" "$TMP/hap" "$TMP/xlb"
head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/small.txt"
cp "$TMP/www/small.txt" "$TMP/www/cache/obj.txt"
# 100 KiB of HTML-like text: the project's own documentation, escaped and
# wrapped in markup (real prose, tables and code: neither random nor a
# repeated pattern).
python3 - "$TMP/www/page.html" docs/*.md README.md <<'PY'
import html, sys
out, parts = sys.argv[1], []
parts.append('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
             '<title>xlb documentation</title>\n<link rel="stylesheet" href="/style.css">'
             '</head>\n<body><div id="main" class="content">\n')
n = 0
while sum(map(len, parts)) < 102400:
    for f in sys.argv[2:]:
        for line in open(f, encoding="utf-8", errors="replace"):
            line = line.rstrip("\n")
            n += 1
            if line.startswith("#"):
                parts.append(f'<h2 id="s{n}">{html.escape(line.lstrip("# "))}</h2>\n')
            elif line.startswith("|"):
                cells = "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|"))
                parts.append(f'<tr class="r{n % 2}">{cells}</tr>\n')
            elif line:
                parts.append(f'<p class="t">{html.escape(line)}</p>\n')
data = "".join(parts).encode()[:102400 - 22] + b"\n</div></body></html>\n"
open(out, "wb").write(data[:102400].ljust(102400, b" "))
PY
[ "$(wc -c <"$TMP/www/page.html")" -eq 102400 ]

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=xlbt.bench -keyout "$TMP/key.pem" -out "$TMP/crt.pem" 2>/dev/null
cat "$TMP/crt.pem" "$TMP/key.pem" >"$TMP/cert.pem"
SUITE=TLS_AES_256_GCM_SHA384    # OpenSSL's first TLS 1.3 suite: xlb-proxy's choice

O=127.0.0.1:8080                # origin (real "a")
O2=127.0.0.1:8081               # the second real of the cookie tests ("b")
X_PLAIN=9080;  X_CK=9084;  X_TLS=9443;  X_GZ1=9081;  X_GZ6=9082;  X_CACHE=9083
H_PLAIN=10080; H_CK=10084; H_TLS=10443; H_CACHE=10083
N_PLAIN=11080; N_CK=11084; N_TLS=11443; N_GZ1=11081; N_GZ6=11082; N_CACHE=11083

ngx_common() {   # $1: prefix directory
    cat <<EOF
user root;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
EOF
}

{   # the origin: static files; the cached object logs its requests
    ngx_common "$TMP/ngo"
    cat <<EOF
    sendfile on;
    tcp_nopush on;
    server {
        listen $O backlog=4096;
        root $TMP/www;
        location /cache/ {
            access_log $TMP/ngo/cache.log;
            add_header Cache-Control "max-age=600";
        }
    }
    server {                     # real "b": says so in a header
        listen $O2 backlog=4096;
        root $TMP/www;
        add_header X-Xlbt-Origin b;
    }
}
EOF
} >"$TMP/ngo/nginx.conf"

{   # nginx as the proxy
    ngx_common "$TMP/ngp"
    cat <<EOF
    upstream origin { server $O; keepalive 64; keepalive_requests 1000000; }
    upstream ck_a { server $O; keepalive 64; keepalive_requests 1000000; }
    upstream ck_b { server $O2; keepalive 64; keepalive_requests 1000000; }
    upstream ck_ab { server $O; server $O2; keepalive 64; keepalive_requests 1000000; }
    map \$cookie_XLBID \$ck_pool { a ck_a; b ck_b; default ck_ab; }
    map \$upstream_addr \$ck_srv { $O a; default b; }
    map \$cookie_XLBID \$ck_set { a ""; b ""; default "XLBID=\$ck_srv; Path=/; HttpOnly; Secure"; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering on;
    proxy_cache_path $TMP/ngp/cache levels=1:2 keys_zone=xlbt:16m max_size=256m inactive=10m use_temp_path=off;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites $SUITE;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    server {
        listen 127.0.0.1:$N_PLAIN backlog=4096;
        location / { proxy_pass http://origin; }
    }
    server {
        listen 127.0.0.1:$N_CK backlog=4096;
        location / { proxy_pass http://\$ck_pool; add_header Set-Cookie \$ck_set; }
    }
    server {
        listen 127.0.0.1:$N_TLS ssl backlog=4096;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/cert.pem;
        location / { proxy_pass http://origin; }
    }
    server {
        listen 127.0.0.1:$N_GZ1 backlog=4096;
        gzip on; gzip_comp_level 1; gzip_min_length 1000;   # text/html is always a gzip_type
        location / { proxy_pass http://origin; }
    }
    server {
        listen 127.0.0.1:$N_GZ6 backlog=4096;
        gzip on; gzip_comp_level 6; gzip_min_length 1000;   # text/html is always a gzip_type
        location / { proxy_pass http://origin; }
    }
    server {
        listen 127.0.0.1:$N_CACHE backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_cache xlbt;
            proxy_cache_valid 200 10m;      # only without Cache-Control/Expires
        }
    }
}
EOF
} >"$TMP/ngp/nginx.conf"

cat >"$TMP/hap/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
    ssl-default-bind-ciphersuites $SUITE
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-bind-curves X25519:P-256:P-384
defaults
    mode http
    option http-keep-alive
    http-reuse safe
    timeout connect 3s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
cache xlbt
    total-max-size 256
    max-object-size 1048576
    max-age 600
frontend plain
    bind 127.0.0.1:$H_PLAIN
    default_backend origin
frontend cookie
    bind 127.0.0.1:$H_CK
    default_backend origin_cookie
frontend tls
    bind 127.0.0.1:$H_TLS ssl crt $TMP/cert.pem alpn http/1.1
    default_backend origin
frontend cache
    bind 127.0.0.1:$H_CACHE
    default_backend origin_cache
backend origin
    server o $O
backend origin_cookie
    balance roundrobin
    cookie XLBID insert indirect nocache httponly secure
    server a $O cookie a
    server b $O2 cookie b
backend origin_cache
    http-request cache-use xlbt
    http-response cache-store xlbt
    server o $O
EOF

xlb_svc() {   # name port extra
    cat <<EOF
  - name: $1
    address: 127.0.0.1
    ports: [$2]
    layer: 7
    scheduler: rr
    health_check: {type: none}
    reals: [{address: 127.0.0.1, port: ${O##*:}}]
EOF
    [ -z "${3:-}" ] || echo "    $3"
}
{
    cat <<EOF
node:
  bpffs: /sys/fs/bpf/xlbt-bench-proxy-$$
  metrics: {enabled: false}
  api: {enabled: false}
proxy:
  workers: 1
  upstream: {max_idle: 64}       # as nginx keepalive 64: no churn at 50 connections
  metrics: {enabled: false}
  access_log: off
  cookie_key_file: $TMP/xlb/cookie.key
services:
EOF
    xlb_svc xlbt-plain $X_PLAIN
    cat <<EOF
  - name: xlbt-cookie
    address: 127.0.0.1
    ports: [$X_CK]
    layer: 7
    scheduler: rr
    health_check: {type: none}
    persistence: {type: active-cookie, cookie: XLBID}
    reals: [{address: 127.0.0.1, port: ${O##*:}}, {address: 127.0.0.1, port: ${O2##*:}}]
EOF
    xlb_svc xlbt-tls $X_TLS "tls: {certificates: [$TMP/cert.pem], min_version: \"1.3\"}"
    xlb_svc xlbt-gz1 $X_GZ1 "compression: {enabled: true, level: 1, min_size: 1000, types: [text/html]}"
    xlb_svc xlbt-gz6 $X_GZ6 "compression: {enabled: true, level: 6, min_size: 1000, types: [text/html]}"
    xlb_svc xlbt-cache $X_CACHE "cache: {enabled: true, max_size: 256MiB, max_object: 1MiB}"
} >"$TMP/xlb/xlb.yaml"
"$PROXY" --check "$TMP/xlb/xlb.yaml" >/dev/null

cat >"$TMP/done.lua" <<'EOF'
done = function(s, lat, req)
    io.write(string.format("XLBT %d %d %d %d %d %d %d %d %d\n", s.requests, s.bytes, s.duration,
        s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status,
        lat:percentile(50), lat:percentile(99), lat.max, 0))
end
EOF

# ---- start ---------------------------------------------------------------
wait_port() {   # port name
    local i
    for ((i = 0; i < 100; i++)); do
        "${IN[@]}" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench_proxy: $2 does not listen on port $1" >&2
    for f in "$TMP"/*.err "$TMP"/ngo/error.log "$TMP"/ngp/error.log; do
        [ -s "$f" ] && { echo "--- $f"; tail -20 "$f"; } >&2
    done
    exit 1
}
"${IN[@]}" "${CPU_LOAD[@]}" nginx -p "$TMP/ngo" -c "$TMP/ngo/nginx.conf" -e "$TMP/ngo/error.log" \
    -g 'daemon off;' 2>"$TMP/ngo.err" &
PIDS+=($!); PID_ORIGIN=$!
"${IN[@]}" "${CPU_PROXY[@]}" nginx -p "$TMP/ngp" -c "$TMP/ngp/nginx.conf" -e "$TMP/ngp/error.log" \
    -g 'daemon off;' 2>"$TMP/ngp.err" &
PIDS+=($!); PID_NGINX=$!
"${IN[@]}" "${CPU_PROXY[@]}" haproxy -db -f "$TMP/hap/haproxy.cfg" 2>"$TMP/hap.err" &
PIDS+=($!); PID_HAPROXY=$!
"${IN[@]}" "${CPU_PROXY[@]}" "$PROXY" --config "$TMP/xlb/xlb.yaml" --log-level warning \
    2>"$TMP/xlb.err" &
PIDS+=($!); PID_XLB=$!
wait_port ${O##*:} "origin nginx"
wait_port ${O2##*:} "origin nginx"
for p in $X_PLAIN $X_CK $X_TLS $X_GZ1 $X_GZ6 $X_CACHE; do wait_port $p xlb-proxy; done
for p in $H_PLAIN $H_CK $H_TLS $H_CACHE; do wait_port $p haproxy; done
for p in $N_PLAIN $N_CK $N_TLS $N_GZ1 $N_GZ6 $N_CACHE; do wait_port $p "nginx proxy"; done

# ---- measuring -------------------------------------------------------------
cpu_ticks() {   # pid: "utime stime" of it and its children processes, in ticks
    local p u=0 k=0 f
    for p in "$1" $(pgrep -P "$1" || true); do
        f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        set -- $f
        u=$((u + ${12})) k=$((k + ${13}))
    done
    echo $u $k
}
HZ=$(getconf CLK_TCK)
RES=$TMP/results
: >"$RES"; : >"$TMP/sizes"; : >"$TMP/origin"; : >"$TMP/tls"

alive() {   # name pid
    local st=0
    kill -0 "$2" 2>/dev/null && return 0
    wait "$2" || st=$?
    echo "bench_proxy: $1 (pid $2) died, exit status $st$([ $st -gt 128 ] &&
        echo " (signal $((st - 128)): $(kill -l $((st - 128))))"); its log:" >&2
    cat "$TMP"/*.err >&2
    exit 1
}

# verify URL FILE [gz]: fetch URL every 0.25 s until killed, compare the
# body (gunzipped with gz) with FILE; one line per wrong answer on stdout.
verify() {
    local i=0 r f=$TMP/verify.$BASHPID
    trap - EXIT INT TERM
    while :; do
        i=$((i + 1))
        if [ -n "${3:-}" ]; then
            r=$(fetch "$1" "$f" -H 'Accept-Encoding: gzip') || true
            gzip -dc <"$f" 2>/dev/null | cmp -s - "$2" || echo "fetch $i: $r, body differs"
        else
            r=$(fetch "$1" "$f") || true
            cmp -s "$f" "$2" || echo "fetch $i: $r, body differs"
        fi
        sleep 0.25
    done
}

# run TEST PROXY-NAME PID URL FILE GZ [wrk args...]: warm-up, then the
# measured run while verify() checks the answers on a connection of its own.
run() {
    local test=$1 name=$2 pid=$3 url=$4 file=$5 gz=$6 u0 k0 u1 k1 line vp
    shift 6
    alive "$name" "$pid"
    "${IN[@]}" "${CPU_LOAD[@]}" wrk -t1 -c$CONNS -d${WARM}s "$@" "$url" >/dev/null
    verify "$url" "$file" "$gz" >"$TMP/verify-$test-$name" &
    vp=$!
    read -r u0 k0 < <(cpu_ticks "$pid")
    line=$("${IN[@]}" "${CPU_LOAD[@]}" wrk -t1 -c$CONNS -d${SECS}s --latency -s "$TMP/done.lua" \
        "$@" "$url" | tee "$TMP/wrk-$test-$name.txt" | grep '^XLBT ') ||
        { echo "bench_proxy: wrk failed against $name ($url)"; cat "$TMP/wrk-$test-$name.txt"; exit 1; } >&2
    read -r u1 k1 < <(cpu_ticks "$pid")
    kill $vp; wait $vp 2>/dev/null || true
    alive "$name" "$pid"
    if [ -s "$TMP/verify-$test-$name" ]; then
        echo "bench_proxy: $test/$name: wrong answers under load:" >&2
        head "$TMP/verify-$test-$name" >&2
        exit 1
    fi
    echo "$test $name ${line#XLBT } $((u1 + k1 - u0 - k0)) $HZ $((u1 - u0))" >>"$RES"
    printf '  %-8s %-9s %s\n' "$test" "$name" "$(grep -E 'Requests/sec|Non-2xx|Socket errors' \
        "$TMP/wrk-$test-$name.txt" | tr -s ' ' | paste -sd';')"
}

fetch() {   # url out [curl args]: body to out, prints "code size"
    local url=$1 out=$2
    shift 2
    "${IN[@]}" curl -sk --max-time 10 -o "$out" -w '%{http_code} %{size_download}' "$@" "$url"
}

check_plain() {   # name url file [curl args]
    local r n=$1 url=$2 file=$3
    shift 3
    r=$(fetch "$url" "$TMP/got" -D "$TMP/got.h" "$@") || true
    if [ "${r%% *}" != 200 ] || ! cmp -s "$TMP/got" "$file"; then
        echo "bench_proxy: $n: wrong response from $url ($r)" >&2
        cat "$TMP/got.h" >&2
        exit 1
    fi
}

tls_info() {   # port: negotiated protocol and suite
    "${IN[@]}" timeout 5 openssl s_client -connect 127.0.0.1:"$1" -servername xlbt.bench \
        </dev/null 2>/dev/null | sed -n 's/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)/\1 \2/p' | head -1
}

echo "bench_proxy: ${SECS}s per run (after ${WARM}s warm-up), wrk 1 thread $CONNS connections; $PINNED"

# order ROUND A B C: the proxies in turn, reversed on even rounds, so that
# a slow spell of the machine does not fall on one proxy only.
order() {
    local r=$1
    shift
    if [ $((r % 2)) -eq 1 ]; then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}

declare -A PID_OF=([xlb-proxy]=$PID_XLB [haproxy]=$PID_HAPROXY [nginx]=$PID_NGINX)

# run3 TEST SCHEME PORTS: ROUNDS rounds of TEST against the three proxies,
# GET SCHEME://127.0.0.1:PORT/small.txt, PORTS the name of their port map.
run3() {
    local t=$1 scheme=$2 r n
    local -n ports=$3
    for ((r = 1; r <= ROUNDS; r++)); do
        for n in $(order $r xlb-proxy haproxy nginx); do
            run "$t" "$n" "${PID_OF[$n]}" "$scheme://127.0.0.1:${ports[$n]}/small.txt" \
                "$TMP/www/small.txt" ""
        done
    done
}

# The first load after start-up runs slow (page faults, caches, TCP
# autotuning): every proxy gets one unmeasured load first.
for n in xlb-proxy haproxy nginx; do
    p=$X_PLAIN; [ $n = haproxy ] && p=$H_PLAIN; [ $n = nginx ] && p=$N_PLAIN
    "${IN[@]}" "${CPU_LOAD[@]}" wrk -t1 -c$CONNS -d2s "http://127.0.0.1:$p/small.txt" >/dev/null
done

# 1. plain
if want plain; then
echo "1. plain HTTP, 1 KiB response"
declare -A PORT_PLAIN=([xlb-proxy]=$X_PLAIN [haproxy]=$H_PLAIN [nginx]=$N_PLAIN)
for n in xlb-proxy haproxy nginx; do
    check_plain "$n" "http://127.0.0.1:${PORT_PLAIN[$n]}/small.txt" "$TMP/www/small.txt"
done
run3 plain http PORT_PLAIN
fi

# 2. cookie persistence
if want cookie; then
echo "2. cookie-insert persistence, two reals, 1 KiB response"
declare -A PORT_CK=([xlb-proxy]=$X_CK [haproxy]=$H_CK [nginx]=$N_CK) COOKIE=()
# origin_of FILE: the real that answered ("a" or "b"), from the headers
origin_of() { grep -qi '^x-xlbt-origin: *b' "$1" && echo b || echo a; }
for n in xlb-proxy haproxy nginx; do
    url="http://127.0.0.1:${PORT_CK[$n]}/small.txt"
    check_plain "$n" "$url" "$TMP/www/small.txt"
    ck=$(sed -n 's/^[Ss]et-[Cc]ookie: *\(XLBID=[^;]*\).*/\1/p' "$TMP/got.h" | tr -d '\r')
    [ -n "$ck" ] || { echo "bench_proxy: $n: no XLBID cookie for a new client" >&2; cat "$TMP/got.h" >&2; exit 1; }
    first=$(origin_of "$TMP/got.h")
    seen=
    for i in 1 2 3 4 5 6; do      # the returning client stays; new ones spread
        check_plain "$n" "$url" "$TMP/www/small.txt" -H "Cookie: $ck"
        [ "$(origin_of "$TMP/got.h")" = "$first" ] ||
            { echo "bench_proxy: $n: the cookie $ck did not keep the client on real $first" >&2; exit 1; }
        ! grep -qi '^set-cookie:' "$TMP/got.h" ||
            { echo "bench_proxy: $n: a fresh valid cookie was set again" >&2; cat "$TMP/got.h" >&2; exit 1; }
        check_plain "$n" "$url" "$TMP/www/small.txt"
        seen+=$(origin_of "$TMP/got.h")
    done
    [[ $seen == *a* && $seen == *b* ]] ||
        { echo "bench_proxy: $n: new clients all went to one real ($seen)" >&2; exit 1; }
    COOKIE[$n]=$ck
done
for ((r = 1; r <= ROUNDS; r++)); do
    for n in $(order $r xlb-proxy haproxy nginx); do
        run ck-ret "$n" "${PID_OF[$n]}" "http://127.0.0.1:${PORT_CK[$n]}/small.txt" "$TMP/www/small.txt" "" \
            -H "Cookie: ${COOKIE[$n]}"
    done
done
run3 ck-new http PORT_CK
fi

# 3. TLS
if want tls; then
echo "3. TLS 1.3 keep-alive, 1 KiB response"
declare -A PORT_TLS=([xlb-proxy]=$X_TLS [haproxy]=$H_TLS [nginx]=$N_TLS)
for n in xlb-proxy haproxy nginx; do
    check_plain "$n" "https://127.0.0.1:${PORT_TLS[$n]}/small.txt" "$TMP/www/small.txt"
    echo "$n $(tls_info "${PORT_TLS[$n]}")" >>"$TMP/tls"
done
while read -r n v s; do
    [ "$v $s" = "TLSv1.3 $SUITE" ] || { echo "bench_proxy: $n negotiated '$v $s', not TLSv1.3 $SUITE" >&2; exit 1; }
done <"$TMP/tls"
run3 tls https PORT_TLS
fi

# 4. gzip
if want gzip; then
echo "4. gzip of a 100 KiB text/html body"
declare -A PORT_GZ=([xlb-proxy1]=$X_GZ1 [xlb-proxy6]=$X_GZ6 [nginx1]=$N_GZ1 [nginx6]=$N_GZ6)
for lv in 1 6; do
    for n in xlb-proxy nginx; do
        url="http://127.0.0.1:${PORT_GZ[$n$lv]}/page.html"
        r=$(fetch "$url" "$TMP/gz" -H 'Accept-Encoding: gzip' -D "$TMP/gz.h") || true
        if [ "${r%% *}" != 200 ] || ! grep -qi '^content-encoding: *gzip' "$TMP/gz.h" ||
           ! gzip -dc <"$TMP/gz" | cmp -s - "$TMP/www/page.html"; then
            echo "bench_proxy: $n level $lv: not a gzip of the page ($r)" >&2
            cat "$TMP/gz.h" >&2
            exit 1
        fi
        echo "gzip$lv $n ${r#* }" >>"$TMP/sizes"
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for n in $(order $r xlb-proxy nginx); do
            run gzip$lv "$n" "${PID_OF[$n]}" "http://127.0.0.1:${PORT_GZ[$n$lv]}/page.html" \
                "$TMP/www/page.html" gz -H 'Accept-Encoding: gzip'
        done
    done
done
fi

# 5. cache
if want cache; then
echo "5. cache hits, 1 KiB, Cache-Control: max-age=600"
declare -A PORT_CACHE=([xlb-proxy]=$X_CACHE [haproxy]=$H_CACHE [nginx]=$N_CACHE)
for n in xlb-proxy haproxy nginx; do      # warm: the first fetch fills the cache
    for i in 1 2 3; do
        check_plain "$n" "http://127.0.0.1:${PORT_CACHE[$n]}/cache/obj.txt" "$TMP/www/cache/obj.txt"
    done
done
sleep 0.2
for ((r = 1; r <= ROUNDS; r++)); do
    for n in $(order $r xlb-proxy haproxy nginx); do
        before=$(wc -l <"$TMP/ngo/cache.log")
        run cache "$n" "${PID_OF[$n]}" "http://127.0.0.1:${PORT_CACHE[$n]}/cache/obj.txt" \
            "$TMP/www/cache/obj.txt" ""
        after=$(wc -l <"$TMP/ngo/cache.log")
        echo "cache $n $((after - before))" >>"$TMP/origin"
    done
done
fi

# ---- report ------------------------------------------------------------------
python3 - "$RES" "$TMP/sizes" "$TMP/origin" "$TMP/tls" <<'PY'
import sys
res, sizes, origin = {}, {}, {}
runs = {}
for l in open(sys.argv[1]):
    t, n, req, byt, dur, err, st, p50, p99, mx, _, ticks, hz, uticks = l.split()
    req, dur, ticks, hz, uticks = int(req), int(dur), int(ticks), int(hz), int(uticks)
    runs.setdefault((t, n), []).append(dict(rps=req / (dur / 1e6), p99=int(p99) / 1e3,
        cpu=1e6 * ticks / hz / max(req, 1), user=1e6 * uticks / hz / max(req, 1),
        err=int(err), st=int(st), bpr=int(byt) / max(req, 1)))
for k, rs in runs.items():     # best of the rounds, each number on its own
    res[k] = dict(rps=max(r["rps"] for r in rs), p99=min(r["p99"] for r in rs),
                  cpu=min(r["cpu"] for r in rs), user=min(r["user"] for r in rs), err=sum(r["err"] for r in rs),
                  st=sum(r["st"] for r in rs), bpr=rs[0]["bpr"], n=len(rs),
                  spread=max(r["rps"] for r in rs) / min(r["rps"] for r in rs))
for l in open(sys.argv[2]):
    t, n, s = l.split(); sizes[t, n] = int(s)
for l in open(sys.argv[3]):
    t, n, c = l.split(); origin[t, n] = origin.get((t, n), 0) + int(c)
tls = {l.split()[0]: " ".join(l.split()[1:]) for l in open(sys.argv[4])}

print()
print(f"best of {max(r['n'] for r in res.values())} rounds; spread = max/min req/s over the rounds")
print(f"{'test':<8} {'proxy':<10} {'req/s':>9} {'p99 ms':>8} {'cpu us/req':>10} {'user':>6} {'spread':>6} "
      f"{'bytes/resp':>10} {'gzip size':>9} {'errors':>6} {'origin hits':>11}")
for (t, n), r in res.items():
    print(f"{t:<8} {n:<10} {r['rps']:>9.0f} {r['p99']:>8.2f} {r['cpu']:>10.2f} {r['user']:>6.2f} {r['spread']:>6.2f} "
          f"{r['bpr']:>10.0f} {sizes.get((t, n), ''):>9} {r['err'] + r['st']:>6} "
          f"{origin.get((t, n), ''):>11}")
if tls: print(f"TLS: " + "; ".join(f"{k} {v}" for k, v in tls.items()))
print()
print("targets (xlb-proxy)")
def target(what, val, goal, higher=True):
    try:
        v = val()
    except KeyError:      # the section did not run (XLB_BENCH_PROXY_ONLY)
        return
    ok = v >= goal if higher else v <= goal
    print(f"  {what:<52} {v:>6.2f}x  {'>=' if higher else '<='} {goal:<4}  {'PASS' if ok else 'MISS'}")
x = lambda t, n, k: res[t, n][k]
for t, what in (("plain", "plain"), ("ck-ret", "cookie, returning clients"),
                ("ck-new", "cookie, new clients")):
    target(f"{what} req/s vs haproxy", lambda: x(t, "xlb-proxy", "rps") / x(t, "haproxy", "rps"), 1.0)
    target(f"{what} p99 vs haproxy", lambda: x(t, "xlb-proxy", "p99") / x(t, "haproxy", "p99"), 1.0, False)
    target(f"{what} cpu/req vs haproxy", lambda: x(t, "xlb-proxy", "cpu") / x(t, "haproxy", "cpu"), 0.8, False)
target("TLS cpu/req vs the better of haproxy, nginx", lambda: x("tls", "xlb-proxy", "cpu") /
       min(x("tls", "haproxy", "cpu"), x("tls", "nginx", "cpu")), 0.9, False)
target("gzip 1 req/s vs nginx", lambda: x("gzip1", "xlb-proxy", "rps") / x("gzip1", "nginx", "rps"), 1.3)
target("gzip 6 req/s vs nginx", lambda: x("gzip6", "xlb-proxy", "rps") / x("gzip6", "nginx", "rps"), 1.0)
target("gzip 1 size vs nginx", lambda: sizes["gzip1", "xlb-proxy"] / sizes["gzip1", "nginx"], 1.0, False)
target("gzip 6 size vs nginx", lambda: sizes["gzip6", "xlb-proxy"] / sizes["gzip6", "nginx"], 1.0, False)
target("cache req/s vs haproxy cache", lambda: x("cache", "xlb-proxy", "rps") / x("cache", "haproxy", "rps"), 1.0)
target("cache req/s vs nginx proxy_cache", lambda: x("cache", "xlb-proxy", "rps") / x("cache", "nginx", "rps"), 1.5)
bad = [f"{t}/{n}: {r['err']} socket errors, {r['st']} non-2xx" for (t, n), r in res.items() if r["err"] or r["st"]]
bad += [f"cache/{n}: the origin saw {c} requests during the run" for (t, n), c in origin.items() if c]
for b in bad:
    print("  note:", b)
PY
