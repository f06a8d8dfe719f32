#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the icmp_ct selftests: every test in TEST_PROGS of ./Makefile, in order (with -D: in
# TEST_PROGS_DEBUG, the tests only the debug kernel can run), or only the ones given with -t;
# -l lists them instead; with -s K/N only every Nth of them, starting with the Kth (K from 1),
# so that N guests can share a suite.  With -q DIR, runners that share DIR (guests given one
# host directory) split the list as they go: each test runs once, in the first runner that
# takes it, so that no runner idles while another still has a queue.  KTAP on stdout: each
# test's own output nested as "# " lines, then "ok N name", "not ok N name" or
# "ok N name # SKIP reason".  Exit status 0 when no test failed (skips are fine), 1 otherwise.
#
#   run_kselftest.sh [-D] [-t TEST]... [-s K/N] [-q DIR] [-l]
#
# Environment:
#   ICMP_CT_KO   module to test (default: ../icmp_ct.ko relative to this directory)
#   RESULTS_DIR  if set: write RESULTS_DIR/summary ("passed P failed F skipped S") and
#                RESULTS_DIR/<test>.log with each test's output
#   TIMEOUT      per-test timeout in seconds (default: timeout= from ./settings, else 300)

set -u

BASE_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
# A relative ICMP_CT_KO is relative to the caller's directory, not to ours.
if [ -n "${ICMP_CT_KO:-}" ]; then
	ICMP_CT_KO=$(readlink -m "$ICMP_CT_KO")
	export ICMP_CT_KO
fi
cd "$BASE_DIR" || exit 1

usage()
{
	echo "usage: $0 [-D] [-t TEST]... [-s K/N] [-q DIR] [-l]" >&2
	exit 2
}

# test_progs VARIABLE: a list of the Makefile (assignment plus backslash continuation lines).
test_progs()
{
	awk -v var="$1" '
		$0 ~ "^" var "[ \t]*[:+]?=" { on = 1; sub(/^[^=]*=/, "") }
		on {
			cont = sub(/\\[ \t]*$/, "")
			n = split($0, w, /[ \t]+/)
			for (i = 1; i <= n; i++) if (w[i] != "") print w[i]
			if (!cont) on = 0
		}
	' Makefile
}

tests=()
list=TEST_PROGS
shard=1/1
queue=
list_only=0
while getopts "Dt:s:q:lh" opt; do
	case "$opt" in
	D) list=TEST_PROGS_DEBUG ;;
	t) tests+=("$OPTARG") ;;
	s) shard=$OPTARG ;;
	q) queue=$OPTARG ;;
	l) list_only=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
if [ ${#tests[@]} -eq 0 ]; then
	mapfile -t tests < <(test_progs "$list")
fi
if [ "$list_only" = 1 ]; then
	[ ${#tests[@]} -eq 0 ] || printf '%s\n' "${tests[@]}"
	exit 0
fi
[[ $shard =~ ^([0-9]+)/([0-9]+)$ ]] || usage
shard_k=${BASH_REMATCH[1]}
shard_n=${BASH_REMATCH[2]}
{ [ "$shard_k" -ge 1 ] && [ "$shard_k" -le "$shard_n" ]; } || usage
picked=()
for i in "${!tests[@]}"; do
	[ $((i % shard_n + 1)) = "$shard_k" ] && picked+=("${tests[$i]}")
done
tests=("${picked[@]}")
if [ -n "$queue" ]; then
	if [ ! -d "$queue" ] || [ ! -w "$queue" ]; then
		echo "$0: -q $queue: not a writable directory" >&2
		exit 2
	fi
fi

# take TEST: whether this runner runs TEST: always without -q; with -q, if it is the first to
# create QUEUE/TEST (mkdir is atomic, also through each guest's 9p mount of the same host
# directory).  The directory records which runner took it.
take()
{
	[ -z "$queue" ] && return 0
	mkdir "$queue/$1" 2>/dev/null || return 1
	hostname >"$queue/$1/runner"
}

timeout=${TIMEOUT:-}
if [ -z "$timeout" ] && [ -r settings ]; then
	timeout=$(sed -n 's/^timeout=\([0-9][0-9]*\)$/\1/p' settings)
fi
timeout=${timeout:-300}

results=${RESULTS_DIR:-}
[ -z "$results" ] || mkdir -p "$results" || exit 1

pass=0
fail=0
skip=0
num=0

# Busy CPU time of the whole system so far, in clock ticks (USER_HZ): /proc/stat's first
# line without idle and iowait.  Under TCG an idle guest leaves its host core idle too, so
# this tells how much of a test's time a parallel guest could use.
busy_ticks()
{
	local _cpu user nice system _idle _iowait irq softirq steal
	read -r _cpu user nice system _idle _iowait irq softirq steal _ </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)

echo "TAP version 13"
# With -q the plan is only known at the end (KTAP allows it there).
[ -n "$queue" ] || echo "1..${#tests[@]}"
for t in "${tests[@]}"; do
	take "$t" || continue
	num=$((num + 1))
	name="selftests: icmp_ct: $t"
	echo "# $name"
	if [ ! -x "./$t" ]; then
		echo "# Warning: $t is missing or not executable"
		echo "not ok $num $name"
		fail=$((fail + 1))
		continue
	fi
	log=$(mktemp)
	start=$(date +%s)
	busy_start=$(busy_ticks)
	# Own process group (timeout does that), killed as a whole on timeout; output nested.
	timeout -k 10 "$timeout" "./$t" </dev/null 2>&1 | tee "$log" | sed -u 's/^/# /'
	rc=${PIPESTATUS[0]}
	echo "# $t: exit $rc after $(($(date +%s) - start)) s, CPU busy $((($(busy_ticks) - busy_start) / hz)) s"
	[ -z "$results" ] || cp "$log" "$results/$t.log"
	case $rc in
	0)
		echo "ok $num $name"
		pass=$((pass + 1))
		;;
	4)
		# The reason: from the test's "1..0 # SKIP reason" (or last "# SKIP reason") line.
		reason=$(sed -n 's/^.*# SKIP \{0,1\}//p' "$log" | tail -n 1)
		echo "ok $num $name # SKIP ${reason:-skipped}"
		skip=$((skip + 1))
		;;
	124)
		echo "not ok $num $name # TIMEOUT $timeout seconds"
		fail=$((fail + 1))
		;;
	*)
		echo "not ok $num $name # exit=$rc"
		fail=$((fail + 1))
		;;
	esac
	rm -f "$log"
done

[ -z "$queue" ] || echo "1..$num"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ -z "$results" ] || echo "passed $pass failed $fail skipped $skip" >"$results/summary"
[ "$fail" -eq 0 ]
