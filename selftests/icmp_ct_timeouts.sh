#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ICMP entry timeouts (contract.rst: "Each request refreshes the timeout", "A new timeout
# applies to each entry from its next packet on", "Expired entries never appear",
# ip_conntrack_count counts live entries only), the defaults of a new namespace, and garbage
# collection of thousands of entries expiring at once.
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
# The IPv4 sysctls of contract.rst with their defaults (ip_conntrack_* are checked apart).
DEFAULTS=(ip_ct_icmp_timeout=30 ip_ct_icmp_keep_replied=0 ip_ct_checksum=1
	ip_ct_drop_invalid=0 ip_ct_drop_fragments=0 ip_ct_mark_mask=0 ip_ct_log_invalid=0
	ip_ct_udp_timeout=30 ip_ct_udp_timeout_stream=180 ip_ct_tcp_timeout_syn_sent=120
	ip_ct_tcp_timeout_syn_recv=60 ip_ct_tcp_timeout_established=432000
	ip_ct_tcp_timeout_fin_wait=120 ip_ct_tcp_timeout_time_wait=120 ip_ct_tcp_timeout_close=10
	ip_ct_tcp_timeout_unacknowledged=300 ip_ct_generic_timeout=600 ip_ct_tcp_loose=1)

tl_require

ktap_header
ktap_plan $((${#DEFAULTS[@]} + 3 + 1 + 3 + 4 + 3 + 2 + 2))

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
	tl_sysctl_set "$A" ip_ct_icmp_timeout "$1" || ktap_msg "ip_ct_icmp_timeout=$1: $SYSCTL_ERR"
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
t901=$(tl_ms)
req 901
secs_between "default timeout: a new entry has <= 30 s left" 901 "$(tl_tmin 30 "$t901")" 30

# 2 s: an unanswered request's entry disappears from the listing and the count.  Sampled
# with timestamps: created after t0, it must be listed (and counted: 901 and 902) until
# t0 + 2 s; created before t1, it must be neither listed nor counted after t1 + 2 s, and the
# samples must see that within 2 s of that.
set_timeout 2
tl_snap "$A"
t0=$(tl_ms)
req 902
t1=$(tl_ms)
tl_watch "$A" 8 $A_IP $B_IP 8 0 902
ktap_msg "request sent within $((t1 - t0)) ms; ${#TL_SAMPLES[@]} samples"
tl_judge_listed "timeout 2: listed, ip_conntrack_count 2, until 2 s after the request" \
	0 $((t0 + 2000 - 50)) 2
tl_judge_gone_after "timeout 2: neither listed nor counted (count 1) once expired, within 4 s" \
	$((t1 + 2000 + 50)) 1 2000
ktap_expect_eq "timeout 2: counted once as expired" 1 "$(tl_delta "$A" expired)"

# A new timeout applies to an existing entry from its next packet on.
secs_between "the shorter timeout leaves the older entry its 30 s" 901 "$(tl_tmin 30 "$t901")" 30
set_timeout 100
secs_between "timeout 100: the older entry keeps <= 30 s until its next packet" 901 0 30
t=$(tl_ms)
req 901
secs_between "timeout 100: the next request on the older entry gives it <= 100 s" 901 \
	"$(tl_tmin 100 "$t")" 100
t903=$(tl_ms)
req 903
secs_between "timeout 100: a new entry has <= 100 s" 903 "$(tl_tmin 100 "$t903")" 100

set_timeout 10
t904=$(tl_ms)
req 904
secs_between "timeout 10: a new entry has <= 10 s" 904 "$(tl_tmin 10 "$t904")" 10
secs_between "timeout 10: the 100 s entry keeps its 100 s" 903 "$(tl_tmin 100 "$t903")" 100
ktap_expect_eq "B's ip_ct_icmp_timeout is still 30 (per namespace)" 30 \
	"$(sysctl_get "$B" ip_ct_icmp_timeout 2>&1)"

# Each request refreshes the timeout: 6 s, a second request 3 s after the first.  Between the
# first request's deadline (<= a1 + 6 s) and the second's (>= b0 + 6 s) the entry must still
# be listed; after b1 + 6 s it must be gone.  (The count is not judged here: entry 904 expires
# meanwhile.)
set_timeout 6
a0=$(tl_ms)
req 905
a1=$(tl_ms)
tl_sleep_until $((a1 + 3000))
b0=$(tl_ms)
req 905
b1=$(tl_ms)
tl_watch "$A" 14 $A_IP $B_IP 8 0 905
ktap_msg "requests sent within $((a1 - a0)) and $((b1 - b0)) ms, $((b0 - a1)) ms apart;" \
	"${#TL_SAMPLES[@]} samples"
tl_judge_listed "timeout 6: a second request 3 s later keeps the entry past the first deadline" \
	$((a1 + 6000 + 50)) $((b0 + 6000 - 50)) -
tl_judge_gone_after "timeout 6: gone within 2 s after the second request's deadline" \
	$((b1 + 6000 + 50)) - 2000

# Many entries expire at once: 3000 unanswered requests (one id each) with a 2 s timeout.
# Garbage collection walks them in batches, giving up the CPU in between, while rhashtable
# grows and then shrinks the table under the walk. Nothing is read until 1.5 s after the
# last deadline, so the periodic collection has run by then.
# Entry 904 (10 s) expires first, so that only the flood's entries expire in this part.
GC_FLOOD=3000
set_timeout 2
tl_sleep_until $((t904 + 10000 + 1500))
base=$(ct_count "$A")
buckets=$(sysctl_get "$A" ip_conntrack_buckets 2>&1)
tl_snap "$A"
craft "$A" --dst $B_IP --type 8 --id 20000 --id-step 1 --count $GC_FLOOD
t1=$(tl_ms)
tl_sleep_until $((t1 + 2000 + 1500))
ktap_msg "ip_conntrack_buckets $buckets before, $(sysctl_get "$A" ip_conntrack_buckets 2>&1) after"
tl_expect "timeout 2: $GC_FLOOD entries inserted, all collected as expired" "$A" \
	new=$GC_FLOOD insert=$GC_FLOOD expired=$GC_FLOOD early_drop=0 drop=0
ktap_expect_eq "timeout 2: after the $GC_FLOOD expired, count and listed lines are back to $base" \
	"$base $base" "$(ct_count "$A") $(ct_lines "$A")"

ktap_finished
