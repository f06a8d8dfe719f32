#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make profile`: where the guest's instructions go per packet, for each mode of the bench,
# by function and, in icmp_ct, by source line. A QEMU TCG plugin (bench/tb_profile.c)
# counts the instructions each translated block executes; every mode runs twice in its own
# guest (bench/profile_guest.sh: bench/guest.sh with one round, no table series), with
# PROFILE_PACKETS and twice as many packets of PROFILE_WORKLOAD, and the difference between
# the two runs, divided by PROFILE_PACKETS, is what one packet costs: boot and setup cancel
# out. icmp_ct is built with debug information in a copy of the sources (the code is the
# same; the repository's build stays as it is). bench/profile_report.py prints the tables
# and writes them to bench/results/profile-WORKLOAD.txt.
#
# Settings: PROFILE_WORKLOAD (echo1; or errors, echo_ids, udp), PROFILE_MODES ("none nfct
# kr1", bench/guest.sh's modes), PROFILE_PACKETS (20000), PROFILE_TOP (rows, 40), KDIR.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
workload=${PROFILE_WORKLOAD:-echo1}
modes=${PROFILE_MODES:-none nfct kr1}
packets=${PROFILE_PACKETS:-20000}
kdir=${KDIR:-$(scripts/kernel.sh path normal)}
out=$top/bench/results
work=$(mktemp -d /tmp/icmp_ct-profile.XXXXXX)

cc -O2 -Wall -shared -fPIC -o "$work/tb_profile.so" bench/tb_profile.c
scripts/build-copy.sh "$work/src" "$kdir" KRUSTFLAGS=-g KCFLAGS=-g

runs=()
for mode in $modes; do
	for n in "$packets" $((2 * packets)); do
		run=$work/$mode-$n
		echo "profile: $mode, $n packets of $workload" >&2
		# shellcheck disable=SC2016 # expanded in the guest
		scripts/vm-run.sh --kernel "$kdir" --name "profile-$mode-$n" --memory 2G --cpus 2 \
			--timeout 1800 --results "$run" --qemu-opt "-icount shift=0,sleep=on" \
			--qemu-opt "-plugin $work/tb_profile.so,out=$run/blocks.txt" \
			--env ICMP_CT_KO="$work/src/icmp_ct.ko" --env BENCH_MODES="$mode" \
			--env BENCH_ROUNDS=1 --env BENCH_FILL_ROUNDS=0 --env BENCH_WORKLOADS="$workload" \
			--env BENCH_PACKETS="$n" -- bench/profile_guest.sh >"$run.log" 2>&1 ||
			{ tail -20 "$run.log" >&2; exit 1; }
	done
	runs+=("$mode:$work/$mode-$packets:$work/$mode-$((2 * packets))")
done
mkdir -p "$out"
/usr/bin/python3 bench/profile_report.py --ko "$work/src/icmp_ct.ko" --packets "$packets" \
	--top "${PROFILE_TOP:-40}" --title "$workload, $packets packets, git $(git describe \
	--always --dirty 2>/dev/null || echo unknown)" "${runs[@]}" | tee "$out/profile-$workload.txt"
rm -rf "$work"
