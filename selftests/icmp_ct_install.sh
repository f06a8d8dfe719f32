#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Installing with `make install`, as a user does on their own kernel: with the running
# kernel's tree at /lib/modules/KVER/build (here the test kernel's tree, $ICMP_CT_KDIR),
# `make install` puts icmp_ct.ko under /lib/modules/KVER/extra and runs depmod, `modprobe
# icmp_ct` loads it and it tracks, and `make uninstall` takes it away so that modprobe no longer
# finds it. The same with INSTALL_MOD_PATH, as a package build does.
#
# Run alone, `make install` builds the module here, in the guest, from a copy of the sources
# (5-7 minutes under TCG). `make check` builds that copy on the host first (`icmp_ct_install.sh
# --prebuild DIR KDIR`, DIR shared with the guest through /tmp) and the guest's `make install`
# finds it up to date (ICMP_CT_INSTALL_PREBUILT=DIR).
#
# Environment: ICMP_CT_KDIR (required: the tree of the running kernel),
# ICMP_CT_INSTALL_PREBUILT (optional: the directory --prebuild filled for this kernel).

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"
# shellcheck source=install_lib.sh
source "$SELFTESTS_DIR/install_lib.sh"

# --prebuild DIR KDIR (on the host): the sources in DIR/src, built against KDIR.
if [ "${1:-}" = --prebuild ]; then
	trap - EXIT
	dir=${2:?--prebuild DIR KDIR} kdir=${3:?--prebuild DIR KDIR}
	rm -rf "$dir" && mkdir -p "$dir/src" && copy_sources "$dir/src" &&
		make -s -C "$dir/src" module KDIR="$kdir"
	exit
fi

[ -n "${ICMP_CT_KDIR:-}" ] ||
	ktap_skip_all "ICMP_CT_KDIR is not set: point it at the running kernel's tree"
require_root
require_cmd make modprobe modinfo depmod unshare rsync ping
command -v rustc >/dev/null || PATH=$PATH:${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
require_cmd rustc bindgen clang
KDIR=$(readlink -m "$ICMP_CT_KDIR")
KVER=$(uname -r)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/icmp_ct_install.XXXXXX") || ktap_skip_all "mktemp -d failed"
SRC=${ICMP_CT_INSTALL_PREBUILT:+$ICMP_CT_INSTALL_PREBUILT/src}
STAGE=$WORK/stage
reload_at_exit=0
test_cleanup()
{
	module_is_loaded && modprobe -r icmp_ct
	rm -f "$MODDIR/extra/icmp_ct.ko"
	moddir_restore
	rm -rf "$WORK"
	[ "$reload_at_exit" = 1 ] && module_restore
}

# make_in_tree ARGS...: make ARGS in the sources, with the kernel tree at its own path.
make_in_tree()
{
	in_tree_ns "$WORK/root" "$KDIR" make -C "$SRC" "$@"
}

ktap_header
ktap_plan 15

if module_is_loaded; then
	rmmod icmp_ct || ktap_bail_out "icmp_ct is loaded and cannot be removed"
	reload_at_exit=1
fi
kmsg_mark
mkdir -p "$WORK/root"
if [ -z "$SRC" ]; then
	SRC=$WORK/src
	{ mkdir -p "$SRC" && copy_sources "$SRC"; } || ktap_bail_out "cannot copy the sources"
fi
moddir_writable || ktap_bail_out "cannot make $MODDIR writable"
ln -s "$KDIR" "$MODDIR/build" || ktap_bail_out "cannot link $MODDIR/build"

# As a user runs it: no KDIR, so the running kernel's build link.
start=$SECONDS
out=$(make_in_tree install)
rc=$?
ktap_msg "$out"
ktap_msg "make install took $((SECONDS - start)) s"
ktap_expect_eq "make install (the running kernel's tree)" 0 "$rc"
ktap_check "icmp_ct.ko is in $MODDIR/extra" test -f "$MODDIR/extra/icmp_ct.ko"
ko=$(modinfo -n icmp_ct 2>&1)
ktap_msg "modinfo -n icmp_ct: $ko"
ktap_expect_eq "depmod ran: modinfo finds the installed module" "$MODDIR/extra/icmp_ct.ko" "$ko"
modprobe_tracks "make install"

out=$(make_in_tree uninstall)
rc=$?
ktap_msg "$out"
ktap_expect_eq "make uninstall" 0 "$rc"
ktap_check "icmp_ct.ko is gone from $MODDIR/extra" test ! -e "$MODDIR/extra/icmp_ct.ko"
ktap_check "modprobe icmp_ct no longer finds it" eval '! modprobe icmp_ct 2>/dev/null'

# As a package build does: into a staging root, whose own modules.dep lists it.
out=$(make_in_tree install INSTALL_MOD_PATH="$STAGE")
ktap_expect_eq "make install INSTALL_MOD_PATH=..." 0 "$?" || ktap_msg "$out"
ktap_check "depmod -b ran: the staging root's modules.dep lists extra/icmp_ct.ko" \
	grep -q '^extra/icmp_ct.ko:' "$STAGE/lib/modules/$KVER/modules.dep"
out=$(make_in_tree uninstall INSTALL_MOD_PATH="$STAGE")
ktap_expect_eq "make uninstall INSTALL_MOD_PATH=..." 0 "$?" || ktap_msg "$out"
ktap_check "the staging root no longer has or lists it" eval \
	"test ! -e '$STAGE/lib/modules/$KVER/extra/icmp_ct.ko' &&
	! grep -q icmp_ct '$STAGE/lib/modules/$KVER/modules.dep'"

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
