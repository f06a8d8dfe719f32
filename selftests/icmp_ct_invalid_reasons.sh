#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Why a packet is INVALID (contract.rst, "Why a packet is INVALID", "/proc/net/stat/icmp_ct"):
# each reason a packet can produce is provoked with hand-made packets (craft.py), and only its
# own invalid_<reason> counter rises, by exactly the number of packets, together with
# `invalid`; at the end the invalid_* counters add up to `invalid` in every namespace.
#
#   ns A (10.0.5.1/24, fd00:5::1/64) veth0 ---- veth0 (10.0.5.2/24) ns B
#
# B sends to A through a raw IPv4 socket (A classifies at PRE_ROUTING), IPv6 as Ethernet
# frames through a packet socket (craft.py --link; only A has IPv6). TCP segments carry a
# zero checksum, so that neither stack answers them (its TCP drops them after A's hooks).
# An IPv4 header claiming version 6 is only seen by the sender's LOCAL_OUT hook (B's).
#
# Reasons no packet can produce, whose counters must stay 0 (REASONS_NO_PACKET below):
#  - truncated IPv4 header, bad IPv4 header length, truncated IPv6 header: ip_rcv, ipv6_rcv
#    and the raw sockets' IP_HDRINCL paths refuse them before any netfilter hook;
#  - query in the wrong direction, not an ICMP query: defensive; entries are only created by
#    requests, whose reply types never equal a request type, and errors never reach the
#    query classifier.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.5.1
B_IP=10.0.5.2
A_IP6=fd00:5::1
B_IP6=fd00:5::2
N=3

REASONS_NO_PACKET="invalid_truncated_ipv4_header invalid_bad_ipv4_header_length
invalid_truncated_ipv6_header invalid_query_in_the_wrong_direction invalid_not_an_icmp_query"

tl_require

ktap_header
ktap_plan 26

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
ns_exec "$A" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 \
	net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null ||
	ktap_bail_out "cannot enable IPv6 in A"
ip -n "$A" addr add $A_IP6/64 dev veth0 nodad || ktap_bail_out "cannot give A an IPv6 address"
A_MAC=$(ip -n "$A" -br link show veth0 | awk '{ print $3 }')

# All invalid_* counter names, from A's file.
REASONS=$(tl_get "$A" "$ICMP_CT_STAT" | awk '$1 ~ /^invalid_/ { print $1 }')
[ "$(wc -w <<<"$REASONS")" -ge 20 ] || ktap_bail_out "no invalid_<reason> counters: $REASONS"

# expect_reason DESC NS REASON WHERE: since the last tl_snap of NS, N packets reached hook
# counter WHERE, `invalid` and invalid_REASON rose by N, every other invalid_* by 0. (One awk
# over all counters: a process per counter costs seconds on the debug kernel.)
expect_reason()
{
	local desc=$1 ns=$2 reason=$3 where=$4 bad

	tl_wait_delta "$ns" "$where" $N || ktap_msg "$desc: not all $N packets were seen"
	# shellcheck disable=SC2016 # awk program
	bad=$(tl_deltas "$ns" stats | awk -v r="$reason" -v n=$N '
		$1 == "invalid" || $1 == r { seen[$1] = 1; if ($2 != n) printf "%s %+d (want +%d), ", $1, $2, n; next }
		$1 ~ /^invalid_/ && $2 != 0 { printf "%s %+d (want +0), ", $1, $2 }
		END { if (!seen["invalid"] || !seen[r]) printf "no %s or invalid counter", r }')
	if [ -z "$bad" ]; then
		ktap_test_pass "$desc: $reason +$N"
		return 0
	fi
	ktap_msg "$desc: $bad"
	ktap_test_fail "$desc: $reason +$N"
	return 1
}

# from_b REASON DESC CRAFT-ARGS...: B sends N such packets to A, each INVALID for REASON.
from_b()
{
	local reason=$1 desc=$2

	shift 2
	tl_snap "$A"
	craft "$B" --count $N "$@" || ktap_msg "$desc: craft failed"
	expect_reason "$desc" "$A" "invalid_$reason" hook_pre_routing
}

# link6 REASON DESC CRAFT-ARGS...: the same as IPv6 frames from B's veth0 to A.
link6()
{
	local reason=$1 desc=$2

	shift 2
	from_b "$reason" "$desc" --link veth0 --lladdr "$A_MAC" --src $B_IP6 --dst $A_IP6 "$@"
}

# tcp SPORT DPORT FLAGS SEQ ACK [DOFF]: a 20-byte TCP header in hex, window 8192, checksum 0;
# FLAGS in hex.
tcp()
{
	printf '%04x%04x%08x%08x%x0%s200000000000' "$1" "$2" "$4" "$5" "${6:-5}" "$3"
}

# ipv4 SRC DST PROTO [FRAG]: a 20-byte IPv4 header in hex (for an ICMP error's body).
ipv4()
{
	local s1 s2 s3 s4 d1 d2 d3 d4

	IFS=. read -r s1 s2 s3 s4 <<<"$1"
	IFS=. read -r d1 d2 d3 d4 <<<"$2"
	printf '4500001c4242%04x40%02x0000%02x%02x%02x%02x%02x%02x%02x%02x' "${4:-0}" "$3" \
		"$s1" "$s2" "$s3" "$s4" "$d1" "$d2" "$d3" "$d4"
}

SYN=02 RST=04 ACK=10 SYN_ACK=12 SYN_FIN=03

# Malformed headers.
tl_snap "$B"
craft "$B" --dst $A_IP --count $N --type 8 --id 600 --ip-version 6 ||
	ktap_msg "version 6 in an IPv4 header: craft failed"
expect_reason "IPv4 header claiming version 6, at the sender's LOCAL_OUT" "$B" \
	invalid_bad_ip_version hook_local_out
from_b truncated_transport_header "UDP header of 4 bytes" \
	--dst $A_IP --ip-proto 17 --data 9c400035
from_b truncated_icmp_header "ICMP header of 4 bytes" --dst $A_IP --type 8 --id 601 --icmp-len 4
from_b bad_tcp_data_offset "TCP data offset 4" \
	--dst $A_IP --ip-proto 6 --data "$(tcp 40000 80 $SYN 1 0 4)"
link6 truncated_ipv6_extension_header "IPv6 destination options header of 2 bytes" \
	--ip-proto 60 --data 3b00
link6 more_than_8_ipv6_extension_headers "IPv6 with 9 destination options headers" \
	--ip-proto 60 --data "$(printf '3c00010400000000%.0s' 1 2 3 4 5 6 7 8)3b00010400000000"
from_b truncated_embedded_header "ICMP error embedding 10 bytes of an IPv4 header" \
	--dst $A_IP --type 3 --code 3 --data "$(ipv4 $A_IP $B_IP 17 | cut -c1-20)"
from_b bad_embedded_ip_header "ICMP error embedding an IPv4 header with version 6" \
	--dst $A_IP --type 3 --code 3 --data "6$(ipv4 $A_IP $B_IP 17 | cut -c2-)9c40003500100000"
from_b embedded_non_first_fragment "ICMP error embedding a non-first fragment" \
	--dst $A_IP --type 3 --code 3 --data "$(ipv4 $A_IP $B_IP 17 1)9c40003500100000"

# ICMP.
from_b bad_icmp_checksum "echo request with a bad checksum" \
	--dst $A_IP --type 8 --id 602 --bad-checksum
from_b unknown_icmp_type "ICMP type 99" --dst $A_IP --type 99 --id 603
from_b unsolicited_reply "echo reply without request" --dst $A_IP --type 0 --id 604

# A reply to an entry whose request was answered, kept by ip_ct_icmp_keep_replied=1, once
# keep_replied is 0 again. B's own stack must not answer A's request: the gate drops it.
tl_gate "$B" "icmp type 8" || ktap_msg "cannot add the gate in B"
tl_sysctl_set "$A" ip_ct_icmp_keep_replied 1 || ktap_msg "keep_replied=1: $SYSCTL_ERR"
craft "$A" --dst $B_IP --type 8 --id 605 || ktap_msg "echo request 605 failed"
craft "$B" --dst $A_IP --type 0 --id 605 || ktap_msg "echo reply 605 failed"
tl_wait_until 3 ct_find "$A" $A_IP $B_IP 8 0 605 >/dev/null ||
	ktap_msg "no kept entry for 605: $(ct_list "$A")"
tl_sysctl_set "$A" ip_ct_icmp_keep_replied 0 || ktap_msg "keep_replied=0: $SYSCTL_ERR"
from_b reply_to_an_answered_request "echo reply to an answered request (keep_replied 1, then 0)" \
	--dst $A_IP --type 0 --id 605
tl_ungate "$B"

from_b icmp_error_inside_icmp_error "port unreachable about a port unreachable" \
	--dst $A_IP --type 3 --code 3 --data "$(ipv4 $A_IP $B_IP 1)0303000000000000"
from_b spoofed_icmp_error "port unreachable about a datagram A did not send" \
	--dst $A_IP --type 3 --code 3 --embed-udp 10.0.5.77,4000,$B_IP,53
from_b icmp_error_about_no_tracked_connection "port unreachable about an untracked datagram" \
	--dst $A_IP --type 3 --code 3 --embed-udp $A_IP,4000,$B_IP,53
link6 bad_icmpv6_redirect "ICMPv6 redirect from a global address" \
	--type 137 --ttl 255 --embed-udp $A_IP6,4000,$B_IP6,53

# TCP.
from_b tcp_rst_without_connection "TCP RST without connection" \
	--dst $A_IP --ip-proto 6 --data "$(tcp 40001 80 $RST 1 0)"
from_b bad_tcp_flags "TCP SYN+FIN" --dst $A_IP --ip-proto 6 --data "$(tcp 40002 80 $SYN_FIN 1 0)"
tl_sysctl_set "$A" ip_ct_tcp_loose 0 || ktap_msg "ip_ct_tcp_loose=0: $SYSCTL_ERR"
from_b tcp_non_syn_without_connection "TCP ACK without connection, ip_ct_tcp_loose=0" \
	--dst $A_IP --ip-proto 6 --data "$(tcp 40003 80 $ACK 1 1)"
tl_sysctl_set "$A" ip_ct_tcp_loose 1
# A handshake B:40004 -> A:80 (ISNs 1000 and 5000, windows of 8192), then RSTs 1 MB ahead.
craft "$B" --dst $A_IP --ip-proto 6 --data "$(tcp 40004 80 $SYN 1000 0)" || ktap_msg "SYN failed"
craft "$A" --dst $B_IP --ip-proto 6 --data "$(tcp 80 40004 $SYN_ACK 5000 1001)" ||
	ktap_msg "SYN/ACK failed"
craft "$B" --dst $A_IP --ip-proto 6 --data "$(tcp 40004 80 $ACK 1001 5001)" || ktap_msg "ACK failed"
established_40004() { ct_list "$A" | grep -q "ESTABLISHED .*sport=40004 .*ASSURED"; }
tl_wait_until 3 established_40004 || ktap_msg "$(ct_list "$A")"
ktap_check "TCP handshake B:40004 -> A:80: ESTABLISHED [ASSURED] in A" established_40004
from_b tcp_rst_or_fin_outside_the_window "TCP RST 1 MB past the window" \
	--dst $A_IP --ip-proto 6 --data "$(tcp 40004 80 $RST 1001001 0)"

# The quota: B at ip_ct_max_per_source=1 in A, holding only an answered (kept) entry, has
# nothing [UNREPLIED] to lose; A's input drops the requests, so that A does not answer them.
tl_sysctl_set "$A" ip_ct_icmp_keep_replied 1 || ktap_msg "keep_replied=1: $SYSCTL_ERR"
tl_sysctl_set "$A" ip_ct_max_per_source 1 || ktap_msg "max_per_source=1: $SYSCTL_ERR"
craft "$B" --dst $A_IP --type 8 --id 610 || ktap_msg "echo request 610 failed"
answered_610() { ct_find "$A" "$B_IP" "$A_IP" 8 0 610 | grep -qv UNREPLIED; }
tl_wait_until 3 answered_610 || ktap_msg "B's entry 610 is not answered: $(ct_list "$A")"
tl_gate "$A" "icmp type 8" || ktap_msg "cannot add the gate in A"
from_b source_over_its_quota "echo requests from a source at its quota, nothing unreplied" \
	--dst $A_IP --type 8 --id 611 --id-step 1
tl_ungate "$A"
tl_sysctl_set "$A" ip_ct_max_per_source 0
tl_sysctl_set "$A" ip_ct_icmp_keep_replied 0

# sum_is_invalid NS: the invalid_* counters of NS add up to its `invalid`.
sum_is_invalid()
{
	local file

	file=$(tl_get "$1" "$ICMP_CT_STAT") || return 1
	awk '$1 == "invalid" { want = $2 } $1 ~ /^invalid_/ { sum += $2 }
		END { if (sum != want) print "invalid_* add up to " sum ", invalid is " want
			exit sum != want || want == 0 }' <<<"$file"
}
ktap_check "A: the invalid_* counters add up to invalid" sum_is_invalid "$A"
ktap_check "B: the invalid_* counters add up to invalid" sum_is_invalid "$B"

# every_reason_seen: each counter but REASONS_NO_PACKET rose in A or B, those stayed 0.
every_reason_seen()
{
	local bad

	# shellcheck disable=SC2016 # awk program
	bad=$({ tl_get "$A" "$ICMP_CT_STAT" && tl_get "$B" "$ICMP_CT_STAT"; } |
		awk -v none="$REASONS_NO_PACKET" '
		BEGIN { split(none, list); for (i in list) unreachable[list[i]] = 1 }
		$1 ~ /^invalid_/ { sum[$1] += $2 }
		END {
			for (r in sum)
				if (r in unreachable) {
					if (sum[r] != 0) printf "%s is %d; ", r, sum[r]
				} else if (sum[r] == 0) {
					printf "%s never rose (no case in this test); ", r
				}
		}')
	[ -z "$bad" ] || { ktap_msg "$bad"; return 1; }
}
ktap_check "every reason a packet can produce was provoked, the others stayed 0" every_reason_seen
ktap_msg "A's INVALID counters:" "$(tl_get "$A" "$ICMP_CT_STAT" | grep '^invalid' | grep -v ' 0$')"

ktap_finished
