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
# "source lib.sh" finds net/netfilter/lib.sh, which sources net/lib.sh.  Neither writes a
# file (setup_ns only uses "mktemp -u", which creates nothing) and the original writes
# nothing either, so the read-only view of the host's file system that a virtme-ng guest
# has is enough: the tree is used in place, unmodified.
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
ORIG=$ICMP_CT_KDIR/$ORIG_REL
ORIG_DIR=$(dirname "$ORIG")
[ -f "$ORIG" ] || ktap_skip_all "$ORIG not found (ICMP_CT_KDIR=$ICMP_CT_KDIR)"
for f in "$ORIG_DIR/lib.sh" "$ORIG_DIR/../lib.sh"; do
	[ -r "$f" ] || ktap_skip_all "$f not found: the original needs it"
done
require_root
require_cmd ip nft ping timeout

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
ktap_msg "running $ORIG (from $ORIG_DIR)"
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
