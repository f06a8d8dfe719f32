#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: boots the test kernel once and runs bench/guest.sh there (every mode in
# alternating rounds), then bench/report.py on the host: the table (stdout and
# bench/results/latest.md), the JSON (bench/results/bench-DATE.json and latest.json) and
# the plot (bench/results/latest.png).
#
# The guest runs with QEMU's instruction counter as its clock (-icount shift=0: one
# nanosecond per guest instruction): a guest's time under TCG on a shared host otherwise
# measures the host's load and QEMU's code translation more than the kernel. Times are
# then instruction counts, which is what the ratios compare.
#
# Settings (environment, passed to the guest): BENCH_ROUNDS, BENCH_FILL_ROUNDS, BENCH_PACKETS,
# BENCH_FILLS, BENCH_IDLE, BENCH_READS, BENCH_MODES, BENCH_HASHSIZE (see bench/guest.sh);
# BENCH_MEMORY (guest memory,
# default 4G), BENCH_TIMEOUT (seconds, default 5400), BENCH_OUT (results directory,
# default bench/results), ICMP_CT_KO (default ./icmp_ct.ko), KDIR (default the test kernel).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=${BENCH_OUT:-$top/bench/results}
ko=$(readlink -m "${ICMP_CT_KO:-$top/icmp_ct.ko}")
kdir=${KDIR:-$(scripts/kernel.sh path normal)}
[ -f "$ko" ] || { echo "bench: no $ko (make module)" >&2; exit 1; }

envs=(--env "ICMP_CT_KO=$ko")
settings=""
for v in BENCH_ROUNDS BENCH_FILL_ROUNDS BENCH_PACKETS BENCH_FILLS BENCH_IDLE BENCH_READS \
	BENCH_MODES BENCH_HASHSIZE; do
	if [ -n "${!v:-}" ]; then
		envs+=(--env "$v=${!v}")
		settings+="$v='${!v}' "
	fi
done
vm_opts=(--kernel "$kdir" --name bench --memory "${BENCH_MEMORY:-4G}" --cpus 2
	--timeout "${BENCH_TIMEOUT:-5400}" --qemu-opt "-icount shift=0,sleep=on")
command="${settings}make bench: scripts/vm-run.sh$(printf ' %q' "${vm_opts[@]}") -- bench/guest.sh"

work=$(mktemp -d /tmp/icmp_ct-bench.XXXXXX)
echo "bench: $command" >&2
# shellcheck disable=SC2016 # expanded in the guest
scripts/vm-run.sh "${vm_opts[@]}" --results "$work/vm" "${envs[@]}" \
	-- bash -c 'bench/guest.sh "$RESULTS_DIR/raw.txt"'
mkdir -p "$out"
# Debian's python3 (python3-matplotlib), whatever python3 comes first in PATH.
/usr/bin/python3 bench/report.py --raw "$work/vm/raw.txt" --out "$out" --command "$command" \
	--git "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
	--clock "guest time under QEMU -icount shift=0: 1 ns = 1 guest instruction"
