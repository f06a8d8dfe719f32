// SPDX-License-Identifier: GPL-2.0

//! The per-namespace counters of `/proc/net/stat/icmp_ct` and `/proc/net/stat/icmp_ct_types`.
//!
//! Every packet counts, so the counters are per CPU ([`PerCpuCounters`]) wherever packets of
//! legitimate traffic count: all of `Stats` (20 words and one per INVALID reason, 27: 47 words
//! per CPU) and the types the tracker handles in `TypeStats` (23 types x 4 states, 92 words per
//! CPU), 1112 bytes per possible CPU per namespace on 64-bit kernels. The other 489 types of
//! `TypeStats` are only ever INVALID; per CPU they would cost 16 KiB per CPU per namespace, so
//! they stay shared atomics (16 KiB per namespace, rows of the per-CPU types unused).

use crate::abstractions::percpu::PerCpuCounters;
use crate::proto::addr::Family;
use crate::proto::state::{InvalidReason, State};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

macro_rules! counters {
    ($($variant:ident => $name:literal,)*) => {
        /// One counter of `/proc/net/stat/icmp_ct`.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub(crate) enum Counter {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Counter {
            /// Every counter, in the file's order.
            pub(crate) const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            /// The counter's name in the file.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }
        }
    };
}

counters! {
    Found => "found",
    New => "new",
    Established => "established",
    Related => "related",
    Invalid => "invalid",
    Untracked => "untracked",
    Insert => "insert",
    InsertFailed => "insert_failed",
    Drop => "drop",
    EarlyDrop => "early_drop",
    Expired => "expired",
    DestroyedOnReply => "destroyed_on_reply",
    DestroyedOnError => "destroyed_on_error",
    DroppedInvalid => "dropped_invalid",
    DroppedFragment => "dropped_fragment",
    HookPreRouting => "hook_pre_routing",
    HookLocalIn => "hook_local_in",
    HookLocalOut => "hook_local_out",
    HookPostRouting => "hook_post_routing",
    QuotaDrop => "quota_drop",
}

const COUNT: usize = Counter::ALL.len();

/// The named counters, then one `invalid_<reason>` counter per [`InvalidReason::index`].
const SLOTS: usize = COUNT + InvalidReason::COUNT;

/// The counters of one namespace.
pub(crate) struct Stats {
    values: PerCpuCounters<SLOTS>,
}

impl Stats {
    /// All counters at zero. Process context.
    pub(crate) fn new() -> Result<Self> {
        Ok(Stats {
            values: PerCpuCounters::new()?,
        })
    }

    /// Adds one to `counter`. Any context.
    pub(crate) fn inc(&self, counter: Counter) {
        self.values.inc(counter as usize);
    }

    /// Adds `amount` to `counter`. Any context.
    pub(crate) fn add(&self, counter: Counter, amount: u64) {
        self.values.add(counter as usize, amount);
    }

    /// The current value of `counter`, summed over all CPUs.
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.values.sum(counter as usize)
    }

    /// Counts one INVALID packet: `invalid` and its reason's counter. Any context.
    pub(crate) fn inc_invalid(&self, reason: InvalidReason) {
        self.values.inc(Counter::Invalid as usize);
        self.values.inc(COUNT.wrapping_add(reason.index()));
    }

    /// The current value of `reason`'s counter, summed over all CPUs.
    pub(crate) fn get_invalid(&self, reason: InvalidReason) -> u64 {
        self.values.sum(COUNT.wrapping_add(reason.index()))
    }
}

/// The states counted per ICMP type, in the columns of `/proc/net/stat/icmp_ct_types`.
const TYPE_COLUMNS: usize = 4;

/// Counters of all ICMP and ICMPv6 types: row `family * 256 + type`, column state,
/// flattened.
const TYPE_CELLS: usize = 2 * 256 * TYPE_COLUMNS;

/// The types counted per CPU: those `icmp_types::kind` tracks (queries, replies, errors),
/// which carry every NEW, ESTABLISHED and RELATED packet. A type missing here is still
/// counted, only in the shared atomics.
const PER_CPU_V4: [u8; 15] = [0, 3, 4, 5, 8, 11, 12, 13, 14, 15, 16, 17, 18, 42, 43];
const PER_CPU_V6: [u8; 8] = [1, 2, 3, 4, 128, 129, 139, 140];
const PER_CPU_CELLS: usize = (PER_CPU_V4.len() + PER_CPU_V6.len()) * TYPE_COLUMNS;

/// Per-ICMP-type counters of one namespace (`/proc/net/stat/icmp_ct_types`).
pub(crate) struct TypeStats {
    per_cpu: PerCpuCounters<PER_CPU_CELLS>,
    shared: KBox<[AtomicU64; TYPE_CELLS]>,
}

/// Where one counter of `TypeStats` lives: an index into its per-CPU or its shared counters.
enum Cell {
    PerCpu(usize),
    Shared(usize),
}

impl TypeStats {
    /// All counters at zero. Process context.
    pub(crate) fn new() -> Result<Self> {
        Ok(TypeStats {
            per_cpu: PerCpuCounters::new()?,
            shared: crate::abstractions::slab::zeroed_counters()?,
        })
    }

    fn cell(family: Family, icmp_type: u8, column: usize) -> Cell {
        let (per_cpu_types, first_per_cpu_row, shared_row) = match family {
            Family::Ipv4 => (&PER_CPU_V4[..], 0, usize::from(icmp_type)),
            Family::Ipv6 => (
                &PER_CPU_V6[..],
                PER_CPU_V4.len(),
                usize::from(icmp_type).wrapping_add(256),
            ),
        };
        let index = |row: usize| row.wrapping_mul(TYPE_COLUMNS).wrapping_add(column);
        match per_cpu_types.iter().position(|&t| t == icmp_type) {
            Some(i) => Cell::PerCpu(index(first_per_cpu_row.wrapping_add(i))),
            None => Cell::Shared(index(shared_row)),
        }
    }

    /// Counts one message of `family`'s ICMP of `icmp_type` classified `state` (UNTRACKED is
    /// not a column). Any context.
    pub(crate) fn count(&self, family: Family, icmp_type: u8, state: &State) {
        let column = match state {
            State::New => 0,
            State::Established => 1,
            State::Related => 2,
            State::Invalid(_) => 3,
            State::Untracked => return,
        };
        match Self::cell(family, icmp_type, column) {
            Cell::PerCpu(index) => self.per_cpu.inc(index),
            Cell::Shared(index) => {
                if let Some(value) = self.shared.get(index) {
                    value.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The counters of `family`'s `icmp_type`: new, established, related, invalid.
    pub(crate) fn get(&self, family: Family, icmp_type: u8) -> [u64; TYPE_COLUMNS] {
        core::array::from_fn(|column| match Self::cell(family, icmp_type, column) {
            Cell::PerCpu(index) => self.per_cpu.sum(index),
            Cell::Shared(index) => self
                .shared
                .get(index)
                .map_or(0, |value| value.load(Ordering::Relaxed)),
        })
    }
}
