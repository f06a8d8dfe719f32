#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Per-namespace state:
# - two namespaces hold independent ip_ct_icmp_timeout values (and a third one, created
#   afterwards, starts at the default);
# - counters are per namespace: traffic in one moves nothing in the other;
# - a namespace deleted while the module is loaded, and the module removed while
#   namespaces (with tracked traffic) exist, leave no BUG/WARNING in the kernel log.
#
# Topology: namespaces A, B, C, D, each on its own; each pings itself over loopback.
# The module is removed by the test; if someone else had loaded it, it is loaded again at
# the end.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

NAME=ip_ct_icmp_timeout

require_module
require_cmd ip ping dmesg

ktap_header
ktap_plan 15

reload_at_exit=0
module_is_loaded && reload_at_exit=1
test_cleanup()
{
	[ "$reload_at_exit" = 1 ] && module_restore
}

kmsg_mark
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
ns_create A B || ktap_bail_out "cannot create namespaces"

# Timeouts.
init_before=$(sysctl_get - $NAME)
sysctl_set "$A" $NAME 11 || ktap_msg "A: write 11: $SYSCTL_ERR"
sysctl_set "$B" $NAME 222 || ktap_msg "B: write 222: $SYSCTL_ERR"
ktap_expect_eq "A keeps its own timeout" 11 "$(sysctl_get "$A" $NAME 2>&1)"
ktap_expect_eq "B keeps its own timeout" 222 "$(sysctl_get "$B" $NAME 2>&1)"
ktap_expect_eq "the initial namespace's timeout is unchanged" "$init_before" "$(sysctl_get - $NAME 2>&1)"
ns_create C || ktap_bail_out "cannot create a namespace"
ktap_expect_eq "a new namespace starts at 30" 30 "$(sysctl_get "$C" $NAME 2>&1)"
sysctl_set "$A" $NAME 12 || ktap_msg "A: write 12: $SYSCTL_ERR"
ktap_expect_eq "writing A again leaves B alone" 222 "$(sysctl_get "$B" $NAME 2>&1)"

# Counters.  Loopback ping of 3 in X: X's hooks see 6 packets each; Y's file does not change.
traffic_isolated()
{
	local x=$1 y=$2 y_before y_after x_before x_after

	y_before=$(stat_dump "$y") || return 1
	x_before=$(hooks_get "$x") || return 1
	ping_ok "$x" 127.0.0.1 3 || return 1
	x_after=$(hooks_get "$x") || return 1
	y_after=$(stat_dump "$y") || return 1
	if [ "$x_before" = "$x_after" ]; then
		ktap_msg "the pinging namespace's hook counters did not move: $x_after"
		return 1
	fi
	[ "$y_before" = "$y_after" ] && return 0
	ktap_msg "counters of the other namespace moved:" \
		"$(diff <(echo "$y_before") <(echo "$y_after"))"
	return 1
}
ktap_check "traffic in A moves nothing in B" traffic_isolated "$A" "$B"
ktap_check "traffic in B moves nothing in A" traffic_isolated "$B" "$A"

# A namespace deleted while the module is loaded, with tracked traffic in it.
ns_create D || ktap_bail_out "cannot create a namespace"
ping_ok "$D" 127.0.0.1 3 >/dev/null
ktap_check "delete a namespace while loaded" ns_delete "$D"
# Namespace teardown runs asynchronously (cleanup_net); give it time to reach the module.
sleep 2
ktap_check "module still works after a namespace went away" traffic_isolated "$A" "$B"
kmsg_clean "no BUG/WARNING after deleting a namespace"

# The module removed while namespaces with traffic exist.
ping_ok "$A" 127.0.0.1 3 >/dev/null
ping_ok "$C" 127.0.0.1 3 >/dev/null
ktap_check "rmmod while namespaces exist" module_unload || ktap_msg "rmmod: $MODULE_ERR"
files_absent_abc()
{
	module_files_absent "$A" && module_files_absent "$B" && module_files_absent "$C"
}
ktap_check "files and sysctls gone from the namespaces" files_absent_abc
ktap_check "namespaces still pass traffic without the module" ping_ok "$A" 127.0.0.1 3
delete_abc()
{
	ns_delete "$A" && ns_delete "$B" && ns_delete "$C"
}
ktap_check "delete the namespaces after the module went away" delete_abc
sleep 2
kmsg_clean "no BUG/WARNING after rmmod with namespaces and their deletion"

ktap_finished
