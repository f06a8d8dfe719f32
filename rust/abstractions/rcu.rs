// SPDX-License-Identifier: GPL-2.0

//! RCU read-side critical sections and grace periods.

use crate::bindings;
use core::marker::PhantomData;

/// An RCU read-side critical section, ended when the guard is dropped.
///
/// Data published with RCU and reached while a guard is alive stays valid for the guard's
/// lifetime. The guard is neither `Send` nor `Sync`: the section belongs to this CPU context.
pub(crate) struct RcuGuard(PhantomData<*mut ()>);

impl RcuGuard {
    /// Enters a read-side critical section (`rcu_read_lock()`).
    pub(crate) fn new() -> Self {
        // SAFETY: `rcu_read_lock` has no preconditions; `Drop` pairs it with the unlock.
        unsafe { bindings::icmp_ct_rcu_read_lock() };
        RcuGuard(PhantomData)
    }
}

impl Drop for RcuGuard {
    fn drop(&mut self) {
        // SAFETY: the guard was created by `new`, which took the read lock on this context.
        unsafe { bindings::icmp_ct_rcu_read_unlock() };
    }
}

/// Waits until every RCU read-side critical section running now has ended.
pub(crate) fn synchronize() {
    // SAFETY: `synchronize_rcu` may sleep; it is only called from process context (module
    // init/exit and namespace setup/teardown paths).
    unsafe { bindings::synchronize_rcu() };
}

impl RcuGuard {
    /// Leaves the critical section open after the guard is gone, for callbacks that enter it
    /// in one call and leave it in another (seq_file `start`/`stop`).
    pub(crate) fn keep_open(self) {
        core::mem::forget(self);
    }

    /// A guard for a critical section that the caller entered earlier.
    ///
    /// # Safety
    ///
    /// The calling context must be inside an RCU read-side critical section that lasts as
    /// long as the returned guard, whose drop ends that section.
    pub(crate) unsafe fn assume_entered() -> Self {
        RcuGuard(PhantomData)
    }
}
