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

    /// The bytes of one CPU's copies.
    const BYTES: usize = Self::COUNT * core::mem::size_of::<c_ulong>();

    /// Allocates the counters, zeroed. Process context (may sleep).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `COUNT` counters fit the allocator's limits; callers are in process context.
        let cells = unsafe {
            bindings::icmp_ct_percpu_area_alloc(Self::BYTES, core::mem::align_of::<c_ulong>())
        };
        Ok(PerCpuCounters {
            cells: NonNull::new(cells.cast()).ok_or(ENOMEM)?,
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
        // SAFETY: `cells` came from `icmp_ct_percpu_area_alloc` and is freed once; owning
        // `self` means no `add` or `sum` is running. `free_percpu` may be called from any
        // context.
        unsafe { bindings::icmp_ct_percpu_area_free(self.cells.as_ptr().cast()) };
    }
}

/// One value per CPU, tagged with what it belongs to, that only code serving a softirq reads
/// or writes: a hand-over from one point of a packet's way through the stack to a later one,
/// when both run in the same softirq on the same CPU. Anywhere else (process context, hard
/// interrupts) [`Self::put`] stores nothing and [`Self::take`] finds nothing.
///
/// The value is copied in and out: no reference to a CPU's copy outlives a call.
pub(crate) struct SoftirqSlot<K: Copy + PartialEq, T: Copy> {
    /// A `__percpu` address of a [`Tagged`], all zero (empty) at first.
    area: NonNull<Tagged<K, T>>,
}

/// A CPU's copy of a [`SoftirqSlot`]. All-zero bytes are a valid, empty copy.
#[repr(C)]
struct Tagged<K, T> {
    /// Whether `tag` and `value` hold something.
    full: bool,
    tag: core::mem::MaybeUninit<K>,
    value: core::mem::MaybeUninit<T>,
}

// SAFETY: the per-CPU area may be freed from any thread; values are plain copies (`Copy`).
unsafe impl<K: Copy + PartialEq + Send, T: Copy + Send> Send for SoftirqSlot<K, T> {}
// SAFETY: every access goes through `icmp_ct_percpu_softirq_ptr`, which hands out a CPU's copy
// only to the softirq that CPU serves, which nothing else on that CPU interrupts with another
// access (see `copy`).
unsafe impl<K: Copy + PartialEq + Send, T: Copy + Send> Sync for SoftirqSlot<K, T> {}

impl<K: Copy + PartialEq, T: Copy> SoftirqSlot<K, T> {
    /// Allocates an empty slot per CPU. Process context (may sleep).
    pub(crate) fn new() -> Result<Self> {
        let size = core::mem::size_of::<Tagged<K, T>>();
        let align = core::mem::align_of::<Tagged<K, T>>();
        // SAFETY: no preconditions; the per-CPU allocator zeroes the area, which is an empty
        // `Tagged` on every CPU.
        let area = unsafe { bindings::icmp_ct_percpu_area_alloc(size, align) };
        Ok(SoftirqSlot {
            area: NonNull::new(area.cast()).ok_or(ENOMEM)?,
        })
    }

    /// This CPU's copy, when the caller serves a softirq.
    fn copy(&self) -> Option<NonNull<Tagged<K, T>>> {
        // SAFETY: `area` is a live per-CPU area (freed only on drop). The pointer returned is
        // this CPU's copy, used only until this softirq call returns: no other softirq runs on
        // this CPU meanwhile, and no other context gets a pointer to it.
        NonNull::new(unsafe { bindings::icmp_ct_percpu_softirq_ptr(self.area.as_ptr().cast()) })
            .map(NonNull::cast)
    }

    /// Stores `value` tagged `tag` in this CPU's copy, replacing what it held; when not
    /// serving a softirq, empties nothing and stores nothing.
    pub(crate) fn put(&self, tag: K, value: T) {
        if let Some(copy) = self.copy() {
            // SAFETY: the copy is ours alone for this call (`copy`), and valid for writes.
            unsafe {
                copy.as_ptr().write(Tagged {
                    full: true,
                    tag: core::mem::MaybeUninit::new(tag),
                    value: core::mem::MaybeUninit::new(value),
                })
            };
        }
    }

    /// Empties this CPU's copy (when serving a softirq).
    pub(crate) fn clear(&self) {
        if let Some(copy) = self.copy() {
            // SAFETY: as for `put`.
            unsafe { (*copy.as_ptr()).full = false };
        }
    }

    /// Takes the value in this CPU's copy if it is tagged `tag`, emptying the copy; `None`
    /// if it holds another tag or nothing, or when not serving a softirq.
    pub(crate) fn take(&self, tag: K) -> Option<T> {
        let copy = self.copy()?;
        // SAFETY: as for `put`; `tag` and `value` were written whenever `full` is true.
        unsafe {
            let copy = &mut *copy.as_ptr();
            if !copy.full || copy.tag.assume_init() != tag {
                return None;
            }
            copy.full = false;
            Some(copy.value.assume_init())
        }
    }
}

impl<K: Copy + PartialEq, T: Copy> Drop for SoftirqSlot<K, T> {
    fn drop(&mut self) {
        // SAFETY: `area` came from `icmp_ct_percpu_area_alloc` and is freed once; owning
        // `self` means no `put` or `take` is running.
        unsafe { bindings::icmp_ct_percpu_area_free(self.area.as_ptr().cast()) };
    }
}
