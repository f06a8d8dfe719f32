// SPDX-License-Identifier: GPL-2.0

//! One line of `/proc/net/ip_conntrack`, the tutorial's format:
//!
//! ```text
//! icmp     1 25 src=192.168.1.6 dst=192.168.1.10 type=8 code=0 id=33029 [UNREPLIED] src=192.168.1.10 dst=192.168.1.6 type=0 code=0 id=33029 use=1
//! ```
//!
//! Protocol name left-aligned in 8 columns, a space, protocol number,
//! seconds left; for TCP its state name; the original tuple; `[UNREPLIED]`
//! while no reply was seen; the reply tuple; `[ASSURED]`; for a replied query its last
//! round trip, `rtt=` (microseconds); `use=`.

use core::fmt;

use super::flow_state::TcpState;
use super::tuple::{Tuple, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};

/// Width of the protocol name column.
pub const NAME_WIDTH: usize = 8;

/// What one line shows about an entry.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct LineEntry {
    /// The original tuple.
    pub tuple: Tuple,
    /// Seconds before the entry expires.
    pub secs_left: u32,
    /// No reply seen yet: `[UNREPLIED]`.
    pub unreplied: bool,
    /// `[ASSURED]`.
    pub assured: bool,
    /// TCP state, shown for TCP entries.
    pub tcp_state: Option<TcpState>,
    /// A replied query's last round trip in microseconds, shown as `rtt=`.
    pub rtt_us: Option<u32>,
    /// Reference count shown as `use=`.
    pub use_count: u32,
}

/// The name of a protocol in the first column: `icmp`, `tcp`, `udp`,
/// `icmpv6`, or `unknown`.
pub fn protocol_name(protocol: u8) -> &'static str {
    match protocol {
        IPPROTO_ICMP => "icmp",
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_ICMPV6 => "icmpv6",
        _ => "unknown",
    }
}

/// The reply tuple shown for `t`: its expected reply, or, for a tuple that
/// has none (not a query), its plain inversion with addresses swapped.
fn reply_of(t: &Tuple) -> Tuple {
    t.reply().or_else(|| t.invert()).unwrap_or(Tuple {
        src: t.dst,
        dst: t.src,
        ..*t
    })
}

/// Writes the line of entry `e`, trailing newline included.
pub fn write_line<W: fmt::Write>(w: &mut W, e: &LineEntry) -> fmt::Result {
    let name = protocol_name(e.tuple.protocol);
    w.write_str(name)?;
    for _ in name.len()..NAME_WIDTH {
        w.write_char(' ')?;
    }
    write!(w, " {} {} ", e.tuple.protocol, e.secs_left)?;
    if e.tuple.protocol == IPPROTO_TCP {
        if let Some(s) = e.tcp_state {
            w.write_str(s.name())?;
            w.write_char(' ')?;
        }
    }
    e.tuple.write(w)?;
    if e.unreplied {
        w.write_str(" [UNREPLIED]")?;
    }
    w.write_char(' ')?;
    reply_of(&e.tuple).write(w)?;
    if e.assured {
        w.write_str(" [ASSURED]")?;
    }
    if let Some(rtt) = e.rtt_us {
        write!(w, " rtt={rtt}")?;
    }
    writeln!(w, " use={}", e.use_count)
}

#[cfg(test)]
mod tests {
    use super::super::addr::{Addr, Family};
    use super::*;
    use std::string::String;

    fn line(e: &LineEntry) -> String {
        let mut s = String::new();
        write_line(&mut s, e).unwrap();
        s
    }

    #[test]
    fn tutorial_icmp_line() {
        let e = LineEntry {
            tuple: Tuple::icmp(
                Family::Ipv4,
                Addr::from_v4([192, 168, 1, 6]),
                Addr::from_v4([192, 168, 1, 10]),
                8,
                0,
                33029,
            ),
            secs_left: 25,
            unreplied: true,
            assured: false,
            tcp_state: None,
            rtt_us: None,
            use_count: 1,
        };
        assert_eq!(
            line(&e),
            "icmp     1 25 src=192.168.1.6 dst=192.168.1.10 type=8 code=0 id=33029 [UNREPLIED] src=192.168.1.10 dst=192.168.1.6 type=0 code=0 id=33029 use=1\n"
        );
    }

    #[test]
    fn names_and_padding() {
        assert_eq!(protocol_name(1), "icmp");
        assert_eq!(protocol_name(6), "tcp");
        assert_eq!(protocol_name(17), "udp");
        assert_eq!(protocol_name(58), "icmpv6");
        assert_eq!(protocol_name(47), "unknown");
        let e = LineEntry {
            tuple: Tuple::generic(
                Family::Ipv4,
                Addr::from_v4([1, 1, 1, 1]),
                Addr::from_v4([2, 2, 2, 2]),
                132,
            ),
            secs_left: 0,
            unreplied: false,
            assured: true,
            tcp_state: Some(TcpState::Close),
            rtt_us: None,
            use_count: 0,
        };
        // No TCP state for a non-TCP entry; no [UNREPLIED] once replied.
        assert_eq!(
            line(&e),
            "unknown  132 0 src=1.1.1.1 dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1 [ASSURED] use=0\n"
        );
    }

    #[test]
    fn error_type_tuple_still_prints() {
        let e = LineEntry {
            tuple: Tuple::icmp(
                Family::Ipv4,
                Addr::from_v4([1, 1, 1, 1]),
                Addr::from_v4([2, 2, 2, 2]),
                3,
                1,
                0,
            ),
            secs_left: 4,
            unreplied: true,
            assured: false,
            tcp_state: None,
            rtt_us: None,
            use_count: 2,
        };
        assert_eq!(
            line(&e),
            "icmp     1 4 src=1.1.1.1 dst=2.2.2.2 type=3 code=1 id=0 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 type=3 code=1 id=0 use=2\n"
        );
    }

    /// The contract's example: a replied echo entry with its round trip.
    #[test]
    fn replied_query_shows_rtt_before_use() {
        let e = LineEntry {
            tuple: Tuple::icmp(
                Family::Ipv4,
                Addr::from_v4([10, 0, 0, 1]),
                Addr::from_v4([10, 0, 0, 2]),
                8,
                0,
                126,
            ),
            secs_left: 29,
            unreplied: false,
            assured: false,
            tcp_state: None,
            rtt_us: Some(412),
            use_count: 1,
        };
        assert_eq!(
            line(&e),
            "icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=126 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=126 rtt=412 use=1\n"
        );
    }
}
