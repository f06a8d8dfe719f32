// SPDX-License-Identifier: GPL-2.0

//! A namespace's connection table: entries hashed by both their original and their reply
//! key in one `rhashtable` (which grows and shrinks with the number of entries), and linked
//! into one RCU list, oldest first.
//!
//! Lookups and walks run under RCU without locks. The listing follows the list: a walk of
//! the hash table's buckets sees entries twice while the table is resized, and in another
//! order after it. Garbage collection, which does not mind seeing an entry twice, follows
//! rhashtable's walker instead, which keeps its position while it gives up the CPU.
//! Insertions and removals take the table's bh-safe lock, so that the nodes and the list
//! link of an entry come and go together. Removed entries are freed after an RCU grace
//! period.
//!
//! An entry's life is in its state word ([`entry_word`]): it is inserted unconfirmed, so that
//! nobody matches or removes it before both its nodes are in (a failed insertion frees it,
//! and only that path does), and it is marked dying by whoever ends it, in one atomic step,
//! before it is unlinked. An entry stores its original key only; the key of its reply node is
//! computed from it ([`Key::reply`]) by the hash and compare callbacks below, which
//! rhashtable calls. A flow whose reply key is its original key has one node.

use crate::abstractions::jiffies;
use crate::abstractions::pernet::PernetData;
use crate::abstractions::procfs::{ProcSeq, SeqWriter};
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::slab;
use crate::abstractions::spinlock_bh::SpinLockBh;
use crate::bindings;
use crate::proto::entry_word;
use crate::proto::key::Key;
use crate::proto::tuple::Tuple;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::types::Opaque;

fn raw_key(key: &Key) -> bindings::icmp_ct_key {
    bindings::icmp_ct_key { w: key.0 }
}

/// Which of an entry's tuples a packet matched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    /// The tuple of the packet that created the entry.
    Original,
    /// The tuple of the expected reply.
    Reply,
}

/// A table entry.
///
/// # Invariants
///
/// Refers to an entry allocated by [`NewEntry::new`], reached under an RCU read-side section
/// or the table's writer lock; its nodes' `dir` and `single`, and its key, are not written
/// any more.
#[repr(transparent)]
pub(crate) struct Entry(Opaque<bindings::icmp_ct_entry>);

impl Entry {
    fn raw(&self) -> *mut bindings::icmp_ct_entry {
        self.0.get()
    }

    /// # Safety
    ///
    /// `node` must be a node of an entry from [`NewEntry::new`] that stays allocated for `'a`.
    unsafe fn from_node<'a>(node: NonNull<bindings::icmp_ct_node>) -> (&'a Entry, Dir) {
        // SAFETY: `dir` and `single` of a node are written before it is published, then
        // never again.
        let (dir, single) = unsafe { ((*node.as_ptr()).dir, (*node.as_ptr()).single) };
        let (index, dir) = match (dir, single) {
            (0, 0) => (0, Dir::Original),
            // Original and reply are the same key: a match is a reply, as in nf_conntrack,
            // whose reply node comes first in the bucket.
            (0, _) => (0, Dir::Reply),
            _ => (1, Dir::Reply),
        };
        // SAFETY: node `index` sits at that index of the entry's `node` array.
        let entry = unsafe { node.as_ptr().sub(index) }.cast::<Entry>();
        // SAFETY: per the caller; `Entry` is transparent over the C entry.
        (unsafe { &*entry }, dir)
    }

    /// # Safety
    ///
    /// `raw` must be an entry from [`NewEntry::new`] that stays allocated for `'a`.
    unsafe fn from_raw<'a>(raw: NonNull<bindings::icmp_ct_entry>) -> &'a Entry {
        // SAFETY: per the caller; `Entry` is transparent over the C entry.
        unsafe { &*raw.as_ptr().cast::<Entry>() }
    }

    /// The entry's original tuple.
    pub(crate) fn original(&self) -> Option<Tuple> {
        self.original_key().tuple()
    }

    fn original_key(&self) -> Key {
        // SAFETY: by the type invariant the key is initialised and no longer written.
        Key(unsafe { (*self.raw()).key.w })
    }

    fn is_single(&self) -> bool {
        // SAFETY: as for the key.
        unsafe { (*self.raw()).node[0].single != 0 }
    }

    /// The key of the entry's node for `dir`.
    fn key(&self, dir: Dir) -> Option<Key> {
        match dir {
            Dir::Original => Some(self.original_key()),
            Dir::Reply => self.original_key().reply(),
        }
    }

    /// The packed flow state and life ([`entry_word`]), changed with atomic read-modify-writes.
    pub(crate) fn state(&self) -> &AtomicU64 {
        // SAFETY: the field is 8-byte aligned (kmem_cache memory; offset 88) and only
        // accessed atomically once published.
        unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*self.raw()).state)) }
    }

    /// When the entry expires: the low 32 bits of `jiffies`.
    pub(crate) fn deadline(&self) -> &AtomicU32 {
        // SAFETY: as for `state`, 4-byte aligned and only accessed atomically.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).deadline)) }
    }

    fn unlinked(&self) -> &AtomicU32 {
        // SAFETY: as for `deadline`.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).unlinked)) }
    }

    /// Whether the entry has expired at `now` (jiffies).
    pub(crate) fn expired(&self, now: u32) -> bool {
        jiffies::reached(self.deadline().load(Ordering::Relaxed), now)
    }

    /// Whether the entry is completely in its table and nobody is removing it.
    pub(crate) fn is_live(&self) -> bool {
        entry_word::is_live(self.state().load(Ordering::Acquire))
    }

    /// Marks a live entry dying; false if it was not live (being inserted, or already
    /// ended by someone else).
    fn mark_dying(&self) -> bool {
        let word = self.state();
        let mut current = word.load(Ordering::Relaxed);
        while entry_word::is_live(current) {
            match word.compare_exchange_weak(
                current,
                entry_word::dying(current),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }
}

/// An entry found in a table, with the table it is in.
#[derive(Clone, Copy)]
pub(crate) struct EntryRef<'a> {
    table: &'a Table,
    entry: &'a Entry,
}

impl<'a> core::ops::Deref for EntryRef<'a> {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl<'a> EntryRef<'a> {
    /// Marks the entry dying and removes it from its table; false if it was not live.
    pub(crate) fn remove(&self) -> bool {
        if !self.entry.mark_dying() {
            return false;
        }
        let _writer = self.table.writer.lock();
        self.table.unlink(self.entry);
        true
    }

    /// Removes an entry that the caller marked dying in the compare-and-swap that ended it
    /// ([`entry_word::dying`]); does nothing for an entry that is not dying.
    pub(crate) fn remove_dying(&self) {
        if entry_word::is_dying(self.entry.state().load(Ordering::Acquire)) {
            let _writer = self.table.writer.lock();
            self.table.unlink(self.entry);
        }
    }
}

/// The key of `node`, computed from its entry.
///
/// # Safety
///
/// `node` must be a node of an entry from [`NewEntry::new`] that stays allocated during the
/// call.
unsafe fn node_key(node: *const core::ffi::c_void) -> Option<Key> {
    let node = NonNull::new(node.cast_mut().cast::<bindings::icmp_ct_node>())?;
    // SAFETY: per the caller.
    let (entry, dir) = unsafe { Entry::from_node(node) };
    // A single node is keyed by the original key, whichever direction it matches as.
    if entry.is_single() {
        return entry.key(Dir::Original);
    }
    entry.key(dir)
}

/// Hashes `key` as the table hashes every key.
fn hash_key(key: &bindings::icmp_ct_key, seed: u32) -> u32 {
    let len = core::mem::size_of::<bindings::icmp_ct_key>() as u32;
    // SAFETY: `key` is `len` readable bytes.
    unsafe { bindings::icmp_ct_key_hash(core::ptr::from_ref(key).cast(), len, seed) }
}

/// rhashtable's `obj_hashfn`: the hash of a node's key, equal to the hash lookups compute
/// for that key (`icmp_ct_key_hash`).
///
/// # Safety
///
/// Called by rhashtable with a node of an entry being inserted, in the table or being
/// removed, which stays allocated during the call.
#[no_mangle]
unsafe extern "C" fn icmp_ct_node_hash(
    node: *const core::ffi::c_void,
    _len: u32,
    seed: u32,
) -> u32 {
    // SAFETY: per this function's contract.
    match unsafe { node_key(node) } {
        Some(key) => hash_key(&raw_key(&key), seed),
        None => seed,
    }
}

/// rhashtable's `obj_cmpfn`: 0 if the node's key is the key looked up.
///
/// # Safety
///
/// Called by rhashtable with the `icmp_ct_key` it looks up in `arg` and a node as for
/// [`icmp_ct_node_hash`].
#[no_mangle]
unsafe extern "C" fn icmp_ct_node_cmp(
    arg: *mut bindings::rhashtable_compare_arg,
    node: *const core::ffi::c_void,
) -> core::ffi::c_int {
    // SAFETY: per this function's contract, `arg` points to a compare argument whose key is
    // an `icmp_ct_key` (every lookup and insertion passes one).
    let Some(wanted) = (unsafe { (*arg).key.cast::<bindings::icmp_ct_key>().as_ref() }) else {
        return 1;
    };
    // SAFETY: per this function's contract.
    match unsafe { node_key(node) } {
        Some(key) if key.0 == wanted.w => 0,
        _ => 1,
    }
}

/// An entry not yet in any table; freed on drop.
pub(crate) struct NewEntry {
    entry: NonNull<bindings::icmp_ct_entry>,
}

impl NewEntry {
    /// An entry for a flow whose first packet has `original`; `None` if memory is short or
    /// the tuple has no reply.
    pub(crate) fn new(original: &Tuple, state: u64, deadline: u32) -> Option<Self> {
        let key = Key::of(original);
        let single = key.reply()? == key;
        let entry = slab::alloc()?;
        let raw = entry.as_ptr();
        // SAFETY: `raw` is a fresh, zeroed allocation that only this function knows about.
        unsafe {
            (*raw).key = raw_key(&key);
            (*raw).node[0].dir = 0;
            (*raw).node[0].single = u8::from(single);
            (*raw).node[1].dir = 1;
            (*raw).state = entry_word::unconfirmed(state);
            (*raw).deadline = deadline;
        }
        Some(NewEntry { entry })
    }

    fn entry(&self) -> &Entry {
        // SAFETY: allocated and initialised by `new`, owned by `self`.
        unsafe { Entry::from_raw(self.entry) }
    }
}

impl Drop for NewEntry {
    fn drop(&mut self) {
        // SAFETY: never published: nothing else refers to it.
        unsafe { slab::free(self.entry) };
    }
}

/// Why an insertion failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum InsertError {
    /// The table holds its limit and nothing could be evicted.
    Full,
    /// One of the keys is already in the table (another CPU won a race), or the table
    /// could not grow.
    Clash,
}

/// What an insertion may do with an entry found while making room.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Eviction {
    /// Leave it.
    Keep,
    /// Remove it: it has expired.
    Expired,
    /// Remove it to make room (early drop).
    EarlyDrop,
}

/// What an insertion removed on the way.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Evicted {
    /// Expired entries removed.
    pub(crate) expired: u32,
    /// Live entries dropped early to make room.
    pub(crate) early_dropped: u32,
}

/// Buckets of a new table.
pub(crate) const INITIAL_BUCKETS: u32 = bindings::ICMP_CT_TABLE_INITIAL_BUCKETS;

/// How many entries an insertion into a full table looks at for one to evict.
const EVICTION_SCAN: u32 = 64;

/// Nodes a yielding walk visits per RCU read-side section.
const WALK_BATCH: u32 = 256;

/// A connection table.
///
/// # Invariants
///
/// `raw` was initialised by `icmp_ct_table_init` and is destroyed only in `drop`; every node
/// in its hash table belongs to an entry from [`NewEntry::new`]; an entry whose word is
/// confirmed has all its nodes in the hash table and is on the list until it is unlinked;
/// only the insertion that fails to confirm an entry frees it without unlinking it.
pub(crate) struct Table {
    raw: KBox<Opaque<bindings::icmp_ct_table>>,
    /// Serialises insertions and removals, and so the list.
    writer: SpinLockBh<()>,
    /// Entries linked, expired ones included until they are collected.
    count: AtomicU32,
    gc: GcWalker,
}

/// Garbage collection's position in the table, kept from one slice to the next.
struct GcWalker {
    /// Held by the one slice running.
    busy: AtomicBool,
    /// Whether `iter` is entered (a pass is under way).
    entered: UnsafeCell<bool>,
    iter: KBox<Opaque<bindings::rhashtable_iter>>,
}

/// What one slice of garbage collection's walk did.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Slice {
    /// Nodes visited (two per entry, one for a single-node entry).
    pub(crate) visited: u32,
    /// Whether the slice reached the end of a pass over the table.
    pub(crate) pass_done: bool,
}

// SAFETY: the rhashtable is safe for concurrent use; writers hold `writer`; the garbage
// collection walker is used by one thread at a time (`busy`).
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

impl Table {
    /// An empty table.
    pub(crate) fn new() -> Result<Self> {
        let raw = KBox::new(Opaque::uninit(), GFP_KERNEL)?;
        // SAFETY: `raw` is at its final (heap) address and not yet initialised.
        kernel::error::to_result(unsafe { bindings::icmp_ct_table_init(raw.get()) })?;
        // INVARIANT: initialised above, empty.
        Ok(Table {
            raw,
            writer: SpinLockBh::new(())?,
            count: AtomicU32::new(0),
            gc: GcWalker {
                busy: AtomicBool::new(false),
                entered: UnsafeCell::new(false),
                iter: KBox::new(Opaque::uninit(), GFP_KERNEL)?,
            },
        })
    }

    fn raw(&self) -> *mut bindings::icmp_ct_table {
        self.raw.get()
    }

    /// Entries in the table, expired ones included until they are collected.
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Hash buckets of the table now.
    pub(crate) fn buckets(&self) -> u32 {
        let _rcu = RcuGuard::new();
        // SAFETY: the table is live (type invariant) and RCU is held for its bucket table.
        unsafe { bindings::icmp_ct_table_buckets(bindings::icmp_ct_table_first(self.raw())) }
    }

    /// The node holding `key`, live or not.
    fn lookup_key<'a>(&'a self, key: &Key, _rcu: &'a RcuGuard) -> Option<(&'a Entry, Dir)> {
        // SAFETY: the table is live; RCU is held for the lookup and the result's lifetime.
        let node =
            NonNull::new(unsafe { bindings::icmp_ct_table_lookup(self.raw(), &raw_key(key)) })?;
        // SAFETY: nodes in the table belong to entries freed only after a grace period,
        // which `_rcu` holds off (or, for a failed insertion, after one too).
        Some(unsafe { Entry::from_node(node) })
    }

    /// The live entry one of whose tuples is `tuple`, and which of them.
    pub(crate) fn lookup<'a>(
        &'a self,
        tuple: &Tuple,
        rcu: &'a RcuGuard,
    ) -> Option<(EntryRef<'a>, Dir)> {
        let (entry, dir) = self.lookup_key(&Key::of(tuple), rcu)?;
        if !entry.is_live() {
            return None;
        }
        Some((EntryRef { table: self, entry }, dir))
    }

    /// Inserts `new`. When the table holds `limit` entries, first looks at a few entries for
    /// one that `evict` allows removing.
    pub(crate) fn insert(
        &self,
        new: NewEntry,
        limit: u32,
        evict: impl Fn(&Entry) -> Eviction,
    ) -> Result<Evicted, InsertError> {
        let rcu = RcuGuard::new();
        let writer = self.writer.lock();
        let mut evicted = Evicted::default();
        if self.count() >= limit {
            self.make_room(&rcu, &evict, &mut evicted);
            if self.count() >= limit {
                return Err(InsertError::Full);
            }
        }
        let entry = new.entry();
        let (Some(key0), Some(key1)) = (entry.key(Dir::Original), entry.key(Dir::Reply)) else {
            return Err(InsertError::Clash);
        };
        let single = entry.is_single();
        let raw = new.entry.as_ptr();
        // A clash with an expired or dying entry still in the table: remove it, retry once.
        for attempt in 0..2 {
            // SAFETY: the table is live and `raw` is an unpublished entry whose nodes we own;
            // `key0` is node 0's key.
            let mut status = unsafe {
                bindings::icmp_ct_table_insert(self.raw(), &mut (*raw).node[0], &raw_key(&key0))
            };
            if status == 0 && !single {
                // SAFETY: as above, for node 1.
                status = unsafe {
                    bindings::icmp_ct_table_insert(self.raw(), &mut (*raw).node[1], &raw_key(&key1))
                };
                if status != 0 {
                    // SAFETY: node 0 was inserted just above, under the writer lock.
                    unsafe { bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[0]) };
                }
            }
            if status == 0 {
                self.count.fetch_add(1, Ordering::Relaxed);
                // SAFETY: every node is hashed; the entry joins the list under the writer
                // lock, which every list change holds.
                unsafe { bindings::icmp_ct_table_link(self.raw(), raw) };
                // Confirmed: matched and removable from now on, owned by the table.
                entry
                    .state()
                    .fetch_and(entry_word::confirmed(u64::MAX), Ordering::Release);
                core::mem::forget(new);
                return Ok(evicted);
            }
            if attempt > 0 || !self.remove_clashing(&[key0, key1], &rcu, &evict, &mut evicted) {
                break;
            }
        }
        drop(writer);
        // Node 0 may have been visible for a moment, unconfirmed (so nobody could match or
        // remove it): free it after a grace period, here and nowhere else.
        let entry = new.entry;
        core::mem::forget(new);
        // SAFETY: the entry is in no table and on no list, and is queued once.
        unsafe { slab::free_after_grace_period(entry) };
        Err(InsertError::Clash)
    }

    /// Removes the dying, or expired, entries holding one of `keys`; true if one was removed.
    /// The writer lock must be held.
    fn remove_clashing(
        &self,
        keys: &[Key; 2],
        rcu: &RcuGuard,
        evict: &impl Fn(&Entry) -> Eviction,
        evicted: &mut Evicted,
    ) -> bool {
        let mut removed = false;
        for key in keys {
            let Some((entry, _)) = self.lookup_key(key, rcu) else {
                continue;
            };
            if entry_word::is_dying(entry.state().load(Ordering::Acquire)) {
                // Its remover waits for the writer lock we hold: do its unlinking for it.
                removed |= self.unlink(entry);
            } else if evict(entry) == Eviction::Expired && entry.mark_dying() {
                self.unlink(entry);
                evicted.expired = evicted.expired.saturating_add(1);
                removed = true;
            }
        }
        removed
    }

    /// Removes one entry that `evict` allows (or that is dying anyway), looking at up to
    /// `EVICTION_SCAN` entries from a random bucket on (then from the start). The writer lock
    /// must be held.
    fn make_room(
        &self,
        rcu: &RcuGuard,
        evict: &impl Fn(&Entry) -> Eviction,
        evicted: &mut Evicted,
    ) {
        // SAFETY: `get_random_u32` has no preconditions.
        let random = unsafe { bindings::get_random_u32() };
        let mut budget = EVICTION_SCAN;
        for start in [random, 0] {
            let mut cursor = BucketCursor::default();
            let mut entry = self.bucket_seek(&mut cursor, start, rcu);
            while let Some(found) = entry {
                if budget == 0 {
                    return;
                }
                budget = budget.wrapping_sub(1);
                if entry_word::is_dying(found.state().load(Ordering::Acquire)) {
                    if self.unlink(found) {
                        return;
                    }
                } else {
                    let verdict = evict(found);
                    if verdict != Eviction::Keep && found.mark_dying() {
                        self.unlink(found);
                        if verdict == Eviction::Expired {
                            evicted.expired = evicted.expired.saturating_add(1);
                        } else {
                            evicted.early_dropped = evicted.early_dropped.saturating_add(1);
                        }
                        return;
                    }
                }
                entry = self.bucket_next(&mut cursor, rcu);
            }
        }
    }

    /// Unlinks a dying `entry` of this table and queues it for freeing; false if it was
    /// already unlinked. The writer lock must be held.
    fn unlink(&self, entry: &Entry) -> bool {
        // Only dying entries are unlinked: that excludes entries still being inserted.
        if !entry_word::is_dying(entry.state().load(Ordering::Acquire))
            || entry.unlinked().swap(1, Ordering::Relaxed) != 0
        {
            return false;
        }
        let raw = entry.raw();
        // SAFETY: a dying entry was confirmed (only live entries are marked dying), so all its
        // nodes are hashed and it is listed; `unlinked` makes this run once per entry; the
        // writer lock is held for the table and the list.
        unsafe {
            bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[0]);
            if !entry.is_single() {
                bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[1]);
            }
            bindings::icmp_ct_table_unlink(raw);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: unlinked from the table above, queued once thanks to `unlinked`.
        unsafe { slab::free_after_grace_period(NonNull::new_unchecked(raw)) };
        true
    }

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

    /// The oldest listed entry.
    fn oldest<'a>(&'a self, _rcu: &'a RcuGuard) -> Option<&'a Entry> {
        // SAFETY: the table is live and RCU is held.
        let entry = NonNull::new(unsafe { bindings::icmp_ct_table_oldest(self.raw()) })?;
        // SAFETY: a listed entry, freed only after a grace period that `_rcu` holds off.
        Some(unsafe { Entry::from_raw(entry) })
    }

    /// The next newer entry after `entry`, which was listed in this table when the caller's
    /// RCU section began (a removed entry still leads on to the entries after it).
    ///
    /// # Safety
    ///
    /// `entry` must have been reached on this table's list within the RCU read-side section
    /// (or writer-lock section) that is still held for `'a`.
    unsafe fn newer<'a>(&'a self, entry: &'a Entry) -> Option<&'a Entry> {
        // SAFETY: per the caller, `entry` is a list member not yet freed.
        let next = unsafe { bindings::icmp_ct_table_newer(self.raw(), entry.raw()) };
        // SAFETY: as for `oldest`.
        Some(unsafe { Entry::from_raw(NonNull::new(next)?) })
    }

    /// The first entry at or after bucket `start` (modulo the table size), walking on into
    /// the following buckets. Bucket walks may see an entry twice while the table is
    /// resized, which is harmless for eviction, the one user.
    fn bucket_seek<'a>(
        &'a self,
        cursor: &mut BucketCursor,
        start: u32,
        rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        // SAFETY: the table is live and RCU is held.
        cursor.tbl = unsafe { bindings::icmp_ct_table_first(self.raw()) };
        // SAFETY: `cursor.tbl` is the live bucket table.
        let size = unsafe { bindings::icmp_ct_table_buckets(cursor.tbl) };
        cursor.bucket = start.checked_rem(size).unwrap_or(0);
        cursor.node = core::ptr::null_mut();
        self.bucket_settle(cursor, rcu)
    }

    /// Moves `cursor` to the next entry of the bucket walk.
    fn bucket_next<'a>(
        &'a self,
        cursor: &mut BucketCursor,
        rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        if cursor.node.is_null() {
            return None;
        }
        // SAFETY: `cursor.node` was found under the RCU section `rcu` still holds.
        cursor.node = unsafe { bindings::icmp_ct_table_next(cursor.node) };
        self.bucket_settle(cursor, rcu)
    }

    /// Advances `cursor` from its position (or the start of its bucket, when it has no node)
    /// to the next node that stands for its entry, through the following buckets and tables.
    fn bucket_settle<'a>(
        &'a self,
        cursor: &mut BucketCursor,
        _rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        loop {
            while let Some(node) = NonNull::new(cursor.node) {
                // SAFETY: found under RCU: a node of an entry freed only after a grace period.
                let (entry, dir) = unsafe { Entry::from_node(node) };
                if dir == Dir::Original || entry.is_single() {
                    return Some(entry);
                }
                // SAFETY: as above.
                cursor.node = unsafe { bindings::icmp_ct_table_next(cursor.node) };
            }
            if cursor.tbl.is_null() {
                return None;
            }
            // SAFETY: `cursor.tbl` was read under the RCU section `_rcu` holds.
            let size = unsafe { bindings::icmp_ct_table_buckets(cursor.tbl) };
            if cursor.started && cursor.bucket.wrapping_add(1) >= size {
                // A resize in progress moves entries to the following table: walk it too.
                // SAFETY: as above.
                cursor.tbl = unsafe { bindings::icmp_ct_table_following(cursor.tbl) };
                cursor.bucket = 0;
                cursor.started = false;
                if cursor.tbl.is_null() {
                    return None;
                }
            } else if cursor.started {
                cursor.bucket = cursor.bucket.wrapping_add(1);
            }
            cursor.started = true;
            // SAFETY: `cursor.bucket` is below the size of the live bucket table.
            cursor.node = unsafe { bindings::icmp_ct_table_bucket(cursor.tbl, cursor.bucket) };
        }
    }
}

/// A position in a walk of the hash table's buckets, valid within one RCU read-side section.
struct BucketCursor {
    tbl: *const bindings::bucket_table,
    bucket: u32,
    started: bool,
    node: *mut bindings::icmp_ct_node,
}

impl Default for BucketCursor {
    fn default() -> Self {
        BucketCursor {
            tbl: core::ptr::null(),
            bucket: 0,
            started: false,
            node: core::ptr::null_mut(),
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: the table is live; no insertion is left to schedule another resize (the
        // owner guarantees no reader or writer is left: hooks unregistered and a grace period
        // passed, procfs files removed, garbage collection cancelled).
        unsafe { bindings::icmp_ct_table_stop_resizing(self.raw()) };
        if *self.gc.entered.get_mut() {
            // SAFETY: entered and stopped by the last slice; garbage collection is cancelled.
            unsafe { bindings::icmp_ct_table_walk_exit(self.gc.iter.get()) };
        }
        let rcu = RcuGuard::new();
        let mut entry = self.oldest(&rcu);
        while let Some(found) = entry {
            // SAFETY: reached on this table's list, which nobody else touches any more.
            entry = unsafe { self.newer(found) };
            // SAFETY: as above; the walk has moved past the entry, which is freed once.
            unsafe { slab::free(NonNull::from(found).cast()) };
        }
        drop(rcu);
        // SAFETY: as above; the entries its nodes belonged to are freed, and
        // `rhashtable_destroy` only frees the bucket tables.
        unsafe { bindings::icmp_ct_table_destroy(self.raw()) };
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

/// The `seq_file` walk of a [`TableListing`]: the table's list, oldest first, each listed
/// entry once.
pub(crate) struct Listing<T>(PhantomData<T>);

/// The position of a [`Listing`] walk.
///
/// # Invariants
///
/// Null, or an entry reached on the list of the table of the file's namespace within the
/// RCU read-side section of the current `start`..`stop` (procfs resets it outside it). Only
/// this module positions it.
pub(crate) struct ListingCursor {
    entry: *mut bindings::icmp_ct_entry,
}

impl Default for ListingCursor {
    fn default() -> Self {
        ListingCursor {
            entry: core::ptr::null_mut(),
        }
    }
}

impl<T: TableListing> Listing<T> {
    /// From `entry` on, the first listed entry (`entry` itself if it is listed).
    fn settle<'a>(
        data: &'a T,
        mut entry: Option<&'a Entry>,
        now: u32,
        cursor: &mut ListingCursor,
    ) -> bool {
        while let Some(found) = entry {
            if data.listed(found, now) {
                // INVARIANT: reached on the list in this section.
                cursor.entry = found.raw();
                return true;
            }
            // SAFETY: `found` was reached on the list in the section the caller holds.
            entry = unsafe { data.table().newer(found) };
        }
        cursor.entry = core::ptr::null_mut();
        false
    }

    fn at<'a>(cursor: &ListingCursor, _rcu: &'a RcuGuard) -> Option<&'a Entry> {
        // SAFETY: by the type invariant a non-null position is an entry not freed before the
        // current section ends, which `_rcu` stands for.
        Some(unsafe { Entry::from_raw(NonNull::new(cursor.entry)?) })
    }
}

impl<T: TableListing> ProcSeq for Listing<T> {
    type Data = T;
    type Cursor = ListingCursor;

    fn start(data: &T, cursor: &mut ListingCursor, pos: u64, rcu: &RcuGuard) -> bool {
        let now = jiffies::now();
        let mut found = Self::settle(data, data.table().oldest(rcu), now, cursor);
        let mut skip = pos;
        while skip > 0 && found {
            skip = skip.wrapping_sub(1);
            found = Self::next(data, cursor, rcu);
        }
        found
    }

    fn next(data: &T, cursor: &mut ListingCursor, rcu: &RcuGuard) -> bool {
        let Some(entry) = Self::at(cursor, rcu) else {
            return false;
        };
        // SAFETY: the cursor's entry was reached on the list in this section.
        let next = unsafe { data.table().newer(entry) };
        Self::settle(data, next, jiffies::now(), cursor)
    }

    fn show(data: &T, cursor: &ListingCursor, rcu: &RcuGuard, out: &mut SeqWriter) -> fmt::Result {
        match Self::at(cursor, rcu) {
            Some(entry) => data.show_entry(entry, out),
            None => Ok(()),
        }
    }
}
