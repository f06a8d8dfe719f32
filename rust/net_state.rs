// SPDX-License-Identifier: GPL-2.0

//! What icmp_ct keeps per network namespace, and how it is set up and torn down.

use crate::abstractions::delayed_work::{DelayedWork, PeriodicWork};
use crate::abstractions::jiffies;
use crate::abstractions::log::NamespaceLog;
use crate::abstractions::net::Net;
use crate::abstractions::netfilter::{HookPoint, HookRegistration, HookSpec};
use crate::abstractions::pernet::{PernetData, PernetId};
use crate::abstractions::procfs::{ProcDir, ProcEntry};
use crate::abstractions::sysctl::{SysctlComputed, SysctlTable};
use crate::abstractions::table::{Listing, Table};
use crate::packet;
use crate::procfiles::{RttStatFile, StatFile, TypeStatFile};
use crate::proto::addr::Family;
use crate::proto::entry_word;
use crate::rtt_stats::RttStats;
use crate::stats::{Counter, Stats, TypeStats};
use crate::sysctls::{self, Knob};
use core::sync::atomic::Ordering;
use kernel::c_str;
use kernel::prelude::*;

static NET_ID: PernetId = PernetId::new();

/// Priority of the classification hooks: after the raw table and destination NAT (-100).
const PRIORITY_CLASSIFY: i32 = -99;
/// Priority of the confirmation hooks: after filter and security, before source NAT (100).
const PRIORITY_CONFIRM: i32 = 99;

/// The hooks of Documentation/contract.rst, "Where the hooks sit", for one family.
const fn family_hooks(family: Family) -> [HookSpec; 4] {
    [
        HookSpec {
            family,
            point: HookPoint::PreRouting,
            priority: PRIORITY_CLASSIFY,
        },
        HookSpec {
            family,
            point: HookPoint::LocalOut,
            priority: PRIORITY_CLASSIFY,
        },
        HookSpec {
            family,
            point: HookPoint::LocalIn,
            priority: PRIORITY_CONFIRM,
        },
        HookSpec {
            family,
            point: HookPoint::PostRouting,
            priority: PRIORITY_CONFIRM,
        },
    ]
}

/// Every hook: IPv4's, then IPv6's.
const HOOKS: [HookSpec; 8] = {
    let [a, b, c, d] = family_hooks(Family::Ipv4);
    let [e, f, g, h] = family_hooks(Family::Ipv6);
    [a, b, c, d, e, f, g, h]
};

/// Garbage collection runs in slices, [`GC_SLICES_PER_SEC`] a second, each visiting a part
/// of the table, so that a pass over the whole table takes at most [`GC_PASS_SECS`] (a
/// table of up to [`GC_SLICE_MIN_NODES`] nodes is walked whole by every slice). Expired
/// entries are never matched or listed in between; collection only returns their memory and
/// takes them off `ip_conntrack_count`.
const GC_SLICES_PER_SEC: u32 = 4;
/// The longest pass over the table.
const GC_PASS_SECS: u32 = 30;
/// Nodes every slice may visit, however small the table.
const GC_SLICE_MIN_NODES: u32 = 4096;
/// A slice that removed more than one in this many of the nodes it visited...
const GC_BUSY_FRACTION: u32 = 8;
/// ...is followed by the next after this many jiffies.
const GC_BUSY_DELAY: u32 = 1;

/// One namespace's icmp_ct.
///
/// Fields drop in declaration order: hooks and garbage collection (both already stopped in
/// `pre_exit`), the files and sysctls (their removal waits for readers, and releases the
/// files still open, leaving their walks of the table), then the table and counters they
/// showed.
pub(crate) struct NetState {
    hooks: HookRegistration<{ HOOKS.len() }>,
    gc: DelayedWork<NetState>,
    _conntrack_file: ProcEntry,
    _stat_file: ProcEntry,
    _type_stat_file: ProcEntry,
    _rtt_stat_file: ProcEntry,
    sysctls: SysctlTable<{ Knob::COUNT }>,
    /// The connection table.
    pub(crate) table: Table,
    /// Counters of `/proc/net/stat/icmp_ct`.
    pub(crate) stats: Stats,
    /// Counters of `/proc/net/stat/icmp_ct_types`.
    pub(crate) type_stats: TypeStats,
    /// Echo round trips, `/proc/net/stat/icmp_ct_rtt`.
    pub(crate) rtt: RttStats,
    /// Where the namespace's log lines go, if anywhere.
    pub(crate) log: NamespaceLog,
    /// Packets parsed by classification for their confirmation.
    pub(crate) handoff: packet::Handoff,
}

impl NetState {
    /// The current value of a sysctl.
    pub(crate) fn sysctl(&self, knob: Knob) -> i32 {
        self.sysctls.get(knob as usize)
    }

    /// One slice of garbage collection: removes the expired entries among the next nodes of
    /// its walk, enough of them that a pass over the table takes at most [`GC_PASS_SECS`].
    /// Returns the delay until the next slice, shorter when many entries expire. Process
    /// context only.
    fn collect_garbage(&self) -> u32 {
        let now = jiffies::now();
        let nodes = self.table.count().saturating_mul(2);
        let budget = (nodes / (GC_PASS_SECS * GC_SLICES_PER_SEC)).max(GC_SLICE_MIN_NODES);
        let mut removed = 0u32;
        let slice = self.table.collect_slice(budget, |entry| {
            // The word before the deadline: a reopening stores the deadline before its word,
            // so an entry judged expired is removed only if nothing opened or changed it
            // since. A closed entry was already counted as destroyed on its reply.
            let word = entry.state().load(Ordering::Acquire);
            if entry.expired(now) && entry.remove_from(word) && !entry_word::is_closed(word) {
                removed = removed.saturating_add(1);
            }
        });
        self.stats.add(Counter::Expired, removed.into());
        // Expiries come in waves (a flood's entries time out together): while a slice finds
        // many, collect again soon, as nf_conntrack's gc_worker does.
        if !slice.pass_done && removed.saturating_mul(GC_BUSY_FRACTION) > slice.visited {
            GC_BUSY_DELAY
        } else {
            jiffies::HZ / GC_SLICES_PER_SEC
        }
    }

    /// Entries in the table, expired ones included until garbage collection removes them
    /// (as nf_conntrack's count): a constant-time read.
    pub(crate) fn entries(&self) -> u32 {
        self.table.count()
    }
}

impl PernetData for NetState {
    fn id() -> &'static PernetId {
        &NET_ID
    }

    fn init(net: &Net) -> Result<KBox<Self>> {
        let table = Table::new()?;
        let stats = Stats::new()?;
        let type_stats = TypeStats::new()?;
        let rtt = RttStats::new()?;
        let handoff = packet::Handoff::new()?;
        let gc = DelayedWork::new(net)?;
        let sysctls = SysctlTable::register::<NetState>(net, sysctls::PATH, &sysctls::KNOBS)?;
        let stat_file =
            ProcEntry::single::<StatFile>(net, ProcDir::NetStat, c_str!("icmp_ct"), 0o444)?;
        let type_stat_file = ProcEntry::single::<TypeStatFile>(
            net,
            ProcDir::NetStat,
            c_str!("icmp_ct_types"),
            0o444,
        )?;
        let rtt_stat_file =
            ProcEntry::single::<RttStatFile>(net, ProcDir::NetStat, c_str!("icmp_ct_rtt"), 0o444)?;
        let conntrack_file =
            ProcEntry::seq::<Listing<NetState>>(net, ProcDir::Net, c_str!("ip_conntrack"), 0o440)?;
        // Last, so that no packet is seen before the rest exists.
        let hooks = HookRegistration::new::<NetState>(net, &HOOKS)?;
        let state = KBox::new(
            NetState {
                hooks,
                gc,
                _conntrack_file: conntrack_file,
                _stat_file: stat_file,
                _type_stat_file: type_stat_file,
                _rtt_stat_file: rtt_stat_file,
                sysctls,
                table,
                stats,
                type_stats,
                rtt,
                log: NamespaceLog::new(net),
                handoff,
            },
            GFP_KERNEL,
        )?;
        Ok(state)
    }

    fn published(&self) {
        // Not before: the work finds the state through the namespace, and stops for good if
        // it is not there yet.
        self.gc.schedule((jiffies::HZ / GC_SLICES_PER_SEC).into());
    }

    fn pre_exit(&self) {
        self.hooks.unregister();
        self.gc.cancel();
    }
}

impl PeriodicWork for NetState {
    fn run(&self) -> u64 {
        self.collect_garbage().into()
    }
}

impl SysctlComputed for NetState {
    fn computed(&self, index: usize) -> i32 {
        let value = if index == Knob::ConntrackCount as usize {
            self.entries()
        } else if index == Knob::ConntrackBuckets as usize {
            self.table.buckets()
        } else {
            0
        };
        i32::try_from(value).unwrap_or(i32::MAX)
    }
}
