// SPDX-License-Identifier: GPL-2.0

//! icmp_ct: stateful ICMP connection tracking as the Iptables Tutorial describes it.
//!
//! Every network namespace gets its own hooks, table, sysctls and procfs files (see
//! `net_state`); `packet_path` is what each packet goes through. The protocol logic lives in
//! `proto`, which has no unsafe code and is also built as a host crate for tests; every
//! `unsafe` block is under `abstractions`.

mod abstractions;
mod bindings;
mod net_state;
mod packet;
mod packet_path;
mod procfiles;
pub mod proto;
mod rtt_stats;
mod stats;
mod sysctls;

use abstractions::jiffies;
use abstractions::pernet::PernetRegistration;
use abstractions::slab::EntryCache;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use net_state::NetState;

module! {
    type: IcmpCt,
    name: "icmp_ct",
    author: "icmp_ct developers",
    description: "Stateful ICMP connection tracking (Iptables Tutorial semantics)",
    license: "GPL",
}

/// The default `ip_conntrack_max`, sized from RAM as nf_conntrack sizes its table: one entry
/// per 16 KiB of RAM per 8 bytes, between 1024 and 262144.
fn default_max() -> i32 {
    let per_ram = jiffies::total_ram_bytes() / 16384 / 8;
    per_ram.clamp(1024, 262_144) as i32
}

struct IcmpCt {
    // Dropped first: tears down every namespace's state, then the cache their entries use.
    _pernet: PernetRegistration<NetState>,
    _cache: EntryCache,
}

impl kernel::Module for IcmpCt {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // Before anything is registered, so that a refused load leaves nothing behind.
        if let Err((param, min, max)) = sysctls::check_params() {
            pr_err!(
                "parameter {}={} out of range {}..{}, not loaded\n",
                param.name(),
                param.get(),
                min,
                max
            );
            return Err(EINVAL);
        }
        let cache = EntryCache::create()?;
        let max = default_max();
        sysctls::CONNTRACK_MAX.store(max, Ordering::Relaxed);
        let pernet = PernetRegistration::<NetState>::new()?;
        pr_info!(
            "loaded (table size {} buckets, growing; limit {} entries per namespace; {} bytes per entry, {} per TCP entry)\n",
            abstractions::table::INITIAL_BUCKETS,
            max,
            cache.object_size(),
            cache.tcp_object_size()
        );
        Ok(IcmpCt {
            _pernet: pernet,
            _cache: cache,
        })
    }
}
