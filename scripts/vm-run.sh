#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# vm-run.sh --kernel TREE [options] -- COMMAND...
#
# Boots TREE's arch/x86/boot/bzImage in a virtme-ng guest (QEMU, TCG: --disable-kvm, since KVM
# guests hang on these machines) that sees the host's root filesystem read-only, runs COMMAND
# there as root with the repository root as working directory, and checks the guest's kernel
# log afterwards.  COMMAND's output is shown live.
#
# Options:
#   --kernel TREE      built kernel tree (bzImage, .config, modules.order, System.map)
#   --append ARGS      extra kernel command line (repeatable), e.g. --append no5lvl
#   --name LABEL       guest hostname and results directory prefix
#   --kmemleak         before COMMAND, scan and clear what boot left; after COMMAND, scan
#                      twice (needs CONFIG_DEBUG_KMEMLEAK) and fail if
#                      /sys/kernel/debug/kmemleak lists anything
#   --results DIR      results directory (default: a fresh mktemp -d)
#   --rwdir DIR        also share host directory DIR with the guest, writable, at the same
#                      path (repeatable), e.g. a work queue several guests take tests from
#   --env NAME=VALUE   set in COMMAND's environment (repeatable); ICMP_CT_KO, ROUNDS and
#                      TIMEOUT are passed on when set on the host
#   --cpus N           guest CPUs (default 2)
#   --memory SIZE      guest memory (default 2G)
#   --timeout SECONDS  kill the guest after this long (default 3600)
#   --qemu-opt OPT     extra QEMU options, appended (repeatable), e.g. "-icount shift=0"
#
# Results directory: console.log (everything the guest printed), serial.log (the kernel
# console, every log level, survives a guest crash), exit_status, dmesg, tainted, kmemleak
# and kmemleak.before (with --kmemleak), plus what COMMAND writes to $RESULTS_DIR (set in
# the guest: the selftest runner puts its summary there).
#
# Exit status: COMMAND's exit status if it failed; otherwise 1 if the log check failed (any
# kernel log line matching BAD_RE below, or a taint other than O = 4096, out-of-tree module)
# or kmemleak reported something; 0 when all is clean.  125 for a usage/setup error, 124 on
# timeout, 255 when the guest died before COMMAND finished.
#
# Kernel modules in the guest (modprobe nf_conntrack, nft_* ...): vng only wires up a tree's
# modules when pointed at the tree itself (--run TREE or TREE/arch/x86/boot/bzImage), and then
# writes TREE/.virtme_mods, a symlink farm into TREE.  That would modify a shared, cached tree,
# and the links would dangle anyway: the guest mounts tmpfs over /var/cache (where
# scripts/kernel.sh keeps trees), /var/tmp, /var/log and /run.  Instead this script stages a
# copy: STAGE/boot/vmlinuz-KVER (the bzImage) and STAGE/lib/modules/KVER (every module of
# TREE/modules.order plus modules.builtin*, then depmod).  Given a kernel image outside a build
# tree, vng looks for modules in <the image's root>/lib/modules/KVER, finds STAGE's, and the
# guest's /lib/modules/KVER becomes a symlink to it; STAGE is exported to the guest read-only
# at the same path (--rodir), so it resolves whatever the guest mounts over /tmp.
set -euo pipefail

BAD_RE='BUG|WARNING|Oops|RCU stall|rcu_sched detected stall|KASAN|leak|general protection|Call Trace'
# Lines that match BAD_RE but are known not to be problems.  Keep this list short and exact.
BENIGN_RE='^(\[[ 0-9.]+\] )?kmemleak: Kernel memory leak detector initialized \(mem pool available: [0-9]+\)$'
# Taint bits allowed: 4096 (O, out-of-tree module loaded).
TAINT_OK=4096

repo=$(cd "$(dirname "$0")/.." && pwd)

usage()
{
	sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
	exit 125
}

die()
{
	echo "vm-run: $*" >&2
	exit 125
}

tree=
name=vm
kmemleak=0
results=
cpus=2
memory=2G
timeout_s=3600
appends=()
qemu_opts=()
envs=()
rwdirs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) tree=${2:?}; shift 2 ;;
	--append) appends+=("${2:?}"); shift 2 ;;
	--name) name=${2:?}; shift 2 ;;
	--kmemleak) kmemleak=1; shift ;;
	--results) results=${2:?}; shift 2 ;;
	--rwdir) rwdirs+=("${2:?}"); shift 2 ;;
	--env) envs+=("${2:?}"); shift 2 ;;
	--cpus) cpus=${2:?}; shift 2 ;;
	--memory) memory=${2:?}; shift 2 ;;
	--timeout) timeout_s=${2:?}; shift 2 ;;
	--qemu-opt) qemu_opts+=("${2:?}"); shift 2 ;;
	--) shift; break ;;
	-h | --help) usage ;;
	*) echo "vm-run: unknown option '$1'" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || { echo "vm-run: no COMMAND" >&2; usage; }
[ -n "$tree" ] || { echo "vm-run: --kernel TREE is required" >&2; usage; }
[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "--name: letters, digits, '.', '_' and '-' only"
for v in ICMP_CT_KO ROUNDS TIMEOUT; do
	[ -z "${!v:-}" ] || envs=("$v=${!v}" "${envs[@]}")
done
for e in "${envs[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env '$e': NAME=VALUE expected"
done

tree=$(cd "$tree" && pwd) || die "no such kernel tree"
bzimage=$tree/arch/x86/boot/bzImage
for f in "$bzimage" "$tree/.config" "$tree/include/config/kernel.release" \
	"$tree/modules.order" "$tree/System.map"; do
	[ -e "$f" ] || die "$f missing: is $tree a built kernel tree?"
done
kver=$(cat "$tree/include/config/kernel.release")
command -v vng >/dev/null || die "vng (virtme-ng) not found"

if [ -z "$results" ]; then
	results=$(mktemp -d "${TMPDIR:-/tmp}/vm-run-$name.XXXXXX")
else
	mkdir -p "$results"
	results=$(cd "$results" && pwd)
	[ -z "$(ls -A "$results")" ] || die "results directory $results is not empty"
fi
stage=$(mktemp -d "${TMPDIR:-/tmp}/vm-run-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Stage the kernel image and its modules (see the comment at the top).
mkdir -p "$stage/boot" "$stage/lib/modules/$kver/kernel"
cp "$bzimage" "$stage/boot/vmlinuz-$kver"
while IFS= read -r obj; do
	ko=${obj%.o}.ko
	mkdir -p "$stage/lib/modules/$kver/kernel/$(dirname "$ko")"
	cp "$tree/$ko" "$stage/lib/modules/$kver/kernel/$ko"
done <"$tree/modules.order"
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ ! -e "$tree/$f" ] || cp "$tree/$f" "$stage/lib/modules/$kver/"
done
depmod -a -e -F "$tree/System.map" -b "$stage" "$kver" 2>&1 | sed 's/^/vm-run: depmod: /' >&2

# The guest side: run COMMAND, then save what the host checks.
{
	echo "#!/bin/bash"
	echo "export RESULTS_DIR=$(printf '%q' "$results")"
	for e in "${envs[@]}"; do
		printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
	done
	echo "cd $(printf '%q' "$repo") || exit 125"
	if [ "$kmemleak" = 1 ]; then
		# Leaks from before COMMAND (boot) are not COMMAND's: report them, then clear them.
		cat <<-'EOF'
			kl=/sys/kernel/debug/kmemleak
			[ -e "$kl" ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
			if [ -e "$kl" ]; then
				SECONDS=0
				echo scan > "$kl"
				cat "$kl" > "$RESULTS_DIR/kmemleak.before"
				echo clear > "$kl"
				echo "vm-run: kmemleak scan before COMMAND: $SECONDS s"
			fi
		EOF
	fi
	printf '%q ' "$@"
	echo
	cat <<-'EOF'
		rc=$?
		echo "$rc" > "$RESULTS_DIR/exit_status"
	EOF
	if [ "$kmemleak" = 1 ]; then
		cat <<-'EOF'
			kl=/sys/kernel/debug/kmemleak
			[ -e "$kl" ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
			if [ -e "$kl" ]; then
				# Objects younger than 5 s are never reported: scan, wait, scan again.
				SECONDS=0
				echo scan > "$kl"; sleep 6; echo scan > "$kl"; sleep 1
				cat "$kl" > "$RESULTS_DIR/kmemleak"
				echo "vm-run: kmemleak scans after COMMAND: $SECONDS s"
			else
				echo "no $kl in this kernel (CONFIG_DEBUG_KMEMLEAK off?)" > "$RESULTS_DIR/kmemleak.missing"
			fi
		EOF
	fi
	cat <<-'EOF'
		dmesg > "$RESULTS_DIR/dmesg"
		cat /proc/sys/kernel/tainted > "$RESULTS_DIR/tainted"
		exit "$rc"
	EOF
} >"$stage/guest.sh"
chmod +x "$stage/guest.sh"

vng_args=(
	--run "$stage/boot/vmlinuz-$kver"
	--disable-kvm
	--user root
	--cpus "$cpus"
	--memory "$memory"
	--name "$name"
	--cwd "$repo"
	--rodir "$stage"
	--rwdir "$results"
	# vng sends the kernel console (ttyS0) to /dev/null at loglevel 1, and the 8250 driver
	# serves one console only: add a virtio console (hvc0) writing to a file, printing every
	# level, so that a guest that dies (panic, hang) still leaves its kernel log behind.
	# Single-threaded TCG: with one host thread per vCPU (MTTCG), a CPU can run a stale
	# translation of kernel text that another CPU just patched (static keys, e.g. ping's
	# timestamp key), which ends in "Oops: int3" in unrelated code.
	--qemu-opts="-accel tcg,thread=single -device virtio-serial-pci,id=vmrun -device virtconsole,bus=vmrun.0,chardev=vmrunlog -chardev file,id=vmrunlog,path=$results/serial.log${qemu_opts[*]/#/ }"
	--append "console=hvc0 ignore_loglevel"
	# The host's root file system over 9p, cached in the guest (cache=loose; vng mounts it
	# uncached): without a cache every exec reads bash, libc and python3 from the host again,
	# which costs the debug kernel seconds per process. The guest cannot write there, and
	# nothing it reads there changes while it runs (the module, the tests and the kernel
	# tree are built before it boots; results, queue and stage are mounts of their own,
	# uncached). The same options as vng's, plus the cache; --force-9p keeps vng from
	# using virtiofs, which these options would not fit.
	--force-9p
	--append "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"
)
for a in "${appends[@]}"; do
	vng_args+=(--append "$a")
done
for d in "${rwdirs[@]}"; do
	[ -d "$d" ] || die "--rwdir $d: no such directory"
	vng_args+=(--rwdir "$(cd "$d" && pwd)")
done
vng_args+=(--exec "$stage/guest.sh")

echo "vm-run: booting $kver from $tree (results: $results)" >&2
start=$(date +%s)
set +e
timeout -k 30 "$timeout_s" vng "${vng_args[@]}" </dev/null 2>&1 | tee "$results/console.log"
vng_rc=${PIPESTATUS[0]}
set -e
echo "vm-run: guest finished after $(($(date +%s) - start)) s (vng exit $vng_rc)" >&2

status=0
if [ "$vng_rc" = 124 ] || [ "$vng_rc" = 137 ]; then
	echo "vm-run: FAIL: timeout after $timeout_s s" >&2
	exit 124
fi
if [ ! -s "$results/exit_status" ] || [ ! -e "$results/dmesg" ] || [ ! -s "$results/tainted" ]; then
	echo "vm-run: FAIL: the guest died before COMMAND finished (vng exit $vng_rc)" >&2
	echo "vm-run: its kernel console ($results/serial.log) ends with:" >&2
	tail -n 60 "$results/serial.log" 2>/dev/null | sed 's/^/vm-run:   /' >&2
	exit 255
fi
cmd_rc=$(cat "$results/exit_status")
echo "vm-run: COMMAND exit status $cmd_rc" >&2

# Kernel log check.
bad=$(grep -E "$BAD_RE" "$results/dmesg" | grep -vE "$BENIGN_RE" || true)
if [ -n "$bad" ]; then
	echo "vm-run: FAIL: kernel log ($results/dmesg) has:" >&2
	while IFS= read -r line; do echo "vm-run:   $line"; done <<<"$bad" >&2
	status=1
fi
tainted=$(cat "$results/tainted")
if ! [[ $tainted =~ ^[0-9]+$ ]] || [ $((tainted & ~TAINT_OK)) -ne 0 ]; then
	echo "vm-run: FAIL: kernel tainted $tainted (only $TAINT_OK, O, is allowed):" >&2
	if [[ $tainted =~ ^[0-9]+$ ]]; then
		letters=PFSRMBUDAWCIOELKXTN
		for ((bit = 0; bit < 19; bit++)); do
			((tainted >> bit & 1)) && echo "vm-run:   bit $bit (${letters:bit:1})" >&2
		done
	fi
	grep -E "taints kernel|Tainted: " "$results/dmesg" | sed 's/^/vm-run:   /' >&2 || true
	status=1
fi
if [ "$kmemleak" = 1 ]; then
	if [ -e "$results/kmemleak.missing" ]; then
		echo "vm-run: FAIL: $(cat "$results/kmemleak.missing")" >&2
		status=1
	elif [ -s "$results/kmemleak" ]; then
		echo "vm-run: FAIL: kmemleak reports ($results/kmemleak):" >&2
		sed 's/^/vm-run:   /' "$results/kmemleak" >&2
		status=1
	else
		echo "vm-run: kmemleak: nothing reported" >&2
	fi
fi
[ "$status" = 0 ] && echo "vm-run: kernel log clean, tainted=$tainted" >&2
[ -s "$results/summary" ] && echo "vm-run: summary: $(cat "$results/summary")" >&2

if [ "$cmd_rc" != 0 ]; then
	exit "$cmd_rc"
fi
exit "$status"
