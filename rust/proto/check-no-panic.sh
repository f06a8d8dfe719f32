#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Compiles the protocol core as the kernel does (no_std, opt-level 2,
# overflow checks and debug assertions on, panic=abort), instantiating its
# generic functions with a concrete writer, and fails if the object refers
# to any panic symbol: the same check as `nm -u icmp_ct.ko | grep -i panic`.
# Like the kernel build it sets RUSTC_BOOTSTRAP=1, here to stop rustc from
# deferring small functions to their (absent) callers, which would hide them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/check.rs" <<RS
#![no_std]
#![forbid(unsafe_code)]
#[path = "$here/mod.rs"]
pub mod proto;
use core::fmt::{self, Write};
pub struct Buf { pub buf: [u8; 512], pub len: usize }
impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            let slot = self.buf.get_mut(self.len).ok_or(fmt::Error)?;
            *slot = b;
            self.len = self.len.checked_add(1).ok_or(fmt::Error)?;
        }
        Ok(())
    }
}
pub fn line(b: &mut Buf, e: &proto::conntrack_line::LineEntry) -> fmt::Result {
    proto::conntrack_line::write_line(b, e)
}
pub fn tuple(b: &mut Buf, t: &proto::tuple::Tuple) -> fmt::Result { t.write(b) }
pub fn addr(b: &mut Buf, a: &proto::addr::Addr, f: proto::addr::Family) -> fmt::Result { a.write(f, b) }
RS
for dbg in off on; do
    RUSTC_BOOTSTRAP=1 rustc --edition 2021 --crate-type lib --crate-name icmp_ct_check \
        --emit obj -o "$tmp/check.o" \
        -C opt-level=2 -C overflow-checks=on -C debug-assertions=$dbg \
        -C panic=abort -C codegen-units=1 \
        -Z cross-crate-inline-threshold=never "$tmp/check.rs"
    if nm -u "$tmp/check.o" | grep -i panic; then
        echo "panic path found (debug-assertions=$dbg)" >&2
        exit 1
    fi
done
echo "no panic path"
