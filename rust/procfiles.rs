// SPDX-License-Identifier: GPL-2.0

//! The procfs files: `/proc/net/ip_conntrack`, `/proc/net/stat/icmp_ct` and its siblings.

use crate::abstractions::jiffies;
use crate::abstractions::procfs::{ProcShow, SeqWriter};
use crate::abstractions::table::{Entry, Table, TableListing};
use crate::net_state::NetState;
use crate::proto::addr::Family;
use crate::proto::conntrack_line::{self, LineEntry};
use crate::proto::entry_word;
use crate::proto::icmp_types;
use crate::proto::state::InvalidReason;
use crate::proto::tuple::L4;
use crate::stats::Counter;
use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

/// `/proc/net/stat/icmp_ct`: `name value` per line.
pub(crate) struct StatFile;

impl ProcShow for StatFile {
    type Data = NetState;

    fn show(data: &NetState, out: &mut SeqWriter) -> fmt::Result {
        writeln!(out, "entries {}", data.entries())?;
        for &counter in Counter::ALL {
            writeln!(out, "{} {}", counter.name(), data.stats.get(counter))?;
        }
        for reason in InvalidReason::all() {
            let value = data.stats.get_invalid(reason);
            writeln!(out, "{} {value}", reason.counter_name())?;
        }
        Ok(())
    }
}

/// `/proc/net/stat/icmp_ct_types`: `family type name new established related invalid`, one
/// line per ICMP type seen, names as in the filtering guide.
pub(crate) struct TypeStatFile;

impl ProcShow for TypeStatFile {
    type Data = NetState;

    fn show(data: &NetState, out: &mut SeqWriter) -> fmt::Result {
        for (family, label) in [(Family::Ipv4, "ipv4"), (Family::Ipv6, "ipv6")] {
            for icmp_type in 0..=u8::MAX {
                let [new, established, related, invalid] = data.type_stats.get(family, icmp_type);
                if new == 0 && established == 0 && related == 0 && invalid == 0 {
                    continue;
                }
                let name = icmp_types::type_name(family, icmp_type).unwrap_or("unknown");
                writeln!(
                    out,
                    "{label} {icmp_type} {name} {new} {established} {related} {invalid}"
                )?;
            }
        }
        Ok(())
    }
}

/// `/proc/net/stat/icmp_ct_rtt`: the echo round-trip histogram (`proto::rtt`).
pub(crate) struct RttStatFile;

impl ProcShow for RttStatFile {
    type Data = NetState;

    fn show(data: &NetState, out: &mut SeqWriter) -> fmt::Result {
        data.rtt.histogram().write(out)
    }
}

/// `/proc/net/ip_conntrack`: one line per live entry, the tutorial's format.
// SAFETY: `table` is the `table` field; `NetState`'s fields drop in declaration order, its
// listing file (`_conntrack_file`) before `table`, and `init` drops them in reverse order
// of creation on failure (the table is created first).
unsafe impl TableListing for NetState {
    fn table(&self) -> &Table {
        &self.table
    }

    fn listed(&self, entry: &Entry, now: u32) -> bool {
        entry.is_live() && !entry.expired(now)
    }

    fn show_entry(&self, entry: &Entry, out: &mut SeqWriter) -> fmt::Result {
        let Some(tuple) = entry.original() else {
            return Ok(());
        };
        let word = entry.state().load(Ordering::Relaxed);
        let unreplied = entry_word::is_unreplied(word);
        let (assured, tcp_state, rtt_us) = match tuple.l4 {
            L4::Icmp { .. } => (
                false,
                None,
                (!unreplied).then(|| entry.rtt_us().load(Ordering::Relaxed)),
            ),
            _ => {
                let flow = entry_word::unpack_flow(word);
                (flow.assured, flow.tcp, None)
            }
        };
        let line = LineEntry {
            tuple,
            secs_left: jiffies::secs_until(
                entry.deadline().load(Ordering::Relaxed),
                jiffies::now(),
            ),
            unreplied,
            assured,
            tcp_state,
            rtt_us,
            use_count: 1,
        };
        conntrack_line::write_line(out, &line)
    }
}
