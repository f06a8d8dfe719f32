// SPDX-License-Identifier: GPL-2.0

//! The per-namespace counters of `/proc/net/stat/icmp_ct`.

use crate::proto::addr::Family;
use crate::proto::state::State;
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
}

const COUNT: usize = Counter::ALL.len();

/// The counters of one namespace.
pub(crate) struct Stats {
    values: [AtomicU64; COUNT],
}

impl Stats {
    /// All counters at zero.
    pub(crate) fn new() -> Self {
        Stats {
            values: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds one to `counter`.
    pub(crate) fn inc(&self, counter: Counter) {
        if let Some(value) = self.values.get(counter as usize) {
            value.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `amount` to `counter`.
    pub(crate) fn add(&self, counter: Counter, amount: u64) {
        if let Some(value) = self.values.get(counter as usize) {
            value.fetch_add(amount, Ordering::Relaxed);
        }
    }

    /// The current value of `counter`.
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.values
            .get(counter as usize)
            .map_or(0, |value| value.load(Ordering::Relaxed))
    }
}

/// The states counted per ICMP type, in the columns of `/proc/net/stat/icmp_ct_types`.
const TYPE_COLUMNS: usize = 4;

/// Counters of all ICMP and ICMPv6 types: row `family * 256 + type`, column state,
/// flattened.
const TYPE_CELLS: usize = 2 * 256 * TYPE_COLUMNS;

/// Per-ICMP-type counters of one namespace (`/proc/net/stat/icmp_ct_types`).
pub(crate) struct TypeStats {
    values: KBox<[AtomicU64; TYPE_CELLS]>,
}

impl TypeStats {
    /// All counters at zero.
    pub(crate) fn new() -> Result<Self> {
        Ok(TypeStats {
            values: crate::abstractions::slab::zeroed_counters()?,
        })
    }

    fn cell(&self, family: Family, icmp_type: u8, column: usize) -> Option<&AtomicU64> {
        let row = match family {
            Family::Ipv4 => usize::from(icmp_type),
            Family::Ipv6 => usize::from(icmp_type).wrapping_add(256),
        };
        self.values
            .get(row.wrapping_mul(TYPE_COLUMNS).wrapping_add(column))
    }

    /// Counts one message of `family`'s ICMP of `icmp_type` classified `state` (UNTRACKED is
    /// not a column).
    pub(crate) fn count(&self, family: Family, icmp_type: u8, state: &State) {
        let column = match state {
            State::New => 0,
            State::Established => 1,
            State::Related => 2,
            State::Invalid(_) => 3,
            State::Untracked => return,
        };
        if let Some(value) = self.cell(family, icmp_type, column) {
            value.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters of `family`'s `icmp_type`: new, established, related, invalid.
    pub(crate) fn get(&self, family: Family, icmp_type: u8) -> [u64; TYPE_COLUMNS] {
        core::array::from_fn(|column| {
            self.cell(family, icmp_type, column)
                .map_or(0, |value| value.load(Ordering::Relaxed))
        })
    }
}
