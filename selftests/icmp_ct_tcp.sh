#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# TCP as the contract tracks it (Documentation/contract.rst, "UDP, TCP and everything else"), with
# hand-made segments: the client 10.0.5.98 and the server 10.0.5.99 exist only as B's static
# neighbours, so no stack answers for them. A injects every segment as a frame (AF_PACKET:
# none of A's hooks sees it) to B, which routes it back out of vb (hairpin, no redirects);
# B's tracker sees each segment once, at PRE_ROUTING and POST_ROUTING:
#
#   A va 10.0.5.1 ---- vb 10.0.5.2 B (forwarding)     10.0.5.98, 10.0.5.99: neighbours of B
#                                                     with MACs nobody has
#
#  - SYN: SYN_SENT 120 s; the SYN/ACK alone: SYN_RECV 60 s, not [ASSURED] (the first
#    "Measured" case of issue 13); the client's ACK: ESTABLISHED [ASSURED] 432000 s;
#  - RST and FIN outside the window the receiver advertised: INVALID, the entry unchanged
#    (the second "Measured" case); a RST inside it: CLOSE 10 s;
#  - window scaling from the SYN options: a RST 60000 bytes ahead is inside a window of
#    502 << 7, outside one of 502;
#  - FIN: FIN_WAIT 120 s, FINs of both sides: TIME_WAIT 120 s;
#  - a pickup (first segment an ACK): NEW, ESTABLISHED, not [ASSURED], with
#    ip_ct_tcp_timeout_unacknowledged (300 s); the answer: [ASSURED], 432000 s;
#  - ip_ct_tcp_timeout_syn_recv applies per namespace.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"
# shellcheck source=related_lib.sh
source "$SELFTESTS_DIR/related_lib.sh"

require_module
require_cmd ip sysctl
require_python

CLI=10.0.5.98
SRV=10.0.5.99

test_cleanup()
{
	craft_stop
	rl_cleanup
}

ktap_header
ktap_plan 26

rl_init || ktap_bail_out "cannot create a temporary directory"
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"

setup()
{
	ns_create A B || return 1
	rl_anchor "$B" || return 1
	ns_prepare "$A" "$B" || return 1
	ns_forwarding "$B" || return 1
	ns_exec "$B" sysctl -q -w net.ipv4.conf.all.send_redirects=0 \
		net.ipv4.conf.default.send_redirects=0 >/dev/null || return 1
	veth_pair "$A" va 10.0.5.1/24 "$B" vb 10.0.5.2/24 || return 1
	ip -n "$B" neigh replace $CLI lladdr 02:00:00:00:00:62 dev vb nud permanent || return 1
	ip -n "$B" neigh replace $SRV lladdr 02:00:00:00:00:63 dev vb nud permanent || return 1
	VB_MAC=$(ip -n "$B" -br link show vb | awk '{ print $3 }')
	[ -n "$VB_MAC" ]
}
setup || ktap_bail_out "cannot set up the namespaces"
craft_start "$A"
craft_ready 240 || ktap_skip_all "$CRAFT_OUT"

# cli PORT FLAGS SEQ ACK [OPTIONS]: a segment from the client's PORT to the server's port 80;
# srv the same from the server. OPTIONS: craft_errors.py's (--window, --wscale, --len).
cli()
{
	local port=$1 flags=$2 seq=$3 ack=$4

	shift 4
	craft_send tcp --link va --lladdr "$VB_MAC" --src $CLI --dst $SRV --sport "$port" \
		--dport 80 --flags "$flags" --seq "$seq" --ack "$ack" "$@" || ktap_msg "$CRAFT_OUT"
}

srv()
{
	local port=$1 flags=$2 seq=$3 ack=$4

	shift 4
	craft_send tcp --link va --lladdr "$VB_MAC" --src $SRV --dst $CLI --sport 80 \
		--dport "$port" --flags "$flags" --seq "$seq" --ack "$ack" "$@" || ktap_msg "$CRAFT_OUT"
}

# line PORT STATE FLAGS: the listing template of the flow from client port PORT; FLAGS: U
# for [UNREPLIED], A for [ASSURED], - for neither.
line()
{
	local unrepl="" assured=""

	[[ $3 == *U* ]] && unrepl=" [UNREPLIED]"
	[[ $3 == *A* ]] && assured=" [ASSURED]"
	echo "tcp      6 @T@ $2 src=$CLI dst=$SRV sport=$1 dport=80$unrepl src=$SRV dst=$CLI sport=80 dport=$1$assured use=1"
}

# handshake PORT [WSCALE]: SYN (ISN 1000), SYN/ACK (ISN 5000), ACK with a window of 502,
# both SYNs with window scale WSCALE if given.
handshake()
{
	local port=$1 ws=()

	[ -n "${2:-}" ] && ws=(--wscale "$2")
	cli "$port" S 1000 0 --window 64240 "${ws[@]}"
	srv "$port" SA 5000 1001 --window 65160 "${ws[@]}"
	cli "$port" A 1001 5001 --window 502
}

##############################################################################
rl_section "handshake"

s0=$(snap "$B")
cli 41001 S 1000 0 --window 64240 --wscale 7
expect_line "tcp: a SYN is SYN_SENT [UNREPLIED] with ip_ct_tcp_timeout_syn_sent (120)" "$B" \
	"$(line 41001 SYN_SENT U)" 110 120
srv 41001 SA 5000 1001 --window 65160 --wscale 7
expect_line "tcp: SYN and SYN/ACK alone: SYN_RECV, not [ASSURED], ip_ct_tcp_timeout_syn_recv (60)" \
	"$B" "$(line 41001 SYN_RECV -)" 50 60
cli 41001 A 1001 5001 --window 502
expect_line "tcp: the client's ACK: ESTABLISHED [ASSURED] with 432000 s" "$B" \
	"$(line 41001 ESTABLISHED A)" 431990 432000
expect_deltas "tcp: the handshake is NEW, then ESTABLISHED twice" "$B" "$s0" \
	"new=1 insert=1 established=2 invalid=0"

##############################################################################
rl_section "out of window"

s0=$(snap "$B")
srv 41001 R $((5001 + 10000000)) 0
expect_deltas "tcp: a RST far ahead of the server's window is INVALID" "$B" "$s0" \
	"invalid=1 established=0 new=0"
s0=$(snap "$B")
srv 41001 R $((5001 - 10000000 + 4294967296)) 0
expect_deltas "tcp: a RST far behind is INVALID" "$B" "$s0" "invalid=1 established=0 new=0"
s0=$(snap "$B")
cli 41001 FA $((1001 + 10000000)) 5001
expect_deltas "tcp: a FIN outside the client's window is INVALID" "$B" "$s0" \
	"invalid=1 established=0 new=0"
s0=$(snap "$B")
srv 41001 R $((5001 + 502 * 128 + 1)) 0
expect_deltas "tcp: a RST one byte past the scaled window (502 << 7) is INVALID" "$B" "$s0" \
	"invalid=1 established=0 new=0"
# Not refreshed by them either: its timeout runs on from the client's ACK.
expect_line "tcp: after them the entry is still ESTABLISHED [ASSURED]" "$B" \
	"$(line 41001 ESTABLISHED A)" 431800 432000

s0=$(snap "$B")
srv 41001 R $((5001 + 60000)) 0
expect_deltas "tcp: a RST 60000 bytes ahead, inside the scaled window, is ESTABLISHED" "$B" \
	"$s0" "established=1 invalid=0"
expect_line "tcp: the RST in the window closes it: CLOSE with ip_ct_tcp_timeout_close (10)" \
	"$B" "$(line 41001 CLOSE A)" 1 10

# The same RST without window scaling lies outside the window of 502 bytes.
handshake 41002
s0=$(snap "$B")
srv 41002 R $((5001 + 60000)) 0
expect_deltas "tcp: without window scaling the same RST is INVALID" "$B" "$s0" \
	"invalid=1 established=0"
expect_line "tcp: and that connection stays ESTABLISHED" "$B" "$(line 41002 ESTABLISHED A)" \
	431990 432000
s0=$(snap "$B")
cli 41002 R 1001 0
expect_deltas "tcp: the client's RST at its next sequence number is ESTABLISHED" "$B" "$s0" \
	"established=1 invalid=0"
expect_line "tcp: and closes it" "$B" "$(line 41002 CLOSE A)" 1 10

##############################################################################
rl_section "fin"

handshake 41003 7
cli 41003 FA 1001 5001 --window 502
expect_line "tcp: the client's FIN: FIN_WAIT with ip_ct_tcp_timeout_fin_wait (120)" "$B" \
	"$(line 41003 FIN_WAIT A)" 110 120
srv 41003 A 5001 1002 --window 509
srv 41003 PA 5001 1002 --window 509 --len 20
expect_line "tcp: the server's ACK and data keep it FIN_WAIT" "$B" \
	"$(line 41003 FIN_WAIT A)" 110 120
s0=$(snap "$B")
srv 41003 FA 5021 1002 --window 509
expect_line "tcp: the server's FIN: TIME_WAIT with ip_ct_tcp_timeout_time_wait (120)" "$B" \
	"$(line 41003 TIME_WAIT A)" 110 120
cli 41003 A 1002 5022 --window 502
expect_deltas "tcp: the closing segments are ESTABLISHED" "$B" "$s0" "established=2 invalid=0"

##############################################################################
rl_section "pickup"

s0=$(snap "$B")
cli 41004 PA 70000 90000 --window 1000 --len 10
expect_deltas "tcp: an ACK without entry is picked up as NEW" "$B" "$s0" "new=1 insert=1 invalid=0"
expect_line "tcp: picked up: ESTABLISHED [UNREPLIED], not [ASSURED], ip_ct_tcp_timeout_unacknowledged (300)" \
	"$B" "$(line 41004 ESTABLISHED U)" 290 300
cli 41004 PA 70010 90000 --window 1000 --len 10
expect_line "tcp: more segments one way keep it unacknowledged" "$B" \
	"$(line 41004 ESTABLISHED U)" 290 300
srv 41004 A 90000 70020 --window 2000
expect_line "tcp: seen both ways: [ASSURED] with 432000 s" "$B" \
	"$(line 41004 ESTABLISHED A)" 431990 432000
s0=$(snap "$B")
srv 41004 R $((90000 + 10000000)) 0
expect_deltas "tcp: the windows learned from both directions refuse a blind RST" "$B" "$s0" \
	"invalid=1 established=0"

##############################################################################
rl_section "sysctl"

sysctl_set "$B" ip_ct_tcp_timeout_syn_recv 33 || ktap_msg "ip_ct_tcp_timeout_syn_recv=33: $SYSCTL_ERR"
cli 41005 S 1000 0
srv 41005 SA 5000 1001
expect_line "tcp: ip_ct_tcp_timeout_syn_recv=33 in B applies to B's next SYN_RECV" "$B" \
	"$(line 41005 SYN_RECV -)" 23 33
ktap_expect_eq "tcp: A keeps its own ip_ct_tcp_timeout_syn_recv" 60 \
	"$(sysctl_get "$A" ip_ct_tcp_timeout_syn_recv)"

ktap_finished
