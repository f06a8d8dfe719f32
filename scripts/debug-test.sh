#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# debug-test.sh TEST [NAME=VALUE...]: one selftest in a guest of the debug kernel (KASAN,
# lockdep, PROVE_RCU, kmemleak; built and cached like make check's), with the module built
# against that kernel in a copy of the sources (.build-debug-test), so that the normal build
# stays as it is. NAME=VALUE pairs go to the test's environment. `make hostile` and
# `make stress` run their long versions this way.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ $# -ge 1 ] || { sed -n '4,9s/^# \{0,1\}//p' "$0" >&2; exit 2; }
test=$1
shift

scripts/kernel.sh build debug >/dev/null
kdir=$(scripts/kernel.sh path debug)
build=$top/.build-debug-test
scripts/build-copy.sh "$build" "$kdir"

envs=(--env ICMP_CT_TIME_SCALE=5 --env TIMEOUT=7200)
for kv in "$@"; do
	envs+=(--env "$kv")
done
exec scripts/vm-run.sh --kernel "$kdir" --name "${test%.sh}" --kmemleak --append no5lvl \
	--timeout 9000 "${envs[@]}" -- env ICMP_CT_KO="$build/icmp_ct.ko" \
	selftests/run_kselftest.sh -t "$test"
