#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# What a firewall acts on (contract.rst "Marks", ip_ct_drop_invalid, ip_ct_drop_fragments,
# ip_ct_log_invalid, /proc/net/stat/icmp_ct_types).
#
#   ns A (10.0.9.1/24) veth0 ---- veth0 (10.0.9.2/24) ns B        MTU 1500, IPv6 off
#
#  1. Per-type statistics: a known mix (3 pings, 2 timestamp requests answered by B's Linux,
#     an unsolicited echo reply, a UDP datagram to a closed port and B's port unreachable,
#     an unknown type 99) gives exactly the expected lines in both namespaces.
#  2. Every mark code (ip_ct_mark_mask=0xf) counted by an nft rule in the filter input chain
#     in its case: NEW 1 (a request at B), ESTABLISHED 2 (its reply at A), RELATED 3 (the
#     port unreachable at A), INVALID 4 (an unsolicited reply at A), UNTRACKED 5 (a request
#     marked notrack in B's raw table).
#  3. Bits outside the mask survive: a mark set by the sending socket (ping -m) and one set
#     in mangle PREROUTING keep their other bits, bits inside the mask are replaced, and the
#     code is shifted to the mask's lowest bit.
#  4. ip_ct_drop_invalid=1 drops an unsolicited echo reply and a spoofed error (about a flow
#     A never started) before the filter table, not a valid reply or a valid error.
#  5. ip_ct_drop_fragments=1 drops a fragmented ping (-s 3000 over MTU 1500: 3 fragments),
#     not an unfragmented one; with 0 the fragmented ping passes (first fragment NEW, the
#     two others UNTRACKED).
#  6. ip_ct_log_invalid=1 logs one line per rate-limit window (net.core.message_burst=1,
#     message_cost=4 during the test), and nothing with 0.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.9.1
B_IP=10.0.9.2
CLOSED_PORT=9
RATELIMIT_SECS=4
SAVED_BURST=""
SAVED_COST=""

SAVED_LOG_ALL=""

test_cleanup()
{
	[ -n "$SAVED_LOG_ALL" ] && sysctl -q -w net.netfilter.nf_log_all_netns="$SAVED_LOG_ALL"
	[ -n "$SAVED_BURST" ] && sysctl -q -w net.core.message_burst="$SAVED_BURST" >/dev/null
	[ -n "$SAVED_COST" ] && sysctl -q -w net.core.message_cost="$SAVED_COST" >/dev/null
	tl_cleanup
}

tl_require
require_cmd dmesg

ktap_header
ktap_plan 20

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"

##############################################################################
# 1. Per-type statistics of a known mix, before any other traffic.

types_of()
{
	tl_get "$1" "$ICMP_CT_TYPES"
}

types_are()
{
	[ "$(types_of "$1")" = "$2" ]
}

tl_ping "$A" $B_IP 701 3 || ktap_msg "ping A -> B (id 701, 3 requests) failed"
craft "$A" --dst $B_IP --type 13 --id 702 --count 2 --id-step 1 ||
	ktap_msg "cannot send the timestamp requests"
craft "$B" --dst $A_IP --type 0 --id 703 || ktap_msg "cannot send the unsolicited echo reply"
craft "$A" --dst $B_IP --udp $CLOSED_PORT || ktap_msg "cannot send the UDP datagram"
craft "$A" --dst $B_IP --type 99 --id 704 || ktap_msg "cannot send type 99"
# The same lines in both namespaces: each packet is classified once where it leaves (A's or
# B's LOCAL_OUT) and once where it arrives (PRE_ROUTING).
mix="ipv4 0 echo-reply 0 3 0 1
ipv4 3 destination-unreachable 0 0 1 0
ipv4 8 echo-request 3 0 0 0
ipv4 13 timestamp-request 2 0 0 0
ipv4 14 timestamp-reply 0 2 0 0
ipv4 99 unknown 0 0 0 1"
for ns in "$A" "$B"; do
	name=A
	[ "$ns" = "$B" ] && name=B
	if tl_wait_until 5 types_are "$ns" "$mix"; then
		ktap_test_pass "per-type statistics of $name match the traffic sent"
	else
		ktap_msg "expected:" "$mix" "got:" "$(types_of "$ns")"
		ktap_test_fail "per-type statistics of $name match the traffic sent"
	fi
done

##############################################################################
# 2. Each mark code, counted in the filter input chain.

{ tl_marks "$A" && tl_marks "$B"; } || ktap_bail_out "cannot set up the mark counters (nft)"

tl_snap "$A" "$B"
tl_ping "$A" $B_IP 711 || ktap_msg "ping A -> B (id 711) failed"
tl_wait_delta "$A" established 1
tl_expect "NEW: the echo request has mark 1 in B's filter input" "$B" \
	new=1 mark_new=1 mark_est=0 mark_rel=0 mark_inv=0 mark_untr=0
tl_expect "ESTABLISHED: its reply has mark 2 in A's filter input" "$A" \
	established=1 mark_est=1 mark_new=0 mark_rel=0 mark_inv=0 mark_untr=0

tl_snap "$A"
craft "$A" --dst $B_IP --udp $CLOSED_PORT || ktap_msg "cannot send the UDP datagram"
tl_wait_delta "$A" related 1
tl_expect "RELATED: B's port unreachable has mark 3 in A's filter input" "$A" \
	related=1 mark_rel=1 mark_new=0 mark_est=0 mark_inv=0 mark_untr=0

tl_snap "$A"
craft "$B" --dst $A_IP --type 0 --id 713 || ktap_msg "cannot send the unsolicited echo reply"
tl_wait_delta "$A" invalid 1
tl_expect "INVALID: an unsolicited echo reply has mark 4 in A's filter input" "$A" \
	invalid=1 mark_inv=1 mark_new=0 mark_est=0 mark_rel=0 mark_untr=0

untracked_setup()
{
	mod_probe nf_conntrack nft_ct || { ktap_msg "modprobe: $MODPROBE_ERR"; return 1; }
	ns_exec "$B" nft -f - <<-EOF
		table ip icmpct_raw {
			chain raw_pre {
				type filter hook prerouting priority raw; policy accept;
				icmp type echo-request icmp id 714 notrack
			}
		}
	EOF
}
untracked_setup || ktap_msg "cannot set up the raw table in B"
tl_snap "$B"
tl_ping "$A" $B_IP 714 || ktap_msg "ping A -> B (id 714) failed"
tl_wait_delta "$B" untracked 1
tl_expect "UNTRACKED: a request marked notrack has mark 5 in B's filter input" "$B" \
	untracked=1 mark_untr=1 new=0 insert=0 mark_new=0 mark_est=0 mark_rel=0 mark_inv=0
tl_run "$B" nft delete table ip icmpct_raw

##############################################################################
# 3. Bits outside the mask are preserved.

ns_exec "$A" nft -f - <<-EOF || ktap_msg "cannot set up A's output counter"
	table inet icmpct_preset {
		counter marked { }
		chain output {
			type filter hook output priority 0; policy accept;
			icmp type echo-request icmp id 721 meta mark 0x101 counter name marked
		}
	}
EOF
ns_exec "$B" nft -f - <<-EOF || ktap_msg "cannot set up B's mangle and input rules"
	table inet icmpct_preset {
		counter low { }
		counter high { }
		chain mangle_pre {
			type filter hook prerouting priority mangle; policy accept;
			icmp type echo-request icmp id { 722, 723 } meta mark set 0x20f
		}
		chain input {
			type filter hook input priority 0; policy accept;
			icmp id 722 meta mark 0x201 counter name low
			icmp id 723 meta mark 0x10f counter name high
		}
	}
EOF

# preset_count NS COUNTER: packets of counter COUNTER of table icmpct_preset.
preset_count()
{
	# shellcheck disable=SC2016 # awk program
	tl_run "$1" nft list counter inet icmpct_preset "$2" |
		awk '$1 == "packets" { print $2; exit }'
}

tl_run "$A" ping -n -q -c 1 -W 1 -m 256 -e 721 $B_IP >/dev/null ||
	ktap_msg "ping -m 256 A -> B (id 721) failed"
ktap_expect_eq "a socket's mark 0x100 survives; NEW written under mask 0xf (0x101 in A's output)" \
	1 "$(preset_count "$A" marked)"
tl_ping "$A" $B_IP 722 || ktap_msg "ping A -> B (id 722) failed"
ktap_expect_eq "mangle's 0x20f becomes 0x201 under mask 0xf (bits inside replaced, outside kept)" \
	1 "$(preset_count "$B" low)"
tl_sysctl_set "$B" ip_ct_mark_mask 3840 || ktap_msg "ip_ct_mark_mask=0xf00: $SYSCTL_ERR"
tl_ping "$A" $B_IP 723 || ktap_msg "ping A -> B (id 723) failed"
ktap_expect_eq "under mask 0xf00, 0x20f becomes 0x10f: the code shifted to bit 8, 0x0f kept" \
	1 "$(preset_count "$B" high)"
tl_sysctl_set "$B" ip_ct_mark_mask 15

##############################################################################
# 4. ip_ct_drop_invalid=1 in A.

tl_sysctl_set "$A" ip_ct_drop_invalid 1 || ktap_msg "ip_ct_drop_invalid=1: $SYSCTL_ERR"

tl_snap "$A"
craft "$B" --dst $A_IP --type 0 --id 731 || ktap_msg "cannot send the unsolicited echo reply"
tl_wait_delta "$A" invalid 1
tl_expect "drop_invalid: an unsolicited echo reply is dropped before the filter table" "$A" \
	invalid=1 dropped_invalid=1 mark_inv=0 hook_local_in=0

tl_snap "$A"
craft "$B" --dst $A_IP --type 3 --code 3 --id 0 --seq 0 \
	--embed-udp $A_IP,4000,$B_IP,53 || ktap_msg "cannot send the spoofed error"
tl_wait_delta "$A" invalid 1
tl_expect "drop_invalid: a port unreachable about a flow A never started is dropped" "$A" \
	invalid=1 dropped_invalid=1 related=0 mark_inv=0 mark_rel=0 hook_local_in=0

tl_snap "$A"
tl_ping "$A" $B_IP 733 || ktap_msg "ping A -> B (id 733) failed"
tl_expect "drop_invalid: a valid echo reply passes" "$A" \
	established=1 mark_est=1 invalid=0 dropped_invalid=0

tl_snap "$A"
craft "$A" --dst $B_IP --udp $CLOSED_PORT --sport 40001 || ktap_msg "cannot send the UDP datagram"
tl_wait_delta "$A" related 1
tl_expect "drop_invalid: a valid port unreachable passes (RELATED)" "$A" \
	related=1 mark_rel=1 invalid=0 dropped_invalid=0

tl_sysctl_set "$A" ip_ct_drop_invalid 0

##############################################################################
# 5. ip_ct_drop_fragments=1 in B.

# ping_size SIZE ID: one ping A -> B with SIZE bytes of data; 0 if answered.
ping_size()
{
	tl_run "$A" ping -n -q -c 1 -W 2 -s "$1" -e "$2" $B_IP >/dev/null
}

tl_sysctl_set "$B" ip_ct_drop_fragments 1 || ktap_msg "ip_ct_drop_fragments=1: $SYSCTL_ERR"

tl_snap "$B"
ping_size 3000 741 && ktap_msg "ping -s 3000 got a reply"
tl_wait_delta "$B" dropped_fragment 3
tl_expect "drop_fragments: the 3 fragments of ping -s 3000 are dropped, no entry" "$B" \
	dropped_fragment=3 new=0 untracked=0 insert=0 hook_local_in=0

tl_snap "$B"
ping_size 1000 742 || ktap_msg "ping -s 1000 was not answered"
tl_expect "drop_fragments: an unfragmented ping (-s 1000) passes" "$B" \
	dropped_fragment=0 new=1 established=1 untracked=0

tl_sysctl_set "$B" ip_ct_drop_fragments 0
tl_snap "$B"
ping_size 3000 743 || ktap_msg "ping -s 3000 with drop_fragments=0 was not answered"
tl_expect "drop_fragments=0: ping -s 3000 passes (first fragment NEW, 2 UNTRACKED)" "$B" \
	dropped_fragment=0 new=1 untracked=2 established=1

##############################################################################
# 6. ip_ct_log_invalid=1 in A: one line per rate-limit window.

SAVED_BURST=$(sysctl -n net.core.message_burst)
# A is not the initial namespace: it logs only while the host allows it.
SAVED_LOG_ALL=$(sysctl -n net.netfilter.nf_log_all_netns)
sysctl -q -w net.netfilter.nf_log_all_netns=1 || ktap_msg "cannot set nf_log_all_netns"
SAVED_COST=$(sysctl -n net.core.message_cost)
sysctl -q -w net.core.message_burst=1 net.core.message_cost=$RATELIMIT_SECS >/dev/null ||
	ktap_msg "cannot set net.core.message_burst/message_cost"
tl_sysctl_set "$A" ip_ct_log_invalid 1 || ktap_msg "ip_ct_log_invalid=1: $SYSCTL_ERR"

# logged_lines: the module's INVALID lines since kmsg_mark.
logged_lines()
{
	kmsg_new | grep -c "icmp_ct: INVALID packet: ."
}

# invalid_burst ID: 10 unsolicited echo replies B -> A, at once; returns once A counted them.
invalid_burst()
{
	tl_snap "$A"
	craft "$B" --dst $A_IP --type 0 --id "$1" --count 10 || ktap_msg "cannot send the burst"
	tl_wait_delta "$A" invalid 10 || ktap_msg "the burst did not arrive"
}

kmsg_mark
invalid_burst 751
# The window began with the burst's first packet, before this.
start=$(tl_ms)
ktap_msg "$(kmsg_new | grep "icmp_ct: INVALID")"
ktap_expect_eq "log_invalid: 10 INVALID packets in one window give one line (burst 1)" \
	1 "$(logged_lines)"
tl_sleep_until $((start + RATELIMIT_SECS * 1000 + 500))
invalid_burst 752
ktap_expect_eq "log_invalid: the next window gives one more line" 2 "$(logged_lines)"

tl_sysctl_set "$A" ip_ct_log_invalid 0
tl_sleep_until $(($(tl_ms) + RATELIMIT_SECS * 1000 + 500))
kmsg_mark
invalid_burst 753
ktap_expect_eq "log_invalid=0: nothing logged" 0 "$(logged_lines)"

ktap_finished
