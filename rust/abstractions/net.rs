// SPDX-License-Identifier: GPL-2.0

//! Network namespaces (`struct net`).

use crate::bindings;
use kernel::types::Opaque;

/// A network namespace.
///
/// # Invariants
///
/// A `&Net` always refers to a live `struct net`.
#[repr(transparent)]
pub(crate) struct Net(Opaque<bindings::net>);

impl Net {
    /// Creates a reference to the namespace at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a `struct net` that stays alive for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::net) -> &'a Net {
        // SAFETY: `Net` is `repr(transparent)` over `Opaque<net>`, and the caller guarantees
        // that `ptr` is valid for `'a`.
        // INVARIANT: the caller guarantees liveness for `'a`.
        unsafe { &*ptr.cast::<Net>() }
    }

    /// The raw pointer, for kernel calls.
    pub(crate) fn as_ptr(&self) -> *mut bindings::net {
        self.0.get()
    }

    /// Whether this is the initial namespace (`init_net`).
    pub(crate) fn is_init(&self) -> bool {
        // SAFETY: by the type invariant `self` is a live namespace.
        unsafe { bindings::icmp_ct_net_is_init(self.as_ptr()) }
    }

    /// The namespace's inode number, as `lsns` and `/proc/PID/ns/net` show it.
    pub(crate) fn inum(&self) -> u32 {
        // SAFETY: by the type invariant `self` is a live namespace.
        unsafe { bindings::icmp_ct_net_inum(self.as_ptr()) }
    }

    /// The namespace's `/proc/net` directory.
    pub(crate) fn proc_net(&self) -> *mut bindings::proc_dir_entry {
        // SAFETY: by the type invariant `self` is live; `proc_net` is set up before any
        // pernet subsystem's init runs and stays until after its exit.
        unsafe { bindings::icmp_ct_net_proc_net(self.as_ptr()) }
    }

    /// The namespace's `/proc/net/stat` directory.
    pub(crate) fn proc_net_stat(&self) -> *mut bindings::proc_dir_entry {
        // SAFETY: as in `proc_net`.
        unsafe { bindings::icmp_ct_net_proc_net_stat(self.as_ptr()) }
    }
}
