// SPDX-License-Identifier: GPL-2.0

//! A per-namespace table of validated integer sysctls.
//!
//! Writes go through `proc_dointvec_minmax`: a value outside `[min, max]` or anything that is
//! not an integer fails with `EINVAL` and leaves the old value in place. The values live in
//! the table's own allocation as `AtomicI32`s (same layout as `int`), so readers in the packet
//! path load them without locks while a writer stores them.

use crate::abstractions::module_param::IntParam;
use crate::abstractions::net::Net;
use crate::abstractions::pernet::{self, PernetData};
use crate::bindings;
use core::sync::atomic::{AtomicI32, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;

/// Where a sysctl's value lives and who may change it.
pub(crate) enum KnobKind {
    /// A value of this namespace, starting at its module parameter's value, writable by the
    /// namespace's root.
    PerNet {
        /// The module parameter holding the initial value.
        start: &'static IntParam,
    },
    /// A read-only value computed on each read by [`SysctlComputed::computed`].
    Computed,
    /// One value shared by all namespaces, writable only from the initial namespace.
    Global(&'static AtomicI32),
}

/// One integer sysctl.
pub(crate) struct IntKnob {
    /// The file name under the table's path.
    pub(crate) name: &'static CStr,
    /// The smallest value a write may set.
    pub(crate) min: i32,
    /// The largest value a write may set.
    pub(crate) max: i32,
    /// Where the value lives.
    pub(crate) kind: KnobKind,
}

/// Namespace state that computes the values of its [`KnobKind::Computed`] sysctls.
pub(crate) trait SysctlComputed: PernetData {
    /// The current value of knob `index`.
    fn computed(&self, index: usize) -> i32;
}

/// `proc_handler` of computed sysctls: `extra1` is the namespace, `extra2` the knob index.
///
/// # Safety
///
/// Called by the sysctl core for an entry set up by [`SysctlTable::register`] for `T`.
unsafe extern "C" fn computed_handler<T: SysctlComputed>(
    table: *const bindings::ctl_table,
    write: core::ffi::c_int,
    buffer: *mut core::ffi::c_void,
    lenp: *mut usize,
    ppos: *mut bindings::loff_t,
) -> core::ffi::c_int {
    if write != 0 {
        return EPERM.to_errno();
    }
    // SAFETY: the sysctl core passes the live entry.
    let table = unsafe { &*table };
    // SAFETY: `extra1` is the namespace owning the table, alive while the table is.
    let net = unsafe { Net::from_raw(table.extra1.cast()) };
    let index = table.extra2 as usize;
    // SAFETY: a sysctl handler of a table that `T` owns and unregisters before it is freed.
    let value = unsafe { pernet::data::<T>(net) }.map_or(0, |data| data.computed(index));
    let local = bindings::ctl_table {
        data: (&value as *const i32).cast_mut().cast(),
        maxlen: core::mem::size_of::<i32>() as i32,
        ..*table
    };
    // SAFETY: `local` is a valid read-only entry for the duration of the call; the other
    // arguments come from the sysctl core unchanged.
    unsafe { bindings::proc_dointvec(&local, write, buffer, lenp, ppos) }
}

struct Storage<const N: usize> {
    table: [bindings::ctl_table; N],
    values: [AtomicI32; N],
    bounds: [[i32; 2]; N],
}

/// A registered sysctl table; unregistered on drop.
///
/// # Invariants
///
/// `header` is the registration of `storage.table`, whose pointers refer into `storage` or
/// to `'static` data.
pub(crate) struct SysctlTable<const N: usize> {
    header: *mut bindings::ctl_table_header,
    storage: KBox<Storage<N>>,
    knobs: &'static [IntKnob; N],
}

// SAFETY: the header is only passed to `unregister_net_sysctl_table`, callable from any
// thread; the values are atomics.
unsafe impl<const N: usize> Send for SysctlTable<N> {}
// SAFETY: `&self` methods only load atomics.
unsafe impl<const N: usize> Sync for SysctlTable<N> {}

impl<const N: usize> SysctlTable<N> {
    /// Registers `knobs` under `path` (e.g. `net/ipv4/netfilter`) in `net`; `T` computes the
    /// [`KnobKind::Computed`] ones.
    pub(crate) fn register<T: SysctlComputed>(
        net: &Net,
        path: &'static CStr,
        knobs: &'static [IntKnob; N],
    ) -> Result<Self> {
        let storage = Storage {
            table: core::array::from_fn(|_| bindings::ctl_table::default()),
            values: core::array::from_fn(|i| {
                AtomicI32::new(match knobs.get(i).map(|knob| &knob.kind) {
                    Some(KnobKind::PerNet { start }) => start.get(),
                    _ => 0,
                })
            }),
            bounds: core::array::from_fn(|i| knobs.get(i).map_or([0, 0], |k| [k.min, k.max])),
        };
        let mut storage = KBox::new(storage, GFP_KERNEL)?;
        let storage_ref = &mut *storage;
        let entries = storage_ref
            .table
            .iter_mut()
            .zip(storage_ref.values.iter())
            .zip(storage_ref.bounds.iter())
            .zip(knobs.iter())
            .zip(0..N);
        // (`enumerate` would bring an overflow check, hence a panic path, into the module.)
        for ((((entry, value), bounds), knob), index) in entries {
            let (data, mode) = match knob.kind {
                KnobKind::PerNet { .. } => (value.as_ptr(), 0o644),
                KnobKind::Computed => (core::ptr::null_mut(), 0o444),
                KnobKind::Global(global) if net.is_init() => (global.as_ptr(), 0o644),
                KnobKind::Global(global) => (global.as_ptr(), 0o444),
            };
            *entry = match knob.kind {
                KnobKind::Computed => bindings::ctl_table {
                    procname: knob.name.as_char_ptr(),
                    mode,
                    proc_handler: Some(computed_handler::<T>),
                    extra1: net.as_ptr().cast(),
                    extra2: index as *mut core::ffi::c_void,
                    ..Default::default()
                },
                _ => bindings::ctl_table {
                    procname: knob.name.as_char_ptr(),
                    data: data.cast(),
                    maxlen: core::mem::size_of::<i32>() as i32,
                    mode,
                    proc_handler: Some(bindings::proc_dointvec_minmax),
                    extra1: bounds.as_ptr().cast_mut().cast(),
                    extra2: bounds.as_ptr().wrapping_add(1).cast_mut().cast(),
                    ..Default::default()
                },
            };
        }
        // SAFETY: `net` is alive; the table and everything it points to lives in `storage`
        // (a heap allocation owned by the result, freed only after `drop` unregisters) or is
        // `'static`.
        let header = unsafe {
            bindings::register_net_sysctl_sz(
                net.as_ptr(),
                path.as_char_ptr(),
                storage.table.as_mut_ptr(),
                N,
            )
        };
        if header.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: `header` registers `storage.table`.
        Ok(SysctlTable {
            header,
            storage,
            knobs,
        })
    }

    /// The value of knob `index` now (0 for an index out of range).
    pub(crate) fn get(&self, index: usize) -> i32 {
        self.cell(index)
            .map_or(0, |value| value.load(Ordering::Relaxed))
    }

    fn cell(&self, index: usize) -> Option<&AtomicI32> {
        match &self.knobs.get(index)?.kind {
            KnobKind::Global(global) => Some(global),
            _ => self.storage.values.get(index),
        }
    }
}

impl<const N: usize> Drop for SysctlTable<N> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `header` is a live registration; this waits for
        // handlers in progress, after which nothing refers to `storage`.
        unsafe { bindings::unregister_net_sysctl_table(self.header) };
    }
}
