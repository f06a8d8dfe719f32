// SPDX-License-Identifier: GPL-2.0

//! The flows ICMP errors relate to: UDP, TCP (per flow, with sequence
//! tracking in [`super::tcp_window`]) and any other protocol, plus the
//! timeouts of every entry.
//!
//! From the tutorial's "UDP connections": the first packet is NEW and
//! `[UNREPLIED]`, 30 seconds; "for the `[ASSURED]` flag to be set on a
//! tracked connection, there must have been a legitimate reply packet to
//! the NEW packet", after which the timeout is 180 seconds, and "this value
//! is reset to its full value for each packet that matches the same
//! entry". "Default connections" behave "pretty much the same as the UDP
//! connection tracking" with `ip_ct_generic_timeout` (600 seconds).

use super::addr::Family;
use super::error::ParseError;
use super::state::{InvalidReason, State};
use super::tcp_window::{TcpSegment, TcpWindows};

/// Longest timeout a sysctl accepts, in seconds (as nf_conntrack).
pub const TIMEOUT_MAX: u32 = 2_147_483;
/// Shortest timeout a sysctl accepts, in seconds.
pub const TIMEOUT_MIN: u32 = 1;

/// Which timeout applies to an entry.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum TimeoutKind {
    /// `ip_ct_icmp_timeout`.
    Icmp,
    /// `ip_ct_icmpv6_timeout`.
    Icmpv6,
    /// `ip_ct_udp_timeout`: UDP without a reply.
    Udp,
    /// `ip_ct_udp_timeout_stream`: replied UDP.
    UdpStream,
    /// `ip_ct_tcp_timeout_syn_sent`.
    TcpSynSent,
    /// `ip_ct_tcp_timeout_syn_recv`.
    TcpSynRecv,
    /// `ip_ct_tcp_timeout_established`.
    TcpEstablished,
    /// `ip_ct_tcp_timeout_fin_wait`.
    TcpFinWait,
    /// `ip_ct_tcp_timeout_time_wait`.
    TcpTimeWait,
    /// `ip_ct_tcp_timeout_close`.
    TcpClose,
    /// `ip_ct_tcp_timeout_unacknowledged`: a flow picked up mid-stream until it was seen
    /// both ways.
    TcpUnacknowledged,
    /// `ip_ct_generic_timeout`.
    Generic,
}

impl TimeoutKind {
    /// Every timeout, in sysctl table order.
    pub const ALL: [TimeoutKind; 12] = [
        Self::Icmp,
        Self::Icmpv6,
        Self::Udp,
        Self::UdpStream,
        Self::TcpSynSent,
        Self::TcpSynRecv,
        Self::TcpEstablished,
        Self::TcpFinWait,
        Self::TcpTimeWait,
        Self::TcpClose,
        Self::TcpUnacknowledged,
        Self::Generic,
    ];

    /// The timeout of `family`'s ICMP queries.
    pub fn icmp(family: Family) -> Self {
        match family {
            Family::Ipv4 => Self::Icmp,
            Family::Ipv6 => Self::Icmpv6,
        }
    }

    /// The sysctl's name under `/proc/sys/net/ipv4/netfilter/`.
    pub fn sysctl_name(self) -> &'static str {
        match self {
            Self::Icmp => "ip_ct_icmp_timeout",
            Self::Icmpv6 => "ip_ct_icmpv6_timeout",
            Self::Udp => "ip_ct_udp_timeout",
            Self::UdpStream => "ip_ct_udp_timeout_stream",
            Self::TcpSynSent => "ip_ct_tcp_timeout_syn_sent",
            Self::TcpSynRecv => "ip_ct_tcp_timeout_syn_recv",
            Self::TcpEstablished => "ip_ct_tcp_timeout_established",
            Self::TcpFinWait => "ip_ct_tcp_timeout_fin_wait",
            Self::TcpTimeWait => "ip_ct_tcp_timeout_time_wait",
            Self::TcpClose => "ip_ct_tcp_timeout_close",
            Self::TcpUnacknowledged => "ip_ct_tcp_timeout_unacknowledged",
            Self::Generic => "ip_ct_generic_timeout",
        }
    }
}

/// Timeouts in seconds.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Timeouts {
    /// ICMP queries (30).
    pub icmp: u32,
    /// ICMPv6 queries (30).
    pub icmpv6: u32,
    /// UDP without a reply (30).
    pub udp: u32,
    /// Replied UDP (180).
    pub udp_stream: u32,
    /// TCP after a SYN (120).
    pub tcp_syn_sent: u32,
    /// TCP after the SYN/ACK (60).
    pub tcp_syn_recv: u32,
    /// Established TCP (432000).
    pub tcp_established: u32,
    /// TCP after the first FIN (120).
    pub tcp_fin_wait: u32,
    /// TCP after FINs from both sides (120).
    pub tcp_time_wait: u32,
    /// TCP after a RST (10).
    pub tcp_close: u32,
    /// TCP picked up mid-stream, not yet seen both ways (300).
    pub tcp_unacknowledged: u32,
    /// Any other protocol (600).
    pub generic: u32,
}

impl Default for Timeouts {
    /// The defaults of Documentation/contract.rst ("Sysctls").
    fn default() -> Self {
        Self {
            icmp: 30,
            icmpv6: 30,
            udp: 30,
            udp_stream: 180,
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_established: 432_000,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            tcp_unacknowledged: 300,
            generic: 600,
        }
    }
}

impl Timeouts {
    /// The timeout of `kind`, in seconds.
    pub fn get(&self, kind: TimeoutKind) -> u32 {
        match kind {
            TimeoutKind::Icmp => self.icmp,
            TimeoutKind::Icmpv6 => self.icmpv6,
            TimeoutKind::Udp => self.udp,
            TimeoutKind::UdpStream => self.udp_stream,
            TimeoutKind::TcpSynSent => self.tcp_syn_sent,
            TimeoutKind::TcpSynRecv => self.tcp_syn_recv,
            TimeoutKind::TcpEstablished => self.tcp_established,
            TimeoutKind::TcpFinWait => self.tcp_fin_wait,
            TimeoutKind::TcpTimeWait => self.tcp_time_wait,
            TimeoutKind::TcpClose => self.tcp_close,
            TimeoutKind::TcpUnacknowledged => self.tcp_unacknowledged,
            TimeoutKind::Generic => self.generic,
        }
    }

    /// Sets the timeout of `kind` if `secs` is within
    /// [`TIMEOUT_MIN`]..=[`TIMEOUT_MAX`]; returns whether it was set (a
    /// value out of range leaves it unchanged, the sysctl answers EINVAL).
    pub fn set(&mut self, kind: TimeoutKind, secs: u32) -> bool {
        if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&secs) {
            return false;
        }
        let slot = match kind {
            TimeoutKind::Icmp => &mut self.icmp,
            TimeoutKind::Icmpv6 => &mut self.icmpv6,
            TimeoutKind::Udp => &mut self.udp,
            TimeoutKind::UdpStream => &mut self.udp_stream,
            TimeoutKind::TcpSynSent => &mut self.tcp_syn_sent,
            TimeoutKind::TcpSynRecv => &mut self.tcp_syn_recv,
            TimeoutKind::TcpEstablished => &mut self.tcp_established,
            TimeoutKind::TcpFinWait => &mut self.tcp_fin_wait,
            TimeoutKind::TcpTimeWait => &mut self.tcp_time_wait,
            TimeoutKind::TcpClose => &mut self.tcp_close,
            TimeoutKind::TcpUnacknowledged => &mut self.tcp_unacknowledged,
            TimeoutKind::Generic => &mut self.generic,
        };
        *slot = secs;
        true
    }
}

/// The TCP states this tracker distinguishes (nf_conntrack's, CLOSE_WAIT and LAST_ACK
/// folded into FIN_WAIT).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum TcpState {
    /// A SYN was seen, no reply yet.
    SynSent,
    /// The SYN/ACK was seen; the originator's ACK has not completed the handshake yet.
    SynRecv,
    /// The flow carries traffic.
    Established,
    /// One side sent a FIN.
    FinWait,
    /// Both sides sent a FIN.
    TimeWait,
    /// A RST was seen.
    Close,
}

impl TcpState {
    /// Every state.
    pub const ALL: [TcpState; 6] = [
        Self::SynSent,
        Self::SynRecv,
        Self::Established,
        Self::FinWait,
        Self::TimeWait,
        Self::Close,
    ];

    /// The name shown in `/proc/net/ip_conntrack`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::Established => "ESTABLISHED",
            Self::FinWait => "FIN_WAIT",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
        }
    }

    /// The timeout that applies in this state (ESTABLISHED: once seen both ways).
    pub fn timeout(self) -> TimeoutKind {
        match self {
            Self::SynSent => TimeoutKind::TcpSynSent,
            Self::SynRecv => TimeoutKind::TcpSynRecv,
            Self::Established => TimeoutKind::TcpEstablished,
            Self::FinWait => TimeoutKind::TcpFinWait,
            Self::TimeWait => TimeoutKind::TcpTimeWait,
            Self::Close => TimeoutKind::TcpClose,
        }
    }
}

/// The TCP flags.
#[derive(Copy, Clone, PartialEq, Eq, Default, Debug)]
pub struct TcpFlags {
    /// FIN.
    pub fin: bool,
    /// SYN.
    pub syn: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
    /// ACK.
    pub ack: bool,
    /// URG.
    pub urg: bool,
    /// ECE.
    pub ece: bool,
    /// CWR.
    pub cwr: bool,
}

impl TcpFlags {
    /// The flags of TCP header byte 13.
    pub fn from_byte(b: u8) -> Self {
        Self {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            psh: b & 0x08 != 0,
            ack: b & 0x10 != 0,
            urg: b & 0x20 != 0,
            ece: b & 0x40 != 0,
            cwr: b & 0x80 != 0,
        }
    }

    /// Whether a valid segment can carry this combination (as nf_conntrack
    /// judges it, PSH, ECE and CWR aside): SYN, SYN|ACK, RST, RST|ACK,
    /// FIN|ACK, ACK, each possibly with URG (except RST).
    pub fn is_valid(&self) -> bool {
        matches!(
            (self.fin, self.syn, self.rst, self.ack, self.urg),
            (false, true, false, _, _)
                | (false, false, true, _, false)
                | (true, false, false, true, _)
                | (false, false, false, true, _)
        )
    }
}

/// The fields of a TCP header that the tracker uses.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct TcpHeader {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack_seq: u32,
    /// Header length in bytes (data offset * 4), options included.
    pub header_len: usize,
    /// Flags.
    pub flags: TcpFlags,
}

/// Parses the TCP header at the start of `bytes`: 20 bytes, a data offset
/// of at least 5 whose options the slice holds.
pub fn parse_tcp(bytes: &[u8]) -> Result<TcpHeader, ParseError> {
    let (h, _) = bytes
        .split_first_chunk::<20>()
        .ok_or(ParseError::TruncatedL4Header)?;
    let [s0, s1, d0, d1, q0, q1, q2, q3, a0, a1, a2, a3, off, flags, ..] = *h;
    let doff = off >> 4;
    // doff <= 15, so at most 60.
    let header_len = usize::from(doff).wrapping_mul(4);
    if doff < 5 || header_len > bytes.len() {
        return Err(ParseError::BadTcpDataOffset);
    }
    Ok(TcpHeader {
        sport: u16::from_be_bytes([s0, s1]),
        dport: u16::from_be_bytes([d0, d1]),
        seq: u32::from_be_bytes([q0, q1, q2, q3]),
        ack_seq: u32::from_be_bytes([a0, a1, a2, a3]),
        header_len,
        flags: TcpFlags::from_byte(flags),
    })
}

/// The tracked state of a UDP, TCP or generic entry.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct FlowEntry {
    /// A reply was seen (clears `[UNREPLIED]`).
    pub replied: bool,
    /// `[ASSURED]`: a legitimate reply to the NEW packet was seen.
    pub assured: bool,
    /// The TCP state (TCP entries only).
    pub tcp: Option<TcpState>,
}

impl FlowEntry {
    /// A fresh `[UNREPLIED]` entry.
    pub fn unreplied(tcp: Option<TcpState>) -> Self {
        Self {
            replied: false,
            assured: false,
            tcp,
        }
    }

    /// The state of an original-direction packet: ESTABLISHED once a reply
    /// was seen, NEW before.
    fn original_state(&self) -> State {
        if self.replied {
            State::Established
        } else {
            State::New
        }
    }
}

/// Where the packet's tuple was found.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum FlowLookup {
    /// No entry.
    None,
    /// The original direction of this entry.
    Original(FlowEntry),
    /// The reply direction of this entry.
    Reply(FlowEntry),
}

/// An entry's new state and the timeout to reset it to.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct FlowUpdate {
    /// The entry's new state.
    pub entry: FlowEntry,
    /// The timeout that now applies, reset to its full value.
    pub timeout: TimeoutKind,
    /// TCP: the sequence state to store with the entry.
    pub windows: Option<TcpWindows>,
}

/// What the tracker does with the entry.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum FlowAction {
    /// Nothing.
    Nothing,
    /// Create the entry (inserted when the packet passes the last hook).
    Create(FlowUpdate),
    /// Update the entry found.
    Update(FlowUpdate),
}

/// The result of classifying a UDP, TCP or generic packet.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct FlowDecision {
    /// The packet's state.
    pub state: State,
    /// What to do with the entry.
    pub action: FlowAction,
}

/// UDP and generic protocols: first packet NEW and `[UNREPLIED]`; the first
/// reply makes the entry ESTABLISHED and `[ASSURED]`; every packet resets
/// the timeout to `unreplied` or, once replied, `replied`.
fn datagram(lookup: FlowLookup, unreplied: TimeoutKind, replied: TimeoutKind) -> FlowDecision {
    match lookup {
        FlowLookup::None => FlowDecision {
            state: State::New,
            action: FlowAction::Create(FlowUpdate {
                entry: FlowEntry::unreplied(None),
                timeout: unreplied,
                windows: None,
            }),
        },
        FlowLookup::Original(e) => FlowDecision {
            state: e.original_state(),
            action: FlowAction::Update(FlowUpdate {
                entry: e,
                timeout: if e.replied { replied } else { unreplied },
                windows: None,
            }),
        },
        FlowLookup::Reply(e) => FlowDecision {
            state: State::Established,
            action: FlowAction::Update(FlowUpdate {
                entry: FlowEntry {
                    replied: true,
                    assured: true,
                    tcp: e.tcp,
                },
                timeout: replied,
                windows: None,
            }),
        },
    }
}

/// Classifies a UDP packet: NEW `[UNREPLIED]` with `ip_ct_udp_timeout`,
/// then on the first reply ESTABLISHED `[ASSURED]` with
/// `ip_ct_udp_timeout_stream`.
pub fn udp_packet(lookup: FlowLookup) -> FlowDecision {
    datagram(lookup, TimeoutKind::Udp, TimeoutKind::UdpStream)
}

/// Classifies a packet of a protocol without its own tracker ("NETBLT,
/// MUX and EGP"): "the first packet is considered NEW, and reply traffic
/// and so forth is considered ESTABLISHED", with `ip_ct_generic_timeout`.
pub fn generic_packet(lookup: FlowLookup) -> FlowDecision {
    datagram(lookup, TimeoutKind::Generic, TimeoutKind::Generic)
}

/// Classifies a TCP segment, given its entry and that entry's sequence state `windows`.
///
/// - Flag combinations no valid segment has: INVALID.
/// - No entry: a RST is INVALID; a SYN without ACK is NEW and creates a `SYN_SENT` entry;
///   any other packet is picked up mid-stream as NEW (`ESTABLISHED`, `FIN_WAIT` for a FIN)
///   when `loose`, INVALID otherwise. A SYN/ACK with no entry starts nothing: INVALID too.
/// - With an entry, the segment must lie within the windows ([`TcpWindows::track`]); a RST
///   or FIN outside them is INVALID, any other segment outside them keeps its state but
///   changes nothing. Inside: the SYN/ACK reply moves `SYN_SENT` to `SYN_RECV`, the
///   originator's ACK moves `SYN_RECV` to `ESTABLISHED` and `[ASSURED]`; a FIN moves to
///   `FIN_WAIT`, FINs from both sides to `TIME_WAIT`, a RST to `CLOSE`; a SYN in the
///   original direction on a `TIME_WAIT` or `CLOSE` entry starts the connection over. A
///   picked-up flow becomes `[ASSURED]` once seen both ways. The timeout follows the state.
pub fn tcp_packet(
    seg: &TcpSegment,
    lookup: FlowLookup,
    windows: &TcpWindows,
    loose: bool,
) -> FlowDecision {
    let flags = seg.flags;
    if !flags.is_valid() {
        return invalid(InvalidReason::BadTcpFlags);
    }
    let pure_syn = flags.syn && !flags.ack;
    let (e, reply) = match lookup {
        FlowLookup::None => return tcp_first(seg, loose),
        FlowLookup::Original(e) => (e, false),
        FlowLookup::Reply(e) => (e, true),
    };
    let cur = e.tcp.unwrap_or(TcpState::Established);
    if !reply && pure_syn && matches!(cur, TcpState::TimeWait | TcpState::Close) {
        let entry = FlowEntry::unreplied(Some(TcpState::SynSent));
        return update(State::New, entry, TcpWindows::first(seg));
    }
    let state = if reply {
        State::Established
    } else {
        e.original_state()
    };
    let handshake = matches!(cur, TcpState::SynSent | TcpState::SynRecv);
    let Some(windows) = windows.track(reply, seg, handshake) else {
        if flags.rst || flags.fin {
            return invalid(InvalidReason::TcpOutOfWindow);
        }
        return FlowDecision {
            state,
            action: FlowAction::Nothing,
        };
    };
    let fin_seen = windows.peer(false).fin_seen() || windows.peer(true).fin_seen();
    let next = match cur {
        _ if flags.rst => TcpState::Close,
        TcpState::Close => TcpState::Close,
        _ if windows.both_fins() => TcpState::TimeWait,
        _ if fin_seen => TcpState::FinWait,
        TcpState::SynSent if reply && flags.syn && flags.ack => TcpState::SynRecv,
        TcpState::SynRecv if !reply && flags.ack && !flags.syn => TcpState::Established,
        other => other,
    };
    let replied = e.replied || reply;
    let entry = FlowEntry {
        replied,
        assured: e.assured || (next == TcpState::Established && replied),
        tcp: Some(next),
    };
    update(state, entry, windows)
}

/// A TCP segment without entry: a SYN, or a mid-stream pickup when `loose`.
fn tcp_first(seg: &TcpSegment, loose: bool) -> FlowDecision {
    let flags = seg.flags;
    if flags.rst {
        return invalid(InvalidReason::TcpRstWithoutEntry);
    }
    let pure_syn = flags.syn && !flags.ack;
    if !pure_syn && (flags.syn || !loose) {
        return invalid(InvalidReason::TcpNoEntry);
    }
    let windows = TcpWindows::first(seg);
    let tcp = if pure_syn {
        TcpState::SynSent
    } else if flags.fin {
        TcpState::FinWait
    } else {
        TcpState::Established
    };
    let entry = FlowEntry::unreplied(Some(tcp));
    FlowDecision {
        state: State::New,
        action: FlowAction::Create(FlowUpdate {
            entry,
            timeout: tcp_timeout(&entry),
            windows: Some(windows),
        }),
    }
}

/// The timeout of a TCP entry: its state's, but a flow picked up mid-stream
/// (`ESTABLISHED` without reply) has `ip_ct_tcp_timeout_unacknowledged`.
pub fn tcp_timeout(entry: &FlowEntry) -> TimeoutKind {
    match entry.tcp {
        Some(TcpState::Established) if !entry.replied => TimeoutKind::TcpUnacknowledged,
        Some(tcp) => tcp.timeout(),
        None => TimeoutKind::TcpEstablished,
    }
}

fn update(state: State, entry: FlowEntry, windows: TcpWindows) -> FlowDecision {
    FlowDecision {
        state,
        action: FlowAction::Update(FlowUpdate {
            entry,
            timeout: tcp_timeout(&entry),
            windows: Some(windows),
        }),
    }
}

fn invalid(reason: InvalidReason) -> FlowDecision {
    FlowDecision {
        state: State::Invalid(reason),
        action: FlowAction::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u8 = 0x02;
    const SYNACK: u8 = 0x12;
    const ACK: u8 = 0x10;
    const PSHACK: u8 = 0x18;
    const FINACK: u8 = 0x11;
    const RST: u8 = 0x04;
    const RSTACK: u8 = 0x14;

    fn f(b: u8) -> TcpFlags {
        TcpFlags::from_byte(b)
    }

    fn upd(d: &FlowDecision) -> FlowUpdate {
        match d.action {
            FlowAction::Create(u) | FlowAction::Update(u) => u,
            FlowAction::Nothing => panic!("no update in {d:?}"),
        }
    }

    #[test]
    fn defaults() {
        let t = Timeouts::default();
        let want = [30, 30, 30, 180, 120, 60, 432_000, 120, 120, 10, 300, 600];
        for (k, v) in TimeoutKind::ALL.iter().zip(want) {
            assert_eq!(t.get(*k), v, "{}", k.sysctl_name());
        }
    }

    #[test]
    fn set_checks_range() {
        let mut t = Timeouts::default();
        assert!(!t.set(TimeoutKind::Icmp, 0));
        assert!(!t.set(TimeoutKind::Icmp, 2_147_484));
        assert_eq!(t.icmp, 30);
        assert!(t.set(TimeoutKind::Icmp, 2_147_483));
        assert_eq!(t.icmp, 2_147_483);
        for k in TimeoutKind::ALL {
            assert!(t.set(k, 7));
            assert_eq!(t.get(k), 7);
        }
    }

    #[test]
    fn udp_transitions() {
        let d = udp_packet(FlowLookup::None);
        assert_eq!(d.state, State::New);
        assert!(matches!(d.action, FlowAction::Create(_)));
        let u = upd(&d);
        assert_eq!(
            u.entry,
            FlowEntry {
                replied: false,
                assured: false,
                tcp: None
            }
        );
        assert_eq!(u.timeout, TimeoutKind::Udp);
        // A second packet before any reply: still NEW, 30 s again.
        let d = udp_packet(FlowLookup::Original(u.entry));
        assert_eq!(d.state, State::New);
        assert_eq!(upd(&d).timeout, TimeoutKind::Udp);
        // First reply: ESTABLISHED, ASSURED, stream timeout.
        let d = udp_packet(FlowLookup::Reply(u.entry));
        assert_eq!(d.state, State::Established);
        let u = upd(&d);
        assert_eq!(
            u.entry,
            FlowEntry {
                replied: true,
                assured: true,
                tcp: None
            }
        );
        assert_eq!(u.timeout, TimeoutKind::UdpStream);
        // Original direction after the reply: ESTABLISHED, stream timeout.
        let d = udp_packet(FlowLookup::Original(u.entry));
        assert_eq!(d.state, State::Established);
        assert_eq!(upd(&d).timeout, TimeoutKind::UdpStream);
        assert!(upd(&d).entry.assured);
    }

    #[test]
    fn generic_transitions() {
        let d = generic_packet(FlowLookup::None);
        assert_eq!(d.state, State::New);
        let u = upd(&d);
        assert_eq!(u.timeout, TimeoutKind::Generic);
        assert!(!u.entry.replied);
        let d = generic_packet(FlowLookup::Original(u.entry));
        assert_eq!(d.state, State::New);
        let d = generic_packet(FlowLookup::Reply(u.entry));
        assert_eq!(d.state, State::Established);
        assert_eq!(upd(&d).timeout, TimeoutKind::Generic);
        assert!(upd(&d).entry.replied);
    }

    /// A segment of `len` payload bytes.
    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> TcpSegment {
        TcpSegment {
            flags: f(flags),
            seq,
            ack,
            window: 1000,
            wscale: None,
            payload_len: len,
        }
    }

    /// One connection as the kernel keeps it: the entry and its windows.
    struct Conn {
        lookup: Option<FlowEntry>,
        windows: TcpWindows,
    }

    impl Conn {
        fn new() -> Self {
            Conn {
                lookup: None,
                windows: TcpWindows::default(),
            }
        }

        /// Applies `s` (sent in direction `reply`) and returns its decision.
        fn send(&mut self, reply: bool, s: TcpSegment) -> FlowDecision {
            let lookup = match (self.lookup, reply) {
                (None, _) => FlowLookup::None,
                (Some(e), false) => FlowLookup::Original(e),
                (Some(e), true) => FlowLookup::Reply(e),
            };
            let d = tcp_packet(&s, lookup, &self.windows, true);
            if let FlowAction::Create(u) | FlowAction::Update(u) = d.action {
                self.lookup = Some(u.entry);
                self.windows = u.windows.unwrap();
            }
            d
        }

        fn entry(&self) -> FlowEntry {
            self.lookup.unwrap()
        }
    }

    /// SYN (ISN 1000), SYN/ACK (ISN 5000), and with `ack` the originator's ACK.
    fn handshake(ack: bool) -> Conn {
        let mut c = Conn::new();
        c.send(false, seg(SYN, 1000, 0, 0));
        c.send(true, seg(SYNACK, 5000, 1001, 0));
        if ack {
            c.send(false, seg(ACK, 1001, 5001, 0));
        }
        c
    }

    #[test]
    fn tcp_handshake() {
        let mut c = Conn::new();
        let d = c.send(false, seg(SYN, 1000, 0, 0));
        assert_eq!(d.state, State::New);
        assert!(matches!(d.action, FlowAction::Create(_)));
        assert_eq!(c.entry(), FlowEntry::unreplied(Some(TcpState::SynSent)));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpSynSent);
        // SYN retransmission.
        let d = c.send(false, seg(SYN, 1000, 0, 0));
        assert_eq!(d.state, State::New);
        assert_eq!(c.entry().tcp, Some(TcpState::SynSent));
        // SYN/ACK: SYN_RECV, replied, not assured, 60 s.
        let d = c.send(true, seg(SYNACK, 5000, 1001, 0));
        assert_eq!(d.state, State::Established);
        let want = FlowEntry {
            replied: true,
            assured: false,
            tcp: Some(TcpState::SynRecv),
        };
        assert_eq!(c.entry(), want);
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpSynRecv);
        // A retransmitted SYN/ACK changes nothing.
        c.send(true, seg(SYNACK, 5000, 1001, 0));
        assert_eq!(c.entry(), want);
        // The originator's ACK completes the handshake.
        let d = c.send(false, seg(ACK, 1001, 5001, 0));
        assert_eq!(d.state, State::Established);
        assert_eq!(
            c.entry(),
            FlowEntry {
                replied: true,
                assured: true,
                tcp: Some(TcpState::Established)
            }
        );
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpEstablished);
        let d = c.send(false, seg(PSHACK, 1001, 5001, 100));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpEstablished);
    }

    /// The first measurement: SYN, the server's SYN/ACK, the client's RST dropped.
    #[test]
    fn syn_and_synack_alone_are_not_assured() {
        let c = handshake(false);
        assert_eq!(c.entry().tcp, Some(TcpState::SynRecv));
        assert!(!c.entry().assured);
        assert_eq!(tcp_timeout(&c.entry()), TimeoutKind::TcpSynRecv);
        // A SYN/ACK alone, without entry, creates nothing.
        let d = tcp_packet(
            &seg(SYNACK, 5000, 1001, 0),
            FlowLookup::None,
            &TcpWindows::default(),
            true,
        );
        assert_eq!(d.state, State::Invalid(InvalidReason::TcpNoEntry));
        // An ACK that acknowledges nothing the server sent does not complete it.
        let mut c = handshake(false);
        let d = c.send(false, seg(ACK, 1001, 9999, 0));
        assert_eq!(d.action, FlowAction::Nothing);
        assert_eq!(c.entry().tcp, Some(TcpState::SynRecv));
    }

    /// The second measurement: a RST far outside the window.
    #[test]
    fn rst_outside_the_window_changes_nothing() {
        for reply in [false, true] {
            let mut c = handshake(true);
            let before = c.entry();
            let base: u32 = if reply { 5001 } else { 1001 };
            for seq in [base + 1_000_000, base.wrapping_sub(1_000_000), base + 1001] {
                for flags in [RST, RSTACK, FINACK] {
                    let ack = if reply { 1001 } else { 5001 };
                    let d = c.send(reply, seg(flags, seq, ack, 0));
                    assert_eq!(d.state, State::Invalid(InvalidReason::TcpOutOfWindow));
                    assert_eq!(d.action, FlowAction::Nothing);
                    assert_eq!(c.entry(), before);
                }
            }
            // In the window: CLOSE, 10 s.
            let d = c.send(reply, seg(RST, base + 10, 0, 0));
            assert_eq!(d.state, State::Established);
            assert_eq!(c.entry().tcp, Some(TcpState::Close));
            assert!(c.entry().assured);
            assert_eq!(upd(&d).timeout, TimeoutKind::TcpClose);
        }
    }

    #[test]
    fn tcp_fins() {
        let mut c = handshake(true);
        let d = c.send(false, seg(FINACK, 1001, 5001, 0));
        assert_eq!(d.state, State::Established);
        assert_eq!(c.entry().tcp, Some(TcpState::FinWait));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpFinWait);
        // The ACK of the FIN, then more data from the other side: still FIN_WAIT.
        c.send(true, seg(ACK, 5001, 1002, 0));
        c.send(true, seg(PSHACK, 5001, 1002, 10));
        assert_eq!(c.entry().tcp, Some(TcpState::FinWait));
        // A repeated FIN from the same side is not the second FIN.
        c.send(false, seg(FINACK, 1001, 5011, 0));
        assert_eq!(c.entry().tcp, Some(TcpState::FinWait));
        let d = c.send(true, seg(FINACK, 5011, 1002, 0));
        assert_eq!(c.entry().tcp, Some(TcpState::TimeWait));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpTimeWait);
        let d = c.send(false, seg(ACK, 1002, 5012, 0));
        assert_eq!(c.entry().tcp, Some(TcpState::TimeWait));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpTimeWait);
        assert!(c.entry().assured);
        // A new SYN on the tuple starts over.
        let d = c.send(false, seg(SYN, 90_000, 0, 0));
        assert_eq!(d.state, State::New);
        assert_eq!(c.entry(), FlowEntry::unreplied(Some(TcpState::SynSent)));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpSynSent);
        c.send(true, seg(SYNACK, 7, 90_001, 0));
        assert_eq!(c.entry().tcp, Some(TcpState::SynRecv));
    }

    #[test]
    fn tcp_rst() {
        for b in [RST, RSTACK] {
            for loose in [true, false] {
                let d = tcp_packet(
                    &seg(b, 1, 1, 0),
                    FlowLookup::None,
                    &TcpWindows::default(),
                    loose,
                );
                assert_eq!(d.state, State::Invalid(InvalidReason::TcpRstWithoutEntry));
                assert_eq!(d.action, FlowAction::Nothing);
            }
        }
        // RST|ACK with sequence 0 in reply to a SYN (port closed): CLOSE, not assured.
        let mut c = Conn::new();
        c.send(false, seg(SYN, 1000, 0, 0));
        let d = c.send(true, seg(RSTACK, 0, 1001, 0));
        assert_eq!(d.state, State::Established);
        assert_eq!(
            c.entry(),
            FlowEntry {
                replied: true,
                assured: false,
                tcp: Some(TcpState::Close)
            }
        );
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpClose);
        // Nothing but a SYN reopens it.
        c.send(false, seg(FINACK, 1001, 1, 0));
        assert_eq!(c.entry().tcp, Some(TcpState::Close));
    }

    #[test]
    fn tcp_loose_pickup() {
        let mut c = Conn::new();
        let d = c.send(false, seg(ACK, 7000, 9000, 10));
        assert_eq!(d.state, State::New);
        let u = upd(&d);
        assert_eq!(u.entry, FlowEntry::unreplied(Some(TcpState::Established)));
        assert_eq!(u.timeout, TimeoutKind::TcpUnacknowledged);
        // More packets one way: still unacknowledged, not assured.
        let d = c.send(false, seg(ACK, 7010, 9000, 10));
        assert_eq!(d.state, State::New);
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpUnacknowledged);
        assert!(!c.entry().assured);
        // Seen both ways: assured, established timeout.
        let d = c.send(true, seg(ACK, 9000, 7020, 0));
        assert_eq!(d.state, State::Established);
        assert!(c.entry().assured && c.entry().replied);
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpEstablished);
        // The windows learned from both directions refuse a blind RST.
        let d = c.send(true, seg(RST, 9000 + 1_000_000, 0, 0));
        assert_eq!(d.state, State::Invalid(InvalidReason::TcpOutOfWindow));
        // A FIN picked up mid-stream.
        let d = tcp_packet(
            &seg(FINACK, 1, 1, 0),
            FlowLookup::None,
            &TcpWindows::default(),
            true,
        );
        assert_eq!(d.state, State::New);
        assert_eq!(upd(&d).entry.tcp, Some(TcpState::FinWait));
        // Strict mode: INVALID.
        for b in [ACK, PSHACK, FINACK] {
            let d = tcp_packet(
                &seg(b, 1, 1, 0),
                FlowLookup::None,
                &TcpWindows::default(),
                false,
            );
            assert_eq!(d.state, State::Invalid(InvalidReason::TcpNoEntry));
            assert_eq!(d.action, FlowAction::Nothing);
        }
        // A SYN still creates in strict mode.
        let d = tcp_packet(
            &seg(SYN, 1, 0, 0),
            FlowLookup::None,
            &TcpWindows::default(),
            false,
        );
        assert_eq!(d.state, State::New);
    }

    #[test]
    fn tcp_flag_validity() {
        for b in [
            SYN, SYNACK, ACK, PSHACK, FINACK, RST, RSTACK, 0x22, 0x30, 0x31, 0xc2, 0x5a,
        ] {
            assert!(f(b).is_valid(), "{b:#x}");
        }
        // None, FIN alone, SYN|FIN, SYN|RST, xmas, URG alone, FIN|RST.
        for b in [0x00, 0x01, 0x03, 0x06, 0x29, 0x20, 0x15, 0x3f, 0x24] {
            let d = tcp_packet(
                &seg(b, 1, 1, 0),
                FlowLookup::None,
                &TcpWindows::default(),
                true,
            );
            assert_eq!(
                d.state,
                State::Invalid(InvalidReason::BadTcpFlags),
                "{b:#x}"
            );
        }
    }

    #[test]
    fn tcp_parse() {
        let mut h = [0u8; 24];
        h[0..2].copy_from_slice(&40000u16.to_be_bytes());
        h[2..4].copy_from_slice(&80u16.to_be_bytes());
        h[4..8].copy_from_slice(&1u32.to_be_bytes());
        h[12] = 0x50;
        h[13] = SYN;
        let t = parse_tcp(&h).unwrap();
        assert_eq!((t.sport, t.dport, t.seq, t.header_len), (40000, 80, 1, 20));
        assert!(t.flags.syn && !t.flags.ack);
        assert_eq!(parse_tcp(&h[..19]), Err(ParseError::TruncatedL4Header));
        h[12] = 0x60;
        assert_eq!(parse_tcp(&h).unwrap().header_len, 24);
        assert_eq!(parse_tcp(&h[..23]), Err(ParseError::BadTcpDataOffset));
        h[12] = 0x40;
        assert_eq!(parse_tcp(&h), Err(ParseError::BadTcpDataOffset));
        let names = TcpState::ALL.map(TcpState::name);
        assert_eq!(
            names,
            [
                "SYN_SENT",
                "SYN_RECV",
                "ESTABLISHED",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE"
            ]
        );
    }
}
