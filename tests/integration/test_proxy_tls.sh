#!/usr/bin/env bash
# xlb-proxy's application front end, end to end: TLS offload (SNI among
# certificates with intermediates, versions, resumption, a self-signed
# certificate, plaintext and garbage on the TLS port, the port-80
# redirector, re-encryption to TLS reals and their pooled connections),
# compression (gzip, br, zstd: exact bytes back for bodies of 0 B to 10 MiB,
# every rule of when not to compress, bounded memory on a 100 MiB stream)
# and the cache (hits that never reach the real, expiry, what is never
# stored, revalidation, compressed variants, concurrent hits, flush and
# purge through the agent).  Loopback of a namespace of its own.
set -uo pipefail

NS_TAG=tl
# shellcheck source=tests/integration/px_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/px_lib.sh"
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)
px_setup "$PROXY" "$AGENT" "$XLBCTL" "$BACKEND"
for t in openssl zstd gunzip promtool python3; do
    command -v "$t" >/dev/null || { not_ok "$t is not installed"; finish; }
done
metric() { c http://127.0.0.1:9122/metrics | sed -n "s/^$1 //p"; }

# ---- certificates: root -> intermediate -> a.example.test; b.example.test ----
cd "$TMP" || finish
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key \
        -out root.pem -days 2 -subj /CN=xlbt-root -addext basicConstraints=critical,CA:true
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int.key -out int.csr \
        -subj /CN=xlbt-intermediate
    printf 'basicConstraints=critical,CA:true\nkeyUsage=keyCertSign,cRLSign\n' >int.ext
    openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -days 2 \
        -extfile int.ext -out int.pem
    for n in a b real; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key \
            -out $n.csr -subj /CN=$n.example.test
        printf 'subjectAltName=DNS:%s.example.test\n' $n >$n.ext
        openssl x509 -req -in $n.csr -CA int.pem -CAkey int.key -CAcreateserial -days 2 \
            -extfile $n.ext -out $n.crt
    done
    mkdir -p www && echo "served over TLS by the real" >www/page.txt
    cat a.crt int.pem a.key >a.pem
    cat real.crt int.pem >real-chain.pem
    cat b.crt int.pem b.key >b.pem
} >"$TMP/openssl.log" 2>&1 || { not_ok "openssl could not make the test certificates"; cat "$TMP/openssl.log"; finish; }
ok "certificates made: a, b and real under an intermediate"

bg o1 "$BACKEND" --name o1 --listen 127.0.0.11:8080
bg o2 "$BACKEND" --name o2 --listen 127.0.0.12:8080
# A real that speaks TLS only (openssl s_server: files of www/, HTTP/1.0).
( cd "$TMP/www" && exec nsenter --net="/run/netns/$NS" -- openssl s_server -quiet -WWW \
    -accept 127.0.0.13:9443 -cert "$TMP/real.crt" -cert_chain "$TMP/int.pem" \
    -key "$TMP/real.key" ) >"$TMP/s_server.log" 2>&1 &
PID[s_server]=$!
# A keep-alive TLS real (the proxy pools its connections); /stray sends an
# unrequested second response after the first.
bg torigin python3 "$TOOLS/xlbt-tls-origin.py" \
    --listen 127.0.0.14:9443 --cert "$TMP/real-chain.pem" --key "$TMP/real.key"
cat >"$TMP/xlb.yaml" <<EOF
node:
  bpffs: $BPFFS
  metrics: {listen: "127.0.0.1:9120"}
  api: {listen: "127.0.0.1:9121", token_file: $TMP/api.token}
proxy:
  workers: 2
  metrics: {listen: "127.0.0.1:9122"}
  access_log: $TMP/access.log
  cookie_key_file: $TMP/cookie.key
services:
  - name: shop
    address: 127.0.0.1
    ports: [443]
    layer: 7
    tls: {certificates: [$TMP/a.pem, $TMP/b.pem], redirect_http: true}
    compression: {enabled: true, min_size: 1KiB, level: 6, types: ["text/*", application/json]}
    cache: {enabled: true, max_size: 64MiB, max_object: 1MiB, cache_query: true}
    health_check: {type: tcp, interval: 1s}   # not http: it would count as requests at o1
    reals: [{name: o1, address: 127.0.0.11, port: 8080}]
  - name: reenc
    address: 127.0.0.3
    ports: [443]
    layer: 7
    tls: {certificates: [$TMP/a.pem], ca_file: $TMP/root.pem}
    health_check: {type: tcp, interval: 1s}
    reals: [{name: sreal, address: 127.0.0.13, port: 9443, tls: true}]
  - name: pooled
    address: 127.0.0.4
    ports: [443]
    layer: 7
    tls: {certificates: [$TMP/a.pem], ca_file: $TMP/root.pem}
    health_check: {type: tcp, interval: 1s}
    reals: [{name: preal, address: 127.0.0.14, port: 9443, tls: true}]
  - name: selfsigned
    address: 127.0.0.2
    ports: [8443]
    layer: 7
    tls: {}
    reals: [{name: o2, address: 127.0.0.12, port: 8080}]
EOF
bg agent "$AGENT" --config "$TMP/xlb.yaml"
bg proxy "$PROXY" --config "$TMP/xlb.yaml"
if ! wait_for 10 bash -c "nsenter --net=/run/netns/$NS -- curl -sf -o /dev/null http://127.0.0.1:9122/metrics"; then
    not_ok "xlb-proxy did not start"; cat "$TMP/proxy.log"; finish
fi
ok "agent and proxy started"
check "a self-signed certificate was made for the service without one, with a warning" \
    grep -qi "selfsigned.*self-signed\|self-signed.*selfsigned" "$TMP/proxy.log"

# ---- TLS ----
sclient() { in_ns timeout 5 openssl s_client -connect 127.0.0.1:443 "$@" </dev/null 2>&1; }
subject_of() { sclient -servername "$1" | openssl x509 -noout -subject 2>/dev/null; }
check "SNI a.example.test gets certificate a" grep -q "CN = a.example.test" <<<"$(subject_of a.example.test)"
check "SNI b.example.test gets certificate b" grep -q "CN = b.example.test" <<<"$(subject_of b.example.test)"
check "an unknown SNI gets the first certificate" grep -q "CN = a.example.test" <<<"$(subject_of zzz.example.test)"
check "the chain verifies against the root (the intermediate is sent)" \
    grep -q "Verify return code: 0 (ok)" <<<"$(sclient -servername b.example.test -CAfile root.pem -verify_hostname b.example.test)"
check "curl with the root CA: https://a.example.test/ works" \
    test "$(c --cacert root.pem --resolve a.example.test:443:127.0.0.1 https://a.example.test/hi)" = "o1 GET /hi"
check "TLS 1.3 negotiated by default" grep -q "Protocol  *: TLSv1.3\|TLSv1.3" <<<"$(sclient -servername a.example.test -brief)"
check "TLS 1.2 accepted" grep -q "TLSv1.2" <<<"$(sclient -servername a.example.test -tls1_2 -brief)"
check "TLS 1.1 refused" bash -c '! grep -q "^Protocol.*TLSv1.1\|Protocol version: TLSv1.1" <<<"$1" && grep -qi "alert\|error\|no protocols" <<<"$1"' _ "$(sclient -servername a.example.test -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0')"
check "ALPN http/1.1 selected" grep -q "ALPN protocol: http/1.1" <<<"$(sclient -servername a.example.test -alpn h2,http/1.1)"
sclient -servername a.example.test -tls1_2 -sess_out "$TMP/sess12" >/dev/null
check "TLS 1.2 session resumed" grep -q "^Reused" <<<"$(sclient -servername a.example.test -tls1_2 -sess_in "$TMP/sess12")"
in_ns bash -c "printf 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' | timeout 5 openssl s_client -connect 127.0.0.1:443 -servername a.example.test -tls1_3 -sess_out $TMP/sess13 -ign_eof" >/dev/null 2>&1
check "TLS 1.3 session resumed with a ticket" grep -q "^Reused" <<<"$(sclient -servername a.example.test -tls1_3 -sess_in "$TMP/sess13")"
out=$(in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/443; printf "GET / HTTP/1.1\r\nHost: x\r\n\r\n" >&3; timeout 3 cat <&3')
check "plain HTTP on the TLS port: a 400 that says to use https" grep -q "speaks HTTPS" <<<"$out"
in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/443; head -c 3000 /dev/urandom >&3; timeout 3 cat <&3 >/dev/null' 2>/dev/null
in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/443; printf "\x16\x03\x01\x00\x05hello" >&3; timeout 3 cat <&3 >/dev/null' 2>/dev/null
check "after garbage on the TLS port the proxy still serves" \
    test "$(c -k --resolve a.example.test:443:127.0.0.1 https://a.example.test/x)" = "o1 GET /x"
check "TLS failures counted (plaintext, version, other)" \
    bash -c '[ "$1" -ge 1 ] && [ "$2" -ge 1 ] && [ "$3" -ge 1 ]' _ \
    "$(metric 'xlb_proxy_tls_handshakes_total{vs="shop",result="plaintext"}')" \
    "$(metric 'xlb_proxy_tls_handshakes_total{vs="shop",result="version"}')" \
    "$(metric 'xlb_proxy_tls_handshakes_total{vs="shop",result="other"}')"
check "self-signed service: handshake works and the certificate names the service" \
    grep -q "CN = selfsigned" <<<"$(in_ns timeout 5 openssl s_client -connect 127.0.0.2:8443 </dev/null 2>/dev/null | openssl x509 -noout -subject)"
body=$(c -k --resolve real.example.test:443:127.0.0.3 https://real.example.test/page.txt)
check "re-encryption: the TLS real's page, its certificate verified for real.example.test" \
    test "$body" = "served over TLS by the real"
code=$(c -k -o /dev/null -w '%{http_code}' --resolve other.example.test:443:127.0.0.3 https://other.example.test/page.txt)
check "re-encryption: a real whose certificate does not name the host is refused (502)" test "$code" = 502
check "re-encryption: the verification failure is logged" grep -q "TLS to real sreal: .*verify" "$TMP/proxy.log"
# Both requests of one curl go over one client connection, so one worker
# and its pool of connections to preal.
P=(-k --resolve real.example.test:443:127.0.0.4)
# two_conns BODY PATH1 PATH2 REQ2: the origin's two answers, for PATH1 and
# then PATH2 (the second the REQ2-th request of its connection, any when
# empty); prints the two connection numbers.
two_conns() {
    local re="^conn ([0-9]+) req [0-9]+ $2"$'\n'"conn ([0-9]+) req ${4:-[0-9]+} $3\$"
    [[ $1 =~ $re ]] && echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}
same_conn() { [[ -n $1 && ${1% *} == "${1#* }" ]]; }
other_conn() { [[ -n $1 && ${1% *} != "${1#* }" ]]; }
body=$(c "${P[@]}" https://real.example.test/one https://real.example.test/two)
conns=$(two_conns "$body" /one /two)
check "re-encryption: a TLS connection to the real is kept and used again (${body//$'\n'/; })" \
    same_conn "$conns"
# Stray bytes after a small response, and after one that fills the proxy's
# 64 KiB response buffer exactly (the stray bytes then come after a full
# buffer, not with the end of the response in it).
for size in 0 65536; do
    path=/stray; [ "$size" -gt 0 ] && path=/stray/$size
    body=$(c "${P[@]}" "https://real.example.test$path" https://real.example.test/after | tr -s .)
    conns=$(two_conns "$body" "$path\\.?" /after 1)
    check "re-encryption: after bytes that follow a response of ${size/#0/a few} bytes, the next request gets an answer of its own on another connection (${body//$'\n'/; })" \
        other_conn "$conns"
    check "re-encryption: ... and the proxy closes the connection the bytes came on (conn ${conns% *})" \
        wait_for 3 grep -qx "conn ${conns% *} closed" "$TMP/torigin.log"
done
hdr=$(c -D - -o /dev/null -H 'Host: a.example.test' 'http://127.0.0.1/path/x?q=1&r=2')
check "port 80 redirects GET with 301 to https, host, path and query kept" \
    bash -c 'grep -q "^HTTP/1.1 301" <<<"$1" && grep -q "^Location: https://a.example.test/path/x?q=1&r=2" <<<"$1"' _ "$hdr"
check "port 80 answers POST with 308" grep -q "^HTTP/1.1 308" <<<"$(c -D - -o /dev/null -d x=1 http://127.0.0.1/f)"

# ---- compression ----
K=(-k --resolve a.example.test:443:127.0.0.1)
U=https://a.example.test
body() { c "${K[@]}" -H "Accept-Encoding: $1" "$U/$2" -o "$TMP/z.out" -D "$TMP/z.hdr"; }
decode() {
    case $1 in
    gzip) gunzip -c "$TMP/z.out" 2>/dev/null ;;
    zstd) zstd -dcq "$TMP/z.out" 2>/dev/null ;;
    br) in_ns curl -s -m 10 "${K[@]}" --compressed -H 'Accept-Encoding: br' "$U/$2" ;;
    esac
}
for enc in gzip br zstd; do
    allok=1
    for size in 0 1 1000 100000 10485760; do
        want=$(c "http://127.0.0.11:8080/?size=$size&chunked=1&h=Content-Type:text/plain" | md5sum)
        body "$enc" "?size=$size&chunked=1&h=Content-Type:text/plain"
        got=$(decode "$enc" "?size=$size&chunked=1&h=Content-Type:text/plain" | md5sum)
        if [ "$got" != "$want" ]; then allok=0; echo "# $enc size $size differs"; fi
        if [ "$size" -ge 100000 ] && ! grep -qi "^content-encoding: $enc" "$TMP/z.hdr"; then
            allok=0; echo "# $enc size $size not compressed"; fi
    done
    check "$enc: bodies of 0 B .. 10 MiB decode to the original bytes" test $allok -eq 1
done
body gzip "?size=400000&h=Content-Type:text/html&h=ETag:%22v1%22&h=Vary:Accept-Language"
check "compressed (400 kB: streamed): Content-Length dropped, chunked, strong ETag weakened, Vary extended" \
    bash -c 'h=$1; ! grep -qi "^content-length" <<<"$h" && grep -qi "^transfer-encoding: chunked" <<<"$h" && grep -qi "^etag: W/\"v1\"" <<<"$h" && grep -qi "^vary: Accept-Language, Accept-Encoding" <<<"$h"' _ "$(cat "$TMP/z.hdr")"
body gzip "?size=20000&h=Content-Type:text/plain"
check "a body of known length in one piece is compressed whole, with Content-Length" \
    bash -c 'grep -qi "^content-length" "$1" && grep -qi "^content-encoding: gzip" "$1"' _ "$TMP/z.hdr"
body gzip "?size=200000&h=Content-Type:text/plain&body_delay_ms=50"
check "a 200 kB body of known length (more than a read buffer) is gathered and compressed whole" \
    bash -c 'grep -qi "^content-length" "$1" && grep -qi "^content-encoding: gzip" "$1" &&
             [ "$(gunzip -c "$2" | md5sum)" = "$3" ]' _ "$TMP/z.hdr" "$TMP/z.out" \
    "$(c "http://127.0.0.11:8080/?size=200000&h=Content-Type:text/plain" | md5sum)"
not_compressed() {  # not_compressed DESC CURL-ARGS...: no Content-Encoding added
    local d=$1; shift
    c "${K[@]}" -D "$TMP/n.hdr" -o /dev/null "$@"
    check "not compressed: $d" bash -c '! grep -qi "^content-encoding: \(gzip\|br\|zstd\)" "$1"' _ "$TMP/n.hdr"
}
not_compressed "HEAD" -I -H 'Accept-Encoding: gzip' "$U/?size=5000&h=Content-Type:text/plain"
not_compressed "204" -H 'Accept-Encoding: gzip' "$U/?status=204"
not_compressed "a Range request" -H 'Accept-Encoding: gzip' -H 'Range: bytes=0-10' "$U/?size=5000&h=Content-Type:text/plain"
not_compressed "a type not listed" -H 'Accept-Encoding: gzip' "$U/?size=5000&h=Content-Type:image/png"
not_compressed "below min_size" -H 'Accept-Encoding: gzip' "$U/?size=500&h=Content-Type:text/plain"
not_compressed "Cache-Control: no-transform" -H 'Accept-Encoding: gzip' "$U/?size=5000&h=Content-Type:text/plain&h=Cache-Control:no-transform"
not_compressed "gzip;q=0" -H 'Accept-Encoding: gzip;q=0, identity' "$U/?size=5000&h=Content-Type:text/plain"
not_compressed "no Accept-Encoding" "$U/?size=5000&h=Content-Type:text/plain"
c "${K[@]}" -D "$TMP/n.hdr" -o /dev/null -H 'Accept-Encoding: gzip' "$U/?size=5000&h=Content-Type:text/plain&h=Content-Encoding:gzip"
check "not compressed again: a response that has Content-Encoding keeps it alone" \
    test "$(grep -ci '^content-encoding' "$TMP/n.hdr")" -eq 1
c "${K[@]}" -D "$TMP/n.hdr" -o /dev/null -H 'Accept-Encoding: gzip;q=0.5, br;q=0.9' "$U/?size=5000&h=Content-Type:text/plain"
check "q-values: br;q=0.9 wins over gzip;q=0.5" grep -qi "^content-encoding: br" "$TMP/n.hdr"
rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/${PID[proxy]}/status"; }
before=$(rss_kb)
n=$(c "${K[@]}" -H 'Accept-Encoding: gzip' "$U/?size=104857600&chunked=1&h=Content-Type:text/plain" | gunzip -c | wc -c)
after=$(rss_kb)
check "100 MiB streamed and gzipped: all bytes, proxy RSS grew by less than 16 MiB ($before -> $after KiB)" \
    bash -c '[ "$1" -eq 104857600 ] && [ $(($3 - $2)) -lt 16384 ]' _ "$n" "$before" "$after"

# ---- cache ----
count() { c http://127.0.0.11:8080/count; }
cc="h=Cache-Control:max-age%3D600&h=Content-Type:text/plain&size=2000"
c "${K[@]}" -o /dev/null "$U/cached?$cc"
n0=$(count)
hdr=$(c "${K[@]}" -D - -o "$TMP/hit.out" "$U/cached?$cc")
check "cache: a hit is served without reaching the real, with an Age header" \
    bash -c '[ "$1" = "$2" ] && grep -qi "^age: " <<<"$3"' _ "$n0" "$(count)" "$hdr"
check "cache: the hit's body is the real's" test "$(md5sum <"$TMP/hit.out")" = "$(c "http://127.0.0.11:8080/cached?$cc" | md5sum)"
n0=$(count)
c "${K[@]}" -o /dev/null -H 'Cache-Control: no-cache' "$U/cached?$cc"
check "cache: request no-cache goes to the real" test "$(count)" -eq $((n0 + 1))
etag=$(c "${K[@]}" -o /dev/null -D - "$U/etagged?h=Cache-Control:max-age%3D600&h=ETag:%22e1%22&size=10" | sed -n 's/^[Ee][Tt]ag: \([^\r]*\).*/\1/p')
code=$(c "${K[@]}" -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$U/etagged?h=Cache-Control:max-age%3D600&h=ETag:%22e1%22&size=10")
check "cache: If-None-Match on a fresh entry gets 304" test "$code" = 304
for what in "no-store:h=Cache-Control:no-store" "Set-Cookie:h=Cache-Control:max-age%3D600&setcookie=s=1" \
            "no freshness:h=Content-Type:text/plain" "private:h=Cache-Control:private,max-age%3D600"; do
    q=${what#*:}
    c "${K[@]}" -o /dev/null "$U/never?$q"
    n0=$(count)
    c "${K[@]}" -o /dev/null "$U/never?$q"
    check "cache: not stored: ${what%%:*}" test "$(count)" -eq $((n0 + 1))
done
n0=$(count)
c "${K[@]}" -o /dev/null "$U/short?h=Cache-Control:max-age%3D1"
c "${K[@]}" -o /dev/null "$U/short?h=Cache-Control:max-age%3D1"
sleep 2.1
c "${K[@]}" -o /dev/null "$U/short?h=Cache-Control:max-age%3D1"
check "cache: max-age=1 expires (3 requests, 2 reach the real)" test "$(count)" -eq $((n0 + 2))
gz="h=Cache-Control:max-age%3D600&h=Content-Type:text/plain&size=50000"
c "${K[@]}" -o /dev/null -H 'Accept-Encoding: gzip' "$U/gz?$gz"
n0=$(count)
c "${K[@]}" -o "$TMP/gz.out" -D "$TMP/gz.hdr" -H 'Accept-Encoding: gzip' "$U/gz?$gz"
check "cache: the gzip variant is served from the cache, compressed" \
    bash -c '[ "$1" = "$2" ] && grep -qi "^content-encoding: gzip" "$3" && [ "$(gunzip -c "$4" | wc -c)" -eq 50000 ]' _ "$n0" "$(count)" "$TMP/gz.hdr" "$TMP/gz.out"
c "${K[@]}" -o /dev/null -D "$TMP/id.hdr" "$U/gz?$gz"
check "cache: a client without gzip gets its own (identity) variant" \
    bash -c '! grep -qi "^content-encoding" "$1" && [ "$3" -eq $(( $2 + 1 )) ]' _ "$TMP/id.hdr" "$n0" "$(count)"
n0=$(count)
for w in 1 2 3 4; do
    ( for ((i = 0; i < 50; i++)); do c "${K[@]}" -o /dev/null -w '%{http_code}\n' "$U/cached?$cc"; done >"$TMP/par$w" ) &
done
wait $(jobs -p | grep -v -E "^($(IFS='|'; echo "${PID[*]}"))$") 2>/dev/null
check "cache: 200 hits from four parallel clients, all 200, none reached the real" \
    bash -c '[ "$(cat "$1"/par* | grep -c "^200$")" -eq 200 ] && [ "$2" = "$3" ]' _ "$TMP" "$n0" "$(count)"
ctl() { in_ns timeout 15 "$XLBCTL" "$@" --api 127.0.0.1:9121 --token-file "$TMP/api.token"; }
wait_for 10 test -e "$TMP/api.token"
ctl cache purge shop /cached?"$cc" >/dev/null
check "xlbctl cache purge reaches the proxy" wait_for 3 grep -q "cache of shop: /cached" "$TMP/proxy.log"
n0=$(count)
c "${K[@]}" -o /dev/null "$U/cached?$cc"
check "cache: after the purge the URL goes to the real again" test "$(count)" -eq $((n0 + 1))
ctl cache flush shop >/dev/null
check "xlbctl cache flush reaches the proxy" wait_for 3 grep -q "cache of shop flushed" "$TMP/proxy.log"
n0=$(count)
c "${K[@]}" -o /dev/null -H 'Accept-Encoding: gzip' "$U/gz?$gz"
check "cache: after the flush every entry is gone" test "$(count)" -eq $((n0 + 1))
c http://127.0.0.1:9122/metrics >"$TMP/m.txt"
check "cache and TLS metrics pass promtool" promtool check metrics <"$TMP/m.txt"
check "cache hits counted" test "$(sed -n 's/^xlb_proxy_cache_lookups_total{vs="shop",result="hit"} //p' "$TMP/m.txt")" -ge 200

stop proxy
check "the proxy stops on SIGTERM with status 0" test $? -eq 0
finish
