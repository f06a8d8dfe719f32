#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ICMP query tracking, every IPv4 request -> reply pair of contract.rst ("ICMP queries"):
# echo 8->0, timestamp 13->14, information 15->16, address mask 17->18, extended echo 42->43.
#
#   ns A (10.0.3.1/24) veth0 ---- veth0 (10.0.3.2/24) ns B          ns C: no traffic
#
# IPv6 is off and the neighbours are static, so the only IPv4 packets are the test's own and
# every counter delta below is exact.  States are seen twice: in the counters of
# /proc/net/stat/icmp_ct and, with ip_ct_mark_mask=0xf, in nftables counters of the marks
# (NEW 1, ESTABLISHED 2) in each namespace's filter input chain.
#
# For each pair, requests from A to B:
#  1. B's filter input drops the request (a "gate" between icmp_ct's classification and
#     confirmation hooks): NEW at A and at B; A lists the tutorial's line, [UNREPLIED], with
#     type/code/id, the reply tuple and seconds left <= ip_ct_icmp_timeout; B lists nothing.
#  2. B sends a hand-made reply: ESTABLISHED at A, and A's entry is gone once it has passed.
#  3. No gate: a full exchange, answered by B's Linux where it answers (echo with ping,
#     timestamp, extended echo with net.ipv4.icmp_echo_enable_probe=1), else by a hand-made
#     reply from B (information, address mask): NEW and ESTABLISHED at both ends, no entry
#     left anywhere.
#  4. ip_ct_icmp_keep_replied=1, ip_ct_icmp_timeout=4: the replied entry stays, without
#     [UNREPLIED], until its timeout, then disappears (sampled with timestamps).
# Steps 1-3 run with ip_ct_icmp_timeout=120, so that nothing expires in a slow guest.
# Then: two outstanding requests on one id need two replies; a request dropped in A's filter
# output chain leaves no entry; entries are per namespace.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.3.1
B_IP=10.0.3.2
# request:reply:name
PAIRS=("8:0:echo" "13:14:timestamp" "15:16:information" "17:18:address-mask" "42:43:extended-echo")
PER_PAIR=12
ISOLATION=4
OUTSTANDING=6
OUTPUT_DROP=3
KEEP_TIMEOUT=$((4 * ICMP_CT_TIME_SCALE))
# Timeout for everything but step 4: long enough that nothing expires while a slow TCG guest
# goes through a step (the default, 30 s, is checked by icmp_ct_timeouts.sh).
ICMP_TIMEOUT=120

tl_require

ktap_header
ktap_plan $((${#PAIRS[@]} * PER_PAIR + ISOLATION + OUTSTANDING + OUTPUT_DROP))

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
ns_create C || ktap_bail_out "cannot create namespace C"
{ tl_marks "$A" && tl_marks "$B"; } || ktap_bail_out "cannot set up the mark counters (nft)"

{ tl_sysctl_set "$A" ip_ct_icmp_timeout $ICMP_TIMEOUT && tl_sysctl_set "$B" ip_ct_icmp_timeout $ICMP_TIMEOUT; } ||
	ktap_bail_out "ip_ct_icmp_timeout=$ICMP_TIMEOUT: $SYSCTL_ERR"

# Extended echo: B's Linux answers it only with net.ipv4.icmp_echo_enable_probe=1 (5.13+).
PROBE=0
if ns_exec "$B" sysctl -q -w net.ipv4.icmp_echo_enable_probe=1 >/dev/null 2>&1; then
	PROBE=1
else
	ktap_msg "no net.ipv4.icmp_echo_enable_probe: B answers extended echo by hand"
fi

# request NS DST TYPE ID: one request; echo with ping (iputils ping cannot send RFC 8335
# probes), the others hand-made.
request()
{
	local ns=$1 dst=$2 type=$3 id=$4

	if [ "$type" = 8 ]; then
		tl_ping "$ns" "$dst" "$id"
		return 0
	fi
	craft "$ns" --dst "$dst" --type "$type" --id "$id"
}

# kernel_answers TYPE: whether B's Linux answers this request type.
kernel_answers()
{
	case $1 in
	8 | 13) return 0 ;;
	42) [ "$PROBE" = 1 ] ;;
	*) return 1 ;;
	esac
}

# exchange REQ REP ID: request from A, reply from B (B's Linux or hand-made), reply arrived at A.
exchange()
{
	local req=$1 rep=$2 id=$3

	request "$A" $B_IP "$req" "$id"
	tl_wait_delta "$B" new 1 || ktap_msg "the request (type $req id $id) did not reach B"
	if kernel_answers "$req"; then
		tl_wait_delta "$A" established 1 && return 0
		if [ "$req" != 13 ]; then
			ktap_msg "B's Linux did not answer type $req id $id"
			return 1
		fi
		ktap_msg "B's Linux did not answer the timestamp request: B answers by hand"
	fi
	craft "$B" --dst $A_IP --type "$rep" --id "$id"
	tl_wait_delta "$A" established 1 || ktap_msg "the reply (type $rep id $id) did not reach A"
}

no_entries()
{
	local ns=$1 n c

	n=$(ct_lines "$ns")
	c=$(ct_count "$ns")
	[ "$n" = 0 ] && [ "$c" = 0 ] && return 0
	ktap_msg "${ns}: $n lines, ip_conntrack_count $c:" "$(ct_list "$ns")"
	return 1
}

no_entries_ab()
{
	no_entries "$A" && no_entries "$B"
}

isolation_checks()
{
	local req=$1 id=$2

	ktap_expect_eq "isolation: A's ip_conntrack_count is 1" 1 "$(ct_count "$A")"
	ktap_check "isolation: B (request dropped before its confirmation hook) lists nothing" \
		no_entries "$B"
	ktap_check "isolation: C (no traffic) lists nothing, ip_conntrack_count 0" no_entries "$C"
	if [ -e "$ICMP_CT_PROC" ]; then
		ktap_check "isolation: the initial namespace does not list A's entry" \
			ct_absent - $A_IP $B_IP "$req" 0 "$id"
	else
		ktap_test_fail "isolation: the initial namespace does not list A's entry"
		ktap_msg "$ICMP_CT_PROC missing in the initial namespace"
	fi
}

# gone NS SRC DST TYPE CODE ID: the entry is neither listed nor counted.
gone()
{
	ct_find "$@" >/dev/null && return 1
	[ "$(ct_count "$1")" = 0 ]
}

test_pair()
{
	local req=$1 rep=$2 name=$3 id1 id2 id3 t_req before after

	id1=$((req * 100 + 1))
	id2=$((req * 100 + 2))
	id3=$((req * 100 + 3))

	# 1. Request only: B's filter input drops it.
	tl_gate "$B" "icmp type $req" || ktap_msg "cannot add the gate in B"
	tl_snap "$A" "$B"
	t_req=$(tl_ms)
	request "$A" $B_IP "$req" "$id1"
	ct_check_line "$name: A lists src/dst/type=$req/code/id=$id1 [UNREPLIED], reply type=$rep, timeout <= $ICMP_TIMEOUT" \
		"$A" $A_IP $B_IP "$req" 0 "$id1" "$rep" 1 "$(tl_tmin $ICMP_TIMEOUT "$t_req")" $ICMP_TIMEOUT
	tl_wait_delta "$B" new 1
	tl_expect "$name: request is NEW at A (new +1, entry inserted)" "$A" \
		new=1 established=0 invalid=0 insert=1
	tl_expect "$name: request is NEW at B (new +1, mark 1 in B's filter input)" "$B" \
		new=1 mark_new=1 established=0 invalid=0 insert=0
	[ "$req" = 8 ] && isolation_checks "$req" "$id1"

	# 2. A hand-made reply from B.
	tl_snap "$A" "$B"
	craft "$B" --dst $A_IP --type "$rep" --id "$id1"
	tl_wait_delta "$A" established 1
	tl_expect "$name: reply is ESTABLISHED at A (established +1, mark 2), destroys the entry" \
		"$A" established=1 mark_est=1 new=0 invalid=0 destroyed_on_reply=1
	ktap_check "$name: A's entry is gone once the reply has passed" \
		gone "$A" $A_IP $B_IP "$req" 0 "$id1"
	tl_ungate "$B"

	# 3. Full exchange, tracked at both ends.
	tl_snap "$A" "$B"
	exchange "$req" "$rep" "$id2"
	tl_expect "$name: exchange at A: request NEW, reply ESTABLISHED (mark 2), entry destroyed" \
		"$A" new=1 established=1 mark_est=1 invalid=0 insert=1 destroyed_on_reply=1
	tl_expect "$name: exchange at B: request NEW (mark 1), reply ESTABLISHED, entry destroyed" \
		"$B" new=1 mark_new=1 established=1 invalid=0 insert=1 destroyed_on_reply=1
	ktap_check "$name: exchange leaves no entry in A or B" no_entries_ab

	# 4. keep_replied: the replied entry lives until its timeout.
	if ! { tl_sysctl_set "$A" ip_ct_icmp_keep_replied 1 && tl_sysctl_set "$B" ip_ct_icmp_keep_replied 1 &&
		tl_sysctl_set "$A" ip_ct_icmp_timeout $KEEP_TIMEOUT &&
		tl_sysctl_set "$B" ip_ct_icmp_timeout $KEEP_TIMEOUT; }; then
		ktap_msg "sysctl: $SYSCTL_ERR"
	fi
	tl_snap "$A" "$B"
	before=$(tl_ms)
	exchange "$req" "$rep" "$id3"
	after=$(tl_ms)
	ct_check_line "$name: keep_replied=1: A keeps the entry without [UNREPLIED], timeout <= $KEEP_TIMEOUT" \
		"$A" $A_IP $B_IP "$req" 0 "$id3" "$rep" 0 "$(tl_tmin $KEEP_TIMEOUT "$before")" $KEEP_TIMEOUT
	tl_watch "$A" $((KEEP_TIMEOUT + 5)) $A_IP $B_IP "$req" 0 "$id3"
	# The reply came after $before and refreshed the entry to $KEEP_TIMEOUT s, and came
	# before $after: the entry must live until $before + 4 s and be gone after $after + 4 s.
	tl_judge_listed "$name: keep_replied=1: listed and counted until its timeout" \
		0 $((before + KEEP_TIMEOUT * 1000 - 50)) 1
	tl_judge_gone_after "$name: keep_replied=1: gone from listing and count after its timeout" \
		$((after + KEEP_TIMEOUT * 1000 + 50)) 0 3000
	tl_expect "$name: keep_replied=1: reply ESTABLISHED at A, entry not destroyed" "$A" \
		new=1 established=1 insert=1 destroyed_on_reply=0
	# B's copy (it tracked the same exchange with keep_replied=1) must be gone too.
	tl_wait_until 2 no_entries "$B" >/dev/null
	tl_sysctl_set "$A" ip_ct_icmp_keep_replied 0
	tl_sysctl_set "$B" ip_ct_icmp_keep_replied 0
	tl_sysctl_set "$A" ip_ct_icmp_timeout $ICMP_TIMEOUT
	tl_sysctl_set "$B" ip_ct_icmp_timeout $ICMP_TIMEOUT
}

for p in "${PAIRS[@]}"; do
	IFS=: read -r req rep name <<<"$p"
	test_pair "$req" "$rep" "$name"
done

# Two outstanding requests on one id: the first reply leaves the entry, the second ends it.
ID=850
tl_gate "$B" "icmp type 8" || ktap_msg "cannot add the gate in B"
tl_snap "$A"
t_req=$(tl_ms)
craft "$A" --dst $B_IP --type 8 --id $ID --count 2
tl_expect "two requests on id $ID: both NEW at A, one entry" "$A" new=2 insert=1
ct_check_line "two requests on id $ID: one line, [UNREPLIED]" \
	"$A" $A_IP $B_IP 8 0 $ID 0 1 "$(tl_tmin $ICMP_TIMEOUT "$t_req")" $ICMP_TIMEOUT
tl_snap "$A"
craft "$B" --dst $A_IP --type 0 --id $ID
tl_wait_delta "$A" established 1
tl_expect "first reply: ESTABLISHED at A, entry not destroyed" "$A" \
	established=1 mark_est=1 destroyed_on_reply=0 invalid=0
ct_check_line "first reply: the entry stays, without [UNREPLIED]" \
	"$A" $A_IP $B_IP 8 0 $ID 0 0 "$(tl_tmin $ICMP_TIMEOUT "$t_req")" $ICMP_TIMEOUT
tl_snap "$A"
craft "$B" --dst $A_IP --type 0 --id $ID
tl_wait_delta "$A" established 1
tl_expect "second reply: ESTABLISHED at A, destroys the entry" "$A" \
	established=1 mark_est=1 destroyed_on_reply=1 invalid=0
ktap_check "second reply: the entry is gone, ip_conntrack_count 0" no_entries "$A"
tl_ungate "$B"

# A request dropped in A's filter output chain (priority 0): classified at LOCAL_OUT (-99),
# never confirmed (POST_ROUTING, 99), so no entry.
ID=860
ns_exec "$A" nft -f - <<-EOF || ktap_msg "cannot add the output drop rule"
	table inet icmpct_out {
		chain output {
			type filter hook output priority 0; policy accept;
			icmp type echo-request drop
		}
	}
EOF
tl_snap "$A" "$B"
tl_ping "$A" $B_IP $ID && ktap_msg "ping got through the output drop rule"
tl_expect "request dropped in A's output chain: classified NEW, never inserted" "$A" \
	new=1 insert=0 drop=0
ktap_check "request dropped in A's output chain: no entry, ip_conntrack_count 0" no_entries "$A"
tl_expect "request dropped in A's output chain: B saw nothing" "$B" hook_pre_routing=0
ns_exec "$A" nft delete table inet icmpct_out

ktap_finished
