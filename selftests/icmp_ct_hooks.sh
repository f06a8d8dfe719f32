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
# namespaces (ARP never passes the IPv4 hooks), so nothing else moves the counters.  A last
# subtest turns IPv6 on and checks that IPv6 traffic moves none of these IPv4 counters.

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

# Every stat line, in the documented order, with a number.
check_stat_format()
{
	local ns=$1 names

	names=$(stat_dump "$ns" | awk '$2 ~ /^[0-9]+$/ && NF == 2 { print $1 }' | tr '\n' ' ')
	[ "$names" = "${ICMP_CT_STAT_NAMES[*]} " ] && return 0
	ktap_msg "stat file of ${ns:-init}:" "$(stat_dump "$ns" 2>&1)"
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

# IPv6 traffic must not move the IPv4 hook counters.
ipv6_on()
{
	local ns=$1 addr=$2

	ns_exec "$ns" sysctl -q -w net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null &&
		ip -n "$ns" addr add "$addr" dev veth0 nodad
}
if ipv6_on "$A" fd00:1::1/64 && ipv6_on "$B" fd00:1::2/64; then
	# Let router/neighbour solicitations of the address change pass before measuring.
	sleep 1
	ping_ok "$A" fd00:1::2 1 >/dev/null
	a_before=$(hooks_get "$A")
	b_before=$(hooks_get "$B")
	if ping_ok "$A" fd00:1::2 "$COUNT"; then
		ktap_expect_eq "A: IPv6 ping moves no IPv4 hook counter" "$a_before" "$(hooks_get "$A")"
		ktap_expect_eq "B: IPv6 ping moves no IPv4 hook counter" "$b_before" "$(hooks_get "$B")"
	else
		ktap_test_fail "A: IPv6 ping moves no IPv4 hook counter"
		ktap_test_fail "B: IPv6 ping moves no IPv4 hook counter"
	fi
else
	ktap_test_skip "A: IPv6 ping moves no IPv4 hook counter" "cannot enable IPv6"
	ktap_test_skip "B: IPv6 ping moves no IPv4 hook counter" "cannot enable IPv6"
fi

ktap_finished
