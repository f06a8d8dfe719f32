// SPDX-License-Identifier: GPL-2.0

//! The echo round trips of one namespace (`/proc/net/stat/icmp_ct_rtt`), and the clock
//! round trips are read with.
//!
//! The clock is `CLOCK_MONOTONIC` (`ktime_get`), as TCP's round-trip estimates read it in
//! softirq (`tcp_clock_us`): a clock-source read, and consistent across CPUs, which matters
//! because a reply may arrive on another CPU than its request left from. `jiffies` (4 ms at
//! HZ=250) cannot tell a LAN's round trips apart. It is read only for query requests and
//! replies applied to the table.

use crate::abstractions::percpu::PerCpuCounters;
use crate::proto::rtt::{self, Histogram};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::time::Ktime;

/// Nanoseconds per microsecond.
const NSEC_PER_USEC: u64 = 1000;

/// The low 32 bits of the monotonic clock in microseconds (see [`rtt::elapsed`]).
pub(crate) fn now_us() -> u32 {
    let ns = u64::try_from(Ktime::ktime_get().to_ns()).unwrap_or(0);
    // Wrapping truncation: only differences of readings are used.
    ns.checked_div(NSEC_PER_USEC).unwrap_or(0) as u32
}

/// Per-CPU cells: the buckets, then the sum of the samples.
const SUM: usize = rtt::BUCKETS;
const CELLS: usize = rtt::BUCKETS + 1;

/// The echo round-trip histogram of one namespace: per-CPU bucket counts and sum (every
/// answered echo counts), shared minimum and maximum (written only when a sample goes past
/// them, which soon becomes rare).
pub(crate) struct RttStats {
    counters: PerCpuCounters<CELLS>,
    min_us: AtomicU32,
    max_us: AtomicU32,
}

impl RttStats {
    /// No samples. Process context.
    pub(crate) fn new() -> Result<Self> {
        Ok(RttStats {
            counters: PerCpuCounters::new()?,
            min_us: AtomicU32::new(u32::MAX),
            max_us: AtomicU32::new(0),
        })
    }

    /// Counts one round trip of `us` microseconds. Any context.
    pub(crate) fn record(&self, us: u32) {
        self.counters.inc(rtt::bucket(us));
        self.counters.add(SUM, us.into());
        if us < self.min_us.load(Ordering::Relaxed) {
            self.min_us.fetch_min(us, Ordering::Relaxed);
        }
        if us > self.max_us.load(Ordering::Relaxed) {
            self.max_us.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// The histogram now, summed over all CPUs.
    pub(crate) fn histogram(&self) -> Histogram {
        Histogram {
            buckets: core::array::from_fn(|index| self.counters.sum(index)),
            sum_us: self.counters.sum(SUM),
            min_us: self.min_us.load(Ordering::Relaxed),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }
}
