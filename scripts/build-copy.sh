#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-copy.sh DIR KDIR [MAKE_ARGS...]: builds icmp_ct against KDIR in DIR, a fresh copy of
# the sources, so that the repository's own build (against the normal test kernel) stays as
# it is. For the debug kernel's module, and the profile's build with debug information.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: build-copy.sh DIR KDIR [MAKE_ARGS...]}
kdir=${2:?usage: build-copy.sh DIR KDIR [MAKE_ARGS...]}
shift 2
rm -rf "$dir"
mkdir -p "$dir"
cp -r "$top/Kbuild" "$top/Makefile" "$top/rust" "$top/scripts" "$dir/"
rm -rf "$dir/rust/proto/target"
make -s -C "$dir" module KDIR="$kdir" "$@"
