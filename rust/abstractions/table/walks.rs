// SPDX-License-Identifier: GPL-2.0

//! Walks of a table: garbage collection's resumable walk over the hash table, and the
//! procfs listing's walk over the buckets.

use super::{BucketCursor, Dir, Entry, EntryRef, Table};
use crate::abstractions::jiffies;
use crate::abstractions::pernet::PernetData;
use crate::abstractions::procfs::{ProcSeq, SeqWriter};
use crate::abstractions::rcu::RcuGuard;
use crate::bindings;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::types::Opaque;

/// Nodes a yielding walk visits per RCU read-side section.
const WALK_BATCH: u32 = 256;

/// Garbage collection's position in the table, kept from one slice to the next.
pub(super) struct GcWalker {
    /// Held by the one slice running.
    busy: AtomicBool,
    /// Whether `iter` is entered (a pass is under way).
    entered: UnsafeCell<bool>,
    iter: KBox<Opaque<bindings::rhashtable_iter>>,
}

impl GcWalker {
    pub(super) fn new() -> Result<Self> {
        Ok(GcWalker {
            busy: AtomicBool::new(false),
            entered: UnsafeCell::new(false),
            iter: KBox::new(Opaque::uninit(), GFP_KERNEL)?,
        })
    }

    /// Leaves a pass under way, before the table is destroyed.
    ///
    /// # Safety
    ///
    /// No slice may run any more, and the table the walker walked must still be live.
    pub(super) unsafe fn exit(&mut self) {
        if *self.entered.get_mut() {
            // SAFETY: entered and stopped by the last slice, per the caller.
            unsafe { bindings::icmp_ct_table_walk_exit(self.iter.get()) };
            *self.entered.get_mut() = false;
        }
    }
}

/// What one slice of garbage collection's walk did.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Slice {
    /// Nodes visited (two per entry, one for a single-node entry).
    pub(crate) visited: u32,
    /// Whether the slice reached the end of a pass over the table.
    pub(crate) pass_done: bool,
}

impl Table {
    /// Calls `visit` with the entries of up to `budget` nodes, from where the previous slice
    /// stopped, giving up the CPU and the RCU read-side section between batches of
    /// [`WALK_BATCH`] nodes. Garbage collection's walk: process context only; a concurrent
    /// call returns at once. Follows rhashtable's resumable walker, which keeps its position
    /// between slices (a list position is lost once RCU is released). An entry in the table
    /// during a whole pass is visited at least once in it; a resize rewinds the walker.
    pub(crate) fn collect_slice(&self, budget: u32, mut visit: impl FnMut(EntryRef<'_>)) -> Slice {
        let mut slice = Slice::default();
        if self.gc.busy.swap(true, Ordering::Acquire) {
            return slice;
        }
        let iter = self.gc.iter.get();
        // SAFETY: `busy` makes this the only user of the walker state.
        let entered = unsafe { &mut *self.gc.entered.get() };
        if !*entered {
            // SAFETY: the table is live; `iter` is heap memory that stays put, exited before
            // it is entered again or freed (here at the end of a pass, or in `drop`).
            unsafe { bindings::icmp_ct_table_walk_enter(self.raw(), iter) };
            *entered = true;
        }
        // SAFETY: entered and stopped (or new).
        unsafe { bindings::icmp_ct_table_walk_start(iter) };
        let mut batch = 0u32;
        while slice.visited < budget {
            // SAFETY: started (RCU held).
            let node = unsafe { bindings::icmp_ct_table_walk_next(iter) };
            let Some(node) = NonNull::new(node) else {
                slice.pass_done = true;
                break;
            };
            slice.visited = slice.visited.wrapping_add(1);
            // SAFETY: a node found in the table under the walk's RCU section: its entry is
            // freed only after a grace period, which that section holds off until the next
            // stop; `visit` cannot keep the reference beyond its call.
            let (entry, dir) = unsafe { Entry::from_node(node) };
            // Node 0 stands for its entry (a single node matches as a reply).
            if dir == Dir::Original || entry.is_single() {
                visit(EntryRef { table: self, entry });
            }
            batch = batch.wrapping_add(1);
            if batch >= WALK_BATCH {
                batch = 0;
                // SAFETY: started; the walker keeps its position across stop and start;
                // process context may reschedule with RCU released.
                unsafe {
                    bindings::icmp_ct_table_walk_stop(iter);
                    bindings::icmp_ct_cond_resched();
                    bindings::icmp_ct_table_walk_start(iter);
                }
            }
        }
        // SAFETY: started.
        unsafe { bindings::icmp_ct_table_walk_stop(iter) };
        if slice.pass_done {
            // SAFETY: entered and stopped; the next slice enters again (a new pass).
            unsafe { bindings::icmp_ct_table_walk_exit(iter) };
            *entered = false;
        }
        self.gc.busy.store(false, Ordering::Release);
        slice
    }
}

/// A namespace state whose table `/proc/net/ip_conntrack` lists, one line per entry.
pub(crate) trait TableListing: PernetData {
    /// The table.
    fn table(&self) -> &Table;
    /// Whether `entry` is listed at `now` (expired entries are not).
    fn listed(&self, entry: &Entry, now: u32) -> bool;
    /// Prints `entry`'s line.
    fn show_entry(&self, entry: &Entry, out: &mut SeqWriter) -> fmt::Result;
}

/// The `seq_file` walk of a [`TableListing`]: the table's buckets, each listed entry once
/// unless the table is resized during the walk.
pub(crate) struct Listing<T>(PhantomData<T>);

/// The position of a [`Listing`] walk.
///
/// # Invariants
///
/// A bucket cursor positioned within the RCU read-side section of the current
/// `start`..`stop` (procfs resets it outside it), or the default one. Only this module
/// positions it.
#[derive(Default)]
pub(crate) struct ListingCursor {
    bucket: BucketCursor,
}

impl<T: TableListing> Listing<T> {
    /// From `entry` on, the first listed entry (`entry` itself if it is listed).
    fn settle<'a>(
        data: &'a T,
        mut entry: Option<&'a Entry>,
        now: u32,
        cursor: &mut ListingCursor,
        rcu: &'a RcuGuard,
    ) -> bool {
        while let Some(found) = entry {
            if data.listed(found, now) {
                return true;
            }
            entry = data.table().bucket_next(&mut cursor.bucket, rcu);
        }
        false
    }

    fn at<'a>(cursor: &ListingCursor, _rcu: &'a RcuGuard) -> Option<&'a Entry> {
        let node = NonNull::new(cursor.bucket.node)?;
        // SAFETY: by the type invariant a non-null node was found in the current section,
        // which `_rcu` stands for: its entry is freed only after it.
        Some(unsafe { Entry::from_node(node) }.0)
    }
}

impl<T: TableListing> ProcSeq for Listing<T> {
    type Data = T;
    type Cursor = ListingCursor;

    fn start(data: &T, cursor: &mut ListingCursor, pos: u64, rcu: &RcuGuard) -> bool {
        let now = jiffies::now();
        let first = data.table().bucket_seek(&mut cursor.bucket, 0, rcu);
        let mut found = Self::settle(data, first, now, cursor, rcu);
        let mut skip = pos;
        while skip > 0 && found {
            skip = skip.wrapping_sub(1);
            found = Self::next(data, cursor, rcu);
        }
        found
    }

    fn next(data: &T, cursor: &mut ListingCursor, rcu: &RcuGuard) -> bool {
        let next = data.table().bucket_next(&mut cursor.bucket, rcu);
        Self::settle(data, next, jiffies::now(), cursor, rcu)
    }

    fn show(data: &T, cursor: &ListingCursor, rcu: &RcuGuard, out: &mut SeqWriter) -> fmt::Result {
        match Self::at(cursor, rcu) {
            Some(entry) => data.show_entry(entry, out),
            None => Ok(()),
        }
    }
}
