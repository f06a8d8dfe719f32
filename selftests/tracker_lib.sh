#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the icmp_ct tracking selftests (icmp_ct_queries.sh, icmp_ct_timeouts.sh,
# icmp_ct_invalid.sh, icmp_ct_table.sh); sourced after lib.sh, never run.
#
# - tl_pair: two namespaces joined by a veth pair, IPv6 off, static neighbours, and raw-socket
#   ping (so that "ping -e ID" really sends id ID);
# - an agent per namespace (craft.py --serve, started by tl_agent): sends hand-made ICMP
#   packets and reads procfs files of its namespace without starting a process each time.
#   In a TCG guest on a loaded host, starting python3 (or any binary from the host's file
#   system) takes seconds, which would blur every timing the tests check;
# - the listing (/proc/net/ip_conntrack) and ip_conntrack_count;
# - counter snapshots and deltas: every line of /proc/net/stat/icmp_ct, plus the per-state
#   mark counters of an nftables input chain (tl_marks) as a second witness;
# - a "gate": an nftables input rule in the receiving namespace that drops ICMP after the
#   classification hook (-99) and before the confirmation hook (99);
# - polling an entry with timestamps (tl_watch) and judging the samples against the
#   deadlines the module must keep (tl_judge_listed, tl_judge_gone_after).

# Variables set here are read by the tests that source this file.
# shellcheck disable=SC2034

PYTHON=${PYTHON:-/usr/bin/python3}
CRAFT=$SELFTESTS_DIR/craft.py
TL_TMP=""

# Counter snapshots: TL_SNAP[ns:name] = value.
declare -A TL_SNAP
# Agents: write fd, read fd and pid per namespace; namespaces with mark counters.
declare -A TL_AGENT_W TL_AGENT_R TL_AGENT_PID TL_MARKS
# Last agent reply (without "ok "/"fail ").
TL_REPLY=""
# Samples of tl_watch: "start_ms end_ms listed count".
TL_SAMPLES=()

# tl_require: the tools every tracking test needs, a python3 that runs craft.py, a scratch
# directory.
tl_require()
{
	require_module
	require_cmd ip ping nft sysctl awk mkfifo
	[ -x "$PYTHON" ] || ktap_skip_all "$PYTHON not found (needed by craft.py)"
	"$PYTHON" -c 'import socket, struct, argparse' 2>/dev/null ||
		ktap_skip_all "$PYTHON cannot run craft.py"
	TL_TMP=$(mktemp -d) || ktap_skip_all "mktemp -d failed"
}

tl_cleanup()
{
	local ns

	for ns in "${!TL_AGENT_PID[@]}"; do
		kill "${TL_AGENT_PID[$ns]}" 2>/dev/null
	done
	[ -n "$TL_TMP" ] && rm -rf "$TL_TMP"
}

# Tests that need more define their own test_cleanup and call tl_cleanup from it.
test_cleanup()
{
	tl_cleanup
}

# tl_pair NS1 ADDR1 NS2 ADDR2 (ADDR without /24): namespaces in NS1 and NS2 (variable names),
# IPv6 off, veth0 in each, addressed in one /24, up, with permanent neighbour entries (no ARP
# during the tests), and net.ipv4.ping_group_range "1 0" so that ping uses a raw socket (whose
# ICMP id is -e's, not a port the kernel picks).  An agent in each.
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
	tl_agent "$n1" && tl_agent "$n2"
}

# tl_pair6 NS1 ADDR1 NS2 ADDR2 (IPv6 addresses, without /64): like tl_pair, but IPv6 only:
# IPv6 on, no DAD, router solicitations off, static neighbours (no neighbour discovery
# during the tests), no IPv4 address.  ICMPv6 of the kernel's own (MLD reports after the
# link comes up) is over by the time tl_pair6 returns.
tl_pair6()
{
	local v1=$1 a1=$2 v2=$3 a2=$4 n1 n2 m1 m2 ns

	ns_create "$v1" "$v2" || return 1
	n1=${!v1}
	n2=${!v2}
	for ns in "$n1" "$n2"; do
		ns_exec "$ns" sysctl -q -w net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.default.router_solicitations=0 \
			net.ipv6.conf.default.mldv2_unsolicited_report_interval=0 \
			net.ipv6.conf.default.mldv1_unsolicited_report_interval=0 \
			net.ipv4.ping_group_range="1 0" >/dev/null || return 1
	done
	ip link add veth0 netns "$n1" type veth peer name veth0 netns "$n2" || return 1
	ip -n "$n1" addr add "$a1/64" dev veth0 nodad || return 1
	ip -n "$n2" addr add "$a2/64" dev veth0 nodad || return 1
	m1=$(ip -n "$n1" -br link show veth0 | awk '{ print $3 }')
	m2=$(ip -n "$n2" -br link show veth0 | awk '{ print $3 }')
	ip -n "$n1" -6 neigh replace "$a2" lladdr "$m2" dev veth0 nud permanent || return 1
	ip -n "$n2" -6 neigh replace "$a1" lladdr "$m1" dev veth0 nud permanent || return 1
	ip -n "$n1" link set veth0 up || return 1
	ip -n "$n2" link set veth0 up || return 1
	tl_agent "$n1" && tl_agent "$n2" || return 1
	# Link-local addresses come up with the link (no DAD); any report they send is done
	# within a second.
	sleep 1
}

##############################################################################
# Agents

# tl_agent NS: start craft.py --serve in NS, connected through two FIFOs.
tl_agent()
{
	local ns=$1 in=$TL_TMP/agent.$1.in out=$TL_TMP/agent.$1.out w r

	mkfifo "$in" "$out" || return 1
	ns_exec "$ns" "$PYTHON" "$CRAFT" --serve <"$in" >"$out" 2>"$TL_TMP/agent.$ns.err" &
	TL_AGENT_PID[$ns]=$!
	exec {w}>"$in"
	exec {r}<"$out"
	TL_AGENT_W[$ns]=$w
	TL_AGENT_R[$ns]=$r
	_tl_ask "$ns" hello && return 0
	echo "# agent in $ns does not answer: $(cat "$TL_TMP/agent.$ns.err")"
	return 1
}

# _tl_ask NS WORDS...: one agent command; the reply in TL_REPLY; 0 if it was "ok", 1 if not,
# 2 if NS has no (live) agent.
_tl_ask()
{
	local ns=$1 line

	shift
	[ -n "${TL_AGENT_PID[$ns]:-}" ] && kill -0 "${TL_AGENT_PID[$ns]}" 2>/dev/null || return 2
	printf '%s\n' "$*" >&"${TL_AGENT_W[$ns]}" || return 2
	if ! IFS= read -r -t 300 -u "${TL_AGENT_R[$ns]}" line; then
		TL_REPLY="no answer from the agent in $ns"
		return 2
	fi
	case $line in
	"ok "*) TL_REPLY=${line#ok } ;;
	ok) TL_REPLY="" ;;
	*)
		TL_REPLY=${line#fail }
		return 1
		;;
	esac
}

# tl_get NS PATH: print a (small) file of NS.
tl_get()
{
	local rc

	_tl_ask "$1" get "$2"
	rc=$?
	if [ $rc = 2 ]; then
		ns_exec "$1" cat "$2"
		return
	fi
	[ $rc = 0 ] || { echo "# ${1:-init}: $2: $TL_REPLY" >&2; return 1; }
	printf '%s\n' "${TL_REPLY//|/$'\n'}"
}

# tl_run NS PROGRAM ARGS...: run a program (arguments without blanks) in NS, through its
# agent if it has one (no "ip netns exec" process); its output on stdout, its exit status.
tl_run()
{
	local ns=$1 rc out

	shift
	_tl_ask "$ns" run "$@"
	rc=$?
	[ $rc = 2 ] && { ns_exec "$ns" "$@"; return; }
	[ $rc = 0 ] || { echo "# ${ns}: $*: $TL_REPLY" >&2; return 1; }
	rc=${TL_REPLY%% *}
	out=${TL_REPLY#"$rc"}
	out=${out# }
	[ -z "$out" ] || printf '%s\n' "${out//|/$'\n'}"
	return "$rc"
}

# craft NS craft.py-args...: send hand-made packets from NS (through its agent if it has
# one); 1 if a send failed (the reason on stderr).
craft()
{
	local ns=$1 rc

	shift
	_tl_ask "$ns" send "$@"
	rc=$?
	case $rc in
	0) return 0 ;;
	1)
		echo "sent/failed/error: $TL_REPLY" >&2
		return 1
		;;
	esac
	craft_spawn "$ns" "$@"
}

# craft_spawn NS craft.py-args...: the same in a python3 process of its own (floods that
# must run in parallel).
craft_spawn()
{
	local ns=$1

	shift
	ns_exec "$ns" "$PYTHON" "$CRAFT" "$@"
}

# tl_ping NS DST ID [COUNT]: ping with ICMP id ID, quiet; its exit status (1: no reply).
tl_ping()
{
	tl_run "$1" ping -n -q -c "${4:-1}" -i 0.2 -W 1 -e "$3" "$2" >/dev/null 2>&1
}

# tl_sysctl_set NS NAME VALUE: write /proc/sys/net/ipv4/netfilter/NAME in NS (through the
# agent if NS has one); the error in SYSCTL_ERR.
tl_sysctl_set()
{
	local rc

	_tl_ask "$1" put "$ICMP_CT_SYSCTL_DIR/$2" "$3"
	rc=$?
	[ $rc = 2 ] && { sysctl_set "$@"; return; }
	SYSCTL_ERR=$TL_REPLY
	return $rc
}

##############################################################################
# Listing and count

ct_list()
{
	local ns=$1 f=$TL_TMP/list.$1 rc content

	_tl_ask "$ns" cat "$ICMP_CT_PROC" "$f"
	rc=$?
	if [ $rc = 2 ]; then
		ns_exec "$ns" cat "$ICMP_CT_PROC"
		return
	fi
	[ $rc = 0 ] || { echo "# ${ns:-init}: $ICMP_CT_PROC: $TL_REPLY" >&2; return 1; }
	content=$(<"$f")
	[ -z "$content" ] || printf '%s\n' "$content"
}

# ct_lines NS: number of lines of the listing.
ct_lines()
{
	local out

	out=$(ct_list "$1") || return 1
	[ -n "$out" ] || { echo 0; return 0; }
	wc -l <<<"$out"
}

# ct_distinct: the distinct entries of a listing on stdin. A read of the listing may show
# an entry twice (the table resized during it: contract.rst); the seconds left (field 3)
# may change between the two lines, the rest does not while nothing answers the entry.
ct_distinct()
{
	awk '{ $3 = "" } 1' | sort -u | grep -c .
}

# ct_distinct_lines NS: number of distinct entries listed, for a table that is changing.
ct_distinct_lines()
{
	local out

	out=$(ct_list "$1") || return 1
	ct_distinct <<<"$out"
}

# ct_count NS: ip_conntrack_count.
ct_count()
{
	tl_get "$1" "$ICMP_CT_SYSCTL_DIR/ip_conntrack_count"
}

# ct_icmp_proto ADDR: the listing's protocol column for an ICMP entry of ADDR's family.
ct_icmp_proto()
{
	case $1 in
	*:*) echo "icmpv6   58" ;;
	*) echo "icmp     1" ;;
	esac
}

# ct_find NS SRC DST TYPE CODE ID: print the listing lines whose original tuple is this one
# (ICMP or ICMPv6, from SRC's family); 1 if there is none.
ct_find()
{
	local ns=$1 re list line found=1

	re="^$(ct_icmp_proto "$2") [0-9]+ src=$2 dst=$3 type=$4 code=$5 id=$6( |\$)"
	list=$(ct_list "$ns") || return 2
	while IFS= read -r line; do
		if [[ $line =~ $re ]]; then
			printf '%s\n' "$line"
			found=0
		fi
	done <<<"$list"
	return $found
}

# ct_absent NS SRC DST TYPE CODE ID: no line for this tuple (prints it if there is one).
ct_absent()
{
	local line

	line=$(ct_find "$@") || return 0
	ktap_msg "${1:-init}: unexpected entry: $line"
	return 1
}

# ct_check_line DESC NS SRC DST TYPE CODE ID RTYPE UNREPLIED(0/1) TMIN TMAX: one subtest: the
# listing has exactly the tutorial's line for this entry: reply tuple with addresses swapped,
# type RTYPE, same code and id, "[UNREPLIED]" as asked (otherwise the round trip, "rtt="),
# and TMIN <= seconds left <= TMAX.
ct_check_line()
{
	local desc=$1 ns=$2 src=$3 dst=$4 type=$5 code=$6 id=$7 rtype=$8 unrepl=$9
	local tmin=${10} tmax=${11} line flag="" rtt=" rtt=[0-9]+" re t

	[ "$unrepl" = 1 ] && flag=" \\[UNREPLIED\\]" && rtt=""
	re="^$(ct_icmp_proto "$src") ([0-9]+) src=$src dst=$dst type=$type code=$code id=$id$flag"
	re+=" src=$dst dst=$src type=$rtype code=$code id=$id$rtt use=1\$"
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
	read -r _ _ line _ <<<"$line"
	echo "$line"
}

# tl_tmin TIMEOUT SINCE_MS: the fewest seconds an entry created (or refreshed) after SINCE_MS
# with TIMEOUT may show now: TIMEOUT minus the whole seconds elapsed since, minus 1 for the
# rounding of both clocks; at least 0.
tl_tmin()
{
	local t=$(($1 - ($(tl_ms) - $2 + 999) / 1000 - 1))

	echo $((t < 0 ? 0 : t))
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
	ns_exec "$ns" nft -f - <<-EOF || return 1
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
	TL_MARKS[$ns]=1
}

# tl_values NS [stats]: "name value" lines: the stat file, then (unless "stats") the mark
# counters if NS has them.
tl_values()
{
	local ns=$1

	tl_get "$ns" "$ICMP_CT_STAT" || return 1
	[ "${2:-}" != stats ] && [ -n "${TL_MARKS[$ns]:-}" ] || return 0
	# shellcheck disable=SC2016 # awk program
	tl_run "$ns" nft list table inet icmpct_marks 2>/dev/null |
		awk '$1 == "counter" && $3 == "{" { name = $2; next }
			$1 == "packets" && name { print name, $2; name = "" }'
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

# tl_deltas NS [stats]: "name delta" for every counter of NS since tl_snap.
tl_deltas()
{
	local ns=$1 name value

	while read -r name value; do
		echo "$name $((value - ${TL_SNAP[$ns:$name]:-0}))"
	done < <(tl_values "$ns" "${2:-}")
}

# tl_delta NS NAME: NAME's change since tl_snap.
tl_delta()
{
	local ns=$1 name=$2 which="" n d

	[[ $name == mark_* ]] || which=stats
	while read -r n d; do
		[ "$n" = "$name" ] && { echo "$d"; return 0; }
	done < <(tl_deltas "$ns" $which)
	return 1
}

# tl_expect DESC NS NAME=DELTA...: one subtest: each NAME moved by exactly DELTA since tl_snap.
tl_expect()
{
	local desc=$1 ns=$2 kv name want got bad="" all which=stats

	shift 2
	# The mark counters cost an nft process: read them only when asked for.
	[[ " $* " == *" mark_"* ]] && which=""
	all=$(tl_deltas "$ns" $which)
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

# tl_wait_delta NS NAME MIN [SECONDS]: wait (default 5 s) until NAME moved by at least MIN
# since tl_snap: for packets still on their way (veth delivery is asynchronous).
tl_wait_delta()
{
	local ns=$1 name=$2 min=$3 secs=${4:-5}

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
	local ns=$1 match=${2:-ip protocol icmp} f=$TL_TMP/gate.nft

	printf '%s\n' "table inet icmpct_gate {" "chain input {" \
		"type filter hook input priority 10; policy accept;" "$match drop" "}" "}" >"$f"
	tl_run "$ns" nft -f "$f"
}

# tl_ungate NS: remove the gate.
tl_ungate()
{
	tl_run "$1" nft delete table inet icmpct_gate
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

# tl_sleep_until MS: sleep until the clock reads MS (milliseconds since the epoch).
tl_sleep_until()
{
	local left=$(($1 - $(tl_ms)))

	[ "$left" -le 0 ] || sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))"
}

##############################################################################
# Watching an entry expire

# tl_watch NS SECONDS SRC DST TYPE CODE ID: sample the entry (listed?) and ip_conntrack_count
# about every 0.1 s, each sample with the times it started and ended, into TL_SAMPLES, until
# 3 samples in a row found it gone, the last of them after garbage collection had time to
# take it off the count (twice TL_COLLECT_MS later), or SECONDS have passed.
tl_watch()
{
	local ns=$1 secs=$2 end s e listed c gone=0 gone_since=0

	shift 2
	TL_SAMPLES=()
	end=$(($(tl_ms) + secs * 1000))
	while true; do
		s=$(tl_ms)
		if ct_find "$ns" "$@" >/dev/null; then
			listed=1
			gone=0
		else
			listed=0
			[ "$gone" -gt 0 ] || gone_since=$s
			gone=$((gone + 1))
		fi
		c=$(ct_count "$ns")
		e=$(tl_ms)
		TL_SAMPLES+=("$s $e $listed $c")
		[ "$gone" -ge 3 ] && [ "$s" -gt $((gone_since + 2 * TL_COLLECT_MS)) ] && break
		[ "$e" -lt "$end" ] || break
		sleep 0.1
	done
}

# tl_judge_listed DESC FROM_MS UNTIL_MS COUNT: subtest: every sample that started after
# FROM_MS and ended before UNTIL_MS (a span in which the entry must live) found it listed and
# ip_conntrack_count COUNT ("-": any); there must be at least one such sample.
tl_judge_listed()
{
	local desc=$1 from=$2 until=$3 count=$4 smp s e l c n=0 bad=""

	for smp in "${TL_SAMPLES[@]}"; do
		read -r s e l c <<<"$smp"
		{ [ "$s" -gt "$from" ] && [ "$e" -lt "$until" ]; } || continue
		n=$((n + 1))
		[ "$l" = 1 ] && { [ "$count" = - ] || [ "$c" = "$count" ]; } ||
			bad+="$((until - e)) ms before the deadline: listed=$l count=$c; "
	done
	if [ "$n" -gt 0 ] && [ -z "$bad" ]; then
		ktap_test_pass "$desc"
		return 0
	fi
	[ "$n" -gt 0 ] || bad="no sample in the span (machine too slow?)"
	ktap_msg "$desc: $bad" "samples (start end listed count): ${TL_SAMPLES[*]}"
	ktap_test_fail "$desc"
	return 1
}

# An expired entry leaves the listing at once and ip_conntrack_count when garbage collection
# takes it: four times a second for a small table (TL_COLLECT_MS allows for a slow guest).
TL_COLLECT_MS=$((1000 * ICMP_CT_TIME_SCALE))

# tl_judge_gone_after DESC AFTER_MS COUNT [WITHIN_MS]: subtest: every sample that started
# after AFTER_MS (the latest the entry may expire) found it not listed, and every one that
# started TL_COLLECT_MS after that found ip_conntrack_count COUNT ("-": any); there must be
# one, and with WITHIN_MS the first of them must have started no later than
# AFTER_MS + WITHIN_MS.
tl_judge_gone_after()
{
	local desc=$1 after=$2 count=$3 within=${4:-} smp s e l c n=0 first="" bad=""

	for smp in "${TL_SAMPLES[@]}"; do
		read -r s e l c <<<"$smp"
		[ "$s" -gt "$after" ] || continue
		n=$((n + 1))
		[ -n "$first" ] || first=$s
		[ "$l" = 0 ] && { [ "$count" = - ] || [ "$s" -le $((after + TL_COLLECT_MS)) ] ||
			[ "$c" = "$count" ]; } ||
			bad+="at +$((s - after)) ms: listed=$l count=$c; "
	done
	[ "$n" -gt 0 ] || bad="no sample after the deadline"
	if [ -z "$bad" ] && [ -n "$within" ] && [ $((first - after)) -gt "$within" ]; then
		bad="first sample only $((first - after)) ms after the deadline"
	fi
	if [ -z "$bad" ]; then
		ktap_test_pass "$desc"
		return 0
	fi
	ktap_msg "$desc: $bad" "samples (start end listed count): ${TL_SAMPLES[*]}"
	ktap_test_fail "$desc"
	return 1
}

# tl_pin_hooks: keep the IPv4 netfilter hook static keys enabled while the module comes and
# goes (see nf_hooks_pin in lib.sh and icmp_ct_rmmod_flood.sh).
tl_pin_hooks()
{
	nf_hooks_pin
}
