// SPDX-License-Identifier: GPL-2.0

//! A self-rearming delayed work item of a namespace's state (garbage collection).

use crate::abstractions::net::Net;
use crate::abstractions::pernet::{self, PernetData};
use crate::bindings;
use core::marker::PhantomData;
use kernel::prelude::*;
use kernel::types::Opaque;

/// Namespace state with periodic work.
pub(crate) trait PeriodicWork: PernetData {
    /// Runs the work in process context; returns the delay in jiffies until the next run.
    fn run(&self) -> u64;
}

#[repr(C)]
struct Inner {
    // First field: the callback gets a pointer to it and finds `net` next to it.
    work: Opaque<bindings::delayed_work>,
    net: *mut bindings::net,
}

/// A delayed work item running `T::run` for the namespace `net`; cancelled (and waited for)
/// on drop.
pub(crate) struct DelayedWork<T: PeriodicWork> {
    inner: KBox<Inner>,
    _data: PhantomData<T>,
}

// SAFETY: the work item may be scheduled and cancelled from any thread.
unsafe impl<T: PeriodicWork> Send for DelayedWork<T> {}
// SAFETY: `schedule` is safe to call concurrently (the workqueue serialises).
unsafe impl<T: PeriodicWork> Sync for DelayedWork<T> {}

/// # Safety
///
/// Called by the workqueue for a work item initialised by [`DelayedWork::new`].
unsafe extern "C" fn work_callback<T: PeriodicWork>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the `work` field of a delayed_work, the first field of `Inner`.
    let inner = unsafe { &*bindings::icmp_ct_to_delayed_work(work).cast::<Inner>() };
    // SAFETY: the namespace outlives its state, which owns and cancels this work.
    let net = unsafe { Net::from_raw(inner.net) };
    // SAFETY: the state's drop cancels this work and waits for it (`cancel_delayed_work_sync`)
    // before freeing; until then a non-null slot is valid. During `exit` the slot is null.
    let Some(data) = (unsafe { pernet::data::<T>(net) }) else {
        return;
    };
    let delay = data.run();
    // SAFETY: initialised in `new`; re-queueing from the callback is allowed and
    // `cancel_delayed_work_sync` copes with it.
    unsafe { bindings::icmp_ct_schedule_delayed_work(inner.work.get(), delay as _) };
}

impl<T: PeriodicWork> DelayedWork<T> {
    /// A work item for `net`'s `T`, not yet scheduled.
    pub(crate) fn new(net: &Net) -> Result<Self> {
        let inner = KBox::new(
            Inner {
                work: Opaque::uninit(),
                net: net.as_ptr(),
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `inner.work` is at its final (heap) address and not in use.
        unsafe { bindings::icmp_ct_init_delayed_work(inner.work.get(), Some(work_callback::<T>)) };
        Ok(DelayedWork {
            inner,
            _data: PhantomData,
        })
    }

    /// Runs the work after `delay` jiffies, unless it is already pending.
    pub(crate) fn schedule(&self, delay: u64) {
        // SAFETY: initialised in `new`.
        unsafe { bindings::icmp_ct_schedule_delayed_work(self.inner.work.get(), delay as _) };
    }

    /// Cancels the work and waits for a running callback; it does not re-arm afterwards.
    pub(crate) fn cancel(&self) {
        // SAFETY: initialised in `new`; `cancel_delayed_work_sync` also stops a callback that
        // re-queues itself.
        unsafe { bindings::cancel_delayed_work_sync(self.inner.work.get()) };
    }
}

impl<T: PeriodicWork> Drop for DelayedWork<T> {
    fn drop(&mut self) {
        self.cancel();
    }
}
