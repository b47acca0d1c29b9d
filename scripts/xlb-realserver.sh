#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# xlb-realserver.sh - prepare a Linux real server for an xlb forwarding
# method, and undo it.  docs/realserver.md explains every step.
#
#   xlb-realserver.sh setup|teardown --method dsr|ipip|gue|nat
#       [--vip ADDR]...        VIPs the server answers for (dsr, ipip, gue)
#       [--lb ADDR]...         the balancer's address, one per family (nat:
#                              the new default gateway)
#       [--iface IF]           the interface towards the balancer (default:
#                              the one of the route to --lb, else of the
#                              default route)
#       [--addr ADDR]...       ipip/gue: tunnel endpoints the decap program
#                              accepts (default: the global addresses of IF)
#       [--gue-port N] [--mode native|generic|auto]   passed to decap attach
#       [--bpffs DIR] [--xlbctl PATH]                  likewise
#       [--state FILE]         what setup changed (default: one file per
#                              network namespace under /run/xlb)
#
# setup is idempotent: run again, it changes nothing that is already as it
# should be and keeps the original values it recorded the first time.
# teardown undoes exactly what setup changed (an address that was already
# on lo stays, a sysctl setup did not change is not touched) and removes
# the state file; without one it has nothing to do.
#
# Exit status: 0 done, 1 a step failed, 2 usage.
set -u -o pipefail

PROG=xlb-realserver
ACTION=
METHOD=
VIPS=()
LBS=()
ADDRS=()
IFACE=
GUE_PORT=
MODE=
BPFFS=
XLBCTL=xlbctl
STATE=

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	printf 'usage: xlb-realserver.sh setup|teardown --method dsr|ipip|gue|nat [--vip ADDR]... [--lb ADDR]...\n' >&2
	printf '       [--iface IF] [--addr ADDR]... [--gue-port N] [--mode M] [--bpffs DIR] [--xlbctl PATH] [--state FILE]\n' >&2
	exit 2
}

need_arg() { [[ $# -ge 2 && -n $2 ]] || usage "$1 needs a value"; }

(($# > 0)) || usage "setup or teardown?"
case $1 in
setup | teardown) ACTION=$1 ;;
-h | --help) usage "prepare a real server for xlb" ;;
*) usage "unknown action '$1' (setup or teardown)" ;;
esac
shift
while (($# > 0)); do
	case $1 in
	--method) need_arg "$@"; METHOD=$2 ;;
	--vip) need_arg "$@"; VIPS+=("$2") ;;
	--lb) need_arg "$@"; LBS+=("$2") ;;
	--iface) need_arg "$@"; IFACE=$2 ;;
	--addr) need_arg "$@"; ADDRS+=("$2") ;;
	--gue-port) need_arg "$@"; GUE_PORT=$2 ;;
	--mode) need_arg "$@"; MODE=$2 ;;
	--bpffs) need_arg "$@"; BPFFS=$2 ;;
	--xlbctl) need_arg "$@"; XLBCTL=$2 ;;
	--state) need_arg "$@"; STATE=$2 ;;
	*) usage "unknown option '$1'" ;;
	esac
	shift 2
done
case $METHOD in
dsr | ipip | gue | nat) ;;
'') usage "--method is required" ;;
*) usage "--method must be dsr, ipip, gue or nat, not '$METHOD'" ;;
esac
command -v ip >/dev/null 2>&1 || die "ip(8) (iproute2) is required"

is_v6() { [[ $1 == *:* ]]; }

# The state file of this network namespace: setups of different
# namespaces (containers, test namespaces) must not share one.
if [[ -z $STATE ]]; then
	ns=$(readlink /proc/self/ns/net 2>/dev/null) || ns='net:[0]'
	ns=${ns#net:[}
	STATE=/run/xlb/realserver-net${ns%]}.state
fi

# ---------------------------------------------------------------------------
# The state file: one record per line, in the order setup made the changes.
#   method M                 the method set up
#   addr ADDR/PLEN           an address setup put on lo
#   sysctl PATH VALUE        a /proc/sys file setup changed, and its old value
#   decap IF BPFFS XLBCTL    setup attached the decap program to IF
#   defroute4|6 ROUTE...     a default route setup replaced ("-": none)
#   natroute4|6 LB IF        the default route setup installed

state_has() { [[ -f $STATE ]] && grep -qxF -- "$1" "$STATE"; }
state_has_prefix() { [[ -f $STATE ]] && grep -q -- "^$1" "$STATE"; }
record() {
	state_has "$*" || printf '%s\n' "$*" >>"$STATE" || die "cannot write $STATE"
}

# Write VALUE to /proc/sys file PATH, recording the old value the first time.
set_proc() {
	local path=$1 want=$2 cur
	[[ -w $path ]] || die "$path does not exist or is not writable (run as root)"
	cur=$(<"$path")
	if [[ $cur != "$want" ]]; then
		state_has_prefix "sysctl $path " || record "sysctl $path $cur"
		printf '%s\n' "$want" >"$path" || die "cannot write $want to $path"
		say "$path: $cur -> $want"
	fi
}

# The interface towards the balancer.
find_iface() {
	local target out
	[[ -n $IFACE ]] && return 0
	if ((${#LBS[@]} > 0)); then
		target=${LBS[0]}
		out=$(ip route get "$target" 2>/dev/null)
	else
		out=$(ip route show default 2>/dev/null | head -n 1)
		[[ -n $out ]] || out=$(ip -6 route show default 2>/dev/null | head -n 1)
	fi
	[[ $out =~ dev[[:space:]]+([^[:space:]]+) ]] || die "cannot tell the interface towards the balancer: give --iface"
	IFACE=${BASH_REMATCH[1]}
}

# The VIPs on lo, as host routes: the server accepts the VIP as its own
# address (and answers from it) without announcing it on the network.
vips_on_lo() {
	local v plen
	((${#VIPS[@]} > 0)) || usage "--method $METHOD needs at least one --vip"
	for v in "${VIPS[@]}"; do
		if is_v6 "$v"; then plen=128; else plen=32; fi
		# Read the whole list before matching: ip writes one line at a
		# time, and a grep that stops at the first match would end the
		# pipeline with SIGPIPE, which pipefail reports as "absent".
		if grep -qwF -- "$v/$plen" <<<"$(ip -o addr show dev lo)"; then
			state_has "addr $v/$plen" || say "$v/$plen is on lo already (left as it is)"
			continue
		fi
		if is_v6 "$v"; then
			# No duplicate address detection: every real holds this address.
			ip -6 addr add "$v/128" dev lo nodad || die "cannot add $v/128 to lo"
		else
			ip addr add "$v/32" dev lo || die "cannot add $v/32 to lo"
		fi
		record "addr $v/$plen"
		say "added $v/$plen to lo"
	done
}

# Never answer ARP for the VIP on the network, nor use it as the source of
# ARP requests: the balancer (or its router) owns it there.
arp_quiet() {
	local c
	for c in all "$IFACE"; do
		set_proc "/proc/sys/net/ipv4/conf/$c/arp_ignore" 1
		set_proc "/proc/sys/net/ipv4/conf/$c/arp_announce" 2
	done
}

setup_dsr() {
	find_iface
	vips_on_lo
	arp_quiet
}

setup_tunnel() {
	local a args=() addrs=("${ADDRS[@]}")
	find_iface
	vips_on_lo
	arp_quiet
	# Decapsulated packets carry the client's address as source; strict
	# reverse-path filtering drops them whenever the route back to the
	# client is not through this interface.  The effective value is the
	# larger of "all" and the interface's, so both go to 0.
	set_proc /proc/sys/net/ipv4/conf/all/rp_filter 0
	set_proc "/proc/sys/net/ipv4/conf/$IFACE/rp_filter" 0
	if state_has_prefix "decap $IFACE "; then
		say "decap program on $IFACE already attached by an earlier setup"
		return 0
	fi
	if ((${#addrs[@]} == 0)); then
		mapfile -t addrs < <(ip -o addr show dev "$IFACE" scope global |
			awk '{ split($4, a, "/"); print a[1] }')
	fi
	((${#addrs[@]} > 0)) || die "$IFACE has no global address to accept tunnels on: give --addr"
	command -v "$XLBCTL" >/dev/null 2>&1 || [[ -x $XLBCTL ]] || die "xlbctl not found: give --xlbctl PATH"
	for a in "${addrs[@]}"; do
		args+=(--addr "$a")
	done
	[[ -n $GUE_PORT ]] && args+=(--gue-port "$GUE_PORT")
	[[ -n $MODE ]] && args+=(--mode "$MODE")
	[[ -n $BPFFS ]] && args+=(--bpffs "$BPFFS")
	"$XLBCTL" decap attach --iface "$IFACE" "${args[@]}" || die "xlbctl decap attach failed"
	record "decap $IFACE ${BPFFS:--} $XLBCTL"
	say "decap program attached to $IFACE for ${addrs[*]}"
}

# ROUTE_WORDS: the words of a route as "ip route show" prints it, without
# the flags that "ip route add/del" refuse.
ROUTE_WORDS=()
route_words() {
	local w
	ROUTE_WORDS=()
	for w in "$@"; do
		case $w in linkdown | dead | offload | trap | rt_offload | rt_trap) ;; *) ROUTE_WORDS+=("$w") ;; esac
	done
}

# The balancer becomes the default gateway, so that replies go back
# through it and get their source translated back to the VIP.  The
# default routes there were (of any metric) are removed, and recorded.
setup_nat() {
	local lb fam f line
	local -a dev
	((${#LBS[@]} > 0)) || usage "--method nat needs --lb ADDR (the balancer's address)"
	for lb in "${LBS[@]}"; do
		if is_v6 "$lb"; then fam=6; else fam=4; fi
		f=-$fam
		if ! state_has_prefix "defroute$fam "; then
			local saved=()
			mapfile -t saved < <(ip "$f" route show default | sed 's/ expires [0-9]*sec//')
			((${#saved[@]} > 0)) || record "defroute$fam -"
			for line in "${saved[@]}"; do
				[[ -n $line ]] || continue
				record "defroute$fam $line"
				# shellcheck disable=SC2086  # a route is space-separated words
				route_words $line
				ip "$f" route del "${ROUTE_WORDS[@]}" ||
					die "cannot remove the default route '$line'"
				say "removed the default route '$line'"
			done
		fi
		dev=()
		[[ -n $IFACE ]] && dev=(dev "$IFACE")
		ip "$f" route replace default via "$lb" "${dev[@]}" ||
			die "cannot make $lb the default gateway (is it on a connected network?)"
		record "natroute$fam $lb ${IFACE:--}"
		say "default route (IPv$fam) via $lb"
	done
}

# ---------------------------------------------------------------------------
# Teardown: the records in reverse order.

undo_record() {
	local kind=$1
	shift
	case $kind in
	addr)
		if ip addr del "$1" dev lo 2>/dev/null; then say "removed $1 from lo"; fi
		;;
	sysctl)
		if printf '%s\n' "$2" >"$1" 2>/dev/null; then
			say "$1 back to $2"
		else
			say "warning: cannot restore $1 to $2"
		fi
		;;
	decap)
		local args=() ctl=${3:-$XLBCTL}
		[[ $2 != - ]] && args=(--bpffs "$2")
		if "$ctl" decap detach --iface "$1" "${args[@]}"; then
			say "decap program detached from $1"
		else
			say "warning: 'xlbctl decap detach --iface $1' failed"
		fi
		;;
	natroute4 | natroute6)
		ip "-${kind#natroute}" route del default via "$1" 2>/dev/null &&
			say "default route via $1 removed"
		;;
	defroute4 | defroute6)
		[[ $1 == - ]] && return 0
		route_words "$@"
		if ip "-${kind#defroute}" route add "${ROUTE_WORDS[@]}" 2>/dev/null; then
			say "restored the default route '${ROUTE_WORDS[*]}'"
		else
			say "warning: cannot restore the default route '${ROUTE_WORDS[*]}'"
		fi
		;;
	method) ;;
	*) say "warning: unknown record '$kind $*' in $STATE" ;;
	esac
}

teardown() {
	local lines=() i rec
	if [[ ! -f $STATE ]]; then
		say "nothing to undo ($STATE does not exist)"
		return 0
	fi
	rec=$(head -n 1 "$STATE")
	[[ $rec == "method $METHOD" ]] || die "$STATE records '${rec#method }', not $METHOD: run teardown with --method ${rec#method }"
	mapfile -t lines <"$STATE"
	set -f
	for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
		# shellcheck disable=SC2086  # records are space-separated words
		undo_record ${lines[i]}
	done
	set +f
	rm -f -- "$STATE" || die "cannot remove $STATE"
	say "teardown of $METHOD done"
}

if [[ $ACTION == teardown ]]; then
	teardown
	exit 0
fi

mkdir -p -- "$(dirname -- "$STATE")" || die "cannot create $(dirname -- "$STATE")"
if [[ -f $STATE ]]; then
	rec=$(head -n 1 "$STATE")
	[[ $rec == "method $METHOD" ]] || die "this host is set up for '${rec#method }' ($STATE): run 'xlb-realserver.sh teardown --method ${rec#method }' first"
else
	record "method $METHOD"
fi
case $METHOD in
dsr) setup_dsr ;;
ipip | gue) setup_tunnel ;;
nat) setup_nat ;;
esac
say "setup of $METHOD done; 'xlb-realserver.sh teardown --method $METHOD' undoes it (state: $STATE)"
