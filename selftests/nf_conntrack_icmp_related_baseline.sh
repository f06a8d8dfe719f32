#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Baseline for icmp_ct_icmp_related.sh: the kernel's own
# tools/testing/selftests/net/netfilter/conntrack_icmp_related.sh, run unmodified against
# nf_conntrack, with icmp_ct NOT loaded.
#
#   client1 -- router1 -- router2 -- client2   (MTU 1280 on the router2 -- client2 link,
#                                               masquerade on router1, IPv4 and IPv6)
#
# The kernel tree comes from $ICMP_CT_KDIR (e.g. "$(scripts/kernel.sh path normal)"); without
# it the test is skipped.  The original is run from its own directory, so that its
# "source lib.sh" finds net/netfilter/lib.sh, which sources net/lib.sh.  None of them writes
# a file (setup_ns only uses "mktemp -u", which creates nothing), so read-only would do; but
# a virtme-ng guest does not see the tree at all where scripts/kernel.sh puts it: vng mounts
# a tmpfs over /var/cache.  So the test copies net/lib.sh and net/netfilter/ unchanged into a
# temporary directory (checked with cmp) and runs the original there.  When the tree is hidden
# by a mount, the copy is read through a non-recursive bind mount of / (the guest's 9p view
# of the host's root, without the mounts on top of it), in a private mount namespace.
#
# KTAP: one subtest per "PASS: ..." line the original can print (read from the script
# itself, so the plan follows the kernel version), passed if it printed it; one subtest
# for its exit status.  Exit status: 0 only if the original exits 0; 4 if it skipped.
# Everything the original prints is shown as "# " lines.
#
# Environment: ICMP_CT_KDIR (required), BASELINE_TIMEOUT (seconds, default 300).

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

ORIG_REL=tools/testing/selftests/net/netfilter/conntrack_icmp_related.sh

[ -n "${ICMP_CT_KDIR:-}" ] ||
	ktap_skip_all "ICMP_CT_KDIR is not set: point it at a kernel tree with $ORIG_REL" \
		"(e.g. ICMP_CT_KDIR=\$(scripts/kernel.sh path normal))"
require_root
require_cmd ip nft ping timeout cmp
KDIR=$(readlink -m "$ICMP_CT_KDIR")
SRC_NET=$KDIR/${ORIG_REL%/netfilter/*}

COPY=$(mktemp -d "${TMPDIR:-/tmp}/nf_ct_icmp_related.XXXXXX") || ktap_skip_all "mktemp -d failed"
test_cleanup()
{
	rm -rf "$COPY"
}

# copy_from SRC_NET DST: net/lib.sh and net/netfilter/ of SRC_NET into DST/net, verified.
# shellcheck disable=SC2016 # the script is for "bash -c"
COPY_SH='
	src=$1 dst=$2
	[ -f "$src/netfilter/conntrack_icmp_related.sh" ] || exit 3
	rm -rf "$dst/net" && mkdir -p "$dst/net" &&
		cp "$src/lib.sh" "$dst/net/lib.sh" &&
		cp -R "$src/netfilter" "$dst/net/netfilter" &&
		cmp "$src/lib.sh" "$dst/net/lib.sh" &&
		cmp "$src/netfilter/lib.sh" "$dst/net/netfilter/lib.sh" &&
		cmp "$src/netfilter/conntrack_icmp_related.sh" "$dst/net/netfilter/conntrack_icmp_related.sh"
'
# Through the root file system without what is mounted on it (e.g. vng's tmpfs on /var/cache).
# shellcheck disable=SC2016 # the script is for "bash -c"
BIND_SH='
	mnt=$1
	shift
	mount --bind / "$mnt" || exit 3
	bash -c "$@"
'
how=""
if copy_err=$(bash -c "$COPY_SH" copy "$SRC_NET" "$COPY" 2>&1); then
	how="copied from $SRC_NET"
elif command -v unshare >/dev/null && mkdir "$COPY/root" &&
	copy_err=$(unshare -m --propagation private bash -c "$BIND_SH" bind "$COPY/root" \
		"$COPY_SH" copy "$COPY/root$SRC_NET" "$COPY" 2>&1); then
	how="copied from $SRC_NET, hidden by a mount here: read through a bind mount of /"
fi
rmdir "$COPY/root" 2>/dev/null
[ -n "$how" ] || ktap_skip_all "$KDIR/$ORIG_REL not found, neither directly nor under a bind" \
	"mount of / (ICMP_CT_KDIR=$ICMP_CT_KDIR)${copy_err:+: ${copy_err//$'\n'/; }}"
ORIG=$COPY/net/netfilter/$(basename "$ORIG_REL")
ORIG_DIR=$(dirname "$ORIG")

# The subtests: the original's PASS messages, as written in it.
mapfile -t PASS_MSGS < <(sed -n 's/^[[:space:]]*echo "PASS: \(.*\)"[[:space:]]*$/\1/p' "$ORIG")
[ "${#PASS_MSGS[@]}" -gt 0 ] || ktap_skip_all "no 'echo \"PASS: ...\"' line found in $ORIG"

ktap_header
ktap_plan $((2 + ${#PASS_MSGS[@]}))

# icmp_ct must not take part: the baseline is nf_conntrack alone.  (It is not loaded again
# afterwards; the icmp_ct tests load it themselves when it is missing.)
if module_is_loaded; then
	ktap_msg "icmp_ct is loaded: removing it for the baseline"
	module_unload || ktap_bail_out "icmp_ct is loaded and cannot be removed: $MODULE_ERR"
fi
ktap_check "icmp_ct is not loaded" eval '! module_is_loaded'

kmsg_mark
ktap_msg "original: $KDIR/$ORIG_REL ($how)," \
	"sha256 $(sha256sum "$ORIG" | cut -d' ' -f1); running it from $ORIG_DIR"
start=$(date +%s)
out=$(cd "$ORIG_DIR" && timeout -k 10 "${BASELINE_TIMEOUT:-300}" bash ./"$(basename "$ORIG")" 2>&1)
rc=$?
ktap_msg "$out"
ktap_msg "original exited $rc after $(($(date +%s) - start)) s"
ktap_msg "netfilter modules loaded: $(awk '$1 ~ /^(nf_|nft_)/ { printf "%s ", $1 }' /proc/modules)"
module_is_loaded && ktap_msg "WARNING: icmp_ct got loaded while the baseline ran"

if [ "$rc" = "$ksft_skip" ]; then
	for msg in "${PASS_MSGS[@]}"; do
		ktap_test_skip "$msg" "the original skipped"
	done
	ktap_test_skip "original exits 0" "the original skipped (exit 4)"
	ktap_print_totals
	exit $ksft_skip
fi

for msg in "${PASS_MSGS[@]}"; do
	if grep -qxF "PASS: $msg" <<<"$out"; then
		ktap_test_pass "$msg"
	else
		ktap_test_fail "$msg"
	fi
done
ktap_expect_eq "original exits 0" 0 "$rc"

ktap_finished
