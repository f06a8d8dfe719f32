#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers for the icmp_ct selftests (sourced, never run).
#
# - network namespaces with unique names, removed by an EXIT trap;
# - veth pairs with IPv4 addresses;
# - readers for /proc/net/stat/icmp_ct and the module's sysctls;
# - KTAP output with pass/fail/skip counting (exit 0 pass, 1 fail, 4 skip);
# - loading/unloading icmp_ct.ko (path from $ICMP_CT_KO, default ../icmp_ct.ko relative to
#   this directory) and remembering whether this test loaded it;
# - a kernel log check for BUG/WARNING lines that appeared during the test.

# Variables set here are read by the tests that source this file.
# shellcheck disable=SC2034

# Kselftest exit codes.
ksft_pass=0
ksft_fail=1
ksft_skip=4

SELFTESTS_DIR=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")
ICMP_CT_KO=$(readlink -m "${ICMP_CT_KO:-$SELFTESTS_DIR/../icmp_ct.ko}")
ICMP_CT_STAT=/proc/net/stat/icmp_ct
ICMP_CT_PROC=/proc/net/ip_conntrack
ICMP_CT_TYPES=/proc/net/stat/icmp_ct_types
# How much slower than the test kernel under TCG the guest runs (an integer): the debug
# kernel (KASAN, lockdep) sets 5.  Tests stretch their short timeouts by it, never their
# expectations.
ICMP_CT_TIME_SCALE=${ICMP_CT_TIME_SCALE:-1}
ICMP_CT_SYSCTL_DIR=/proc/sys/net/ipv4/netfilter
# Kernel log lines that fail a test (same list scripts/vm-run.sh uses for the whole run).
KMSG_BAD_RE='BUG|WARNING|Oops|RCU stall|rcu_sched detected stall|KASAN|leak|general protection|Call Trace'

# Names of every stat line, in file order.
ICMP_CT_STAT_NAMES=(entries found new established related invalid untracked insert
	insert_failed drop early_drop expired destroyed_on_reply destroyed_on_error
	dropped_invalid dropped_fragment
	hook_pre_routing hook_local_in hook_local_out hook_post_routing)
ICMP_CT_HOOKS=(hook_pre_routing hook_local_in hook_local_out hook_post_routing)

NS_LIST=()
ICMP_CT_LOADED_BY_US=0
# Set by module_load/module_unload: the command's stderr.
MODULE_ERR=""
# Set by sysctl_set: the write's error message.
SYSCTL_ERR=""

##############################################################################
# KTAP

KTAP_TESTNO=0
KTAP_PLAN=0
KTAP_CNT_PASS=0
KTAP_CNT_FAIL=0
KTAP_CNT_SKIP=0

KTAP_HEADER_DONE=0

ktap_header()
{
	[ "$KTAP_HEADER_DONE" = 1 ] || echo "TAP version 13"
	KTAP_HEADER_DONE=1
}

ktap_plan()
{
	KTAP_PLAN=$1
	echo "1..$KTAP_PLAN"
}

ktap_msg()
{
	local line

	# Multi-line messages: one "# " per line, so the KTAP stays parseable.
	while IFS= read -r line; do
		echo "# $line"
	done <<<"$*"
}

ktap_test_pass()
{
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_PASS=$((KTAP_CNT_PASS + 1))
	echo "ok $KTAP_TESTNO $1"
}

ktap_test_fail()
{
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_FAIL=$((KTAP_CNT_FAIL + 1))
	echo "not ok $KTAP_TESTNO $1"
}

# ktap_test_skip "desc" ["reason"]
ktap_test_skip()
{
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
	KTAP_CNT_SKIP=$((KTAP_CNT_SKIP + 1))
	echo "ok $KTAP_TESTNO $1 # SKIP${2:+ $2}"
}

# ktap_check "desc" COMMAND...: pass if COMMAND succeeds.
ktap_check()
{
	local desc=$1

	shift
	if "$@"; then
		ktap_test_pass "$desc"
		return 0
	fi
	ktap_test_fail "$desc"
	return 1
}

# ktap_expect_eq "desc" EXPECTED ACTUAL
ktap_expect_eq()
{
	if [ "$2" = "$3" ]; then
		ktap_test_pass "$1"
		return 0
	fi
	ktap_msg "$1: expected '$2', got '$3'"
	ktap_test_fail "$1"
	return 1
}

ktap_print_totals()
{
	echo "# Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL xfail:0 xpass:0 skip:$KTAP_CNT_SKIP error:0"
}

# Whole test skipped before any subtest ran.
ktap_skip_all()
{
	ktap_header
	echo "1..0 # SKIP $*"
	exit $ksft_skip
}

# Fatal error: report it, count the subtests that never ran as failures, exit 1.
ktap_bail_out()
{
	echo "Bail out! $*"
	KTAP_CNT_FAIL=$((KTAP_CNT_FAIL + KTAP_PLAN - KTAP_TESTNO))
	ktap_print_totals
	exit $ksft_fail
}

# Exit 0 if every planned subtest ran and none failed; 4 if all of them skipped; 1 otherwise.
ktap_finished()
{
	ktap_print_totals
	if [ "$KTAP_TESTNO" -ne "$KTAP_PLAN" ]; then
		echo "# planned $KTAP_PLAN subtests, ran $KTAP_TESTNO"
		exit $ksft_fail
	fi
	[ "$KTAP_CNT_FAIL" -eq 0 ] || exit $ksft_fail
	if [ "$KTAP_PLAN" -gt 0 ] && [ "$KTAP_CNT_SKIP" -eq "$KTAP_PLAN" ]; then
		exit $ksft_skip
	fi
	exit $ksft_pass
}

##############################################################################
# Requirements (whole-test skips)

require_root()
{
	[ "$(id -u)" -eq 0 ] || ktap_skip_all "must be run as root"
}

require_cmd()
{
	local cmd

	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 || ktap_skip_all "command '$cmd' not found"
	done
}

# The module file must exist and the kernel must take modules.
require_module()
{
	require_root
	require_cmd insmod rmmod
	[ -f "$ICMP_CT_KO" ] || ktap_skip_all "module not built: $ICMP_CT_KO not found (set ICMP_CT_KO)"
	[ -e /proc/modules ] || ktap_skip_all "kernel without module support"
}

##############################################################################
# Namespaces

# ns_create VAR...: create one namespace per VAR, named "<var>-<random>", store the name in
# VAR and bring its loopback up.  Removed again by cleanup (EXIT trap).
ns_create()
{
	local var name

	for var in "$@"; do
		name="icmpct-${var,,}-$(mktemp -u XXXXXXXX)"
		if ! ip netns add "$name"; then
			echo "# cannot create network namespace $name" >&2
			return 1
		fi
		NS_LIST+=("$name")
		printf -v "$var" '%s' "$name"
		ip -n "$name" link set lo up || return 1
	done
}

# ns_delete NAME: delete one namespace now (its processes are killed first).
ns_delete()
{
	local ns=$1 i

	ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns delete "$ns" 2>/dev/null || return 1
	for i in "${!NS_LIST[@]}"; do
		[ "${NS_LIST[$i]}" = "$ns" ] && unset "NS_LIST[$i]"
	done
	NS_LIST=("${NS_LIST[@]}")
	return 0
}

# ns_exec NS COMMAND...: run in NS; NS "-" or "" is the initial namespace.
ns_exec()
{
	local ns=$1

	shift
	if [ -z "$ns" ] || [ "$ns" = - ]; then
		"$@"
	else
		ip netns exec "$ns" "$@"
	fi
}

# ns_anchor NS VAR: start a sleeping process in NS and store its PID in VAR.  Its
# /proc/PID/net shows NS's /proc/net, readable from here without starting a process per
# read (expensive under TCG).  Killed with the namespace.
ns_anchor()
{
	ip netns exec "$1" sleep 86400 </dev/null >/dev/null 2>&1 &
	printf -v "$2" '%s' "$!"
	# Wait until the child has entered the namespace.
	local i
	for i in $(seq 50); do
		[ "$(readlink "/proc/${!2}/ns/net")" = "$(ip netns exec "$1" readlink /proc/self/ns/net)" ] &&
			return 0
		sleep 0.1
	done
	return 1
}

# ns_ipv6_off NS: no IPv6 at all in NS (current and future devices).
ns_ipv6_off()
{
	ns_exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1 >/dev/null
}

# veth_pair NS1 IF1 ADDR1/LEN NS2 IF2 ADDR2/LEN: veth between two namespaces, addressed and up.
veth_pair()
{
	local ns1=$1 if1=$2 addr1=$3 ns2=$4 if2=$5 addr2=$6

	ip link add "$if1" netns "$ns1" type veth peer name "$if2" netns "$ns2" || return 1
	ip -n "$ns1" addr add "$addr1" dev "$if1" || return 1
	ip -n "$ns2" addr add "$addr2" dev "$if2" || return 1
	ip -n "$ns1" link set "$if1" up || return 1
	ip -n "$ns2" link set "$if2" up || return 1
}

# nf_hooks_pin: keep the static keys of the IPv4 and IPv6 netfilter hooks enabled, with an
# nftables table in a namespace of its own (KEEP), so that registering or removing hooks
# patches no kernel code.  See icmp_ct_rmmod_flood.sh.
nf_hooks_pin()
{
	command -v nft >/dev/null || return 1
	ns_create KEEP || return 1
	ns_exec "$KEEP" nft -f - <<-EOF
		table inet icmp_ct_selftest_pin {
			chain pre { type filter hook prerouting priority 0; policy accept; }
			chain in { type filter hook input priority 0; policy accept; }
			chain out { type filter hook output priority 0; policy accept; }
			chain post { type filter hook postrouting priority 0; policy accept; }
		}
	EOF
}

##############################################################################
# Module

# mod_probe MODULE...: load kernel modules; MODPROBE_ERR holds the error.
mod_probe()
{
	MODPROBE_ERR=$(modprobe -a "$@" 2>&1)
}

module_is_loaded()
{
	[ -d /sys/module/icmp_ct ]
}

# module_load: insmod $ICMP_CT_KO; stderr in MODULE_ERR.
module_load()
{
	if MODULE_ERR=$(insmod "$ICMP_CT_KO" 2>&1); then
		ICMP_CT_LOADED_BY_US=1
		return 0
	fi
	return 1
}

# module_unload: rmmod icmp_ct; stderr in MODULE_ERR.
module_unload()
{
	if MODULE_ERR=$(rmmod icmp_ct 2>&1); then
		ICMP_CT_LOADED_BY_US=0
		return 0
	fi
	return 1
}

# files_check present|absent FILE...: 0 if every FILE exists (present) / none does (absent).
files_check()
{
	local want=$1 f

	shift
	for f in "$@"; do
		if [ "$want" = present ] && [ ! -e "$f" ]; then
			echo "# $f missing"
			return 1
		elif [ "$want" = absent ] && [ -e "$f" ]; then
			echo "# $f still exists"
			return 1
		fi
	done
}

# module_files NS present|absent: the module's files and sysctl in NS (one process per
# namespace: under TCG every process start costs).
module_files()
{
	local ns=$1 want=$2 files=("$ICMP_CT_STAT" "$ICMP_CT_PROC" "$ICMP_CT_SYSCTL_DIR/ip_ct_icmp_timeout")

	if [ -z "$ns" ] || [ "$ns" = - ]; then
		files_check "$want" "${files[@]}" || { echo "# (initial namespace)"; return 1; }
		return 0
	fi
	# shellcheck disable=SC2016 # expanded by the inner shell
	ns_exec "$ns" bash -c "$(declare -f files_check)"'; files_check "$@"' bash "$want" "${files[@]}" ||
		{ echo "# (namespace $ns)"; return 1; }
}

# module_restore: load the module again for whoever had loaded it before the test (so the
# EXIT trap leaves it loaded).
module_restore()
{
	module_is_loaded && return 0
	insmod "$ICMP_CT_KO" && ICMP_CT_LOADED_BY_US=0
}

# module_files_present NS: 0 if every file and the sysctl of the module exist in NS.
module_files_present()
{
	module_files "$1" present
}

# module_files_absent NS: 0 if none of them exists in NS.
module_files_absent()
{
	module_files "$1" absent
}

##############################################################################
# Counters and sysctls

# stat_get NS NAME: print the value of NAME in NS's /proc/net/stat/icmp_ct (1 if absent).
stat_get()
{
	local ns=$1 name=$2 out

	# shellcheck disable=SC2016 # awk program
	out=$(ns_exec "$ns" awk -v n="$name" '$1 == n { print $2; f = 1 } END { exit !f }' \
		"$ICMP_CT_STAT" 2>/dev/null) || { echo "# ${ns:-init}: no '$name' in $ICMP_CT_STAT" >&2; return 1; }
	echo "$out"
}

# stat_get_pid PID NAME: like stat_get, for the namespace of PID (see ns_anchor), without
# starting a process.
stat_get_pid()
{
	local name value f=/proc/$1/net/stat/icmp_ct

	if [ -r "$f" ]; then
		while read -r name value; do
			[ "$name" = "$2" ] && { echo "$value"; return 0; }
		done <"$f"
	fi
	echo "# no '$2' in $f" >&2
	return 1
}

# rx_packets_pid PID DEV: received packets of DEV in the namespace of PID.
rx_packets_pid()
{
	local dev rest

	while read -r dev rest; do
		if [ "$dev" = "$2:" ]; then
			read -r _ rest <<<"$rest"
			echo "${rest%% *}"
			return 0
		fi
	done <"/proc/$1/net/dev"
	return 1
}

# stat_dump NS: the whole stat file (for comparisons and diagnostics).
stat_dump()
{
	ns_exec "$1" cat "$ICMP_CT_STAT"
}

# hooks_get NS: "pre in out post" hook counters of NS on one line.
hooks_get()
{
	local ns=$1 h v out=()

	for h in "${ICMP_CT_HOOKS[@]}"; do
		v=$(stat_get "$ns" "$h") || return 1
		out+=("$v")
	done
	echo "${out[*]}"
}

# sysctl_get NS NAME: read /proc/sys/net/ipv4/netfilter/NAME in NS.
sysctl_get()
{
	ns_exec "$1" cat "$ICMP_CT_SYSCTL_DIR/$2"
}

# sysctl_set NS NAME VALUE: write VALUE (plus newline, as echo does) to the sysctl file in NS.
# Returns the write's status; its error message ends up in SYSCTL_ERR.
sysctl_set()
{
	# shellcheck disable=SC2016 # expanded by the inner shell
	SYSCTL_ERR=$(ns_exec "$1" bash -c 'printf "%s\n" "$2" > "$1"' bash \
		"$ICMP_CT_SYSCTL_DIR/$2" "$3" 2>&1)
}

##############################################################################
# Kernel log

# kmsg_mark: remember how long the kernel log is now.
kmsg_mark()
{
	KMSG_MARK=$(dmesg | wc -l)
}

# kmsg_new: kernel log lines added since kmsg_mark.
kmsg_new()
{
	dmesg | tail -n +"$((KMSG_MARK + 1))"
}

# kmsg_clean "desc": subtest that fails (and prints them) if BUG/WARNING/... lines appeared
# since kmsg_mark.
kmsg_clean()
{
	local bad

	bad=$(kmsg_new | grep -E "$KMSG_BAD_RE")
	if [ -z "$bad" ]; then
		ktap_test_pass "$1"
		return 0
	fi
	ktap_msg "$bad"
	ktap_test_fail "$1"
	return 1
}

# kmemleak (debug kernel): kmemleak_start forgets what is already reported (not this test's);
# kmemleak_clean "desc" scans (twice: objects younger than 5 s are never reported) and is one
# subtest, failing with the report, skipped on a kernel without kmemleak.
KMEMLEAK=/sys/kernel/debug/kmemleak

kmemleak_start()
{
	[ -e "$KMEMLEAK" ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	[ -e "$KMEMLEAK" ] || return 0
	echo scan >"$KMEMLEAK" && echo clear >"$KMEMLEAK"
}

kmemleak_clean()
{
	local report

	if [ ! -e "$KMEMLEAK" ]; then
		ktap_test_skip "$1" "no $KMEMLEAK (not the debug kernel)"
		return 0
	fi
	echo scan >"$KMEMLEAK"
	sleep 6
	echo scan >"$KMEMLEAK"
	report=$(cat "$KMEMLEAK")
	if [ -z "$report" ]; then
		ktap_test_pass "$1"
		return 0
	fi
	ktap_msg "$(head -60 <<<"$report")"
	ktap_test_fail "$1"
	return 1
}

##############################################################################
# Ping

# ping_ok NS DEST COUNT [ping args...]: ping -c COUNT, fast; 0 only if every request got its reply.
ping_ok()
{
	local ns=$1 dst=$2 count=$3 out

	shift 3
	out=$(ns_exec "$ns" ping -n -q -c "$count" -i 0.2 -W 2 "$@" "$dst" 2>&1)
	if ! grep -q "$count packets transmitted, $count received" <<<"$out"; then
		ktap_msg "ping $dst from ${ns:-init} failed:" "$out"
		return 1
	fi
}

##############################################################################
# Cleanup

# Tests may define test_cleanup (run first).
cleanup()
{
	local ns

	if declare -F test_cleanup >/dev/null; then
		test_cleanup
	fi
	for ns in "${NS_LIST[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
		ip netns delete "$ns" 2>/dev/null
	done
	NS_LIST=()
	if [ "$ICMP_CT_LOADED_BY_US" = 1 ] && module_is_loaded; then
		rmmod icmp_ct || echo "# cleanup: rmmod icmp_ct failed"
	fi
}

trap cleanup EXIT
# A signal (e.g. the runner's timeout) still runs the cleanup.
trap 'exit $ksft_fail' INT TERM HUP
