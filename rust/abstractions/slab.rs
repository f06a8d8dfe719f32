// SPDX-License-Identifier: GPL-2.0

//! The slab caches of table entries, shared by all namespaces: one for TCP entries, which
//! carry sequence state, one for all others.
//!
//! Entries are freed after an RCU grace period (`call_rcu`), so module unload waits for
//! pending frees (`rcu_barrier`) before destroying the cache.

use crate::bindings;
use crate::proto::key::Key;
use crate::proto::tuple::IPPROTO_TCP;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// The cache, set while an [`EntryCache`] exists.
static CACHE: AtomicPtr<bindings::kmem_cache> = AtomicPtr::new(core::ptr::null_mut());
/// The cache of TCP entries (`icmp_ct_tcp_entry`), set with [`CACHE`].
static TCP_CACHE: AtomicPtr<bindings::kmem_cache> = AtomicPtr::new(core::ptr::null_mut());

/// Owner of the entry caches; destroys them on drop.
pub(crate) struct EntryCache(());

impl EntryCache {
    /// Creates the caches. Only one owner may exist.
    pub(crate) fn create() -> Result<Self> {
        // SAFETY: no preconditions.
        let cache = unsafe { bindings::icmp_ct_entry_cache_create() };
        if cache.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: no preconditions.
        let tcp = unsafe { bindings::icmp_ct_tcp_entry_cache_create() };
        if tcp.is_null() {
            // SAFETY: `cache` was just created and never used.
            unsafe { bindings::kmem_cache_destroy(cache) };
            return Err(ENOMEM);
        }
        TCP_CACHE.store(tcp, Ordering::Release);
        if CACHE
            .compare_exchange(
                core::ptr::null_mut(),
                cache,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `cache` was just created and never used; `tcp` is another owner's now,
            // which cannot happen while that owner holds `CACHE`.
            unsafe { bindings::kmem_cache_destroy(cache) };
            return Err(EBUSY);
        }
        Ok(EntryCache(()))
    }

    /// Bytes one entry takes in the cache (the slab object size).
    pub(crate) fn object_size(&self) -> u32 {
        // SAFETY: the cache exists while `self` does.
        unsafe { bindings::kmem_cache_size(CACHE.load(Ordering::Acquire)) }
    }

    /// Bytes one TCP entry takes in its cache.
    pub(crate) fn tcp_object_size(&self) -> u32 {
        // SAFETY: the cache exists while `self` does.
        unsafe { bindings::kmem_cache_size(TCP_CACHE.load(Ordering::Acquire)) }
    }
}

impl Drop for EntryCache {
    fn drop(&mut self) {
        // Frees queued with `call_rcu` still need the cache (and this module's callback).
        // SAFETY: may sleep; module exit runs in process context.
        unsafe { bindings::rcu_barrier() };
        let cache = CACHE.swap(core::ptr::null_mut(), Ordering::AcqRel);
        let tcp = TCP_CACHE.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: every entry has been freed: the tables are gone and their RCU frees done.
        unsafe {
            bindings::kmem_cache_destroy(cache);
            bindings::kmem_cache_destroy(tcp);
        }
    }
}

/// A zeroed entry from the cache, or `None` (no memory, or no cache); with `tcp`, the
/// entry of an `icmp_ct_tcp_entry` whose lock is initialised.
pub(crate) fn alloc(tcp: bool) -> Option<NonNull<bindings::icmp_ct_entry>> {
    if tcp {
        let cache = TCP_CACHE.load(Ordering::Acquire);
        if cache.is_null() {
            return None;
        }
        // SAFETY: `cache` is live while any namespace state (the only caller) exists.
        return NonNull::new(unsafe { bindings::icmp_ct_tcp_entry_alloc(cache) });
    }
    let cache = CACHE.load(Ordering::Acquire);
    if cache.is_null() {
        return None;
    }
    // SAFETY: `cache` is live while any namespace state (the only caller) exists.
    NonNull::new(unsafe { bindings::icmp_ct_entry_alloc(cache) })
}

/// Whether an entry's key is that of a TCP flow, and so it came from the TCP cache.
pub(crate) fn is_tcp_key(key: &bindings::icmp_ct_key) -> bool {
    Key(key.w).protocol() == IPPROTO_TCP
}

/// Returns `entry` to its cache at once.
///
/// # Safety
///
/// `entry` came from [`alloc`], its key was set, and nothing refers to it any more.
pub(crate) unsafe fn free(entry: NonNull<bindings::icmp_ct_entry>) {
    // SAFETY: per the caller, the key is initialised and no longer written.
    let tcp = is_tcp_key(unsafe { &(*entry.as_ptr()).key });
    let cache = if tcp { &TCP_CACHE } else { &CACHE };
    // SAFETY: per the caller, the entry belongs to that live cache and is unused; a TCP
    // entry is the first field of the object allocated.
    unsafe { bindings::kmem_cache_free(cache.load(Ordering::Acquire), entry.as_ptr().cast()) };
}

/// # Safety
///
/// Called by RCU for an entry queued by [`free_after_grace_period`].
unsafe extern "C" fn free_rcu_callback(head: *mut bindings::callback_head) {
    let offset = core::mem::offset_of!(bindings::icmp_ct_entry, rcu);
    // SAFETY: `head` is the `rcu` field of an entry, so stepping back `offset` bytes stays in
    // the same allocation.
    let entry = unsafe { head.cast::<u8>().sub(offset) }.cast::<bindings::icmp_ct_entry>();
    if let Some(entry) = NonNull::new(entry) {
        // SAFETY: a grace period has passed since the entry was unlinked: no reader is left.
        unsafe { free(entry) };
    }
}

/// Returns `entry` to the cache once every current RCU reader is done with it.
///
/// # Safety
///
/// `entry` came from [`alloc`], is no longer reachable by new readers, and is queued once.
pub(crate) unsafe fn free_after_grace_period(entry: NonNull<bindings::icmp_ct_entry>) {
    // SAFETY: `rcu` is a field of the live entry, unused until now.
    unsafe {
        bindings::call_rcu(
            core::ptr::addr_of_mut!((*entry.as_ptr()).rcu),
            Some(free_rcu_callback),
        )
    };
}

/// A heap array of `N` atomic counters, all zero, allocated without building it on the
/// stack first.
pub(crate) fn zeroed_counters<const N: usize>() -> Result<KBox<[core::sync::atomic::AtomicU64; N]>>
{
    let uninit = KBox::<[core::sync::atomic::AtomicU64; N]>::new_uninit(GFP_KERNEL | __GFP_ZERO)?;
    // SAFETY: the memory is zeroed (`__GFP_ZERO`), and all-zero bytes are a valid
    // `AtomicU64` (zero).
    Ok(unsafe { uninit.assume_init() })
}
