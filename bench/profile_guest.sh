#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/profile_guest.sh: the guest side of `make profile` (bench/profile.sh). Runs
# bench/guest.sh (settings from the environment) and leaves in $RESULTS_DIR what
# bench/profile_report.py needs to name the addresses QEMU counted: the kernel's symbols
# (kallsyms) and where icmp_ct's .text was loaded (icmp_ct.text).
set -u
out=${RESULTS_DIR:?not in a vm-run guest}
dir=$(dirname "$(readlink -e "${BASH_SOURCE[0]}")")

# The module is loaded once, by guest.sh's first icmp_ct mode: note its address then.
(
	for _ in $(seq 1200); do
		if [ -r /sys/module/icmp_ct/sections/.text ]; then
			cat /sys/module/icmp_ct/sections/.text >"$out/icmp_ct.text"
			exit
		fi
		sleep 0.5
	done
) &
watcher=$!
echo 0 >/proc/sys/kernel/kptr_restrict
"$dir/guest.sh" "$out/raw.txt"
status=$?
kill "$watcher" 2>/dev/null
grep -E ' [tT] ' /proc/kallsyms >"$out/kallsyms"
exit $status
