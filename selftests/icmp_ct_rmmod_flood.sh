#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rmmod under traffic.
#
#   ns A (10.0.2.1/24) veth0 ---- veth0 (10.0.2.2/24) ns B
#
# A flood (ping -f, A -> B: requests and replies cross all four hooks of both namespaces)
# runs in the background while icmp_ct is removed and loaded again, ROUNDS times.  Each
# round checks that rmmod and insmod succeed, that packets keep flowing without the module,
# and that the fresh instance counts the flood.  The flood is a chain of "ping -f -c SEG"
# runs of about 2 s (SEG from a measured warm-up), so that stopping it never cuts a run
# short: every run must have had every request answered, i.e. removing and adding the hooks
# under traffic loses nothing.  The kernel log must stay free of BUG/WARNING.
#
# One flood, niced: under TCG a flood takes a whole emulated CPU, two starve the test's own
# commands for seconds each.
#
# Multi-threaded TCG (one host thread per vCPU) can crash the guest when a static key flips
# while another vCPU runs the patched code ("Oops: int3" in __ip_local_out, also with a
# 100-line C module that only registers four hooks): the first IPv4 hook registered
# anywhere enables nf_hooks_needed, the last one removed disables it.  scripts/vm-run.sh
# runs TCG single-threaded, which avoids that, so by default the keys do flip here, as on a
# machine where icmp_ct is the only netfilter user.  ICMP_CT_PIN_NF_KEYS=1 keeps them
# enabled instead (nf_hooks_pin: an nftables table with base chains on the four IPv4 hooks,
# in a namespace of its own), so that each insmod/rmmod only swaps hook entries.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

ROUNDS=${ROUNDS:-5}
WARMUP=2000

require_module
require_cmd ip ping dmesg

ktap_header
ktap_plan $((4 * ROUNDS + 3))

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
	[ "$reload_at_exit" = 1 ] && module_restore
	[ -n "${tmp:-}" ] && rm -rf "$tmp"
}

tmp=$(mktemp -d) || ktap_bail_out "mktemp failed"
kmsg_mark
if [ "${ICMP_CT_PIN_NF_KEYS:-0}" = 1 ]; then
	nf_hooks_pin || ktap_bail_out "cannot pin the netfilter hook static keys (nft missing?)"
fi
module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
ns_create A B || ktap_bail_out "cannot create namespaces"
{ ns_ipv6_off "$A" && ns_ipv6_off "$B"; } || ktap_bail_out "cannot disable IPv6"
veth_pair "$A" veth0 10.0.2.1/24 "$B" veth0 10.0.2.2/24 || ktap_bail_out "cannot set up the veth pair"

# Processes in A and B whose /proc/PID/net the rounds read (no process start per read).
{ ns_anchor "$A" PID_A && ns_anchor "$B" PID_B; } || ktap_bail_out "cannot start anchor processes"

# moves CMD...: CMD's output grows within 3 s (a flood run ends and the next one starts in
# between: a process start, which takes a while in a slow guest), polled every 0.2 s.
moves()
{
	local before after tries=$((15 * ICMP_CT_TIME_SCALE))

	before=$("$@") || return 1
	while [ "$tries" -gt 0 ]; do
		sleep 0.2
		after=$("$@") || return 1
		[ "$after" -gt "$before" ] && return 0
		tries=$((tries - 1))
	done
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

# Warm-up: the flood loses nothing with the module loaded; then the flood rate, from a 2 s
# flood ended by its deadline (counted from ping's start, so process start-up, slow under
# TCG, does not distort it).
warmup_ok()
{
	ns_exec "$A" ping -n -q -f -c "$WARMUP" 10.0.2.2 >"$tmp/warmup" 2>&1
	flood_result "$tmp/warmup" "$WARMUP"
}
ktap_check "warm-up flood: every request answered" warmup_ok
ns_exec "$A" nice -n 19 ping -n -q -f -w 2 10.0.2.2 >"$tmp/rate" 2>&1
rate=$(awk '/packets transmitted/ { print int($1 / 2) }' "$tmp/rate")
# Each run must get all of its SEG replies; stopping the chain waits for the current run.
seg=$((${rate:-0} * 2))
[ "$seg" -ge 500 ] || seg=500
ktap_msg "flood rate about ${rate:-?} packets/s; runs of $seg requests, back to back"

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
flood_chain "$A" 10.0.2.2 "$tmp/flood" &
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
		kill -0 "$p" 2>/dev/null || { ktap_msg "the flood ended early"; return 1; }
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
	moves rx_packets_pid "$PID_A" veth0 && moves rx_packets_pid "$PID_B" veth0
}

flood_counted()
{
	floods_alive && moves stat_get_pid "$PID_A" hook_local_out &&
		moves stat_get_pid "$PID_B" hook_local_in
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
ktap_check "flood A -> B: every request of every run answered" chain_result "$tmp/flood"

module_unload || ktap_msg "rmmod: $MODULE_ERR"
kmsg_clean "no BUG/WARNING in the kernel log"

ktap_finished
