// SPDX-License-Identifier: GPL-2.0

//! All-zero C structures, the way C code declares `struct foo x = {};` before filling in
//! the fields it uses.

use crate::bindings;

/// A C type for which all-zero bytes are a valid value.
///
/// # Safety
///
/// Every field of the type must accept all-zero bytes: integers, raw pointers, `Option`s of
/// function pointers, and structures of those; no references, no non-nullable pointers, no
/// enums without a zero variant.
pub(crate) unsafe trait ZeroValid: Sized {}

// SAFETY: integers, raw pointers, nullable function pointers and an unlinked `list_head`.
unsafe impl ZeroValid for bindings::pernet_operations {}

// SAFETY: an integer and nullable function pointers.
unsafe impl ZeroValid for bindings::proc_ops {}

/// An all-zero `T`.
pub(crate) const fn zeroed<T: ZeroValid>() -> T {
    // SAFETY: `T: ZeroValid` promises that all-zero bytes are a valid `T`.
    unsafe { core::mem::zeroed() }
}
