#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: every test of the project, ending in one line `N passed, M failed`; the exit
# status is non-zero on any failure. Each step prints `ok`/`FAIL` and its name; a selftest run
# in the VM adds one result per kselftest (a skipped kselftest counts as a failure: the test
# kernel is ours, so nothing should be missing).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
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

# The rules every change keeps: no unsafe in the protocol core, a SAFETY comment for every
# unsafe block, generated bindings never committed, modinfo complete.
check_source_policy() {
	local ok=0
	if grep -rn --include='*.rs' -E 'unsafe *(\{|fn|impl|extern|trait)' rust/proto; then
		echo "rust/proto must have no unsafe (above)"
		ok=1
	fi
	local blocks comments
	blocks=$(grep -rn --include='*.rs' --exclude=bindings_generated.rs -E 'unsafe \{' rust | wc -l)
	comments=$(grep -rn --include='*.rs' --exclude=bindings_generated.rs -E '// SAFETY:' rust | wc -l)
	if [ "$blocks" -gt "$comments" ]; then
		echo "$blocks unsafe blocks but only $comments SAFETY comments"
		ok=1
	fi
	if git ls-files | grep -E 'bindings_generated'; then
		echo "generated bindings are committed (above)"
		ok=1
	fi
	local info
	info=$(modinfo icmp_ct.ko) || return 1
	for field in description author license; do
		grep -q "^$field:" <<<"$info" || { echo "modinfo lacks $field"; ok=1; }
	done
	return $ok
}

check_shell() {
	shellcheck scripts/*.sh .ci/run && (cd selftests && shellcheck -x ./*.sh)
}

build_module_clippy() {
	# Clippy only looks at what it compiles: force the crate to be rebuilt.
	rm -f rust/icmp_ct_main.o
	make -s module KDIR="$kdir" CLIPPY=1 KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
}

# Builds the module against the debug kernel in a copy of the sources, so that the
# objects of the normal build in the repository stay as they are.
build_debug_module() {
	rm -rf "$debug_build"
	mkdir -p "$debug_build"
	cp -r Kbuild Makefile rust "$debug_build/"
	rm -rf "$debug_build/rust/proto/target"
	make -s -C "$debug_build" module KDIR="$kdir_debug" KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
}

# selftests_start LABEL TREE KO RUNNER_ARGS... -- VM_OPTIONS...: starts the kselftests with
# module KO in VMs booted from the kernel tree TREE in the background, one guest per
# RUNNER_ARGS (run_kselftest.sh's -s, -q and -t options, word-split), all at once: each
# guest is one single-threaded TCG process, so two of them use both cores.
# selftests_collect LABEL waits for them and adds their results.
declare -A vm_jobs vm_started
selftests_start() {
	local label=$1 tree=$2 ko=$3
	shift 3
	local guests=() k name results
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		guests+=("$1")
		shift
	done
	[ $# -eq 0 ] || shift
	vm_started[$label]=$SECONDS
	vm_jobs[$label]=
	for k in "${!guests[@]}"; do
		name=$label
		[ "${#guests[@]}" = 1 ] || name=$label-$((k + 1))
		results=$(mktemp -d /tmp/icmp_ct-results.XXXXXX)
		# shellcheck disable=SC2086 # the runner's options, one word each
		scripts/vm-run.sh --kernel "$tree" --results "$results" --name "$name" \
			--env ICMP_CT_KDIR="$tree" "$@" \
			-- env ICMP_CT_KO="$ko" RESULTS_DIR="$results" \
			selftests/run_kselftest.sh ${guests[$k]} >"$logdir/vm-$name.log" 2>&1 &
		vm_jobs[$label]+="$!:$name:$results "
	done
	echo "     $label selftests started in ${#guests[@]} guest(s)"
}

selftests_collect() {
	local label=$1
	local job pid name results status p f s tp=0 tf=0 ts=0
	for job in ${vm_jobs[$label]}; do
		IFS=: read -r pid name results <<<"$job"
		wait "$pid"
		status=$?
		sed 's/^/     /' "$logdir/vm-$name.log" | grep -E '^     (not )?ok |^     #' | head -200
		p=0 f=0 s=0
		if [ -r "$results/summary" ]; then
			read -r _ p _ f _ s <"$results/summary"
		fi
		tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
		if [ "$status" != 0 ] || [ ! -r "$results/summary" ]; then
			# A crash, a bad kernel log or a lost summary is a failure of its own.
			failed=$((failed + 1))
			failures+=("$name: VM run failed (status $status)")
			tail -40 "$logdir/vm-$name.log" | sed 's/^/     /'
		fi
	done
	passed=$((passed + tp))
	failed=$((failed + tf + ts))
	if [ "$ts" != 0 ]; then
		failures+=("$label: $ts selftests skipped")
	fi
	if [ "$tf" != 0 ]; then
		failures+=("$label: $tf selftests failed")
	fi
	echo "     $label selftests: $tp passed, $tf failed, $ts skipped" \
		"in $((SECONDS - vm_started[$label])) s"
}

# The debug kernel: the whole suite again, on a kernel with KASAN, lockdep, PROVE_RCU,
# DEBUG_ATOMIC_SLEEP and kmemleak, since RCU and locking bugs hide from functional tests.
# ICMP_CT_DEBUG_KERNEL=0 leaves it out (a quicker local run); CI always runs it.
debug_kernel=${ICMP_CT_DEBUG_KERNEL:-1}
[ "${CI:-}" != true ] || debug_kernel=1
debug_build=$top/.build-debug
# Two guests (one per core) take the tests from one queue (run_kselftest.sh -q), the longest
# first, so that neither idles while the other has a long test left; the rest of the
# suite follows in its Makefile order. debug_first is the order of their measured times on
# the debug kernel (Documentation/design.rst): 7 minutes for queries down to under 3 for
# icmp_related; every other test takes 1-2.5.
debug_guests=2
debug_first=(icmp_ct_queries.sh icmp_ct_related.sh icmp_ct_ipv6.sh icmp_ct_table.sh
	icmp_ct_rmmod_flood.sh icmp_ct_policies.sh icmp_ct_flows.sh icmp_ct_icmp_related.sh)

# debug_runner_args QUEUE: run_kselftest.sh's options for each debug guest: the queue, then
# every test of the suite, debug_first's first.
debug_runner_args() {
	local args="-q $1" t
	for t in "${debug_first[@]}" $(selftests/run_kselftest.sh -l); do
		[[ " $args " == *" -t $t "* ]] || args+=" -t $t"
	done
	echo "$args"
}

# On a fresh machine both kernels must be built: the debug one is built beside everything
# else, at the lowest priority, so that it takes only what the normal kernel's build and
# suite leave of the two cores.
start_debug_kernel_build() {
	nice -n 19 scripts/kernel.sh build debug >"$logdir/debug-kernel.log" 2>&1 &
	debug_kernel_pid=$!
}

wait_debug_kernel_build() {
	wait "$debug_kernel_pid" || { tail -40 "$logdir/debug-kernel.log"; return 1; }
	tail -1 "$logdir/debug-kernel.log"
}

echo "== icmp_ct checks (logs in $logdir)"
[ "$debug_kernel" != 1 ] || start_debug_kernel_build
step "test kernel (cached build)" scripts/kernel.sh build normal
kdir=$(scripts/kernel.sh path normal)
step "module builds warning-free" make -s module KDIR="$kdir" KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
step "module is clippy clean" build_module_clippy
step "rustfmt clean (tree's .rustfmt.toml)" check_rustfmt
step "no panic path linked (nm -u)" check_no_panic
step "source policy (no unsafe in proto, SAFETY comments, modinfo)" check_source_policy
step "shell scripts are shellcheck clean" check_shell
step "Documentation is valid reStructuredText" /usr/bin/python3 scripts/rst-lint.py \
	Documentation/*.rst
step "proto host tests (cargo test)" cargo test --quiet --manifest-path rust/proto/Cargo.toml
step "proto clippy (host)" cargo clippy --quiet --manifest-path rust/proto/Cargo.toml \
	--all-targets -- -D warnings
if [ -e icmp_ct.ko ]; then
	selftests_start normal "$kdir" "$top/icmp_ct.ko" "-s 1/1"
else
	failed=$((failed + 1))
	failures+=("selftests: no icmp_ct.ko to test")
fi
if [ "$debug_kernel" = 1 ]; then
	step "debug test kernel (cached build)" wait_debug_kernel_build
	kdir_debug=$(scripts/kernel.sh path debug)
	step "module builds against the debug kernel" build_debug_module
	# `no5lvl`: under TCG an unrelated early splat would otherwise turn lockdep off. The
	# debug kernel runs 3-7 times slower: ICMP_CT_TIME_SCALE stretches the tests' second-scale
	# deadlines, TIMEOUT their limit (about twice the longest test's time).
	if [ -e "$debug_build/icmp_ct.ko" ]; then
		debug_queue=$(mktemp -d /tmp/icmp_ct-queue.XXXXXX)
		runner_args=$(debug_runner_args "$debug_queue")
		guests=()
		for _ in $(seq "$debug_guests"); do
			guests+=("$runner_args")
		done
		selftests_start debug "$kdir_debug" "$debug_build/icmp_ct.ko" "${guests[@]}" \
			-- --rwdir "$debug_queue" --kmemleak \
			--append no5lvl --env ICMP_CT_TIME_SCALE=5 \
			--env TIMEOUT=1200 --timeout 4800
	else
		failed=$((failed + 1))
		failures+=("debug selftests: no debug icmp_ct.ko to test")
	fi
fi
for label in normal debug; do
	[ -z "${vm_jobs[$label]:-}" ] || selftests_collect "$label"
done
# Every test must have run on the debug kernel: a guest that died leaves the rest of the
# queue to the other, and one that never booted takes nothing.
if [ -n "${debug_queue:-}" ]; then
	for t in $(selftests/run_kselftest.sh -l); do
		if [ ! -d "$debug_queue/$t" ]; then
			failed=$((failed + 1))
			failures+=("debug: $t never ran")
		fi
	done
fi

echo
if [ "$failed" != 0 ]; then
	# CI shows only the end of the output: repeat each failed (sub)test with what it printed
	# just before, so that a failure that does not come back here can still be read.
	for vmlog in "$logdir"/vm-*.log; do
		[ -e "$vmlog" ] || continue
		grep -B6 -E '^(# )*not ok ' "$vmlog" | tail -60 | sed "s|^|     ${vmlog##*/}: |"
	done
	printf 'failed: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
