// SPDX-License-Identifier: GPL-2.0

//! Table entries: their memory layout's accessors, their life in the state word, the node
//! callbacks rhashtable calls, and an entry's reference paired with its table.

use super::Table;
use crate::abstractions::jiffies;
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::slab;
use crate::bindings;
use crate::proto::entry_word;
use crate::proto::key::Key;
use crate::proto::tcp_window::TcpWindows;
use crate::proto::tuple::{Tuple, IPPROTO_TCP};
use core::ffi::c_int;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::types::Opaque;

pub(super) fn raw_key(key: &Key) -> bindings::icmp_ct_key {
    bindings::icmp_ct_key { w: key.0 }
}

pub(crate) use crate::proto::decide::Dir;

/// A table entry.
///
/// # Invariants
///
/// Refers to an entry allocated by [`NewEntry::new`], reached under an RCU read-side section;
/// its nodes' `dir` and `single`, and its key, are not written
/// any more.
#[repr(transparent)]
pub(crate) struct Entry(Opaque<bindings::icmp_ct_entry>);

impl Entry {
    pub(super) fn raw(&self) -> *mut bindings::icmp_ct_entry {
        self.0.get()
    }

    /// # Safety
    ///
    /// `node` must be a node of an entry from [`NewEntry::new`] that stays allocated for `'a`.
    pub(super) unsafe fn from_node<'a>(node: NonNull<bindings::icmp_ct_node>) -> (&'a Entry, Dir) {
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
    pub(super) unsafe fn from_raw<'a>(raw: NonNull<bindings::icmp_ct_entry>) -> &'a Entry {
        // SAFETY: per the caller; `Entry` is transparent over the C entry.
        unsafe { &*raw.as_ptr().cast::<Entry>() }
    }

    /// The entry's original tuple.
    pub(crate) fn original(&self) -> Option<Tuple> {
        self.original_key().tuple()
    }

    pub(super) fn original_key(&self) -> Key {
        // SAFETY: by the type invariant the key is initialised and no longer written.
        Key(unsafe { (*self.raw()).key.w })
    }

    pub(super) fn is_single(&self) -> bool {
        // SAFETY: as for the key.
        unsafe { (*self.raw()).node[0].single != 0 }
    }

    /// The key of the entry's node for `dir`.
    pub(super) fn key(&self, dir: Dir) -> Option<Key> {
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

    /// When the request that created or last refreshed a query entry passed: the low 32
    /// bits of a microsecond clock.
    pub(crate) fn request_us(&self) -> &AtomicU32 {
        // SAFETY: as for `deadline`.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).request_us)) }
    }

    /// A replied query entry's last round trip, in microseconds.
    pub(crate) fn rtt_us(&self) -> &AtomicU32 {
        // SAFETY: as for `deadline`.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).rtt_us)) }
    }

    pub(super) fn unlinked(&self) -> &AtomicU32 {
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

    /// Marks the entry dying if its word is still `judged`, which is live or closed: false
    /// otherwise (it changed since it was judged, or is being inserted, or already ends).
    pub(super) fn mark_dying_from(&self, judged: u64) -> bool {
        entry_word::is_removable(judged)
            && self
                .state()
                .compare_exchange(
                    judged,
                    entry_word::dying(judged),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Marks a live or closed entry dying; false if it was neither (being inserted, or
    /// already ended by someone else).
    pub(super) fn mark_dying(&self) -> bool {
        let mut current = self.state().load(Ordering::Relaxed);
        while entry_word::is_removable(current) {
            if self.mark_dying_from(current) {
                return true;
            }
            current = self.state().load(Ordering::Relaxed);
        }
        false
    }
}

/// An entry found in a table, with the table it is in.
#[derive(Clone, Copy)]
pub(crate) struct EntryRef<'a> {
    pub(super) table: &'a Table,
    pub(super) entry: &'a Entry,
}

impl<'a> core::ops::Deref for EntryRef<'a> {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl<'a> EntryRef<'a> {
    /// Locks the sequence state of a TCP entry; `None` for any other entry.
    pub(crate) fn lock_windows(&self) -> Option<WindowsGuard<'a>> {
        // SAFETY: the key is initialised and no longer written (type invariant).
        if !slab::is_tcp_key(unsafe { &(*self.entry.raw()).key }) {
            return None;
        }
        let tcp = self.entry.raw().cast::<bindings::icmp_ct_tcp_entry>();
        // SAFETY: a TCP entry is the first field of an `icmp_ct_tcp_entry`
        // (`slab::alloc(true)`), whose lock was initialised there.
        unsafe { bindings::icmp_ct_spin_lock_bh(core::ptr::addr_of_mut!((*tcp).lock)) };
        Some(WindowsGuard {
            tcp,
            _entry: PhantomData,
        })
    }

    /// Marks the entry dying and removes it from its table; false if it was neither live nor
    /// closed.
    pub(crate) fn remove(&self) -> bool {
        if !self.entry.mark_dying() {
            return false;
        }
        self.table.unlink(self.entry, false);
        true
    }

    /// As [`EntryRef::remove`], only if the entry's word is still `judged`, which the caller
    /// loaded before it judged the entry (with its deadline, loaded after it).
    pub(crate) fn remove_from(&self, judged: u64) -> bool {
        if !self.entry.mark_dying_from(judged) {
            return false;
        }
        self.table.unlink(self.entry, false);
        true
    }

    /// Closes the entry if its word is still `current`: from then on it is not matched,
    /// listed or counted, until a request of its original tuple opens it again
    /// ([`Table::reopen`]) or it is removed. `Err` with the word found otherwise.
    pub(crate) fn close(&self, current: u64) -> Result<(), u64> {
        if !entry_word::is_live(current) {
            return Err(current);
        }
        // Looked up before the entry closes (see `sources`).
        let rcu = RcuGuard::new();
        let source = self.table.node_of(self.entry, &rcu);
        self.entry.state().compare_exchange(
            current,
            entry_word::closed(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )?;
        self.table.give_place();
        if let Some(node) = source {
            node.give_slot();
        }
        Ok(())
    }
}

/// The locked sequence state of a TCP entry: whoever decides on a TCP packet holds it from
/// reading the entry's word to storing what the packet changed.
pub(crate) struct WindowsGuard<'a> {
    tcp: *mut bindings::icmp_ct_tcp_entry,
    _entry: PhantomData<&'a Entry>,
}

impl WindowsGuard<'_> {
    /// The sequence state.
    pub(crate) fn get(&self) -> TcpWindows {
        // SAFETY: the lock is held and the entry allocated for the guard's lifetime.
        TcpWindows::from_words(unsafe { &(*self.tcp).windows })
    }

    /// Replaces the sequence state.
    pub(crate) fn set(&self, windows: &TcpWindows) {
        // SAFETY: as for `get`.
        unsafe { (*self.tcp).windows = windows.to_words() };
    }
}

impl Drop for WindowsGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `EntryRef::lock_windows` on this context.
        unsafe { bindings::icmp_ct_spin_unlock_bh(core::ptr::addr_of_mut!((*self.tcp).lock)) };
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
) -> c_int {
    // SAFETY: per this function's contract, `arg` points to a compare argument whose key is
    // an `icmp_ct_key` (every lookup and insertion passes one).
    let Some(wanted) = (unsafe { (*arg).key.cast::<bindings::icmp_ct_key>().as_ref() }) else {
        return 1;
    };
    let Some(node) = NonNull::new(node.cast_mut().cast::<bindings::icmp_ct_node>()) else {
        return 1;
    };
    // SAFETY: per this function's contract.
    let (entry, dir) = unsafe { Entry::from_node(node) };
    let original = entry.original_key();
    let wanted = Key(wanted.w);
    // A single node is keyed by the original key, whichever direction it matches as.
    let matches = if dir == Dir::Original || entry.is_single() {
        original == wanted
    } else {
        original.has_reply(&wanted)
    };
    c_int::from(!matches)
}

/// An entry not yet in any table; freed on drop.
pub(crate) struct NewEntry {
    pub(super) entry: NonNull<bindings::icmp_ct_entry>,
}

impl NewEntry {
    /// An entry for a flow whose first packet has `original`; `None` if memory is short or
    /// the tuple has no reply.
    pub(crate) fn new(original: &Tuple, state: u64, deadline: u32) -> Option<Self> {
        let key = Key::of(original);
        let single = key.reply()? == key;
        let entry = slab::alloc(key.protocol() == IPPROTO_TCP)?;
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

    /// Sets the sequence state of a TCP entry (nothing for others).
    pub(crate) fn set_windows(&mut self, windows: &TcpWindows) {
        let raw = self.entry.as_ptr();
        // SAFETY: unpublished, so no lock is needed; the key is set; a TCP entry is the first
        // field of an `icmp_ct_tcp_entry`.
        unsafe {
            if slab::is_tcp_key(&(*raw).key) {
                (*raw.cast::<bindings::icmp_ct_tcp_entry>()).windows = windows.to_words();
            }
        }
    }

    /// Sets when the request that creates a query entry passed (see [`Entry::request_us`]).
    pub(crate) fn set_request_us(&mut self, request_us: u32) {
        self.entry()
            .request_us()
            .store(request_us, Ordering::Relaxed);
    }

    pub(super) fn entry(&self) -> &Entry {
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
