// SPDX-License-Identifier: GPL-2.0

//! A namespace's connection table: entries hashed by both their original and their reply
//! key in one `rhashtable` (which grows and shrinks with the number of entries).
//!
//! Lookups and walks run under RCU without locks. Writers take only rhashtable's bucket
//! locks: there is no table-wide lock. Walks of the buckets may see an entry twice while the
//! table is resized (garbage collection and eviction do not mind; the listing says so). An
//! entry's life is in its state word ([`entry_word`]): it is inserted unconfirmed, so that
//! nobody matches or removes it before both its nodes are in (a failed insertion frees it,
//! and only that path does); it is marked dying by whoever ends it, in one atomic step; and
//! whoever first claims its `unlinked` flag takes its nodes out and frees it after an RCU
//! grace period. An entry stores its original key only; the key of its reply node is
//! computed from it ([`Key::reply`]) by the hash and compare callbacks below, which
//! rhashtable calls. A flow whose reply key is its original key has one node.
//!
//! `places` holds two counts in one atomic word: the entries (neither closed nor unlinked:
//! `ip_conntrack_count`) and the places reserved by insertions and reopenings under way. A
//! place is reserved with a compare-and-swap while both together stay below the limit,
//! before an entry goes in or opens again, and becomes an entry's in one atomic add when it
//! does: the count never exceeds `ip_conntrack_max`, and counts no entry that is not in the
//! table. An insertion that evicts a counted entry takes over its place as its reservation.

mod entry;
mod sources;
mod walks;

pub(crate) use entry::{Dir, Entry, EntryRef, NewEntry, WindowsGuard};
pub(crate) use walks::{Listing, TableListing};

use entry::raw_key;
use walks::GcWalker;

use crate::abstractions::race_window::RaceWindow;
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::slab;
use crate::bindings;
use crate::proto::entry_word;
use crate::proto::key::Key;
use crate::proto::tuple::Tuple;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::types::Opaque;

/// Why an insertion failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum InsertError {
    /// The table holds its limit and nothing could be evicted.
    Full,
    /// One of the keys is already in the table (another CPU won a race), or the table
    /// could not grow.
    Clash,
    /// The source is at `ip_ct_max_per_source` and had no entry to lose.
    Quota,
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

/// What unlinking an entry did with its place in the count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unlinked {
    /// It was closed: it held none.
    NoPlace,
    /// Given back.
    PlaceGiven,
    /// Taken over by the caller.
    PlaceTaken,
}

/// One place reserved, in `Table::places`.
const RESERVED: u64 = 1 << 32;

/// Buckets of a new table.
pub(crate) const INITIAL_BUCKETS: u32 = bindings::ICMP_CT_TABLE_INITIAL_BUCKETS;

/// How many entries an insertion into a full table looks at for one to evict.
const EVICTION_SCAN: u32 = 64;

/// A connection table.
///
/// # Invariants
///
/// `raw` was initialised by `icmp_ct_table_init` and is destroyed only in `drop`; every node
/// in its hash table belongs to an entry from [`NewEntry::new`]; an entry whose word is
/// confirmed has all its nodes in the hash table until it is unlinked; only the insertion
/// that fails to confirm an entry frees it without unlinking it.
pub(crate) struct Table {
    raw: KBox<Opaque<bindings::icmp_ct_table>>,
    /// Entries linked and not closed, expired ones included until they are collected (low
    /// 32 bits), and places reserved by insertions under way (high 32 bits).
    places: AtomicU64,
    /// Entries linked, closed ones included.
    linked: AtomicU32,
    gc: GcWalker,
}

// SAFETY: the rhashtables and the sources' lists are safe for concurrent use (bucket locks,
// each source's lock); counters are atomics; the garbage collection walker is used by one
// thread at a time (`busy`).
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
            places: AtomicU64::new(0),
            linked: AtomicU32::new(0),
            gc: GcWalker::new()?,
        })
    }

    fn raw(&self) -> *mut bindings::icmp_ct_table {
        self.raw.get()
    }

    /// Entries in the table, expired ones included until they are collected (closed ones
    /// are not entries any more).
    pub(crate) fn count(&self) -> u32 {
        // The low half: the entries.
        self.places.load(Ordering::Relaxed) as u32
    }

    fn linked(&self) -> u32 {
        self.linked.load(Ordering::Relaxed)
    }

    /// Reserves a place while entries and reservations stay below `limit`; false if the
    /// table is full.
    fn take_place(&self, limit: u32) -> bool {
        self.places
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |places| {
                let (entries, reserved) = (places as u32, (places >> 32) as u32);
                (entries.saturating_add(reserved) < limit).then(|| places.wrapping_add(RESERVED))
            })
            .is_ok()
    }

    /// Gives back a reservation whose entry did not go in or open.
    fn release_place(&self) {
        self.places.fetch_sub(RESERVED, Ordering::Relaxed);
    }

    /// Turns a reservation into the place of the entry that went in or opened.
    fn fill_place(&self) {
        // One less reserved, one more entry: a single atomic add.
        self.places
            .fetch_add(1u64.wrapping_sub(RESERVED), Ordering::Relaxed);
    }

    /// Gives back the place of an entry that closed or went.
    fn give_place(&self) {
        self.places.fetch_sub(1, Ordering::Relaxed);
    }

    /// Turns the place of an entry that went into the caller's reservation.
    fn take_over_place(&self) {
        self.places.fetch_add(RESERVED - 1, Ordering::Relaxed);
    }

    /// Opens again the closed entry whose original tuple is `tuple`, with state `word`,
    /// `deadline` and its request's time `request_us`, in place of inserting a new entry:
    /// true if it did. Not when the table holds `limit` entries, nor when its source is at
    /// `quota` (an insertion decides what to evict then).
    // Each field of the reopened entry comes in here: they are set before it is live.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reopen(
        &self,
        tuple: &Tuple,
        word: u64,
        deadline: u32,
        request_us: u32,
        limit: u32,
        quota: u32,
        rcu: &RcuGuard,
    ) -> bool {
        let Some((entry, Dir::Original)) = self.lookup_key(&Key::of(tuple), rcu) else {
            return false;
        };
        let current = entry.state().load(Ordering::Acquire);
        if !entry_word::is_closed(current) || entry.is_single() || !self.take_place(limit) {
            return false;
        }
        // Looked up before the entry opens (see `sources`), its slot taken before it is live.
        let source = self.node_of(entry, rcu);
        if source.is_some_and(|node| !node.take_slot(quota)) {
            self.release_place();
            return false;
        }
        // Before it is live, so that nobody sees it live and expired.
        entry.deadline().store(deadline, Ordering::Relaxed);
        entry.request_us().store(request_us, Ordering::Relaxed);
        let opened = entry
            .state()
            .compare_exchange(current, word, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if opened {
            self.fill_place();
        } else {
            self.release_place();
            if let Some(node) = source {
                node.give_slot();
            }
        }
        opened
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

    /// Inserts `new`. With `quota` (`ip_ct_max_per_source`) nonzero, counts it in its
    /// source, which first loses its oldest entry it may lose when at its quota. When the
    /// table holds `limit` entries, first looks at a few entries for one that `evict` allows
    /// removing, and takes its place.
    pub(crate) fn insert(
        &self,
        new: NewEntry,
        limit: u32,
        quota: u32,
        evict: impl Fn(&Entry) -> Eviction,
    ) -> Result<Evicted, InsertError> {
        let rcu = RcuGuard::new();
        let mut evicted = Evicted::default();
        let entry = new.entry();
        // Before making room: a source at its quota makes room from its own entries.
        let slot = match quota {
            0 => None,
            _ => Some(self.take_quota_slot(entry, quota, &rcu, &mut evicted)?),
        };
        let give_back = |slot: Option<sources::Slot<'_>>, place: bool| {
            if place {
                self.release_place();
            }
            if let Some(slot) = slot {
                self.give_back(slot);
            }
        };
        // Closed entries take room too, but only up to `limit` more than the entries.
        let mut place = self.take_place(limit);
        if !place || self.linked() >= limit {
            let made = self.make_room(&rcu, &evict, !place, &mut evicted);
            place = place || made || self.take_place(limit);
            if !place || self.linked() >= limit.saturating_mul(2) {
                give_back(slot, place);
                return Err(InsertError::Full);
            }
        }
        let (Some(key0), Some(key1)) = (entry.key(Dir::Original), entry.key(Dir::Reply)) else {
            give_back(slot, place);
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
                RaceWindow::InsertHalfway.hold();
                // SAFETY: as above, for node 1.
                status = unsafe {
                    bindings::icmp_ct_table_insert(self.raw(), &mut (*raw).node[1], &raw_key(&key1))
                };
                if status != 0 {
                    // SAFETY: node 0 was inserted just above, and nobody else removes the
                    // nodes of an unconfirmed entry.
                    unsafe { bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[0]) };
                }
            }
            if status == 0 {
                self.linked.fetch_add(1, Ordering::Relaxed);
                self.fill_place();
                if let Some(slot) = slot {
                    self.linked_in_source(slot, entry);
                }
                // Confirmed: matched and removable from now on, owned by the table, holding
                // its place.
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
        give_back(slot, true);
        // Node 0 may have been visible for a moment, unconfirmed (so nobody could match or
        // remove it): free it after a grace period, here and nowhere else.
        let entry = new.entry;
        core::mem::forget(new);
        // SAFETY: the entry is in no table and on no list, and is queued once.
        unsafe { slab::free_after_grace_period(entry) };
        Err(InsertError::Clash)
    }

    /// Removes the dying, closed or expired entries holding one of `keys`; true if one was
    /// removed.
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
            let word = entry.state().load(Ordering::Acquire);
            if entry_word::is_dying(word) {
                // Its remover may not have unlinked it yet: whoever claims it first does, a
                // few instructions away from taking its nodes out, so try again.
                self.unlink(entry, false);
                removed = true;
            } else if entry_word::is_closed(word) && entry.mark_dying_from(word) {
                self.unlink(entry, false);
                removed = true;
            } else if evict(entry) == Eviction::Expired && entry.mark_dying_from(word) {
                self.unlink(entry, false);
                evicted.expired = evicted.expired.saturating_add(1);
                removed = true;
            }
        }
        removed
    }

    /// Makes room for one entry, looking at up to `EVICTION_SCAN` entries from a random
    /// bucket on (then from the start): removes one closed or dying entry or, when the
    /// caller has no place yet (`need_place`), one that `evict` allows or one that is dying,
    /// and takes over its place (closed ones met on the way go too, but hold no place).
    /// True if the caller now has a place.
    fn make_room(
        &self,
        rcu: &RcuGuard,
        evict: &impl Fn(&Entry) -> Eviction,
        need_place: bool,
        evicted: &mut Evicted,
    ) -> bool {
        // SAFETY: `get_random_u32` has no preconditions.
        let random = unsafe { bindings::get_random_u32() };
        let mut budget = EVICTION_SCAN;
        for start in [random, 0] {
            let mut cursor = BucketCursor::default();
            let mut entry = self.bucket_seek(&mut cursor, start, rcu);
            while let Some(found) = entry {
                if budget == 0 {
                    return false;
                }
                budget = budget.wrapping_sub(1);
                let word = found.state().load(Ordering::Acquire);
                if entry_word::is_dying(word) {
                    match self.unlink(found, need_place) {
                        Some(Unlinked::PlaceTaken) => return true,
                        Some(_) if !need_place => return false,
                        _ => {}
                    }
                } else if entry_word::is_closed(word) {
                    if found.mark_dying_from(word)
                        && self.unlink(found, false).is_some()
                        && !need_place
                    {
                        return false;
                    }
                } else if need_place {
                    let verdict = evict(found);
                    if verdict != Eviction::Keep && found.mark_dying_from(word) {
                        let taken = self.unlink(found, true) == Some(Unlinked::PlaceTaken);
                        if verdict == Eviction::Expired {
                            evicted.expired = evicted.expired.saturating_add(1);
                        } else {
                            evicted.early_dropped = evicted.early_dropped.saturating_add(1);
                        }
                        // Not taken: another CPU unlinked it first and gave its place back.
                        return taken;
                    }
                }
                entry = self.bucket_next(&mut cursor, rcu);
            }
        }
        false
    }

    /// Unlinks a dying `entry` of this table and queues it for freeing; `None` if it was
    /// already unlinked (or is not dying). With `take_place`, the caller takes over the
    /// place the entry held, if it held one, instead of giving it back.
    fn unlink(&self, entry: &Entry, take_place: bool) -> Option<Unlinked> {
        let word = entry.state().load(Ordering::Acquire);
        // Only dying entries are unlinked: that excludes entries still being inserted.
        if !entry_word::is_dying(word) || entry.unlinked().swap(1, Ordering::AcqRel) != 0 {
            return None;
        }
        self.unlinked_from_source(entry, word);
        let raw = entry.raw();
        // SAFETY: a dying entry was confirmed (only live or closed entries are marked dying),
        // so all its nodes are hashed; `unlinked` makes this run once per entry.
        unsafe {
            bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[0]);
            if !entry.is_single() {
                bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[1]);
            }
        }
        self.linked.fetch_sub(1, Ordering::Relaxed);
        let unlinked = if entry_word::was_closed(word) {
            Unlinked::NoPlace
        } else if take_place {
            self.take_over_place();
            Unlinked::PlaceTaken
        } else {
            self.give_place();
            Unlinked::PlaceGiven
        };
        // SAFETY: out of the table and off its source's list, queued once thanks to
        // `unlinked`.
        unsafe { slab::free_after_grace_period(NonNull::new_unchecked(raw)) };
        Some(unlinked)
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
        // SAFETY: garbage collection is cancelled; the table is live.
        unsafe { self.gc.exit() };
        let mut entries = core::mem::MaybeUninit::<bindings::list_head>::uninit();
        // SAFETY: the table is live and nobody reads or writes it any more (the owner
        // guarantees it: hooks unregistered and a grace period passed, procfs files removed,
        // garbage collection cancelled); `entries` is initialised there and stays in place.
        unsafe { bindings::icmp_ct_table_destroy(self.raw(), entries.as_mut_ptr()) };
        loop {
            // SAFETY: initialised by the destruction above, in place since.
            let next = unsafe { bindings::icmp_ct_entries_pop(entries.as_mut_ptr()) };
            let Some(entry) = NonNull::new(next) else {
                break;
            };
            // SAFETY: each entry of the table was on `entries` once, nothing else refers to
            // it any more, and it is taken off before it is freed.
            unsafe { slab::free(entry) };
        }
    }
}
