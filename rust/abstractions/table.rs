// SPDX-License-Identifier: GPL-2.0

//! A namespace's connection table: entries hashed by both their original and their reply
//! tuple in one `rhashtable` (which grows and shrinks with the number of entries).
//!
//! Lookups and walks run under RCU without locks. Insertions and removals take the table's
//! bh-safe lock, so that both nodes of an entry come and go together and the entry count is
//! exact. Removed entries are freed after an RCU grace period.

use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::slab;
use crate::abstractions::spinlock_bh::SpinLockBh;
use crate::bindings;
use crate::proto::addr::{Addr, Family};
use crate::proto::tuple::{Tuple, L4};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::types::Opaque;

/// The IPv4-mapped IPv6 prefix the key stores IPv4 addresses under.
const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

fn key_addr(family: Family, addr: &Addr) -> [u8; 16] {
    match family {
        Family::Ipv6 => addr.octets(),
        Family::Ipv4 => {
            let [a, b, c, d] = addr.v4_octets();
            let [p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11] = V4_MAPPED;
            [p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, a, b, c, d]
        }
    }
}

fn key_of(tuple: &Tuple) -> bindings::icmp_ct_tuple {
    let (icmp_type, icmp_code, l4) = match tuple.l4 {
        L4::Icmp {
            icmp_type,
            code,
            id,
        } => {
            let [i0, i1] = id.to_be_bytes();
            (icmp_type, code, [i0, i1, 0, 0])
        }
        L4::Ports { sport, dport } => {
            let [s0, s1] = sport.to_be_bytes();
            let [d0, d1] = dport.to_be_bytes();
            (0, 0, [s0, s1, d0, d1])
        }
        L4::None => (0, 0, [0; 4]),
    };
    bindings::icmp_ct_tuple {
        src: key_addr(tuple.family, &tuple.src),
        dst: key_addr(tuple.family, &tuple.dst),
        protocol: tuple.protocol,
        icmp_type,
        icmp_code,
        l4,
    }
}

fn tuple_of(key: &bindings::icmp_ct_tuple) -> Tuple {
    let is_v4 = |addr: &[u8; 16]| addr.starts_with(&V4_MAPPED);
    let family = if is_v4(&key.src) && is_v4(&key.dst) {
        Family::Ipv4
    } else {
        Family::Ipv6
    };
    let addr = |bytes: &[u8; 16]| match family {
        Family::Ipv6 => Addr::from_v6(*bytes),
        Family::Ipv4 => {
            let [.., a, b, c, d] = *bytes;
            Addr::from_v4([a, b, c, d])
        }
    };
    let [l0, l1, l2, l3] = key.l4;
    let l4 = if key.protocol == family.icmp_protocol() {
        L4::Icmp {
            icmp_type: key.icmp_type,
            code: key.icmp_code,
            id: u16::from_be_bytes([l0, l1]),
        }
    } else if crate::proto::tuple::uses_ports(key.protocol) {
        L4::Ports {
            sport: u16::from_be_bytes([l0, l1]),
            dport: u16::from_be_bytes([l2, l3]),
        }
    } else {
        L4::None
    };
    Tuple {
        family,
        src: addr(&key.src),
        dst: addr(&key.dst),
        protocol: key.protocol,
        l4,
    }
}

/// Which of an entry's tuples a packet matched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    /// The tuple of the packet that created the entry.
    Original,
    /// The tuple of the expected reply.
    Reply,
}

/// A table entry, reachable while the RCU guard or table lock it was found under is held.
///
/// # Invariants
///
/// Refers to a live entry allocated by [`NewEntry::new`] whose nodes and `l4`/`tuple` fields
/// are not written any more.
#[repr(transparent)]
pub(crate) struct Entry(Opaque<bindings::icmp_ct_entry>);

impl Entry {
    fn raw(&self) -> *mut bindings::icmp_ct_entry {
        self.0.get()
    }

    /// # Safety
    ///
    /// `node` must be a node of a live, published entry that stays alive for `'a`.
    unsafe fn from_node<'a>(node: NonNull<bindings::icmp_ct_node>) -> (&'a Entry, Dir) {
        // SAFETY: `dir` of a published node is immutable.
        let dir = unsafe { (*node.as_ptr()).dir };
        let (index, dir) = if dir == 0 {
            (0, Dir::Original)
        } else {
            (1, Dir::Reply)
        };
        // SAFETY: node `index` sits at that index of the entry's `node` array.
        let entry = unsafe { node.as_ptr().sub(index) }.cast::<Entry>();
        // SAFETY: per the caller; `Entry` is transparent over the C entry.
        (unsafe { &*entry }, dir)
    }

    /// The entry's original tuple.
    pub(crate) fn original(&self) -> Tuple {
        // SAFETY: by the type invariant the nodes are live and no longer written.
        tuple_of(unsafe { &(*self.raw()).node[0].tuple })
    }

    /// The packed flow state (see `tracker`), changed with atomic read-modify-writes.
    pub(crate) fn state(&self) -> &AtomicU64 {
        // SAFETY: the field is 8-byte aligned (the entry is kmem_cache memory, the field sits
        // after two 48-byte nodes) and only ever accessed atomically once published.
        unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*self.raw()).state)) }
    }

    /// When the entry expires: the low 32 bits of `jiffies`.
    pub(crate) fn deadline(&self) -> &AtomicU32 {
        // SAFETY: as for `state`, 4-byte aligned and only accessed atomically.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).deadline)) }
    }

    fn teardown(&self) -> &AtomicU32 {
        // SAFETY: as for `deadline`.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).teardown)) }
    }
}

/// An entry not yet in any table; freed on drop.
pub(crate) struct NewEntry {
    entry: NonNull<bindings::icmp_ct_entry>,
}

impl NewEntry {
    /// An entry for a flow whose first packet has `original`, expecting `reply`.
    pub(crate) fn new(original: &Tuple, reply: &Tuple, state: u64, deadline: u32) -> Option<Self> {
        let entry = slab::alloc()?;
        let raw = entry.as_ptr();
        // SAFETY: `raw` is a fresh, zeroed allocation that only this function knows about.
        unsafe {
            (*raw).node[0].tuple = key_of(original);
            (*raw).node[0].dir = 0;
            (*raw).node[1].tuple = key_of(reply);
            (*raw).node[1].dir = 1;
            (*raw).state = state;
            (*raw).deadline = deadline;
        }
        Some(NewEntry { entry })
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
    /// One of the tuples is already in the table (another CPU won a race), or the table
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

/// A connection table.
///
/// # Invariants
///
/// `ht` was initialised by `icmp_ct_table_init` and is destroyed only in `drop`; every node
/// in it belongs to an entry from [`slab::alloc`] with both nodes inserted.
pub(crate) struct Table {
    ht: KBox<Opaque<bindings::rhashtable>>,
    /// Serialises insertions and removals; `count` changes only under it.
    writer: SpinLockBh<()>,
    count: AtomicU32,
}

// SAFETY: the rhashtable is safe for concurrent use; writers hold `writer`.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

impl Table {
    /// An empty table.
    pub(crate) fn new() -> Result<Self> {
        let ht = KBox::new(Opaque::uninit(), GFP_KERNEL)?;
        // SAFETY: `ht` is at its final (heap) address and not yet initialised.
        kernel::error::to_result(unsafe { bindings::icmp_ct_table_init(ht.get()) })?;
        // INVARIANT: initialised above, empty.
        Ok(Table {
            ht,
            writer: SpinLockBh::new(())?,
            count: AtomicU32::new(0),
        })
    }

    fn ht(&self) -> *mut bindings::rhashtable {
        self.ht.get()
    }

    /// Entries in the table, expired ones included until they are collected.
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Hash buckets of the table now.
    pub(crate) fn buckets(&self) -> u32 {
        let _rcu = RcuGuard::new();
        // SAFETY: the table is live (type invariant) and RCU is held for its bucket table.
        unsafe { bindings::icmp_ct_table_buckets(bindings::icmp_ct_table_first(self.ht())) }
    }

    /// The entry one of whose tuples is `tuple`, and which of them.
    pub(crate) fn lookup<'a>(
        &'a self,
        tuple: &Tuple,
        _rcu: &'a RcuGuard,
    ) -> Option<(&'a Entry, Dir)> {
        let key = key_of(tuple);
        // SAFETY: the table is live; RCU is held for the lookup and the result's lifetime.
        let node = NonNull::new(unsafe { bindings::icmp_ct_table_lookup(self.ht(), &key) })?;
        // SAFETY: nodes in the table belong to published entries, freed only after a grace
        // period that `_rcu` holds off.
        Some(unsafe { Entry::from_node(node) })
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
        let _writer = self.writer.lock();
        let mut evicted = Evicted::default();
        if self.count() >= limit {
            self.make_room(&rcu, &evict, &mut evicted);
            if self.count() >= limit {
                return Err(InsertError::Full);
            }
        }
        let raw = new.entry.as_ptr();
        // A clash with an expired entry that is still in the table: remove it and retry once.
        for attempt in 0..2 {
            // SAFETY: the table is live and `raw` is an unpublished entry whose nodes we own.
            let mut status =
                unsafe { bindings::icmp_ct_table_insert(self.ht(), &mut (*raw).node[0]) };
            if status == 0 {
                // SAFETY: as above.
                status = unsafe { bindings::icmp_ct_table_insert(self.ht(), &mut (*raw).node[1]) };
                if status != 0 {
                    // SAFETY: node 0 was inserted just above, under the writer lock.
                    unsafe { bindings::icmp_ct_table_remove(self.ht(), &mut (*raw).node[0]) };
                }
            }
            if status == 0 {
                self.count.fetch_add(1, Ordering::Relaxed);
                // Published: the table owns it from now on.
                core::mem::forget(new);
                return Ok(evicted);
            }
            if attempt > 0 || !self.remove_expired_clash(&new, &rcu, &evict, &mut evicted) {
                break;
            }
        }
        drop(_writer);
        // Node 0 may have been visible to lookups for a moment: free after a grace period.
        let entry = new.entry;
        core::mem::forget(new);
        // SAFETY: the entry is in no table any more and is queued once.
        unsafe { slab::free_after_grace_period(entry) };
        Err(InsertError::Clash)
    }

    /// Removes expired entries holding one of `new`'s tuples; true if one was removed.
    fn remove_expired_clash(
        &self,
        new: &NewEntry,
        _rcu: &RcuGuard,
        evict: &impl Fn(&Entry) -> Eviction,
        evicted: &mut Evicted,
    ) -> bool {
        let raw = new.entry.as_ptr();
        let mut removed = false;
        for index in 0..2 {
            // SAFETY: `raw` is ours and unpublished (not in the table: its insertion failed);
            // its tuples are initialised.
            let key = unsafe { &(*raw).node[index].tuple };
            // SAFETY: the table is live; RCU is held by `_rcu`.
            let node = unsafe { bindings::icmp_ct_table_lookup(self.ht(), key) };
            let Some(node) = NonNull::new(node) else {
                continue;
            };
            // SAFETY: a node found in the table under RCU belongs to a published entry.
            let (entry, _) = unsafe { Entry::from_node(node) };
            if evict(entry) == Eviction::Expired && self.unlink(entry) {
                evicted.expired = evicted.expired.saturating_add(1);
                removed = true;
            }
        }
        removed
    }

    /// Removes one entry that `evict` allows, looking at up to `EVICTION_SCAN` entries from a
    /// random bucket on (then from the start). The writer lock must be held.
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
            let mut cursor = Cursor::default();
            let mut entry = self.cursor_seek_bucket(&mut cursor, start, rcu);
            while let Some(found) = entry {
                if budget == 0 {
                    return;
                }
                budget = budget.wrapping_sub(1);
                let verdict = evict(found);
                if verdict != Eviction::Keep && self.unlink(found) {
                    if verdict == Eviction::Expired {
                        evicted.expired = evicted.expired.saturating_add(1);
                    } else {
                        evicted.early_dropped = evicted.early_dropped.saturating_add(1);
                    }
                    return;
                }
                entry = self.cursor_next(&mut cursor, rcu);
            }
        }
    }

    /// Unlinks `entry` and queues it for freeing; false if someone else already did. The
    /// writer lock must be held.
    fn unlink(&self, entry: &Entry) -> bool {
        if entry.teardown().swap(1, Ordering::AcqRel) != 0 {
            return false;
        }
        let raw = entry.raw();
        // SAFETY: the entry is live and in the table (both nodes): only `unlink`, which the
        // `teardown` swap makes run once per entry, removes published entries.
        unsafe {
            bindings::icmp_ct_table_remove(self.ht(), &mut (*raw).node[0]);
            bindings::icmp_ct_table_remove(self.ht(), &mut (*raw).node[1]);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: unlinked from the table above, queued once thanks to `teardown`.
        unsafe { slab::free_after_grace_period(NonNull::new_unchecked(raw)) };
        true
    }

    /// Removes `entry` from the table; false if it was already removed.
    pub(crate) fn remove(&self, entry: &Entry) -> bool {
        let _writer = self.writer.lock();
        self.unlink(entry)
    }

    /// The first entry at or after bucket `start` (modulo the table size), walking on into
    /// the following buckets.
    fn cursor_seek_bucket<'a>(
        &'a self,
        cursor: &mut Cursor,
        start: u32,
        rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        // SAFETY: the table is live and RCU is held.
        cursor.tbl = unsafe { bindings::icmp_ct_table_first(self.ht()) };
        // SAFETY: `cursor.tbl` is the live bucket table.
        let size = unsafe { bindings::icmp_ct_table_buckets(cursor.tbl) };
        cursor.bucket = start.checked_rem(size).unwrap_or(0);
        cursor.node = core::ptr::null_mut();
        self.cursor_settle(cursor, rcu)
    }

    /// Positions `cursor` on the table's first entry.
    pub(crate) fn cursor_first<'a>(
        &'a self,
        cursor: &mut Cursor,
        rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        self.cursor_seek_bucket(cursor, 0, rcu)
    }

    /// Moves `cursor` to the next entry.
    pub(crate) fn cursor_next<'a>(
        &'a self,
        cursor: &mut Cursor,
        rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        if cursor.node.is_null() {
            return None;
        }
        // SAFETY: `cursor.node` was found under the RCU section `rcu` still holds.
        cursor.node = unsafe { bindings::icmp_ct_table_next(cursor.node) };
        self.cursor_settle(cursor, rcu)
    }

    /// The entry `cursor` points at, if any.
    pub(crate) fn cursor_entry<'a>(
        &'a self,
        cursor: &Cursor,
        _rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        let node = NonNull::new(cursor.node)?;
        // SAFETY: found under the RCU section `_rcu` holds.
        Some(unsafe { Entry::from_node(node) }.0)
    }

    /// Advances `cursor` from its position (or the start of its bucket, when it has no node)
    /// to the next original-direction node, through the following buckets and tables.
    fn cursor_settle<'a>(&'a self, cursor: &mut Cursor, rcu: &'a RcuGuard) -> Option<&'a Entry> {
        loop {
            while !cursor.node.is_null() {
                // SAFETY: found under RCU; `dir` of a published node is immutable.
                if unsafe { (*cursor.node).dir } == 0 {
                    return self.cursor_entry(cursor, rcu);
                }
                // SAFETY: as above.
                cursor.node = unsafe { bindings::icmp_ct_table_next(cursor.node) };
            }
            if cursor.tbl.is_null() {
                return None;
            }
            // SAFETY: `cursor.tbl` was read under the RCU section `rcu` holds.
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

/// A position in a table walk, valid within one RCU read-side section.
#[derive(Clone, Copy)]
pub(crate) struct Cursor {
    tbl: *const bindings::bucket_table,
    bucket: u32,
    started: bool,
    node: *mut bindings::icmp_ct_node,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            tbl: core::ptr::null(),
            bucket: 0,
            started: false,
            node: core::ptr::null_mut(),
        }
    }
}

/// # Safety
///
/// Called by `rhashtable_free_and_destroy` once for each node in the table, with no other
/// user of the table left.
unsafe extern "C" fn destroy_node(node: *mut core::ffi::c_void, _arg: *mut core::ffi::c_void) {
    let Some(node) = NonNull::new(node.cast::<bindings::icmp_ct_node>()) else {
        return;
    };
    // SAFETY: the node belongs to an entry that is still allocated: it is freed below only
    // when its second node is visited.
    let (entry, _) = unsafe { Entry::from_node(node) };
    if entry.teardown().fetch_add(1, Ordering::AcqRel) == 1 {
        // SAFETY: both nodes have been visited; nobody else uses the table.
        unsafe { slab::free(NonNull::new_unchecked(entry.raw())) };
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: the owner guarantees no reader or writer is left (hooks unregistered and a
        // grace period passed, procfs files removed, garbage collection cancelled).
        unsafe {
            bindings::icmp_ct_table_destroy(self.ht(), Some(destroy_node), core::ptr::null_mut())
        };
    }
}
