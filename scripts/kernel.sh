#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel.sh [build|path] [normal|debug]
#
# Builds the test kernel from Debian's linux-source-6.12 and the repository's config
# fragments (selftests/config.vm, selftests/config, for debug also selftests/config.debug)
# on top of allnoconfig, once, into a cache outside the repository keyed by the source package version
# and a hash of the fragments; `path` prints the tree's directory without building.
# ICMP_CT_CACHE overrides the cache root (default /var/cache/icmp_ct).
set -euo pipefail

action=${1:-build}
flavor=${2:-normal}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${ICMP_CT_CACHE:-/var/cache/icmp_ct}
tarball=/usr/src/linux-source-6.12.tar.xz

fragments=("$top/selftests/config.vm" "$top/selftests/config")
case "$flavor" in
normal) ;;
debug) fragments+=("$top/selftests/config.debug") ;;
*) echo "kernel.sh: unknown flavor '$flavor' (normal or debug)" >&2; exit 2 ;;
esac

log() { echo "kernel.sh: $*" >&2; }

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null) || {
	log "linux-source-6.12 is not installed: run scripts/install-deps.sh"
	exit 1
}
# Bump when a change to this script changes the tree it builds.
recipe=2
# The key covers everything that decides the tree's contents: source, fragments, recipe.
key=$( (cat "${fragments[@]}"; echo "recipe=$recipe") | sha256sum | cut -c1-12)
tree="$cache/linux-${src_version//[^A-Za-z0-9.+-]/_}-$flavor-$key"
stamp="$tree/.icmp_ct-built"

if [ "$action" = path ]; then
	echo "$tree"
	exit 0
fi
[ "$action" = build ] || { log "unknown action '$action' (build or path)"; exit 2; }
# A missing fragment hashes to another key, and a build removes the trees of other keys.
for f in "${fragments[@]}"; do
	[ -r "$f" ] || { log "$f is missing: not a complete checkout"; exit 1; }
done

if [ -e "$stamp" ]; then
	echo "$tree"
	exit 0
fi

# One build at a time per cache: a second caller waits, then finds the stamp.
mkdir -p "$cache"
exec 9>"$cache/.lock-$flavor"
if ! flock -n 9; then
	log "another build of the $flavor kernel is running; waiting for it"
	flock 9
fi
if [ -e "$stamp" ]; then
	echo "$tree"
	exit 0
fi
# Trees of this flavor with another key are stale: remove them to save disk.
for old in "$cache"/linux-*-"$flavor"-*; do
	[ -d "$old" ] && [ "$old" != "$tree" ] && rm -rf "$old"
done
start=$(date +%s)
if [ -e "$tree/.icmp_ct-configured" ]; then
	# An interrupted build of the same key: make picks up where it stopped.
	log "resuming the interrupted build of the $flavor test kernel in $tree"
	cd "$tree"
else
	log "building the $flavor test kernel into $tree (first time: 9-15 minutes on 2 cores)"
	rm -rf "$tree" "$tree.tmp"
	mkdir -p "$tree.tmp"
	tar -xf "$tarball" -C "$tree.tmp" --strip-components=1
	mv "$tree.tmp" "$tree"
	cd "$tree"

	# allnoconfig plus the fragments: config.vm is what a virtme-ng guest needs to boot, the
	# others what the module and its tests need. Starting from nothing (not from defconfig,
	# as `vng --kconfig` does) halves the build: every object is compiled twice on a fresh
	# machine, the second time under KASAN.
	{
		LLVM=1 scripts/kconfig/merge_config.sh -n "${fragments[@]}"
	} >"$tree/.icmp_ct-kconfig.log" 2>&1 || {
		cat "$tree/.icmp_ct-kconfig.log" >&2
		log "configuring the kernel failed"
		exit 1
	}
	# A fragment option that Kconfig dropped silently would make a kernel that cannot test us.
	missing=0
	for f in "${fragments[@]}"; do
		while IFS= read -r line; do
			case "$line" in
			CONFIG_*=m)
				# A module may end up built in when something built in selects it.
				grep -qx -- "$line" .config || grep -qx -- "${line%=m}=y" .config ||
					{ log "config lost: $line"; missing=1; }
				;;
			CONFIG_*=*)
				grep -qx -- "$line" .config || { log "config lost: $line"; missing=1; }
				;;
			"# CONFIG_"*" is not set")
				opt=${line#\# }
				opt=${opt%% *}
				! grep -q "^$opt=" .config || { log "config lost: $line"; missing=1; }
				;;
			esac
		done <"$f"
	done
	[ "$missing" = 0 ] || { log "the fragments do not survive Kconfig; fix selftests/config*"; exit 1; }
	touch "$tree/.icmp_ct-configured"
fi
log "configured; compiling (log: $tree/.icmp_ct-build.log)"
make LLVM=1 -j"$(nproc)" >"$tree/.icmp_ct-build.log" 2>&1 &
pid=$!
# Progress: one line a minute with the number of objects built so far.
while kill -0 "$pid" 2>/dev/null; do
	for _ in $(seq 60); do
		sleep 1
		kill -0 "$pid" 2>/dev/null || break
	done
	kill -0 "$pid" 2>/dev/null || break
	log "$(( $(date +%s) - start )) s, $(grep -c '^  CC\|^  RUSTC' "$tree/.icmp_ct-build.log" || true) objects compiled"
done
if ! wait "$pid"; then
	tail -40 "$tree/.icmp_ct-build.log" >&2
	log "kernel build failed"
	exit 1
fi
touch "$stamp"
log "built in $(( $(date +%s) - start )) s"
echo "$tree"
