#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ICMP entry timeouts (INTERFACE.md: "Each request refreshes the timeout", "A new timeout
# applies to each entry from its next packet on", "Expired entries never appear",
# ip_conntrack_count counts live entries only), and the defaults of a new namespace.
#
#   ns A (10.0.4.1/24) veth0 ---- veth0 (10.0.4.2/24) ns B
#
# B's filter input drops every ICMP packet, so A's echo requests (hand-made, one id each)
# are never answered and their entries in A live exactly as long as their timeout.  IPv6 is
# off, the neighbours static: A's table holds only the test's entries.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.4.1
B_IP=10.0.4.2
# The IPv4 sysctls of INTERFACE.md with their defaults (ip_conntrack_* are checked apart).
DEFAULTS=(ip_ct_icmp_timeout=30 ip_ct_icmp_keep_replied=0 ip_ct_checksum=1
	ip_ct_drop_invalid=0 ip_ct_drop_fragments=0 ip_ct_mark_mask=0 ip_ct_log_invalid=0
	ip_ct_udp_timeout=30 ip_ct_udp_timeout_stream=180 ip_ct_tcp_timeout_syn_sent=120
	ip_ct_tcp_timeout_established=432000 ip_ct_tcp_timeout_close=10
	ip_ct_generic_timeout=600 ip_ct_tcp_loose=1)

tl_require

ktap_header
ktap_plan $((${#DEFAULTS[@]} + 3 + 1 + 5 + 4 + 3 + 2))

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
tl_gate "$B" || ktap_bail_out "cannot add the drop rule in B (nft)"

# req ID: one echo request from A to B with this id.
req()
{
	craft "$A" --dst $B_IP --type 8 --id "$1"
}

secs_left()
{
	ct_secs_left "$A" $A_IP $B_IP 8 0 "$1"
}

# secs_between DESC ID MIN MAX: subtest: entry ID is listed with MIN..MAX seconds left.
secs_between()
{
	local desc=$1 id=$2 min=$3 max=$4 s

	if ! s=$(secs_left "$id"); then
		ktap_msg "$desc: entry id=$id not listed:" "$(ct_list "$A")"
		ktap_test_fail "$desc"
		return 1
	fi
	if [ "$s" -ge "$min" ] && [ "$s" -le "$max" ]; then
		ktap_test_pass "$desc"
		return 0
	fi
	ktap_msg "$desc: id=$id has $s seconds left, expected $min..$max"
	ktap_test_fail "$desc"
	return 1
}

set_timeout()
{
	sysctl_set "$A" ip_ct_icmp_timeout "$1" || ktap_msg "ip_ct_icmp_timeout=$1: $SYSCTL_ERR"
}

absent()
{
	! secs_left "$1" >/dev/null
}

# Defaults, in a namespace that has seen no change.
for kv in "${DEFAULTS[@]}"; do
	ktap_expect_eq "default ${kv%%=*} is ${kv#*=}" "${kv#*=}" "$(sysctl_get "$A" "${kv%%=*}" 2>&1)"
done
ktap_expect_eq "new namespace: ip_conntrack_count is 0" 0 "$(ct_count "$A" 2>&1)"
buckets=$(sysctl_get "$A" ip_conntrack_buckets 2>&1)
if [[ $buckets =~ ^[0-9]+$ ]] && [ "$buckets" -gt 0 ]; then
	ktap_test_pass "new namespace: ip_conntrack_buckets is positive ($buckets)"
else
	ktap_msg "ip_conntrack_buckets: '$buckets'"
	ktap_test_fail "new namespace: ip_conntrack_buckets is positive"
fi
max_init=$(sysctl_get - ip_conntrack_max 2>&1)
ktap_expect_eq "ip_conntrack_max reads the same in A as in the initial namespace" \
	"$max_init" "$(sysctl_get "$A" ip_conntrack_max 2>&1)"

# An entry created with the default timeout.
req 901
secs_between "default timeout: a new entry has 20..30 s left" 901 20 30

# 2 s: an unanswered request's entry disappears from the listing and the count.
set_timeout 2
tl_snap "$A"
t_before=$(tl_ms)
req 902
t_after=$(tl_ms)
secs_between "timeout 2: the next request's entry has 0..2 s left" 902 0 2
ktap_expect_eq "timeout 2: ip_conntrack_count is 2" 2 "$(ct_count "$A" 2>&1)"
if tl_wait_until 6 absent 902; then
	t_gone=$(tl_ms)
	ktap_msg "entry 902 first seen gone $((t_gone - t_before)) ms after the request was started," \
		"$((t_gone - t_after)) ms after it was sent"
	# It cannot expire before 2 s after it was sent (t_before); allow 2 s of polling delay.
	if [ $((t_gone - t_before)) -ge 1900 ] && [ $((t_gone - t_after)) -le 4000 ]; then
		ktap_test_pass "timeout 2: the entry leaves the listing 2..4 s after the request"
	else
		ktap_test_fail "timeout 2: the entry leaves the listing 2..4 s after the request"
	fi
else
	ktap_msg "entry 902 still listed 6 s after the request:" "$(ct_list "$A")"
	ktap_test_fail "timeout 2: the entry leaves the listing 2..4 s after the request"
fi
ktap_expect_eq "timeout 2: ip_conntrack_count is back to 1" 1 "$(ct_count "$A" 2>&1)"
ktap_expect_eq "timeout 2: counted once as expired" 1 "$(tl_delta "$A" expired)"

# A new timeout applies to an existing entry from its next packet on.
secs_between "the shorter timeout leaves the older entry its 30 s (>= 15 s left)" 901 15 30
set_timeout 100
secs_between "timeout 100: the older entry keeps <= 30 s until its next packet" 901 0 30
req 901
secs_between "timeout 100: the next request on the older entry gives it 90..100 s" 901 90 100
req 903
secs_between "timeout 100: a new entry has 90..100 s" 903 90 100

set_timeout 10
req 904
secs_between "timeout 10: a new entry has 5..10 s" 904 5 10
secs_between "timeout 10: the 100 s entry keeps >= 80 s" 903 80 100
ktap_expect_eq "B's ip_ct_icmp_timeout is still 30 (per namespace)" 30 \
	"$(sysctl_get "$B" ip_ct_icmp_timeout 2>&1)"

# Each request refreshes the timeout: 6 s, a second request 3 s after the first.
set_timeout 6
t0=$(tl_ms)
req 905
sleep 3
t1=$(tl_ms)
req 905
t1_after=$(tl_ms)
# The first request's deadline (<= t0 + 6 s) has passed; the refreshed one (>= t1 + 6 s) not.
sleep "$(awk -v ms=$((t0 + 6800 - $(tl_ms))) 'BEGIN { printf "%.3f", (ms > 0 ? ms : 0) / 1000 }')"
now=$(tl_ms)
if [ $((now - t1)) -ge 5800 ]; then
	ktap_msg "too slow: $((now - t1)) ms since the second request"
	ktap_test_fail "timeout 6: a second request 3 s later keeps the entry past 6 s"
elif absent 905; then
	ktap_msg "id 905 gone $((now - t0)) ms after the first request, $((now - t1)) ms after the second"
	ktap_test_fail "timeout 6: a second request 3 s later keeps the entry past 6 s"
else
	ktap_test_pass "timeout 6: a second request 3 s later keeps the entry past 6 s"
fi
if tl_wait_until 4 absent 905; then
	ktap_msg "id 905 gone $(($(tl_ms) - t1_after)) ms after the second request"
	ktap_test_pass "timeout 6: the entry leaves the listing about 6 s after the second request"
else
	ktap_msg "id 905 still listed $(($(tl_ms) - t1_after)) ms after the second request"
	ktap_test_fail "timeout 6: the entry leaves the listing about 6 s after the second request"
fi

ktap_finished
