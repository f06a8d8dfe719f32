#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# What the table's key is made of (contract.rst: a tuple is source, destination, protocol and
# ports or type, code and id, of one address family; "a flow whose reply tuple
# equals its original tuple ... is tracked like any other").
#
#   ns A (10.7.0.1/24, ::ffff:10.7.0.1/128) veth0 ---- veth0 (10.7.0.2/24) ns B
#   ns C: loopback only
#
# An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is an IPv6 address: a packet carrying it is
# IPv6 and must never meet an IPv4 entry of the same numbers.  No IPv6 socket sends such a
# packet (it goes out as IPv4), so B builds it and puts it on the link (craft.py --link).
# A answers no echo request (net.ipv6.icmp.echo_ignore_all) and holds a UDP socket on port
# 5000, so its own stack sends nothing back.
#
#  1. A's IPv4 datagram 10.7.0.1:5000 -> 10.7.0.2:6000 makes an [UNREPLIED] entry (B drops
#     it).  B's IPv6 datagram ::ffff:10.7.0.2:6000 -> ::ffff:10.7.0.1:5000 is NEW at A
#     (mark 1) and inserted as an IPv6 entry of its own; the IPv4 entry stays [UNREPLIED].
#     Then B's real IPv4 reply is ESTABLISHED and makes the IPv4 entry [ASSURED]; the IPv6
#     entry stays [UNREPLIED].
#  2. Four ICMPv6 echo requests ::ffff:10.7.0.2 -> ::ffff:10.7.0.1 with ids 700..703 are NEW
#     and get four entries (icmpv6, 128 -> 129), none failing to insert.
#  3. In C, a UDP socket bound to 127.0.0.1:7000 sends to itself: reply tuple = original
#     tuple.  The first datagram is NEW on its way out and inserts exactly one entry; from
#     then on every lookup of that tuple finds the entry's reply direction first, as in
#     nf_conntrack (whose reply node is hashed last, at the head of the chain), so the
#     datagram's own arrival on lo and all later datagrams are ESTABLISHED, and the entry is
#     listed [ASSURED] with ip_ct_udp_timeout_stream.  No insert fails.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.7.0.1
B_IP=10.7.0.2
A_MAPPED=::ffff:$A_IP
B_MAPPED=::ffff:$B_IP
# Packets on their way: seconds to wait for a counter (stretched on slow kernels).
WAIT=$((5 * ICMP_CT_TIME_SCALE))
# Fewest seconds an entry refreshed just now may show (timeout minus this).
SLACK=$((10 * ICMP_CT_TIME_SCALE))

tl_require

ktap_header
ktap_plan 23

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"

# setup_ab: A with IPv6 (quiet: no DAD, no router solicitations, no MLD reports, echo
# ignored) and the IPv4-mapped address; B without IPv6 (it only injects frames); static
# IPv4 neighbours; agents; mark counters in A.
setup_ab()
{
	local a_mac b_mac

	ns_create A B || return 1
	ns_ipv6_off "$B" || return 1
	ns_exec "$A" sysctl -q -w net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.default.router_solicitations=0 \
		net.ipv6.conf.default.mldv2_unsolicited_report_interval=0 \
		net.ipv6.conf.default.mldv1_unsolicited_report_interval=0 \
		net.ipv6.icmp.echo_ignore_all=1 >/dev/null || return 1
	veth_pair "$A" veth0 "$A_IP/24" "$B" veth0 "$B_IP/24" || return 1
	ip -n "$A" -6 addr add "$A_MAPPED/128" dev veth0 nodad || return 1
	a_mac=$(ip -n "$A" -br link show veth0 | awk '{ print $3 }')
	b_mac=$(ip -n "$B" -br link show veth0 | awk '{ print $3 }')
	ip -n "$A" neigh replace "$B_IP" lladdr "$b_mac" dev veth0 nud permanent || return 1
	ip -n "$B" neigh replace "$A_IP" lladdr "$a_mac" dev veth0 nud permanent || return 1
	A_MAC=$a_mac
	tl_agent "$A" && tl_agent "$B" && tl_marks "$A" || return 1
	# IPv6 of A's own (link-local address, MLD) is over within a second.
	sleep 1
}

# out_marks NS: counters of the state marks on NS's way out (LOCAL_OUT classification), in
# tl_marks' table so that tl_expect reads them: mark_out_new, mark_out_est.
out_marks()
{
	ns_exec "$1" nft -f - <<-EOF
		table inet icmpct_marks {
			counter mark_out_new { }
			counter mark_out_est { }
			chain output {
				type filter hook output priority 0; policy accept;
				meta mark and 0xf == 1 counter name mark_out_new
				meta mark and 0xf == 2 counter name mark_out_est
			}
		}
	EOF
}

# ct_match NS REGEX: print the listing lines of NS matching REGEX (bash ERE); 1 if none.
ct_match()
{
	local list line found=1

	list=$(ct_list "$1") || return 2
	while IFS= read -r line; do
		if [[ $line =~ $2 ]]; then
			printf '%s\n' "$line"
			found=0
		fi
	done <<<"$list"
	return $found
}

# ct_expect_line DESC NS REGEX [TMIN TMAX]: subtest: exactly one listed line matches REGEX
# (whose first group is the seconds left), within TMIN..TMAX seconds if given.
ct_expect_line()
{
	local desc=$1 ns=$2 re=$3 tmin=${4:-} tmax=${5:-} lines n t

	lines=$(ct_match "$ns" "$re")
	n=0
	[ -z "$lines" ] || n=$(wc -l <<<"$lines")
	if [ "$n" != 1 ]; then
		ktap_msg "$desc: $n matching lines for: $re" "listing:" "$(ct_list "$ns" 2>&1)"
		ktap_test_fail "$desc"
		return 1
	fi
	if [ -n "$tmin" ]; then
		[[ $lines =~ $re ]]
		t=${BASH_REMATCH[1]}
		if [ "$t" -lt "$tmin" ] || [ "$t" -gt "$tmax" ]; then
			ktap_msg "$desc: $t seconds left, expected $tmin..$tmax: $lines"
			ktap_test_fail "$desc"
			return 1
		fi
	fi
	ktap_test_pass "$desc"
}

# udp_re SRC DST SPORT DPORT FLAGS_BEFORE FLAGS_AFTER: regex of a udp listing line (the
# seconds left captured) with the given " [UNREPLIED]" and " [ASSURED]" parts.
udp_re()
{
	local src=${1//./\\.} dst=${2//./\\.}

	printf '%s' "^udp      17 ([0-9]+) src=$src dst=$dst sport=$3 dport=$4$5" \
		" src=$dst dst=$src sport=$4 dport=$3$6 use=1\$"
}

UNREPL=' \[UNREPLIED\]'
ASSURED=' \[ASSURED\]'

setup_ab || ktap_bail_out "cannot set up namespaces A and B"
tl_gate "$B" "udp dport 6000" || ktap_bail_out "cannot add the drop rule in B (nft)"
_tl_ask "$A" bind :: 5000 || ktap_bail_out "A cannot bind UDP port 5000: $TL_REPLY"
udp_timeout=$(sysctl_get "$A" ip_ct_udp_timeout)
stream_timeout=$(sysctl_get "$A" ip_ct_udp_timeout_stream)

##############################################################################
# 1. An IPv6 datagram with IPv4-mapped addresses meets an IPv4 flow of the same numbers.

v4_unrepl=$(udp_re $A_IP $B_IP 5000 6000 "$UNREPL" "")
v4_assured=$(udp_re $A_IP $B_IP 5000 6000 "" "$ASSURED")
v6_unrepl=$(udp_re $B_MAPPED $A_MAPPED 6000 5000 "$UNREPL" "")

tl_snap "$A"
craft "$A" --src $A_IP --dst $B_IP --udp 6000 --sport 5000 || ktap_msg "A cannot send the IPv4 datagram"
tl_expect "IPv4 $A_IP:5000 -> $B_IP:6000: NEW at A, inserted" "$A" new=1 insert=1 insert_failed=0
ct_expect_line "A lists the IPv4 flow [UNREPLIED]" "$A" "$v4_unrepl" \
	$((udp_timeout - SLACK)) "$udp_timeout"

tl_snap "$A"
craft "$B" --link veth0 --lladdr "$A_MAC" --src $B_MAPPED --dst $A_MAPPED --udp 5000 --sport 6000 ||
	ktap_msg "B cannot inject the IPv6 datagram"
tl_wait_delta "$A" hook_local_in 1 "$WAIT" || ktap_msg "the IPv6 datagram did not reach A's LOCAL_IN"
tl_expect "IPv6 $B_MAPPED:6000 -> $A_MAPPED:5000: NEW at A (mark 1), not ESTABLISHED" "$A" \
	new=1 mark_new=1 established=0 mark_est=0 invalid=0
tl_expect "IPv6 datagram: an entry of its own is inserted, no insert fails" "$A" \
	insert=1 insert_failed=0
ct_expect_line "IPv6 datagram: the IPv4 entry is untouched ([UNREPLIED], not [ASSURED])" "$A" \
	"$v4_unrepl"
ct_expect_line "A lists the IPv6 flow with IPv4-mapped addresses, [UNREPLIED]" "$A" "$v6_unrepl" \
	$((udp_timeout - SLACK)) "$udp_timeout"
ktap_expect_eq "A: ip_conntrack_count 2, 2 lines" "2 2" "$(ct_count "$A") $(ct_lines "$A")"

# The IPv4 entry still works: B's real IPv4 answer is its reply.
tl_snap "$A"
craft "$B" --src $B_IP --dst $A_IP --udp 5000 --sport 6000 || ktap_msg "B cannot send the IPv4 reply"
tl_wait_delta "$A" hook_local_in 1 "$WAIT" || ktap_msg "the IPv4 reply did not reach A's LOCAL_IN"
tl_expect "IPv4 reply $B_IP:6000 -> $A_IP:5000: ESTABLISHED at A (mark 2)" "$A" \
	established=1 mark_est=1 new=0 insert=0 invalid=0
ct_expect_line "IPv4 reply: the IPv4 entry is [ASSURED], ip_ct_udp_timeout_stream" "$A" \
	"$v4_assured" $((stream_timeout - SLACK)) "$stream_timeout"
ct_expect_line "IPv4 reply: the IPv6 entry is still [UNREPLIED]" "$A" "$v6_unrepl"

##############################################################################
# 2. ICMPv6 echo requests with IPv4-mapped addresses and distinct ids.

tl_snap "$A"
craft "$B" --link veth0 --lladdr "$A_MAC" --src $B_MAPPED --dst $A_MAPPED --type 128 --id 700 \
	--id-step 1 --count 4 || ktap_msg "B cannot inject the echo requests"
tl_wait_delta "$A" hook_local_in 4 "$WAIT" || ktap_msg "not every echo request reached A's LOCAL_IN"
tl_expect "4 ICMPv6 echo requests $B_MAPPED -> $A_MAPPED, ids 700..703: NEW at A (mark 1)" "$A" \
	new=4 mark_new=4 established=0 invalid=0
tl_expect "4 echo requests: 4 entries inserted, no insert fails" "$A" insert=4 insert_failed=0
icmp6_timeout=$(sysctl_get "$A" ip_ct_icmpv6_timeout)
for id in 700 701 702 703; do
	ct_check_line "A lists the icmpv6 entry of id $id [UNREPLIED] (128 -> 129)" "$A" \
		$B_MAPPED $A_MAPPED 128 0 $id 129 1 $((icmp6_timeout - SLACK)) "$icmp6_timeout"
done
ktap_expect_eq "A: ip_conntrack_count 6, 6 lines" "6 6" "$(ct_count "$A") $(ct_lines "$A")"

##############################################################################
# 3. A flow whose reply tuple is its original tuple: 127.0.0.1:7000 -> 127.0.0.1:7000.

ns_create C || ktap_bail_out "cannot create namespace C"
{ tl_agent "$C" && tl_marks "$C" && out_marks "$C"; } ||
	ktap_bail_out "cannot set up C's agent and mark counters"
self_line=$(udp_re 127.0.0.1 127.0.0.1 7000 7000 "" "$ASSURED")

tl_snap "$C"
craft "$C" --udp-socket --src 127.0.0.1 --sport 7000 --dst 127.0.0.1 --udp 7000 ||
	ktap_msg "C cannot send the first datagram"
tl_wait_delta "$C" hook_local_in 1 "$WAIT" || ktap_msg "the datagram did not come back on lo"
tl_expect "self-addressed UDP, first datagram: NEW on its way out (mark 1 at output)" "$C" \
	new=1 mark_out_new=1 mark_out_est=0
tl_expect "first datagram: exactly one entry inserted, no insert fails" "$C" \
	insert=1 insert_failed=0
tl_expect "first datagram back on lo finds the entry's reply direction: ESTABLISHED (mark 2)" \
	"$C" established=1 mark_est=1 mark_new=0 invalid=0

tl_snap "$C"
craft "$C" --udp-socket --src 127.0.0.1 --sport 7000 --dst 127.0.0.1 --udp 7000 --count 3 ||
	ktap_msg "C cannot send the next datagrams"
tl_wait_delta "$C" hook_local_in 3 "$WAIT" || ktap_msg "the datagrams did not come back on lo"
tl_expect "3 more datagrams: ESTABLISHED out and in, no new entry, no insert fails" "$C" \
	new=0 established=6 mark_out_est=3 mark_est=3 insert=0 insert_failed=0
ct_expect_line "C lists the flow once, [ASSURED], ip_ct_udp_timeout_stream" "$C" "$self_line" \
	$((stream_timeout - SLACK)) "$stream_timeout"
ktap_expect_eq "C: ip_conntrack_count 1, 1 line" "1 1" "$(ct_count "$C") $(ct_lines "$C")"

ktap_finished
