// SPDX-License-Identifier: GPL-2.0

//! Integer module parameters (`modprobe icmp_ct keep_replied=1`).
//!
//! Linux 6.12's `module!` cannot declare parameters, so `icmp_ct_shim.c` declares them with
//! `module_param_named()` (the `struct kernel_param` in `__param` and the `modinfo` strings
//! that macro builds), each on the value of an [`IntParam`] defined here under the symbol
//! `icmp_ct_param_<name>` by [`param!`](crate::param). The kernel's parser writes the values
//! through `int *` while the module loads, before `init` runs on the same thread; the files
//! in `/sys/module/icmp_ct/parameters/` are read-only (0444), so nothing writes them later.

use core::sync::atomic::{AtomicI32, Ordering};
use kernel::str::CStr;

/// One `int` (or `uint`) module parameter. `#[repr(C)]` with the value first: the C
/// declaration `extern int icmp_ct_param_<name>` names the value.
#[repr(C)]
pub(crate) struct IntParam {
    // An atomic, hence interior mutability: the static lives in writable memory and may be
    // written from C while Rust holds shared references (before `init`: none exist yet).
    value: AtomicI32,
    name: &'static CStr,
}

impl IntParam {
    /// A parameter called `name` whose value is `default` unless given at load time.
    pub(crate) const fn new(name: &'static CStr, default: i32) -> Self {
        IntParam {
            value: AtomicI32::new(default),
            name,
        }
    }

    /// The value given at load time, or the default.
    pub(crate) fn get(&self) -> i32 {
        self.value.load(Ordering::Relaxed)
    }

    /// The parameter's name, as `modinfo` lists it.
    pub(crate) fn name(&self) -> &'static CStr {
        self.name
    }
}

/// `param!(name = default)`: a `&'static IntParam` exported as `icmp_ct_param_<name>`, which
/// `icmp_ct_shim.c` must declare with `ICMP_CT_PARAM(name, ...)`.
#[macro_export]
macro_rules! param {
    ($name:ident = $default:expr) => {{
        #[export_name = concat!("icmp_ct_param_", stringify!($name))]
        static PARAM: $crate::abstractions::module_param::IntParam =
            $crate::abstractions::module_param::IntParam::new(
                kernel::c_str!(stringify!($name)),
                $default,
            );
        &PARAM
    }};
}
