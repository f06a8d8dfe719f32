#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Loading and unloading icmp_ct.ko:
# - insmod logs one "icmp_ct: loaded (" line;
# - the stat file, /proc/net/ip_conntrack and the sysctl appear in the initial namespace, in a
#   namespace created before loading and in one created after;
# - a second insmod fails with EEXIST ("File exists") and the loaded instance keeps working;
# - rmmod removes every file and sysctl everywhere; loading again brings them all back.
#
# Topology: two namespaces (PRE, created before loading; POST, after), loopback only.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

LOADED_RE='^(\[[^]]*\] )?icmp_ct: loaded \('

require_module
require_cmd ip ping dmesg

ktap_header
ktap_plan 22

# This test loads and unloads the module itself.  An instance loaded by someone else is
# removed first and loaded again at the end.
reload_at_exit=0
if module_is_loaded; then
	rmmod icmp_ct || ktap_bail_out "icmp_ct is loaded and cannot be removed"
	reload_at_exit=1
fi
test_cleanup()
{
	[ "$reload_at_exit" = 1 ] && module_restore
}

loaded_lines()
{
	dmesg | grep -cE "$LOADED_RE"
}

# counts_packets NS: a loopback ping of 3 moves every hook counter of NS by exactly 6.
counts_packets()
{
	local ns=$1 before after

	before=$(hooks_get "$ns") || return 1
	ping_ok "$ns" 127.0.0.1 3 || return 1
	after=$(hooks_get "$ns") || return 1
	read -r b0 b1 b2 b3 <<<"$before"
	read -r a0 a1 a2 a3 <<<"$after"
	[ "$((a0 - b0)) $((a1 - b1)) $((a2 - b2)) $((a3 - b3))" = "6 6 6 6" ] && return 0
	ktap_msg "${ns:-init}: hook counters before '$before', after '$after' (expected +6 each)"
	return 1
}

files_present_everywhere()
{
	module_files_present - && module_files_present "$PRE" && module_files_present "$POST"
}

kmsg_mark
ns_create PRE || ktap_bail_out "cannot create a namespace"

ktap_check "module not loaded, no files yet" module_files_absent -

# First load.
lines=$(loaded_lines)
ktap_check "insmod succeeds" module_load || ktap_msg "insmod: $MODULE_ERR"
ktap_expect_eq "insmod logs one 'icmp_ct: loaded (' line" 1 $(($(loaded_lines) - lines))
ktap_msg "$(dmesg | grep -E "$LOADED_RE" | tail -n 1)"
ns_create POST || ktap_bail_out "cannot create a namespace"
ktap_check "files and sysctl in the initial namespace" module_files_present -
ktap_check "files and sysctl in a namespace created before loading" module_files_present "$PRE"
ktap_check "files and sysctl in a namespace created after loading" module_files_present "$POST"
ktap_check "loaded module counts packets (POST)" counts_packets "$POST"

# Second load of the same module.
lines=$(loaded_lines)
if out=$(insmod "$ICMP_CT_KO" 2>&1); then
	ktap_msg "second insmod succeeded"
	ktap_test_fail "second insmod fails with 'File exists'"
else
	ktap_msg "$out"
	ktap_expect_eq "second insmod fails with 'File exists'" yes \
		"$(grep -q "File exists" <<<"$out" && echo yes || echo no)"
fi
ktap_expect_eq "second insmod logs nothing" 0 $(($(loaded_lines) - lines))
ktap_check "module still loaded after the second insmod" module_is_loaded
ktap_check "first instance still counts packets (PRE)" counts_packets "$PRE"
ktap_check "first instance still counts packets (POST)" counts_packets "$POST"

# Unload.
ktap_check "rmmod succeeds" module_unload || ktap_msg "rmmod: $MODULE_ERR"
ktap_check "rmmod removes the files and sysctl in the initial namespace" module_files_absent -
ktap_check "rmmod removes the files and sysctl in PRE" module_files_absent "$PRE"
ktap_check "rmmod removes the files and sysctl in POST" module_files_absent "$POST"

# Reload.
lines=$(loaded_lines)
ktap_check "insmod again succeeds" module_load || ktap_msg "insmod: $MODULE_ERR"
ktap_expect_eq "insmod again logs one 'icmp_ct: loaded (' line" 1 $(($(loaded_lines) - lines))
ktap_check "reloaded: files and sysctl everywhere" files_present_everywhere
ktap_check "reloaded module counts packets (PRE)" counts_packets "$PRE"
ktap_check "final rmmod succeeds" module_unload || ktap_msg "rmmod: $MODULE_ERR"

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
