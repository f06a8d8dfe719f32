// SPDX-License-Identifier: GPL-2.0

//! A spin lock that also disables bottom halves (`spin_lock_bh`), for data that both process
//! context and the softirq packet path write. The 6.12 `kernel` crate's `SpinLock` has no
//! such variant: taken in process context, a plain spin lock could deadlock against a
//! softirq on the same CPU.

use crate::bindings;
use core::cell::UnsafeCell;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A `spinlock_t` taken with `spin_lock_bh`, protecting a `T`.
///
/// The lock lives in its own heap allocation, since a `spinlock_t` must not move once
/// initialised.
pub(crate) struct SpinLockBh<T> {
    inner: KBox<Inner<T>>,
}

struct Inner<T> {
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `data`, so sharing the lock shares `T` only with
// mutual exclusion: `T: Send` suffices, as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for SpinLockBh<T> {}
// SAFETY: moving the lock moves the `T`.
unsafe impl<T: Send> Send for SpinLockBh<T> {}

impl<T> SpinLockBh<T> {
    /// An unlocked lock holding `data`.
    pub(crate) fn new(data: T) -> Result<Self> {
        let inner = KBox::new(
            Inner {
                lock: Opaque::uninit(),
                data: UnsafeCell::new(data),
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `inner.lock` is at its final address (heap) and not yet used.
        unsafe { bindings::icmp_ct_spin_lock_init(inner.lock.get()) };
        Ok(SpinLockBh { inner })
    }

    /// Takes the lock, with bottom halves disabled until the guard is dropped.
    pub(crate) fn lock(&self) -> SpinLockBhGuard<'_, T> {
        // SAFETY: the lock was initialised in `new`.
        unsafe { bindings::icmp_ct_spin_lock_bh(self.inner.lock.get()) };
        SpinLockBhGuard {
            lock: self,
            _not_send: core::marker::PhantomData,
        }
    }
}

/// Access to the data of a held [`SpinLockBh`]. Not `Send`: the lock must be released on
/// the CPU context that took it, with bottom halves enabled again there.
pub(crate) struct SpinLockBhGuard<'a, T> {
    lock: &'a SpinLockBh<T>,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl<T> core::ops::Deref for SpinLockBhGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held for the guard's lifetime.
        unsafe { &*self.lock.inner.data.get() }
    }
}

impl<T> core::ops::DerefMut for SpinLockBhGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held for the guard's lifetime, and `&mut self` is unique.
        unsafe { &mut *self.lock.inner.data.get() }
    }
}

impl<T> Drop for SpinLockBhGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard exists only while the lock is held by this context.
        unsafe { bindings::icmp_ct_spin_unlock_bh(self.lock.inner.lock.get()) };
    }
}
