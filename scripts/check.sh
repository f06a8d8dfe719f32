#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: every test of the project, ending in one line `N passed, M failed`; the exit
# status is non-zero on any failure. Each step prints `ok`/`FAIL` and its name; a selftest run
# in the VM adds one result per kselftest (a skipped kselftest counts as a failure: the test
# kernel is ours, so nothing should be missing).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
passed=0
failed=0
failures=()
logdir=$(mktemp -d /tmp/icmp_ct-check.XXXXXX)

step() {
	local name=$1
	shift
	local log
	log="$logdir/$(echo "$name" | tr -c 'A-Za-z0-9' _).log"
	local start=$SECONDS
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		echo "ok   $name ($((SECONDS - start)) s)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "FAIL $name ($((SECONDS - start)) s); last lines of $log:"
		tail -40 "$log" | sed 's/^/     /'
	fi
}

check_rustfmt() {
	# rustfmt follows `mod` items: the crate roots (and the host tests) cover every file.
	rustfmt --check --edition 2021 --config-path "$kdir/.rustfmt.toml" \
		rust/icmp_ct_main.rs rust/proto/host.rs rust/proto/tests/*.rs
}

check_no_panic() {
	local undefined
	undefined=$(nm -u icmp_ct.ko) || return 1
	if grep -i panic <<<"$undefined"; then
		echo "icmp_ct.ko links a panic path (above): use checked arithmetic and .get()"
		return 1
	fi
}

build_module_clippy() {
	# Clippy only looks at what it compiles: force the crate to be rebuilt.
	rm -f rust/icmp_ct_main.o
	make -s module KDIR="$kdir" CLIPPY=1 KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
}

# Runs the kselftests in a VM booted from the kernel tree $1; adds their results.
selftests_in_vm() {
	local label=$1 tree=$2
	shift 2
	local results
	results=$(mktemp -d /tmp/icmp_ct-results.XXXXXX)
	local start=$SECONDS
	scripts/vm-run.sh --kernel "$tree" --results "$results" --name "$label" "$@" \
		-- env ICMP_CT_KO="$top/icmp_ct.ko" RESULTS_DIR="$results" selftests/run_kselftest.sh \
		>"$logdir/vm-$label.log" 2>&1
	local status=$?
	sed 's/^/     /' "$logdir/vm-$label.log" | grep -E '^     (not )?ok |^     #' | head -200
	local p=0 f=0 s=0
	if [ -r "$results/summary" ]; then
		read -r _ p _ f _ s <"$results/summary"
	fi
	passed=$((passed + p))
	failed=$((failed + f + s))
	if [ "$s" != 0 ]; then
		failures+=("$label: $s selftests skipped")
	fi
	if [ "$f" != 0 ]; then
		failures+=("$label: $f selftests failed")
	fi
	if [ "$status" != 0 ] || [ ! -r "$results/summary" ]; then
		# A crash, a bad kernel log or a lost summary is a failure of its own.
		failed=$((failed + 1))
		failures+=("$label: VM run failed (status $status)")
		tail -40 "$logdir/vm-$label.log" | sed 's/^/     /'
	fi
	echo "     $label selftests: $p passed, $f failed, $s skipped in $((SECONDS - start)) s"
}

echo "== icmp_ct checks (logs in $logdir)"
step "test kernel (cached build)" scripts/kernel.sh build normal
kdir=$(scripts/kernel.sh path normal)
step "module builds warning-free" make -s module KDIR="$kdir" KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
step "module is clippy clean" build_module_clippy
step "rustfmt clean (tree's .rustfmt.toml)" check_rustfmt
step "no panic path linked (nm -u)" check_no_panic
step "proto host tests (cargo test)" cargo test --quiet --manifest-path rust/proto/Cargo.toml
step "proto clippy (host)" cargo clippy --quiet --manifest-path rust/proto/Cargo.toml \
	--all-targets -- -D warnings
if [ -e icmp_ct.ko ]; then
	selftests_in_vm normal "$kdir"
else
	failed=$((failed + 1))
	failures+=("selftests: no icmp_ct.ko to test")
fi

echo
if [ "$failed" != 0 ]; then
	printf 'failed: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
