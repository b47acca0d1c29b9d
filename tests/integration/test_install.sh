#!/usr/bin/env bash
# 'make install' into a temporary DESTDIR: every file with its mode, the
# installed programs, the example configs, the manual pages, the systemd
# units (systemd-analyze verify, and the agent and the proxy run with only
# their unit's capabilities in a network namespace), and a second install
# over an edited xlb.yaml.  Removes everything it creates.
#
# The build directory is the one of $XLBCTL (scripts/check.sh passes
# XLBCTL=BUILD/xlbctl); it must be built already ('make all').
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
XLBCTL=$(realpath -m "${XLBCTL:-build/xlbctl}")
BUILD=$(dirname "$XLBCTL")
PREFIX=/usr/local
TMP=$(mktemp -d /tmp/xlbt-install.XXXXXX) || exit 1
DEST=$TMP/root
MAN=$DEST$PREFIX/share/man
UNIT=$DEST$PREFIX/lib/systemd/system/xlb-agent.service
PUNIT=$DEST$PREFIX/lib/systemd/system/xlb-proxy.service
AGENT=$DEST$PREFIX/sbin/xlb-agent
PROXY=$DEST$PREFIX/sbin/xlb-proxy
CTL=$DEST$PREFIX/sbin/xlbctl
NS=xlbt$$inst
BPFFS=/sys/fs/bpf/$NS
agent_pid=
proxy_pid=
# shellcheck source=tests/integration/bpffs.sh
source "$(dirname "${BASH_SOURCE[0]}")/bpffs.sh"
# libxdp's own state of this test goes here, not into the shared /sys/fs/bpf/xdp.
export LIBXDP_BPFFS=$BPFFS-libxdp
pass=0
fail=0

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    if [ -n "$proxy_pid" ]; then
        kill -KILL "$proxy_pid" 2>/dev/null
        wait "$proxy_pid" 2>/dev/null
    fi
    if [ -n "$agent_pid" ]; then
        kill -KILL "$agent_pid" 2>/dev/null
        wait "$agent_pid" 2>/dev/null
    fi
    if [ -e "/run/netns/$NS" ]; then
        nsenter --net="/run/netns/$NS" -- "$XLBCTL" unload --iface xlbt0 --bpffs "$BPFFS" \
            >/dev/null 2>&1
        ip netns del "$NS" 2>/dev/null
    fi
    rm -rf "$BPFFS" "$LIBXDP_BPFFS" 2>/dev/null
    xlbt_bpffs_release
    rm -rf -- "$TMP"
}

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

trap cleanup EXIT
trap 'not_ok "interrupted"; echo "$pass passed, $fail failed"; exit 130' INT TERM

# check DESCRIPTION CMD...: the command's success, its output shown on failure
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$what"
    else
        not_ok "$what (exit $?: $(head -c 600 <<<"$out"))"
    fi
}

# A tool the test needs, from a Debian package that scripts/deps.sh must list.
have() {
    if command -v "$1" >/dev/null; then
        return 0
    fi
    not_ok "$1 is not installed: add the Debian package $2 to scripts/deps.sh"
    return 1
}

# Plain text of a manual page, one very long line per paragraph.
render() { groff -man -Tascii -P-cbou -rLL=2000n "$1" 2>/dev/null; }

# Missing words: every word of the list $2... that the text $1 lacks.
missing_words() {
    local text=$1 w out=
    shift
    for w in "$@"; do
        grep -qF -- "$w" <<<"$text" || out+=" $w"
    done
    printf '%s' "$out"
}

do_install() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$ROOT" --no-print-directory install \
        DESTDIR="$DEST" PREFIX="$PREFIX" BUILD="$BUILD"
}

# ---- the install itself ----
if ! out=$(do_install 2>&1); then
    not_ok "make install DESTDIR=... PREFIX=$PREFIX BUILD=$BUILD ($(tail -n 15 <<<"$out"))"
    finish
fi
ok "make install DESTDIR=... PREFIX=$PREFIX"

# ---- every file, its mode, and nothing else ----
expected=(
    "755 $PREFIX/sbin/xlb-agent"
    "755 $PREFIX/sbin/xlb-proxy"
    "755 $PREFIX/sbin/xlbctl"
    "644 $PREFIX/lib/xlb/xlb.bpf.o"
    "644 $PREFIX/lib/xlb/decap.bpf.o"
    "644 $PREFIX/share/man/man8/xlb-agent.8"
    "644 $PREFIX/share/man/man8/xlb-proxy.8"
    "644 $PREFIX/share/man/man8/xlbctl.8"
    "644 $PREFIX/share/man/man5/xlb.yaml.5"
    "644 $PREFIX/lib/systemd/system/xlb-agent.service"
    "644 $PREFIX/lib/systemd/system/xlb-proxy.service"
    "644 $PREFIX/share/doc/xlb/README.md"
    "644 /etc/xlb/xlb.yaml.example"
)
for d in "$ROOT"/docs/*.md; do
    expected+=("644 $PREFIX/share/doc/xlb/docs/$(basename "$d")")
done
for e in "${expected[@]}"; do
    mode=${e%% *} path=${e#* }
    got=$(stat -c %a "$DEST$path" 2>/dev/null)
    if [ -f "$DEST$path" ] && [ "$got" = "$mode" ]; then
        ok "installed $path mode $mode"
    else
        not_ok "installed $path mode $mode (found: ${got:-nothing})"
    fi
done
got=$(stat -c %a "$DEST/etc/xlb" 2>/dev/null)
if [ "$got" = 755 ]; then ok "directory /etc/xlb mode 755"; else not_ok "directory /etc/xlb mode 755 (found: ${got:-nothing})"; fi

extra=$(cd "$DEST" && find . -type f -printf '/%P\n' | sort |
        comm -23 - <(printf '%s\n' "${expected[@]#* }" | sort) | tr '\n' ' ')
if [ -z "$extra" ]; then
    ok "nothing else installed (no xlb.yaml, no bench object)"
else
    not_ok "nothing else installed (found: $extra)"
fi

same=1
for p in "$BUILD/xlb-agent:$PREFIX/sbin/xlb-agent" "$BUILD/xlbctl:$PREFIX/sbin/xlbctl" \
         "$BUILD/xlb-proxy:$PREFIX/sbin/xlb-proxy" \
         "$ROOT/man/xlb-proxy.8:$PREFIX/share/man/man8/xlb-proxy.8" \
         "$BUILD/bpf/xlb.bpf.o:$PREFIX/lib/xlb/xlb.bpf.o" \
         "$BUILD/bpf/decap.bpf.o:$PREFIX/lib/xlb/decap.bpf.o" \
         "$ROOT/etc/xlb.yaml:/etc/xlb/xlb.yaml.example" \
         "$ROOT/man/xlb.yaml.5:$PREFIX/share/man/man5/xlb.yaml.5" \
         "$ROOT/README.md:$PREFIX/share/doc/xlb/README.md"; do
    cmp -s "${p%%:*}" "$DEST${p#*:}" || { same=0; not_ok "${p#*:} is a copy of ${p%%:*}"; }
done
[ "$same" -eq 1 ] && ok "installed files are copies of the build and source files"

if have readelf binutils; then
    bad=
    for o in xlb decap; do
        grep -q 'Machine:.*BPF' <<<"$(readelf -h "$DEST$PREFIX/lib/xlb/$o.bpf.o" 2>/dev/null)" ||
            bad+=" $o.bpf.o"
    done
    if [ -z "$bad" ]; then ok "the installed objects are BPF ELF files"; else not_ok "not BPF ELF:$bad"; fi
fi

# ---- the installed programs ----
out=$("$AGENT" --help 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q '^usage: xlb-agent --config FILE' <<<"$out"; then
    ok "installed xlb-agent --help"
else
    not_ok "installed xlb-agent --help (exit $rc: $(head -c 300 <<<"$out"))"
fi
out=$("$CTL" --help 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q '^usage: xlbctl COMMAND' <<<"$out"; then
    ok "installed xlbctl --help"
else
    not_ok "installed xlbctl --help (exit $rc: $(head -c 300 <<<"$out"))"
fi
out=$("$PROXY" --help 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q '^usage: xlb-proxy --config FILE' <<<"$out"; then
    ok "installed xlb-proxy --help"
else
    not_ok "installed xlb-proxy --help (exit $rc: $(head -c 300 <<<"$out"))"
fi
check "xlb-agent --check accepts the installed xlb.yaml.example" \
    "$AGENT" --check "$DEST/etc/xlb/xlb.yaml.example"
out=$("$PROXY" --check "$DEST/etc/xlb/xlb.yaml.example" 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q 'valid, [1-9][0-9]* layer-7 service(s)' <<<"$out"; then
    ok "xlb-proxy --check accepts the installed xlb.yaml.example"
else
    not_ok "xlb-proxy --check accepts the installed xlb.yaml.example (exit $rc: $(head -c 600 <<<"$out"))"
fi

# ---- manual pages ----
pages=("$MAN/man8/xlb-agent.8" "$MAN/man8/xlb-proxy.8" "$MAN/man8/xlbctl.8" "$MAN/man5/xlb.yaml.5")
if have groff groff-base; then
    for p in "${pages[@]}"; do
        out=$(groff -man -ww -z "$p" 2>&1); rc=$?
        if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
            ok "groff -man -ww: $(basename "$p") without warnings"
        else
            not_ok "groff -man -ww: $(basename "$p") without warnings (exit $rc: $(head -c 600 <<<"$out"))"
        fi
    done

    # Every option and command of --help is in the page.
    help_opts() { "$1" --help 2>&1 | grep -oE -- '--[a-z0-9-]+' | sort -u; }
    mapfile -t words < <(help_opts "$AGENT")
    miss=$(missing_words "$(render "$MAN/man8/xlb-agent.8")" "${words[@]}")
    if [ -z "$miss" ]; then ok "xlb-agent(8) has every option of --help"; else not_ok "xlb-agent(8) lacks:$miss"; fi
    mapfile -t words < <(help_opts "$PROXY")
    miss=$(missing_words "$(render "$MAN/man8/xlb-proxy.8")" "${words[@]}" SIGTERM SIGUSR1)
    if [ -z "$miss" ]; then ok "xlb-proxy(8) has every option of --help"; else not_ok "xlb-proxy(8) lacks:$miss"; fi
    mapfile -t words < <(help_opts "$CTL"; "$CTL" --help | grep -E '^  [a-z]+' |
                         sed -E 's/^  ([a-z]+( (add|del|attach|detach))?).*/xlbctl \1/')
    miss=$(missing_words "$(render "$MAN/man8/xlbctl.8")" "${words[@]}" XLB_API XLB_TOKEN_FILE)
    if [ -z "$miss" ]; then ok "xlbctl(8) has every option and command of --help"; else not_ok "xlbctl(8) lacks:$miss"; fi

    # Every key of docs/config.md is in xlb.yaml(5): the first column of its
    # tables and the members of {a, b} mappings.
    # shellcheck disable=SC2016  # backquotes of Markdown, not expansions
    mapfile -t words < <({ grep -oE '^\| `[a-z_0-9]+`' "$ROOT/docs/config.md" | sed 's/^| `//; s/`$//'
                           grep -oE '`\{[^}]*\}`' "$ROOT/docs/config.md" | tr -d '`{}' | tr ',' '\n' |
                               sed 's/^ *//' | grep -xE '[a-z_0-9]+'; } | sort -u)
    text=$(render "$MAN/man5/xlb.yaml.5")
    miss=
    for w in "${words[@]}"; do grep -qw -- "$w" <<<"$text" || miss+=" $w"; done
    if [ "${#words[@]}" -gt 50 ] && [ -z "$miss" ]; then
        ok "xlb.yaml(5) has every key of docs/config.md (${#words[@]})"
    else
        not_ok "xlb.yaml(5) has every key of docs/config.md (${#words[@]} keys; lacks:$miss)"
    fi

    # The example in xlb.yaml(5) is a valid configuration.
    render "$MAN/man5/xlb.yaml.5" | sed -n '/^EXAMPLE$/,/^FILES$/p' | sed -n '/^ *node:$/,/^$/p' |
        sed 's/^       //' >"$TMP/man-example.yaml"
    if [ -s "$TMP/man-example.yaml" ]; then
        check "xlb-agent --check accepts the example of xlb.yaml(5)" \
            "$AGENT" --check "$TMP/man-example.yaml"
    else
        not_ok "xlb-agent --check accepts the example of xlb.yaml(5) (no example found)"
    fi
fi
if have man man-db; then
    for p in "${pages[@]}"; do
        out=$(LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat man --warnings -l "$p" 2>&1 >/dev/null); rc=$?
        if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
            ok "man --warnings -l: $(basename "$p") without warnings"
        else
            not_ok "man --warnings -l: $(basename "$p") without warnings (exit $rc: $(head -c 600 <<<"$out"))"
        fi
    done
    found=$(MANPATH=$MAN man -w xlb-agent xlb-proxy xlbctl xlb.yaml 2>&1 | tr '\n' ' ')
    if [ "$found" = "$MAN/man8/xlb-agent.8 $MAN/man8/xlb-proxy.8 $MAN/man8/xlbctl.8 $MAN/man5/xlb.yaml.5 " ]; then
        ok "man finds the four pages under MANDIR"
    else
        not_ok "man finds the four pages under MANDIR (got: $found)"
    fi
fi

# ---- the systemd unit ----
unit_val() { sed -n "s/^$1=//p" "$UNIT"; }
if [ "$(unit_val ExecStart)" = "$PREFIX/sbin/xlb-agent --config /etc/xlb/xlb.yaml" ] &&
   [ "$(unit_val ExecStartPre)" = "$PREFIX/sbin/xlb-agent --check /etc/xlb/xlb.yaml" ] &&
   [ -x "$DEST$PREFIX/sbin/xlb-agent" ] && ! grep -q @ "$UNIT"; then
    ok "the unit runs the installed agent on /etc/xlb/xlb.yaml, --check first"
else
    not_ok "the unit runs the installed agent on /etc/xlb/xlb.yaml, --check first ($(grep -E '^Exec|@' "$UNIT" | tr '\n' ' '))"
fi
want_settings=(
    "Type=simple" "ExecReload=/bin/kill -HUP \$MAINPID" "Restart=on-failure"
    "RequiresMountsFor=/sys/fs/bpf" "AssertPathIsMountPoint=/sys/fs/bpf"
    "CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN"
    "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN"
    "NoNewPrivileges=yes" "ProtectSystem=strict" "ReadWritePaths=/sys/fs/bpf /etc/xlb"
    "ProtectHome=yes" "PrivateTmp=yes" "LimitMEMLOCK=infinity" "WantedBy=multi-user.target"
)
miss=
for s in "${want_settings[@]}"; do grep -qxF -- "$s" "$UNIT" || miss+=" [$s]"; done
grep -qE '^RestartSec=[0-9]+' "$UNIT" || miss+=" [RestartSec=]"
if [ -z "$miss" ]; then ok "the unit has the documented settings"; else not_ok "the unit lacks:$miss"; fi

if have systemd-analyze systemd; then
    # verify resolves ExecStart= on this host: a copy of the unit whose
    # programs point into DESTDIR, with the installed pages on MANPATH for
    # its Documentation=.  (--root would also need /bin/kill and systemd's
    # own targets inside DESTDIR.)
    mkdir -p "$TMP/verify"
    sed "s|=$PREFIX/sbin/|=$DEST$PREFIX/sbin/|" "$UNIT" >"$TMP/verify/xlb-agent.service"
    out=$(MANPATH=$MAN systemd-analyze verify "$TMP/verify/xlb-agent.service" 2>&1); rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
        ok "systemd-analyze verify xlb-agent.service"
    else
        not_ok "systemd-analyze verify xlb-agent.service (exit $rc: $(head -c 600 <<<"$out"))"
    fi
fi

# ---- the proxy's unit ----
punit_val() { sed -n "s/^$1=//p" "$PUNIT"; }
if [ "$(punit_val ExecStart)" = "$PREFIX/sbin/xlb-proxy --config /etc/xlb/xlb.yaml" ] &&
   [ "$(punit_val ExecStartPre)" = "$PREFIX/sbin/xlb-proxy --check /etc/xlb/xlb.yaml" ] &&
   ! grep -q @ "$PUNIT"; then
    ok "the proxy unit runs the installed proxy on /etc/xlb/xlb.yaml, --check first"
else
    not_ok "the proxy unit runs the installed proxy on /etc/xlb/xlb.yaml, --check first ($(grep -E '^Exec|@' "$PUNIT" | tr '\n' ' '))"
fi
want_settings=(
    "Type=simple" "Restart=on-failure" "Wants=network-online.target xlb-agent.service"
    "After=network-online.target xlb-agent.service"
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_BPF"
    "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_BPF"
    "NoNewPrivileges=yes" "ProtectSystem=strict" "ReadWritePaths=/etc/xlb" "LogsDirectory=xlb"
    "ProtectHome=yes" "PrivateTmp=yes" "WantedBy=multi-user.target"
)
miss=
for s in "${want_settings[@]}"; do grep -qxF -- "$s" "$PUNIT" || miss+=" [$s]"; done
grep -qE '^RestartSec=[0-9]+' "$PUNIT" || miss+=" [RestartSec=]"
grep -q '^ExecReload=' "$PUNIT" && miss+=" [no ExecReload=: the proxy has no reload]"
grep -qxF "Before=xlb-proxy.service" "$UNIT" || miss+=" [Before=xlb-proxy.service in xlb-agent.service]"
if [ -z "$miss" ]; then ok "the proxy unit has the documented settings"; else not_ok "the proxy unit lacks:$miss"; fi
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$TMP/verify"
    sed "s|=$PREFIX/sbin/|=$DEST$PREFIX/sbin/|" "$PUNIT" >"$TMP/verify/xlb-proxy.service"
    out=$(MANPATH=$MAN systemd-analyze verify "$TMP/verify/xlb-proxy.service" 2>&1); rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
        ok "systemd-analyze verify xlb-proxy.service"
    else
        not_ok "systemd-analyze verify xlb-proxy.service (exit $rc: $(head -c 600 <<<"$out"))"
    fi
fi

# ---- the agent with only the unit's capabilities ----
# Root keeps only CapabilityBoundingSet= (ambient capabilities add nothing
# for root): the installed agent must attach, start an icmp check, serve
# the API and, once stopped, leave the program attached.
caps=$(unit_val CapabilityBoundingSet | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
if [ "$(id -u)" -ne 0 ]; then
    not_ok "the agent under the unit's capabilities: must run as root (network namespace, XDP)"
elif ! have setpriv util-linux; then
    :
elif ! xlbt_bpffs_need || ! mkdir -p "$LIBXDP_BPFFS"; then
    not_ok "the agent under the unit's capabilities: ${XLBT_BPFFS_ERROR:-cannot create $LIBXDP_BPFFS}"
elif ! ip netns add "$NS" || ! ip -n "$NS" link set lo up ||
     ! ip -n "$NS" link add xlbt0 type veth peer name xlbt1 ||
     ! ip -n "$NS" link set xlbt0 up || ! ip -n "$NS" link set xlbt1 up; then
    not_ok "cannot create network namespace $NS"
else
    cat >"$TMP/agent.yaml" <<EOF
node:
  interfaces: [xlbt0]
  xdp_mode: generic
  bpffs: $BPFFS
  metrics: {enabled: false}
  api: {listen: "127.0.0.1:9121", token_file: $TMP/api.token}
services:
  - name: web
    address: 198.18.10.10
    ports: [80]
    health_check: {type: icmp, interval: 1s, timeout: 200ms}
    reals:
      - {name: rs1, address: 198.18.0.11}
EOF
    nsenter --net="/run/netns/$NS" -- setpriv --bounding-set="-all,$caps" --inh-caps=-all \
        "$AGENT" --config "$TMP/agent.yaml" >"$TMP/agent.log" 2>&1 &
    agent_pid=$!
    for _ in $(seq 50); do
        grep -q 'running 1 layer-4 services' "$TMP/agent.log" && break
        kill -0 "$agent_pid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q 'balancer attached to xlbt0' "$TMP/agent.log" &&
       grep -q 'running 1 layer-4 services' "$TMP/agent.log" &&
       ! grep -qi 'cannot start the icmp check\|not permitted' "$TMP/agent.log"; then
        ok "the agent attaches and starts its checks with only $caps"
    else
        not_ok "the agent attaches and starts its checks with only $caps ($(head -c 600 "$TMP/agent.log"))"
    fi
    out=$(nsenter --net="/run/netns/$NS" -- "$CTL" list --api 127.0.0.1:9121 \
          --token-file "$TMP/api.token" 2>&1)
    if grep -q '198.18.10.10:80 .* web' <<<"$out"; then
        ok "the installed xlbctl lists the service through the agent's API"
    else
        not_ok "the installed xlbctl lists the service through the agent's API ($(head -c 300 <<<"$out"))"
    fi
    kill -TERM "$agent_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$agent_pid" 2>/dev/null; then
        not_ok "the agent stops on SIGTERM within 5 s"
    else
        wait "$agent_pid"; rc=$?
        agent_pid=
        if [ "$rc" -eq 0 ]; then ok "the agent exits 0 on SIGTERM"; else not_ok "the agent exits 0 on SIGTERM (exit $rc)"; fi
    fi
    if grep -q 'prog/xdp' <<<"$(ip -n "$NS" -d link show xlbt0)"; then
        ok "stopping the agent leaves XDP attached"
    else
        not_ok "stopping the agent leaves XDP attached"
    fi

    # The proxy with only its unit's capabilities: port 80 (below 1024) and
    # the xlb_l7_reals pin that the stopped agent left behind.
    pcaps=$(punit_val CapabilityBoundingSet | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
    cat >"$TMP/proxy.yaml" <<EOF
node:
  bpffs: $BPFFS
proxy:
  workers: 1
  metrics: {enabled: false}
  access_log: "off"
  cookie_key_file: $TMP/cookie.key
services:
  - name: web7
    address: 127.0.0.1
    ports: [80]
    layer: 7
    reals:
      - {name: refuses, address: 127.0.0.1, port: 1}
EOF
    nsenter --net="/run/netns/$NS" -- setpriv --bounding-set="-all,$pcaps" --inh-caps=-all \
        "$PROXY" --config "$TMP/proxy.yaml" >"$TMP/proxy.log" 2>&1 &
    proxy_pid=$!
    for _ in $(seq 50); do
        grep -q 'serving 1 layer-7 service(s)' "$TMP/proxy.log" && break
        kill -0 "$proxy_pid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q 'serving 1 layer-7 service(s) on 1 port(s)' "$TMP/proxy.log" &&
       grep -qF "reading real states from $BPFFS/xlb_l7_reals" "$TMP/proxy.log"; then
        ok "the proxy listens on port 80 and reads the agent's pin with only $pcaps"
    else
        not_ok "the proxy listens on port 80 and reads the agent's pin with only $pcaps ($(head -c 600 "$TMP/proxy.log"))"
    fi
    # shellcheck disable=SC2016  # expanded by the inner shell
    out=$(nsenter --net="/run/netns/$NS" -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 &&
          printf "GET / HTTP/1.1\r\nHost: x\r\n\r\n" >&3 && timeout 3 head -n 1 <&3' 2>&1)
    if grep -q '^HTTP/1.1 502' <<<"$out"; then
        ok "the proxy answers on port 80 (502: its only real refuses)"
    else
        not_ok "the proxy answers on port 80 (502: its only real refuses) (got: $(head -c 300 <<<"$out"))"
    fi
    kill -TERM "$proxy_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$proxy_pid" 2>/dev/null; then
        not_ok "the proxy stops on SIGTERM within 5 s"
    else
        wait "$proxy_pid"; rc=$?
        proxy_pid=
        if [ "$rc" -eq 0 ]; then ok "the proxy exits 0 on SIGTERM"; else not_ok "the proxy exits 0 on SIGTERM (exit $rc)"; fi
    fi
fi

# ---- a second install keeps an edited xlb.yaml ----
{ cat "$DEST/etc/xlb/xlb.yaml.example"; echo "# edited by the operator"; } >"$DEST/etc/xlb/xlb.yaml"
cp "$DEST/etc/xlb/xlb.yaml" "$TMP/xlb.yaml.saved"
echo "# stale" >>"$DEST/etc/xlb/xlb.yaml.example"
if ! out=$(do_install 2>&1); then
    not_ok "second make install ($(tail -n 15 <<<"$out"))"
elif cmp -s "$DEST/etc/xlb/xlb.yaml" "$TMP/xlb.yaml.saved" &&
     cmp -s "$DEST/etc/xlb/xlb.yaml.example" "$ROOT/etc/xlb.yaml"; then
    ok "a second install keeps the edited xlb.yaml and refreshes xlb.yaml.example"
else
    not_ok "a second install keeps the edited xlb.yaml and refreshes xlb.yaml.example"
fi

finish
