#!/usr/bin/env bash
# xlb-proxy takes real-server states and weights from xlb-agent (the pinned
# xlb_l7_reals map), with no health checks of its own: drain keeps the
# persistent clients of a real and gives it no new ones, halt moves them
# (cookie rewritten), weight 0 takes no new clients, a real whose check
# fails is left out before any request fails on it, enable brings it back.
#
# One network namespace with only its loopback; agent (no XDP interface)
# and proxy share one config file; three xlbt-backend reals on 127.0.0.11-13.
# The proxy's passive check is set out of reach (fail_after 1000) so every
# state change seen here comes from the agent.
set -uo pipefail

NS_TAG=pa
# shellcheck source=tests/integration/px_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/px_lib.sh"
px_setup "$PROXY" "$AGENT" "$XLBCTL" "$BACKEND"
ctl() { in_ns timeout 15 "$XLBCTL" "$@" --api 127.0.0.1:9121 --token-file "$TMP/api.token"; }
metric() { c http://127.0.0.1:9122/metrics | sed -n "s/^$1 //p"; }

for i in 1 2 3; do
    bg "a$i" "$BACKEND" --name "a$i" --listen "127.0.0.1$i:8080"
done
cat >"$TMP/xlb.yaml" <<EOF
node:
  bpffs: $BPFFS
  metrics: {listen: "127.0.0.1:9120"}
  api: {listen: "127.0.0.1:9121", token_file: $TMP/api.token}
proxy:
  workers: 2
  metrics: {listen: "127.0.0.1:9122"}
  access_log: off
  cookie_key_file: $TMP/cookie.key
  upstream: {fail_after: 1000}
services:
  - name: web
    address: 127.0.0.1
    ports: [8000]
    layer: 7
    scheduler: rr
    persistence: {type: active-cookie, timeout: 10m}
    health_check: {type: http, path: /, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}
    reals:
      - {name: a1, address: 127.0.0.11, port: 8080}
      - {name: a2, address: 127.0.0.12, port: 8080}
      - {name: a3, address: 127.0.0.13, port: 8080}
EOF
bg agent "$AGENT" --config "$TMP/xlb.yaml"
bg proxy "$PROXY" --config "$TMP/xlb.yaml"
state_is() { [ "$(metric "xlb_proxy_real_state{vs=\"web\",rs=\"$1\",state=\"$2\"}")" = 1 ]; }
all_up() { state_is a1 up && state_is a2 up && state_is a3 up && [ -e "$BPFFS/xlb_l7_reals" ]; }
if wait_for 15 all_up; then ok "agent and proxy started; the proxy reads three reals up from the agent"
else not_ok "agent and proxy started"; cat "$TMP/agent.log" "$TMP/proxy.log"; finish; fi
check "the proxy found the agent's map" wait_for 3 grep -q "reading real states from $BPFFS/xlb_l7_reals" "$TMP/proxy.log"

# new_clients N: the reals N clients without cookies land on.
new_clients() { local i; for ((i = 0; i < $1; i++)); do who http://127.0.0.1:8000/; done | sort | uniq -c; }
check "new clients spread over a1 a2 a3" test "$(new_clients 30 | wc -l)" -eq 3

# A client persisted on a2.
rm -f "$TMP/jar"
for ((i = 0; i < 10; i++)); do
    rm -f "$TMP/jar"
    [ "$(who -c "$TMP/jar" http://127.0.0.1:8000/)" = a2 ] && break
done
check "a cookie client on a2" test "$(who -b "$TMP/jar" http://127.0.0.1:8000/)" = a2

ctl drain web a2 >/dev/null
check "xlbctl drain: the proxy sees a2 drained" wait_for 3 state_is a2 drain
check "drain: no new client goes to a2" bash -c '! grep -q a2 <<<"$1"' _ "$(new_clients 30)"
check "drain: the persistent client stays on a2" test "$(who -b "$TMP/jar" http://127.0.0.1:8000/)" = a2

ctl halt web a2 >/dev/null
check "xlbctl halt: the proxy sees a2 halted" wait_for 3 state_is a2 halt
hdr=$(c -D - -o /dev/null -b "$TMP/jar" -c "$TMP/jar" http://127.0.0.1:8000/)
now=$(sed -n 's/^X-Backend: \([^\r]*\).*/\1/p' <<<"$hdr")
check "halt: the persistent client moves ($now) with a new cookie" \
    bash -c '[ -n "$1" ] && [ "$1" != a2 ] && grep -qi "^set-cookie: XLBID" <<<"$2"' _ "$now" "$hdr"
check "halt: and stays on its new real" test "$(who -b "$TMP/jar" http://127.0.0.1:8000/)" = "$now"

ctl enable web a2 >/dev/null
check "xlbctl enable: a2 up again" wait_for 3 state_is a2 up
check "enable: new clients reach a2 again" grep -q a2 <<<"$(new_clients 30)"

ctl weight web a1 0 >/dev/null
check "weight 0 reaches the proxy" wait_for 3 bash -c '[ "$(nsenter --net=/run/netns/'"$NS"' -- curl -s http://127.0.0.1:9122/metrics | sed -n "s/^xlb_proxy_real_weight{vs=\"web\",rs=\"a1\"} //p")" = 0 ]'
check "weight 0: no new client goes to a1" bash -c '! grep -q a1 <<<"$1"' _ "$(new_clients 30)"
ctl weight web a1 100 >/dev/null

# A real whose check fails: the agent marks it down, the proxy leaves it out.
stop a3
check "backend a3 stopped: the agent's down state reaches the proxy" wait_for 5 state_is a3 down
errs=$(metric 'xlb_proxy_real_upstream_errors_total{vs="web",rs="a3"}')
codes=$(for ((i = 0; i < 30; i++)); do c -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8000/; done | sort -u | tr '\n' ' ')
check "30 requests after that all answered 200 ($codes)" test "$codes" = "200 "
check "and none was tried on a3 (upstream errors stay at $errs)" \
    test "$(metric 'xlb_proxy_real_upstream_errors_total{vs="web",rs="a3"}')" = "$errs"
check "no request was answered by a3" bash -c '! grep -q a3 <<<"$1"' _ "$(new_clients 20)"

stop proxy
check "the proxy stops on SIGTERM with status 0" test $? -eq 0
finish
