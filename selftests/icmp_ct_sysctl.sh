#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# net.ipv4.netfilter.ip_ct_icmp_timeout: default 30, range 1..2147483; a write outside the
# range (or not a number) fails with EINVAL and leaves the value unchanged.  Checked in the
# initial namespace and in a namespace of its own (no traffic, no topology needed).

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

require_module
require_cmd ip sysctl

ktap_header
ktap_plan $((2 * PER_CTX))

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

ktap_finished
