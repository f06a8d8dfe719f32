#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Hostile frames at both ends of a veth pair, IPv4 and IPv6.
#
#   ns A (10.77.0.1, 10.77.1.1, fd77::1, fd77:1::1) veth0 ---- veth0 (... .2, ...::2) ns B
#
# hostile_frames.py writes Ethernet frames to a packet socket at one end (no hook of the
# sender sees them); the other end's stack and hooks receive them.
#
# 1. Classes: each kind of malformed or unusual frame (truncations at every offset, bad IHL
#    and IP options, every IPv6 extension header, errors in errors, non-first fragments, bad
#    checksums, wrong inner protocol, spoofed outer addresses, ...; the list is the
#    generator's) goes as a batch of its own, every other class from A to B, the rest from
#    B to A (with HOSTILE_BOTH_WAYS=1 each class both ways). The receiver drops
#    everything at input (after classification, so no entry is made and its stack answers
#    nothing) and sends no ICMP (dropped before the module's LOCAL_OUT hook), so each batch
#    must move the receiver's counters by exactly what Documentation/contract.rst says of
#    its frames: `invalid` (or new, related, untracked) by the batch's size and no other
#    state counter; "unseen" frames (that the IP layer drops before PRE_ROUTING) not at all
#    (only the echo request that the generator sends after them, as a marker, is NEW).
#    Each receiver's UDP flow, that the errors are about, is still listed afterwards.
# 2. Random: HOSTILE_FRAMES frames (default 5000, half from each end, concurrently) mutated
#    at random from valid ones: 4/5 (all but 20000) dropped right after classification,
#    then the rest with the drops removed, so that entries are made and the stacks answer
#    (and their answers are classified too). Every packet the hooks classified got exactly
#    one state, and ip_conntrack_count equals the listed lines (no timeout runs out during
#    the test).
# 3. The kernel log has no BUG/WARNING/KASAN, rmmod succeeds, kmemleak finds nothing (on the
#    debug kernel; skipped elsewhere).
#
# HOSTILE_SEED fixes the random phase's seed (printed); `make hostile` runs 1,000,000 frames
# and every class both ways on the debug kernel.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"
# shellcheck source=related_lib.sh
source "$SELFTESTS_DIR/related_lib.sh"

HOSTILE_FRAMES=${HOSTILE_FRAMES:-5000}
HOSTILE_SEED=${HOSTILE_SEED:-$RANDOM}
HOSTILE_BOTH_WAYS=${HOSTILE_BOTH_WAYS:-0}
GEN=$SELFTESTS_DIR/hostile_frames.py
BACKLOG=/proc/sys/net/core/netdev_max_backlog

require_module
require_python
require_cmd ip nft dmesg

ktap_header

reload_at_exit=0
if module_is_loaded; then
	rmmod icmp_ct || ktap_bail_out "icmp_ct is loaded and cannot be removed"
	reload_at_exit=1
fi
backlog_before=$(cat "$BACKLOG")
random_pids=()
test_cleanup()
{
	local p

	for p in "${random_pids[@]}" "${HF_PID:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	echo "$backlog_before" >"$BACKLOG"
	rl_cleanup
	[ "$reload_at_exit" = 1 ] && module_restore
}

rl_init || ktap_bail_out "mktemp failed"
kmemleak_start
kmsg_mark
module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
# A burst of frames from one sendmmsg must not overflow the receiver's backlog.
echo 100000 >"$BACKLOG"

# end_setup NS N: namespace NS as end N (1 or 2) of the pair: addresses, no DAD, no router
# solicitations or MLD reports of its own, every timeout an hour (nothing expires during the
# test, so ip_conntrack_count and the listing agree).
end_setup()
{
	local ns=$1 n=$2 f

	ns_exec "$ns" sysctl -q -w net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.default.router_solicitations=0 \
		net.ipv6.conf.default.mldv2_unsolicited_report_interval=0 \
		net.ipv6.conf.default.mldv1_unsolicited_report_interval=0 \
		net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 >/dev/null || return 1
	for f in "$ICMP_CT_SYSCTL_DIR"/ip_ct_*timeout*; do
		sysctl_set "$ns" "${f##*/}" 3600 || return 1
	done
}

# end_addresses NS N: its addresses on veth0 (MTU 9000: an SRv6 header of 127 segments is
# 2 KB), permanent neighbour entries for the peer's, link up.
end_addresses()
{
	local ns=$1 n=$2 peer=$((3 - $2)) mac=$3 dev=veth0

	ip -n "$ns" link set $dev mtu 9000 || return 1
	ip -n "$ns" addr add "10.77.0.$n/24" dev $dev || return 1
	ip -n "$ns" addr add "10.77.1.$n/24" dev $dev || return 1
	ip -n "$ns" addr add "fd77::$n/64" dev $dev nodad || return 1
	ip -n "$ns" addr add "fd77:1::$n/64" dev $dev nodad || return 1
	ip -n "$ns" neigh replace "10.77.0.$peer" lladdr "$mac" dev $dev nud permanent &&
		ip -n "$ns" neigh replace "10.77.1.$peer" lladdr "$mac" dev $dev nud permanent &&
		ip -n "$ns" -6 neigh replace "fd77::$peer" lladdr "$mac" dev $dev nud permanent &&
		ip -n "$ns" -6 neigh replace "fd77:1::$peer" lladdr "$mac" dev $dev nud permanent ||
		return 1
	ip -n "$ns" link set $dev up
}

ns_create A B || ktap_bail_out "cannot create namespaces"
{ end_setup "$A" 1 && end_setup "$B" 2; } || ktap_bail_out "cannot set up the namespaces"
ip link add veth0 netns "$A" type veth peer name veth0 netns "$B" ||
	ktap_bail_out "cannot create the veth pair"
MAC_A=$(ip -n "$A" -br link show veth0 | awk '{ print $3 }')
MAC_B=$(ip -n "$B" -br link show veth0 | awk '{ print $3 }')
{ end_addresses "$A" 1 "$MAC_B" && end_addresses "$B" 2 "$MAC_A"; } ||
	ktap_bail_out "cannot address the veth pair"
rl_anchor "$A" "$B" || ktap_bail_out "cannot start anchor processes"
# Link-local addresses and their reports are done within a second.
sleep 1

# silence NS: drop everything arriving at input (after the classification hook, before the
# confirmation hook: no entry, no answer) and every ICMP leaving (before the module's
# LOCAL_OUT hook), so that only the injected frames move NS's counters.
silence()
{
	ns_exec "$1" nft -f - <<-EOF
		table inet hostile_silence {
			chain in { type filter hook input priority 0; policy drop; }
			chain out {
				type filter hook output priority -300; policy accept;
				meta l4proto { icmp, ipv6-icmp } drop
			}
		}
	EOF
}
{ silence "$A" && silence "$B"; } || ktap_bail_out "cannot load the nftables rules"

end_spec()
{
	local ns=$1 n=$2 mac=$3

	echo "ns=$ns,dev=veth0,mac=$mac,v4=10.77.0.$n,v4b=10.77.1.$n,v6=fd77::$n,v6b=fd77:1::$n,ll=fe80::$n"
}
coproc HF { "$RL_PY" "$GEN" --end "$(end_spec "$A" 1 "$MAC_A")" --end "$(end_spec "$B" 2 "$MAC_B")" serve 2>&1; }

# hf_ask WORDS...: one generator command; its answer (without "ok ") in HF_REPLY.
hf_ask()
{
	local line

	HF_REPLY="the generator is not running"
	printf '%s\n' "$*" >&"${HF[1]}" || return 1
	read -r -t 600 line <&"${HF[0]}" || return 1
	HF_REPLY=${line#ok }
	[[ $line == ok* ]]
}

hf_ask classes || ktap_bail_out "hostile_frames.py: $HF_REPLY"
read -r -a CLASSES <<<"$HF_REPLY"
ktap_plan $(((1 + HOSTILE_BOTH_WAYS) * ${#CLASSES[@]} + 13))
echo "# ${#CLASSES[@]} classes; random phase: $HOSTILE_FRAMES frames, seed $HOSTILE_SEED"

# The flow each receiver tracks, that the errors are about: R:40000 -> S:50000, UDP.
hf_ask flow || ktap_bail_out "hostile_frames.py flow: $HF_REPLY"
flow_re()
{
	local r=$1 s=$2

	echo "^udp +17 [0-9]+ src=10.77.0.$r dst=10.77.0.$s sport=40000 dport=50000 .*
^udp +17 [0-9]+ src=fd77::$r dst=fd77::$s sport=40000 dport=50000 "
}
# flows_listed NS R S: both of NS's flows (IPv4, IPv6) are listed.
flows_listed()
{
	local list re

	list=$(ct_list "$1")
	while IFS= read -r re; do
		grep -qE "$re" <<<"$list" || { ktap_msg "not listed: $re" "$list"; return 1; }
	done < <(flow_re "$2" "$3")
}
sleep 1
ktap_check "A's flows are tracked" flows_listed "$A" 1 2
ktap_check "B's flows are tracked" flows_listed "$B" 2 1

# rx NS: frames received on NS's veth0.
rx()
{
	rx_packets_pid "${RL_ANCHOR[$1]}" veth0
}

# wait_rx NS SINCE N: wait until NS's veth0 has received N frames since SINCE.
wait_rx()
{
	local end=$((SECONDS + 10 * ICMP_CT_TIME_SCALE))

	until [ $(($(rx "$1") - $2)) -ge "$3" ]; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# class_batch FROM NAME EXPECT: one subtest: class NAME from end FROM (0: A, 1: B).
class_batch()
{
	local from=$1 name=$2 expect=$3 to ns rx0 old now n s sum=0 desc exprs tl_wait

	if [ "$from" = 0 ]; then to=B ns=$B; else to=A ns=$A; fi
	desc="$name to $to: $expect"
	old=$(snap "$ns")
	rx0=$(rx "$ns")
	if ! hf_ask class "$from" "$name"; then
		ktap_msg "$desc: hostile_frames.py: $HF_REPLY"
		ktap_test_fail "$desc"
		return 1
	fi
	read -r n _ <<<"$HF_REPLY"
	desc="$n frames of $desc"
	TOTAL_FRAMES=$((TOTAL_FRAMES + n))
	if ! wait_rx "$ns" "$rx0" "$n"; then
		ktap_msg "$desc: only $(($(rx "$ns") - rx0)) frames arrived (failed sends: $HF_REPLY)"
		ktap_test_fail "$desc"
		return 1
	fi
	case $expect in
	unseen)
		# n - 1 frames the IP layer drops, then the generator's marker, a first echo request.
		expect_deltas "$desc" "$ns" "$old" \
			"hook_pre_routing=1 hook_local_out=0 new=1 established=0 related=0 invalid=0 untracked=0" \
			$((5 * ICMP_CT_TIME_SCALE))
		;;
	any)
		# Once all of them passed the hook: one state each, whichever.
		tl_wait=$((SECONDS + 5 * ICMP_CT_TIME_SCALE))
		until now=$(snap "$ns") && deltas_met "$old" "$now" "hook_pre_routing>=$n" >/dev/null; do
			[ "$SECONDS" -lt "$tl_wait" ] || break
			sleep 0.2
		done
		for s in new established related invalid untracked; do
			sum=$((sum + $(delta_of "$s" "$old" "$now")))
		done
		exprs="$(delta_of hook_pre_routing "$old" "$now") $(delta_of hook_local_out "$old" "$now") $sum"
		ktap_expect_eq "$desc: one state each ($(nonzero_deltas "$old" "$now"))" "$n 0 $n" "$exprs"
		;;
	*)
		exprs="hook_pre_routing=$n hook_local_out=0"
		for s in new established related invalid untracked; do
			if [ "$s" = "$expect" ]; then exprs+=" $s=$n"; else exprs+=" $s=0"; fi
		done
		expect_deltas "$desc" "$ns" "$old" "$exprs" $((5 * ICMP_CT_TIME_SCALE))
		;;
	esac
}

TOTAL_FRAMES=0
start=$SECONDS
# Class i from end i % 2; with HOSTILE_BOTH_WAYS=1 (make hostile) also from the other end.
i=0
for c in "${CLASSES[@]}"; do
	class_batch $((i % 2)) "${c%%:*}" "${c#*:}"
	[ "$HOSTILE_BOTH_WAYS" != 1 ] || class_batch $((1 - i % 2)) "${c%%:*}" "${c#*:}"
	i=$((i + 1))
done
echo "# classes: $TOTAL_FRAMES frames in $((SECONDS - start)) s"
ktap_check "A's flows are still tracked (INVALID changed nothing)" flows_listed "$A" 1 2
ktap_check "B's flows are still tracked (INVALID changed nothing)" flows_listed "$B" 2 1

# random_frames COUNT SEED: COUNT random frames, half from each end at once.
random_frames()
{
	local count=$1 seed=$2 half=$(($1 / 2)) from p n ok=0 sent=0

	for from in 0 1; do
		"$RL_PY" "$GEN" --end "$(end_spec "$A" 1 "$MAC_A")" --end "$(end_spec "$B" 2 "$MAC_B")" \
			random --from $from --count $((from == 0 ? half : count - half)) \
			--seed $((seed + from)) >"$RL_TMP/random.$from" 2>&1 &
		random_pids+=($!)
	done
	for p in "${random_pids[@]}"; do
		wait "$p" || ok=1
	done
	random_pids=()
	for from in 0 1; do
		echo "# from end $from: $(cat "$RL_TMP/random.$from")"
		read -r _ n _ <"$RL_TMP/random.$from"
		sent=$((sent + ${n:-0}))
	done
	TOTAL_FRAMES=$((TOTAL_FRAMES + sent))
	ktap_expect_eq "$count random frames sent" "0 $count" "$ok $sent"
}

# Random phase. Routing, answering and ARP for spoofed sources cost the debug kernel more
# than the hooks do (it takes twice as many frames a second when they are dropped right
# after classification): 4/5 of the frames are dropped at prerouting priority -98, after
# the classification hook, then 1/5 go all the way (entries made, the stacks answer).
ns_exec "$A" nft delete table inet hostile_silence
ns_exec "$B" nft delete table inet hostile_silence
old_a=$(snap "$A")
old_b=$(snap "$B")
all_the_way=$((HOSTILE_FRAMES / 5 < 20000 ? HOSTILE_FRAMES / 5 : 20000))
parser_only=$((HOSTILE_FRAMES - all_the_way))
for ns in "$A" "$B"; do
	ns_exec "$ns" nft -f - <<-EOF || ktap_bail_out "cannot load the nftables rules"
		table inet hostile_classified {
			chain pre { type filter hook prerouting priority -98; policy drop; }
		}
	EOF
done
start=$SECONDS
random_frames $parser_only "$HOSTILE_SEED"
echo "# random, dropped after classification: $parser_only frames in $((SECONDS - start)) s"
ns_exec "$A" nft delete table inet hostile_classified
ns_exec "$B" nft delete table inet hostile_classified
start=$SECONDS
random_frames $((HOSTILE_FRAMES - parser_only)) $((HOSTILE_SEED + 2))
echo "# random, all the way: $((HOSTILE_FRAMES - parser_only)) frames in $((SECONDS - start)) s"
echo "# $TOTAL_FRAMES frames in all"
# Answers (and ARP for spoofed sources) settle.
sleep $((3 * ICMP_CT_TIME_SCALE))

# one_state_each NS OLD: every packet the classification hooks saw since OLD got exactly one
# state ("Every packet gets one state"), or was dropped as a fragment.
one_state_each()
{
	local now s states=0 hooks

	now=$(snap "$1")
	for s in new established related invalid untracked dropped_fragment; do
		states=$((states + $(delta_of "$s" "$2" "$now")))
	done
	hooks=$(($(delta_of hook_pre_routing "$2" "$now") + $(delta_of hook_local_out "$2" "$now")))
	ktap_msg "${1}: $(nonzero_deltas "$2" "$now")"
	[ "$states" = "$hooks" ] || { ktap_msg "$states states for $hooks packets"; return 1; }
}
ktap_check "A: one state for each packet" one_state_each "$A" "$old_a"
ktap_check "B: one state for each packet" one_state_each "$B" "$old_b"

# count_is_listing NS: ip_conntrack_count equals the listed lines (a few tries: an answer
# may still be on its way).
count_is_listing()
{
	local i count lines

	for i in 1 2 3 4 5; do
		count=$(sysctl_get "$1" ip_conntrack_count)
		lines=$(ct_list "$1" | grep -c .)
		[ "$count" = "$lines" ] && { ktap_msg "${1}: $count entries"; return 0; }
		sleep 1
	done
	ktap_msg "ip_conntrack_count $count, $lines lines listed"
	return 1
}
ktap_check "A: ip_conntrack_count equals the listed lines" count_is_listing "$A"
ktap_check "B: ip_conntrack_count equals the listed lines" count_is_listing "$B"

ktap_check "rmmod icmp_ct with both tables full of hostile traffic" module_unload
kmemleak_clean "kmemleak finds nothing"
kmsg_clean "no BUG, WARNING or KASAN report in the kernel log"
ktap_finished
