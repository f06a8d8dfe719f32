#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The table under allocation failures and torn down while it resizes.  Debug kernel only
# (selftests/config.debug: failslab, fail_page_alloc, their debugfs files, KASAN, lockdep,
# kmemleak); it is in TEST_PROGS_DEBUG of the Makefile, not in TEST_PROGS.
#
#   ns A (10.9.0.1/24) veth0 ---- veth0 (10.9.0.2/24) ns B
#
#  1. Faults on: failslab fails GFP_ATOMIC allocations from the icmp_ct_entry cache
#     (cache-filter), fail_page_alloc those of order 1 and up anywhere (the rhashtable's
#     bucket arrays from 4 KiB on, allocated with GFP_ATOMIC when an insertion finds the
#     table over-full), each with FAULT_PCT percent, sleeping allocations never.  A floods B
#     at once with echo requests B answers (entries destroyed on reply), echo requests B
#     drops (entries pile up), while pktgen in B sends A PKTGEN UDP datagrams of distinct
#     flows, faster than the rhashtable's resize worker follows (A's table grows on the
#     packet path): half of them to a port A listens on (entries pile up), half to a closed
#     port (A's own port unreachable destroys the entry; A's ICMP rate limits are lifted).
#     Faults off, traffic over: in A and in B
#     ip_conntrack_count, the listed lines and the "entries" counter agree, and entries =
#     insert - expired - early_drop - destroyed_on_reply - destroyed_on_error; insert_failed
#     > 0 in A shows that the faults hit the insert path.  Both namespaces are deleted and
#     the module unloads.
#  2. TEARDOWN_ROUNDS times: pktgen in X fills Y's table with GROW UDP flows (Y drops its
#     own port unreachables, so that they stay), the last growth triggered by the last few
#     packets; then at once Y is deleted and the module removed (odd rounds) or the module
#     removed with Y still there (even rounds), while the resize worker may still be
#     rehashing.  Then the same after a mass expiry: the flows' timeout exceeds the flood's
#     duration, they expire together and the table shrinks; the teardown follows the read
#     that found the last one gone.
#  The kernel log must stay free of KASAN, lockdep and other reports (scripts/vm-run.sh
#  --kmemleak also scans for leaks after the run).
#
# Without the fault-injection files the test fails (exit 1), it does not skip: it exists to
# drive those paths, and a skip would let a debug kernel built without them pass unnoticed.

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.9.0.1
B_IP=10.9.0.2
FAULT_PCT=10
# Echo requests B answers, echo requests B drops (ids from DROP_ID on), pktgen flows.
ANSWERED=150
PILED=200
DROP_ID=30000
PKTGEN=4000
TEARDOWN_ROUNDS=2
# 3100 entries are 6200 nodes: the growth to 16384 buckets starts at 6144 (75 %).
GROW=3100
MIN_BUCKETS=64
DEBUGFS=/sys/kernel/debug
SLAB_FILE=/sys/kernel/slab/icmp_ct_entry/failslab
FAILSLAB_KNOBS="verbose ignore-gfp-wait cache-filter interval times space probability"
PAGE_KNOBS="verbose ignore-gfp-wait ignore-gfp-highmem min-order interval times space probability"

tl_require
require_cmd dmesg modprobe

ktap_header
ktap_plan $((11 + 2 * TEARDOWN_ROUNDS + 1))

was_loaded=0
module_is_loaded && was_loaded=1
declare -A fi_saved
backlog0=""
bg_pids=()

# fi_write KNOB_PATH VALUE: write a fault-injection knob (under $DEBUGFS); 1 on error.
fi_write()
{
	echo "$2" >"$DEBUGFS/$1" 2>/dev/null || { ktap_msg "cannot write $2 to $DEBUGFS/$1"; return 1; }
}

# faults_save: remember every knob this test changes (restored by faults_restore).
faults_save()
{
	local k

	for k in $FAILSLAB_KNOBS; do
		fi_saved[failslab/$k]=$(<"$DEBUGFS/failslab/$k") || return 1
	done
	for k in $PAGE_KNOBS; do
		fi_saved[fail_page_alloc/$k]=$(<"$DEBUGFS/fail_page_alloc/$k") || return 1
	done
}

# faults_restore: probability first, so that nothing fails while the others change.
faults_restore()
{
	local k

	for k in failslab/probability fail_page_alloc/probability "${!fi_saved[@]}"; do
		[ -n "${fi_saved[$k]:-}" ] && echo "${fi_saved[$k]}" >"$DEBUGFS/$k" 2>/dev/null
	done
}

# faults_on PERCENT: failslab on the icmp_ct_entry cache and fail_page_alloc from order 1,
# atomic allocations only, silent, no limit on the number of failures.
faults_on()
{
	echo 1 >"$SLAB_FILE" || { ktap_msg "cannot write $SLAB_FILE"; return 1; }
	fi_write failslab/verbose 0 && fi_write failslab/ignore-gfp-wait Y &&
		fi_write failslab/cache-filter Y && fi_write failslab/interval 1 &&
		fi_write failslab/times -1 && fi_write failslab/space 0 &&
		fi_write fail_page_alloc/verbose 0 && fi_write fail_page_alloc/ignore-gfp-wait Y &&
		fi_write fail_page_alloc/ignore-gfp-highmem Y && fi_write fail_page_alloc/min-order 1 &&
		fi_write fail_page_alloc/interval 1 && fi_write fail_page_alloc/times -1 &&
		fi_write fail_page_alloc/space 0 &&
		fi_write failslab/probability "$1" && fi_write fail_page_alloc/probability "$1"
}

faults_off()
{
	fi_write failslab/probability 0 && fi_write fail_page_alloc/probability 0
}

test_cleanup()
{
	local p

	for p in "${bg_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	faults_restore
	[ -z "$backlog0" ] || sysctl -q -w net.core.netdev_max_backlog="$backlog0" >/dev/null
	tl_cleanup
	if [ "$was_loaded" = 1 ]; then
		# Namespaces first (lib.sh's cleanup would do it after us), then the module back.
		for p in "${NS_LIST[@]}"; do
			ip netns pids "$p" 2>/dev/null | xargs -r kill 2>/dev/null
			ip netns delete "$p" 2>/dev/null
		done
		NS_LIST=()
		module_restore || echo "# cleanup: insmod $ICMP_CT_KO failed"
	fi
}

kmsg_mark
start_mark=$KMSG_MARK
[ -d "$DEBUGFS/failslab" ] || mount -t debugfs debugfs "$DEBUGFS" 2>/dev/null
for k in $FAILSLAB_KNOBS; do
	[ -e "$DEBUGFS/failslab/$k" ] ||
		ktap_bail_out "no $DEBUGFS/failslab/$k: kernel without CONFIG_FAILSLAB or CONFIG_FAULT_INJECTION_DEBUG_FS"
done
for k in $PAGE_KNOBS; do
	[ -e "$DEBUGFS/fail_page_alloc/$k" ] ||
		ktap_bail_out "no $DEBUGFS/fail_page_alloc/$k: kernel without CONFIG_FAIL_PAGE_ALLOC"
done
faults_save || ktap_bail_out "cannot read the fault-injection knobs"
# Many insmod/rmmod: keep the netfilter static keys from flipping (see icmp_ct_rmmod_flood.sh).
tl_pin_hooks || ktap_bail_out "cannot pin the netfilter hook static keys (nft)"
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
[ -e "$SLAB_FILE" ] || ktap_bail_out "no $SLAB_FILE (failslab's cache filter needs it)"
mod_probe pktgen || ktap_bail_out "modprobe pktgen: $MODPROBE_ERR"
# pktgen outruns the receiving namespace: room for every datagram in the backlog queue.
{ backlog0=$(sysctl -n net.core.netdev_max_backlog) &&
	sysctl -q -w net.core.netdev_max_backlog=$((2 * PKTGEN)) >/dev/null; } ||
	ktap_bail_out "cannot raise net.core.netdev_max_backlog"

# stats NS: "name value" lines of NS's stat file, with ip_conntrack_count and the listed
# lines appended as "count" and "lines".
stats()
{
	tl_values "$1" stats || return 1
	echo "count $(ct_count "$1")"
	echo "lines $(ct_lines "$1")"
}

# stat_of NAME: NAME's value in the stats output on stdin.
stat_of()
{
	awk -v n="$1" '$1 == n { print $2; f = 1 } END { exit !f }'
}

# settle NS: wait (up to 20 s, stretched) until two reads of NS's hook counters 1 s apart
# agree: the traffic is over.
settle()
{
	local before after end=$((SECONDS + 20 * ICMP_CT_TIME_SCALE))

	before=$(tl_values "$1" stats | grep '^hook_')
	while [ $SECONDS -lt $end ]; do
		sleep 1
		after=$(tl_values "$1" stats | grep '^hook_')
		[ "$after" = "$before" ] && return 0
		before=$after
	done
	return 1
}

# check_consistent NS: two subtests on NS: count = lines = entries, and entries = insert minus
# every removal.
check_consistent()
{
	local ns=$1 name=$2 s c l e ins exp ed dr de

	s=$(stats "$ns")
	c=$(stat_of count <<<"$s")
	l=$(stat_of lines <<<"$s")
	e=$(stat_of entries <<<"$s")
	ktap_msg "$name: $(tr '\n' ' ' <<<"$s")"
	ktap_expect_eq "$name: ip_conntrack_count = listed lines = entries" "$c $c $c" "$c $l $e"
	ins=$(stat_of insert <<<"$s")
	exp=$(stat_of expired <<<"$s")
	ed=$(stat_of early_drop <<<"$s")
	dr=$(stat_of destroyed_on_reply <<<"$s")
	de=$(stat_of destroyed_on_error <<<"$s")
	ktap_expect_eq "$name: entries = insert - expired - early_drop - destroyed_on_reply - destroyed_on_error" \
		"$e" "$((ins - exp - ed - dr - de))"
}

# flood NS OUT craft.py-args...: in the background, from a python3 process of its own; its
# summary line in OUT.  The pid is appended to bg_pids.
flood()
{
	local ns=$1 out=$2

	shift 2
	craft_spawn "$ns" --quiet-errors --summary "$@" 2>"$out" &
	bg_pids+=($!)
}

# mac NS: the MAC address of veth0 in NS.
mac()
{
	ip -n "$1" -br link show veth0 | awk '{ print $3 }'
}

# pktgen NS DST_IP DST_MAC COUNT SPORT [DPORT_END]: from veth0 in NS, COUNT UDP datagrams to
# DST_IP, destination ports 9 to DPORT_END (default 9) in turn, source ports SPORT, SPORT + 1,
# ...: COUNT distinct flows, as fast as pktgen goes (its own kernel thread; they skip NS's
# hooks).  Returns when they are sent.
pktgen()
{
	# shellcheck disable=SC2016 # expanded by the inner shell
	ns_exec "$1" bash -c '
		set -e
		pg() { echo "$2" >"/proc/net/pktgen/$1"; }
		pg kpktgend_0 rem_device_all
		pg kpktgend_0 "add_device veth0"
		for cmd in "count $3" "pkt_size 60" "delay 0" "dst $1" "dst_mac $2" \
			"udp_src_min $4" "udp_src_max $(($4 + $3))" "udp_dst_min 9" \
			"udp_dst_max $(($5 + 1))"; do
			pg veth0 "$cmd"
		done
		pg pgctrl start
		# "start" may return before the thread began (it waits 125 ms, then for running
		# threads): wait for the result.
		for _ in $(seq $((100 * $6))); do
			grep -q "^Result: OK" /proc/net/pktgen/veth0 && exit 0
			sleep 0.2
		done
		cat /proc/net/pktgen/veth0
		exit 1
		' pktgen "$2" "$3" "$4" "$5" "${6:-9}" "$ICMP_CT_TIME_SCALE" 2>&1 | sed 's/^/# pktgen: /'
	return "${PIPESTATUS[0]}"
}

##############################################################################
# 1. Insertions and removals while allocations fail.

tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
tl_gate "$B" "icmp type echo-request icmp id >= $DROP_ID" || ktap_bail_out "cannot add B's gate (nft)"
ns_exec "$A" sysctl -q -w net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_msgs_per_sec=1000000 \
	net.ipv4.icmp_msgs_burst=1000000 >/dev/null || ktap_msg "A: cannot lift the ICMP rate limits"
_tl_ask "$A" bind 0.0.0.0 10 || ktap_bail_out "A cannot bind UDP port 10: $TL_REPLY"
# No expiry during the test: the counters stand still once the traffic is over.
for ns in "$A" "$B"; do
	{ tl_sysctl_set "$ns" ip_ct_icmp_timeout 3600 && tl_sysctl_set "$ns" ip_ct_udp_timeout 3600; } ||
		ktap_bail_out "cannot set the timeouts: $SYSCTL_ERR"
done

faults_on $FAULT_PCT || ktap_bail_out "cannot switch the faults on"
t0=$SECONDS
flood "$A" "$TL_TMP/answered" --dst $B_IP --type 8 --id 1 --id-step 1 --count $ANSWERED
flood "$A" "$TL_TMP/piled" --dst $B_IP --type 8 --id $DROP_ID --id-step 1 --count $PILED
pktgen "$B" $A_IP "$(mac "$A")" $PKTGEN 30000 10 || ktap_msg "pktgen in B failed"
wait "${bg_pids[@]}"
bg_pids=()
settle "$A" || ktap_msg "A's traffic did not settle"
faults_off || ktap_msg "cannot switch the faults off"
ktap_msg "floods done in $((SECONDS - t0)) s: $(cat "$TL_TMP/answered" "$TL_TMP/piled" | tr '\n' ' ')"

s=$(stats "$A")
failed=$(stat_of insert_failed <<<"$s")
ktap_msg "A: insert_failed $failed, drop $(stat_of drop <<<"$s"); B: insert_failed $(tl_values "$B" stats | stat_of insert_failed)"
if [ "${failed:-0}" -gt 0 ]; then
	ktap_test_pass "faults hit A's insert path: insert_failed > 0"
else
	ktap_test_fail "faults hit A's insert path: insert_failed > 0"
fi
dr=$(stat_of destroyed_on_reply <<<"$s")
de=$(stat_of destroyed_on_error <<<"$s")
if [ "${dr:-0}" -gt 0 ] && [ "${de:-0}" -gt 0 ]; then
	ktap_test_pass "replies and errors destroyed entries meanwhile ($dr, $de)"
else
	ktap_msg "destroyed_on_reply ${dr:-?}, destroyed_on_error ${de:-?}"
	ktap_test_fail "replies and errors destroyed entries meanwhile ($dr, $de)"
fi
buckets=$(tl_get "$A" "$ICMP_CT_SYSCTL_DIR/ip_conntrack_buckets")
count=$(stat_of count <<<"$s")
ktap_msg "A: $count entries in $buckets buckets"
grown=$(((PILED + PKTGEN / 2) / 2))
if [ "${count:-0}" -ge $grown ] && [ "${buckets:-0}" -gt $MIN_BUCKETS ]; then
	ktap_test_pass "A's table grew (at least $grown entries, more than $MIN_BUCKETS buckets)"
else
	ktap_test_fail "A's table grew (at least $grown entries, more than $MIN_BUCKETS buckets)"
fi
check_consistent "$A" A
check_consistent "$B" B
ktap_check "after the faults: A still tracks (a ping is answered, NEW then ESTABLISHED)" \
	tl_ping "$A" $B_IP $((DROP_ID - 1))
ok=1
for ns in "$A" "$B"; do
	ns_delete "$ns" || { ktap_msg "cannot delete $ns"; ok=0; }
done
ktap_expect_eq "namespaces A and B deleted" 1 $ok
if module_unload; then
	ktap_test_pass "rmmod after the faults"
else
	ktap_msg "rmmod: $MODULE_ERR"
	ktap_test_fail "rmmod after the faults"
fi
ktap_check "after rmmod: no icmp_ct file left in the initial namespace" module_files_absent -
ktap_msg "part 1 took $SECONDS s"

##############################################################################
# 2. Teardown right after growth and right after a shrink.

# pair X Y: namespaces X and Y (variable names), a veth, Y sending no ICMP (its port
# unreachables would end the flows), an anchor process in Y (ANCHOR).
pair()
{
	local x y

	ns_create "$1" "$2" || return 1
	x=${!1}
	y=${!2}
	veth_pair "$x" veth0 $A_IP/24 "$y" veth0 $B_IP/24 || return 1
	ns_exec "$y" nft add table inet mute \
		'{ chain out { type filter hook output priority 0; ip protocol icmp drop; }; }' ||
		return 1
	ns_anchor "$y" ANCHOR
}

# ns_gone X: X (its anchor killed, its name deleted) is no business of the cleanup any more.
ns_gone()
{
	local i

	for i in "${!NS_LIST[@]}"; do
		[ "${NS_LIST[$i]}" = "$1" ] && unset "NS_LIST[$i]"
	done
	NS_LIST=("${NS_LIST[@]}")
}

# teardown ROUND X Y: delete namespace Y then rmmod (odd rounds), or rmmod first, as fast as
# the shell allows (the anchor is Y's only process: killing it and deleting the name ends
# Y); then X.  0 if everything succeeded.
teardown()
{
	local round=$1 x=$2 y=$3 rc=0

	if [ $((round % 2)) = 1 ]; then
		kill "$ANCHOR"
		ip netns delete "$y" || rc=1
		module_unload || rc=1
	else
		module_unload || rc=1
		kill "$ANCHOR"
		ip netns delete "$y" || rc=1
	fi
	[ $rc = 0 ] || ktap_msg "teardown: rmmod: $MODULE_ERR"
	ns_gone "$y"
	ns_delete "$x" || rc=1
	return $rc
}

flood_secs=0
for round in $(seq $TEARDOWN_ROUNDS); do
	how="namespace deleted, then rmmod"
	[ $((round % 2)) = 1 ] || how="rmmod, then namespace deleted"

	# Growth.
	t_round=$SECONDS
	{ module_load && pair X Y; } || ktap_bail_out "round $round: cannot set up: $MODULE_ERR"
	sysctl_set "$Y" ip_ct_udp_timeout 3600 || ktap_msg "ip_ct_udp_timeout: $SYSCTL_ERR"
	t0=$(tl_ms)
	pktgen "$X" $B_IP "$(mac "$Y")" $GROW 10000 || ktap_msg "pktgen in X failed"
	n=$(stat_get_pid "$ANCHOR" entries)
	flood_secs=$((($(tl_ms) - t0 + 999) / 1000))
	ktap_msg "round $round: set up and filled in $((SECONDS - t_round)) s"
	if teardown "$round" "$X" "$Y" && [ "${n:-0}" = $GROW ]; then
		ktap_test_pass "round $round: $GROW entries just added in ${flood_secs} s, $how"
	else
		ktap_msg "entries before the teardown: ${n:-none}"
		ktap_test_fail "round $round: $GROW entries just added in ${flood_secs} s, $how"
	fi

	# Shrink: every entry alive at the flood's end, all expiring within the next
	# flood_secs seconds.
	{ module_load && pair X Y; } || ktap_bail_out "round $round: cannot set up: $MODULE_ERR"
	# Twice the growth's flood (set-up included) and more: the same flood here varies with
	# the machine's load, and no flow may expire before it ends.
	timeout=$((2 * flood_secs + 5))
	sysctl_set "$Y" ip_ct_udp_timeout $timeout || ktap_msg "ip_ct_udp_timeout: $SYSCTL_ERR"
	pktgen "$X" $B_IP "$(mac "$Y")" $GROW 10000 || ktap_msg "pktgen in X failed"
	top=$(stat_get_pid "$ANCHOR" entries)
	# Each read of "entries" collects what has expired first.
	end=$((SECONDS + 2 * timeout + 10))
	while n=$(stat_get_pid "$ANCHOR" entries) && [ "$n" != 0 ] && [ $SECONDS -lt $end ]; do
		sleep 0.1
	done
	ktap_msg "round $round: expired $((SECONDS - t_round)) s after the round began"
	if teardown "$round" "$X" "$Y" && [ "${top:-0}" = $GROW ] && [ "$n" = 0 ]; then
		ktap_test_pass "round $round: $GROW entries expired (timeout $timeout s), $how"
	else
		ktap_msg "entries after the flood: ${top:-none}, at the teardown: ${n:-none}"
		ktap_test_fail "round $round: $GROW entries expired (timeout $timeout s), $how"
	fi
done

# Let RCU callbacks, namespace cleanup and the cache destruction run before reading the log.
sleep $((2 * ICMP_CT_TIME_SCALE))
KMSG_MARK=$start_mark
kmsg_clean "no KASAN, lockdep, BUG or WARNING report in the kernel log since the test started"

ktap_finished
