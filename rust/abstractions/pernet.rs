// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state: a `pernet_operations` registration whose per-namespace
//! private area (`net_generic`) holds one pointer to a boxed `T`.
//!
//! The kernel calls `init` for every namespace that exists at registration and for every
//! namespace created later, `pre_exit` then `exit` when a namespace goes away or the
//! registration is dropped. An RCU grace period separates `pre_exit` from `exit`, so code
//! that runs in RCU read-side sections registered by `T` (netfilter hooks) and is
//! unregistered in [`PernetData::pre_exit`] never sees `T` freed under it.

use crate::abstractions::net::Net;
use crate::abstractions::zeroed::zeroed;
use crate::bindings;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::error::{from_result, to_result};
use kernel::prelude::*;
use kernel::types::Opaque;

/// The id the kernel assigns to a pernet subsystem, kept in a `static`.
pub(crate) struct PernetId(Opaque<u32>);

// SAFETY: the kernel writes the id once in `register_pernet_subsys`, before any callback that
// reads it runs; afterwards it is only read.
unsafe impl Sync for PernetId {}

impl PernetId {
    /// An unassigned id.
    pub(crate) const fn new() -> Self {
        PernetId(Opaque::uninit())
    }

    fn get(&self) -> u32 {
        // SAFETY: written by `register_pernet_subsys` before any callback or lookup runs.
        unsafe { *self.0.get() }
    }
}

/// Per-namespace data managed by a [`PernetRegistration`].
pub(crate) trait PernetData: Sized + Send + Sync + 'static {
    /// The static that holds this type's pernet id.
    fn id() -> &'static PernetId;

    /// Creates the namespace's state; an error makes the namespace creation fail.
    fn init(net: &Net) -> Result<KBox<Self>>;

    /// Called once the state returned by `init` is reachable through the namespace
    /// ([`data`]): the place to start work that looks it up there.
    fn published(&self) {}

    /// Called before the state is dropped; an RCU grace period follows before the drop.
    fn pre_exit(&self);
}

/// The slot in `net`'s generic area that holds the pointer to its `T`.
///
/// # Safety
///
/// `T`'s pernet operations must be registered and their `init` must have started for `net`.
unsafe fn slot<'a, T: PernetData>(net: &'a Net) -> &'a AtomicPtr<T> {
    // SAFETY: per the caller, the generic area of `net` for this id exists; its size is that
    // of a pointer (see `PernetRegistration::new`) and it was zeroed by the kernel.
    unsafe { &*bindings::icmp_ct_net_generic(net.as_ptr(), T::id().get()).cast::<AtomicPtr<T>>() }
}

/// Returns `net`'s `T`, if its `init` has completed.
///
/// # Safety
///
/// The caller must run in a context whose end `T`'s teardown waits for before dropping the
/// data: a netfilter hook or RCU read-side section started before `pre_exit`, or a procfs or
/// sysctl handler of a file that `T` owns and removes on drop.
pub(crate) unsafe fn data<'a, T: PernetData>(net: &'a Net) -> Option<&'a T> {
    // SAFETY: such contexts only exist while the registration is alive.
    let ptr = unsafe { slot::<T>(net) }.load(Ordering::Acquire);
    // SAFETY: a non-null pointer came from `KBox::into_raw` in `init_callback`; the caller's
    // context guarantees that `exit_callback` has not freed it yet.
    unsafe { ptr.as_ref() }
}

/// # Safety
///
/// Called by the kernel with a live namespace, once per namespace.
unsafe extern "C" fn init_callback<T: PernetData>(net: *mut bindings::net) -> core::ffi::c_int {
    from_result(|| {
        // SAFETY: the kernel passes a live namespace that outlives this call.
        let net = unsafe { Net::from_raw(net) };
        let data = T::init(net)?;
        // SAFETY: we are in `init` for `net`.
        let slot = unsafe { slot::<T>(net) };
        let data = KBox::into_raw(data);
        slot.store(data, Ordering::Release);
        // SAFETY: just stored; only `exit`, which cannot run before `init` returns, frees it.
        unsafe { (*data).published() };
        Ok(0)
    })
}

/// # Safety
///
/// Called by the kernel with a live namespace whose `init` succeeded.
unsafe extern "C" fn pre_exit_callback<T: PernetData>(net: *mut bindings::net) {
    // SAFETY: the kernel passes a live namespace.
    let net = unsafe { Net::from_raw(net) };
    // SAFETY: `exit` (which frees the data) has not run yet for this namespace.
    if let Some(data) = unsafe { data::<T>(net) } {
        data.pre_exit();
    }
}

/// # Safety
///
/// Called by the kernel with a live namespace whose `init` succeeded, after `pre_exit` and an
/// RCU grace period.
unsafe extern "C" fn exit_callback<T: PernetData>(net: *mut bindings::net) {
    // SAFETY: the kernel passes a live namespace.
    let net = unsafe { Net::from_raw(net) };
    // SAFETY: `init` ran for `net`.
    let ptr = unsafe { slot::<T>(net) }.swap(core::ptr::null_mut(), Ordering::Acquire);
    if !ptr.is_null() {
        // SAFETY: `ptr` came from `KBox::into_raw` in `init_callback` and was just taken out of
        // the slot, so this is the only owner.
        drop(unsafe { KBox::from_raw(ptr) });
    }
}

/// A registered `pernet_operations` for `T`; unregisters (tearing down every namespace's
/// `T`) on drop.
pub(crate) struct PernetRegistration<T: PernetData> {
    ops: KBox<Opaque<bindings::pernet_operations>>,
    _data: PhantomData<T>,
}

// SAFETY: the registration only holds the operations the kernel reads; dropping it from any
// thread is fine.
unsafe impl<T: PernetData> Send for PernetRegistration<T> {}
// SAFETY: `&PernetRegistration` exposes nothing.
unsafe impl<T: PernetData> Sync for PernetRegistration<T> {}

impl<T: PernetData> PernetRegistration<T> {
    /// Registers `T`'s operations; `T::init` runs for every existing namespace before this
    /// returns.
    pub(crate) fn new() -> Result<Self> {
        let ops = bindings::pernet_operations {
            init: Some(init_callback::<T>),
            pre_exit: Some(pre_exit_callback::<T>),
            exit: Some(exit_callback::<T>),
            id: T::id().0.get(),
            size: core::mem::size_of::<AtomicPtr<T>>(),
            ..zeroed()
        };
        let ops = KBox::new(Opaque::new(ops), GFP_KERNEL)?;
        // SAFETY: `ops` is fully initialised, lives in a heap allocation that is not moved or
        // freed before `drop` unregisters it, and its `id` points to a `static`.
        to_result(unsafe { bindings::register_pernet_subsys(ops.get()) })?;
        Ok(PernetRegistration {
            ops,
            _data: PhantomData,
        })
    }
}

impl<T: PernetData> Drop for PernetRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: `self.ops` was registered in `new`.
        unsafe { bindings::unregister_pernet_subsys(self.ops.get()) };
    }
}
