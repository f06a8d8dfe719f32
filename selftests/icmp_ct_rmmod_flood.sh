#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rmmod under traffic.
#
#   ns A (10.0.2.1/24) veth0 ---- veth0 (10.0.2.2/24) ns B
#
# Two floods (ping -f, A -> B and B -> A) run in the background while icmp_ct is removed and
# loaded again, ROUNDS times.  Each round checks that rmmod and insmod succeed, that packets
# keep flowing without the module, and that the fresh instance counts the flood.  Each flood
# is a chain of "ping -f -c SEG" runs of about 2 s (SEG from a measured warm-up), so that
# stopping it never cuts a run short: every run must have had every request answered, i.e.
# removing and adding the hooks under traffic loses nothing.  The kernel log must stay free
# of BUG/WARNING.
#
# Under QEMU TCG with more than one vCPU, flipping a static key while another vCPU runs the
# patched code can crash the guest ("Oops: int3" in __ip_local_out, seen with a 100-line C
# module that only registers four hooks): the first IPv4 hook registered anywhere enables
# nf_hooks_needed, the last one removed disables it.  So by default an nftables table with
# base chains on the four IPv4 hooks, in a namespace of its own, keeps those keys enabled
# and each insmod/rmmod only swaps the hook entries.  ICMP_CT_PIN_NF_KEYS=0 turns that off
# (for KVM or real hardware).

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

ROUNDS=${ROUNDS:-5}
WARMUP=2000

require_module
require_cmd ip ping dmesg

ktap_header
ktap_plan $((4 * ROUNDS + 4))

reload_at_exit=0
if module_is_loaded; then
	rmmod icmp_ct || ktap_bail_out "icmp_ct is loaded and cannot be removed"
	reload_at_exit=1
fi
flood_pids=()
test_cleanup()
{
	local p

	for p in "${flood_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	if [ "$reload_at_exit" = 1 ] && ! module_is_loaded; then
		insmod "$ICMP_CT_KO" && ICMP_CT_LOADED_BY_US=0
	fi
	[ -n "${tmp:-}" ] && rm -rf "$tmp"
}

tmp=$(mktemp -d) || ktap_bail_out "mktemp failed"
kmsg_mark
if [ "${ICMP_CT_PIN_NF_KEYS:-1}" = 1 ]; then
	nf_hooks_pin || ktap_bail_out "cannot pin the netfilter hook static keys (nft missing?)"
fi
module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
ns_create A B || ktap_bail_out "cannot create namespaces"
{ ns_ipv6_off "$A" && ns_ipv6_off "$B"; } || ktap_bail_out "cannot disable IPv6"
veth_pair "$A" veth0 10.0.2.1/24 "$B" veth0 10.0.2.2/24 || ktap_bail_out "cannot set up the veth pair"

rx_packets()
{
	ns_exec "$1" cat /sys/class/net/veth0/statistics/rx_packets
}

# moves CMD...: CMD's output grows within 0.5 s.
moves()
{
	local before after

	before=$("$@") || return 1
	sleep 0.5
	after=$("$@") || return 1
	[ "$after" -gt "$before" ] && return 0
	ktap_msg "'$*' stayed at $before"
	return 1
}

# flood_result FILE COUNT: the flood sent COUNT requests and got COUNT replies.
flood_result()
{
	grep -q "^$2 packets transmitted, $2 received" "$1" && return 0
	ktap_msg "$(cat "$1")"
	return 1
}

# Warm-up, both directions at once: the floods lose nothing with the module loaded; then
# the flood rate, from a 2 s flood ended by its deadline (counted from ping's start, so
# process start-up, slow under TCG, does not distort it).
warmup_ok()
{
	ns_exec "$A" ping -n -q -f -c "$WARMUP" 10.0.2.2 >"$tmp/warmup_ab" 2>&1 &
	ns_exec "$B" ping -n -q -f -c "$WARMUP" 10.0.2.1 >"$tmp/warmup_ba" 2>&1
	wait
	flood_result "$tmp/warmup_ab" "$WARMUP" && flood_result "$tmp/warmup_ba" "$WARMUP"
}
ktap_check "warm-up floods: every request answered, each way" warmup_ok
ns_exec "$A" ping -n -q -f -w 2 10.0.2.2 >"$tmp/rate_ab" 2>&1 &
ns_exec "$B" ping -n -q -f -w 2 10.0.2.1 >"$tmp/rate_ba" 2>&1
wait
rate=$(awk '/packets transmitted/ { print int($1 / 2) }' "$tmp/rate_ab")
# Each flood is a chain of "ping -f -c SEG" runs of about 2 s: every run must get all of its
# SEG replies, and stopping the chain waits for the current run instead of killing it.
seg=$((${rate:-0} * 2))
[ "$seg" -ge 500 ] || seg=500
ktap_msg "flood rate about ${rate:-?} packets/s each way; runs of $seg requests, back to back"

flood_chain()
{
	local ns=$1 dst=$2 out=$3 i=0

	while [ ! -e "$tmp/stop" ]; do
		i=$((i + 1))
		# No -w: with a deadline, ping -c keeps sending until COUNT replies are in.
		# Niced, so that the test's own commands still get CPU time under TCG.
		ns_exec "$ns" nice -n 19 ping -n -q -f -c "$seg" "$dst" >"$out.$i" 2>&1
	done
}
flood_chain "$A" 10.0.2.2 "$tmp/flood_ab" &
flood_pids+=($!)
flood_chain "$B" 10.0.2.1 "$tmp/flood_ba" &
flood_pids+=($!)

# chain_result PREFIX: every run of a chain got all of its replies.
chain_result()
{
	local f runs=0

	for f in "$1".*; do
		[ -e "$f" ] || break
		flood_result "$f" "$seg" || return 1
		runs=$((runs + 1))
	done
	ktap_msg "$(basename "$1"): $runs runs of $seg requests, every one answered"
	[ "$runs" -gt 0 ]
}

floods_alive()
{
	local p

	for p in "${flood_pids[@]}"; do
		kill -0 "$p" 2>/dev/null || { ktap_msg "flood $p ended early"; return 1; }
	done
}

files_absent_all()
{
	module_files_absent - && module_files_absent "$A" && module_files_absent "$B"
}

files_present_all()
{
	module_files_present - && module_files_present "$A" && module_files_present "$B"
}

flood_passes()
{
	moves rx_packets "$A" && moves rx_packets "$B"
}

flood_counted()
{
	floods_alive && moves stat_get "$A" hook_local_out && moves stat_get "$B" hook_local_in
}

sleep 1
for round in $(seq "$ROUNDS"); do
	round_start=$(date +%s)
	if ! floods_alive; then
		ktap_test_fail "round $round: rmmod under flood removes every file"
	elif ! module_unload; then
		ktap_msg "rmmod: $MODULE_ERR"
		ktap_test_fail "round $round: rmmod under flood removes every file"
	else
		ktap_check "round $round: rmmod under flood removes every file" files_absent_all
	fi
	ktap_check "round $round: the flood passes without the module" flood_passes
	if ! floods_alive; then
		ktap_test_fail "round $round: insmod under flood creates every file"
	elif ! module_load; then
		ktap_msg "insmod: $MODULE_ERR"
		ktap_test_fail "round $round: insmod under flood creates every file"
	else
		ktap_check "round $round: insmod under flood creates every file" files_present_all
	fi
	ktap_check "round $round: the new instance counts the flood in A and B" flood_counted
	ktap_msg "round $round took $(($(date +%s) - round_start)) s"
	sleep 0.5
done

# Stop the chains (each finishes its current run): every request must have had its reply.
touch "$tmp/stop"
stop_start=$(date +%s)
for p in "${flood_pids[@]}"; do
	wait "$p"
done
flood_pids=()
ktap_msg "floods stopped after $(($(date +%s) - stop_start)) s"
ktap_check "flood A -> B: every request answered" chain_result "$tmp/flood_ab"
ktap_check "flood B -> A: every request answered" chain_result "$tmp/flood_ba"

module_unload || ktap_msg "rmmod: $MODULE_ERR"
kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
