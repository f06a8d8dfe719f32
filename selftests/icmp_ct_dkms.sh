#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Installing with DKMS, as a user does on their own kernel: dkms.conf at the repository root
# builds icmp_ct against the running kernel's tree (/lib/modules/$(uname -r)/build, here the
# test kernel's tree from $ICMP_CT_KDIR), `dkms install` puts it under /lib/modules and runs
# depmod, and `modprobe icmp_ct` loads it and it tracks; `dkms remove` takes it away again.
# A kernel without CONFIG_RUST, or without its Rust build artifacts, is refused before any
# compiling, with scripts/check-kdir.sh's reason and dkms's "skip" status 77.
#
# Run alone, the test builds the module here, in the guest, from a copy of the sources: 288
# to 435 s under TCG on the shared 2-core machine (10 s on the host), most of the 600 s a
# test may take. So `make check` builds the DKMS package on the host first, with dkms against
# the same tree (`icmp_ct_dkms.sh --prebuild DIR KDIR`, DIR shared with the guest through
# /tmp), and the guest installs that build (ICMP_CT_DKMS_PREBUILT=DIR). The DKMS trees are
# temporary directories, so the system's DKMS state is left alone. /lib/modules/KVER and the
# kernel tree are made usable in the guest as install_lib.sh says.
#
# Environment: ICMP_CT_KDIR (required: the tree of the running kernel), ICMP_CT_DKMS_PREBUILT
# (optional: the directory --prebuild filled for this kernel).

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"
# shellcheck source=install_lib.sh
source "$SELFTESTS_DIR/install_lib.sh"

PKG=icmp_ct/0.1

# --prebuild DIR KDIR (on the host): add the sources to the DKMS trees in DIR and build them
# for KDIR's kernel, as the guest would.
if [ "${1:-}" = --prebuild ]; then
	trap - EXIT
	dir=${2:?--prebuild DIR KDIR} kdir=${3:?--prebuild DIR KDIR}
	rm -rf "$dir" && mkdir -p "$dir/dkms" "$dir/usrsrc" "$dir/src" && copy_sources "$dir/src" &&
		dkms --dkmstree "$dir/dkms" --sourcetree "$dir/usrsrc" add "$dir/src" &&
		dkms --dkmstree "$dir/dkms" --sourcetree "$dir/usrsrc" build "$PKG" \
			-k "$(cat "$kdir/include/config/kernel.release")" --kernelsourcedir "$kdir"
	exit
fi

[ -n "${ICMP_CT_KDIR:-}" ] ||
	ktap_skip_all "ICMP_CT_KDIR is not set: point it at the running kernel's tree"
require_root
require_cmd dkms make modprobe modinfo depmod unshare rsync ping
command -v rustc >/dev/null || PATH=$PATH:${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
require_cmd rustc bindgen clang
KDIR=$(readlink -m "$ICMP_CT_KDIR")
KVER=$(uname -r)
PREBUILT=${ICMP_CT_DKMS_PREBUILT:-}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/icmp_ct_dkms.XXXXXX") || ktap_skip_all "mktemp -d failed"
TREES=${PREBUILT:-$WORK}
reload_at_exit=0
test_cleanup()
{
	module_is_loaded && modprobe -r icmp_ct
	dkms_ns remove "$PKG" --all >/dev/null 2>&1
	moddir_restore
	rm -rf "$WORK"
	[ "$reload_at_exit" = 1 ] && module_restore
}

# dkms_ns ARGS...: dkms ARGS with the DKMS trees in TREES and the kernel tree at its path.
dkms_ns()
{
	in_tree_ns "$WORK/root" "$KDIR" dkms --dkmstree "$TREES/dkms" --sourcetree "$TREES/usrsrc" "$@"
}

# fake_tree DIR CONFIG...: a kernel tree that looks built (6.12) with the given .config lines.
fake_tree()
{
	local d=$1
	shift
	mkdir -p "$d/include/generated"
	echo "# not a kernel" >"$d/Makefile"
	printf '#define UTS_RELEASE "6.12.0-fake"\n' >"$d/include/generated/utsrelease.h"
	printf '%s\n' "$@" >"$d/.config"
}

# refused NAME REASON TREE: dkms build for a kernel whose tree is TREE exits 77 (skipped) with
# check-kdir.sh's REASON and without starting a build.
refused()
{
	local out rc
	out=$(dkms_ns build "$PKG" -k "$1" --kernelsourcedir "$3")
	rc=$?
	ktap_msg "$out"
	[ "$rc" = 77 ] && grep -q "^icmp_ct: cannot build against $3: $2" <<<"$out" &&
		! grep -q "Building module" <<<"$out"
}

ktap_header
ktap_plan 13

if module_is_loaded; then
	rmmod icmp_ct || ktap_bail_out "icmp_ct is loaded and cannot be removed"
	reload_at_exit=1
fi
kmsg_mark

mkdir -p "$WORK/root" "$WORK/dkms" "$WORK/usrsrc" "$WORK/src"
# A writable /lib/modules/KVER with its build link, as a kernel's headers package leaves it.
moddir_writable || ktap_bail_out "cannot make $MODDIR writable"
ln -s "$KDIR" "$MODDIR/build" || ktap_bail_out "cannot link $MODDIR/build"

if [ -n "$PREBUILT" ]; then
	# Added and built on the host (--prebuild); dkms install only installs that build.
	status=$(dkms_ns status "$PKG")
	ktap_msg "prebuilt in $PREBUILT: $status"
	ktap_check "dkms add (on the host)" grep -q "^$PKG" <<<"$status"
	ktap_check "dkms build against the running kernel's tree (on the host)" \
		grep -q "^$PKG, $KVER, [^:]*: built" <<<"$status"
else
	copy_sources "$WORK/src" || ktap_bail_out "cannot copy the sources"
	out=$(dkms_ns add "$WORK/src")
	ktap_expect_eq "dkms add" 0 "$?" || ktap_msg "$out"
	start=$SECONDS
	out=$(dkms_ns build "$PKG" -k "$KVER")
	rc=$?
	ktap_msg "$out"
	ktap_msg "dkms build took $((SECONDS - start)) s"
	[ "$rc" = 0 ] ||
		ktap_msg "make.log:" "$(tail -n 30 "$WORK/dkms/icmp_ct/0.1/build/make.log" 2>&1)"
	ktap_expect_eq "dkms build against the running kernel's tree" 0 "$rc"
fi
out=$(dkms_ns install "$PKG" -k "$KVER")
ktap_expect_eq "dkms install" 0 "$?" || ktap_msg "$out"
ko=$(modinfo -n icmp_ct 2>&1)
ktap_msg "modinfo -n icmp_ct: $ko"
ktap_expect_eq "modinfo finds the installed module under $MODDIR" "$MODDIR/" "${ko:0:${#MODDIR}+1}"

modprobe_tracks DKMS

fake_tree "$WORK/norust" "# CONFIG_RUST is not set"
ktap_check "a kernel without CONFIG_RUST is skipped with the reason" \
	refused 6.12.0-norust "CONFIG_RUST is not set" "$WORK/norust"
fake_tree "$WORK/nometa" CONFIG_RUST=y
ktap_check "a kernel without its Rust artifacts is skipped with the reason" \
	refused 6.12.0-nometa "rust/libcore.rmeta missing" "$WORK/nometa"

out=$(dkms_ns remove "$PKG" --all)
ktap_expect_eq "dkms remove" 0 "$?" || ktap_msg "$out"
ktap_check "modprobe no longer finds icmp_ct" eval '! modinfo -n icmp_ct >/dev/null 2>&1'

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
