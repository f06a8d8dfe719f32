#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the tests that install icmp_ct as a user does (icmp_ct_install.sh with make
# install, icmp_ct_dkms.sh with DKMS); sourced after lib.sh, never run.
#
# In a virtme-ng guest /lib/modules/KVER is a symlink to a read-only staging directory, and the
# kernel tree is hidden under vng's tmpfs on /var/cache. moddir_writable puts a writable copy
# of the staging directory in the symlink's place (moddir_restore puts the link back), and
# in_tree_ns runs a command in a private mount namespace where the tree is at its own path
# again, so that a module built against it on the host is up to date there.

INSTALL_REPO=$(readlink -e "$SELFTESTS_DIR/..")
MODDIR=/lib/modules/$(uname -r)
MODDIR_LINK=""

# copy_sources DST: the sources as a clone has them (no build products, no host test target).
copy_sources()
{
	rsync -a --exclude=/rust/proto/target --exclude='*.o' --exclude='*.ko' --exclude='.*.cmd' \
		--exclude=/.git --exclude=/results --exclude='/.build-*' "$INSTALL_REPO/" "$1/"
}

# moddir_writable: MODDIR as a kernel's package leaves it, writable, with no build link.
moddir_writable()
{
	local staged
	if [ -L "$MODDIR" ]; then
		MODDIR_LINK=$(readlink "$MODDIR")
		staged=$(readlink -e "$MODDIR")
		rm "$MODDIR" && cp -a "$staged" "$MODDIR" || return
	fi
	rm -f "$MODDIR/build"
}

moddir_restore()
{
	[ -n "$MODDIR_LINK" ] || return 0
	rm -rf "$MODDIR" && ln -s "$MODDIR_LINK" "$MODDIR"
}

# in_tree_ns ROOT KDIR CMD...: CMD in a private mount namespace where the kernel tree KDIR is
# reachable at its own path (through a bind mount of / on the empty directory ROOT where
# vng's tmpfs hides it); output and status are CMD's (125: the mounts failed).
# shellcheck disable=SC2016 # the script is for "bash -c"
IN_TREE_NS_SH='
	root=$1 kdir=$2
	shift 2
	if [ ! -e "$kdir/.config" ]; then
		{ mount --bind / "$root" && mkdir -p "$kdir" &&
			mount --bind "$root$kdir" "$kdir"; } || exit 125
	fi
	exec "$@"
'
in_tree_ns()
{
	unshare -m --propagation private bash -c "$IN_TREE_NS_SH" in-tree-ns "$@" 2>&1
}

# modprobe_tracks HOW: four checks that the module HOW installed loads with `modprobe`, logs
# its one "loaded" line, sees a ping at every hook, and unloads with `modprobe -r`.
modprobe_tracks()
{
	local how=$1 lines ns before b0 b1 b2 b3 a0 a1 a2 a3
	local loaded_re='^(\[[^]]*\] )?icmp_ct: loaded \('
	lines=$(dmesg | grep -cE "$loaded_re")
	ktap_check "modprobe icmp_ct ($how)" modprobe icmp_ct
	ktap_expect_eq "it logs one 'icmp_ct: loaded (' line" 1 \
		$(($(dmesg | grep -cE "$loaded_re") - lines))
	ns_create ns || ktap_bail_out "cannot create a namespace"
	# A loopback ping of 3 passes each of the four hooks 6 times.
	before=$(hooks_get "$ns")
	ping_ok "$ns" 127.0.0.1 3
	read -r b0 b1 b2 b3 <<<"$before"
	read -r a0 a1 a2 a3 <<<"$(hooks_get "$ns")"
	ktap_expect_eq "the module $how installed sees a ping at every hook" "6 6 6 6" \
		"$((a0 - b0)) $((a1 - b1)) $((a2 - b2)) $((a3 - b3))"
	ns_delete "$ns"
	ktap_check "modprobe -r icmp_ct" modprobe -r icmp_ct
}
