// SPDX-License-Identifier: GPL-2.0

//! Raw bindings: the kernel crate's, plus what Kbuild generates from `icmp_ct_helpers.h`.
//!
//! The generated file is included here, never committed. It is made with
//! `--no-recursive-allowlist`, so the types it mentions but does not define (`sk_buff`,
//! `net`, `seq_file`, ...) resolve to the glob-imported `kernel::bindings` ones.

#![allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    dead_code,
    improper_ctypes,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unsafe_op_in_unsafe_fn
)]

pub(crate) use kernel::bindings::*;
use kernel::ffi;

include!("bindings_generated.rs");
