// SPDX-License-Identifier: GPL-2.0

//! The table's sources, for `ip_ct_max_per_source` (`proto::quota`): one small node per
//! source with entries counted in it, in a second rhashtable of the table, keyed by
//! [`Source`]. An entry created while the quota is set is counted in its source for its
//! whole life (its `sourced` flag, in node 0's padding, never changes): the entry does not
//! grow.
//!
//! A node's `count` (its entries neither closed nor unlinked, expired ones included) changes
//! with atomics: a reply closing an entry gives its slot back and a request opening it again
//! takes one. A node's `refs` counts its linked entries and the insertions under way; the
//! last reference dropped removes the node, which nobody takes a reference on again (the shim
//! only increments a nonzero count). A lockless path that changes `count` looks the node up
//! *before* the compare-and-swap that closes or opens the entry: if that succeeds, the entry
//! was linked throughout, so the node found is the entry's one (a node is added again for a
//! source only once the old one has left the hash table).
//!
//! A node lists its linked entries, oldest first, on an RCU list under its own lock: the
//! search for the entry a source over its quota loses walks [`OWN_SCAN`] of them at most.

use super::{Entry, Evicted, InsertError, Table};
use crate::abstractions::jiffies;
use crate::abstractions::rcu::RcuGuard;
use crate::bindings;
use crate::proto::key::Key;
use crate::proto::quota::{self, Admission, Source, OWN_SCAN};
use crate::proto::tuple::Tuple;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::types::Opaque;

/// A source's node.
///
/// # Invariants
///
/// Allocated by `icmp_ct_source_get` and reached under RCU or through a reference held;
/// freed a grace period after its last reference is dropped.
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

    /// Takes one slot of `quota` (0: no limit); false if none is left.
    pub(super) fn take_slot(&self, quota: u32) -> bool {
        self.count()
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |count| {
                quota::take_slot(quota, count)
            })
            .is_ok()
    }

    /// Gives one slot back.
    pub(super) fn give_slot(&self) {
        let _ = self
            .count()
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |count| {
                count.checked_sub(1)
            });
    }

    /// Its oldest linked entry.
    fn oldest<'a>(&'a self, _rcu: &'a RcuGuard) -> Option<&'a Entry> {
        // SAFETY: the node is live (type invariant) and RCU is held for its list.
        let entry = NonNull::new(unsafe { bindings::icmp_ct_source_oldest(self.raw()) })?;
        // SAFETY: a listed entry, freed only a grace period after it leaves the list.
        Some(unsafe { Entry::from_raw(entry) })
    }

    /// The next newer entry of the node after `entry`.
    ///
    /// # Safety
    ///
    /// `entry` must have been reached on this node's list within the RCU read-side section
    /// that `_rcu` holds (a removed entry still leads on to the entries after it).
    unsafe fn newer<'a>(&'a self, entry: &'a Entry, _rcu: &'a RcuGuard) -> Option<&'a Entry> {
        // SAFETY: per the caller.
        let next = unsafe { bindings::icmp_ct_source_newer(self.raw(), entry.raw()) };
        // SAFETY: as for `oldest`.
        Some(unsafe { Entry::from_raw(NonNull::new(next)?) })
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

/// A slot taken for an entry being inserted, with a reference on its node, until the entry
/// is linked (the entry then holds both) or the slot is given back.
pub(super) struct Slot<'a> {
    node: &'a SourceNode,
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
    /// `tuple` do, as far as can be seen before the insertion.
    pub(crate) fn quota_admission(&self, tuple: &Tuple, quota: u32, rcu: &RcuGuard) -> Admission {
        if quota == 0 {
            return Admission::Admit;
        }
        let source = Source::of(&Key::of(tuple));
        let Some(node) = self.source_node(&source, rcu) else {
            return Admission::Admit;
        };
        let count = node.count().load(Ordering::Relaxed);
        let own = count >= quota && own_to_lose(node, rcu).is_some();
        quota::admit(quota, count, own)
    }

    /// Takes a slot of `quota` for `entry`, which is being inserted, first evicting its
    /// source's oldest entry it may lose when the source is at its quota; marks `entry`
    /// counted.
    pub(super) fn take_quota_slot<'a>(
        &'a self,
        entry: &Entry,
        quota: u32,
        rcu: &'a RcuGuard,
        evicted: &mut Evicted,
    ) -> Result<Slot<'a>, InsertError> {
        let source = Source::of(&entry.original_key());
        // SAFETY: the table is live.
        let node = unsafe { bindings::icmp_ct_source_get(self.raw(), &raw_source(&source)) };
        let Some(node) = NonNull::new(node) else {
            return Err(InsertError::Clash);
        };
        // SAFETY: as for `source_node`; the reference taken keeps it in the table, too.
        let node = unsafe { &*node.as_ptr().cast::<SourceNode>() };
        if node.count().load(Ordering::Relaxed) >= quota {
            if let Some((own, word)) = own_to_lose(node, rcu) {
                let expired = own.expired(jiffies::now());
                if own.mark_dying_from(word) && self.unlink(own, false).is_some() {
                    if expired {
                        evicted.expired = evicted.expired.saturating_add(1);
                    } else {
                        evicted.early_dropped = evicted.early_dropped.saturating_add(1);
                    }
                }
            }
        }
        if !node.take_slot(quota) {
            self.put(node);
            return Err(InsertError::Quota);
        }
        // SAFETY: the entry is not published yet: nobody else reads or writes it.
        unsafe { (*entry.raw()).node[0].sourced = 1 };
        Ok(Slot { node })
    }

    /// Gives back a slot whose entry was not inserted.
    pub(super) fn give_back(&self, slot: Slot<'_>) {
        slot.node.give_slot();
        self.put(slot.node);
    }

    /// Lists the entry of `slot`, whose nodes are hashed and which is not confirmed yet, in
    /// its source: the entry holds the slot and the reference from now on.
    pub(super) fn linked_in_source(&self, slot: Slot<'_>, entry: &Entry) {
        // SAFETY: the node is live (a reference is held); the entry is on no list (not
        // confirmed, so nobody unlinks it) and is freed a grace period after it leaves this
        // one at the earliest.
        unsafe { bindings::icmp_ct_source_link(slot.node.raw(), entry.raw()) };
    }

    /// Drops a reference on `node`; the last one removes it.
    fn put(&self, node: &SourceNode) {
        // SAFETY: the caller holds a reference: one it took, or its linked entry's.
        unsafe { bindings::icmp_ct_source_put(self.raw(), node.raw()) };
    }

    /// Takes `entry`, which is being unlinked with its state word `word`, off its source.
    /// Called once per entry, by whoever unlinks it.
    pub(super) fn unlinked_from_source(&self, entry: &Entry, word: u64) {
        let Some(source) = entry.source() else {
            return;
        };
        let rcu = RcuGuard::new();
        // The entry's own node: it was confirmed, so linked there, and its reference keeps
        // the node in the table until the `put` below.
        let Some(node) = self.source_node(&source, &rcu) else {
            return;
        };
        // SAFETY: the entry is on the node's list (linked before it was confirmed) and is
        // taken off it once, here; it is freed only after a grace period.
        unsafe { bindings::icmp_ct_source_unlink(node.raw(), entry.raw()) };
        if !crate::proto::entry_word::was_closed(word) {
            node.give_slot();
        }
        self.put(node);
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

/// The oldest entry of `node` that its source may lose, among its [`OWN_SCAN`] oldest, with
/// the word it was judged by.
fn own_to_lose<'a>(node: &'a SourceNode, rcu: &'a RcuGuard) -> Option<(&'a Entry, u64)> {
    let now = jiffies::now();
    let mut entry = node.oldest(rcu);
    for _ in 0..OWN_SCAN {
        let found = entry?;
        let word = found.state().load(Ordering::Acquire);
        if quota::may_lose(word, found.expired(now)) {
            return Some((found, word));
        }
        // SAFETY: `found` was reached on the node's list from `oldest` within `rcu`.
        entry = unsafe { node.newer(found, rcu) };
    }
    None
}
