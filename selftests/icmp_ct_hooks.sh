#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Hook placement, seen through the per-hook packet counters of /proc/net/stat/icmp_ct.
#
#   ns A (10.0.1.1/24) veth0 ---- veth0 (10.0.1.2/24) ns B
#
# "ping -c 5" from A to B sends 5 echo requests and gets 5 replies, so every hook of both
# namespaces sees exactly 5 IPv4 packets: in A the requests pass LOCAL_OUT and POST_ROUTING
# and the replies PRE_ROUTING and LOCAL_IN; in B the other way round.  IPv6 is off in both
# namespaces (ARP never passes the IPv4 hooks), so nothing else moves the counters.  The last
# subtests turn IPv6 on: an IPv6 ping passes icmp_ct's IPv6 hooks the same way, once each.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

COUNT=5

require_module
require_cmd ip ping sysctl stat

ktap_header
ktap_plan 16

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"

ns_create A B || ktap_bail_out "cannot create namespaces"
{ ns_ipv6_off "$A" && ns_ipv6_off "$B"; } || ktap_bail_out "cannot disable IPv6"
veth_pair "$A" veth0 10.0.1.1/24 "$B" veth0 10.0.1.2/24 || ktap_bail_out "cannot set up the veth pair"

# /proc/net/ip_conntrack: per namespace, readable by root only.
ktap_expect_eq "A: /proc/net/ip_conntrack has mode 0440" "-r--r-----" \
	"$(ns_exec "$A" stat -L -c %A "$ICMP_CT_PROC" 2>&1)"
ktap_expect_eq "init ns: /proc/net/ip_conntrack has mode 0440" "-r--r-----" \
	"$(stat -L -c %A "$ICMP_CT_PROC" 2>&1)"

# Every stat line is "name value": first the documented counters in their order, then
# further ones (contract.rst), among them the invalid_<reason> counters.
check_stat_format()
{
	local ns=$1 file names

	file=$(stat_dump "$ns")
	names=$(awk '$1 ~ /^[a-z0-9_]+$/ && $2 ~ /^[0-9]+$/ && NF == 2 { print $1 }' <<<"$file")
	[ "$(wc -l <<<"$names")" = "$(wc -l <<<"$file")" ] &&
		[ "$(head -n ${#ICMP_CT_STAT_NAMES[@]} <<<"$names" | tr '\n' ' ')" = \
			"${ICMP_CT_STAT_NAMES[*]} " ] &&
		tail -n +$((${#ICMP_CT_STAT_NAMES[@]} + 1)) <<<"$names" | grep -q '^invalid_' &&
		return 0
	ktap_msg "stat file of ${ns:-init}:" "$file"
	return 1
}
ktap_check "A: /proc/net/stat/icmp_ct lists every counter as 'name value'" check_stat_format "$A"

# ARP resolution first: ARP is not IPv4, but keep the measured window free of anything else.
ip -n "$A" neigh replace 10.0.1.2 lladdr "$(ip -n "$B" -br link show veth0 | awk '{ print $3 }')" \
	dev veth0 nud permanent
ip -n "$B" neigh replace 10.0.1.1 lladdr "$(ip -n "$A" -br link show veth0 | awk '{ print $3 }')" \
	dev veth0 nud permanent

read -r a_pre a_in a_out a_post <<<"$(hooks_get "$A")" || ktap_bail_out "cannot read A's counters"
read -r b_pre b_in b_out b_post <<<"$(hooks_get "$B")" || ktap_bail_out "cannot read B's counters"

ktap_check "ping -c $COUNT from A to B: every reply received" ping_ok "$A" 10.0.1.2 "$COUNT"

read -r a_pre2 a_in2 a_out2 a_post2 <<<"$(hooks_get "$A")"
read -r b_pre2 b_in2 b_out2 b_post2 <<<"$(hooks_get "$B")"

ktap_expect_eq "A: hook_local_out +$COUNT (requests)" $COUNT $((a_out2 - a_out))
ktap_expect_eq "A: hook_post_routing +$COUNT (requests)" $COUNT $((a_post2 - a_post))
ktap_expect_eq "A: hook_pre_routing +$COUNT (replies)" $COUNT $((a_pre2 - a_pre))
ktap_expect_eq "A: hook_local_in +$COUNT (replies)" $COUNT $((a_in2 - a_in))
ktap_expect_eq "B: hook_pre_routing +$COUNT (requests)" $COUNT $((b_pre2 - b_pre))
ktap_expect_eq "B: hook_local_in +$COUNT (requests)" $COUNT $((b_in2 - b_in))
ktap_expect_eq "B: hook_local_out +$COUNT (replies)" $COUNT $((b_out2 - b_out))
ktap_expect_eq "B: hook_post_routing +$COUNT (replies)" $COUNT $((b_post2 - b_post))

# Forwarding is off and B is the destination: nothing is routed through, so the 2 x 5 packets
# in each namespace are exactly the ones counted above.  The same ping again must give the
# same deltas (no one-off effect of the first packets).
read -r a_pre a_in a_out a_post <<<"$(hooks_get "$A")"
ping_ok "$A" 10.0.1.2 "$COUNT" >/dev/null
read -r a_pre2 a_in2 a_out2 a_post2 <<<"$(hooks_get "$A")"
ktap_expect_eq "A: second ping moves every hook by $COUNT again" "$COUNT $COUNT $COUNT $COUNT" \
	"$((a_pre2 - a_pre)) $((a_in2 - a_in)) $((a_out2 - a_out)) $((a_post2 - a_post))"

# Loopback: each of the 2 x 5 packets passes all four hooks of A once.
read -r a_pre a_in a_out a_post <<<"$(hooks_get "$A")"
ping_ok "$A" 127.0.0.1 "$COUNT" >/dev/null
read -r a_pre2 a_in2 a_out2 a_post2 <<<"$(hooks_get "$A")"
n=$((2 * COUNT))
ktap_expect_eq "A: ping 127.0.0.1 -c $COUNT moves every hook by $n" "$n $n $n $n" \
	"$((a_pre2 - a_pre)) $((a_in2 - a_in)) $((a_out2 - a_out)) $((a_post2 - a_post))"

# The IPv6 hooks: the same places, the same counters.
ipv6_on()
{
	local ns=$1 addr=$2

	# No DAD, no router solicitations, MLD reports at once: nothing of IPv6's own after
	# the "sleep 1" below.
	ns_exec "$ns" sysctl -q -w net.ipv6.conf.veth0.accept_dad=0 \
		net.ipv6.conf.veth0.router_solicitations=0 \
		net.ipv6.conf.veth0.mldv1_unsolicited_report_interval=0 \
		net.ipv6.conf.veth0.mldv2_unsolicited_report_interval=0 >/dev/null &&
		ns_exec "$ns" sysctl -q -w net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null &&
		ip -n "$ns" addr add "$addr" dev veth0 nodad
}
# neigh_static NS ADDR PEER_NS: a permanent neighbour entry for ADDR, PEER_NS's veth0, so
# that no neighbour discovery runs during the measurement.
neigh_static()
{
	local mac

	mac=$(ip -n "$3" -br link show veth0 | awk '{ print $3 }')
	ip -n "$1" -6 neigh replace "$2" lladdr "$mac" dev veth0 nud permanent
}
if ipv6_on "$A" fd00:1::1/64 && ipv6_on "$B" fd00:1::2/64 &&
	neigh_static "$A" fd00:1::2 "$B" && neigh_static "$B" fd00:1::1 "$A"; then
	# Let router solicitations and MLD reports of the address change pass before measuring.
	sleep 1
	ping_ok "$A" fd00:1::2 1 >/dev/null
	read -r a_pre a_in a_out a_post <<<"$(hooks_get "$A")"
	read -r b_pre b_in b_out b_post <<<"$(hooks_get "$B")"
	a_desc="A: IPv6 ping -c $COUNT: requests LOCAL_OUT, POST_ROUTING; replies PRE_ROUTING, LOCAL_IN"
	b_desc="B: IPv6 ping -c $COUNT: requests PRE_ROUTING, LOCAL_IN; replies LOCAL_OUT, POST_ROUTING"
	if ping_ok "$A" fd00:1::2 "$COUNT"; then
		read -r a_pre2 a_in2 a_out2 a_post2 <<<"$(hooks_get "$A")"
		read -r b_pre2 b_in2 b_out2 b_post2 <<<"$(hooks_get "$B")"
		ktap_expect_eq "$a_desc" "$COUNT $COUNT $COUNT $COUNT" \
			"$((a_pre2 - a_pre)) $((a_in2 - a_in)) $((a_out2 - a_out)) $((a_post2 - a_post))"
		ktap_expect_eq "$b_desc" "$COUNT $COUNT $COUNT $COUNT" \
			"$((b_pre2 - b_pre)) $((b_in2 - b_in)) $((b_out2 - b_out)) $((b_post2 - b_post))"
	else
		ktap_test_fail "$a_desc"
		ktap_test_fail "$b_desc"
	fi
else
	ktap_msg "cannot enable IPv6 in A and B"
	ktap_test_fail "IPv6 hooks of A"
	ktap_test_fail "IPv6 hooks of B"
fi

ktap_finished
