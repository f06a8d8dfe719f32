#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Per-source quota (contract.rst: "Table full and per-source quota", ip_ct_max_per_source,
# quota_drop).
#
#   ns A (10.0.9.1/24) veth0 ---- veth0 (10.0.9.2/24) ns B    (B answers no echo request)
#   ns C (fd00:9::1/64) veth0 ---- veth0 (fd00:9::2/64) ns D  (IPv6 only, D answers none)
#
#  1. ip_ct_max_per_source is 0 by default; -1 and 2^31 fail with EINVAL and leave it; 0 and
#     2^31-1 are taken.
#  2. B's table, ip_conntrack_max=31, ip_ct_max_per_source=20: A's own 10 [UNREPLIED] echo
#     requests, and B's ping of A answered (kept: ip_ct_icmp_keep_replied=1), then a flood of
#     300 echo requests from a spoofed source S. The table fills (31 entries) and the flood
#     evicts none of A's entries nor B's answered one; S keeps exactly 20 entries, its
#     newest (each request over the quota took S's oldest [UNREPLIED] entry): 280 early
#     drops, no drop, no quota_drop. The control: the same flood with the quota off
#     early-drops A's entries.
#  3. ip_ct_max_per_source=2, B holding 2 answered echo entries of its own (none
#     [UNREPLIED]): its next request is INVALID, counted in quota_drop, logged (with
#     ip_ct_log_invalid=1) as "source over its quota", and creates nothing.
#  4. ip_ct_max_per_source=50, B answering A's pings: two flood pings of one id each (their
#     entry closed by each reply and opened again by the next request, lock-free, on both
#     CPUs) while A floods unanswered information requests (evicting its own entries under
#     their insertions): afterwards A's source still holds exactly 50 entries, no slot lost or
#     gained.
#  5. IPv6, ip_ct_max_per_source=3 in D: two sources of one /64 share its quota (the newest 3
#     of their 6 requests stay), a source of another /64 has its own.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.9.1
B_IP=10.0.9.2
S_IP=10.0.9.66
C_IP=fd00:9::1
D_IP=fd00:9::2
QUOTA=20
A_REQUESTS=10
# A's entries, B's answered one and S's quota: the table is full with S at its quota.
MAX=$((A_REQUESTS + 1 + QUOTA))
FLOOD=300
FIRST_ID=1001
CHURN_QUOTA=50
CHURN_PINGS=500

tl_require
require_cmd dmesg

ktap_header
ktap_plan 17

max0=""
saved_log_all=""
test_cleanup()
{
	if module_is_loaded && [ -n "$max0" ]; then
		sysctl_set - ip_conntrack_max "$max0" || echo "# cleanup: cannot restore ip_conntrack_max=$max0"
	fi
	[ -n "$saved_log_all" ] && sysctl -q -w net.netfilter.nf_log_all_netns="$saved_log_all"
	tl_cleanup
}

module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
max0=$(sysctl_get - ip_conntrack_max) || ktap_bail_out "no ip_conntrack_max in the initial namespace"
tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
tl_pair6 C $C_IP D $D_IP || ktap_bail_out "cannot set up namespaces C and D"
ns_exec "$B" sysctl -q -w net.ipv4.icmp_echo_ignore_all=1 >/dev/null ||
	ktap_bail_out "cannot make B ignore echo requests"
ns_exec "$D" sysctl -q -w net.ipv6.icmp.echo_ignore_all=1 >/dev/null ||
	ktap_bail_out "cannot make D ignore echo requests"
for ns in "$A" "$B" "$D"; do
	{ tl_sysctl_set "$ns" ip_ct_icmp_timeout 600 &&
		tl_sysctl_set "$ns" ip_ct_icmpv6_timeout 600; } ||
		ktap_bail_out "timeouts of 600 s: $SYSCTL_ERR"
done
tl_sysctl_set "$B" ip_ct_icmp_keep_replied 1 || ktap_bail_out "keep_replied in B: $SYSCTL_ERR"

# quota_set NS VALUE
quota_set()
{
	tl_sysctl_set "$1" ip_ct_max_per_source "$2" || ktap_msg "ip_ct_max_per_source=$2: $SYSCTL_ERR"
}

# ids_from NS SRC [TYPES]: the ids of NS's listed query entries from SRC (of TYPES, an
# extended regular expression, default echo requests), one line, in id order.
ids_from()
{
	ct_list "$1" | sed -En "s/.* src=$2 dst=[^ ]* type=(${3:-8|128}) code=0 id=([0-9]+) .*/\2/p" |
		sort -n | tr '\n' ' ' | sed 's/ $//'
}

# listed NS SRC DST TYPE ID: NS lists that query entry.
listed()
{
	ct_find "$1" "$2" "$3" "$4" 0 "$5" >/dev/null
}

# listed_from NS SRC: how many of NS's listed entries have SRC as their original source.
listed_from()
{
	ct_list "$1" | grep -cE "^[a-z0-9]+ +[0-9]+ [0-9]+ ([A-Z_]+ )?src=$2 "
}

# count_is NS N: ip_conntrack_count of NS is N.
count_is()
{
	[ "$(ct_count "$1")" = "$2" ]
}

# lines_at_least NS N: NS lists at least N distinct entries (its table may be growing).
lines_at_least()
{
	[ "$(ct_distinct_lines "$1")" -ge "$2" ]
}

quota_get()
{
	tl_get "$1" "$ICMP_CT_SYSCTL_DIR/ip_ct_max_per_source"
}

# fill_b: B's table holds A's own A_REQUESTS [UNREPLIED] entries (ids 1..) and B's answered
# ping of A (id 77).
fill_b()
{
	tl_ping "$B" $A_IP 77 || ktap_msg "B's ping of A was not answered"
	craft "$A" --dst $B_IP --type 8 --id 1 --id-step 1 --count $A_REQUESTS ||
		ktap_msg "A's requests: send failed"
	tl_wait_until 5 lines_at_least "$B" $((A_REQUESTS + 1)) ||
		ktap_msg "B lists $(ct_lines "$B") entries"
}

# flood_b FIRST: S floods B with FLOOD requests, ids FIRST...
flood_b()
{
	tl_snap "$B"
	craft "$A" --src $S_IP --dst $B_IP --type 8 --id "$1" --id-step 1 --count $FLOOD ||
		ktap_msg "S's flood: send failed"
	tl_wait_delta "$B" new $FLOOD 10 || ktap_msg "B saw $(tl_delta "$B" new) of the flood"
}

# answered_77: B's answered echo entry (no [UNREPLIED]) is listed.
answered_77()
{
	ct_find "$B" "$B_IP" "$A_IP" 8 0 77 | grep -qv UNREPLIED
}

##############################################################################
# 1. The sysctl's range.

ktap_expect_eq "ip_ct_max_per_source is 0 by default" 0 "$(quota_get "$B")"
errors=""
for bad in -1 2147483648; do
	if tl_sysctl_set "$B" ip_ct_max_per_source $bad; then
		errors+="$bad accepted; "
	else
		[[ $SYSCTL_ERR == *"nvalid argument"* ]] || errors+="$bad: $SYSCTL_ERR; "
	fi
done
got=$(quota_get "$B")
[ "$got" = 0 ] || errors+="now $got; "
ktap_expect_eq "-1 and 2147483648 fail with EINVAL, the value stays 0" "" "$errors"
quota_set "$B" 2147483647
highest=$(quota_get "$B")
quota_set "$B" 0
ktap_expect_eq "2147483647 and 0 are taken" "2147483647 0" "$highest $(quota_get "$B")"

##############################################################################
# 2. Quota on: the flood only replaces its own entries, oldest first.

sysctl_set - ip_conntrack_max $MAX || ktap_bail_out "ip_conntrack_max=$MAX: $SYSCTL_ERR"
quota_set "$B" $QUOTA
fill_b
flood_b $FIRST_ID
ktap_expect_eq "quota $QUOTA: B's table is full ($MAX entries)" "$MAX $MAX" \
	"$(ct_count "$B") $(ct_lines "$B")"
ktap_expect_eq "the flood evicted none of A's $A_REQUESTS entries" "$(seq -s ' ' 1 $A_REQUESTS)" \
	"$(ids_from "$B" $A_IP)"
ktap_check "the flood evicted not B's answered (ESTABLISHED) echo entry" answered_77
last=$((FIRST_ID + FLOOD - 1))
ktap_expect_eq "S holds $QUOTA entries, its newest: each request over the quota took its oldest" \
	"$(seq -s ' ' $((last - QUOTA + 1)) $last)" "$(ids_from "$B" $S_IP)"
ktap_msg "$(tl_get "$B" "$ICMP_CT_STAT" | grep -E '^(insert|drop|early_drop|quota_drop) ' | tr '\n' ' ')"
tl_expect "S's flood: $FLOOD inserted, $((FLOOD - QUOTA)) own entries early-dropped, no drop" "$B" \
	new=$FLOOD insert=$FLOOD early_drop=$((FLOOD - QUOTA)) drop=0 quota_drop=0 invalid=0

##############################################################################
# 2b. The control: the same flood with the quota off early-drops A's entries.

quota_set "$B" 0
flood_b $((FIRST_ID + FLOOD))
left=$(ids_from "$B" $A_IP | wc -w)
ktap_msg "quota off: $left of A's $A_REQUESTS entries left, early_drop +$(tl_delta "$B" early_drop)"
ktap_check "quota off (control): the flood early-drops some of A's [UNREPLIED] entries" \
	test "$left" -lt $A_REQUESTS

##############################################################################
# 3. A source at its quota with no [UNREPLIED] entry: INVALID, quota_drop.

quota_set "$B" 2
tl_ping "$B" $A_IP 78 || ktap_msg "B's second ping of A was not answered"
ktap_expect_eq "B's own source holds 2 answered echo entries" "77 78" "$(ids_from "$B" $B_IP)"
tl_snap "$B"
# B logs its INVALID packets (outside the initial namespace only with nf_log_all_netns).
saved_log_all=$(sysctl -n net.netfilter.nf_log_all_netns) || ktap_msg "no nf_log_all_netns"
sysctl -q -w net.netfilter.nf_log_all_netns=1
tl_sysctl_set "$B" ip_ct_log_invalid 1 || ktap_msg "ip_ct_log_invalid=1: $SYSCTL_ERR"
kmsg_mark
craft "$B" --dst $A_IP --type 8 --id 79 || ktap_msg "B's request 79: send failed"
tl_wait_delta "$B" invalid 2 5 || ktap_msg "the reply to 79 did not come back"
tl_expect "over its quota, nothing to lose: the request is INVALID and counted in quota_drop" \
	"$B" quota_drop=1 insert=0 new=0 early_drop=0
ktap_expect_eq "... and creates no entry (79 not listed)" "77 78" "$(ids_from "$B" $B_IP)"
ktap_expect_eq "... and is logged as 'source over its quota'" 1 \
	"$(kmsg_new | grep -c 'icmp_ct: INVALID packet: source over its quota')"
tl_sysctl_set "$B" ip_ct_log_invalid 0 || ktap_msg "ip_ct_log_invalid=0: $SYSCTL_ERR"

##############################################################################
# 4. Closes and reopenings on both CPUs while the quota evicts: no slot is lost or gained.

sysctl_set - ip_conntrack_max "$max0" || ktap_msg "ip_conntrack_max=$max0: $SYSCTL_ERR"
ns_exec "$B" sysctl -q -w net.ipv4.icmp_echo_ignore_all=0 >/dev/null ||
	ktap_msg "cannot make B answer echo requests"
tl_sysctl_set "$B" ip_ct_icmp_keep_replied 0 || ktap_msg "keep_replied 0 in B: $SYSCTL_ERR"
quota_set "$B" $CHURN_QUOTA
tl_snap "$B"
churn=()
for id in 501 502; do
	ns_exec "$A" ping -f -q -n -c $CHURN_PINGS -e $id $B_IP >/dev/null 2>&1 &
	churn+=($!)
done
craft_spawn "$A" --dst $B_IP --type 15 --id 3001 --id-step 1 --count $FLOOD &
churn+=($!)
wait "${churn[@]}"
ktap_msg "churn: $(tl_deltas "$B" stats | awk '$1 ~ /^(insert|early_drop|destroyed_on_reply|invalid|quota_drop)$/ { printf "%s +%s ", $1, $2 }')"
# Then, alone: A's source must hold exactly its quota, its newest requests.
craft "$A" --dst $B_IP --type 15 --id 4001 --id-step 1 --count $CHURN_QUOTA ||
	ktap_msg "A's information requests: send failed"
tl_wait_until 10 listed "$B" $A_IP $B_IP 15 $((4000 + CHURN_QUOTA)) ||
	ktap_msg "B does not list A's last information request"
ktap_expect_eq "after the churn A holds exactly its quota of $CHURN_QUOTA entries, its newest" \
	"$CHURN_QUOTA $(seq -s ' ' 4001 $((4000 + CHURN_QUOTA)))" \
	"$(listed_from "$B" $A_IP) $(ids_from "$B" $A_IP 15)"

##############################################################################
# 5. IPv6: one /64 is one source.

c_send()
{
	craft "$C" --link veth0 --lladdr "$D_MAC" --src "$1" --dst $D_IP --type 128 --id "$2" \
		--id-step 1 --count "$3" || ktap_msg "C: sending from $1 failed"
}

D_MAC=$(ip -n "$D" -br link show veth0 | awk '{ print $3 }')
quota_set "$D" 3
tl_snap "$D"
c_send fd00:9::a 1 3
c_send fd00:9::b 11 3
tl_wait_delta "$D" new 6 5 || ktap_msg "D saw $(tl_delta "$D" new) of 6 requests"
ktap_expect_eq "fd00:9::a and fd00:9::b share the quota of 3 of their /64: the newest 3 stay" \
	"a: b:11 12 13" "a:$(ids_from "$D" fd00:9::a) b:$(ids_from "$D" fd00:9::b)"
c_send fd00:a::1 21 3
tl_wait_delta "$D" new 9 5 || ktap_msg "D saw $(tl_delta "$D" new) of 9 requests"
ktap_expect_eq "fd00:a::1, another /64, has its own quota of 3" "a1:21 22 23 b:11 12 13" \
	"a1:$(ids_from "$D" fd00:a::1) b:$(ids_from "$D" fd00:9::b)"
tl_expect "IPv6: 9 inserted, 3 own entries early-dropped, no quota_drop" "$D" insert=9 \
	early_drop=3 quota_drop=0

ktap_finished
