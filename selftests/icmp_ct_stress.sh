#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Everything at once, for STRESS_SECONDS (default 45; `make stress`: 600 on the debug kernel):
#
#   ns A (10.78.0.10-49, fd78::10-49) veth0 ---- veth0 (10.78.0.2, fd78::2) ns B
#
# - floods from A's 40 addresses to B, IPv4 and IPv6: echo requests with random ids, UDP
#   datagrams from random ports (B answers port unreachable), TCP handshakes to B's server
#   and SYNs to closed ports (stress_traffic.py);
# - the table grown to thousands of entries and left to expire: bursts of echo requests
#   with new ids to an address B does not answer for (10.78.0.99);
# - network namespaces created and destroyed (ip netns, unshare), each pinging itself;
# - sysctl writers in A, B and the initial namespace: timeouts, ip_conntrack_max,
#   ip_ct_icmp_keep_replied, ip_ct_mark_mask, ip_ct_checksum, ip_ct_tcp_loose;
# - procfs readers: the listing, ip_conntrack_count and buckets, the stat files;
# - rmmod and insmod of the module every few seconds while all of that runs.
#
# Afterwards (module loaded again, traffic stopped, 500 lasting entries added in A):
# ip_conntrack_count equals the listed lines in A and B; rmmod (with the entries) succeeds
# and leaves no slab cache of the module; kmemleak finds
# nothing (debug kernel; skipped elsewhere); no BUG/WARNING/KASAN in the kernel log. The
# writers keep every timeout at most 30 s, so that the tables empty within the check.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"
# shellcheck source=related_lib.sh
source "$SELFTESTS_DIR/related_lib.sh"

STRESS_SECONDS=${STRESS_SECONDS:-45}
# Seconds between rmmod/insmod cycles (the module is out for a second of each).
STRESS_RELOAD=${STRESS_RELOAD:-8}
TRAFFIC=$SELFTESTS_DIR/stress_traffic.py
SLAB_CACHES=(icmp_ct_entry icmp_ct_tcp_entry)

require_module
require_python
require_cmd ip nft ping unshare dmesg

ktap_header
ktap_plan 10

reload_at_exit=0
if module_is_loaded; then
	rmmod icmp_ct || ktap_bail_out "icmp_ct is loaded and cannot be removed"
	reload_at_exit=1
fi
max_before=""
worker_pids=()
test_cleanup()
{
	local p

	for p in "${worker_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	[ -z "$max_before" ] || sysctl_set - ip_conntrack_max "$max_before" 2>/dev/null
	rl_cleanup
	[ "$reload_at_exit" = 1 ] && module_restore
}

rl_init || ktap_bail_out "mktemp failed"
kmemleak_start
kmsg_mark
module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
max_before=$(sysctl_get - ip_conntrack_max)

ns_create A B || ktap_bail_out "cannot create namespaces"
veth_pair "$A" veth0 10.78.0.10/24 "$B" veth0 10.78.0.2/24 || ktap_bail_out "cannot set up the veth pair"
SRCS=10.78.0.10
for i in $(seq 11 49); do
	SRCS+=",10.78.0.$i"
done
SRCS6=fd78::10
for i in $(seq 11 49); do
	SRCS6+=",fd78::$i"
done
{
	for i in $(seq 11 49); do
		echo "addr add 10.78.0.$i/24 dev veth0"
	done
	for i in $(seq 10 49); do
		echo "addr add fd78::$i/64 dev veth0 nodad"
	done
} | ip -n "$A" -batch - || ktap_bail_out "cannot add A's addresses"
ip -n "$B" addr add fd78::2/64 dev veth0 nodad || ktap_bail_out "cannot add B's address"
# 10.78.0.99: B receives (neighbour entry) but does not answer: A's entries stay [UNREPLIED].
mac_b=$(ip -n "$B" -br link show veth0 | awk '{ print $3 }')
ip -n "$A" neigh replace 10.78.0.99 lladdr "$mac_b" dev veth0 nud permanent ||
	ktap_bail_out "cannot add a neighbour entry"
for ns in "$A" "$B"; do
	ns_exec "$ns" sysctl -q -w net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 \
		net.ipv4.ip_local_port_range="10000 60000" >/dev/null ||
		ktap_bail_out "cannot set up the namespaces"
done
rl_anchor "$A" "$B" || ktap_bail_out "cannot start anchor processes"
sleep 2

end=$((SECONDS + STRESS_SECONDS))
stop=$RL_TMP/stop

# worker NAME COMMAND...: run COMMAND in the background, output in $RL_TMP/NAME.
worker()
{
	local name=$1

	shift
	"$@" >"$RL_TMP/$name" 2>&1 &
	worker_pids+=($!)
}

# loop COMMAND...: COMMAND again and again until the stop file exists.
loop()
{
	local n=0

	until [ -e "$stop" ]; do
		"$@" >/dev/null 2>&1
		n=$((n + 1))
	done
	echo "$n rounds"
}

# sysctl_writer NS: random values for the module's sysctls of NS (the initial namespace
# also ip_conntrack_max); timeouts at most 30 s. Writes fail while the module is out.
sysctl_writer()
{
	local timeouts=(ip_ct_icmp_timeout ip_ct_icmpv6_timeout ip_ct_udp_timeout
		ip_ct_udp_timeout_stream ip_ct_tcp_timeout_syn_sent ip_ct_tcp_timeout_syn_recv
		ip_ct_tcp_timeout_established ip_ct_tcp_timeout_fin_wait ip_ct_tcp_timeout_time_wait
		ip_ct_tcp_timeout_close ip_ct_tcp_timeout_unacknowledged ip_ct_generic_timeout)

	# shellcheck disable=SC2016 # the inner shell expands
	ns_exec "$1" bash -c '
		dir=$1 stop=$2 init=$3
		shift 3
		n=0
		until [ -e "$stop" ]; do
			for t in "$@"; do
				echo $((RANDOM % 30 + 1)) >"$dir/$t"
			done
			echo $((RANDOM % 2)) >"$dir/ip_ct_icmp_keep_replied"
			echo $(((RANDOM % 2) * (1 << (RANDOM % 28)) * 15)) >"$dir/ip_ct_mark_mask"
			echo $((RANDOM % 8 != 0)) >"$dir/ip_ct_checksum"
			echo $((RANDOM % 4 != 0)) >"$dir/ip_ct_tcp_loose"
			[ "$init" = 1 ] && echo $((RANDOM % 4000 + 500)) >"$dir/ip_conntrack_max"
			n=$((n + 1))
			sleep 0.2
		done 2>/dev/null
		echo "$n rounds"
	' bash "$ICMP_CT_SYSCTL_DIR" "$stop" "$([ "$1" = - ] && echo 1 || echo 0)" \
		"${timeouts[@]}"
}

# proc_reader NS: reads the module's files of NS.
proc_reader()
{
	# shellcheck disable=SC2016 # the inner shell expands
	ns_exec "$1" bash -c '
		stop=$1 n=0
		until [ -e "$stop" ]; do
			cat /proc/net/ip_conntrack /proc/net/stat/icmp_ct /proc/net/stat/icmp_ct_types \
				/proc/net/stat/icmp_ct_rtt \
				/proc/sys/net/ipv4/netfilter/ip_conntrack_count \
				/proc/sys/net/ipv4/netfilter/ip_conntrack_buckets >/dev/null 2>&1
			n=$((n + 1))
		done
		echo "$n rounds"
	' bash "$stop"
}

# netns_churn: namespaces come and go, each with a ping over its loopback (an entry).
netns_churn()
{
	local n=0 name

	until [ -e "$stop" ]; do
		name=icmpct-churn-$n
		if ip netns add "$name"; then
			ip -n "$name" link set lo up
			ip netns exec "$name" ping -q -c 1 -W 1 127.0.0.1 >/dev/null 2>&1
			ip netns delete "$name"
		fi
		unshare -n sh -c 'ip link set lo up; ping -q -c 2 -i 0.2 -W 1 127.0.0.1' >/dev/null 2>&1
		n=$((n + 1))
	done
	echo "$n rounds"
}

echo "# $STRESS_SECONDS s, rmmod/insmod every $STRESS_RELOAD s"
rm -f "$stop"
secs=$((STRESS_SECONDS + 5))
worker server4 ns_exec "$B" "$RL_PY" "$TRAFFIC" serve --dst 10.78.0.2 --seconds $((secs + 30))
worker server6 ns_exec "$B" "$RL_PY" "$TRAFFIC" serve --dst fd78::2 --seconds $((secs + 30))
worker icmp4 ns_exec "$A" "$RL_PY" "$TRAFFIC" icmp --dst 10.78.0.2 --src "$SRCS" --seconds $secs
worker icmp6 ns_exec "$A" "$RL_PY" "$TRAFFIC" icmp --dst fd78::2 --src "$SRCS6" --seconds $secs
worker udp4 ns_exec "$A" "$RL_PY" "$TRAFFIC" udp --dst 10.78.0.2 --src "$SRCS" --seconds $secs
worker udp6 ns_exec "$A" "$RL_PY" "$TRAFFIC" udp --dst fd78::2 --src "$SRCS6" --seconds $secs
worker tcp4 ns_exec "$A" "$RL_PY" "$TRAFFIC" tcp --dst 10.78.0.2 --src "$SRCS" --seconds $secs
worker tcp6 ns_exec "$A" "$RL_PY" "$TRAFFIC" tcp --dst fd78::2 --src "$SRCS6" --seconds $secs
worker burst ns_exec "$A" "$RL_PY" "$TRAFFIC" burst --dst 10.78.0.99 --src 10.78.0.10 \
	--count 3000 --pause 20 --seconds $secs
worker writer_init sysctl_writer -
worker writer_a sysctl_writer "$A"
worker writer_b sysctl_writer "$B"
worker reader_a proc_reader "$A"
worker reader_b proc_reader "$B"
worker churn netns_churn

# The module comes and goes while all of that runs.
cycles=0
reload_failures=()
max_entries=0
while [ "$SECONDS" -lt "$end" ]; do
	sleep "$STRESS_RELOAD"
	c=$(sysctl_get "$A" ip_conntrack_count 2>/dev/null) && [ "$c" -gt "$max_entries" ] &&
		max_entries=$c
	module_unload || reload_failures+=("rmmod: $MODULE_ERR")
	sleep 1
	module_load || reload_failures+=("insmod: $MODULE_ERR")
	cycles=$((cycles + 1))
done
touch "$stop"
echo "# $cycles rmmod/insmod cycles; A's table held up to $max_entries entries at a cycle"
for p in "${worker_pids[@]}"; do
	wait "$p"
done
worker_pids=()
for f in "$RL_TMP"/*; do
	[ "$f" = "$stop" ] || echo "# ${f##*/}: $(tail -1 "$f")"
done
# floods_sent: every flood and server got packets through (a "sent N" line with N > 0).
floods_sent()
{
	local w line bad=0

	for w in server4 server6 icmp4 icmp6 udp4 udp6 tcp4 tcp6 burst; do
		line=$(tail -1 "$RL_TMP/$w")
		[[ $line =~ sent\ [1-9] ]] || { ktap_msg "$w: ${line:-no output}"; bad=1; }
	done
	return "$bad"
}
ktap_check "every flood got packets through" floods_sent
ktap_expect_eq "every rmmod and insmod under load succeeded ($cycles cycles)" "" \
	"${reload_failures[*]}"
module_is_loaded || module_load
ktap_check "the module is loaded after the last cycle" module_is_loaded

# Entries that stay: 500 [UNREPLIED] echo entries in A (to the address B does not answer
# for), with a timeout longer than the rest of the test, beside what is left of the storm.
sysctl_set "$A" ip_ct_icmp_timeout 3600 || ktap_msg "ip_ct_icmp_timeout: $SYSCTL_ERR"
ns_exec "$A" "$RL_PY" "$TRAFFIC" burst --dst 10.78.0.99 --src 10.78.0.10 --count 500 \
	--pause 0 --seconds 0.001 >/dev/null

# count_is_listing NS [MIN]: ip_conntrack_count equals the listed lines. The storm's entries keep
# expiring (every timeout is at most 30 s) and stay counted until garbage collection takes
# them: a sample counts when the count read before and after the listing agree with it;
# one within a minute.
count_is_listing()
{
	local i count lines again min=${2:-0}

	for i in $(seq $((60 * ICMP_CT_TIME_SCALE))); do
		count=$(sysctl_get "$1" ip_conntrack_count)
		lines=$(ct_list "$1" | grep -c .)
		again=$(sysctl_get "$1" ip_conntrack_count)
		if [ "$count" = "$lines" ] && [ "$count" = "$again" ] && [ "$count" -ge "$min" ]; then
			ktap_msg "${1}: $count entries, listed"
			return 0
		fi
		sleep 1
	done
	ktap_msg "ip_conntrack_count $count (then $again), $lines lines listed"
	return 1
}
ktap_check "A: ip_conntrack_count equals the listed lines (at least 500)" count_is_listing "$A" 500
ktap_check "B: ip_conntrack_count equals the listed lines" count_is_listing "$B"

slab_present()
{
	local c

	for c in "${SLAB_CACHES[@]}"; do
		if [ -e "/sys/kernel/slab/$c" ]; then
			ktap_msg "$c: $(cat "/sys/kernel/slab/$c/objects" 2>/dev/null) objects"
		fi
	done
}
slab_present

# slab_gone: none of the module's caches in /sys/kernel/slab or /proc/slabinfo.
slab_gone()
{
	local c bad=0

	for c in "${SLAB_CACHES[@]}"; do
		if [ -e "/sys/kernel/slab/$c" ]; then
			ktap_msg "/sys/kernel/slab/$c is still there"
			bad=1
		fi
		if grep -q "^$c " /proc/slabinfo 2>/dev/null; then
			ktap_msg "$(grep "^$c " /proc/slabinfo)"
			bad=1
		fi
	done
	return "$bad"
}
ktap_check "rmmod icmp_ct after the storm" module_unload
ktap_check "the module's slab caches are gone" slab_gone
kmemleak_clean "kmemleak finds nothing"
kmsg_clean "no BUG, WARNING or KASAN report in the kernel log"
# The namespaces of the churn are gone.
ktap_expect_eq "no namespace of the churn is left" "" "$(ip netns list | grep icmpct-churn)"
ktap_finished
