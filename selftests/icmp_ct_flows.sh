#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The flows ICMP errors relate to (contract.rst, "UDP, TCP and everything else"), their
# /proc/net/ip_conntrack lines and timeouts, and NOTRACK:
#
#   A 10.0.1.1 va ---- vb 10.0.1.2 B          10.0.1.99: static neighbour of A with a MAC
#                                              nobody has (B drops those frames unseen)
#
#  - UDP A:1025 -> B:53: NEW [UNREPLIED] 30 s, reply ESTABLISHED [ASSURED] 180 s, each
#    packet resets the timeout;
#  - TCP: SYN without answer SYN_SENT 120 s; a connection ESTABLISHED [ASSURED] 432000 s,
#    TIME_WAIT 120 s after the FINs of both sides (icmp_ct_tcp.sh has the rest); a lone ACK picked up as NEW with ip_ct_tcp_loose=1 and
#    INVALID with 0; a RST without entry INVALID;
#  - protocol 253 (no tracker of its own): "unknown  253" entry, 600 s, ESTABLISHED on reply;
#  - NOTRACK in the raw table (nf_conntrack's nft "notrack", output and prerouting, the
#    latter delivered to a socket): UNTRACKED, no entry, nothing NEW.

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
ktap_plan 26

kmsg_mark
rl_init || ktap_bail_out "cannot create a temporary directory"
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"

setup()
{
	ns_create A B || return 1
	rl_anchor "$A" "$B" || return 1
	ns_prepare "$A" "$B" || return 1
	veth_pair "$A" va 10.0.1.1/24 "$B" vb 10.0.1.2/24 || return 1
	ip -n "$A" neigh replace 10.0.1.99 lladdr 02:00:00:00:00:63 dev va nud permanent || return 1
	ping_ok "$A" 10.0.1.2 1 >/dev/null
}
setup || ktap_bail_out "cannot set up the namespaces"
# scapy (hand-made TCP segments) starts in A now, while the UDP part runs.
craft_start "$A"

##############################################################################
# UDP

rl_section "udp"

udp_unreplied="udp      17 @T@ src=10.0.1.1 dst=10.0.1.2 sport=1025 dport=53 [UNREPLIED] src=10.0.1.2 dst=10.0.1.1 sport=53 dport=1025 use=1"
udp_assured="udp      17 @T@ src=10.0.1.1 dst=10.0.1.2 sport=1025 dport=53 src=10.0.1.2 dst=10.0.1.1 sport=53 dport=1025 [ASSURED] use=1"
bg_py "$B" "$RL_TMP/udp_server.out" RL_PY_UDP_SERVER 10.0.1.2 53 \
	"$RL_TMP/udp.ready" "$RL_TMP/udp.log" "$RL_TMP/udp.go"
wait_file "$RL_TMP/udp.ready" 30 || ktap_msg "the UDP server did not start: $(cat "$RL_TMP/udp_server.out")"
s0=$(snap "$A")
bg_py "$A" "$RL_TMP/udp_client.out" RL_PY_UDP_CLIENT --bind 10.0.1.1 --sport 1025 \
	--wait 60 10.0.1.2 53
udp_client=$BG_PID
wait_file "$RL_TMP/udp.log" 30 . || ktap_msg "the datagram did not reach B"
expect_deltas "udp: the first datagram is NEW and inserted" "$A" "$s0" \
	"new=1 insert=1 established=0 invalid=0"
expect_line "udp: A lists it [UNREPLIED] with ip_ct_udp_timeout (30)" "$A" "$udp_unreplied" 10 30
touch "$RL_TMP/udp.go"
wait_file "$RL_TMP/udp_client.out" 30 .
ktap_expect_eq "udp: A gets B's answer" "reply 32" "$(cat "$RL_TMP/udp_client.out")"
wait "$udp_client" 2>/dev/null
expect_deltas "udp: the answer is ESTABLISHED" "$A" "$s0" "new=1 insert=1 established=1 invalid=0"
expect_line "udp: A lists it [ASSURED] with ip_ct_udp_timeout_stream (180)" "$A" "$udp_assured" 140 180
expect_line "udp: B lists the same flow [ASSURED]" "$B" "$udp_assured" 140 180

udp_refresh()
{
	local t1 t2

	sleep 3
	t1=$(ct_find "$A" "$udp_assured" | awk '{ print $3 }')
	py "$A" RL_PY_UDP_CLIENT --bind 10.0.1.1 --sport 1025 --wait 20 10.0.1.2 53 >/dev/null
	t2=$(ct_find "$A" "$udp_assured" | awk '{ print $3 }')
	ktap_msg "udp timeout before the packet: ${t1:-none}, after: ${t2:-none}"
	[ -n "$t1" ] && [ -n "$t2" ] && [ "$t1" -le 177 ] && [ "$t2" -gt "$t1" ] && [ "$t2" -ge 170 ]
}
ktap_check "udp: another exchange resets the timeout to 180" udp_refresh

##############################################################################
# TCP

rl_section "tcp"

# A SYN into the void: SYN_SENT, 120 s (retransmissions keep it there).
bg_py "$A" "$RL_TMP/syn.out" RL_PY_TCP_CONNECT 10.0.1.99 80 60 40500
syn_client=$BG_PID
syn_tmpl="tcp      6 @T@ SYN_SENT src=10.0.1.1 dst=10.0.1.99 sport=40500 dport=80 [UNREPLIED] src=10.0.1.99 dst=10.0.1.1 sport=80 dport=40500 use=1"
end=$((SECONDS + 15))
until [ -n "$(ct_find "$A" "$syn_tmpl")" ] || [ "$SECONDS" -ge "$end" ]; do
	sleep 0.2
done
expect_line "tcp: an unanswered SYN is SYN_SENT [UNREPLIED] with ip_ct_tcp_timeout_syn_sent (120)" \
	"$A" "$syn_tmpl" 90 120
bg_stop "$syn_client"

# A whole connection A:40600 -> B:8080.
bg_py "$B" "$RL_TMP/tcp_server.out" RL_PY_TCP_SERVER 10.0.1.2 8080 \
	"$RL_TMP/tcp.ready" 100
wait_file "$RL_TMP/tcp.ready" 30 || ktap_msg "the TCP server did not start: $(cat "$RL_TMP/tcp_server.out")"
bg_py "$A" "$RL_TMP/tcp_client.out" RL_PY_TCP_CLIENT 10.0.1.2 8080 40600 100 \
	"$RL_TMP/tcp.stop"
tcp_client=$BG_PID
wait_file "$RL_TMP/tcp_client.out" 60 . || ktap_msg "the TCP client got no answer"
tcp_est="tcp      6 @T@ ESTABLISHED src=10.0.1.1 dst=10.0.1.2 sport=40600 dport=8080 src=10.0.1.2 dst=10.0.1.1 sport=8080 dport=40600 [ASSURED] use=1"
expect_line "tcp: A lists the connection ESTABLISHED [ASSURED] with 432000 s" "$A" "$tcp_est" \
	431000 432000
expect_line "tcp: B lists the connection ESTABLISHED [ASSURED] with 432000 s" "$B" "$tcp_est" \
	431000 432000
touch "$RL_TMP/tcp.stop"
wait_file "$RL_TMP/tcp_client.out" 30 '^closed' || ktap_msg "the TCP client did not close cleanly"
expect_line "tcp: after the FINs of both A lists it TIME_WAIT with ip_ct_tcp_timeout_time_wait (120)" "$A" \
	"tcp      6 @T@ TIME_WAIT src=10.0.1.1 dst=10.0.1.2 sport=40600 dport=8080 src=10.0.1.2 dst=10.0.1.1 sport=8080 dport=40600 [ASSURED] use=1" \
	100 120
bg_stop "$tcp_client"

# Segments without a SYN, to nobody (hand-made, sent through A's own stack).
tcp_tests=(
	"tcp: a lone ACK without entry is NEW with ip_ct_tcp_loose=1"
	"tcp: the picked-up flow is listed [UNREPLIED]"
	"tcp: a lone ACK without entry is INVALID with ip_ct_tcp_loose=0"
	"tcp: no entry for that ACK"
	"tcp: a RST without entry is INVALID (ip_ct_tcp_loose=1)"
	"tcp: no entry for that RST"
)
tcp_skip=""
if ! craft_ready 240; then
	tcp_skip=$CRAFT_OUT
fi
if [ -n "$tcp_skip" ]; then
	for t in "${tcp_tests[@]}"; do
		ktap_test_skip "$t" "$tcp_skip"
	done
else
	loose=$(sysctl_get "$A" ip_ct_tcp_loose)
	[ "$loose" = 1 ] || ktap_msg "ip_ct_tcp_loose is '$loose' in a new namespace, expected 1"
	sysctl_set "$A" ip_ct_tcp_loose 1
	s0=$(snap "$A")
	craft_send tcp --src 10.0.1.1 --dst 10.0.1.99 --sport 40701 --dport 81 --flags A ||
		ktap_msg "$CRAFT_OUT"
	expect_deltas "${tcp_tests[0]}" "$A" "$s0" "new=1 insert=1 invalid=0"
	loose_line=$(ct_find "$A" "tcp      6 @T@ @S@ src=10.0.1.1 dst=10.0.1.99 sport=40701 dport=81 [UNREPLIED] src=10.0.1.99 dst=10.0.1.1 sport=81 dport=40701 use=1")
	if [ -n "$loose_line" ]; then
		ktap_msg "$loose_line"
		ktap_test_pass "${tcp_tests[1]}"
	else
		ktap_msg "listing of A:" "$(ct_list "$A")"
		ktap_test_fail "${tcp_tests[1]}"
	fi

	sysctl_set "$A" ip_ct_tcp_loose 0 || ktap_msg "ip_ct_tcp_loose=0: $SYSCTL_ERR"
	s0=$(snap "$A")
	craft_send tcp --src 10.0.1.1 --dst 10.0.1.99 --sport 40702 --dport 82 --flags A ||
		ktap_msg "$CRAFT_OUT"
	expect_deltas "${tcp_tests[2]}" "$A" "$s0" "invalid=1 new=0 insert=0"
	expect_no_line "${tcp_tests[3]}" "$A" "sport=40702 dport=82 "
	sysctl_set "$A" ip_ct_tcp_loose 1

	s0=$(snap "$A")
	craft_send tcp --src 10.0.1.1 --dst 10.0.1.99 --sport 40703 --dport 83 --flags R ||
		ktap_msg "$CRAFT_OUT"
	expect_deltas "${tcp_tests[4]}" "$A" "$s0" "invalid=1 new=0 insert=0"
	expect_no_line "${tcp_tests[5]}" "$A" "sport=40703 dport=83 "
	craft_stop
fi

##############################################################################
# Any other protocol: 253 (RFC 3692 experimentation).

rl_section "generic"

s0=$(snap "$A")
py "$A" RL_PY_RAW_SEND 253 10.0.1.99 >/dev/null
expect_deltas "generic: a protocol 253 datagram is NEW and inserted" "$A" "$s0" \
	"new=1 insert=1 invalid=0"
expect_line "generic: A lists it 'unknown  253' [UNREPLIED] with ip_ct_generic_timeout (600)" "$A" \
	"unknown  253 @T@ src=10.0.1.1 dst=10.0.1.99 [UNREPLIED] src=10.0.1.99 dst=10.0.1.1 use=1" \
	540 600

bg_py "$B" "$RL_TMP/raw_echo.out" RL_PY_RAW_ECHO 253 "$RL_TMP/raw.ready" "$RL_TMP/raw.log"
wait_file "$RL_TMP/raw.ready" 30 || ktap_msg "the raw echo did not start: $(cat "$RL_TMP/raw_echo.out")"
s0=$(snap "$A")
out=$(py "$A" RL_PY_RAW_SEND 253 10.0.1.2 1 15 2>&1)
[[ $out == reply* ]] || ktap_msg "protocol 253 exchange with B: $out"
expect_deltas "generic: B's answer is ESTABLISHED" "$A" "$s0" \
	"new=1 insert=1 established=1 invalid=0 related=0"
expect_line "generic: A lists the answered flow without [UNREPLIED], 600 s" "$A" \
	"unknown  253 @T@ src=10.0.1.1 dst=10.0.1.2 src=10.0.1.2 dst=10.0.1.1@A@ use=1" 540 600

##############################################################################
# NOTRACK

rl_section "notrack"

notrack_tests=(
	"notrack: a datagram marked notrack in A's raw output chain is UNTRACKED, not NEW"
	"notrack: A has no entry for it"
	"notrack: a datagram marked notrack in B's raw prerouting chain is UNTRACKED, not NEW"
	"notrack: B has no entry for it"
)
notrack_setup()
{
	mod_probe nf_conntrack nft_ct || { NOTRACK_ERR="modprobe nf_conntrack nft_ct: $MODPROBE_ERR"; return 1; }
	NOTRACK_ERR=$(ns_exec "$A" nft -f - 2>&1 <<-EOF
		table ip icmpct_raw {
			chain raw_out {
				type filter hook output priority raw; policy accept;
				ip daddr 10.0.1.99 udp dport 5000 notrack
			}
		}
	EOF
	) || return 1
	NOTRACK_ERR=$(ns_exec "$B" nft -f - 2>&1 <<-EOF
		table ip icmpct_raw {
			chain raw_pre {
				type filter hook prerouting priority raw; policy accept;
				udp dport 5001 notrack
			}
		}
	EOF
	)
}
if ! notrack_setup; then
	for t in "${notrack_tests[@]}"; do
		ktap_test_skip "$t" "cannot set up the raw table: $NOTRACK_ERR"
	done
else
	s0=$(snap "$A")
	py "$A" RL_PY_UDP_CLIENT --sport 40800 10.0.1.99 5000 >/dev/null
	expect_deltas "${notrack_tests[0]}" "$A" "$s0" "untracked=1 new=0 insert=0 invalid=0"
	expect_no_line "${notrack_tests[1]}" "$A" "dport=5000 "

	# B takes the datagram in (a socket that never answers), so it passes B's LOCAL_IN
	# hook, where an entry would be inserted if NOTRACK were ignored.
	bg_py "$B" "$RL_TMP/sink.out" RL_PY_UDP_SERVER 10.0.1.2 5001 "$RL_TMP/sink.ready" \
		"$RL_TMP/sink.log" "$RL_TMP/sink.never"
	wait_file "$RL_TMP/sink.ready" 30 || ktap_msg "the UDP sink did not start: $(cat "$RL_TMP/sink.out")"
	b0=$(snap "$B")
	py "$A" RL_PY_UDP_CLIENT --sport 40801 10.0.1.2 5001 >/dev/null
	wait_file "$RL_TMP/sink.log" 20 . || ktap_msg "the datagram did not reach B's socket"
	expect_deltas "${notrack_tests[2]}" "$B" "$b0" "untracked=1 new=0 insert=0 invalid=0"
	expect_no_line "${notrack_tests[3]}" "$B" "dport=5001 "
fi

kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
