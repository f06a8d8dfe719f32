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
		return 0
	fi
	failed=$((failed + 1))
	failures+=("$name")
	echo "FAIL $name ($((SECONDS - start)) s); last lines of $log:"
	tail -40 "$log" | sed 's/^/     /'
	return 1
}

check_rustfmt() {
	# rustfmt follows `mod` items: the crate roots (and the host tests) cover every file.
	rustfmt --check --edition 2021 --config-path "$kdir/.rustfmt.toml" \
		rust/icmp_ct_main.rs rust/proto/host.rs rust/proto/tests/*.rs \
		rust/proto/fuzz/fuzz_targets/*.rs
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
	shellcheck scripts/*.sh .ci/run rust/proto/fuzz/run.sh && shellcheck -x bench/*.sh &&
		(cd selftests && shellcheck -x ./*.sh)
}

check_python() {
	pyflakes3 scripts/*.py scripts/icmp_ct-top selftests/*.py bench/*.py
}

build_module_clippy() {
	# Clippy only looks at what it compiles: force the crate to be rebuilt.
	rm -f rust/icmp_ct_main.o
	make -s module KDIR="$kdir" CLIPPY=1 KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
}

# Builds the module against the debug kernel in a copy of the sources, so that the
# objects of the normal build in the repository stay as they are.
build_debug_module() {
	# With the race windows of selftests/icmp_ct_races.sh (inert until a test opens one).
	scripts/build-copy.sh "$debug_build" "$kdir_debug" KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror \
		ICMP_CT_RACE_WINDOWS=1 &&
		selftests/icmp_ct_dkms.sh --prebuild "$logdir/dkms-debug" "$kdir_debug" &&
		selftests/icmp_ct_install.sh --prebuild "$logdir/install-debug" "$kdir_debug"
}

# The selftests run in TCG guests, each one single-threaded QEMU process, so at most one core
# each; but the tests wait for timeouts much of the time (a normal guest keeps its core busy
# about 40% of its time, see Documentation/design.rst): one lane of guests more than there are
# cores (at most 4 lanes, 2 GB per guest). The guests of a kernel take the tests from one
# queue (run_kselftest.sh -q), the longest first, so that no lane idles while another still
# has tests. Each lane boots a guest of the normal kernel, then one of the debug kernel once
# that is built; the last lane starts with the debug kernel, so that its long tests do not
# wait for the normal suite. A lane skips a kernel whose queue is already empty.
lanes=$(($(nproc) + 1))
[ "$lanes" -le 4 ] || lanes=4

# The queues hand out the longest tests first, in the order of their measured times
# (Documentation/design.rst), then the rest in the Makefile's order.
normal_longest_first=(icmp_ct_dkms.sh icmp_ct_install.sh icmp_ct_queries.sh icmp_ct_ipv6.sh icmp_ct_table.sh icmp_ct_related.sh
	icmp_ct_stress.sh icmp_ct_hostile_frames.sh
	icmp_ct_bench_smoke.sh icmp_ct_policies.sh icmp_ct_rmmod_flood.sh icmp_ct_flows.sh icmp_ct_tcp.sh icmp_ct_nat.sh
	nf_conntrack_icmp_related_baseline.sh icmp_ct_invalid.sh icmp_ct_quota.sh icmp_ct_rtt.sh icmp_ct_icmp_related.sh
	icmp_ct_timeouts.sh icmp_ct_netns.sh icmp_ct_hooks.sh icmp_ct_load.sh icmp_ct_sysctl.sh)
debug_longest_first=(icmp_ct_hostile_frames.sh icmp_ct_stress.sh
	icmp_ct_queries.sh icmp_ct_related.sh icmp_ct_ipv6.sh icmp_ct_table.sh
	icmp_ct_rmmod_flood.sh icmp_ct_quota.sh icmp_ct_policies.sh icmp_ct_flows.sh icmp_ct_icmp_related.sh)

# What make check runs on the debug kernel (KASAN, lockdep, PROVE_RCU, kmemleak): the tests
# that hunt concurrency and teardown bugs, not functional ones. Add a test here when it
# stresses the table, its locking or RCU, or feeds the parser hostile frames. Every test of
# TEST_PROGS_DEBUG (selftests/Makefile) runs there too without being named here.
# `make check-debug` (ICMP_CT_DEBUG_SUITE=all) runs the whole suite there instead.
DEBUG_KERNEL_TESTS=(
	icmp_ct_rmmod_flood.sh # rmmod and insmod under a flood
	icmp_ct_netns.sh       # namespaces deleted and the module removed with live entries
	icmp_ct_table.sh       # table growth, eviction and the full table
	icmp_ct_timeouts.sh    # thousands of entries expiring at once under garbage collection
	icmp_ct_hostile_frames.sh # malformed and random frames at both ends of a veth pair
	icmp_ct_stress.sh      # floods, namespace churn, sysctl writers, readers, rmmod/insmod
)

mapfile -t normal_tests < <(selftests/run_kselftest.sh -l)
mapfile -t debug_only_tests < <(selftests/run_kselftest.sh -D -l)

# Every test named anywhere exists: a listed test that is not there fails the run instead of
# being left out.
check_test_lists() {
	local ok=0 t all=" ${normal_tests[*]} ${debug_only_tests[*]} "
	for t in "${DEBUG_KERNEL_TESTS[@]}" "${normal_longest_first[@]}" \
		"${debug_longest_first[@]}"; do
		if [[ $all != *" $t "* ]]; then
			echo "$t (scripts/check.sh) is in neither TEST_PROGS nor TEST_PROGS_DEBUG"
			ok=1
		fi
	done
	for t in "${normal_tests[@]}" "${debug_only_tests[@]}"; do
		if [ ! -x "selftests/$t" ]; then
			echo "selftests/$t (selftests/Makefile) is missing or not executable"
			ok=1
		fi
	done
	for t in "${debug_only_tests[@]}"; do
		if [[ " ${normal_tests[*]} " == *" $t "* ]]; then
			echo "$t is in both TEST_PROGS and TEST_PROGS_DEBUG"
			ok=1
		fi
	done
	return $ok
}

# queue_order FIRST_ARRAY TEST...: the TESTs, once each, those in the array named FIRST_ARRAY
# first, in its order.
queue_order() {
	local -n first=$1
	shift
	local t
	local -A wanted=() emitted=()
	for t in "$@"; do wanted[$t]=1; done
	for t in "${first[@]}" "$@"; do
		if [ -n "${wanted[$t]:-}" ] && [ -z "${emitted[$t]:-}" ]; then
			echo "$t"
			emitted[$t]=1
		fi
	done
}

# The tests of each kernel's queue (queue_tests[KERNEL], in order) and the host directory its
# guests share as the queue (queue[KERNEL], unset when that kernel's guests cannot run).
declare -A queue_tests queue

# unclaimed KERNEL: whether a test of KERNEL's queue has not been taken by a guest yet.
unclaimed() {
	local t
	for t in ${queue_tests[$1]}; do
		[ -d "${queue[$1]}/$t" ] || return 0
	done
	return 1
}

# run_guest KERNEL LANE: boots a guest of KERNEL (normal or debug) that takes tests from
# KERNEL's queue until it is empty; its status and times go to $logdir/status-KERNEL-LANE.
# ICMP_CT_TIME_SCALE stretches the tests' second-scale deadlines: by 2 on the normal kernel,
# since with more lanes than cores a guest may get only part of one, and by 5 on the debug
# kernel, which runs 3-7 times slower; its guests have a longer TIMEOUT per test (about
# twice the longest test's time) and `no5lvl`, since under TCG an unrelated early splat
# would otherwise turn lockdep off.
run_guest() {
	local kernel=$1 lane=$2
	local name=$kernel-$lane
	local tree ko args=() options=() t start=$SECONDS status
	if [ "$kernel" = normal ]; then
		tree=$kdir ko=$top/icmp_ct.ko
		options=(--env ICMP_CT_TIME_SCALE=2 --env ICMP_CT_DKMS_PREBUILT="$logdir/dkms-normal"
			--env ICMP_CT_INSTALL_PREBUILT="$logdir/install-normal")
	else
		tree=$kdir_debug ko=$debug_build/icmp_ct.ko
		options=(--kmemleak --append no5lvl --env ICMP_CT_TIME_SCALE=5 --env TIMEOUT=1200
			--timeout 4800 --env ICMP_CT_DKMS_PREBUILT="$logdir/dkms-debug"
			--env ICMP_CT_INSTALL_PREBUILT="$logdir/install-debug")
	fi
	for t in ${queue_tests[$kernel]}; do args+=(-t "$t"); done
	scripts/vm-run.sh --kernel "$tree" --results "$logdir/results-$name" --name "$name" \
		--rwdir "${queue[$kernel]}" --env ICMP_CT_KDIR="$tree" "${options[@]}" \
		-- env ICMP_CT_KO="$ko" selftests/run_kselftest.sh -q "${queue[$kernel]}" "${args[@]}" \
		>"$logdir/vm-$name.log" 2>&1
	status=$?
	echo "$status $start $SECONDS" >"$logdir/status-$name"
}

# ready KERNEL: whether KERNEL's guests can run; for the debug kernel, waits until it and the
# module built against it are ready or have failed ($logdir/debug-ready says which).
ready() {
	[ -n "${queue[$1]:-}" ] || return 1
	[ "$1" = debug ] || return 0
	until [ -e "$logdir/debug-ready" ]; do
		sleep 5
	done
	[ "$(cat "$logdir/debug-ready")" = ok ]
}

# lane N: a guest of each kernel in turn whose queue still has tests.
lane() {
	local n=$1 kernel kernels=(normal debug)
	[ "$n" != "$lanes" ] || kernels=(debug normal)
	for kernel in "${kernels[@]}"; do
		if ready "$kernel" && unclaimed "$kernel"; then
			run_guest "$kernel" "$n"
		fi
	done
}

# collect KERNEL: adds the results of KERNEL's guests; every test of its queue must have been
# taken by one (a guest that died leaves the rest to the others, one that never booted takes
# nothing).
collect() {
	local kernel=$1
	local n name results status start end p f s tp=0 tf=0 ts=0 t
	for n in $(seq "$lanes"); do
		name=$kernel-$n
		results=$logdir/results-$name
		[ -e "$logdir/status-$name" ] || continue
		read -r status start end <"$logdir/status-$name"
		sed 's/^/     /' "$logdir/vm-$name.log" | grep -E '^     (not )?ok |^     #' | head -200
		p=0 f=0 s=0
		if [ -r "$results/summary" ]; then
			read -r _ p _ f _ s <"$results/summary"
		fi
		echo "     $name: $p passed, $f failed, $s skipped from $start s to $end s"
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
	[ "$ts" = 0 ] || failures+=("$kernel kernel: $ts selftests skipped")
	[ "$tf" = 0 ] || failures+=("$kernel kernel: $tf selftests failed")
	for t in ${queue_tests[$kernel]}; do
		if [ ! -d "${queue[$kernel]}/$t" ]; then
			failed=$((failed + 1))
			failures+=("$kernel kernel: $t never ran")
		fi
	done
	echo "     $kernel kernel: $tp passed, $tf failed, $ts skipped"
}

# The debug kernel: KASAN, lockdep, PROVE_RCU, DEBUG_ATOMIC_SLEEP and kmemleak, since RCU and
# locking bugs hide from functional tests. ICMP_CT_DEBUG_KERNEL=0 leaves it out (a quicker
# local run); CI always runs it.
debug_kernel=${ICMP_CT_DEBUG_KERNEL:-1}
[ "${CI:-}" != true ] || debug_kernel=1
debug_build=$top/.build-debug
kdir_debug=$(scripts/kernel.sh path debug)

# A test of the debug selection runs there only: the debug kernel sees all the normal one
# would, and more (KASAN, lockdep, kmemleak).
normal_queue=("${normal_tests[@]}")
if [ "$debug_kernel" = 1 ] && [ "${ICMP_CT_DEBUG_SUITE:-selection}" != all ]; then
	mapfile -t normal_queue < <(printf '%s\n' "${normal_tests[@]}" |
		grep -vxF -f <(printf '%s\n' "${DEBUG_KERNEL_TESTS[@]}"))
fi
queue_tests[normal]=$(queue_order normal_longest_first "${normal_queue[@]}")
if [ "${ICMP_CT_DEBUG_SUITE:-selection}" = all ]; then
	queue_tests[debug]=$(queue_order debug_longest_first "${normal_tests[@]}" \
		"${debug_only_tests[@]}")
else
	queue_tests[debug]=$(queue_order debug_longest_first "${DEBUG_KERNEL_TESTS[@]}" \
		"${debug_only_tests[@]}")
fi

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
step "selftest lists name existing tests" check_test_lists
step "test kernel (cached build)" scripts/kernel.sh build normal
kdir=$(scripts/kernel.sh path normal)
step "module builds warning-free" make -s module KDIR="$kdir" KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror
step "module is clippy clean" build_module_clippy
step "rustfmt clean (tree's .rustfmt.toml)" check_rustfmt
step "no panic path linked (nm -u)" check_no_panic
step "source policy (no unsafe in proto, SAFETY comments, modinfo)" check_source_policy
step "shell scripts are shellcheck clean" check_shell
step "Python scripts are pyflakes clean" check_python
step "Documentation is valid reStructuredText" /usr/bin/python3 scripts/rst-lint.py \
	Documentation/*.rst
step "check-kdir.sh refuses unfit kernel trees" scripts/check-kdir-test.sh
# icmp_ct_dkms.sh installs this build in the guest: building there takes 5-7 minutes under TCG.
step "DKMS package builds (for icmp_ct_dkms.sh)" \
	selftests/icmp_ct_dkms.sh --prebuild "$logdir/dkms-normal" "$kdir"
step "make install's build (for icmp_ct_install.sh)" \
	selftests/icmp_ct_install.sh --prebuild "$logdir/install-normal" "$kdir"
# The host tests include the replay of the fuzzers' corpus (tests/fuzz_corpus.rs).
step "proto host tests (cargo test)" cargo test --quiet --manifest-path rust/proto/Cargo.toml
step "proto clippy (host)" cargo clippy --quiet --manifest-path rust/proto/Cargo.toml \
	--all-targets -- -D warnings
if [ -e icmp_ct.ko ]; then
	queue[normal]=$(mktemp -d /tmp/icmp_ct-queue.XXXXXX)
else
	failed=$((failed + 1))
	failures+=("normal kernel: no icmp_ct.ko to test")
fi
[ "$debug_kernel" != 1 ] || queue[debug]=$(mktemp -d /tmp/icmp_ct-queue.XXXXXX)
selftests_start=$SECONDS
lane_pids=()
for n in $(seq "$lanes"); do
	lane "$n" &
	lane_pids+=($!)
done
echo "     selftests started in $lanes lanes of guests (at $SECONDS s)"
echo "     normal kernel: ${queue_tests[normal]//$'\n'/ }"
[ "$debug_kernel" != 1 ] || echo "     debug kernel: ${queue_tests[debug]//$'\n'/ }"
if [ "$debug_kernel" = 1 ]; then
	if step "debug test kernel (cached build)" wait_debug_kernel_build &&
		step "module builds against the debug kernel" build_debug_module; then
		echo ok >"$logdir/debug-ready"
	else
		echo failed >"$logdir/debug-ready"
	fi
fi
wait "${lane_pids[@]}"
[ -z "${queue[normal]:-}" ] || collect normal
[ "$debug_kernel" != 1 ] || [ "$(cat "$logdir/debug-ready")" != ok ] || collect debug
echo "     selftests took $((SECONDS - selftests_start)) s"

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
