// SPDX-License-Identifier: GPL-2.0

//! Walks of a table with rhashtable's walker: garbage collection's, resumed from one slice
//! to the next, and the procfs listing's, kept for the whole open file.

use super::{Dir, Entry, EntryRef, Table};
use crate::abstractions::jiffies;
use crate::abstractions::pernet::PernetData;
use crate::abstractions::procfs::{ProcSeq, SeqWriter};
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::zeroed::ZeroValid;
use crate::bindings;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::pin::Pin;
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
    /// during a whole pass is visited at least once in it (also when the node the walker
    /// stood on was removed while it was stopped: that bucket is visited again); a resize
    /// rewinds the walker.
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
        // SAFETY: entered and stopped (or new). Resumed so that nothing is skipped when the
        // node the walker stood on was removed meanwhile (often by this collection).
        unsafe { bindings::icmp_ct_table_walk_resume(iter) };
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
                    bindings::icmp_ct_table_walk_resume(iter);
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
///
/// # Safety
///
/// `table` returns the same table for the whole life of the value, and the value removes
/// its listing file (drops the [`ProcEntry`] made with [`Listing<Self>`]) before it drops
/// that table: the file's release leaves the walk on the table, which it must still find.
///
/// [`ProcEntry`]: crate::abstractions::procfs::ProcEntry
pub(crate) unsafe trait TableListing: PernetData {
    /// The table.
    fn table(&self) -> &Table;
    /// Whether `entry` is listed at `now` (expired entries are not).
    fn listed(&self, entry: &Entry, now: u32) -> bool;
    /// Prints `entry`'s line.
    fn show_entry(&self, entry: &Entry, out: &mut SeqWriter) -> fmt::Result;
}

/// The `seq_file` walk of a [`TableListing`]: rhashtable's walker over the hash table, kept
/// for the whole open file, in the table's order.
///
/// An entry in the table for the whole read of the file (from offset 0 to the end, in any
/// number of `read` calls) is listed at least once. It may be listed twice: when the table
/// is resized during the read (the walk starts over in the new bucket array), or when the
/// entry the previous `read` stopped at was removed in between (the walk rescans that
/// bucket). Entries added or removed during the read may or may not be listed.
pub(crate) struct Listing<T>(PhantomData<T>);

/// An open listing's walk: rhashtable's walker on the table of the file's namespace.
///
/// # Invariants
///
/// `iter` is entered on that table iff `entered`, and started (within the RCU read-side
/// section of the current `start`..`stop`) iff `started`, which implies `entered`. `at` is
/// null or the entry of the node the walker stands on, reached while started (it is reset
/// by `stop`). Only this module changes the fields; the value is pinned in the file's
/// private area, so the entered walker, which the table links, never moves.
pub(crate) struct ListingWalk {
    iter: Opaque<bindings::rhashtable_iter>,
    entered: bool,
    started: bool,
    at: *mut bindings::icmp_ct_entry,
}

// SAFETY: all-zero is a walk never entered (the `rhashtable_iter` is only read once entered)
// standing nowhere.
unsafe impl ZeroValid for ListingWalk {}

impl ListingWalk {
    /// From `node` on (the node the walker stands on), the first node that stands for a
    /// listed entry, moving the walker past the others; false at the end of the table.
    ///
    /// # Safety
    ///
    /// The walker must be started, on `data`'s table.
    unsafe fn settle<T: TableListing>(
        &mut self,
        data: &T,
        mut node: *mut bindings::icmp_ct_node,
        now: u32,
    ) -> bool {
        while let Some(found) = NonNull::new(node) {
            // SAFETY: a node the started walker found in the table: its entry is freed only
            // after a grace period, which the walk's RCU section holds off until `stop`.
            let (entry, dir) = unsafe { Entry::from_node(found) };
            // Node 0 stands for its entry (a single node matches as a reply), as in
            // `collect_slice`.
            if (dir == Dir::Original || entry.is_single()) && data.listed(entry, now) {
                // INVARIANT: the entry of the node the walker stands on, reached while started.
                self.at = entry.raw();
                return true;
            }
            // SAFETY: started, per the caller.
            node = unsafe { bindings::icmp_ct_table_walk_next(self.iter.get()) };
        }
        self.at = core::ptr::null_mut();
        false
    }

    /// Leaves the walk (stopped) if one is entered.
    ///
    /// # Safety
    ///
    /// The table the walker was entered on must still be live.
    unsafe fn leave(&mut self) {
        if self.entered {
            // SAFETY: entered, and stopped (`stop` ran after every `start`); the table is
            // live, per the caller.
            unsafe { bindings::icmp_ct_table_walk_exit(self.iter.get()) };
            // INVARIANT: exited.
            self.entered = false;
        }
    }
}

impl<T: TableListing> Listing<T> {
    /// The entry the walk stands on, valid for the current section.
    fn at<'a>(walk: &ListingWalk, _rcu: &'a RcuGuard) -> Option<&'a Entry> {
        // SAFETY: by the type invariant a non-null `at` is an entry reached in the walk's
        // section, not freed before the file's section (which `_rcu` stands for, and which
        // encloses the walk's) ends.
        Some(unsafe { Entry::from_raw(NonNull::new(walk.at)?) })
    }
}

// The walker is entered on the table of `data`, the state of the file's namespace (the
// `ProcSeq` contract: `data` and `walk` belong to the same open file), which is the same
// table for the file's whole life (`TableListing`).
impl<T: TableListing> ProcSeq for Listing<T> {
    type Data = T;
    type State = ListingWalk;

    unsafe fn start(data: &T, walk: Pin<&mut ListingWalk>, pos: u64, _rcu: &RcuGuard) -> bool {
        // SAFETY: the fields are changed in place; nothing is moved out.
        let walk = unsafe { walk.get_unchecked_mut() };
        let iter = walk.iter.get();
        // A read from offset 0 starts a new walk; so does (never seen from seq_file) a first
        // read at another offset, which then skips `pos` records.
        let skip = if walk.entered { 0 } else { pos };
        if pos == 0 || !walk.entered {
            // SAFETY: stopped (`stop` followed every earlier `start`); if entered, then on
            // `data`'s table, which is live.
            unsafe { walk.leave() };
            // SAFETY: the table is live; `iter` is pinned in the file's private area and is
            // left before that area is freed (`release`, the file's last call) and, per
            // `TableListing`, before the table is destroyed.
            unsafe { bindings::icmp_ct_table_walk_enter(data.table().raw(), iter) };
            // SAFETY: just entered.
            unsafe { bindings::icmp_ct_table_walk_start(iter) };
        } else {
            // Where the previous read stopped: at the record it did not copy.
            // SAFETY: entered on `data`'s table, and stopped.
            unsafe { bindings::icmp_ct_table_walk_resume(iter) };
        }
        // INVARIANT: entered and started above.
        walk.entered = true;
        walk.started = true;
        // SAFETY: started.
        let node = unsafe { bindings::icmp_ct_table_walk_peek(iter) };
        // SAFETY: started, on `data`'s table.
        let mut found = unsafe { walk.settle(data, node, jiffies::now()) };
        for _ in 0..skip {
            if !found {
                break;
            }
            // SAFETY: started, on `data`'s table.
            let node = unsafe { bindings::icmp_ct_table_walk_next(iter) };
            // SAFETY: as above.
            found = unsafe { walk.settle(data, node, jiffies::now()) };
        }
        found
    }

    unsafe fn next(data: &T, walk: Pin<&mut ListingWalk>, _rcu: &RcuGuard) -> bool {
        // SAFETY: the fields are changed in place; nothing is moved out.
        let walk = unsafe { walk.get_unchecked_mut() };
        if !walk.started {
            return false;
        }
        // SAFETY: started, on `data`'s table.
        let node = unsafe { bindings::icmp_ct_table_walk_next(walk.iter.get()) };
        // SAFETY: as above.
        unsafe { walk.settle(data, node, jiffies::now()) }
    }

    unsafe fn show(
        data: &T,
        walk: &ListingWalk,
        rcu: &RcuGuard,
        out: &mut SeqWriter,
    ) -> fmt::Result {
        match Self::at(walk, rcu) {
            Some(entry) => data.show_entry(entry, out),
            None => Ok(()),
        }
    }

    unsafe fn stop(walk: Pin<&mut ListingWalk>) {
        // SAFETY: the fields are changed in place; nothing is moved out.
        let walk = unsafe { walk.get_unchecked_mut() };
        if walk.started {
            // SAFETY: started; the walker keeps its position until the next start.
            unsafe { bindings::icmp_ct_table_walk_stop(walk.iter.get()) };
            // INVARIANT: stopped; `at` was reached in the section that ends here.
            walk.started = false;
            walk.at = core::ptr::null_mut();
        }
    }

    unsafe fn release(walk: Pin<&mut ListingWalk>) {
        // SAFETY: the fields are changed in place; nothing is moved out.
        let walk = unsafe { walk.get_unchecked_mut() };
        // SAFETY: stopped (after the file's last `stop`). The table is live: the file is
        // released when it is closed, or, if it is still open when its owner removes it,
        // by that removal (`proc_remove` runs `proc_entry_rundown`, which waits for the
        // calls in progress and releases every file still open before it returns); either
        // way before the owner drops the table (`TableListing`). An open file also holds a
        // reference on its namespace, whose teardown cannot start before the file is
        // closed; only `rmmod` removes the file of a live namespace.
        unsafe { walk.leave() };
    }
}
