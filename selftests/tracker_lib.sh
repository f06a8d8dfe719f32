#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the icmp_ct tracking selftests (icmp_ct_queries.sh, icmp_ct_timeouts.sh,
# icmp_ct_invalid.sh, icmp_ct_table.sh); sourced after lib.sh, never run.
#
# - tl_pair: two namespaces joined by a veth pair, IPv6 off, static neighbours, and raw-socket
#   ping (so that "ping -e ID" really sends id ID);
# - craft: hand-made ICMP packets (craft.py) sent from a namespace;
# - the listing (/proc/net/ip_conntrack) and ip_conntrack_count;
# - counter snapshots and deltas: every line of /proc/net/stat/icmp_ct, plus the per-state
#   mark counters of an nftables input chain (tl_marks) as a second witness;
# - a "gate": an nftables input rule in the receiving namespace that drops ICMP after the
#   classification hook (-99) and before the confirmation hook (99).

# Variables set here are read by the tests that source this file.
# shellcheck disable=SC2034

PYTHON=${PYTHON:-/usr/bin/python3}
CRAFT=$SELFTESTS_DIR/craft.py

# State names of ip_ct_mark_mask codes (INTERFACE.md, "Marks"): NEW 1 ... UNTRACKED 5.
TL_MARK_NAMES=(mark_new mark_est mark_rel mark_inv mark_untr)

# Counter snapshots: TL_SNAP[ns:name] = value.
declare -A TL_SNAP

# tl_require: the tools every tracking test needs, and a python3 that runs craft.py.
tl_require()
{
	require_module
	require_cmd ip ping nft sysctl awk
	[ -x "$PYTHON" ] || ktap_skip_all "$PYTHON not found (needed by craft.py)"
	"$PYTHON" -c 'import socket, struct, argparse' 2>/dev/null ||
		ktap_skip_all "$PYTHON cannot run craft.py"
}

# tl_pair NS1 ADDR1 NS2 ADDR2 (ADDR without /24): namespaces in NS1 and NS2 (variable names),
# IPv6 off, veth0 in each, addressed in one /24, up, with permanent neighbour entries (no ARP
# during the tests), and net.ipv4.ping_group_range "1 0" so that ping uses a raw socket (whose
# ICMP id is -e's, not a port the kernel picks).
tl_pair()
{
	local v1=$1 a1=$2 v2=$3 a2=$4 n1 n2 m1 m2

	ns_create "$v1" "$v2" || return 1
	n1=${!v1}
	n2=${!v2}
	{ ns_ipv6_off "$n1" && ns_ipv6_off "$n2"; } || return 1
	veth_pair "$n1" veth0 "$a1/24" "$n2" veth0 "$a2/24" || return 1
	m1=$(ip -n "$n1" -br link show veth0 | awk '{ print $3 }')
	m2=$(ip -n "$n2" -br link show veth0 | awk '{ print $3 }')
	ip -n "$n1" neigh replace "$a2" lladdr "$m2" dev veth0 nud permanent || return 1
	ip -n "$n2" neigh replace "$a1" lladdr "$m1" dev veth0 nud permanent || return 1
	ns_exec "$n1" sysctl -q -w net.ipv4.ping_group_range="1 0" >/dev/null || return 1
	ns_exec "$n2" sysctl -q -w net.ipv4.ping_group_range="1 0" >/dev/null || return 1
}

# craft NS craft.py-args...: send hand-made packets from NS.
craft()
{
	local ns=$1

	shift
	ns_exec "$ns" "$PYTHON" "$CRAFT" "$@"
}

# tl_ping NS DST ID [COUNT]: ping with ICMP id ID, quiet; its exit status (1: no reply).
tl_ping()
{
	ns_exec "$1" ping -n -q -c "${4:-1}" -i 0.2 -W 1 -e "$3" "$2" >/dev/null 2>&1
}

##############################################################################
# Listing and count

ct_list()
{
	ns_exec "$1" cat "$ICMP_CT_PROC"
}

# ct_lines NS: number of lines of the listing.
ct_lines()
{
	local out

	out=$(ct_list "$1") || return 1
	[ -n "$out" ] || { echo 0; return 0; }
	wc -l <<<"$out"
}

# ct_count NS: ip_conntrack_count.
ct_count()
{
	sysctl_get "$1" ip_conntrack_count
}

# ct_find NS SRC DST TYPE CODE ID: print the listing line whose original tuple is this one.
ct_find()
{
	local ns=$1 re

	re="src=$2 dst=$3 type=$4 code=$5 id=$6( |\$)"
	ct_list "$ns" | grep -E -- "^icmp +1 [0-9]+ $re"
}

# ct_absent NS SRC DST TYPE CODE ID: no line for this tuple (prints it if there is one).
ct_absent()
{
	local line

	line=$(ct_find "$@") || return 0
	ktap_msg "${1}: unexpected entry: $line"
	return 1
}

# ct_check_line DESC NS SRC DST TYPE CODE ID RTYPE UNREPLIED(0/1) TMIN TMAX: one subtest: the
# listing has exactly the tutorial's line for this entry: reply tuple with addresses swapped,
# type RTYPE, same code and id, "[UNREPLIED]" as asked, and TMIN <= seconds left <= TMAX.
ct_check_line()
{
	local desc=$1 ns=$2 src=$3 dst=$4 type=$5 code=$6 id=$7 rtype=$8 unrepl=$9
	local tmin=${10} tmax=${11} line flag="" re t

	[ "$unrepl" = 1 ] && flag=" \\[UNREPLIED\\]"
	re="^icmp {5}1 ([0-9]+) src=$src dst=$dst type=$type code=$code id=$id$flag"
	re+=" src=$dst dst=$src type=$rtype code=$code id=$id use=1\$"
	line=$(ct_find "$ns" "$src" "$dst" "$type" "$code" "$id")
	if [ -z "$line" ]; then
		ktap_msg "$desc: no entry for src=$src dst=$dst type=$type code=$code id=$id; listing:" \
			"$(ct_list "$ns" 2>&1)"
		ktap_test_fail "$desc"
		return 1
	fi
	if [ "$(wc -l <<<"$line")" -ne 1 ] || ! [[ $line =~ $re ]]; then
		ktap_msg "$desc: wrong line: $line"
		ktap_test_fail "$desc"
		return 1
	fi
	t=${BASH_REMATCH[1]}
	if [ "$t" -lt "$tmin" ] || [ "$t" -gt "$tmax" ]; then
		ktap_msg "$desc: $t seconds left, expected $tmin..$tmax: $line"
		ktap_test_fail "$desc"
		return 1
	fi
	ktap_test_pass "$desc"
}

# ct_secs_left NS SRC DST TYPE CODE ID: seconds left of that entry (fails if none).
ct_secs_left()
{
	local line

	line=$(ct_find "$@") || return 1
	awk '{ print $3 }' <<<"$line"
}

##############################################################################
# Counters

# tl_marks NS: ip_ct_mark_mask=0xf in NS, and an nftables input chain (priority 0, between
# the classification and confirmation hooks) counting each state's mark in named counters
# mark_new, mark_est, mark_rel, mark_inv, mark_untr.
tl_marks()
{
	local ns=$1

	sysctl_set "$ns" ip_ct_mark_mask 15 || { ktap_msg "ip_ct_mark_mask: $SYSCTL_ERR"; return 1; }
	ns_exec "$ns" nft -f - <<-EOF
		table inet icmpct_marks {
			counter mark_new { }
			counter mark_est { }
			counter mark_rel { }
			counter mark_inv { }
			counter mark_untr { }
			chain input {
				type filter hook input priority 0; policy accept;
				meta mark and 0xf == 1 counter name mark_new
				meta mark and 0xf == 2 counter name mark_est
				meta mark and 0xf == 3 counter name mark_rel
				meta mark and 0xf == 4 counter name mark_inv
				meta mark and 0xf == 5 counter name mark_untr
			}
		}
	EOF
}

# tl_values NS: "name value" lines: the stat file, then the mark counters if NS has them
# (one process in NS: this runs often, and process start-up is slow in a TCG guest).
tl_values()
{
	# shellcheck disable=SC2016 # expanded by the inner shell / awk program
	ns_exec "$1" bash -c 'cat "$1" || exit 1; nft list table inet icmpct_marks 2>/dev/null; exit 0' \
		bash "$ICMP_CT_STAT" |
		awk '$1 == "counter" && $3 == "{" { name = $2; next }
			$1 == "packets" && name { print name, $2; name = ""; next }
			NF == 2 && $2 ~ /^[0-9]+$/ { print }'
}

# tl_snap NS...: remember every counter of each NS.
tl_snap()
{
	local ns name value

	for ns in "$@"; do
		while read -r name value; do
			TL_SNAP[$ns:$name]=$value
		done < <(tl_values "$ns")
	done
}

# tl_deltas NS: "name delta" for every counter of NS since tl_snap.
tl_deltas()
{
	local ns=$1 name value

	while read -r name value; do
		echo "$name $((value - ${TL_SNAP[$ns:$name]:-0}))"
	done < <(tl_values "$ns")
}

# tl_delta NS NAME: NAME's change since tl_snap.
tl_delta()
{
	local ns=$1 name=$2

	tl_deltas "$ns" | awk -v n="$name" '$1 == n { print $2; f = 1 } END { exit !f }'
}

# tl_expect DESC NS NAME=DELTA...: one subtest: each NAME moved by exactly DELTA since tl_snap.
tl_expect()
{
	local desc=$1 ns=$2 kv name want got bad="" all

	shift 2
	all=$(tl_deltas "$ns")
	for kv in "$@"; do
		name=${kv%%=*}
		want=${kv#*=}
		got=$(awk -v n="$name" '$1 == n { print $2; f = 1 } END { exit !f }' <<<"$all") ||
			got="(missing)"
		[ "$got" = "$want" ] || bad+="$name: expected +$want, got +$got; "
	done
	if [ -z "$bad" ]; then
		ktap_test_pass "$desc"
		return 0
	fi
	ktap_msg "$desc: $bad"
	ktap_msg "nonzero changes: $(awk '$2 != 0 { printf "%s %+d, ", $1, $2 }' <<<"$all")"
	ktap_test_fail "$desc"
	return 1
}

# tl_wait_delta NS NAME MIN [SECONDS]: wait (default 3 s) until NAME moved by at least MIN
# since tl_snap: for packets still on their way (veth delivery is asynchronous).
tl_wait_delta()
{
	local ns=$1 name=$2 min=$3 secs=${4:-3}

	tl_wait_until "$secs" _tl_delta_ge "$ns" "$name" "$min"
}

_tl_delta_ge()
{
	local d

	d=$(tl_delta "$1" "$2") || return 1
	[ "$d" -ge "$3" ]
}

##############################################################################
# Gates, time

# tl_gate NS [MATCH]: drop ICMP (or what nft MATCH selects, default "ip protocol icmp") in
# NS's input, after the mark counters (priority 10), before the confirmation hook.
tl_gate()
{
	local ns=$1 match=${2:-ip protocol icmp}

	ns_exec "$ns" nft -f - <<-EOF
		table inet icmpct_gate {
			chain input {
				type filter hook input priority 10; policy accept;
				$match drop
			}
		}
	EOF
}

# tl_ungate NS: remove the gate.
tl_ungate()
{
	ns_exec "$1" nft delete table inet icmpct_gate
}

# tl_ms: milliseconds since the epoch.
tl_ms()
{
	local t=${EPOCHREALTIME/[.,]/}

	echo $((t / 1000))
}

# tl_wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds (0) or
# SECONDS have passed (1).
tl_wait_until()
{
	local secs=$1 end

	shift
	end=$(($(tl_ms) + secs * 1000))
	while true; do
		"$@" && return 0
		[ "$(tl_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# tl_pin_hooks: keep the IPv4 netfilter hook static keys enabled while the module comes and
# goes (see nf_hooks_pin in lib.sh and icmp_ct_rmmod_flood.sh); a fallback copy if lib.sh
# has none.
tl_pin_hooks()
{
	if declare -F nf_hooks_pin >/dev/null; then
		nf_hooks_pin
		return
	fi
	ns_create KEEP || return 1
	ns_exec "$KEEP" nft -f - <<-EOF
		table ip icmp_ct_selftest_pin {
			chain pre { type filter hook prerouting priority 0; policy accept; }
			chain in { type filter hook input priority 0; policy accept; }
			chain out { type filter hook output priority 0; policy accept; }
			chain post { type filter hook postrouting priority 0; policy accept; }
		}
	EOF
}
