# shellcheck shell=bash
# bpffs for the integration scripts: mounted on /sys/fs/bpf when nothing is
# there (as xlbctl and xlb-agent do themselves), and unmounted again at the
# script's exit if this script mounted it and left it empty.  Unmounting
# happens only at exit: a script that tears its topology down and builds
# another one keeps the mount.
#
#   xlbt_bpffs_need || fail     # at the start; message in XLBT_BPFFS_ERROR
#   xlbt_bpffs_release          # in the exit handler, after removing pins

XLBT_BPFFS_ROOT=/sys/fs/bpf
XLBT_MOUNTED_BPFFS=0
XLBT_BPFFS_ERROR=

xlbt_is_bpffs() {
	[[ $(stat -f -c %T -- "$1" 2>/dev/null) == bpf_fs ]]
}

xlbt_bpffs_need() {
	xlbt_is_bpffs "$XLBT_BPFFS_ROOT" && return 0
	if ! mount -t bpf -o mode=0700 bpf "$XLBT_BPFFS_ROOT" 2>/dev/null; then
		XLBT_BPFFS_ERROR="no bpffs at $XLBT_BPFFS_ROOT and mounting one failed (BPF unavailable?)"
		return 1
	fi
	XLBT_MOUNTED_BPFFS=1
	printf '# mounted bpffs on %s\n' "$XLBT_BPFFS_ROOT" >&2
}

xlbt_bpffs_release() {
	local left
	((XLBT_MOUNTED_BPFFS)) || return 0
	# maps.debug and progs.debug are the kernel's own (bpf_preload).
	left=$(find "$XLBT_BPFFS_ROOT" -mindepth 1 -maxdepth 1 ! -name maps.debug \
		! -name progs.debug 2>/dev/null)
	if [[ -n $left ]]; then
		printf '# bpffs left mounted on %s: it holds %s\n' "$XLBT_BPFFS_ROOT" "${left//$'\n'/ }" >&2
	elif umount "$XLBT_BPFFS_ROOT" 2>/dev/null; then
		XLBT_MOUNTED_BPFFS=0
	else
		printf '# could not unmount the bpffs on %s\n' "$XLBT_BPFFS_ROOT" >&2
	fi
}
