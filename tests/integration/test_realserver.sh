#!/usr/bin/env bash
# scripts/xlb-realserver.sh, method by method, in network namespaces.
#
#   tests/integration/test_realserver.sh [METHOD ...]   (default: dsr ipip gue nat)
#
# Each method gets a fresh pair of namespaces: rs1 (the real server, its
# interface xlbt0 with 198.18.0.11/24 and fd00:18::11/64, default routes
# via 198.18.0.254 and fd00:18::fe) and gw (the other end of the veth,
# holding those gateways and the balancer's 198.18.0.1 / fd00:18::1).
# Some sysctls start at values other than the ones setup wants, and for
# dsr one of the VIPs is on lo before setup, so that teardown must restore
# exactly what was there.  Checked: after setup, the addresses on lo
# (/32, /128 with nodad), arp_ignore/arp_announce (all and xlbt0),
# rp_filter, the XDP program and the default routes as the method wants;
# a second setup changes nothing; teardown brings every one of them back
# to what it was before setup; a second teardown has nothing to do.
#
# Output: "ok - ..." / "not ok - ..." lines, "# ..." diagnostics, last
# "N passed, M failed".  Exit status: 0 all passed, 1 a check failed, 2 the
# test cannot run here (not root, a binary missing).
#
# Environment: XLBCTL (default build/xlbctl), XLBT_XDP_MODE (default
# native), XLBT_KEEP_LOGS=1.
# shellcheck disable=SC2317  # functions run through step/check and the exit hook
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/integration/report.sh
source "$HERE/report.sh"

SCRIPT=$XLBT_ROOT/scripts/xlb-realserver.sh
IF=$XLBT_IFACE
RS4=198.18.0.11
RS6=fd00:18::11
GW4=198.18.0.254
GW6=fd00:18::fe
PRESENT_VIP=198.18.10.11 # on lo before setup: must stay after teardown
SYSCTLS=(all/arp_ignore all/arp_announce "$IF/arp_ignore" "$IF/arp_announce" all/rp_filter
	"$IF/rp_filter")

# The real server and its neighbour, joined by a veth.
make_hosts() {
	local rs gw
	rs=$(xlbt_ns rs1)
	gw=$(xlbt_ns gw)
	xlbt_netns_add rs1 && xlbt_netns_add gw || return 1
	ip -n "$rs" link add "$IF" type veth peer name "$IF" netns "$gw" || return 1
	ip -n "$rs" link set "$IF" up && ip -n "$gw" link set "$IF" up || return 1
	ip -n "$rs" addr add "$RS4/24" dev "$IF" || return 1
	ip -n "$rs" addr add "$RS6/64" dev "$IF" nodad || return 1
	ip -n "$gw" addr add "$XLBT_LB4/24" dev "$IF" || return 1
	ip -n "$gw" addr add "$GW4/24" dev "$IF" || return 1
	ip -n "$gw" addr add "$XLBT_LB6/64" dev "$IF" nodad || return 1
	ip -n "$gw" addr add "$GW6/64" dev "$IF" nodad || return 1
	ip -n "$rs" route add default via "$GW4" dev "$IF" metric 100 || return 1
	ip -n "$rs" -6 route add default via "$GW6" dev "$IF" metric 100 || return 1
	# Starting values setup has to change (and teardown to restore).
	xlbt_sysctl rs1 "net.ipv4.conf.$IF.arp_announce=1" net.ipv4.conf.all.rp_filter=1 \
		"net.ipv4.conf.$IF.rp_filter=2" || return 1
	ip -n "$rs" addr add "$PRESENT_VIP/32" dev lo
}

# What setup may change, as text: lo's addresses, the sysctls, the default
# routes, the XDP program on xlbt0.
snapshot() {
	local s
	in_ns rs1 ip -o addr show dev lo | awk '{ print "lo", $4, ($0 ~ / nodad/ ? "nodad" : "") }' | sort
	for s in "${SYSCTLS[@]}"; do
		printf '%s=%s\n' "$s" "$(in_ns rs1 cat "/proc/sys/net/ipv4/conf/$s")"
	done
	in_ns rs1 ip -4 route show default
	in_ns rs1 ip -6 route show default | sed 's/ expires [0-9]*sec//'
	printf 'xdp %s\n' "$(xlbt_xdp_mode rs1)"
}

sysctl_is() { [[ $(in_ns rs1 cat "/proc/sys/net/ipv4/conf/$1") == "$2" ]]; }
# ip writes a line at a time: its output is read whole before grep -q, which
# would otherwise stop early and fail the pipeline by SIGPIPE under pipefail.
lo_has() { grep -qwF -- "$1" <<<"$(in_ns rs1 ip -o addr show dev lo)"; }
lo_has_nodad() { [[ $(grep -F -- "$1" <<<"$(in_ns rs1 ip -o -6 addr show dev lo)") == *" nodad"* ]]; }
default_via() { grep -q "^default via $2 " <<<"$(in_ns rs1 ip "-$1" route show default)"; }
xdp_on() { [[ $(xlbt_xdp_mode rs1) != none ]]; }
no_xdp() { [[ $(xlbt_xdp_mode rs1) == none ]]; }
not_default_via() { ! default_via "$@"; }
same_file() { cmp -s "$1" "$2"; }
lo_lines() { grep -c '^lo' "$1"; }
same_lo() { [[ $(lo_lines "$1") == "$(lo_lines "$2")" ]]; }
refused() { ! "$@" >"$TEST_TMP/refused.out" 2>&1; }

# realserver ARGS...: the script inside rs1, with this run's pins and state.
realserver() {
	mkdir -p "$XLBT_BPFFS_BASE/libxdp-rs1" || return 1
	in_ns rs1 env LIBXDP_BPFFS="$XLBT_BPFFS_BASE/libxdp-rs1" timeout --foreground 60 \
		"$SCRIPT" "$@" --xlbctl "$XLBCTL" --bpffs "$XLBT_BPFFS_BASE/rs1" --state "$STATE"
}

show_diff() {
	xlbt_log "expected (left) and found (right):"
	diff "$1" "$2" | sed 's/^/#   /' >&2
}

run_method() {
	local m=$1 args=()
	STATE=$TEST_TMP/$m.state
	case $m in
	dsr | ipip | gue) args=(--vip "$XLBT_VIP4" --vip "$PRESENT_VIP" --vip "$XLBT_VIP6" --iface "$IF") ;;
	nat) args=(--lb "$XLBT_LB4" --lb "$XLBT_LB6" --iface "$IF") ;;
	*)
		not_ok "$m: unknown method (known: dsr ipip gue nat)"
		return
		;;
	esac
	[[ $m == ipip || $m == gue ]] && args+=(--mode "$XLBT_XDP_MODE")
	[[ $m == gue ]] && args+=(--gue-port "$XLBT_GUE_PORT")

	if ! step "$m: fresh namespaces rs1 and gw" make_hosts; then
		topo_down
		return
	fi
	snapshot >"$TEST_TMP/before"
	step "$m: setup" realserver setup --method "$m" "${args[@]}"
	snapshot >"$TEST_TMP/after"
	cp "$STATE" "$TEST_TMP/state.1" 2>/dev/null

	case $m in
	dsr | ipip | gue)
		check "$m: $XLBT_VIP4/32 on lo" lo_has "$XLBT_VIP4/32"
		check "$m: $XLBT_VIP6/128 on lo, without DAD" lo_has_nodad "$XLBT_VIP6/128"
		check "$m: $PRESENT_VIP/32 still on lo" lo_has "$PRESENT_VIP/32"
		check "$m: arp_ignore 1 (all)" sysctl_is all/arp_ignore 1
		check "$m: arp_ignore 1 ($IF)" sysctl_is "$IF/arp_ignore" 1
		check "$m: arp_announce 2 (all)" sysctl_is all/arp_announce 2
		check "$m: arp_announce 2 ($IF)" sysctl_is "$IF/arp_announce" 2
		;;
	esac
	case $m in
	dsr)
		check "$m: no XDP program" no_xdp
		check "$m: rp_filter untouched ($IF)" sysctl_is "$IF/rp_filter" 2
		check "$m: default route untouched" default_via 4 "$GW4"
		;;
	ipip | gue)
		check "$m: decap program on $IF ($(xlbt_xdp_mode rs1))" xdp_on
		check "$m: rp_filter 0 (all)" sysctl_is all/rp_filter 0
		check "$m: rp_filter 0 ($IF)" sysctl_is "$IF/rp_filter" 0
		;;
	nat)
		check "$m: IPv4 default route via the balancer" default_via 4 "$XLBT_LB4"
		check "$m: IPv6 default route via the balancer" default_via 6 "$XLBT_LB6"
		check "$m: the old IPv4 default route is gone" not_default_via 4 "$GW4"
		check "$m: lo untouched" same_lo "$TEST_TMP/before" "$TEST_TMP/after"
		;;
	esac

	step "$m: setup again" realserver setup --method "$m" "${args[@]}"
	snapshot >"$TEST_TMP/again"
	check "$m: a second setup changes nothing" same_file "$TEST_TMP/after" "$TEST_TMP/again" ||
		show_diff "$TEST_TMP/after" "$TEST_TMP/again"
	check "$m: a second setup records nothing new" same_file "$TEST_TMP/state.1" "$STATE"
	if [[ $m != nat ]]; then
		check "$m: setup of another method is refused while $m is set up" \
			refused realserver setup --method nat --lb "$XLBT_LB4"
	else
		check "$m: setup of another method is refused while $m is set up" \
			refused realserver setup --method dsr --vip "$XLBT_VIP4"
	fi

	step "$m: teardown" realserver teardown --method "$m"
	snapshot >"$TEST_TMP/restored"
	check "$m: teardown restores the state before setup" same_file "$TEST_TMP/before" \
		"$TEST_TMP/restored" || show_diff "$TEST_TMP/before" "$TEST_TMP/restored"
	check "$m: teardown removes its state file" [ ! -e "$STATE" ]
	local out
	out=$(realserver teardown --method "$m" 2>&1)
	check "$m: a second teardown has nothing to do" grep -q "nothing to undo" <<<"$out"
	topo_down
}

main() {
	local m methods=()
	if (($# > 0)); then
		methods=("$@")
	else
		methods=(dsr ipip gue nat)
	fi
	XLBT_EXIT_HOOK=summary
	xlbt_install_traps
	if ! xlbt_preflight; then
		PREREQ_FAILED=1
		not_ok "prerequisites: $XLBT_PREFLIGHT_ERROR"
		exit 2
	fi
	if [[ ! -x $SCRIPT ]]; then
		PREREQ_FAILED=1
		not_ok "prerequisites: $SCRIPT is missing or not executable"
		exit 2
	fi
	TEST_TMP=$(mktemp -d "/tmp/$XLBT_PREFIX-test.XXXXXX") || {
		not_ok "prerequisites: cannot create a temporary directory"
		exit 2
	}
	xlbt_log "xlbctl: $XLBCTL; namespaces: $XLBT_PREFIX-*, bpffs: $XLBT_BPFFS_BASE"
	for m in "${methods[@]}"; do
		run_method "$m"
	done
	exit 0
}

main "$@"
