#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ICMP checksums are computed once, where a packet arrives (PRE_ROUTING, with that hook, as
# nf_conntrack does); the confirmation hooks read the result the check left in the packet
# (contract.rst, ip_ct_checksum).  What that must not break:
#
#   ns A (10.0.6.1/24) veth0 ---- veth0 (10.0.6.2/24) ns B (forwarding)
#   ns C (fd00:6::1/64) veth0 ---- veth0 (fd00:6::2/64) ns D (forwarding)
#
#  1. A forwarded echo request (A -> 10.0.6.98, which B routes to a dummy interface): a good
#     checksum is NEW at B and B's POST_ROUTING
#     inserts its entry; a bad one is INVALID at B, and B inserts nothing.
#  2. The same through D for ICMPv6 (frames C injects with AF_PACKET, fd00:6::98).
#  3. An echo request of 3000 bytes, fragmented: no fragment is checked at PRE_ROUTING; the
#     message reassembled for LOCAL_IN is, there, and B inserts and then closes its entry;
#     A closes its own on the reassembled reply.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.6.1
B_IP=10.0.6.2
FAR_IP=10.0.6.98
C_IP=fd00:6::1
D_IP=fd00:6::2
FAR6_IP=fd00:6::98

tl_require

ktap_header
ktap_plan 12
kmsg_mark

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"

# forwarder NS FAMILY FAR: NS forwards FAMILY (4 or 6) to FAR through a dummy interface (out
# of another interface than the packet came in by: no redirects).
forwarder()
{
	local ns=$1 family=$2 far=$3

	if [ "$family" = 4 ]; then
		ns_exec "$ns" sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || return 1
	else
		ns_exec "$ns" sysctl -q -w net.ipv6.conf.all.forwarding=1 >/dev/null || return 1
	fi
	ip -n "$ns" link add dummy0 type dummy || return 1
	ip -n "$ns" link set dummy0 up || return 1
	ip -n "$ns" -"$family" route add "$far" dev dummy0
}

setup()
{
	tl_pair A $A_IP B $B_IP || return 1
	tl_pair6 C $C_IP D $D_IP || return 1
	forwarder "$B" 4 $FAR_IP || return 1
	forwarder "$D" 6 $FAR6_IP || return 1
	B_MAC=$(ip -n "$B" -br link show veth0 | awk '{ print $3 }')
	D_MAC=$(ip -n "$D" -br link show veth0 | awk '{ print $3 }')
	# A sends to FAR_IP through B: B's MAC for it.
	ip -n "$A" neigh replace $FAR_IP lladdr "$B_MAC" dev veth0 nud permanent
}
setup || ktap_bail_out "cannot set up the namespaces"

# forwarded DESC NS SENDER-NS ID EXPECT CRAFT-ARGS...: SENDER-NS sends one echo request
# (CRAFT-ARGS) that NS forwards; EXPECT "entry" or "invalid" is what NS makes of it.
forwarded()
{
	local desc=$1 ns=$2 sender=$3 id=$4 expect=$5 src dst

	shift 5
	src=$A_IP dst=$FAR_IP
	[ "$ns" = "$D" ] && src=$C_IP dst=$FAR6_IP
	tl_snap "$ns"
	craft "$sender" --id "$id" "$@" || ktap_msg "$desc: could not send"
	tl_wait_delta "$ns" hook_post_routing 1 || ktap_msg "$desc: nothing forwarded"
	if [ "$expect" = entry ]; then
		tl_expect "$desc: NEW where it is forwarded, entry inserted" "$ns" \
			new=1 invalid=0 insert=1
		ktap_check "$desc: listed [UNREPLIED] where it is forwarded" \
			ct_find "$ns" "$src" "$dst" "$(type_of "$src")" 0 "$id"
	else
		tl_expect "$desc: INVALID where it is forwarded, nothing inserted" "$ns" \
			invalid=1 new=0 insert=0
		ktap_check "$desc: not listed where it is forwarded" \
			ct_absent "$ns" "$src" "$dst" "$(type_of "$src")" 0 "$id"
	fi
}

type_of()
{
	case $1 in
	*:*) echo 128 ;;
	*) echo 8 ;;
	esac
}

forwarded "IPv4, good checksum" "$B" "$A" 601 entry --dst $FAR_IP
forwarded "IPv4, bad checksum" "$B" "$A" 602 invalid --dst $FAR_IP --bad-checksum
forwarded "IPv6, good checksum" "$D" "$C" 611 entry --type 128 --link veth0 \
	--lladdr "$D_MAC" --src $C_IP --dst $FAR6_IP
forwarded "IPv6, bad checksum" "$D" "$C" 612 invalid --type 128 --link veth0 \
	--lladdr "$D_MAC" --src $C_IP --dst $FAR6_IP --bad-checksum

# 3. Fragments: checked once reassembled, at LOCAL_IN.
for ns in "$A" "$B"; do
	sysctl_set "$ns" ip_ct_drop_fragments 0 || ktap_msg "ip_ct_drop_fragments=0: $SYSCTL_ERR"
done
tl_snap "$A" "$B"
ktap_check "ping -s 3000 A -> B (fragmented both ways)" \
	ns_exec "$A" ping -n -q -c 1 -W 5 -s 3000 -e 603 $B_IP
tl_expect "B: the reassembled request inserts its entry, the reply closes it" "$B" \
	insert=1 destroyed_on_reply=1 invalid=0
tl_expect "A: the reassembled reply closes A's entry" "$A" \
	insert=1 destroyed_on_reply=1 invalid=0

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
