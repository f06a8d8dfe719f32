#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ICMP errors RELATED to UDP, TCP and ICMP flows: the scenarios of the Iptables Tutorial's
# "ICMP connections" chapter, seen from the client (and the router) of
#
#   C 10.0.1.1 vc ---- vr_c 10.0.1.254  R  10.0.2.254 vr_s (MTU 1280) ---- vs 10.0.2.1 S
#
# R forwards; its forward chain rejects 10.0.3.0/24 with net-unreachable and 10.0.4.0/24
# with admin-prohibited and silently drops 10.0.5.0/24 (all three routed towards S).
#
#  1. TCP SYN to 10.0.3.1: net-unreachable is RELATED at C, the SYN_SENT entry destroyed.
#  2. UDP to 10.0.4.1: admin-prohibited is RELATED at C, the [UNREPLIED] entry destroyed.
#  3. DNS-like exchange C:1025 -> S:53: [UNREPLIED] (<= 30 s), then [ASSURED] (<= 180 s),
#     at C and at R.
#  4. TTL 1 (ping, UDP): R's time-exceeded is RELATED at C, the entry destroyed.
#  5. Path MTU: a TCP flow pushes full-size DF segments into the 1280-byte link; R's
#     fragmentation-needed is RELATED at C and R and destroys nothing; the same for an
#     [UNREPLIED] UDP flow with DF, whose entry survives.
#  6. Hand-made errors (scapy) to C: wrong outer destination, no such flow, error in an
#     error: INVALID, nothing destroyed; a port-unreachable about the replied DNS flow:
#     RELATED, not destroyed; a genuine one about an [UNREPLIED] flow as a control:
#     RELATED, destroyed.  At R, its own reject (section 1) about a packet without entry is
#     RELATED, the hand-made error about no flow (written on a raw socket) INVALID.
#
# IPv6 is off and ICMP rate limiting disabled in every namespace, so C's counters move
# only by the packets of each step.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"
# shellcheck source=related_lib.sh
source "$SELFTESTS_DIR/related_lib.sh"

require_module
require_cmd ip ping nft sysctl modprobe
require_python

test_cleanup()
{
	rl_cleanup
}

ktap_header
ktap_plan 37

kmsg_mark
rl_init || ktap_bail_out "cannot create a temporary directory"
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"

setup()
{
	ns_create C R S || return 1
	rl_anchor "$C" "$R" "$S" || return 1
	ns_prepare "$C" "$R" "$S" || return 1
	veth_pair "$C" vc 10.0.1.1/24 "$R" vr_c 10.0.1.254/24 || return 1
	veth_pair "$R" vr_s 10.0.2.254/24 "$S" vs 10.0.2.1/24 || return 1
	ip -n "$R" link set vr_s mtu 1280 || return 1
	ip -n "$C" route add default via 10.0.1.254 || return 1
	ip -n "$S" route add default via 10.0.2.254 || return 1
	for net in 10.0.3.0/24 10.0.4.0/24 10.0.5.0/24; do
		ip -n "$R" route add "$net" via 10.0.2.1 || return 1
	done
	ns_forwarding "$R" || return 1
	ns_exec "$R" nft -f - <<-EOF || return 1
		table ip icmpct_router {
			chain fw_reject {
				type filter hook forward priority 0; policy accept;
				ip daddr 10.0.3.0/24 reject with icmp type net-unreachable
				ip daddr 10.0.4.0/24 reject with icmp type admin-prohibited
				ip daddr 10.0.5.0/24 drop
			}
		}
	EOF
	# Neighbours resolved before measuring (ARP is not IPv4, but keep it out of the way).
	ping_ok "$C" 10.0.2.1 1 >/dev/null
}
setup || ktap_bail_out "cannot set up the namespaces"
# scapy (section 6) starts in R now, while the other sections run.
craft_start "$R"

##############################################################################
# 1. TCP SYN into an unreachable network.

rl_section "1 tcp net-unreachable"

s0=$(snap "$C")
r0=$(snap "$R")
out=$(py "$C" RL_PY_TCP_CONNECT 10.0.3.1 80 15 40080 2>&1)
ktap_expect_eq "1 tcp: connect to 10.0.3.1:80 fails with the router's net-unreachable" \
	"error ENETUNREACH" "$out"
expect_deltas "1 tcp: at C the SYN is NEW, the net-unreachable RELATED and the entry destroyed" \
	"$C" "$s0" "new=1 insert=1 related=1 invalid=0 destroyed_on_error=1"
expect_no_line "1 tcp: no entry 10.0.1.1:40080 -> 10.0.3.1:80 left at C" "$C" \
	"src=10\.0\.1\.1 dst=10\.0\.3\.1 sport=40080 dport=80 "
# R's own stack wrote the reject (icmp_send) about a packet that has no entry at R.
expect_deltas "1 tcp: at R its own net-unreachable, about a SYN it never confirmed, is RELATED" \
	"$R" "$r0" "related=1 invalid=0"

##############################################################################
# 2. UDP into an administratively prohibited network.

rl_section "2 udp admin-prohibited"

s0=$(snap "$C")
out=$(py "$C" RL_PY_UDP_CLIENT --sport 40100 --wait 15 10.0.4.1 9999 2>&1)
ktap_expect_eq "2 udp: the datagram to 10.0.4.1:9999 gets admin-prohibited (EHOSTUNREACH)" \
	"error EHOSTUNREACH" "$out"
expect_deltas "2 udp: at C the datagram is NEW, the admin-prohibited RELATED and the entry destroyed" \
	"$C" "$s0" "new=1 insert=1 related=1 invalid=0 destroyed_on_error=1"
expect_no_line "2 udp: no entry 10.0.1.1:40100 -> 10.0.4.1:9999 left at C" "$C" \
	"src=10\.0\.1\.1 dst=10\.0\.4\.1 sport=40100 dport=9999 "

##############################################################################
# 3. DNS-like exchange: [UNREPLIED] with the 30 s timeout, then [ASSURED] with 180 s.

rl_section "3 dns"

dns_unreplied="udp      17 @T@ src=10.0.1.1 dst=10.0.2.1 sport=1025 dport=53 [UNREPLIED] src=10.0.2.1 dst=10.0.1.1 sport=53 dport=1025 use=1"
dns_assured="udp      17 @T@ src=10.0.1.1 dst=10.0.2.1 sport=1025 dport=53 src=10.0.2.1 dst=10.0.1.1 sport=53 dport=1025 [ASSURED] use=1"
bg_py "$S" "$RL_TMP/dns_server.out" RL_PY_UDP_SERVER 10.0.2.1 53 \
	"$RL_TMP/dns.ready" "$RL_TMP/dns.log" "$RL_TMP/dns.go"
wait_file "$RL_TMP/dns.ready" 30 || ktap_msg "the DNS server did not start: $(cat "$RL_TMP/dns_server.out")"
s0=$(snap "$C")
bg_py "$C" "$RL_TMP/dns_client.out" RL_PY_UDP_CLIENT --bind 10.0.1.1 --sport 1025 \
	--wait 60 10.0.2.1 53
dns_client=$BG_PID
# The server holds its answer until dns.go exists: the query is in flight, unanswered.
wait_file "$RL_TMP/dns.log" 30 . || ktap_msg "the query did not reach the server"
expect_line "3 dns: C lists the query [UNREPLIED] with a timeout <= 30" "$C" "$dns_unreplied" 10 30
expect_line "3 dns: R lists the forwarded query [UNREPLIED] with a timeout <= 30" "$R" \
	"$dns_unreplied" 10 30
touch "$RL_TMP/dns.go"
wait_file "$RL_TMP/dns_client.out" 30 .
ktap_expect_eq "3 dns: C gets the answer" "reply 32" "$(cat "$RL_TMP/dns_client.out")"
wait "$dns_client" 2>/dev/null
expect_line "3 dns: C lists the flow [ASSURED] with a timeout in (30, 180]" "$C" "$dns_assured" 140 180
expect_line "3 dns: R lists the forwarded flow [ASSURED] with a timeout in (30, 180]" "$R" \
	"$dns_assured" 140 180
expect_deltas "3 dns: at C the query is NEW and the answer ESTABLISHED" "$C" "$s0" \
	"new=1 insert=1 established=1 invalid=0 related=0"

##############################################################################
# 4. TTL expiry at the router.

rl_section "4 ttl"

s0=$(snap "$C")
r0=$(snap "$R")
out=$(ns_exec "$C" ping -n -c 1 -t 1 -W 5 10.0.2.1 2>&1)
if grep -q "Time to live exceeded" <<<"$out"; then
	ktap_test_pass "4 ttl: ping -t 1 gets the router's time-exceeded"
else
	ktap_msg "$out"
	ktap_test_fail "4 ttl: ping -t 1 gets the router's time-exceeded"
fi
expect_deltas "4 ttl: at C the echo request is NEW, the time-exceeded RELATED, the entry destroyed" \
	"$C" "$s0" "new=1 insert=1 related=1 invalid=0 destroyed_on_error=1"
expect_no_line "4 ttl: no echo request entry to 10.0.2.1 left at C" "$C" \
	"^icmp .* src=10\.0\.1\.1 dst=10\.0\.2\.1 type=8 "
ktap_msg "R's counters that moved: $(nonzero_deltas "$r0" "$(snap "$R")")"

s0=$(snap "$C")
out=$(py "$C" RL_PY_UDP_CLIENT --ttl 1 --sport 40200 --wait 15 10.0.2.1 7 2>&1)
ktap_expect_eq "4 ttl: a UDP datagram with TTL 1 gets time-exceeded (EHOSTUNREACH)" \
	"error EHOSTUNREACH" "$out"
expect_deltas "4 ttl: at C the datagram is NEW, the time-exceeded RELATED, the entry destroyed" \
	"$C" "$s0" "new=1 insert=1 related=1 invalid=0 destroyed_on_error=1"
expect_no_line "4 ttl: no entry 10.0.1.1:40200 -> 10.0.2.1:7 left at C" "$C" \
	"src=10\.0\.1\.1 dst=10\.0\.2\.1 sport=40200 dport=7 "

##############################################################################
# 5. Path MTU: R's link to S carries 1280 bytes; C and S think 1500.

rl_section "5 pmtu"

bg_py "$S" "$RL_TMP/tcp_server.out" RL_PY_TCP_SERVER 10.0.2.1 8080 \
	"$RL_TMP/tcp.ready" 20000
wait_file "$RL_TMP/tcp.ready" 30 || ktap_msg "the TCP server did not start: $(cat "$RL_TMP/tcp_server.out")"
s0=$(snap "$C")
r0=$(snap "$R")
bg_py "$C" "$RL_TMP/tcp_client.out" RL_PY_TCP_CLIENT 10.0.2.1 8080 40300 20000 \
	"$RL_TMP/tcp.stop"
tcp_client=$BG_PID
wait_file "$RL_TMP/tcp_client.out" 60 .
ktap_expect_eq "5 pmtu tcp: 20000 bytes reach S through the 1280-byte link" "got 20000" \
	"$(head -n 1 "$RL_TMP/tcp_client.out")"
expect_deltas "5 pmtu tcp: at C fragmentation-needed is RELATED and destroys nothing" "$C" "$s0" \
	"related>=1 invalid=0 destroyed_on_error=0"
expect_line "5 pmtu tcp: C still lists the flow ESTABLISHED [ASSURED]" "$C" \
	"tcp      6 @T@ ESTABLISHED src=10.0.1.1 dst=10.0.2.1 sport=40300 dport=8080 src=10.0.2.1 dst=10.0.1.1 sport=8080 dport=40300 [ASSURED] use=1" \
	431000 432000
expect_deltas "5 pmtu tcp: at R its own fragmentation-needed is RELATED to the forwarded flow" \
	"$R" "$r0" "related>=1 destroyed_on_error=0"
touch "$RL_TMP/tcp.stop"
wait_file "$RL_TMP/tcp_client.out" 30 '^closed' || ktap_msg "the TCP client did not close cleanly"
bg_stop "$tcp_client"

# An [UNREPLIED] UDP flow with DF towards 10.0.2.2 (behind the small link; nobody answers).
s0=$(snap "$C")
out=$(py "$C" RL_PY_UDP_CLIENT --df --size 1400 --sport 40400 --wait 15 10.0.2.2 9 2>&1)
ktap_expect_eq "5 pmtu udp: 1400 bytes with DF get fragmentation-needed (EMSGSIZE)" \
	"error EMSGSIZE" "$out"
expect_deltas "5 pmtu udp: at C the datagram is NEW, fragmentation-needed RELATED, nothing destroyed" \
	"$C" "$s0" "new=1 insert=1 related=1 invalid=0 destroyed_on_error=0"
expect_line "5 pmtu udp: C still lists the [UNREPLIED] flow" "$C" \
	"udp      17 @T@ src=10.0.1.1 dst=10.0.2.2 sport=40400 dport=9 [UNREPLIED] src=10.0.2.2 dst=10.0.1.1 sport=9 dport=40400 use=1" \
	5 30

##############################################################################
# 6. Hand-made errors delivered to C (sent from R with scapy).

rl_section "6 spoofed errors"

victim="udp      17 @T@ src=10.0.1.1 dst=10.0.5.1 sport=2000 dport=7 [UNREPLIED] src=10.0.5.1 dst=10.0.1.1 sport=7 dport=2000 use=1"
spoof_tests=(
	"6 spoof: C lists the victim flow 10.0.1.1:2000 -> 10.0.5.1:7 [UNREPLIED]"
	"6 spoof: an error to C about the victim's reply direction (sent by 10.0.5.1) is INVALID"
	"6 spoof: an error to C about a flow that does not exist is INVALID"
	"6 spoof: at R, the process that wrote it on a raw socket gets no exemption: INVALID"
	"6 spoof: an error embedding an ICMP error is INVALID"
	"6 spoof: the victim flow survived the three"
	"6 replied: a genuine port-unreachable about the replied DNS flow is RELATED, destroys nothing"
	"6 replied: the DNS flow is still listed [ASSURED]"
	"6 spoof: control: a genuine error about the victim is RELATED and destroys it"
	"6 spoof: control: the victim flow is gone"
)
spoof_skip=""
if ! craft_ready 240; then
	spoof_skip=$CRAFT_OUT
fi
if [ -n "$spoof_skip" ]; then
	for t in "${spoof_tests[@]}"; do
		ktap_test_skip "$t" "$spoof_skip"
	done
else
	# The victim must outlive the step even in a slow guest: 600 s instead of 30.
	sysctl_set "$C" ip_ct_udp_timeout 600 || ktap_msg "ip_ct_udp_timeout: $SYSCTL_ERR"
	py "$C" RL_PY_UDP_CLIENT --sport 2000 10.0.5.1 7 >/dev/null
	expect_line "${spoof_tests[0]}" "$C" "$victim" 500 600

	# The embedded packet matches the victim's reply tuple, so only the anti-spoofing check
	# (outer destination = sender of the embedded packet) makes this INVALID.
	s0=$(snap "$C")
	craft_send error --src 10.0.1.254 --dst 10.0.1.1 --type 3 --code 1 --inner-src 10.0.5.1 \
		--inner-dst 10.0.1.1 --inner-proto udp --sport 7 --dport 2000 || ktap_msg "$CRAFT_OUT"
	expect_deltas "${spoof_tests[1]}" "$C" "$s0" "invalid=1 related=0 destroyed_on_error=0"

	s0=$(snap "$C")
	r0=$(snap "$R")
	craft_send error --src 10.0.1.254 --dst 10.0.1.1 --type 3 --code 1 --inner-src 10.0.1.1 \
		--inner-dst 10.0.5.1 --inner-proto udp --sport 2001 --dport 7 || ktap_msg "$CRAFT_OUT"
	expect_deltas "${spoof_tests[2]}" "$C" "$s0" "invalid=1 related=0 destroyed_on_error=0"
	# A process wrote it on R's raw socket: no exemption from the lookup at R either.
	expect_deltas "${spoof_tests[3]}" "$R" "$r0" "invalid=1 related=0"

	s0=$(snap "$C")
	craft_send error --src 10.0.1.254 --dst 10.0.1.1 --type 3 --code 1 --inner-src 10.0.1.1 \
		--inner-dst 10.0.5.1 --inner-proto icmp --inner-type 3 --inner-code 3 \
		--sport 2000 --dport 7 || ktap_msg "$CRAFT_OUT"
	expect_deltas "${spoof_tests[4]}" "$C" "$s0" "invalid=1 related=0 destroyed_on_error=0"

	expect_line "${spoof_tests[5]}" "$C" "$victim" 400 600

	# An entry that has seen a reply is never destroyed by an error.  One more exchange first,
	# so that the DNS flow of section 3 is surely alive (180 s) in a slow guest.
	py "$C" RL_PY_UDP_CLIENT --bind 10.0.1.1 --sport 1025 --wait 20 10.0.2.1 53 >/dev/null
	s0=$(snap "$C")
	craft_send error --src 10.0.2.1 --dst 10.0.1.1 --type 3 --code 3 --inner-src 10.0.1.1 \
		--inner-dst 10.0.2.1 --inner-proto udp --sport 1025 --dport 53 || ktap_msg "$CRAFT_OUT"
	expect_deltas "${spoof_tests[6]}" "$C" "$s0" "related=1 invalid=0 destroyed_on_error=0"
	expect_line "${spoof_tests[7]}" "$C" "$dns_assured" 100 180

	s0=$(snap "$C")
	craft_send error --src 10.0.1.254 --dst 10.0.1.1 --type 3 --code 1 --inner-src 10.0.1.1 \
		--inner-dst 10.0.5.1 --inner-proto udp --sport 2000 --dport 7 || ktap_msg "$CRAFT_OUT"
	expect_deltas "${spoof_tests[8]}" "$C" "$s0" "related=1 invalid=0 destroyed_on_error=1"
	expect_no_line "${spoof_tests[9]}" "$C" "src=10\.0\.1\.1 dst=10\.0\.5\.1 sport=2000 dport=7 "
	sysctl_set "$C" ip_ct_udp_timeout 30
	craft_stop
fi

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
