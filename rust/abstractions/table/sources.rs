// SPDX-License-Identifier: GPL-2.0

//! The table's sources, for `ip_ct_max_per_source` (`proto::quota`): one small node per
//! source with entries counted in it, in a second rhashtable of the table, keyed by
//! [`Source`]. An entry created while the quota is set is counted in its source for its
//! whole life (its `sourced` flag, in node 0's padding, never changes): the entry does not
//! grow.
//!
//! A node's `count` (its entries neither closed nor unlinked, expired ones included) changes
//! with atomics, also without the writer lock: a reply closing an entry gives its slot back
//! and a request opening it again takes one. A node's `linked` (its linked entries, closed
//! ones included, plus an insertion under way) changes under the writer lock, which removes
//! the node when it drops to 0. A lockless path that changes `count` looks the node up
//! *before* the compare-and-swap that closes or opens the entry: if that succeeds, the entry
//! was linked throughout, so the node found is the entry's one (a node removed and added again
//! for the same source would take a slot that is not its own).
//!
//! `oldest` points to the oldest entry of the source the table knows of; the writer lock
//! moves it on before unlinking that entry, so a reader that loaded it under RCU may follow
//! it: the entry is freed only after a grace period. A search for the entry a source over
//! its quota loses starts there (or at the table's oldest entry when it is unknown) and
//! looks at [`OWN_SCAN`] entries at most.

use super::{Entry, Evicted, InsertError, Table};
use crate::abstractions::jiffies;
use crate::abstractions::rcu::RcuGuard;
use crate::bindings;
use crate::proto::key::Key;
use crate::proto::quota::{self, Admission, Source, OWN_SCAN};
use crate::proto::tuple::Tuple;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use kernel::types::Opaque;

/// A source's node.
///
/// # Invariants
///
/// Allocated by `icmp_ct_source_get_or_add` and reached under RCU or the writer lock; freed
/// after a grace period once removed from the table's sources.
#[repr(transparent)]
pub(super) struct SourceNode(Opaque<bindings::icmp_ct_source>);

impl SourceNode {
    fn raw(&self) -> *mut bindings::icmp_ct_source {
        self.0.get()
    }

    /// Its entries counted against the quota.
    fn count(&self) -> &AtomicU32 {
        // SAFETY: a 4-byte aligned field of a live node, only accessed atomically.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).count)) }
    }

    /// Its linked entries and the insertion under way, if any.
    fn linked(&self) -> &AtomicU32 {
        // SAFETY: as for `count`.
        unsafe { AtomicU32::from_ptr(core::ptr::addr_of_mut!((*self.raw()).linked)) }
    }

    /// Its oldest entry known.
    fn oldest(&self) -> &AtomicPtr<bindings::icmp_ct_entry> {
        // SAFETY: an 8-byte aligned pointer field of a live node, only accessed atomically.
        unsafe { AtomicPtr::from_ptr(core::ptr::addr_of_mut!((*self.raw()).oldest)) }
    }

    /// Takes one slot of `quota` (0: no limit); false if none is left.
    fn take_slot(&self, quota: u32) -> bool {
        self.count()
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |count| {
                quota::take_slot(quota, count)
            })
            .is_ok()
    }

    /// Gives one slot back.
    fn give_slot(&self) {
        let _ = self
            .count()
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |count| {
                count.checked_sub(1)
            });
    }
}

fn raw_source(source: &Source) -> bindings::icmp_ct_source_key {
    bindings::icmp_ct_source_key { w: source.0 }
}

impl Entry {
    /// The source the entry is counted in, if it is counted.
    pub(super) fn source(&self) -> Option<Source> {
        // SAFETY: `sourced` is written before the entry is published, then never again.
        if unsafe { (*self.raw()).node[0].sourced } == 0 {
            return None;
        }
        Some(Source::of(&self.original_key()))
    }
}

/// A slot taken for an entry being inserted: its node is pinned (`linked`) until the entry is
/// linked or the slot is given back.
pub(super) struct Slot<'a> {
    node: &'a SourceNode,
    fresh: bool,
}

impl Table {
    /// The node of `source`, while entries counted in it are linked.
    fn source_node<'a>(&'a self, source: &Source, _rcu: &'a RcuGuard) -> Option<&'a SourceNode> {
        // SAFETY: the table is live; RCU is held for the lookup and the result's lifetime.
        let node = unsafe { bindings::icmp_ct_source_lookup(self.raw(), &raw_source(source)) };
        // SAFETY: nodes are freed only after a grace period, which `_rcu` holds off;
        // `SourceNode` is transparent over the C node.
        NonNull::new(node).map(|node| unsafe { &*node.as_ptr().cast::<SourceNode>() })
    }

    /// What `ip_ct_max_per_source` = `quota` lets a packet that would create the entry of
    /// `tuple` do, as far as can be seen without the writer lock.
    pub(crate) fn quota_admission(&self, tuple: &Tuple, quota: u32, rcu: &RcuGuard) -> Admission {
        if quota == 0 {
            return Admission::Admit;
        }
        let source = Source::of(&Key::of(tuple));
        let Some(node) = self.source_node(&source, rcu) else {
            return Admission::Admit;
        };
        let count = node.count().load(Ordering::Relaxed);
        let own = count >= quota && self.own_to_lose(node, &source, rcu).0.is_some();
        quota::admit(quota, count, own)
    }

    /// The oldest entry of `source` that it may lose, among [`OWN_SCAN`] entries from its
    /// oldest entry known (or the table's oldest); and whether the search started at the
    /// table's oldest entry, with the first entry of `source` it met.
    fn own_to_lose<'a>(
        &'a self,
        node: &SourceNode,
        source: &Source,
        rcu: &'a RcuGuard,
    ) -> (Option<&'a Entry>, Option<&'a Entry>) {
        let now = jiffies::now();
        let hint = NonNull::new(node.oldest().load(Ordering::Acquire));
        let mut entry = match hint {
            // SAFETY: `oldest` is moved on before its entry is unlinked, and entries are
            // freed a grace period after that, which `rcu` holds off (see the module doc).
            Some(hint) => Some(unsafe { Entry::from_raw(hint) }),
            None => self.oldest(rcu),
        };
        let mut first_seen = None;
        for _ in 0..OWN_SCAN {
            let Some(found) = entry else {
                break;
            };
            if found.source().as_ref() == Some(source) {
                if hint.is_none() && first_seen.is_none() {
                    first_seen = Some(found);
                }
                let word = found.state().load(Ordering::Acquire);
                if quota::may_lose(word, found.expired(now)) {
                    return (Some(found), first_seen);
                }
            }
            // SAFETY: `found` was reached on this table's list (or through `oldest`, which
            // was on it when loaded) within `rcu`.
            entry = unsafe { self.newer(found) };
        }
        (None, first_seen)
    }

    /// Takes a slot of `quota` for `entry`, which is being inserted, first evicting its
    /// source's oldest entry it may lose when the source is at its quota; marks `entry`
    /// counted. The writer lock must be held.
    pub(super) fn take_quota_slot<'a>(
        &'a self,
        entry: &Entry,
        quota: u32,
        rcu: &'a RcuGuard,
        evicted: &mut Evicted,
    ) -> Result<Slot<'a>, InsertError> {
        let source = Source::of(&entry.original_key());
        // SAFETY: the table is live and the writer lock, which serialises additions and
        // removals of sources, is held.
        let node = unsafe { bindings::icmp_ct_source_get_or_add(self.raw(), &raw_source(&source)) };
        let Some(node) = NonNull::new(node) else {
            return Err(InsertError::Clash);
        };
        // SAFETY: as for `source_node`; the writer lock keeps it in the table, too.
        let node = unsafe { &*node.as_ptr().cast::<SourceNode>() };
        // Pinned: our own evictions below must not remove it.
        let fresh = node.linked().fetch_add(1, Ordering::Relaxed) == 0;
        let slot = Slot { node, fresh };
        if node.count().load(Ordering::Relaxed) >= quota {
            let (own, first_seen) = self.own_to_lose(node, &source, rcu);
            if let Some(first) = first_seen {
                if node.oldest().load(Ordering::Relaxed).is_null() {
                    node.oldest().store(first.raw(), Ordering::Release);
                }
            }
            if let Some(own) = own {
                let expired = own.expired(jiffies::now());
                if own.mark_dying() && self.unlink(own) {
                    if expired {
                        evicted.expired = evicted.expired.saturating_add(1);
                    } else {
                        evicted.early_dropped = evicted.early_dropped.saturating_add(1);
                    }
                }
            }
        }
        if !node.take_slot(quota) {
            self.unpin(node);
            return Err(InsertError::Quota);
        }
        // SAFETY: the entry is not published yet: nobody else reads or writes it.
        unsafe { (*entry.raw()).node[0].sourced = 1 };
        Ok(slot)
    }

    /// Gives back a slot whose entry was not inserted. The writer lock must be held.
    pub(super) fn give_back(&self, slot: Slot<'_>) {
        slot.node.give_slot();
        self.unpin(slot.node);
    }

    /// Notes that the entry of `slot` is linked. The writer lock must be held.
    pub(super) fn linked_in_source(&self, slot: Slot<'_>, entry: &Entry) {
        // Its first entry: the oldest. Else the entries before it stay the oldest (or, when
        // `oldest` was lost, a search from the table's oldest finds it again).
        if slot.fresh {
            slot.node.oldest().store(entry.raw(), Ordering::Release);
        }
    }

    /// Drops a pin or a linked entry of `node`; removes it at the last one. The writer lock
    /// must be held.
    fn unpin(&self, node: &SourceNode) {
        if node.linked().fetch_sub(1, Ordering::Relaxed) == 1 {
            // SAFETY: no entry counted in the node is linked or being inserted (and none can
            // be while we hold the writer lock): lockless paths only reach it through such an
            // entry. Freed after a grace period.
            unsafe { bindings::icmp_ct_source_remove(self.raw(), node.raw()) };
        }
    }

    /// Takes `entry`, which is being unlinked with its state word `word`, off its source. The
    /// writer lock must be held, and `entry` still be on the list.
    pub(super) fn unlinked_from_source(&self, entry: &Entry, word: u64) {
        let Some(source) = entry.source() else {
            return;
        };
        let rcu = RcuGuard::new();
        let Some(node) = self.source_node(&source, &rcu) else {
            return;
        };
        if node.oldest().load(Ordering::Relaxed) == entry.raw() {
            node.oldest()
                .store(self.next_of_source(entry, &source, &rcu), Ordering::Release);
        }
        if !crate::proto::entry_word::was_closed(word) {
            node.give_slot();
        }
        self.unpin(node);
    }

    /// The next linked entry of `source` after `entry` within [`OWN_SCAN`] entries, or null.
    fn next_of_source(
        &self,
        entry: &Entry,
        source: &Source,
        _rcu: &RcuGuard,
    ) -> *mut bindings::icmp_ct_entry {
        let mut next = entry;
        for _ in 0..OWN_SCAN {
            // SAFETY: `next` is on this table's list, whose changes the writer lock holds off.
            let Some(found) = (unsafe { self.newer(next) }) else {
                break;
            };
            if found.unlinked().load(Ordering::Relaxed) == 0
                && found.source().as_ref() == Some(source)
            {
                return found.raw();
            }
            next = found;
        }
        core::ptr::null_mut()
    }

    /// Before a compare-and-swap that closes or opens the counted `entry`: its source's node
    /// (see the module doc for why first).
    pub(super) fn node_of<'a>(
        &'a self,
        entry: &Entry,
        rcu: &'a RcuGuard,
    ) -> Option<&'a SourceNode> {
        self.source_node(&entry.source()?, rcu)
    }
}

impl SourceNode {
    /// Takes a slot for an entry being opened again; false when `quota` has none left.
    pub(super) fn take_for_reopen(&self, quota: u32) -> bool {
        self.take_slot(quota)
    }

    /// Gives back the slot of an entry closed (or not opened after all).
    pub(super) fn give_back(&self) {
        self.give_slot();
    }
}
