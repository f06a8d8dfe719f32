#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Host test of scripts/check-kdir.sh (run by scripts/check.sh): fake kernel trees, each unfit
# in one way, must be refused with the one line naming that way; the fit fake tree, and the
# test kernel's tree when it is built, must pass. A fake rustc stands in for the real one.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
check=$top/scripts/check-kdir.sh
work=$(mktemp -d /tmp/check-kdir-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0

RUSTC_TEXT='rustc 1.95.0 (59807616e 2026-04-14)'
mkdir -p "$work/bin"
printf '#!/bin/sh\necho "%s"\n' "$RUSTC_TEXT" >"$work/bin/rustc"
printf '#!/bin/sh\necho "rustc 1.78.0 (9b00956e5 2024-04-29)"\n' >"$work/bin/rustc-1.78"
printf '#!/bin/sh\n' >"$work/bin/bindgen"
chmod +x "$work/bin/"*
export PATH="$work/bin:$PATH" RUSTC=rustc BINDGEN=bindgen LLVM=1

# fit_tree DIR: a fake tree as a Rust-enabled 6.12 build (or headers package) leaves it.
fit_tree() {
	local d=$1 f
	mkdir -p "$d/include/generated" "$d/rust"
	echo "# fake kernel Makefile" >"$d/Makefile"
	printf '#define UTS_RELEASE "6.12.118"\n' >"$d/include/generated/utsrelease.h"
	cat >"$d/.config" <<-EOF
		CONFIG_RUST_IS_AVAILABLE=y
		CONFIG_RUST=y
		CONFIG_RUSTC_VERSION_TEXT="$RUSTC_TEXT"
		# CONFIG_MODVERSIONS is not set
	EOF
	for f in libcore.rmeta libcompiler_builtins.rmeta libkernel.rmeta libmacros.so; do
		: >"$d/rust/$f"
	done
}

# expect NAME WANT SETUP...: runs SETUP on a fresh fit tree, then check-kdir.sh on it; WANT
# is "ok" (exit 0, silent) or a text the single refusal line must contain (exit 1).
expect() {
	local name=$1 want=$2
	shift 2
	local d=$work/tree-${name//[^A-Za-z0-9]/_} out rc
	fit_tree "$d"
	"$@" "$d"
	out=$("$check" "$d" 2>&1)
	rc=$?
	if [ "$want" = ok ]; then
		[ "$rc" = 0 ] && [ -z "$out" ] && { echo "ok   $name"; return; }
	elif [ "$rc" = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] &&
		[[ $out == "icmp_ct: cannot build against $d: "*"$want"* ]]; then
		echo "ok   $name: $out"
		return
	fi
	echo "FAIL $name: exit $rc, expected ${want}; output:"
	echo "     ${out//$'\n'/$'\n'     }"
	failures=$((failures + 1))
}

no_change() { :; }
no_rust() { sed -i '/^CONFIG_RUST=/d' "$1/.config"; }
rust_off() { sed -i 's/^CONFIG_RUST=y$/# CONFIG_RUST is not set/' "$1/.config"; }
modversions() { echo CONFIG_MODVERSIONS=y >>"$1/.config"; }
no_kernel_rmeta() { rm "$1/rust/libkernel.rmeta"; }
no_rust_dir() { rm -r "$1/rust"; }
no_config() { rm "$1/.config"; }
never_built() { rm "$1/include/generated/utsrelease.h"; }
linux_6_8() { printf '#define UTS_RELEASE "6.8.0-49-generic"\n' >"$1/include/generated/utsrelease.h"; }
ubuntu_6_12() { printf '#define UTS_RELEASE "6.12.0-15-generic"\n' >"$1/include/generated/utsrelease.h"; }
other_rustc() { sed -i 's/^CONFIG_RUSTC_VERSION_TEXT=.*/CONFIG_RUSTC_VERSION_TEXT="rustc 1.78.0 (9b00956e5 2024-04-29)"/' "$1/.config"; }

expect "fit tree" ok no_change
expect "distribution 6.12 release string" ok ubuntu_6_12
expect "no CONFIG_RUST line" "CONFIG_RUST is not set" no_rust
expect "CONFIG_RUST off" "CONFIG_RUST is not set" rust_off
expect "CONFIG_MODVERSIONS on" "CONFIG_MODVERSIONS is set" modversions
expect "no rust/libkernel.rmeta" "rust/libkernel.rmeta missing" no_kernel_rmeta
expect "no rust/ at all" "rust/libcore.rmeta missing" no_rust_dir
expect "no .config" "not a configured kernel tree" no_config
expect "never built" "never built" never_built
expect "another kernel version" "Linux 6.8.0-49-generic" linux_6_8
expect "another rustc" "built with 'rustc 1.78.0 (9b00956e5 2024-04-29)', but rustc is '$RUSTC_TEXT'" other_rustc
RUSTC=rustc-1.78 expect "the tree's rustc named by RUSTC" ok other_rustc
RUSTC=no-such-rustc expect "no rustc" "no no-such-rustc in PATH" no_change
BINDGEN=no-such-bindgen expect "no bindgen" "no no-such-bindgen in PATH" no_change
out=$("$check" "$work/absent" 2>&1)
if [ $? = 1 ] && [[ $out == *"no such directory"* ]]; then
	echo "ok   no such directory: $out"
else
	echo "FAIL no such directory: $out"
	failures=$((failures + 1))
fi

# The test kernel, with the real tools: what make module checks.
kdir=$("$top/scripts/kernel.sh" path normal 2>/dev/null)
if [ -n "$kdir" ] && [ -f "$kdir/.config" ]; then
	if out=$(PATH=${PATH#"$work/bin:"} "$check" "$kdir" 2>&1) && [ -z "$out" ]; then
		echo "ok   the test kernel $kdir"
	else
		echo "FAIL the test kernel $kdir: $out"
		failures=$((failures + 1))
	fi
fi

[ "$failures" = 0 ] && echo "all passed" || echo "$failures failed"
[ "$failures" = 0 ]
