// SPDX-License-Identifier: GPL-2.0

//! The procfs files: `/proc/net/ip_conntrack` and `/proc/net/stat/icmp_ct`.

use crate::abstractions::jiffies;
use crate::abstractions::procfs::{ProcSeq, ProcShow, SeqWriter};
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::table::{Cursor, Entry};
use crate::net_state::NetState;
use crate::proto::addr::Family;
use crate::proto::conntrack_line::{self, LineEntry};
use crate::proto::entry_word;
use crate::proto::icmp_types;
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

/// `/proc/net/ip_conntrack`: one line per live entry, the tutorial's format.
pub(crate) struct ConntrackFile;

impl ConntrackFile {
    /// Moves on from `entry` to the first entry that has not expired.
    fn skip_expired<'a>(
        data: &'a NetState,
        cursor: &mut Cursor,
        mut entry: Option<&'a Entry>,
        now: u32,
        rcu: &'a RcuGuard,
    ) -> Option<&'a Entry> {
        while let Some(found) = entry {
            if !data.expired(found, now) {
                return Some(found);
            }
            entry = data.table.cursor_next(cursor, rcu);
        }
        None
    }
}

impl ProcSeq for ConntrackFile {
    type Data = NetState;
    type Cursor = Cursor;

    fn start(data: &NetState, cursor: &mut Cursor, pos: u64, rcu: &RcuGuard) -> bool {
        let now = jiffies::now();
        let first = data.table.cursor_first(cursor, rcu);
        let mut entry = Self::skip_expired(data, cursor, first, now, rcu);
        let mut skip = pos;
        while skip > 0 && entry.is_some() {
            skip = skip.wrapping_sub(1);
            let next = data.table.cursor_next(cursor, rcu);
            entry = Self::skip_expired(data, cursor, next, now, rcu);
        }
        entry.is_some()
    }

    fn next(data: &NetState, cursor: &mut Cursor, rcu: &RcuGuard) -> bool {
        let next = data.table.cursor_next(cursor, rcu);
        Self::skip_expired(data, cursor, next, jiffies::now(), rcu).is_some()
    }

    fn show(data: &NetState, cursor: &Cursor, rcu: &RcuGuard, out: &mut SeqWriter) -> fmt::Result {
        let Some(entry) = data.table.cursor_entry(cursor, rcu) else {
            return Ok(());
        };
        let tuple = entry.original();
        let word = entry.state().load(Ordering::Relaxed);
        let (assured, tcp_state) = match tuple.l4 {
            L4::Icmp { .. } => (false, None),
            _ => {
                let flow = entry_word::unpack_flow(word);
                (flow.assured, flow.tcp)
            }
        };
        let line = LineEntry {
            tuple,
            secs_left: jiffies::secs_until(
                entry.deadline().load(Ordering::Relaxed),
                jiffies::now(),
            ),
            unreplied: entry_word::is_unreplied(word),
            assured,
            tcp_state,
            use_count: 1,
        };
        conntrack_line::write_line(out, &line)
    }
}
