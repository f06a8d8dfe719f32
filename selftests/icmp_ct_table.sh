#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Table limits and consistency (contract.rst: ip_conntrack_max "writable only in the initial
# namespace", ip_conntrack_count, "Table full", "rmmod at any time ... no leak and no warning").
#
#   ns A (10.0.6.1/24) veth0 ---- veth0 (10.0.6.2/24) ns B   (B drops all ICMP in its input)
#   ns C (10.0.7.1/24) veth0 ---- veth0 (10.0.7.2/24) ns D   (D answers echo requests)
#
#  1. ip_conntrack_max is one global value: a child namespace reads it and cannot write it.
#  2. ip_conntrack_max=100, A sends 600 echo requests with distinct ids (two senders at once)
#     that are never answered: the count never exceeds 100, ends at 100 with 100 lines, and
#     each of the 500 entries beyond the limit early-dropped an [UNREPLIED] one.
#  3. ip_conntrack_max=20, C holds 20 replied entries (ip_ct_icmp_keep_replied=1): nothing can
#     be evicted, the next request is dropped, counted, and "table full" is logged.
#  3b. ip_conntrack_max=20, E sends 60 echo requests with distinct ids that F answers
#     (ip_ct_icmp_keep_replied=0): each entry goes on its reply and takes no room from later
#     ones: 60 inserted, none evicted or dropped, nothing listed; then 20 unanswered requests
#     fill the table without eviction, and the 21st early-drops one of them.
#  4. ip_conntrack_max=10000, two senders add 3000 entries to A while a reader compares
#     ip_conntrack_count with the number of distinct listed entries (an entry may be listed
#     twice while the table is resized); afterwards both are 3100.
#  5. rmmod with those 3100 entries (and C's): succeeds, the kernel log stays clean.
# ip_conntrack_max is restored at the end; if icmp_ct was loaded before the test it is loaded
# again.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.6.1
B_IP=10.0.6.2
C_IP=10.0.7.1
D_IP=10.0.7.2
E_IP=10.0.8.1
F_IP=10.0.8.2
ANSWERED=60
SMALL_MAX=100
FULL_MAX=20
BIG_MAX=10000
FLOOD=300
GROW=1500

tl_require
require_cmd dmesg

ktap_header
ktap_plan 26

was_loaded=0
module_is_loaded && was_loaded=1
max0=""
bg_pids=()
tmp=""
test_cleanup()
{
	local p

	for p in "${bg_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	if ! module_is_loaded && [ "$was_loaded" = 1 ]; then
		insmod "$ICMP_CT_KO" || echo "# cleanup: insmod $ICMP_CT_KO failed"
	fi
	if module_is_loaded && [ -n "$max0" ]; then
		sysctl_set - ip_conntrack_max "$max0" || echo "# cleanup: cannot restore ip_conntrack_max=$max0"
	fi
	[ -n "$tmp" ] && rm -rf "$tmp"
	tl_cleanup
}

tmp=$(mktemp -d) || ktap_bail_out "mktemp failed"
kmsg_mark
start_mark=$KMSG_MARK
# rmmod at the end: keep the netfilter static keys from flipping (see icmp_ct_rmmod_flood.sh).
tl_pin_hooks || ktap_bail_out "cannot pin the netfilter hook static keys (nft)"
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
max0=$(sysctl_get - ip_conntrack_max) || ktap_bail_out "no ip_conntrack_max in the initial namespace"
tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
tl_pair C $C_IP D $D_IP || ktap_bail_out "cannot set up namespaces C and D"
tl_pair E $E_IP F $F_IP || ktap_bail_out "cannot set up namespaces E and F"
tl_gate "$B" || ktap_bail_out "cannot add the drop rule in B (nft)"
for ns in "$A" "$C" "$E"; do
	sysctl_set "$ns" ip_ct_icmp_timeout 600 || ktap_bail_out "ip_ct_icmp_timeout=600: $SYSCTL_ERR"
done

set_max()
{
	sysctl_set - ip_conntrack_max "$1" || ktap_msg "ip_conntrack_max=$1: $SYSCTL_ERR"
}

# sampler NS OUT STOP: in NS, until STOP exists (then once more), append
# "count lines distinct count" to OUT: ip_conntrack_count, then the listing's line count
# and its distinct entries (lines without the seconds left, which change between two
# lines of one entry), then ip_conntrack_count again. One read of the listing (cat) gives
# both counts.
sampler()
{
	# shellcheck disable=SC2016 # expanded by the inner shell
	ns_exec "$1" bash -c '
		cnt=$1 list=$2 out=$3 stop=$4 snap=$3.snap
		while :; do
			[ -e "$stop" ] && last=1
			c1=$(<"$cnt")
			cat "$list" >"$snap"
			c2=$(<"$cnt")
			l=$(wc -l <"$snap")
			d=$(awk "{ \$3 = \"\" } 1" "$snap" | sort -u | wc -l)
			echo "$c1 $l $d $c2" >>"$out"
			[ -n "$last" ] && break
		done' sampler "$ICMP_CT_SYSCTL_DIR/ip_conntrack_count" "$ICMP_CT_PROC" "$2" "$3"
}

# flood NS DST FIRST_ID COUNT RCFILE [craft args]: COUNT echo requests with ids FIRST_ID...,
# from a python3 process of its own (two floods run in parallel); exit status in RCFILE.
flood()
{
	local ns=$1 dst=$2 first=$3 count=$4 rcfile=$5

	shift 5
	craft_spawn "$ns" --dst "$dst" --type 8 --id "$first" --id-step 1 --count "$count" \
		--summary "$@" 2>"$rcfile.err"
	echo $? >"$rcfile"
}

##############################################################################
# 1. One global ip_conntrack_max, read-only outside the initial namespace.

ktap_expect_eq "A reads the initial namespace's ip_conntrack_max" "$max0" \
	"$(sysctl_get "$A" ip_conntrack_max 2>&1)"
if sysctl_set "$A" ip_conntrack_max 12345; then
	ktap_msg "writing ip_conntrack_max in A succeeded"
	ktap_test_fail "A cannot write ip_conntrack_max (read-only), value unchanged"
else
	ktap_msg "write in A: $SYSCTL_ERR"
	ktap_expect_eq "A cannot write ip_conntrack_max (read-only), value unchanged" "$max0 $max0" \
		"$(sysctl_get - ip_conntrack_max) $(sysctl_get "$A" ip_conntrack_max)"
fi
set_max $SMALL_MAX
ktap_expect_eq "ip_conntrack_max=$SMALL_MAX in the initial namespace applies to A" \
	"$SMALL_MAX $SMALL_MAX" "$(sysctl_get - ip_conntrack_max) $(sysctl_get "$A" ip_conntrack_max)"

##############################################################################
# 2. Flood of unanswered distinct ids at ip_conntrack_max=100: early drop.

tl_snap "$A"
rm -f "$tmp/stop"
sampler "$A" "$tmp/small" "$tmp/stop" &
bg_pids+=($!)
flood "$A" $B_IP 1 $FLOOD "$tmp/f1" &
bg_pids+=($!)
flood "$A" $B_IP 1001 $FLOOD "$tmp/f2"
wait "${bg_pids[1]}"
touch "$tmp/stop"
wait "${bg_pids[0]}"
bg_pids=()
# shellcheck disable=SC2016 # awk program
# The two counts of each sample (fields 1 and 4), not the listing's lines.
read -r samples highest < <(awk '{ n++; for (i = 1; i <= 4; i += 3) if ($i > m) m = $i }
	END { print n + 0, m + 0 }' "$tmp/small")
ktap_msg "$samples samples of ip_conntrack_count during the flood, highest $highest"
if [ "$samples" -gt 0 ] && [ "$highest" -le $SMALL_MAX ]; then
	ktap_test_pass "flood of $((2 * FLOOD)) ids: ip_conntrack_count never above $SMALL_MAX"
else
	ktap_test_fail "flood of $((2 * FLOOD)) ids: ip_conntrack_count never above $SMALL_MAX"
fi
ktap_expect_eq "after the flood: ip_conntrack_count and listed lines are $SMALL_MAX" \
	"$SMALL_MAX $SMALL_MAX" "$(ct_count "$A") $(ct_lines "$A")"
ktap_expect_eq "after the flood: every listed entry is [UNREPLIED]" "$SMALL_MAX" \
	"$(ct_list "$A" | grep -c '\[UNREPLIED\]')"
tl_expect "after the flood: $((2 * FLOOD)) NEW, inserted, $((2 * FLOOD - SMALL_MAX)) early drops, no drop" \
	"$A" new=$((2 * FLOOD)) insert=$((2 * FLOOD)) early_drop=$((2 * FLOOD - SMALL_MAX)) drop=0 \
	expired=0
ktap_expect_eq "every request of the flood left A (no send failed)" "0 0" \
	"$(cat "$tmp/f1" "$tmp/f2" | tr '\n' ' ' | sed 's/ $//')"

##############################################################################
# 3. Table full of replied entries: nothing to evict, the packet is dropped.

set_max $FULL_MAX
sysctl_set "$C" ip_ct_icmp_keep_replied 1 || ktap_msg "keep_replied: $SYSCTL_ERR"
tl_snap "$C" "$D"
craft "$C" --dst $D_IP --type 8 --id 1 --id-step 1 --count $FULL_MAX --interval 0.01
tl_wait_delta "$C" established $FULL_MAX 10 || ktap_msg "not every request of C was answered"
tl_expect "C: $FULL_MAX answered requests, keep_replied=1: $FULL_MAX entries kept" "$C" \
	insert=$FULL_MAX established=$FULL_MAX early_drop=0 destroyed_on_reply=0 drop=0
ktap_expect_eq "C: ip_conntrack_count $FULL_MAX, $FULL_MAX lines, none [UNREPLIED]" \
	"$FULL_MAX $FULL_MAX 0" "$(ct_count "$C") $(ct_lines "$C") $(ct_list "$C" | grep -c UNREPLIED)"
tl_snap "$C" "$D"
kmsg_mark
if craft "$C" --dst $D_IP --type 8 --id 500 2>"$tmp/full.err"; then
	ktap_test_fail "table full, nothing evictable: the next request is dropped (send fails)"
else
	ktap_msg "craft: $(cat "$tmp/full.err")"
	ktap_test_pass "table full, nothing evictable: the next request is dropped (send fails)"
fi
tl_expect "table full: drop +1, no insert, no eviction" "$C" drop=1 insert=0 early_drop=0 expired=0
ktap_expect_eq "table full: C still has $FULL_MAX entries, id 500 not listed" "$FULL_MAX 0" \
	"$(ct_count "$C") $(ct_list "$C" | grep -c ' id=500 ')"
tl_expect "table full: the dropped request never reached D" "$D" hook_pre_routing=0
full_log=$(kmsg_new | grep -c "icmp_ct: table full, dropping packet")
ktap_msg "$full_log 'table full' line(s) in the kernel log"
if [ "$full_log" -ge 1 ]; then
	ktap_test_pass "table full: 'icmp_ct: table full, dropping packet' is logged"
else
	ktap_msg "new kernel log lines:" "$(kmsg_new)"
	ktap_test_fail "table full: 'icmp_ct: table full, dropping packet' is logged"
fi

##############################################################################
# 3b. Answered queries leave no trace that takes room (ip_ct_icmp_keep_replied=0).

tl_snap "$E"
craft "$E" --dst $F_IP --type 8 --id 1 --id-step 1 --count $ANSWERED --interval 0.01
tl_wait_delta "$E" destroyed_on_reply $ANSWERED 10 || ktap_msg "not every request of E was answered"
tl_expect "E: $ANSWERED answered ids at ip_conntrack_max=$FULL_MAX: each inserted and destroyed on its reply, nothing evicted or dropped" \
	"$E" new=$ANSWERED insert=$ANSWERED destroyed_on_reply=$ANSWERED early_drop=0 drop=0 expired=0
ktap_expect_eq "E: ip_conntrack_count 0, nothing listed" "0 0" "$(ct_count "$E") $(ct_lines "$E")"
tl_gate "$F" || ktap_msg "cannot add the drop rule in F (nft)"
tl_snap "$E"
craft "$E" --dst $F_IP --type 8 --id 1001 --id-step 1 --count $FULL_MAX
tl_expect "E: $FULL_MAX unanswered requests fill the table: inserted, no eviction, no drop" "$E" \
	new=$FULL_MAX insert=$FULL_MAX early_drop=0 drop=0 expired=0
ktap_expect_eq "E: ip_conntrack_count $FULL_MAX, $FULL_MAX lines, all [UNREPLIED]" \
	"$FULL_MAX $FULL_MAX $FULL_MAX" \
	"$(ct_count "$E") $(ct_lines "$E") $(ct_list "$E" | grep -c UNREPLIED)"
tl_snap "$E"
craft "$E" --dst $F_IP --type 8 --id 2001
tl_expect "E: one more request early-drops an [UNREPLIED] entry" "$E" insert=1 early_drop=1 drop=0

##############################################################################
# 4. ip_conntrack_count against the listing while two senders add entries.

set_max $BIG_MAX
tl_snap "$A"
rm -f "$tmp/stop"
sampler "$A" "$tmp/grow" "$tmp/stop" &
bg_pids+=($!)
# Paced a little (2 ms per packet per sender), so that the reader samples during the growth
# even on a fast machine; under TCG the senders are slower than that anyway.
flood "$A" $B_IP 2001 $GROW "$tmp/g1" --interval 0.002 &
bg_pids+=($!)
flood "$A" $B_IP 4001 $GROW "$tmp/g2" --interval 0.002
wait "${bg_pids[1]}"
touch "$tmp/stop"
wait "${bg_pids[0]}"
bg_pids=()
# Each sample reads ip_conntrack_count (c1), then reads the listing once (l lines, d distinct
# entries), then reads the count again (c2). Entries are only added here (timeout 600 s, B
# answers nothing, the limit is far away: no expiry, no reply, no eviction), so every entry
# counted in c1 exists during the whole read and must be listed, and every listed entry
# existed before c2 was read: c1 <= d <= c2. The table grows (is resized) meanwhile, so
# an entry may be listed twice (l > d): the listing promises no more (contract.rst).
# shellcheck disable=SC2016 # awk program
read -r samples bad growing dup < <(awk -v lo=$SMALL_MAX -v hi=$((SMALL_MAX + 2 * GROW)) '
	{ n++; if (!($1 <= $3 && $3 <= $4 && $3 <= $2)) { bad++; if (bad <= 5) print > "/dev/stderr" }
	  if ($1 > lo && $1 < hi) g++
	  if ($2 > $3) dup++ }
	END { print n + 0, bad + 0, g + 0, dup + 0 }' "$tmp/grow" 2>"$tmp/grow.bad")
ktap_msg "$samples samples (count, lines, distinct, count), $growing of them while the table grew," \
	"$dup with an entry listed twice"
if [ "$bad" = 0 ] && [ "$growing" -ge 3 ]; then
	ktap_test_pass "during the flood: count before <= distinct listed entries <= count after, every sample"
else
	ktap_msg "$bad inconsistent samples, e.g.:" "$(cat "$tmp/grow.bad")"
	[ "$growing" -ge 3 ] || ktap_msg "fewer than 3 samples while the table grew"
	ktap_test_fail "during the flood: count before <= distinct listed entries <= count after, every sample"
fi
total=$((SMALL_MAX + 2 * GROW))
ktap_expect_eq "after the flood: ip_conntrack_count and listed lines are $total" "$total $total" \
	"$(ct_count "$A") $(ct_lines "$A")"
tl_expect "after the flood: $((2 * GROW)) inserted, no eviction, no drop" "$A" \
	insert=$((2 * GROW)) early_drop=0 drop=0 expired=0

##############################################################################
# 5. rmmod with thousands of live entries.

ktap_msg "A: $(ct_count "$A") entries, C: $(ct_count "$C") entries before rmmod"
if module_unload; then
	ktap_test_pass "rmmod with $total live entries succeeds"
else
	ktap_msg "rmmod: $MODULE_ERR"
	ktap_test_fail "rmmod with $total live entries succeeds"
fi
ktap_check "after rmmod: no icmp_ct file left in A" module_files_absent "$A"
# Let RCU callbacks and the cache destruction run before reading the log.
sleep 1
KMSG_MARK=$start_mark
kmsg_clean "no BUG/WARNING/leak in the kernel log since the test started"

ktap_finished
