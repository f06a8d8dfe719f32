#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-kdir.sh KDIR: whether icmp_ct can be built against the kernel tree (or headers) KDIR.
# Silent with exit 0 if it can; otherwise one line on stderr saying why, exit 1. Run before
# kbuild (`make module`, DKMS), so that an unfit kernel is refused with its reason instead
# of a compiler error. RUSTC and BINDGEN name the tools if not rustc and bindgen; LLVM=1
# (the Makefile's default) needs clang.
set -uo pipefail

kdir=${1:?usage: check-kdir.sh KDIR}
rustc=${RUSTC:-rustc}
bindgen=${BINDGEN:-bindgen}

refuse() {
	echo "icmp_ct: cannot build against $kdir: $*" >&2
	exit 1
}

# config_value NAME: NAME's value in the tree's .config, quotes removed; empty if unset.
config_value() {
	sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$kdir/.config"
}

[ -d "$kdir" ] || refuse "no such directory (install the kernel's headers, or pass KDIR=)"
{ [ -f "$kdir/Makefile" ] && [ -f "$kdir/.config" ]; } ||
	refuse "no Makefile or .config: not a configured kernel tree or headers package"
release=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$kdir/include/generated/utsrelease.h" \
	2>/dev/null)
[ -n "$release" ] || refuse "no include/generated/utsrelease.h: the tree was never built"
case $release in
6.12 | 6.12.* | 6.12[-+]*) ;;
*) refuse "Linux $release; icmp_ct is written for the Rust kernel crate of Linux 6.12" ;;
esac
[ "$(config_value CONFIG_RUST)" = y ] || refuse "CONFIG_RUST is not set: the kernel has no Rust support"
[ "$(config_value CONFIG_MODVERSIONS)" != y ] ||
	refuse "CONFIG_MODVERSIONS is set: Linux 6.12 cannot load Rust modules with symbol versions"
for artifact in libcore.rmeta libcompiler_builtins.rmeta libkernel.rmeta libmacros.so; do
	[ -e "$kdir/rust/$artifact" ] ||
		refuse "rust/$artifact missing: the tree's Rust build artifacts are not installed" \
			"(Ubuntu: the linux-lib-rust package of this kernel)"
done
command -v "$rustc" >/dev/null || refuse "no $rustc in PATH (set RUSTC= to the kernel's rustc)"
want=$(config_value CONFIG_RUSTC_VERSION_TEXT)
have=$("$rustc" --version 2>/dev/null | head -n 1)
[ -z "$want" ] || [ "$have" = "$want" ] ||
	refuse "built with '$want', but $rustc is '$have': Rust modules need the kernel's own" \
		"rustc (set RUSTC=)"
command -v "$bindgen" >/dev/null || refuse "no $bindgen in PATH (set BINDGEN=)"
[ "${LLVM:-}" != 1 ] || command -v clang >/dev/null || refuse "no clang in PATH (LLVM=1 builds)"
exit 0
