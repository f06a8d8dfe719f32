#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# icmp_ct on a masquerading router (contract.rst, "Where the hooks sit"): classification at
# priority -99 runs after destination NAT (-100) and confirmation at 99 before source NAT
# (100), so the router R tracks the inside addresses in both directions, and an ICMP error
# from beyond R, whose embedded header nf_nat has translated back, is RELATED.
#
#   C 10.0.1.1 vc -- vr_c 10.0.1.254 R 10.0.2.254 vr_m -- vm_r 10.0.2.1 M 10.0.3.254 vm_s -- vs 10.0.3.1 S
#                                      masquerade out of vr_m           MTU 1280 on vm_s;
#                                                                        forward: UDP port 7
#                                                                        rejected admin-prohibited
#
#  - ping C -> S: at R the requests are NEW and the (de-NATed) replies ESTABLISHED; with
#    ip_ct_icmp_keep_replied=1 R lists 10.0.1.1 <-> 10.0.3.1 in both directions;
#  - UDP C:1025 -> S:53: S sees 10.0.2.254, R lists the flow [ASSURED] with inside addresses;
#  - a TCP flow and a UDP datagram with DF run into M's 1280-byte link: M's
#    fragmentation-needed (sent to 10.0.2.254) is RELATED at R and destroys nothing;
#  - M's admin-prohibited about a UDP datagram is RELATED at R and destroys R's entry.

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

mod_probe nf_conntrack nf_nat nft_masq ||
	ktap_skip_all "cannot load nf_conntrack, nf_nat, nft_masq: $MODPROBE_ERR"

ktap_header
ktap_plan 17

kmsg_mark
rl_init || ktap_bail_out "cannot create a temporary directory"
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"

setup()
{
	ns_create C R M S || return 1
	rl_anchor "$C" "$R" "$M" "$S" || return 1
	ns_prepare "$C" "$R" "$M" "$S" || return 1
	veth_pair "$C" vc 10.0.1.1/24 "$R" vr_c 10.0.1.254/24 || return 1
	veth_pair "$R" vr_m 10.0.2.254/24 "$M" vm_r 10.0.2.1/24 || return 1
	veth_pair "$M" vm_s 10.0.3.254/24 "$S" vs 10.0.3.1/24 || return 1
	ip -n "$M" link set vm_s mtu 1280 || return 1
	ip -n "$C" route add default via 10.0.1.254 || return 1
	ip -n "$R" route add default via 10.0.2.1 || return 1
	ip -n "$S" route add default via 10.0.3.254 || return 1
	ns_forwarding "$R" || return 1
	ns_forwarding "$M" || return 1
	SETUP_ERR=$(ns_exec "$R" nft -f - 2>&1 <<-EOF
		table ip icmpct_nat {
			chain nat_post {
				type nat hook postrouting priority srcnat; policy accept;
				oifname "vr_m" masquerade
			}
		}
	EOF
	) || return 1
	SETUP_ERR=$(ns_exec "$M" nft -f - 2>&1 <<-EOF
		table ip icmpct_mid {
			chain fw_reject {
				type filter hook forward priority filter; policy accept;
				udp dport 7 reject with icmp type admin-prohibited
			}
		}
	EOF
	) || return 1
	# Resolve the neighbours before measuring.
	ping_ok "$C" 10.0.3.1 1 >/dev/null
}
setup || ktap_bail_out "cannot set up the namespaces: $SETUP_ERR"

##############################################################################
# ICMP queries through the NAT.

rl_section "icmp"

r0=$(snap "$R")
out=$(ns_exec "$C" ping -n -c 3 -i 1 -W 5 10.0.3.1 2>&1)
if grep -q "3 packets transmitted, 3 received" <<<"$out"; then
	ktap_test_pass "nat: ping -c 3 from C to S through the masquerading router"
else
	ktap_msg "$out"
	ktap_test_fail "nat: ping -c 3 from C to S through the masquerading router"
fi
expect_deltas "nat: at R the requests are NEW and the de-NATed replies ESTABLISHED" "$R" "$r0" \
	"new=3 established=3 invalid=0 destroyed_on_reply>=1"

sysctl_set "$R" ip_ct_icmp_keep_replied 1 || ktap_msg "ip_ct_icmp_keep_replied: $SYSCTL_ERR"
ns_exec "$C" ping -n -c 1 -W 5 10.0.3.1 >/dev/null 2>&1
expect_line "nat: R lists the answered ping with the inside addresses in both directions" "$R" \
	"icmp     1 @T@ src=10.0.1.1 dst=10.0.3.1 type=8 code=0 id=@N@ src=10.0.3.1 dst=10.0.1.1 type=0 code=0 id=@N@ rtt=@N@ use=1" \
	5 30
sysctl_set "$R" ip_ct_icmp_keep_replied 0

##############################################################################
# A UDP flow through the NAT.

rl_section "udp"

bg_py "$S" "$RL_TMP/udp_server.out" RL_PY_UDP_SERVER 10.0.3.1 53 \
	"$RL_TMP/udp.ready" "$RL_TMP/udp.log"
wait_file "$RL_TMP/udp.ready" 30 || ktap_msg "the UDP server did not start: $(cat "$RL_TMP/udp_server.out")"
r0=$(snap "$R")
out=$(py "$C" RL_PY_UDP_CLIENT --bind 10.0.1.1 --sport 1025 --wait 20 10.0.3.1 53 2>&1)
ktap_expect_eq "nat: C gets S's answer" "reply 32" "$out"
ktap_expect_eq "nat: S saw the query from R's outside address (masquerading)" "10.0.2.254" \
	"$(awk 'NR == 1 { print $1 }' "$RL_TMP/udp.log" 2>/dev/null)"
expect_deltas "nat: at R the query is NEW and the de-NATed answer ESTABLISHED" "$R" "$r0" \
	"new=1 insert=1 established=1 invalid=0"
expect_line "nat: R lists the flow [ASSURED] with the inside addresses in both directions" "$R" \
	"udp      17 @T@ src=10.0.1.1 dst=10.0.3.1 sport=1025 dport=53 src=10.0.3.1 dst=10.0.1.1 sport=53 dport=1025 [ASSURED] use=1" \
	140 180
if ns_exec "$R" test -r /proc/net/nf_conntrack; then
	ktap_msg "R's nf_conntrack entry:" "$(ns_exec "$R" grep "sport=1025 dport=53" /proc/net/nf_conntrack)"
fi

##############################################################################
# Path MTU beyond the NAT: M's fragmentation-needed goes to 10.0.2.254.

rl_section "pmtu"

bg_py "$S" "$RL_TMP/tcp_server.out" RL_PY_TCP_SERVER 10.0.3.1 8080 \
	"$RL_TMP/tcp.ready" 20000
wait_file "$RL_TMP/tcp.ready" 30 || ktap_msg "the TCP server did not start: $(cat "$RL_TMP/tcp_server.out")"
r0=$(snap "$R")
bg_py "$C" "$RL_TMP/tcp_client.out" RL_PY_TCP_CLIENT 10.0.3.1 8080 41100 20000 \
	"$RL_TMP/tcp.stop"
tcp_client=$BG_PID
wait_file "$RL_TMP/tcp_client.out" 60 .
ktap_expect_eq "nat: pmtu tcp: 20000 bytes reach S through M's 1280-byte link" "got 20000" \
	"$(head -n 1 "$RL_TMP/tcp_client.out")"
expect_deltas "nat: pmtu tcp: at R M's fragmentation-needed is RELATED and destroys nothing" \
	"$R" "$r0" "related>=1 invalid=0 destroyed_on_error=0"
touch "$RL_TMP/tcp.stop"
wait_file "$RL_TMP/tcp_client.out" 30 '^closed'
bg_stop "$tcp_client"

# An [UNREPLIED] UDP flow with DF to 10.0.3.2 (behind the small link, nobody there).
r0=$(snap "$R")
c0=$(snap "$C")
out=$(py "$C" RL_PY_UDP_CLIENT --df --size 1400 --sport 40900 --wait 15 10.0.3.2 9 2>&1)
ktap_expect_eq "nat: pmtu udp: 1400 bytes with DF get M's fragmentation-needed (EMSGSIZE)" \
	"error EMSGSIZE" "$out"
expect_deltas "nat: pmtu udp: at R the datagram is NEW, fragmentation-needed RELATED, nothing destroyed" \
	"$R" "$r0" "new=1 insert=1 related=1 invalid=0 destroyed_on_error=0"
expect_line "nat: pmtu udp: R still lists the [UNREPLIED] flow with inside addresses" "$R" \
	"udp      17 @T@ src=10.0.1.1 dst=10.0.3.2 sport=40900 dport=9 [UNREPLIED] src=10.0.3.2 dst=10.0.1.1 sport=9 dport=40900 use=1" \
	5 30
expect_deltas "nat: pmtu udp: at C the forwarded fragmentation-needed is RELATED too" "$C" "$c0" \
	"new=1 related=1 invalid=0 destroyed_on_error=0"

##############################################################################
# An error beyond the NAT that ends the flow.

rl_section "admin-prohibited"

r0=$(snap "$R")
out=$(py "$C" RL_PY_UDP_CLIENT --sport 41000 --wait 15 10.0.3.1 7 2>&1)
ktap_expect_eq "nat: UDP to port 7 gets M's admin-prohibited (EHOSTUNREACH)" \
	"error EHOSTUNREACH" "$out"
expect_deltas "nat: at R the admin-prohibited is RELATED and destroys the [UNREPLIED] entry" \
	"$R" "$r0" "new=1 insert=1 related=1 invalid=0 destroyed_on_error=1"
expect_no_line "nat: R has no entry 10.0.1.1:41000 -> 10.0.3.1:7 left" "$R" \
	"src=10\.0\.1\.1 dst=10\.0\.3\.1 sport=41000 dport=7 "

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
