#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# net.ipv4.netfilter.ip_ct_icmp_timeout: default 30, range 1..2147483; a write outside the
# range (or not a number) fails with EINVAL and leaves the value unchanged.  Checked in the
# initial namespace and in a namespace of its own (no traffic, no topology needed).
# Then every other per-namespace knob of contract.rst in the namespace: its default, both
# ends of its range accepted, one beyond each end refused with EINVAL, value unchanged.

# Functions below run through ktap_check and the EXIT trap.
# shellcheck disable=SC2317

# shellcheck source=lib.sh
source "$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")/lib.sh"

NAME=ip_ct_icmp_timeout
VALID=(1 60 2147483)
# "" is an empty write (just the newline echo adds).
INVALID=(0 -1 2147484 99999999999 abc "")
# Value set before the invalid writes, so "unchanged" differs from default and boundaries.
KEEP=77
PER_CTX=$((1 + ${#VALID[@]} + 1 + ${#INVALID[@]} + 2))
# name default min max
KNOBS=(
	"ip_ct_icmpv6_timeout 30 1 2147483"
	"ip_ct_udp_timeout 30 1 2147483"
	"ip_ct_udp_timeout_stream 180 1 2147483"
	"ip_ct_tcp_timeout_syn_sent 120 1 2147483"
	"ip_ct_tcp_timeout_syn_recv 60 1 2147483"
	"ip_ct_tcp_timeout_established 432000 1 2147483"
	"ip_ct_tcp_timeout_fin_wait 120 1 2147483"
	"ip_ct_tcp_timeout_time_wait 120 1 2147483"
	"ip_ct_tcp_timeout_close 10 1 2147483"
	"ip_ct_tcp_timeout_unacknowledged 300 1 2147483"
	"ip_ct_generic_timeout 600 1 2147483"
	"ip_ct_tcp_loose 1 0 1"
	"ip_ct_icmp_keep_replied 0 0 1"
	"ip_ct_checksum 1 0 1"
	"ip_ct_drop_invalid 0 0 1"
	"ip_ct_drop_fragments 0 0 1"
	"ip_ct_log_invalid 0 0 1"
	"ip_ct_max_per_source 0 0 2147483647"
)

require_module
require_cmd ip sysctl

ktap_header
ktap_plan $((2 * PER_CTX + ${#KNOBS[@]}))

was_loaded=0
if module_is_loaded; then
	was_loaded=1
else
	module_load || ktap_bail_out "insmod $ICMP_CT_KO failed: $MODULE_ERR"
fi
ns_create N || ktap_bail_out "cannot create a namespace"

# check_invalid CTX NS VALUE: the write fails with EINVAL and the value stays $KEEP.
check_invalid()
{
	local ctx=$1 ns=$2 val=$3 desc now

	desc="$ctx: write '$val' fails with EINVAL, value stays $KEEP"
	if sysctl_set "$ns" $NAME "$val"; then
		ktap_msg "$desc: the write succeeded"
		ktap_test_fail "$desc"
		return
	fi
	if ! grep -q "Invalid argument" <<<"$SYSCTL_ERR"; then
		ktap_msg "$desc: wrong error: $SYSCTL_ERR"
		ktap_test_fail "$desc"
		return
	fi
	now=$(sysctl_get "$ns" $NAME)
	ktap_expect_eq "$desc" $KEEP "$now"
}

run_ctx()
{
	local ctx=$1 ns=$2 v out

	ktap_expect_eq "$ctx: default is 30" 30 "$(sysctl_get "$ns" $NAME 2>&1)"

	for v in "${VALID[@]}"; do
		if sysctl_set "$ns" $NAME "$v"; then
			ktap_expect_eq "$ctx: write $v reads back" "$v" "$(sysctl_get "$ns" $NAME 2>&1)"
		else
			ktap_msg "$ctx: write $v failed: $SYSCTL_ERR"
			ktap_test_fail "$ctx: write $v reads back"
		fi
	done

	sysctl_set "$ns" $NAME $KEEP
	ktap_expect_eq "$ctx: write $KEEP reads back" $KEEP "$(sysctl_get "$ns" $NAME 2>&1)"

	for v in "${INVALID[@]}"; do
		check_invalid "$ctx" "$ns" "$v"
	done

	# The sysctl(8) tool sees the same value and reports a refused write in its exit status.
	ktap_expect_eq "$ctx: sysctl -n reads $KEEP" $KEEP \
		"$(ns_exec "$ns" sysctl -n net.ipv4.netfilter.$NAME 2>&1)"
	if out=$(ns_exec "$ns" sysctl -w net.ipv4.netfilter.$NAME=0 2>&1); then
		ktap_msg "$ctx: sysctl -w $NAME=0 succeeded: $out"
		ktap_test_fail "$ctx: sysctl -w $NAME=0 exits non-zero, value stays $KEEP"
	else
		ktap_expect_eq "$ctx: sysctl -w $NAME=0 exits non-zero, value stays $KEEP" $KEEP \
			"$(sysctl_get "$ns" $NAME 2>&1)"
	fi
}

if [ "$was_loaded" = 1 ]; then
	# Someone else's instance: its initial namespace value is not ours to test or change.
	for _ in $(seq $PER_CTX); do
		ktap_test_skip "init ns" "icmp_ct was loaded before the test"
	done
else
	run_ctx "init ns" -
	sysctl_set - $NAME 30
fi
run_ctx "netns" "$N"

# knob_report NAME DEFAULT MIN MAX, in the namespace: what a series of writes did, one word
# per step (one process for all, so that the loop costs no process per write).
# shellcheck disable=SC2016 # expanded by the inner shell
KNOB_SCRIPT='
	f=/proc/sys/net/ipv4/netfilter/$1
	out="default=$(cat "$f")"
	for v in "$3" "$4"; do
		if echo "$v" >"$f" 2>/dev/null && [ "$(cat "$f")" = "$v" ]; then
			out+=" $v:ok"
		else
			out+=" $v:refused"
		fi
	done
	echo "$2" >"$f"
	for v in $(($3 - 1)) $(($4 + 1)); do
		err=$( { echo "$v" >"$f"; } 2>&1 ) && out+=" $v:accepted" ||
			case $err in *"Invalid argument"*) out+=" $v:EINVAL" ;; *) out+=" $v:$err" ;; esac
	done
	out+=" now=$(cat "$f")"
	echo "$out"
'
for knob in "${KNOBS[@]}"; do
	read -r name def min max <<<"$knob"
	want="default=$def $min:ok $max:ok $((min - 1)):EINVAL $((max + 1)):EINVAL now=$def"
	got=$(ns_exec "$N" bash -c "$KNOB_SCRIPT" bash "$name" "$def" "$min" "$max" 2>&1)
	ktap_expect_eq "netns: $name: default $def, $min..$max, EINVAL beyond, value kept" \
		"$want" "$got"
done

ktap_finished
