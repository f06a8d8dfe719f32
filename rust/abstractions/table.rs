// SPDX-License-Identifier: GPL-2.0

//! A namespace's connection table: entries hashed by both their original and their reply
//! tuple in one `rhashtable` (which grows and shrinks with the number of entries), and linked
//! into one RCU list, oldest first.
//!
//! Lookups and walks run under RCU without locks. The listing follows the list: a walk of
//! the hash table's buckets sees entries twice while the table is resized, and in another
//! order after it. Garbage collection, which does not mind seeing an entry twice, follows
//! rhashtable's walker instead, which keeps its position while it gives up the CPU.
//! Insertions and removals take the table's bh-safe lock, so that both nodes and the list
//! link of an entry come and go together and the entry count is exact. Removed entries are
//! freed after an RCU grace period.
//!
//! An entry stores its original tuple only; the key of its reply node is computed from it
//! ([`Tuple::reply`]) by the hash and compare callbacks below, which rhashtable calls.

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
    /// `node` must be a node of an entry from [`NewEntry::new`] that stays allocated for `'a`
    /// and whose nodes are initialised.
    unsafe fn from_node<'a>(node: NonNull<bindings::icmp_ct_node>) -> (&'a Entry, Dir) {
        // SAFETY: `dir` of an initialised node is immutable.
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

    /// # Safety
    ///
    /// `raw` must be an entry from [`NewEntry::new`] that stays allocated for `'a`.
    unsafe fn from_raw<'a>(raw: NonNull<bindings::icmp_ct_entry>) -> &'a Entry {
        // SAFETY: per the caller; `Entry` is transparent over the C entry.
        unsafe { &*raw.as_ptr().cast::<Entry>() }
    }

    /// The entry's original tuple.
    pub(crate) fn original(&self) -> Tuple {
        tuple_of(self.original_key())
    }

    fn original_key(&self) -> &bindings::icmp_ct_tuple {
        // SAFETY: by the type invariant the tuple is initialised and no longer written.
        unsafe { &(*self.raw()).tuple }
    }

    /// The key of the entry's node for `dir`; `None` only for an original tuple that has no
    /// reply, which [`Table::insert`] refuses.
    fn key(&self, dir: Dir) -> Option<bindings::icmp_ct_tuple> {
        match dir {
            Dir::Original => Some(copy_key(self.original_key())),
            Dir::Reply => tuple_of(self.original_key()).reply().map(|t| key_of(&t)),
        }
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

/// A copy of `key` (bindgen derives no `Clone` for it).
fn copy_key(key: &bindings::icmp_ct_tuple) -> bindings::icmp_ct_tuple {
    bindings::icmp_ct_tuple {
        src: key.src,
        dst: key.dst,
        protocol: key.protocol,
        icmp_type: key.icmp_type,
        icmp_code: key.icmp_code,
        l4: key.l4,
    }
}

fn same_key(a: &bindings::icmp_ct_tuple, b: &bindings::icmp_ct_tuple) -> bool {
    a.src == b.src
        && a.dst == b.dst
        && a.protocol == b.protocol
        && a.icmp_type == b.icmp_type
        && a.icmp_code == b.icmp_code
        && a.l4 == b.l4
}

/// The key of `node`, computed from its entry.
///
/// # Safety
///
/// `node` must be a node of an entry from [`NewEntry::new`] that stays allocated during the
/// call.
unsafe fn node_key(node: *const core::ffi::c_void) -> Option<bindings::icmp_ct_tuple> {
    let node = NonNull::new(node.cast_mut().cast::<bindings::icmp_ct_node>())?;
    // SAFETY: per the caller.
    let (entry, dir) = unsafe { Entry::from_node(node) };
    entry.key(dir)
}

/// Hashes `key` as the table hashes every key.
fn hash_key(key: &bindings::icmp_ct_tuple, seed: u32) -> u32 {
    let len = core::mem::size_of::<bindings::icmp_ct_tuple>() as u32;
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
        Some(key) => hash_key(&key, seed),
        None => seed,
    }
}

/// rhashtable's `obj_cmpfn`: 0 if the node's key is the key looked up.
///
/// # Safety
///
/// Called by rhashtable with the `icmp_ct_tuple` it looks up in `arg` and a node as for
/// [`icmp_ct_node_hash`].
#[no_mangle]
unsafe extern "C" fn icmp_ct_node_cmp(
    arg: *mut bindings::rhashtable_compare_arg,
    node: *const core::ffi::c_void,
) -> core::ffi::c_int {
    // SAFETY: per this function's contract, `arg` points to a compare argument whose key is
    // a tuple (every lookup and insertion passes one).
    let Some(wanted) = (unsafe { (*arg).key.cast::<bindings::icmp_ct_tuple>().as_ref() }) else {
        return 1;
    };
    // SAFETY: per this function's contract.
    match unsafe { node_key(node) } {
        Some(key) if same_key(&key, wanted) => 0,
        _ => 1,
    }
}

/// An entry not yet in any table; freed on drop.
pub(crate) struct NewEntry {
    entry: NonNull<bindings::icmp_ct_entry>,
}

impl NewEntry {
    /// An entry for a flow whose first packet has `original`, which must have a reply tuple
    /// ([`Table::insert`] refuses it otherwise); `None` if memory is short.
    pub(crate) fn new(original: &Tuple, state: u64, deadline: u32) -> Option<Self> {
        let entry = slab::alloc()?;
        let raw = entry.as_ptr();
        // SAFETY: `raw` is a fresh, zeroed allocation that only this function knows about.
        unsafe {
            (*raw).tuple = key_of(original);
            (*raw).node[0].dir = 0;
            (*raw).node[1].dir = 1;
            (*raw).state = state;
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

/// Nodes (two per entry) a yielding walk visits per RCU read-side section.
const WALK_BATCH: u32 = 256;

/// A connection table.
///
/// # Invariants
///
/// `raw` was initialised by `icmp_ct_table_init` and is destroyed only in `drop`; every node
/// in its hash table belongs to an entry from [`NewEntry::new`] with both nodes inserted and
/// linked into its list; the list holds exactly those entries.
pub(crate) struct Table {
    raw: KBox<Opaque<bindings::icmp_ct_table>>,
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
        let raw = KBox::new(Opaque::uninit(), GFP_KERNEL)?;
        // SAFETY: `raw` is at its final (heap) address and not yet initialised.
        kernel::error::to_result(unsafe { bindings::icmp_ct_table_init(raw.get()) })?;
        // INVARIANT: initialised above, empty.
        Ok(Table {
            raw,
            writer: SpinLockBh::new(())?,
            count: AtomicU32::new(0),
        })
    }

    fn raw(&self) -> *mut bindings::icmp_ct_table {
        self.raw.get()
    }

    /// Entries in the table, expired ones included until they are collected. Read under the
    /// writer lock, so that it is the length the list had at one moment.
    pub(crate) fn count(&self) -> u32 {
        let _writer = self.writer.lock();
        self.count_locked()
    }

    /// [`Self::count`] for holders of the writer lock.
    fn count_locked(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Hash buckets of the table now.
    pub(crate) fn buckets(&self) -> u32 {
        let _rcu = RcuGuard::new();
        // SAFETY: the table is live (type invariant) and RCU is held for its bucket table.
        unsafe { bindings::icmp_ct_table_buckets(bindings::icmp_ct_table_first(self.raw())) }
    }

    /// The entry one of whose tuples is `tuple`, and which of them.
    pub(crate) fn lookup<'a>(
        &'a self,
        tuple: &Tuple,
        _rcu: &'a RcuGuard,
    ) -> Option<(&'a Entry, Dir)> {
        let key = key_of(tuple);
        // SAFETY: the table is live; RCU is held for the lookup and the result's lifetime.
        let node = NonNull::new(unsafe { bindings::icmp_ct_table_lookup(self.raw(), &key) })?;
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
        if self.count_locked() >= limit {
            self.make_room(&rcu, &evict, &mut evicted);
            if self.count_locked() >= limit {
                return Err(InsertError::Full);
            }
        }
        let (Some(key0), Some(key1)) =
            (new.entry().key(Dir::Original), new.entry().key(Dir::Reply))
        else {
            return Err(InsertError::Clash);
        };
        let keys = [key0, key1];
        let raw = new.entry.as_ptr();
        // A clash with an expired entry that is still in the table: remove it and retry once.
        for attempt in 0..2 {
            // SAFETY: the table is live and `raw` is an unpublished entry whose nodes we own;
            // `key0` is node 0's key.
            let mut status = unsafe {
                bindings::icmp_ct_table_insert(self.raw(), &mut (*raw).node[0], &keys[0])
            };
            if status == 0 {
                // SAFETY: as above, for node 1.
                status = unsafe {
                    bindings::icmp_ct_table_insert(self.raw(), &mut (*raw).node[1], &keys[1])
                };
                if status != 0 {
                    // SAFETY: node 0 was inserted just above, under the writer lock.
                    unsafe { bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[0]) };
                }
            }
            if status == 0 {
                self.count.fetch_add(1, Ordering::Relaxed);
                // SAFETY: both nodes are hashed; the entry joins the list under the writer
                // lock, which every list change holds.
                unsafe { bindings::icmp_ct_table_link(self.raw(), raw) };
                // Published: the table owns it from now on.
                core::mem::forget(new);
                return Ok(evicted);
            }
            if attempt > 0 || !self.remove_expired_clash(&keys, &rcu, &evict, &mut evicted) {
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

    /// Removes expired entries holding one of `keys`; true if one was removed. The writer
    /// lock must be held.
    fn remove_expired_clash(
        &self,
        keys: &[bindings::icmp_ct_tuple; 2],
        _rcu: &RcuGuard,
        evict: &impl Fn(&Entry) -> Eviction,
        evicted: &mut Evicted,
    ) -> bool {
        let mut removed = false;
        for key in keys {
            // SAFETY: the table is live; RCU is held by `_rcu`.
            let node = unsafe { bindings::icmp_ct_table_lookup(self.raw(), key) };
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
            let mut cursor = BucketCursor::default();
            let mut entry = self.bucket_seek(&mut cursor, start, rcu);
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
                entry = self.bucket_next(&mut cursor, rcu);
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
        // SAFETY: the entry is live, hashed (both nodes) and listed: only `unlink`, which the
        // `teardown` swap makes run once per entry, removes published entries; the writer lock
        // is held for the list.
        unsafe {
            bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[0]);
            bindings::icmp_ct_table_remove(self.raw(), &mut (*raw).node[1]);
            bindings::icmp_ct_table_unlink(raw);
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

    /// Calls `visit` with every entry, giving up the CPU and the RCU read-side section
    /// between batches of [`WALK_BATCH`] nodes, so that a walk of millions of entries neither
    /// holds a CPU nor delays grace periods. Process context only. Follows rhashtable's
    /// resumable walker, not the list: a list position is lost once RCU is released, a walker
    /// position is not. An entry in the table during the whole walk is visited at least
    /// once; a resize meanwhile makes the walk see entries again.
    pub(crate) fn for_each_yielding(&self, mut visit: impl FnMut(&Entry)) {
        let iter = core::pin::pin!(Opaque::<bindings::rhashtable_iter>::uninit());
        let iter = iter.get();
        // SAFETY: the table is live; `iter` is pinned in this frame and exited below, on the
        // only way out of this function.
        unsafe { bindings::icmp_ct_table_walk_enter(self.raw(), iter) };
        // SAFETY: entered above and not started.
        unsafe { bindings::icmp_ct_table_walk_start(iter) };
        let mut batch = 0u32;
        loop {
            // SAFETY: started (RCU held).
            let node = unsafe { bindings::icmp_ct_table_walk_next(iter) };
            let Some(node) = NonNull::new(node) else {
                break;
            };
            // SAFETY: a node found in the table under the walk's RCU section: its entry is
            // freed only after a grace period, which that section holds off until the next
            // stop; `visit` cannot keep the reference beyond its call.
            let (entry, dir) = unsafe { Entry::from_node(node) };
            if dir == Dir::Original {
                visit(entry);
            }
            batch = batch.wrapping_add(1);
            if batch >= WALK_BATCH {
                batch = 0;
                // SAFETY: started; the walker keeps its position across stop and start (a
                // removed position rewinds its bucket); process context may reschedule with
                // RCU released.
                unsafe {
                    bindings::icmp_ct_table_walk_stop(iter);
                    bindings::icmp_ct_cond_resched();
                    bindings::icmp_ct_table_walk_start(iter);
                }
            }
        }
        // SAFETY: started, then stopped and exited once, before `iter` goes out of scope.
        unsafe {
            bindings::icmp_ct_table_walk_stop(iter);
            bindings::icmp_ct_table_walk_exit(iter);
        }
    }

    /// Positions `cursor` on the oldest entry.
    pub(crate) fn cursor_first<'a>(
        &'a self,
        cursor: &mut Cursor,
        _rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        // SAFETY: the table is live and RCU is held.
        cursor.entry = unsafe { bindings::icmp_ct_table_oldest(self.raw()) };
        self.cursor_entry(cursor, _rcu)
    }

    /// Moves `cursor` to the next newer entry. The entry it was on may have been removed
    /// meanwhile: a removed entry still leads on to the entries after it.
    pub(crate) fn cursor_next<'a>(
        &'a self,
        cursor: &mut Cursor,
        rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        if cursor.entry.is_null() {
            return None;
        }
        // SAFETY: the table is live; `cursor.entry` was found under the RCU section `rcu`
        // still holds, so it is not freed yet, and its list link leads on.
        cursor.entry = unsafe { bindings::icmp_ct_table_newer(self.raw(), cursor.entry) };
        self.cursor_entry(cursor, rcu)
    }

    /// The entry `cursor` points at, if any.
    pub(crate) fn cursor_entry<'a>(
        &'a self,
        cursor: &Cursor,
        _rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        let entry = NonNull::new(cursor.entry)?;
        // SAFETY: found under the RCU section `_rcu` holds, in the table's list: an entry from
        // `NewEntry::new`, freed only after a grace period.
        Some(unsafe { Entry::from_raw(entry) })
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
    /// to the next original-direction node, through the following buckets and tables.
    fn bucket_settle<'a>(
        &'a self,
        cursor: &mut BucketCursor,
        _rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        loop {
            while let Some(node) = NonNull::new(cursor.node) {
                // SAFETY: found under RCU: a node of an entry freed only after a grace period.
                let (entry, dir) = unsafe { Entry::from_node(node) };
                if dir == Dir::Original {
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

/// A position in a walk of the table's list, valid within one RCU read-side section.
#[derive(Clone, Copy)]
pub(crate) struct Cursor {
    entry: *mut bindings::icmp_ct_entry,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            entry: core::ptr::null_mut(),
        }
    }
}

/// A position in a walk of the hash table's buckets, valid within one RCU read-side section.
#[derive(Clone, Copy)]
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
        let rcu = RcuGuard::new();
        let mut cursor = Cursor::default();
        let mut entry = self.cursor_first(&mut cursor, &rcu);
        while let Some(found) = entry {
            let raw = NonNull::from(found).cast::<bindings::icmp_ct_entry>();
            entry = self.cursor_next(&mut cursor, &rcu);
            // SAFETY: the owner guarantees no reader or writer is left (hooks unregistered and
            // a grace period passed, procfs files removed, garbage collection cancelled); the
            // walk has moved past the entry.
            unsafe { slab::free(raw) };
        }
        drop(rcu);
        // SAFETY: as above; the entries its nodes belonged to are freed, and
        // `rhashtable_destroy` only frees the bucket tables.
        unsafe { bindings::icmp_ct_table_destroy(self.raw()) };
    }
}
