#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Installs what building and testing icmp_ct needs: Debian packages, the rust-src
# component, bindgen-cli and virtme-ng at known-good versions. Idempotent and quiet when
# everything is present; names what failed otherwise.
set -euo pipefail

BINDGEN_VERSION=0.73.2
VIRTME_NG_VERSION=1.42

APT_PACKAGES=(
	linux-source-6.12 clang lld llvm libclang-dev
	qemu-system-x86 udev iproute2 nftables iputils-ping kmod
	flex bison bc libelf-dev libssl-dev cpio rsync xz-utils
	python3-scapy python3-docutils busybox-static shellcheck pyflakes3
	netsniff-ng python3-matplotlib dkms
)

log() { echo "install-deps: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

missing_packages() {
	local p
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			echo "$p"
	done
}

install_apt() {
	local missing
	missing=$(missing_packages)
	[ -z "$missing" ] && return 0
	log "installing Debian packages: ${missing//$'\n'/ }"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || die "apt-get update"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		die "apt-get install ${missing//$'\n'/ }"
}

install_rust_src() {
	command -v rustup >/dev/null || die "rustup not found (the machine's Rust toolchain)"
	# Output captured first: grep -q closing the pipe early fails it under pipefail.
	local installed
	installed=$(rustup component list --installed 2>/dev/null || true)
	grep -q '^rust-src' <<<"$installed" && return 0
	log "adding the rust-src component"
	rustup component add rust-src >/dev/null 2>&1 || die "rustup component add rust-src"
}

install_bindgen() {
	local version
	version=$(bindgen --version 2>/dev/null || true)
	[ "$version" = "bindgen $BINDGEN_VERSION" ] && return 0
	log "installing bindgen-cli $BINDGEN_VERSION (cargo, about 2 minutes)"
	cargo install --quiet --locked --version "$BINDGEN_VERSION" bindgen-cli >/dev/null 2>&1 ||
		die "cargo install bindgen-cli $BINDGEN_VERSION"
}

install_virtme_ng() {
	local shown
	shown=$(python3 -m pip show virtme-ng 2>/dev/null || true)
	grep -qx "Version: $VIRTME_NG_VERSION" <<<"$shown" && return 0
	log "installing virtme-ng $VIRTME_NG_VERSION (pip)"
	python3 -m pip install --quiet --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION" \
		>/dev/null 2>&1 || die "pip install virtme-ng==$VIRTME_NG_VERSION"
}

install_apt
install_rust_src
install_bindgen
install_virtme_ng
