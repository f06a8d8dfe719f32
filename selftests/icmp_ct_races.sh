#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Races between two CPUs on one entry or one table, each window held open by a test build of
# the module (make ICMP_CT_RACE_WINDOWS=1: the race_window parameter,
# rust/abstractions/race_window.rs) while the other CPU acts inside it; the test closes the
# window when it is done (or the module does, after RACE_MS).  Debug kernel only
# (TEST_PROGS_DEBUG): make check builds the debug module that way.  Needs two CPUs.
#
#   ns A (10.0.8.1/24) veth0 ---- veth0 (10.0.8.2/24) ns B
#
# The test and its agents run on CPU 1; the packet that opens a window is sent from CPU 0
# (its hooks run there, in the sending process or the softirq it raises).
#
#  1. Window 1, an entry half inserted (node 0 hashed, node 1 not yet): A sends UDP
#     7001 -> B:7002 from CPU 0; inside the window B sends A a port unreachable about that
#     datagram.  The entry is not in the table until it is completely in: the error finds
#     nothing (INVALID), destroys nothing, and A's entry is listed [UNREPLIED] afterwards.
#     (Before: the error found the half-inserted entry and removed it, or, when node 1 then
#     failed to go in, removed it a second time.)
#  2. Window 2, a reply has just closed its query's entry: B's echo reply to A's request
#     (id 702) arrives from CPU 0; inside the window A sends another request with id 702.
#     It must not be counted on the entry the reply ended: B's reply to it is ESTABLISHED at
#     A, not INVALID, and closes A's entry in turn.  (Before: the request was counted on the
#     ending entry, removed with it, and its reply was INVALID.)
#  3. Window 1 again, writers of one namespace in parallel: while A's insertion of UDP
#     7031 -> B:7032 is held halfway on CPU 0, A creates an unrelated flow from CPU 1, a
#     datagram 127.0.0.1:7033 -> 127.0.0.1:7033 (reply tuple = original tuple: one node, so
#     it does not stop in window 1 itself).  It must be listed and counted within 2 s (times
#     ICMP_CT_TIME_SCALE, at most RACE_MS / 2), while the window is still open (7031's entry
#     not listed yet, one insert counted, not two).
#     (Before: the insertion held the namespace's writer lock through the window, and the
#     second one spun on it, holding CPU 1, the test's, until the window timed out.)

# Functions below run through ktap_check, tl_wait_until and the EXIT trap.
# shellcheck disable=SC2317

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
source "$SELFTESTS_DIR/lib.sh"
# shellcheck source=tracker_lib.sh
source "$SELFTESTS_DIR/tracker_lib.sh"

A_IP=10.0.8.1
B_IP=10.0.8.2
RACE_MS=20000
# Case 3: how soon the flow from CPU 1 must be listed: 2 s on a fast machine (ICMP_CT_TIME_SCALE
# stretches it), at most half the window.
PARALLEL_MS=$((2000 * ICMP_CT_TIME_SCALE))
[ $PARALLEL_MS -le $((RACE_MS / 2)) ] || PARALLEL_MS=$((RACE_MS / 2))
# A CPU held in a window for seconds is no RCU stall to report.
STALL=/sys/module/rcupdate/parameters/rcu_cpu_stall_suppress
PARAMS=/sys/module/icmp_ct/parameters

tl_require
require_cmd taskset nproc

SAVED_STALL=""
test_cleanup()
{
	[ -w "$PARAMS/race_window" ] && echo 0 >"$PARAMS/race_window"
	[ -n "$SAVED_STALL" ] && echo "$SAVED_STALL" >"$STALL"
	tl_cleanup
}

ktap_header
ktap_plan 13

[ "$(nproc)" -ge 2 ] || ktap_bail_out "needs two CPUs, has $(nproc)"
module_is_loaded || module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
# A test build is required, not optional: without it the test would prove nothing.
[ -w "$PARAMS/race_window" ] ||
	ktap_bail_out "$PARAMS/race_window missing: build with make ICMP_CT_RACE_WINDOWS=1"
echo $RACE_MS >"$PARAMS/race_window_ms" || ktap_bail_out "cannot set race_window_ms"
taskset -pc 1 $$ >/dev/null || ktap_bail_out "cannot move the test to CPU 1"
SAVED_STALL=$(cat $STALL) || ktap_bail_out "cannot read $STALL"
echo 1 >$STALL || ktap_bail_out "cannot write $STALL"

tl_pair A $A_IP B $B_IP || ktap_bail_out "cannot set up namespaces A and B"
tl_marks "$A" || ktap_bail_out "cannot set up the mark counters (nft)"
# Entries outlive the slowest run (debug kernel under TCG).
for knob in ip_ct_udp_timeout ip_ct_icmp_timeout; do
	sysctl_set "$A" $knob 600 || ktap_bail_out "$knob: $SYSCTL_ERR"
done
kmsg_mark

# on_cpu0 NS ARGS...: craft.py ARGS in NS as its own process on CPU 0, in the background.
on_cpu0()
{
	local ns=$1

	shift
	ns_exec "$ns" taskset -c 0 "$PYTHON" "$CRAFT" "$@" &
	CPU0_PID=$!
}

# in_window NS COUNTER: wait until the packet sent from CPU 0 reached the hook of COUNTER in
# NS (its window opens right after; starting Python there may take seconds under TCG).
in_window()
{
	tl_wait_delta "$1" "$2" 1 60
}

# still_open DESC NS COUNTER: one subtest: COUNTER, which the CPU in the window moves only
# once it leaves it, has not moved since tl_snap: what the other CPU did meanwhile happened
# inside the window.  Without this the test could pass with the window missed.  Then the
# window is closed.
still_open()
{
	local d

	d=$(tl_delta "$2" "$3")
	echo 0 >"$PARAMS/race_window"
	[ "$d" = 0 ] && { ktap_test_pass "$1"; return 0; }
	ktap_msg "$3 moved by $d: the window had closed"
	ktap_test_fail "$1"
}

# ct_udp_listed NS SRC SPORT DST DPORT: NS lists this UDP flow [UNREPLIED].
ct_udp_listed()
{
	local re="^udp +17 [0-9]+ src=$2 dst=$4 sport=$3 dport=$5 \\[UNREPLIED\\] "

	grep -Eq "$re" <<<"$(ct_list "$1")" && return 0
	ktap_msg "no line matches $re:" "$(ct_list "$1")"
	return 1
}

# count_matches NS: ip_conntrack_count equals the number of listed lines.
count_matches()
{
	local count lines

	count=$(ct_count "$1") && lines=$(ct_lines "$1") || return 1
	[ "$count" = "$lines" ] && return 0
	ktap_msg "ip_conntrack_count $count, $lines lines listed"
	return 1
}

##############################################################################
# 1. An entry half inserted.

# B drops the datagram before its socket lookup: no port unreachable of B's own stack.
tl_gate "$B" "udp dport 7002" || ktap_msg "cannot add the gate in B"
echo 1 >"$PARAMS/race_window"
tl_snap "$A"
on_cpu0 "$A" --dst $B_IP --udp 7002 --sport 7001 --udp-socket
in_window "$A" hook_post_routing || ktap_msg "A's datagram did not reach POST_ROUTING"
craft "$B" --dst $A_IP --type 3 --code 3 --embed-udp "$A_IP,7001,$B_IP,7002" ||
	ktap_msg "B could not send the port unreachable"
tl_wait_delta "$A" hook_local_in 1 || ktap_msg "the port unreachable did not reach A"
still_open "window 1: the error was classified and confirmed while A's insert was halfway" \
	"$A" insert
wait "$CPU0_PID" || ktap_msg "the datagram's sender failed"
tl_expect "window 1: the error about a half-inserted entry is INVALID at A, destroys nothing" \
	"$A" new=1 insert=1 invalid=1 related=0 destroyed_on_error=0
ktap_check "window 1: A lists the datagram's entry [UNREPLIED]" \
	ct_udp_listed "$A" $A_IP 7001 $B_IP 7002
ktap_check "window 1: ip_conntrack_count equals A's listed lines" count_matches "$A"
tl_ungate "$B"

##############################################################################
# 2. A reply has just closed its entry.

tl_run "$B" sysctl -q -w net.ipv4.icmp_echo_ignore_all=1 || ktap_msg "B still answers echo"
craft "$A" --dst $B_IP --type 8 --id 702 || ktap_msg "A could not send its request"
echo 2 >"$PARAMS/race_window"
tl_snap "$A"
on_cpu0 "$B" --dst $A_IP --type 0 --id 702
in_window "$A" hook_local_in || ktap_msg "B's reply did not reach A's LOCAL_IN"
craft "$A" --dst $B_IP --type 8 --id 702 || ktap_msg "A could not send its second request"
tl_wait_delta "$A" hook_post_routing 1 || ktap_msg "A's second request did not leave"
still_open "window 2: the second request was classified and confirmed before the reply was done" \
	"$A" destroyed_on_reply
wait "$CPU0_PID" || ktap_msg "B's first reply's sender failed"
craft "$B" --dst $A_IP --type 0 --id 702 || ktap_msg "B could not send its second reply"
tl_wait_delta "$A" hook_local_in 2
tl_expect "window 2: both replies ESTABLISHED at A, each closing the entry, none INVALID" \
	"$A" established=2 invalid=0 mark_inv=0 destroyed_on_reply=2
ktap_check "window 2: the second request is not listed any more" \
	ct_absent "$A" $A_IP $B_IP 8 0 702
ktap_check "window 2: ip_conntrack_count equals A's listed lines" count_matches "$A"

##############################################################################
# 3. Another flow of the namespace inserted while an insertion is halfway.

# listed_alone: one listing of A has the flow from CPU 1 and not the held one (no grep: a
# process costs a large part of the bound under TCG).
listed_alone()
{
	local list line mine=0
	local re_mine="^udp +17 [0-9]+ src=127.0.0.1 dst=127.0.0.1 sport=7033 dport=7033 "
	local re_held="^udp +17 [0-9]+ src=$A_IP dst=$B_IP sport=7031 dport=7032 "

	list=$(ct_list "$A") || return 1
	while IFS= read -r line; do
		[[ $line =~ $re_held ]] && return 1
		[[ $line =~ $re_mine ]] && mine=1
	done <<<"$list"
	[ $mine = 1 ]
}

# parallel_insert DESC: one subtest: A's datagram to itself, sent by its agent on CPU 1 while
# CPU 0 holds window 1, is listed without the held flow by a look started at most
# PARALLEL_MS after the send began; then one insert is counted (the held one's not yet) and
# ip_conntrack_count equals the listed lines.  Then the window is closed.
parallel_insert()
{
	local t0 end sent ok=0 took d bad=""

	t0=$(tl_ms)
	end=$((t0 + PARALLEL_MS))
	craft "$A" --udp-socket --src 127.0.0.1 --sport 7033 --dst 127.0.0.1 --udp 7033 ||
		ktap_msg "A could not send its datagram to itself"
	sent=$(($(tl_ms) - t0))
	# A look that starts after the bound does not count.
	while [ "$(tl_ms)" -le "$end" ]; do
		listed_alone && { ok=1; break; }
		sleep 0.1
	done
	took=$(($(tl_ms) - t0))
	if [ $ok = 1 ]; then
		d=$(tl_delta "$A" insert)
		[ "$d" = 1 ] || bad+="insert moved by $d, not 1 (the window had closed?); "
		count_matches "$A" || bad+="not counted; "
	else
		bad="not listed alone within $PARALLEL_MS ms (the send took $sent ms); "
	fi
	echo 0 >"$PARAMS/race_window"
	if [ -z "$bad" ]; then
		ktap_msg "listed alone at +$took ms (the send took $sent ms)"
		ktap_test_pass "$1"
		return 0
	fi
	ktap_msg "${bad%; }; listing:" "$(ct_list "$A")"
	ktap_test_fail "$1"
}

tl_gate "$B" "udp dport 7032" || ktap_msg "cannot add the gate in B"
echo 1 >"$PARAMS/race_window"
tl_snap "$A"
on_cpu0 "$A" --dst $B_IP --udp 7032 --sport 7031 --udp-socket
in_window "$A" hook_post_routing || ktap_msg "A's datagram did not reach POST_ROUTING"
parallel_insert "window 1: a flow of A from CPU 1 is listed and counted while A's insert is halfway"
wait "$CPU0_PID" || ktap_msg "the datagram's sender failed"
tl_expect "window 1, two flows: two entries inserted, none failed, nothing INVALID" \
	"$A" new=2 insert=2 insert_failed=0 invalid=0
ktap_check "window 1, two flows: A lists the held datagram's entry [UNREPLIED]" \
	ct_udp_listed "$A" $A_IP 7031 $B_IP 7032
ktap_check "window 1, two flows: ip_conntrack_count equals A's listed lines" count_matches "$A"
tl_ungate "$B"

kmsg_clean "no BUG/WARNING/KASAN report in the kernel log"

ktap_finished
