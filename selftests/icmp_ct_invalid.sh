#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# INVALID ICMP (contract.rst: "A reply that matches nothing is INVALID", "Malformed input",
# "Any other ICMP type that is not an error ... is INVALID", ip_ct_checksum,
# ip_ct_drop_invalid, ip_ct_log_invalid).
#
#   ns A (10.0.5.1/24) veth0 ---- veth0 (10.0.5.2/24) ns B
#
# B sends hand-made packets to A (craft.py, raw IPv4 socket): an unsolicited echo reply, an
# echo reply after its exchange has ended, an echo request with a wrong ICMP checksum, an
# IPv4 packet of protocol 1 with only 4 bytes of ICMP header, and unknown types (99, and
# router solicitation 10, neither query nor error).  Each is INVALID where it arrives: A's
# `invalid` +1, mark 4 in A's filter input (ip_ct_mark_mask=0xf), and no entry.  The
# checksum is only checked on arrival (PRE_ROUTING), so B's own LOCAL_OUT classifies the
# bad-checksum request NEW; with ip_ct_checksum=0 in A it is NEW in A as well.
# ip_ct_log_invalid logs in A only while the host's nf_log_all_netns is 1, in the initial
# namespace always; each line names the namespace's inode.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.5.1
B_IP=10.0.5.2

tl_require
require_cmd dmesg readlink

SAVED_LOG_ALL=""
test_cleanup()
{
	[ -n "$SAVED_LOG_ALL" ] && sysctl -q -w net.netfilter.nf_log_all_netns="$SAVED_LOG_ALL"
	sysctl_set "" ip_ct_log_invalid 0 2>/dev/null
	tl_cleanup
}

ktap_header
ktap_plan 23

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
{ tl_marks "$A" && tl_marks "$B"; } || ktap_bail_out "cannot set up the mark counters (nft)"

# no_new_entry NS COUNT TYPE ID: NS counts no more than COUNT entries (an older one may
# expire meanwhile) and lists none from B with this type and id.  (Not "no entries at all":
# an entry left by a failed earlier case must not fail the next ones.)
no_new_entry()
{
	local ns=$1 count=$2 type=$3 id=$4 now

	ct_absent "$ns" "$B_IP" "$A_IP" "$type" 0 "$id" || return 1
	now=$(ct_count "$ns")
	[ "$now" -le "$count" ] && return 0
	ktap_msg "ip_conntrack_count went from $count to $now:" "$(ct_list "$ns")"
	return 1
}

# junk DESC TYPE ID CRAFT-ARGS...: B sends this to A; it is INVALID at A and leaves no entry
# there.
junk()
{
	local desc=$1 type=$2 id=$3 count

	shift 3
	count=$(ct_count "$A")
	tl_snap "$A" "$B"
	craft "$B" --dst $A_IP --type "$type" --id "$id" "$@"
	tl_wait_delta "$A" hook_pre_routing 1 || ktap_msg "$desc: nothing reached A"
	tl_expect "$desc: INVALID at A (invalid +1, mark 4)" "$A" \
		invalid=1 mark_inv=1 new=0 established=0 related=0 insert=0
	ktap_check "$desc: no entry in A" no_new_entry "$A" "$count" "$type" "$id"
}

junk "unsolicited echo reply" 0 501

ns_exec "$A" ping -n -q -c 1 -W 2 -e 502 $B_IP >/dev/null || ktap_msg "ping A -> B (id 502) failed"
junk "echo reply after its exchange ended" 0 502

junk "echo request with a bad ICMP checksum" 8 503 --bad-checksum
tl_expect "bad checksum: not checked on B's way out (LOCAL_OUT): NEW at B" "$B" new=1 invalid=0

junk "ICMP header truncated to 4 bytes" 8 504 --icmp-len 4
tl_expect "truncated ICMP header: INVALID at B's LOCAL_OUT too" "$B" invalid=1 new=0 insert=0

junk "unknown ICMP type 99" 99 505
tl_expect "unknown ICMP type 99: INVALID at B's LOCAL_OUT too" "$B" invalid=1 new=0 insert=0

junk "router solicitation (type 10, neither query nor error)" 10 0

# A reply with a bad checksum that would match an entry: INVALID, and not applied to it.
tl_gate "$B" "icmp type 8" || ktap_msg "cannot add the gate in B"
craft "$A" --dst $B_IP --type 8 --id 507
tl_snap "$A"
craft "$B" --dst $A_IP --type 0 --id 507 --bad-checksum
tl_wait_delta "$A" hook_pre_routing 1
tl_expect "echo reply with a bad checksum to a pending request: INVALID at A, not applied" "$A" \
	invalid=1 mark_inv=1 established=0 destroyed_on_reply=0
ct_check_line "echo reply with a bad checksum: the entry stays [UNREPLIED]" \
	"$A" $A_IP $B_IP 8 0 507 0 1 10 30
craft "$B" --dst $A_IP --type 0 --id 507
tl_wait_until 3 ct_absent "$A" $A_IP $B_IP 8 0 507 >/dev/null ||
	ktap_msg "A's entry 507 survived its good reply"
tl_ungate "$B"

# ip_ct_drop_invalid=1: INVALID packets are dropped at the classification hook, before the
# filter table sees them.
sysctl_set "$A" ip_ct_drop_invalid 1 || ktap_msg "ip_ct_drop_invalid=1: $SYSCTL_ERR"
tl_snap "$A"
craft "$B" --dst $A_IP --type 0 --id 508
tl_wait_delta "$A" hook_pre_routing 1
tl_expect "ip_ct_drop_invalid=1: unsolicited reply INVALID and dropped before the filter table" \
	"$A" invalid=1 dropped_invalid=1 mark_inv=0 hook_local_in=0
sysctl_set "$A" ip_ct_drop_invalid 0

# ip_ct_log_invalid=1: INVALID packets are logged (rate limited); outside the
# initial namespace only while the host's net.netfilter.nf_log_all_netns is 1, and each line
# names the namespace by its inode number (as lsns shows it).

# invalid_logged CRAFT-NS ID DST: send an unknown type 99 from CRAFT-NS to DST; the
# module's INVALID lines logged meanwhile.
invalid_logged()
{
	kmsg_mark
	if [ -n "$1" ]; then
		craft "$1" --dst "$3" --type 99 --id "$2"
	else
		"$PYTHON" "$CRAFT" --dst "$3" --type 99 --id "$2" >/dev/null
	fi
	sleep 0.5
	kmsg_new | grep "icmp_ct: INVALID packet"
}

# names NS LINES: LINES has the type-99 line naming NS by its inode number.
names()
{
	local inum

	inum=$(ns_exec "$1" readlink /proc/self/ns/net | tr -dc 0-9)
	grep -qF "icmp_ct: INVALID packet: unknown ICMP type (netns $inum)" <<<"$2"
}

SAVED_LOG_ALL=$(sysctl -n net.netfilter.nf_log_all_netns) ||
	ktap_msg "no net.netfilter.nf_log_all_netns"
sysctl_set "$A" ip_ct_log_invalid 1 || ktap_msg "ip_ct_log_invalid=1: $SYSCTL_ERR"
sysctl -q -w net.netfilter.nf_log_all_netns=0
logged=$(invalid_logged "$B" 510 $A_IP)
ktap_expect_eq "ip_ct_log_invalid=1, host's nf_log_all_netns=0: A logs nothing" "" "$logged"
sysctl -q -w net.netfilter.nf_log_all_netns=1
logged=$(invalid_logged "$B" 511 $A_IP)
ktap_msg "$logged"
ktap_check "ip_ct_log_invalid=1, nf_log_all_netns=1: A logs the packet, naming its namespace" \
	names "$A" "$logged"
sysctl_set "$A" ip_ct_log_invalid 0
sysctl -q -w net.netfilter.nf_log_all_netns=0
sysctl_set "" ip_ct_log_invalid 1 || ktap_msg "initial namespace: ip_ct_log_invalid=1: $SYSCTL_ERR"
logged=$(invalid_logged "" 512 127.0.0.1)
ktap_msg "$logged"
ktap_check "the initial namespace logs with nf_log_all_netns=0, naming itself" names "" "$logged"
sysctl_set "" ip_ct_log_invalid 0
sysctl -q -w net.netfilter.nf_log_all_netns="${SAVED_LOG_ALL:-0}"

# ip_ct_checksum=0: the bad-checksum request is no longer INVALID: NEW, with an entry.
sysctl_set "$A" ip_ct_checksum 0 || ktap_msg "ip_ct_checksum=0: $SYSCTL_ERR"
tl_snap "$A"
craft "$B" --dst $A_IP --type 8 --id 509 --bad-checksum
tl_wait_delta "$A" hook_pre_routing 1
tl_expect "ip_ct_checksum=0: bad-checksum echo request is NEW at A (mark 1)" "$A" \
	new=1 mark_new=1 invalid=0 insert=1
ct_check_line "ip_ct_checksum=0: A lists the bad-checksum request [UNREPLIED]" \
	"$A" $B_IP $A_IP 8 0 509 0 1 10 30
sysctl_set "$A" ip_ct_checksum 1

ktap_finished
