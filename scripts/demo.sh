#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make demo`: builds icmp_ct.ko, boots the test kernel in a virtme-ng guest, loads the
# module, pings across two namespaces joined by a veth pair, and prints what a user looks at.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
kdir=$(scripts/kernel.sh build normal)
make -s module KDIR="$kdir"
exec scripts/vm-run.sh --kernel "$kdir" --name demo -- scripts/demo-guest.sh "$top/icmp_ct.ko"
