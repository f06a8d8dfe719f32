#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ICMPv6 (Documentation/contract.rst: the IPv6 hooks, queries echo 128->129 and node information
# 139->140, neighbour discovery UNTRACKED, errors below 128 and redirects, ip_ct_icmpv6_timeout, the icmpv6
# listing line, "ipv6" lines of /proc/net/stat/icmp_ct_types).
#
#   ns A (fd00:9::1/64) veth0 ---- veth0 (fd00:9::2/64) ns B        IPv6 only
#
# Static neighbours, no DAD and no router solicitations, so that after set-up the only
# ICMPv6 is the test's own and the counter deltas are exact.  ip_ct_icmpv6_timeout=77 and
# ip_ct_icmp_timeout=20 show which knob an ICMPv6 entry uses.
#
#  1. echo: B's filter input drops the request (a gate): NEW at both ends, A lists the
#     tutorial's line for icmpv6 with [UNREPLIED] and 70..77 s left; B's hand-made reply is
#     ESTABLISHED at A and ends the entry.  Then a full ping -6: NEW at B (mark 1),
#     ESTABLISHED at A (mark 2), nothing left.
#  2. node information (Linux does not answer it): query NEW, hand-made reply ESTABLISHED.
#  3. an unsolicited echo reply is INVALID (mark 4); a neighbour solicitation is UNTRACKED
#     (mark 5) and creates nothing.
#  4. errors: B's port unreachable about A's UDP datagram is RELATED (mark 3) and destroys
#     A's [UNREPLIED] UDP entry; a packet too big about a UDP flow is RELATED and destroys
#     nothing; a port unreachable about a flow A never started is INVALID.
#  4b. a type-100 error (below 128: RFC 4443's error range) about A's UDP flow is
#     RELATED at A, and INVALID at B, where a process wrote it on a raw socket about a flow B
#     never confirmed; redirects (137) with hop limit 64, a global source or code 1 are
#     INVALID, one from a link-local source with hop limit 255 and the redirected-header
#     option is RELATED and destroys A's [UNREPLIED] flow (nf_conntrack's conditions); B's
#     own reject (icmpv6_send) about a datagram it never confirmed is RELATED at B.
#  5. an echo request with a wrong ICMPv6 checksum (sent by scapy on B's link, so that B's
#     own stack does not fix it) is INVALID at A and creates nothing; with ip_ct_checksum=0
#     it is NEW.
#  6. A's /proc/net/stat/icmp_ct_types has exactly the ipv6 lines of the traffic above.
#  7. an echo request behind an SRv6 routing header of 16 segments (its ICMPv6 header at
#     byte 304, past what a fixed 256-byte read sees) is NEW at A and listed.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=fd00:9::1
B_IP=fd00:9::2
V6_TIMEOUT=77

tl_require

ktap_header
ktap_plan 33

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
tl_pair6 A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
{ tl_marks "$A" && tl_marks "$B"; } || ktap_bail_out "cannot set up the mark counters (nft)"
# The UDP flows the errors are about outlive the checks before them, a minute or more on the
# debug kernel (each crafted packet starts a Python process).
for ns in "$A" "$B"; do
	{ tl_sysctl_set "$ns" ip_ct_icmpv6_timeout $V6_TIMEOUT &&
		tl_sysctl_set "$ns" ip_ct_icmp_timeout 20 &&
		tl_sysctl_set "$ns" ip_ct_udp_timeout 600; } ||
		ktap_bail_out "cannot set the timeouts: $SYSCTL_ERR"
done

# listing_lacks NS REGEX: NS lists no entry matching REGEX (prints the listing if it does).
listing_lacks()
{
	local list

	list=$(ct_list "$1")
	grep -q -- "$2" <<<"$list" || return 0
	ktap_msg "unexpected entries:" "$list"
	return 1
}

##############################################################################
# 1. Echo

tl_gate "$B" "icmpv6 type echo-request" || ktap_msg "cannot add the gate in B"
tl_snap "$A" "$B"
craft "$A" --dst $B_IP --type 128 --id 901 || ktap_msg "cannot send the echo request"
tl_wait_delta "$B" new 1
tl_expect "echo request: NEW at A (LOCAL_OUT), entry inserted" "$A" new=1 insert=1 invalid=0
tl_expect "echo request: NEW at B (mark 1), dropped by the gate: no entry" "$B" \
	new=1 mark_new=1 insert=0 invalid=0
ct_check_line "A lists the icmpv6 line [UNREPLIED], ip_ct_icmpv6_timeout" \
	"$A" $A_IP $B_IP 128 0 901 129 1 $((V6_TIMEOUT - 7 * ICMP_CT_TIME_SCALE)) $V6_TIMEOUT
tl_ungate "$B"

tl_snap "$A"
craft "$B" --dst $A_IP --type 129 --id 901 || ktap_msg "cannot send the echo reply"
tl_wait_delta "$A" established 1
tl_expect "hand-made echo reply: ESTABLISHED at A (mark 2), destroys the entry" "$A" \
	established=1 mark_est=1 destroyed_on_reply=1 invalid=0
ktap_check "no icmpv6 entry left in A" listing_lacks "$A" "^icmpv6 "

tl_snap "$A" "$B"
tl_run "$A" ping -6 -n -q -c 1 -W 2 -e 902 $B_IP >/dev/null || ktap_msg "ping -6 A -> B failed"
tl_wait_delta "$A" established 1
tl_expect "ping -6: request NEW at B (mark 1), reply ESTABLISHED at B's LOCAL_OUT" "$B" \
	new=1 mark_new=1 established=1 insert=1 destroyed_on_reply=1 invalid=0
tl_expect "ping -6: reply ESTABLISHED at A (mark 2), entry destroyed" "$A" \
	new=1 established=1 mark_est=1 insert=1 destroyed_on_reply=1 invalid=0
ktap_check "ping -6: no icmpv6 entry left in B" listing_lacks "$B" "^icmpv6 "

##############################################################################
# 2. Node information

tl_snap "$A" "$B"
craft "$A" --dst $B_IP --type 139 --id 3 || ktap_msg "cannot send the node information query"
tl_wait_delta "$B" new 1
tl_expect "node information query: NEW at B (mark 1)" "$B" new=1 mark_new=1 insert=1 invalid=0
ct_check_line "node information query: A lists it [UNREPLIED] (139 -> 140)" \
	"$A" $A_IP $B_IP 139 0 3 140 1 0 $V6_TIMEOUT
craft "$B" --dst $A_IP --type 140 --id 3 || ktap_msg "cannot send the node information reply"
tl_wait_delta "$A" established 1
tl_expect "node information reply: ESTABLISHED at A (mark 2), entry destroyed" "$A" \
	established=1 mark_est=1 destroyed_on_reply=1 invalid=0

##############################################################################
# 3. INVALID and UNTRACKED

tl_snap "$A"
craft "$B" --dst $A_IP --type 129 --id 931 || ktap_msg "cannot send the unsolicited reply"
tl_wait_delta "$A" invalid 1
tl_expect "unsolicited echo reply: INVALID at A (mark 4)" "$A" invalid=1 mark_inv=1 new=0 \
	established=0

# A neighbour solicitation with hop limit 64: UNTRACKED, and ignored by A's neighbour
# discovery (RFC 4861 wants 255), so that nothing answers it.
tl_snap "$A"
craft "$B" --dst $A_IP --type 135 --id 0 --seq 0 --ttl 64 ||
	ktap_msg "cannot send the neighbour solicitation"
tl_wait_delta "$A" untracked 1
tl_expect "neighbour solicitation: UNTRACKED at A (mark 5), no entry" "$A" \
	untracked=1 mark_untr=1 new=0 invalid=0 insert=0

##############################################################################
# 4. Errors

tl_snap "$A" "$B"
craft "$A" --dst $B_IP --udp 9 --sport 40000 || ktap_msg "cannot send the UDP datagram"
tl_wait_delta "$A" related 1
tl_expect "port unreachable about A's datagram: RELATED at A (mark 3)" "$A" \
	new=1 related=1 mark_rel=1 destroyed_on_error=1 invalid=0
tl_expect "port unreachable: RELATED at B's LOCAL_OUT too" "$B" new=1 related=1 invalid=0
ktap_check "the error destroyed A's [UNREPLIED] UDP entry" \
	listing_lacks "$A" "^udp .* sport=40000 dport=9 "

# A UDP flow B does not answer (its input drops UDP), then a packet too big about it.
tl_gate "$B" "meta l4proto udp" || ktap_msg "cannot add the gate in B"
craft "$A" --dst $B_IP --udp 5000 --sport 40001 || ktap_msg "cannot send the UDP datagram"
tl_snap "$A"
craft "$B" --dst $A_IP --type 2 --id 0 --seq 1280 --embed-udp $A_IP,40001,$B_IP,5000 ||
	ktap_msg "cannot send the packet too big"
tl_wait_delta "$A" related 1
tl_expect "packet too big about A's UDP flow: RELATED (mark 3), destroys nothing" "$A" \
	related=1 mark_rel=1 destroyed_on_error=0 invalid=0
ktap_check "A still lists the UDP flow [UNREPLIED]" \
	grep -q "^udp      17 [0-9]* src=$A_IP dst=$B_IP sport=40001 dport=5000 \[UNREPLIED\]" \
	<(ct_list "$A")
tl_ungate "$B"

tl_snap "$A"
craft "$B" --dst $A_IP --type 1 --code 4 --id 0 --seq 0 --embed-udp $A_IP,40999,$B_IP,53 ||
	ktap_msg "cannot send the spoofed error"
tl_wait_delta "$A" invalid 1
tl_expect "port unreachable about a flow A never started: INVALID (mark 4)" "$A" \
	invalid=1 mark_inv=1 related=0

##############################################################################
# 4b. Every type below 128 is an error; redirects as nf_conntrack takes them

# Two UDP flows B does not answer: 40002 for a type-100 error, 40003 for the redirects.
tl_gate "$B" "meta l4proto udp" || ktap_msg "cannot add the gate in B"
craft "$A" --dst $B_IP --udp 5000 --sport 40002 || ktap_msg "cannot send the UDP datagram"
craft "$A" --dst $B_IP --udp 5000 --sport 40003 || ktap_msg "cannot send the UDP datagram"
tl_snap "$A" "$B"
craft "$B" --dst $A_IP --type 100 --id 0 --seq 0 --embed-udp $A_IP,40002,$B_IP,5000 ||
	ktap_msg "cannot send the type 100 error"
tl_wait_delta "$A" related 1
tl_expect "type 100 (RFC 4443 error range) about A's UDP flow: RELATED at A, destroys it" \
	"$A" related=1 mark_rel=1 destroyed_on_error=1 invalid=0
# B dropped the flow before confirming it, and a process wrote the error on a raw socket.
tl_expect "the same error at B's LOCAL_OUT (raw socket, no entry at B): INVALID" "$B" \
	invalid=1 related=0

# redirect HOP_LIMIT SRC CODE: a redirect from B's link (a frame: B's stack would fix the hop
# limit) about A's flow 40003.
redirect()
{
	local mac

	mac=$(ip -n "$A" -br link show veth0 | awk '{ print $3 }')
	craft "$B" --link veth0 --lladdr "$mac" --src "$2" --dst $A_IP --type 137 --code "$3" \
		--id 0 --seq 0 --ttl "$1" --embed-udp $A_IP,40003,$B_IP,5000
}
for bad in "64 fe80::2 0 hop limit 64" "255 $B_IP 0 a global source" "255 fe80::2 1 code 1"; do
	read -r hops src code why <<<"$bad"
	tl_snap "$A"
	redirect "$hops" "$src" "$code" || ktap_msg "cannot send the redirect"
	tl_wait_delta "$A" hook_pre_routing 1 10 || ktap_msg "nothing reached A"
	tl_expect "redirect with $why: INVALID at A (mark 4), destroys nothing" "$A" \
		invalid=1 mark_inv=1 related=0 destroyed_on_error=0
done
tl_snap "$A"
redirect 255 fe80::2 0 || ktap_msg "cannot send the redirect"
tl_wait_delta "$A" related 1
tl_expect "redirect from a link-local router, hop limit 255, about A's flow: RELATED" "$A" \
	related=1 mark_rel=1 destroyed_on_error=1 invalid=0
ktap_check "the redirect destroyed A's [UNREPLIED] UDP entry" \
	listing_lacks "$A" "^udp .* sport=40003 dport=5000 "
tl_ungate "$B"

# B's own stack (an nft reject: icmpv6_send) about a datagram it dropped before confirming it:
# no entry at B, RELATED all the same.
ns_exec "$B" nft -f - <<-EOF || ktap_msg "cannot add the reject table in B"
	table ip6 icmpct_reject {
		chain input {
			type filter hook input priority 5; policy accept;
			udp dport 5000 reject with icmpv6 type port-unreachable
		}
	}
EOF
tl_snap "$A" "$B"
craft "$A" --dst $B_IP --udp 5000 --sport 40004 || ktap_msg "cannot send the UDP datagram"
tl_wait_delta "$A" related 1
tl_expect "B's own port unreachable (icmpv6_send) about a datagram it dropped: RELATED at B" \
	"$B" related=1 invalid=0
ns_exec "$B" nft delete table ip6 icmpct_reject

##############################################################################
# 5. Checksums

# bad_checksum_request ID: an echo request B -> A with ICMPv6 checksum 0x1234, straight onto
# B's veth0 (a packet socket: neither B's stack nor its hooks touch it).
bad_checksum_request()
{
	local mac

	mac=$(ip -n "$A" -br link show veth0 | awk '{ print $3 }')
	ns_exec "$B" /usr/bin/python3 -c "
import sys
from scapy.all import Ether, IPv6, ICMPv6EchoRequest, sendp
sendp(Ether(dst='$mac') / IPv6(src='$B_IP', dst='$A_IP') /
      ICMPv6EchoRequest(id=int(sys.argv[1]), cksum=0x1234), iface='veth0', verbose=False)
" "$1"
}

tl_snap "$A"
bad_checksum_request 951 || ktap_msg "scapy could not send the packet"
tl_wait_delta "$A" hook_pre_routing 1 10 || ktap_msg "nothing reached A"
tl_expect "bad ICMPv6 checksum: INVALID at A (mark 4), no entry" "$A" \
	invalid=1 mark_inv=1 new=0 insert=0
tl_sysctl_set "$A" ip_ct_checksum 0 || ktap_msg "ip_ct_checksum=0: $SYSCTL_ERR"
tl_snap "$A"
bad_checksum_request 952 || ktap_msg "scapy could not send the packet"
tl_wait_delta "$A" hook_pre_routing 1 10 || ktap_msg "nothing reached A"
tl_expect "bad ICMPv6 checksum with ip_ct_checksum=0: NEW at A (mark 1)" "$A" \
	new=1 mark_new=1 invalid=0
tl_sysctl_set "$A" ip_ct_checksum 1

##############################################################################
# 6. Per-type statistics

# At A: echo request NEW x2 (901, 902) and x1 (952, arriving), INVALID x1 (951), echo
# reply ESTABLISHED x2 and INVALID x1, node information query NEW, reply ESTABLISHED,
# destination unreachable RELATED x2 and INVALID x1, packet too big RELATED, type 100
# RELATED, redirect RELATED x1 and INVALID x3.  Neighbour discovery is UNTRACKED: no column.
mix="ipv6 1 destination-unreachable 0 0 2 1
ipv6 2 packet-too-big 0 0 1 0
ipv6 100 private-experimentation 0 0 1 0
ipv6 128 echo-request 3 0 0 1
ipv6 129 echo-reply 0 2 0 1
ipv6 137 redirect 0 0 1 3
ipv6 139 node-information-query 1 0 0 0
ipv6 140 node-information-response 0 1 0 0"
got=$(tl_get "$A" "$ICMP_CT_TYPES" | grep "^ipv6 ")
ktap_expect_eq "A's ipv6 lines of /proc/net/stat/icmp_ct_types match the traffic" "$mix" "$got"
ktap_expect_eq "A has no ipv4 line (no IPv4 traffic)" "" \
	"$(tl_get "$A" "$ICMP_CT_TYPES" | grep "^ipv4 ")"

##############################################################################
# 7. A long extension header chain

# srv6_echo_request ID: an echo request B -> A behind an SRv6 routing header (RFC 8754) of 16
# segments, A the last one (segment list[0]) and segments left 0, so that A takes it as its
# own: 40 + 264 bytes of headers before the ICMPv6 header.  Sent straight onto B's veth0.
srv6_echo_request()
{
	local mac

	mac=$(ip -n "$A" -br link show veth0 | awk '{ print $3 }')
	ns_exec "$B" /usr/bin/python3 -c "
import sys
from scapy.all import Ether, IPv6, IPv6ExtHdrSegmentRouting, ICMPv6EchoRequest, sendp
segments = ['$A_IP'] + ['fd00:9::%x' % (0x100 + i) for i in range(15)]
sendp(Ether(dst='$mac') / IPv6(src='$B_IP', dst='$A_IP') /
      IPv6ExtHdrSegmentRouting(addresses=segments, segleft=0) /
      ICMPv6EchoRequest(id=int(sys.argv[1])), iface='veth0', verbose=False)
" "$1"
}

tl_snap "$A"
srv6_echo_request 961 || ktap_msg "scapy could not send the packet"
tl_wait_delta "$A" hook_pre_routing 1 10 || ktap_msg "nothing reached A"
tl_expect "echo request behind a 16-segment SRv6 header: NEW at A (mark 1), not INVALID" \
	"$A" new=1 mark_new=1 insert=1 invalid=0
ct_check_line "A lists the SRv6 echo request [UNREPLIED]" \
	"$A" $B_IP $A_IP 128 0 961 129 1 0 $V6_TIMEOUT

ktap_finished
