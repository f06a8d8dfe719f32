// SPDX-License-Identifier: GPL-2.0

//! Host build of the icmp_ct protocol core.
//!
//! The kernel module compiles `mod.rs` and its submodules as `crate::proto`;
//! this crate root compiles the very same files as a normal `no_std` library so
//! that `cargo test` can exercise them. The lints below mirror the kernel's Rust
//! lints, plus the panic-freedom rules of the project (a panic in softirq
//! crashes the machine): no indexing, no unchecked arithmetic, no unwrap.

#![no_std]
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    rust_2018_idioms,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::as_underscore,
    clippy::ptr_as_ptr,
    clippy::needless_bitwise_bool,
    clippy::let_unit_value,
    clippy::mut_mut,
    clippy::ignored_unit_patterns
)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::integer_division,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::string_slice
    )
)]

#[cfg(test)]
extern crate std;

#[path = "mod.rs"]
mod proto;

pub use proto::*;
