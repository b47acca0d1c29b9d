# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source this file
#
# Namespace topology for xlb integration tests and the demo.
#
#             switch namespace: bridge xlbt-br
#        +-----------+-----------+-----------+---- ...
#     client         lb         rs1         rs2         (one namespace each,
#   198.18.0.2   198.18.0.1  198.18.0.11  198.18.0.12    joined to the bridge
#   fd00:18::2   fd00:18::1  fd00:18::11  fd00:18::12    by a veth pair)
#
#   VIPs 198.18.10.10 and fd00:10::10: the client routes them via the LB;
#   every real holds them on lo. The real's reply goes straight to the client.
#
# Every name starts with $XLBT_PREFIX (default "xlbt<PID>"): namespaces are
# "$XLBT_PREFIX-<role>", pinned BPF objects live under
# /sys/fs/bpf/$XLBT_PREFIX/<role>. Inside a host namespace the interface is
# "xlbt0"; in the switch namespace the ports are "xlbt-<role>" and the bridge
# "xlbt-br". No interface is ever created in the caller's namespace.
#
# Use:
#   source tests/integration/lib.sh
#   xlbt_preflight || exit 2      # root, tools, binaries, bpffs
#   xlbt_install_traps            # topo_down on EXIT, INT, TERM, HUP
#   topo_up 3
#   rs_decap_attach 1; rs_start_namesrv 1; ...
#   lb_load; xlbctl_in lb service add ...
#   in_ns client "$XLBT_CLIENT" --connect 198.18.10.10:80 --count 10
#   topo_down                     # idempotent
#
# Processes that need pinned maps run with nsenter --net (in_ns): "ip netns
# exec" remounts /sys and would hide /sys/fs/bpf.
#
# Binaries: XLBCTL, XLBT_NAMESRV, XLBT_CLIENT (defaults under build/ of the
# repository; relative paths are taken from the caller's working directory).
# XLBT_XDP_MODE (default native) is the --mode of load and decap attach.
# XLBT_PEER_NAPI (default xdp): how the switch-side veth peers are made to
# run NAPI, which they need to receive frames the LB sends with XDP_TX:
# "xdp" attaches a two-instruction XDP_PASS program (built with clang) and
# also turns GRO on; "gro" only turns GRO on (on some kernels, e.g. 6.18,
# that is not enough and XDP_TX frames are lost).
# XLBT_KEEP_LOGS=1 keeps the log directory after topo_down.

XLBT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XLBT_ROOT=$(cd "$XLBT_LIB_DIR/../.." && pwd)

# A prefix nobody uses yet: a concurrent run in another PID namespace may
# have the same PID.
if [[ -z ${XLBT_PREFIX:-} ]]; then
	XLBT_PREFIX=xlbt$$
	for ((_xlbt_try = 0; _xlbt_try < 20; _xlbt_try++)); do
		compgen -G "/run/netns/$XLBT_PREFIX-*" >/dev/null || compgen -G "/tmp/$XLBT_PREFIX.*" >/dev/null ||
			[[ -e /sys/fs/bpf/$XLBT_PREFIX ]] || break
		XLBT_PREFIX=xlbt$$r$RANDOM
	done
	unset _xlbt_try
fi
: "${XLBT_XDP_MODE:=native}"
: "${XLBT_PEER_NAPI:=xdp}"
: "${XLBT_GUE_PORT:=6080}"

# Addresses (all inside the namespaces this file creates).
XLBT_NET4_PREFIX=198.18.0
XLBT_NET6_PREFIX=fd00:18:
XLBT_LB4=198.18.0.1
XLBT_LB6=fd00:18::1
XLBT_CLIENT4=198.18.0.2
XLBT_CLIENT6=fd00:18::2
XLBT_VIP4=198.18.10.10
XLBT_VIP6=fd00:10::10
# Outer source addresses of encapsulated packets: a range nobody owns, with
# per-flow host bits. Reals decapsulate by outer destination only.
XLBT_TUNSRC4=198.18.1.0/24
XLBT_TUNSRC6=fd00:18:1::/112
# The client's route to the VIPs carries this MTU so that encapsulated
# packets (+20..40 bytes) still fit the 1500-byte segment.
XLBT_VIP_ROUTE_MTU=1400
XLBT_IFACE=xlbt0
XLBT_BRIDGE=xlbt-br

# shellcheck source=tests/integration/bpffs.sh
source "$(dirname "${BASH_SOURCE[0]}")/bpffs.sh"
XLBT_BPFFS_BASE=$XLBT_BPFFS_ROOT/$XLBT_PREFIX

# What this shell created (topo_down also finds things by the prefix).
XLBT_NETNS=()
XLBT_PIDS=()
XLBT_LOADED=()
XLBT_DECAP=()
XLBT_NREALS=0
XLBT_TMPDIR=
XLBT_INTERRUPTED=
XLBT_STDOUT=
XLBT_STDERR=

xlbt_log() { printf '# %s\n' "$*" >&2; }

# Indent a file's lines as diagnostics ("#   line"), at most $2 lines (default 40).
xlbt_log_file() {
	local f=$1 max=${2:-40}
	[[ -s $f ]] || return 0
	tail -n "$max" -- "$f" | sed 's/^/#   /' >&2
}

# ---------------------------------------------------------------------------
# Binaries and prerequisites

# Make a binary path absolute: "a/b" from the caller's cwd, "name" from PATH.
xlbt_abs_bin() {
	local p=$1
	if [[ $p != */* ]]; then
		command -v -- "$p" || printf '%s\n' "$p"
		return 0
	fi
	[[ $p == /* ]] || p=$PWD/$p
	realpath -ms -- "$p" 2>/dev/null || printf '%s\n' "$p"
}

XLBCTL=$(xlbt_abs_bin "${XLBCTL:-$XLBT_ROOT/build/xlbctl}")
XLBT_NAMESRV=$(xlbt_abs_bin "${XLBT_NAMESRV:-$XLBT_ROOT/build/tests/xlbt-namesrv}")
XLBT_CLIENT=$(xlbt_abs_bin "${XLBT_CLIENT:-$XLBT_ROOT/build/tests/xlbt-client}")

# The reason of the last failed preflight check.
XLBT_PREFLIGHT_ERROR=

xlbt_preflight_fail() {
	XLBT_PREFLIGHT_ERROR=$*
	return 1
}

# Check everything the topology needs. On failure, XLBT_PREFLIGHT_ERROR says
# what is missing. Mounts bpffs on /sys/fs/bpf if nothing is mounted there
# (the exit trap unmounts it again if it is left empty: bpffs.sh).
xlbt_preflight() {
	local c b
	[[ $EUID -eq 0 ]] || xlbt_preflight_fail "must run as root (network namespaces, XDP, bpffs)" || return 1
	local cmds=(ip nsenter ethtool timeout python3 stat)
	[[ $XLBT_PEER_NAPI == xdp ]] && cmds+=("${CLANG:-clang}")
	for c in "${cmds[@]}"; do
		command -v "$c" >/dev/null 2>&1 ||
			xlbt_preflight_fail "required command '$c' not found" || return 1
	done
	if [[ $XLBT_PEER_NAPI != xdp && $XLBT_PEER_NAPI != gro ]]; then
		xlbt_preflight_fail "XLBT_PEER_NAPI must be xdp or gro, not '$XLBT_PEER_NAPI'"
		return 1
	fi
	for b in "$XLBCTL" "$XLBT_NAMESRV" "$XLBT_CLIENT"; do
		[[ $b == /* && -x $b ]] ||
			xlbt_preflight_fail "binary $b is missing or not executable (run 'make' first, or set XLBCTL/XLBT_NAMESRV/XLBT_CLIENT)" ||
			return 1
	done
	if [[ ! -d /proc/sys/net/ipv6 ]]; then
		xlbt_preflight_fail "IPv6 is disabled in this kernel" || return 1
	fi
	xlbt_bpffs_need || xlbt_preflight_fail "$XLBT_BPFFS_ERROR" || return 1
	# The bpf() syscall itself: listing programs needs it and nothing else.
	if command -v bpftool >/dev/null 2>&1 && ! bpftool prog show >/dev/null 2>&1; then
		xlbt_preflight_fail "the bpf() syscall fails (bpftool prog show); BPF is unavailable here"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------
# Namespaces

# Namespace name of a role (sw, client, lb, rs1, ...).
xlbt_ns() { printf '%s-%s\n' "$XLBT_PREFIX" "$1"; }

# in_ns ROLE CMD...: run CMD in the network namespace of ROLE, keeping this
# mount namespace (so /sys/fs/bpf stays visible).
in_ns() {
	local role=$1
	shift
	nsenter --net="/run/netns/$(xlbt_ns "$role")" -- "$@"
}

# in_ns_bg ROLE LOGNAME CMD...: start CMD in the background inside ROLE,
# output to $XLBT_TMPDIR/LOGNAME.log; the PID goes to XLBT_LAST_PID and is
# stopped by topo_down.
XLBT_LAST_PID=
in_ns_bg() {
	local role=$1 log=$2
	shift 2
	if [[ -n $XLBT_STDOUT ]]; then
		nsenter --net="/run/netns/$(xlbt_ns "$role")" -- "$@" >"$XLBT_TMPDIR/$log.log" 2>&1 \
			{XLBT_STDOUT}>&- {XLBT_STDERR}>&- &
	else
		nsenter --net="/run/netns/$(xlbt_ns "$role")" -- "$@" >"$XLBT_TMPDIR/$log.log" 2>&1 &
	fi
	XLBT_LAST_PID=$!
	XLBT_PIDS+=("$XLBT_LAST_PID")
}

xlbt_sysctl() {
	local role=$1
	shift
	in_ns "$role" sysctl -q -w "$@" >/dev/null
}

xlbt_mac() { printf '02:18:00:00:00:%02x\n' "$1"; }

XLBT_ROLE_OCTET=
# Host part of a role's addresses: lb 1, client 2, rsN 10+N.
xlbt_role_octet() {
	case $1 in
	lb) XLBT_ROLE_OCTET=1 ;;
	client) XLBT_ROLE_OCTET=2 ;;
	rs[0-9]*) XLBT_ROLE_OCTET=$((10 + ${1#rs})) ;;
	*) return 1 ;;
	esac
}

# Addresses of real server N.
rs_addr4() { printf '%s.%d\n' "$XLBT_NET4_PREFIX" $((10 + $1)); }
rs_addr6() { printf '%s:%d\n' "$XLBT_NET6_PREFIX" $((10 + $1)); }

xlbt_netns_add() {
	local ns
	ns=$(xlbt_ns "$1")
	if [[ -e /run/netns/$ns ]]; then
		xlbt_log "namespace $ns already exists; refusing to reuse it"
		return 1
	fi
	XLBT_NETNS+=("$ns")
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up || return 1
	# No DAD anywhere: addresses are usable at once, also link-local ones.
	xlbt_sysctl "$1" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.default.accept_ra=0
}

# A host namespace with one veth into the bridge.
xlbt_host_add() {
	local role=$1 sw ns a4 a6
	sw=$(xlbt_ns sw)
	ns=$(xlbt_ns "$role")
	xlbt_role_octet "$role" || return 1
	a4=$XLBT_NET4_PREFIX.$XLBT_ROLE_OCTET
	a6=$XLBT_NET6_PREFIX:$XLBT_ROLE_OCTET

	xlbt_netns_add "$role" || return 1
	ip -n "$sw" link add "xlbt-$role" type veth peer name "$XLBT_IFACE" netns "$ns" || return 1
	ip -n "$sw" link set "xlbt-$role" master "$XLBT_BRIDGE" up || return 1
	# The switch-side peer must run NAPI to receive frames sent with XDP_TX.
	in_ns sw ethtool -K "xlbt-$role" gro on >/dev/null || return 1
	if [[ $XLBT_PEER_NAPI == xdp ]]; then
		ip -n "$sw" link set dev "xlbt-$role" xdpdrv obj "$XLBT_TMPDIR/xlbt-pass.bpf.o" sec xdp ||
			return 1
	fi
	ip -n "$ns" link set "$XLBT_IFACE" address "$(xlbt_mac "$XLBT_ROLE_OCTET")" up || return 1
	# Complete checksums, as on a wire: a veth would otherwise hand XDP a
	# CHECKSUM_PARTIAL packet, and XDP_TX sends it on with the checksum
	# never filled in. (Also turns off TSO, so XDP sees MTU-sized frames.)
	in_ns "$role" ethtool -K "$XLBT_IFACE" tx off >/dev/null || return 1
	ip -n "$ns" addr add "$a4/24" dev "$XLBT_IFACE" || return 1
	ip -n "$ns" addr add "$a6/64" dev "$XLBT_IFACE" nodad || return 1
}

# The XDP program of the switch ports: pass everything to the stack.
xlbt_build_pass_prog() {
	printf '%s\n' \
		'__attribute__((section("xdp"), used)) int xlbt_pass(void *ctx) { (void)ctx; return 2; }' \
		'char _license[] __attribute__((section("license"), used)) = "GPL";' |
		"${CLANG:-clang}" -O2 -g -target bpf -c -x c - -o "$XLBT_TMPDIR/xlbt-pass.bpf.o"
}

# ICMP echo from ROLE to each ADDR (3 tries, 1 s each), with a raw socket so
# that no ping binary is needed. Prints unreachable addresses, fails if any.
xlbt_ping() {
	local role=$1
	shift
	in_ns "$role" timeout --foreground 30 python3 - "$@" <<'EOF'
import os, select, socket, struct, sys, time

def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff

ident = os.getpid() & 0xffff
bad = []
for seq, addr in enumerate(sys.argv[1:], 1):
    v6 = ':' in addr
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    want = socket.inet_pton(fam, addr)
    req, rep = (128, 129) if v6 else (8, 0)
    payload = b'xlbt-probe'
    pkt = struct.pack('!BBHHH', req, 0, 0, ident, seq) + payload
    if not v6:  # the kernel fills in the ICMPv6 checksum, not the ICMP one
        pkt = struct.pack('!BBHHH', req, 0, csum(pkt), ident, seq) + payload
    ok = False
    for _ in range(3):
        s.sendto(pkt, (addr, 0))
        end = time.monotonic() + 1.0
        while not ok:
            left = end - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            data, src = s.recvfrom(2048)
            if not v6:
                data = data[(data[0] & 0xf) * 4:]
            if len(data) < 8 or socket.inet_pton(fam, src[0]) != want:
                continue
            t, _, _, i, q = struct.unpack('!BBHHH', data[:8])
            ok = t == rep and i == ident and q == seq
        if ok:
            break
    s.close()
    if not ok:
        bad.append(addr)
if bad:
    print('no echo reply from: ' + ' '.join(bad))
    sys.exit(1)
EOF
}

# xlbt_node_yaml METRICS_ADDR API_ADDR TOKEN_FILE: the "node:" section of a
# config for the LB of topo_up (its interface, XDP mode, bpffs, tunnel
# source and GUE port), with metrics and the API on the given addresses.
xlbt_node_yaml() {
	printf 'node:\n'
	printf '  interfaces: [%s]\n' "$XLBT_IFACE"
	printf '  xdp_mode: %s\n' "$XLBT_XDP_MODE"
	printf '  bpffs: %s\n' "$XLBT_BPFFS_BASE/lb"
	printf '  tunnel_source: {ipv4: "%s", ipv6: "%s"}\n' "$XLBT_TUNSRC4" "$XLBT_TUNSRC6"
	printf '  gue_port: %d\n' "$XLBT_GUE_PORT"
	printf '  metrics: {listen: "%s"}\n' "$1"
	printf '  api: {listen: "%s", token_file: %s}\n' "$2" "$3"
}

# topo_up [NREALS]: build the topology (default 3 reals, at most 32).
# On failure the partial topology stays registered; call topo_down.
topo_up() {
	local n=${1:-3} i role
	if [[ ! $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 32)); then
		xlbt_log "topo_up: number of reals must be 1..32, not '$n'"
		return 1
	fi
	if ((${#XLBT_NETNS[@]} > 0)); then
		xlbt_log "topo_up: a topology is already up (topo_down first)"
		return 1
	fi
	XLBT_NREALS=$n
	if [[ -z $XLBT_TMPDIR ]]; then
		XLBT_TMPDIR=$(mktemp -d "/tmp/$XLBT_PREFIX.XXXXXX") || return 1
	fi
	mkdir -p "$XLBT_BPFFS_BASE" || return 1
	if [[ $XLBT_PEER_NAPI == xdp ]]; then
		xlbt_build_pass_prog || return 1
	fi

	# The switch: a bridge, no addresses, no IPv6 chatter.
	xlbt_netns_add sw || return 1
	xlbt_sysctl sw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || return 1
	ip -n "$(xlbt_ns sw)" link add "$XLBT_BRIDGE" type bridge stp_state 0 forward_delay 0 || return 1
	ip -n "$(xlbt_ns sw)" link set "$XLBT_BRIDGE" up || return 1

	for role in client lb; do
		xlbt_host_add "$role" || return 1
	done
	for ((i = 1; i <= n; i++)); do
		xlbt_host_add "rs$i" || return 1
	done

	# Client: the VIPs are behind the LB.
	ip -n "$(xlbt_ns client)" route add "$XLBT_VIP4/32" via "$XLBT_LB4" dev "$XLBT_IFACE" \
		mtu "$XLBT_VIP_ROUTE_MTU" || return 1
	ip -n "$(xlbt_ns client)" -6 route add "$XLBT_VIP6/128" via "$XLBT_LB6" dev "$XLBT_IFACE" \
		mtu "$XLBT_VIP_ROUTE_MTU" || return 1

	# LB: forwarding on (bpf_fib_lookup requires it), no redirects for
	# traffic that XDP passes up and the kernel sends back out.
	xlbt_sysctl lb net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.send_redirects=0 "net.ipv4.conf.$XLBT_IFACE.send_redirects=0" || return 1

	# Reals: VIPs on lo, no reverse-path filter (decapsulated packets come
	# from clients the real has no route through the tunnel for), and no ARP
	# answers for the VIPs.
	for ((i = 1; i <= n; i++)); do
		role=rs$i
		ip -n "$(xlbt_ns "$role")" addr add "$XLBT_VIP4/32" dev lo || return 1
		ip -n "$(xlbt_ns "$role")" addr add "$XLBT_VIP6/128" dev lo nodad || return 1
		xlbt_sysctl "$role" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
			"net.ipv4.conf.$XLBT_IFACE.rp_filter=0" net.ipv4.conf.lo.rp_filter=0 \
			net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 || return 1
	done

	# Reachability across the bridge, which also fills the neighbour tables.
	local targets=()
	for ((i = 1; i <= n; i++)); do
		targets+=("$(rs_addr4 "$i")" "$(rs_addr6 "$i")")
	done
	xlbt_ping client "$XLBT_LB4" "$XLBT_LB6" "${targets[@]}" >&2 || return 1
	xlbt_ping lb "${targets[@]}" >&2 || return 1
	# bpf_fib_lookup needs the reals' MACs in the LB's neighbour table; pin
	# them so they never age out during a long test.
	for ((i = 1; i <= n; i++)); do
		ip -n "$(xlbt_ns lb)" neigh replace "$(rs_addr4 "$i")" lladdr "$(xlbt_mac $((10 + i)))" \
			dev "$XLBT_IFACE" nud permanent || return 1
		ip -n "$(xlbt_ns lb)" -6 neigh replace "$(rs_addr6 "$i")" lladdr "$(xlbt_mac $((10 + i)))" \
			dev "$XLBT_IFACE" nud permanent || return 1
	done
	return 0
}

# ---------------------------------------------------------------------------
# xlb on the LB and decap on the reals

# xlbctl_in ROLE ARGS...: xlbctl inside ROLE with that role's own bpffs
# directory (bpffs is shared by all namespaces). libxdp keeps its dispatcher
# pins under a per-role directory too, so nothing is left in /sys/fs/bpf/xdp.
xlbctl_in() {
	local role=$1
	shift
	mkdir -p "$XLBT_BPFFS_BASE/libxdp-$role" || return 1
	in_ns "$role" env LIBXDP_BPFFS="$XLBT_BPFFS_BASE/libxdp-$role" \
		timeout --foreground 60 "$XLBCTL" "$@" --bpffs "$XLBT_BPFFS_BASE/$role"
}

# lb_load [ARGS...]: attach xlb to the LB's interface, with the same GUE
# port as the reals' decap; extra ARGS go to "xlbctl load".
lb_load() {
	XLBT_LOADED+=("lb:$XLBT_IFACE")
	xlbctl_in lb load --iface "$XLBT_IFACE" --mode "$XLBT_XDP_MODE" \
		--tunnel-src4 "$XLBT_TUNSRC4" --tunnel-src6 "$XLBT_TUNSRC6" --gue-port "$XLBT_GUE_PORT" "$@"
}

# rs_decap_attach N [ARGS...]: decapsulate on real N whatever is sent to its
# own IPv4 or IPv6 address; ARGS go to "xlbctl decap attach".
rs_decap_attach() {
	local i=$1
	shift
	XLBT_DECAP+=("rs$i:$XLBT_IFACE")
	xlbctl_in "rs$i" decap attach --iface "$XLBT_IFACE" --mode "$XLBT_XDP_MODE" \
		--addr "$(rs_addr4 "$i")" --addr "$(rs_addr6 "$i")" --gue-port "$XLBT_GUE_PORT" "$@"
}

# XDP attach mode of ROLE's interface as "ip link" shows it: xdp (native),
# xdpgeneric, xdpoffload, xdpmulti, or "none".
xlbt_xdp_mode() {
	local out
	out=$(ip -n "$(xlbt_ns "$1")" -d link show dev "$XLBT_IFACE" 2>/dev/null) || return 1
	if [[ $out =~ (xdpgeneric|xdpoffload|xdpmulti|xdpdrv|xdp)[[:space:]/] ]]; then
		printf '%s\n' "${BASH_REMATCH[1]}"
	else
		printf 'none\n'
	fi
}

# Id of the XDP program attached to ROLE's interface ("ip -j link"; with
# several attachments, the first); fails if none is attached.
xlbt_xdp_prog_id() {
	ip -n "$(xlbt_ns "$1")" -j link show dev "$XLBT_IFACE" 2>/dev/null | python3 -c '
import json, sys
x = json.load(sys.stdin)[0].get("xdp") or {}
p = x.get("prog") or (x.get("attached") or [{}])[0].get("prog") or {}
if "id" not in p:
    sys.exit(1)
print(p["id"])
'
}

# rs_start_namesrv N [ARGS...]: run xlbt-namesrv --name rsN on both VIPs,
# port ${XLBT_PORT:-80}, and wait until it answers (at most ~5 s).
rs_start_namesrv() {
	local i=$1 port=${XLBT_PORT:-80} try pid
	shift
	in_ns_bg "rs$i" "namesrv-rs$i" "$XLBT_NAMESRV" --name "rs$i" \
		--listen "$XLBT_VIP4:$port" --listen "[$XLBT_VIP6]:$port" "$@"
	pid=$XLBT_LAST_PID
	for ((try = 0; try < 50; try++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			xlbt_log "xlbt-namesrv on rs$i exited:"
			xlbt_log_file "$XLBT_TMPDIR/namesrv-rs$i.log"
			return 1
		fi
		if in_ns "rs$i" "$XLBT_CLIENT" --connect "$XLBT_VIP4:$port" --count 1 --timeout-ms 200 \
			>/dev/null 2>&1 &&
			in_ns "rs$i" "$XLBT_CLIENT" --connect "[$XLBT_VIP6]:$port" --count 1 --timeout-ms 200 \
				>/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	xlbt_log "xlbt-namesrv on rs$i does not answer on port $port"
	return 1
}

# ---------------------------------------------------------------------------
# JSON

# xlbt_json EXPR < FILE: print a Python expression over the parsed JSON "d"
# (containers as JSON, lists of scalars space-separated by the caller's
# choice of expression). Fails if the input is not JSON or EXPR raises.
xlbt_json() {
	python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d})
print(json.dumps(v) if isinstance(v, (dict, list)) else v)
' "$1"
}

# ---------------------------------------------------------------------------
# Teardown

# Stop PIDs: TERM, up to 2 s of grace, then KILL.
xlbt_stop_pids() {
	local pid try alive
	(($# > 0)) || return 0
	for pid in "$@"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for ((try = 0; try < 20; try++)); do
		alive=0
		for pid in "$@"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.1
	done
	for pid in "$@"; do
		kill -KILL "$pid" 2>/dev/null
	done
	for pid in "$@"; do
		wait "$pid" 2>/dev/null
	done
	return 0
}

# topo_down: remove everything topo_up and the helpers above created:
# detach XDP, stop processes, delete namespaces, unpin. Idempotent. Besides
# what this shell recorded, it finds everything by the prefix, so it also
# cleans up after helpers that ran in a subshell.
topo_down() {
	local e role ns d pids=() namespaces=()
	local -A seen=() detach=()

	for ns in "${XLBT_NETNS[@]}" /run/netns/"$XLBT_PREFIX"-*; do
		ns=${ns#/run/netns/}
		[[ -e /run/netns/$ns && -z ${seen[$ns]:-} ]] || continue
		seen[$ns]=1
		namespaces+=("$ns")
	done

	# Detach through xlbctl while the interfaces exist, so that its pins
	# and libxdp's go as well: what was recorded, and every role that has
	# a bpffs directory.
	for e in "${XLBT_LOADED[@]}" "${XLBT_DECAP[@]}"; do
		detach[${e%%:*}]=${e#*:}
	done
	for d in "$XLBT_BPFFS_BASE"/lb "$XLBT_BPFFS_BASE"/rs*; do
		role=${d##*/}
		[[ -d $d && -z ${detach[$role]:-} ]] && detach[$role]=$XLBT_IFACE
	done
	if [[ -x $XLBCTL ]]; then
		local args out
		for role in "${!detach[@]}"; do
			[[ -e /run/netns/$(xlbt_ns "$role") ]] || continue
			if [[ $role == lb ]]; then args=(unload); else args=(decap detach); fi
			if ! out=$(xlbctl_in "$role" "${args[@]}" --iface "${detach[$role]}" 2>&1); then
				xlbt_log "topo_down: 'xlbctl ${args[*]}' on $role failed (the namespace goes anyway):"
				xlbt_log "  ${out//$'\n'/ }"
			fi
		done
	fi
	XLBT_LOADED=()
	XLBT_DECAP=()

	xlbt_stop_pids "${XLBT_PIDS[@]}"
	XLBT_PIDS=()

	# Anything else still running inside our namespaces was started by us too.
	for ns in "${namespaces[@]}"; do
		mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null)
	done
	if ((${#pids[@]} > 0)); then
		xlbt_log "topo_down: stopping leftover processes in the namespaces: ${pids[*]}"
		xlbt_stop_pids "${pids[@]}"
	fi

	# Deleting a namespace deletes its veths, bridge and XDP attachments.
	for ns in "${namespaces[@]}"; do
		ip netns del "$ns" 2>/dev/null || xlbt_log "topo_down: could not delete namespace $ns"
	done
	XLBT_NETNS=()
	XLBT_NREALS=0

	if [[ $XLBT_BPFFS_BASE == "$XLBT_BPFFS_ROOT"/xlbt* && -d $XLBT_BPFFS_BASE ]]; then
		rm -rf -- "$XLBT_BPFFS_BASE" || xlbt_log "topo_down: could not remove $XLBT_BPFFS_BASE"
	fi

	for d in "$XLBT_TMPDIR" /tmp/"$XLBT_PREFIX".??????; do
		[[ -n $d && -d $d && $d == /tmp/"$XLBT_PREFIX".* ]] || continue
		if [[ ${XLBT_KEEP_LOGS:-0} == 1 ]]; then
			xlbt_log "logs kept in $d"
		else
			rm -rf -- "$d"
		fi
	done
	XLBT_TMPDIR=
	return 0
}

# A caller-provided hook run after topo_down on exit (e.g. to print a summary).
XLBT_EXIT_HOOK=

xlbt_on_exit() {
	local rc=$?
	trap '' INT TERM HUP
	# A signal may arrive while a function runs with its output redirected
	# (to a log that topo_down deletes): report to the original stdout/stderr.
	if [[ -n $XLBT_STDOUT ]]; then
		exec 1>&"$XLBT_STDOUT" 2>&"$XLBT_STDERR"
	fi
	[[ -n $XLBT_INTERRUPTED ]] && xlbt_log "interrupted by SIG$XLBT_INTERRUPTED; cleaning up"
	topo_down
	xlbt_bpffs_release
	if [[ -n $XLBT_EXIT_HOOK ]]; then
		"$XLBT_EXIT_HOOK" "$rc"
		rc=$?
	fi
	exit "$rc"
}

xlbt_on_signal() {
	XLBT_INTERRUPTED=$1
	case $1 in
	INT) exit 130 ;;
	HUP) exit 129 ;;
	*) exit 143 ;;
	esac
}

# Tear everything down on exit, Ctrl-C, TERM and HUP.
xlbt_install_traps() {
	exec {XLBT_STDOUT}>&1 {XLBT_STDERR}>&2
	trap xlbt_on_exit EXIT
	trap 'xlbt_on_signal INT' INT
	trap 'xlbt_on_signal TERM' TERM
	trap 'xlbt_on_signal HUP' HUP
}

# ---------------------------------------------------------------------------
# Single processes and time

# xlbt_forget_pid PID...: topo_down no longer stops PID (the caller stopped
# or waited for it already, and the PID may be reused).
xlbt_forget_pid() {
	local p q keep=()
	for p in "${XLBT_PIDS[@]}"; do
		for q in "$@"; do
			[[ $p == "$q" ]] && continue 2
		done
		keep+=("$p")
	done
	XLBT_PIDS=("${keep[@]}")
}

# xlbt_stop_pid PID...: stop PIDs as topo_down does (TERM, up to 2 s of
# grace, then KILL) and forget them.
xlbt_stop_pid() {
	xlbt_stop_pids "$@"
	xlbt_forget_pid "$@"
}

# xlbt_now_ms: the wall clock in milliseconds, without a subprocess.
xlbt_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	printf '%s\n' $((t / 1000))
}

# ---------------------------------------------------------------------------
# Two-arm topology (forwarding: nat)
#
#             switch namespace: bridges xlbt-br (front) and xlbt-farm (farm)
#   front:  client 198.18.0.2 / fd00:18::2     lb xlbt0 198.18.0.1 / fd00:18::1
#   farm:   lb xlbt1 198.18.2.1 / fd00:19::1   rsN 198.18.2.(10+N) / fd00:19::(10+N)
#
#   The client routes the VIPs via the LB's front address, as in topo_up.
#   The reals are on the farm bridge only, hold no VIP, and route everything
#   (default routes) via the LB's farm address: a real's reply reaches the
#   client only through the LB. The LB forwards (ip_forward) and has the
#   reals' and the client's MACs pinned in its neighbour tables.
#
# topo_up_two_arm N builds it; topo_down_two_arm (or topo_down, which finds
# everything by the prefix) removes it.

XLBT_FARM_BRIDGE=xlbt-farm
XLBT_FARM_IFACE=xlbt1 # the LB's interface on the farm bridge
XLBT_FARM_PORT=xlbt-lbfarm # its peer in the switch namespace
XLBT_FARM4_PREFIX=198.18.2
XLBT_FARM6_PREFIX=fd00:19:
XLBT_LB_FARM4=198.18.2.1
XLBT_LB_FARM6=fd00:19::1
XLBT_LB_FARM_MAC=02:18:00:00:01:01

# Farm addresses of real server N.
rs_farm_addr4() { printf '%s.%d\n' "$XLBT_FARM4_PREFIX" $((10 + $1)); }
rs_farm_addr6() { printf '%s:%d\n' "$XLBT_FARM6_PREFIX" $((10 + $1)); }

# xlbt_port_add ROLE BRIDGE SWPORT IFACE MAC ADDR4/PLEN ADDR6/PLEN: a veth
# from ROLE's namespace (interface IFACE) to BRIDGE in the switch namespace
# (port SWPORT), set up as xlbt_host_add does (NAPI on the switch side, no
# checksum offload on the host side).
xlbt_port_add() {
	local role=$1 br=$2 swport=$3 ifc=$4 mac=$5 a4=$6 a6=$7 sw ns
	sw=$(xlbt_ns sw)
	ns=$(xlbt_ns "$role")
	ip -n "$sw" link add "$swport" type veth peer name "$ifc" netns "$ns" || return 1
	ip -n "$sw" link set "$swport" master "$br" up || return 1
	in_ns sw ethtool -K "$swport" gro on >/dev/null || return 1
	if [[ $XLBT_PEER_NAPI == xdp ]]; then
		ip -n "$sw" link set dev "$swport" xdpdrv obj "$XLBT_TMPDIR/xlbt-pass.bpf.o" sec xdp ||
			return 1
	fi
	ip -n "$ns" link set "$ifc" address "$mac" up || return 1
	in_ns "$role" ethtool -K "$ifc" tx off >/dev/null || return 1
	ip -n "$ns" addr add "$a4" dev "$ifc" || return 1
	ip -n "$ns" addr add "$a6" dev "$ifc" nodad || return 1
}

# topo_up_two_arm [NREALS]: build the two-arm topology (default 3 reals, at
# most 32). On failure the partial topology stays registered; call
# topo_down_two_arm.
topo_up_two_arm() {
	local n=${1:-3} i role
	if [[ ! $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 32)); then
		xlbt_log "topo_up_two_arm: number of reals must be 1..32, not '$n'"
		return 1
	fi
	if ((${#XLBT_NETNS[@]} > 0)); then
		xlbt_log "topo_up_two_arm: a topology is already up (topo_down first)"
		return 1
	fi
	XLBT_NREALS=$n
	if [[ -z $XLBT_TMPDIR ]]; then
		XLBT_TMPDIR=$(mktemp -d "/tmp/$XLBT_PREFIX.XXXXXX") || return 1
	fi
	mkdir -p "$XLBT_BPFFS_BASE" || return 1
	if [[ $XLBT_PEER_NAPI == xdp ]]; then
		xlbt_build_pass_prog || return 1
	fi

	xlbt_netns_add sw || return 1
	xlbt_sysctl sw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || return 1
	for i in "$XLBT_BRIDGE" "$XLBT_FARM_BRIDGE"; do
		ip -n "$(xlbt_ns sw)" link add "$i" type bridge stp_state 0 forward_delay 0 || return 1
		ip -n "$(xlbt_ns sw)" link set "$i" up || return 1
	done

	# Front: client and the LB's first arm, as in topo_up.
	for role in client lb; do
		xlbt_host_add "$role" || return 1
	done
	ip -n "$(xlbt_ns client)" route add "$XLBT_VIP4/32" via "$XLBT_LB4" dev "$XLBT_IFACE" \
		mtu "$XLBT_VIP_ROUTE_MTU" || return 1
	ip -n "$(xlbt_ns client)" -6 route add "$XLBT_VIP6/128" via "$XLBT_LB6" dev "$XLBT_IFACE" \
		mtu "$XLBT_VIP_ROUTE_MTU" || return 1

	# Farm: the LB's second arm and the reals.
	xlbt_port_add lb "$XLBT_FARM_BRIDGE" "$XLBT_FARM_PORT" "$XLBT_FARM_IFACE" "$XLBT_LB_FARM_MAC" \
		"$XLBT_LB_FARM4/24" "$XLBT_LB_FARM6/64" || return 1
	xlbt_sysctl lb net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.send_redirects=0 "net.ipv4.conf.$XLBT_IFACE.send_redirects=0" \
		"net.ipv4.conf.$XLBT_FARM_IFACE.send_redirects=0" || return 1
	for ((i = 1; i <= n; i++)); do
		role=rs$i
		xlbt_netns_add "$role" || return 1
		xlbt_port_add "$role" "$XLBT_FARM_BRIDGE" "xlbt-$role" "$XLBT_IFACE" "$(xlbt_mac $((10 + i)))" \
			"$(rs_farm_addr4 "$i")/24" "$(rs_farm_addr6 "$i")/64" || return 1
		ip -n "$(xlbt_ns "$role")" route add default via "$XLBT_LB_FARM4" dev "$XLBT_IFACE" || return 1
		ip -n "$(xlbt_ns "$role")" -6 route add default via "$XLBT_LB_FARM6" dev "$XLBT_IFACE" ||
			return 1
	done

	# Reachability of each arm, then the neighbours the LB's XDP needs.
	local targets=()
	for ((i = 1; i <= n; i++)); do
		targets+=("$(rs_farm_addr4 "$i")" "$(rs_farm_addr6 "$i")")
	done
	xlbt_ping client "$XLBT_LB4" "$XLBT_LB6" >&2 || return 1
	xlbt_ping lb "$XLBT_CLIENT4" "$XLBT_CLIENT6" "${targets[@]}" >&2 || return 1
	ip -n "$(xlbt_ns lb)" neigh replace "$XLBT_CLIENT4" lladdr "$(xlbt_mac 2)" \
		dev "$XLBT_IFACE" nud permanent || return 1
	ip -n "$(xlbt_ns lb)" -6 neigh replace "$XLBT_CLIENT6" lladdr "$(xlbt_mac 2)" \
		dev "$XLBT_IFACE" nud permanent || return 1
	for ((i = 1; i <= n; i++)); do
		ip -n "$(xlbt_ns lb)" neigh replace "$(rs_farm_addr4 "$i")" lladdr "$(xlbt_mac $((10 + i)))" \
			dev "$XLBT_FARM_IFACE" nud permanent || return 1
		ip -n "$(xlbt_ns lb)" -6 neigh replace "$(rs_farm_addr6 "$i")" \
			lladdr "$(xlbt_mac $((10 + i)))" dev "$XLBT_FARM_IFACE" nud permanent || return 1
	done
	return 0
}

# topo_down_two_arm: detach xlb from the LB's farm arm through xlbctl (if
# anything is pinned for the LB), then topo_down. Idempotent.
topo_down_two_arm() {
	local out
	if [[ -x $XLBCTL && -d $XLBT_BPFFS_BASE/lb && -e /run/netns/$(xlbt_ns lb) ]] &&
		[[ $(xlbt_xdp_mode_of lb "$XLBT_FARM_IFACE") != none ]]; then
		if ! out=$(xlbctl_in lb unload --iface "$XLBT_FARM_IFACE" 2>&1); then
			xlbt_log "topo_down_two_arm: 'xlbctl unload' of $XLBT_FARM_IFACE failed (the namespace goes anyway):"
			xlbt_log "  ${out//$'\n'/ }"
		fi
	fi
	topo_down
}

# xlbt_xdp_mode_of ROLE IFACE: as xlbt_xdp_mode, for any interface of ROLE.
xlbt_xdp_mode_of() {
	local out
	out=$(ip -n "$(xlbt_ns "$1")" -d link show dev "$2" 2>/dev/null) || {
		printf 'none\n'
		return 1
	}
	if [[ $out =~ (xdpgeneric|xdpoffload|xdpmulti|xdpdrv|xdp)[[:space:]/] ]]; then
		printf '%s\n' "${BASH_REMATCH[1]}"
	else
		printf 'none\n'
	fi
}

# ---------------------------------------------------------------------------
# Counting frames on switch ports
#
# xlbt_sniff_start NAME MAX_S PORTS FILTER...: count, in the background, the
# frames that cross the switch-side ports PORTS (comma-separated, e.g.
# "xlbt-lb,xlbt-client") in each direction, by FILTER. A FILTER is
# "LABEL=PROTO,SRC,SPORT,DST,DPORT" (tcp|udp|*, addresses of either family,
# ports; "*" matches anything), e.g. "reply=tcp,198.18.10.10,80,*,*". On a
# switch port, "out" is what the bridge sends to the host, "in" what the host
# sends. An IPIP-encapsulated frame matches by its outer header only. The
# counter stops on xlbt_sniff_stop, or by itself after MAX_S seconds, and
# writes {"ports": {PORT: {"in": {LABEL: N}, "out": {...}}}, "frames": N,
# "drops": N} to $XLBT_SNIFF_OUT (drops: frames the kernel dropped before
# they were counted; counts are exact only when it is 0).
XLBT_SNIFF_PID=
XLBT_SNIFF_OUT=
xlbt_sniff_start() {
	local name=$1 max=$2 ports=$3 try
	shift 3
	XLBT_SNIFF_OUT=$XLBT_TMPDIR/$name.json
	rm -f -- "$XLBT_SNIFF_OUT"
	cat >"$XLBT_TMPDIR/xlbt-sniff.py" <<'EOF_PY'
import json, os, select, signal, socket, struct, sys, time

out, max_s, ports = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(',')
filters = []
for f in sys.argv[4:]:
    label, spec = f.split('=', 1)
    proto, src, sport, dst, dport = spec.split(',')
    def addr(a):
        if a == '*':
            return None
        return socket.inet_pton(socket.AF_INET6 if ':' in a else socket.AF_INET, a)
    filters.append((label, {'tcp': 6, 'udp': 17, '*': None}[proto], addr(src),
                    None if sport == '*' else int(sport), addr(dst),
                    None if dport == '*' else int(dport)))
counts = {p: {'in': {f[0]: 0 for f in filters}, 'out': {f[0]: 0 for f in filters}} for p in ports}
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
socks = {}
for p in ports:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
    s.bind((p, 0))
    s.setblocking(False)
    socks[s] = p
frames = 0

def classify(b):
    off, et = 14, struct.unpack_from('!H', b, 12)[0] if len(b) >= 14 else 0
    while et in (0x8100, 0x88a8) and len(b) >= off + 4:
        et = struct.unpack_from('!H', b, off + 2)[0]
        off += 4
    if et == 0x0800 and len(b) >= off + 20:
        ihl = (b[off] & 0xf) * 4
        proto, src, dst = b[off + 9], b[off + 12:off + 16], b[off + 16:off + 20]
        frag = struct.unpack_from('!H', b, off + 6)[0] & 0x1fff
        l4 = off + ihl if not frag else None
    elif et == 0x86dd and len(b) >= off + 40:
        proto, src, dst = b[off + 6], b[off + 8:off + 24], b[off + 24:off + 40]
        l4 = off + 40
    else:
        return None
    sp = dp = None
    if proto in (6, 17) and l4 is not None and len(b) >= l4 + 4:
        sp, dp = struct.unpack_from('!HH', b, l4)
    return proto, src, sp, dst, dp

def count(s):
    global frames
    while True:
        try:
            b, a = s.recvfrom(65536)
        except BlockingIOError:
            return
        frames += 1
        k = classify(b)
        if k is None:
            continue
        d = counts[socks[s]]['out' if a[2] == socket.PACKET_OUTGOING else 'in']
        for label, proto, src, sp, dst, dp in filters:
            if ((proto is None or proto == k[0]) and (src is None or src == k[1]) and
                    (sp is None or sp == k[2]) and (dst is None or dst == k[3]) and
                    (dp is None or dp == k[4])):
                d[label] += 1

print('ready', flush=True)
end = time.monotonic() + max_s
while not stop and time.monotonic() < end:
    try:
        r = select.select(list(socks), [], [], 0.2)[0]
    except InterruptedError:
        r = []
    for s in r:
        count(s)
drops = 0
for s in socks:
    count(s)
    st = s.getsockopt(263, 6, 8)  # SOL_PACKET, PACKET_STATISTICS
    drops += struct.unpack('II', st)[1]
with open(out + '.tmp', 'w') as f:
    json.dump({'ports': counts, 'frames': frames, 'drops': drops,
               'stopped': 'signal' if stop else 'timeout'}, f)
os.rename(out + '.tmp', out)
EOF_PY
	in_ns_bg sw "$name" python3 "$XLBT_TMPDIR/xlbt-sniff.py" "$XLBT_SNIFF_OUT" "$max" "$ports" "$@"
	XLBT_SNIFF_PID=$XLBT_LAST_PID
	for ((try = 0; try < 100; try++)); do
		grep -qx ready "$XLBT_TMPDIR/$name.log" 2>/dev/null && return 0
		if ! kill -0 "$XLBT_SNIFF_PID" 2>/dev/null; then
			xlbt_log "the frame counter exited:"
			xlbt_log_file "$XLBT_TMPDIR/$name.log"
			return 1
		fi
		sleep 0.05
	done
	xlbt_log "the frame counter is not ready after 5 s"
	return 1
}

# xlbt_sniff_stop: stop the counter and wait for its result (fails if there
# is none).
xlbt_sniff_stop() {
	[[ -n $XLBT_SNIFF_PID ]] || return 1
	kill -TERM "$XLBT_SNIFF_PID" 2>/dev/null
	local try
	for ((try = 0; try < 50; try++)); do
		kill -0 "$XLBT_SNIFF_PID" 2>/dev/null || break
		sleep 0.1
	done
	xlbt_stop_pid "$XLBT_SNIFF_PID"
	XLBT_SNIFF_PID=
	[[ -s $XLBT_SNIFF_OUT ]]
}

# xlbt_sniff_count PORT in|out LABEL: a count of the last result ("x" and
# failure if there is none).
xlbt_sniff_count() {
	xlbt_json "d['ports']['$1']['$2']['$3']" <"$XLBT_SNIFF_OUT" 2>/dev/null || {
		echo x
		return 1
	}
}
