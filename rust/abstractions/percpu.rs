// SPDX-License-Identifier: GPL-2.0

//! Per-CPU counters, like the kernel's own statistics (nf_conntrack's `ip_conntrack_stat`,
//! the SNMP MIBs): each CPU adds to its own copy with `this_cpu_add`, so counting never
//! bounces a cache line between CPUs; a read sums every possible CPU's copy.
//!
//! A copy is an `unsigned long`, as in the SNMP MIBs: one machine word, never torn when another
//! CPU reads it. Sums wrap like the copies, so on a 32-bit kernel a counter wraps at 2^32.

use crate::bindings;
use core::ptr::NonNull;
use kernel::ffi::c_ulong;
use kernel::prelude::*;

/// `N` counters per possible CPU, all starting at zero. Freed on drop.
pub(crate) struct PerCpuCounters<const N: usize> {
    /// A `__percpu` address: only the shim's per-CPU operations may turn it into a pointer.
    cells: NonNull<c_ulong>,
}

// SAFETY: the per-CPU area is not tied to the thread that allocated it; it may be freed from
// any thread.
unsafe impl<const N: usize> Send for PerCpuCounters<N> {}

// SAFETY: `&self` methods only use `this_cpu_add`, which is safe against every other CPU (each
// writes its own copy) and against the same CPU (see `add`), and reads of single words.
unsafe impl<const N: usize> Sync for PerCpuCounters<N> {}

impl<const N: usize> PerCpuCounters<N> {
    /// `N`, checked at build time against what the per-CPU allocator takes: no empty area,
    /// at most 32 KiB per CPU (`PCPU_MIN_UNIT_SIZE`).
    const COUNT: usize = {
        assert!(N > 0 && N <= 32 * 1024 / core::mem::size_of::<c_ulong>());
        N
    };

    /// Allocates the counters, zeroed. Process context (may sleep).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `COUNT` counters fit the allocator's limits; callers are in process context.
        let cells = unsafe { bindings::icmp_ct_percpu_counters_alloc(Self::COUNT) };
        Ok(PerCpuCounters {
            cells: NonNull::new(cells).ok_or(ENOMEM)?,
        })
    }

    /// Adds `amount` (wrapping; truncated to a word on 32-bit kernels) to this CPU's copy of
    /// counter `index`; an `index` out of range counts nothing. Any context: process (even
    /// with preemption enabled), softirq, hardirq.
    pub(crate) fn add(&self, index: usize, amount: u64) {
        if index >= N {
            return;
        }
        // Wrapping truncation: copies and sums are words and wrap alike.
        let amount = amount as c_ulong;
        // SAFETY: `cells` is live (freed only on drop) and holds `N > index` counters.
        // `this_cpu_add` is one read-modify-write that neither an interrupt on this CPU nor
        // preemption can split: on x86 it is a single `%gs`-relative `add` instruction, so
        // preemption comes before or after it and a migrated task adds to its new CPU's copy;
        // other architectures disable preemption or (the generic version) interrupts around
        // it. So it needs no `preempt_disable` in process context, and a softirq or hardirq
        // counting on the same CPU loses no update.
        unsafe { bindings::icmp_ct_percpu_counter_add(self.cells.as_ptr(), index, amount) };
    }

    /// Adds one to counter `index`; as [`Self::add`].
    pub(crate) fn inc(&self, index: usize) {
        self.add(index, 1);
    }

    /// Counter `index` summed over every possible CPU (0 for an `index` out of range). A CPU
    /// counting meanwhile may or may not be included, as for the kernel's statistics. Any
    /// context.
    pub(crate) fn sum(&self, index: usize) -> u64 {
        if index >= N {
            return 0;
        }
        // SAFETY: `cells` is live and holds `N > index` counters; the shim reads each CPU's
        // copy with `READ_ONCE`, a single word load.
        let sum = unsafe { bindings::icmp_ct_percpu_counter_sum(self.cells.as_ptr(), index) };
        u64::try_from(sum).unwrap_or(u64::MAX)
    }
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: `cells` came from `icmp_ct_percpu_counters_alloc` and is freed once; owning
        // `self` means no `add` or `sum` is running. `free_percpu` may be called from any
        // context.
        unsafe { bindings::icmp_ct_percpu_counters_free(self.cells.as_ptr()) };
    }
}
