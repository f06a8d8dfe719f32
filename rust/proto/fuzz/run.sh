#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make fuzz`: runs every cargo-fuzz target of the protocol core in turn, one process at a
# time at nice 10 (the machine is shared), each for FUZZ_SECONDS (default 60) or until
# FUZZ_RUNS executions (default -1: no limit), whichever comes first, growing its corpus in
# corpus/<target>/; then minimizes each corpus (cmin) and prints, per target, executions,
# seconds and coverage. FUZZ_TARGETS picks targets (default: all). A target whose invariant
# breaks stops the run and leaves the input in artifacts/<target>/.
#
# The targets build without sanitizers (-s none: the protocol core has no unsafe code), with
# overflow checks and debug assertions on, as the kernel builds it; that needs no nightly.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:--1}
read -r -a targets <<<"${FUZZ_TARGETS:-$(grep -oP '^name = "\K[a-z0-9_]+(?="$)' fuzz/Cargo.toml |
	grep -vx icmp_ct_proto_fuzz | tr '\n' ' ')}"

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
	echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo, about 2 minutes)" >&2
	nice -n 10 cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

# Builds beside the crate's own (target/, which make clean removes and the debug module's
# copy of the sources leaves out).
fuzz() {
	nice -n 10 cargo fuzz "$1" --sanitizer none --fuzz-dir fuzz --target-dir "$PWD/target/fuzz" \
		"${@:2}"
}

fuzz build
logs=$(mktemp -d /tmp/icmp_ct-fuzz.XXXXXX)
printf '%-10s %12s %8s %10s %6s %6s %7s\n' target executions seconds exec/s cov ft corpus
for t in "${targets[@]}"; do
	mkdir -p "fuzz/corpus/$t"
	start=$SECONDS
	if ! fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -runs="$runs" \
		-print_final_stats=1 >"$logs/$t.log" 2>&1; then
		tail -30 "$logs/$t.log"
		echo "fuzz: $t failed (log $logs/$t.log, input in fuzz/artifacts/$t/)" >&2
		exit 1
	fi
	elapsed=$((SECONDS - start))
	executions=$(grep -oP '^stat::number_of_executed_units:\s+\K[0-9]+' "$logs/$t.log")
	speed=$(grep -oP '^stat::average_exec_per_sec:\s+\K[0-9]+' "$logs/$t.log")
	done_line=$(grep -E '(DONE|INITED) ' "$logs/$t.log" | tail -1)
	cov=$(grep -oP 'cov: \K[0-9]+' <<<"$done_line")
	ft=$(grep -oP 'ft: \K[0-9]+' <<<"$done_line")
	# Edges only (no hit counts): a corpus of tens to hundreds of inputs, not thousands.
	fuzz cmin "$t" "fuzz/corpus/$t" -- -use_counters=0 >"$logs/$t.cmin.log" 2>&1
	files=$(find "fuzz/corpus/$t" -type f | wc -l)
	printf '%-10s %12s %8s %10s %6s %6s %7s\n' "$t" "$executions" "$elapsed" "$speed" "$cov" \
		"$ft" "$files"
done
echo "fuzz: logs in $logs"
