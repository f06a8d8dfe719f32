// SPDX-License-Identifier: GPL-2.0

//! What icmp_ct keeps per network namespace, and how it is set up and torn down.

use crate::abstractions::delayed_work::{DelayedWork, PeriodicWork};
use crate::abstractions::jiffies;
use crate::abstractions::net::Net;
use crate::abstractions::netfilter::{HookPoint, HookRegistration, HookSpec};
use crate::abstractions::pernet::{PernetData, PernetId};
use crate::abstractions::procfs::{ProcDir, ProcEntry};
use crate::abstractions::sysctl::{SysctlComputed, SysctlTable};
use crate::abstractions::table::Table;
use crate::procfiles::{ConntrackFile, StatFile, TypeStatFile};
use crate::proto::addr::Family;
use crate::stats::{Counter, Stats, TypeStats};
use crate::sysctls::{self, Knob};
use kernel::c_str;
use kernel::prelude::*;

static NET_ID: PernetId = PernetId::new();

/// Priority of the classification hooks: after the raw table and destination NAT (-100).
const PRIORITY_CLASSIFY: i32 = -99;
/// Priority of the confirmation hooks: after filter and security, before source NAT (100).
const PRIORITY_CONFIRM: i32 = 99;

/// The hooks of INTERFACE.md, "Where the hooks sit", for one family.
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

/// How often garbage collection removes expired entries, in seconds. Expired entries are
/// never matched or listed in between; collection only returns their memory.
const GC_INTERVAL_SECS: u32 = 1;

/// One namespace's icmp_ct.
///
/// Fields drop in declaration order: hooks and garbage collection (both already stopped in
/// `pre_exit`), the files and sysctls (their removal waits for readers), then the table and
/// counters they showed.
pub(crate) struct NetState {
    hooks: HookRegistration<{ HOOKS.len() }>,
    gc: DelayedWork<NetState>,
    _conntrack_file: ProcEntry,
    _stat_file: ProcEntry,
    _type_stat_file: ProcEntry,
    sysctls: SysctlTable<{ Knob::COUNT }>,
    /// The connection table.
    pub(crate) table: Table,
    /// Counters of `/proc/net/stat/icmp_ct`.
    pub(crate) stats: Stats,
    /// Counters of `/proc/net/stat/icmp_ct_types`.
    pub(crate) type_stats: TypeStats,
}

impl NetState {
    /// The current value of a sysctl.
    pub(crate) fn sysctl(&self, knob: Knob) -> i32 {
        self.sysctls.get(knob as usize)
    }

    /// Removes every expired entry; returns how many. Process context only: the walk gives
    /// up the CPU between batches.
    pub(crate) fn collect_garbage(&self) -> u64 {
        let now = jiffies::now();
        let mut removed = 0u64;
        self.table.for_each_yielding(|entry| {
            if self.expired(entry, now) && self.table.remove(entry) {
                removed = removed.wrapping_add(1);
            }
        });
        self.stats.add(Counter::Expired, removed);
        removed
    }

    /// Entries in the table, after removing the expired ones. Process context only.
    pub(crate) fn entries(&self) -> u32 {
        self.collect_garbage();
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
        let conntrack_file =
            ProcEntry::seq::<ConntrackFile>(net, ProcDir::Net, c_str!("ip_conntrack"), 0o440)?;
        // Last, so that no packet is seen before the rest exists.
        let hooks = HookRegistration::new::<NetState>(net, &HOOKS)?;
        let state = KBox::new(
            NetState {
                hooks,
                gc,
                _conntrack_file: conntrack_file,
                _stat_file: stat_file,
                _type_stat_file: type_stat_file,
                sysctls,
                table,
                stats,
                type_stats,
            },
            GFP_KERNEL,
        )?;
        state
            .gc
            .schedule(jiffies::from_secs(GC_INTERVAL_SECS).into());
        Ok(state)
    }

    fn pre_exit(&self) {
        self.hooks.unregister();
        self.gc.cancel();
    }
}

impl PeriodicWork for NetState {
    fn run(&self) -> u64 {
        self.collect_garbage();
        jiffies::from_secs(GC_INTERVAL_SECS).into()
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
