// SPDX-License-Identifier: GPL-2.0

//! The flows ICMP errors relate to: UDP, TCP (per flow, no window
//! tracking) and any other protocol, plus the timeouts of every entry.
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
    /// `ip_ct_tcp_timeout_established`.
    TcpEstablished,
    /// `ip_ct_tcp_timeout_close`.
    TcpClose,
    /// `ip_ct_generic_timeout`.
    Generic,
}

impl TimeoutKind {
    /// Every timeout, in sysctl table order.
    pub const ALL: [TimeoutKind; 8] = [
        Self::Icmp,
        Self::Icmpv6,
        Self::Udp,
        Self::UdpStream,
        Self::TcpSynSent,
        Self::TcpEstablished,
        Self::TcpClose,
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
            Self::TcpEstablished => "ip_ct_tcp_timeout_established",
            Self::TcpClose => "ip_ct_tcp_timeout_close",
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
    /// Established TCP (432000).
    pub tcp_established: u32,
    /// TCP after a FIN or RST (10).
    pub tcp_close: u32,
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
            tcp_established: 432_000,
            tcp_close: 10,
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
            TimeoutKind::TcpEstablished => self.tcp_established,
            TimeoutKind::TcpClose => self.tcp_close,
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
            TimeoutKind::TcpEstablished => &mut self.tcp_established,
            TimeoutKind::TcpClose => &mut self.tcp_close,
            TimeoutKind::Generic => &mut self.generic,
        };
        *slot = secs;
        true
    }
}

/// The TCP states this tracker distinguishes (no window tracking).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum TcpState {
    /// A SYN was seen, no reply yet.
    SynSent,
    /// The flow carries traffic.
    Established,
    /// A FIN or RST was seen.
    Close,
}

impl TcpState {
    /// The name shown in `/proc/net/ip_conntrack`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SynSent => "SYN_SENT",
            Self::Established => "ESTABLISHED",
            Self::Close => "CLOSE",
        }
    }

    /// The timeout that applies in this state.
    pub fn timeout(self) -> TimeoutKind {
        match self {
            Self::SynSent => TimeoutKind::TcpSynSent,
            Self::Established => TimeoutKind::TcpEstablished,
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
            }),
        },
        FlowLookup::Original(e) => FlowDecision {
            state: e.original_state(),
            action: FlowAction::Update(FlowUpdate {
                entry: e,
                timeout: if e.replied { replied } else { unreplied },
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

/// Classifies a TCP packet by its flags, without window tracking.
///
/// - Flag combinations no valid segment has: INVALID.
/// - No entry: a RST is INVALID; a SYN without ACK is NEW and creates a
///   `SYN_SENT` entry; any other packet is picked up mid-stream as NEW
///   (`ESTABLISHED`, or `CLOSE` for a FIN) when `loose`, INVALID otherwise.
///   A SYN/ACK with no entry is not a connection start: INVALID too.
/// - With an entry: a reply that is neither FIN nor RST makes it
///   `ESTABLISHED` and `[ASSURED]`; a FIN or RST in either direction moves
///   it to `CLOSE`; a SYN in the original direction on a `CLOSE` entry
///   starts the connection over (`SYN_SENT`, `[UNREPLIED]`, NEW). The
///   timeout follows the TCP state.
pub fn tcp_packet(flags: TcpFlags, lookup: FlowLookup, loose: bool) -> FlowDecision {
    if !flags.is_valid() {
        return invalid(InvalidReason::BadTcpFlags);
    }
    let pure_syn = flags.syn && !flags.ack;
    let closing = flags.fin || flags.rst;
    match lookup {
        FlowLookup::None => {
            let tcp = if flags.rst {
                return invalid(InvalidReason::TcpRstWithoutEntry);
            } else if pure_syn {
                TcpState::SynSent
            } else if flags.syn || !loose {
                return invalid(InvalidReason::TcpNoEntry);
            } else if closing {
                TcpState::Close
            } else {
                TcpState::Established
            };
            FlowDecision {
                state: State::New,
                action: FlowAction::Create(FlowUpdate {
                    entry: FlowEntry::unreplied(Some(tcp)),
                    timeout: tcp.timeout(),
                }),
            }
        }
        FlowLookup::Original(e) => {
            let cur = e.tcp.unwrap_or(TcpState::Established);
            let (entry, state) = if closing {
                (with_tcp(e, TcpState::Close), e.original_state())
            } else if pure_syn && cur == TcpState::Close {
                (FlowEntry::unreplied(Some(TcpState::SynSent)), State::New)
            } else {
                (with_tcp(e, cur), e.original_state())
            };
            update(state, entry)
        }
        FlowLookup::Reply(e) => {
            let cur = e.tcp.unwrap_or(TcpState::Established);
            let tcp = if closing {
                TcpState::Close
            } else if cur == TcpState::SynSent {
                TcpState::Established
            } else {
                cur
            };
            let entry = FlowEntry {
                replied: true,
                assured: e.assured || tcp == TcpState::Established,
                tcp: Some(tcp),
            };
            update(State::Established, entry)
        }
    }
}

fn with_tcp(e: FlowEntry, tcp: TcpState) -> FlowEntry {
    FlowEntry {
        tcp: Some(tcp),
        ..e
    }
}

fn update(state: State, entry: FlowEntry) -> FlowDecision {
    let timeout = entry
        .tcp
        .map_or(TimeoutKind::TcpEstablished, TcpState::timeout);
    FlowDecision {
        state,
        action: FlowAction::Update(FlowUpdate { entry, timeout }),
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
        let want = [30, 30, 30, 180, 120, 432_000, 10, 600];
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

    #[test]
    fn tcp_handshake_and_close() {
        let d = tcp_packet(f(SYN), FlowLookup::None, true);
        assert_eq!(d.state, State::New);
        let u = upd(&d);
        assert!(matches!(d.action, FlowAction::Create(_)));
        assert_eq!(u.entry.tcp, Some(TcpState::SynSent));
        assert_eq!(u.timeout, TimeoutKind::TcpSynSent);
        // SYN retransmission.
        let d = tcp_packet(f(SYN), FlowLookup::Original(u.entry), true);
        assert_eq!(d.state, State::New);
        assert_eq!(upd(&d).entry.tcp, Some(TcpState::SynSent));
        // SYN/ACK reply.
        let d = tcp_packet(f(SYNACK), FlowLookup::Reply(u.entry), true);
        assert_eq!(d.state, State::Established);
        let u = upd(&d);
        assert_eq!(
            u.entry,
            FlowEntry {
                replied: true,
                assured: true,
                tcp: Some(TcpState::Established)
            }
        );
        assert_eq!(u.timeout, TimeoutKind::TcpEstablished);
        let d = tcp_packet(f(PSHACK), FlowLookup::Original(u.entry), true);
        assert_eq!(d.state, State::Established);
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpEstablished);
        // FIN: CLOSE, 10 s, still ESTABLISHED as a packet.
        let d = tcp_packet(f(FINACK), FlowLookup::Original(u.entry), true);
        assert_eq!(d.state, State::Established);
        let c = upd(&d);
        assert_eq!(c.entry.tcp, Some(TcpState::Close));
        assert_eq!(c.timeout, TimeoutKind::TcpClose);
        assert!(c.entry.assured);
        // Last ACK stays CLOSE.
        let d = tcp_packet(f(ACK), FlowLookup::Reply(c.entry), true);
        assert_eq!(upd(&d).entry.tcp, Some(TcpState::Close));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpClose);
        // New SYN on the closed tuple starts over.
        let d = tcp_packet(f(SYN), FlowLookup::Original(c.entry), true);
        assert_eq!(d.state, State::New);
        assert_eq!(upd(&d).entry, FlowEntry::unreplied(Some(TcpState::SynSent)));
        assert_eq!(upd(&d).timeout, TimeoutKind::TcpSynSent);
    }

    #[test]
    fn tcp_rst() {
        for b in [RST, RSTACK] {
            let d = tcp_packet(f(b), FlowLookup::None, true);
            assert_eq!(d.state, State::Invalid(InvalidReason::TcpRstWithoutEntry));
            assert_eq!(d.action, FlowAction::Nothing);
            let d = tcp_packet(f(b), FlowLookup::None, false);
            assert_eq!(d.state, State::Invalid(InvalidReason::TcpRstWithoutEntry));
        }
        // RST in reply to a SYN (port closed): CLOSE, replied, not assured.
        let syn = FlowEntry::unreplied(Some(TcpState::SynSent));
        let d = tcp_packet(f(RSTACK), FlowLookup::Reply(syn), true);
        assert_eq!(d.state, State::Established);
        let u = upd(&d);
        assert_eq!(
            u.entry,
            FlowEntry {
                replied: true,
                assured: false,
                tcp: Some(TcpState::Close)
            }
        );
        assert_eq!(u.timeout, TimeoutKind::TcpClose);
    }

    #[test]
    fn tcp_loose_pickup() {
        let d = tcp_packet(f(ACK), FlowLookup::None, true);
        assert_eq!(d.state, State::New);
        let u = upd(&d);
        assert_eq!(u.entry, FlowEntry::unreplied(Some(TcpState::Established)));
        assert_eq!(u.timeout, TimeoutKind::TcpEstablished);
        let d = tcp_packet(f(ACK), FlowLookup::Reply(u.entry), true);
        assert_eq!(d.state, State::Established);
        assert!(upd(&d).entry.assured);
        let d = tcp_packet(f(FINACK), FlowLookup::None, true);
        assert_eq!(d.state, State::New);
        assert_eq!(upd(&d).entry.tcp, Some(TcpState::Close));
        // Strict mode: INVALID.
        for b in [ACK, PSHACK, FINACK] {
            let d = tcp_packet(f(b), FlowLookup::None, false);
            assert_eq!(d.state, State::Invalid(InvalidReason::TcpNoEntry));
            assert_eq!(d.action, FlowAction::Nothing);
        }
        // A SYN/ACK with no entry starts nothing.
        let d = tcp_packet(f(SYNACK), FlowLookup::None, true);
        assert_eq!(d.state, State::Invalid(InvalidReason::TcpNoEntry));
        // A SYN still creates in strict mode.
        assert_eq!(
            tcp_packet(f(SYN), FlowLookup::None, false).state,
            State::New
        );
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
            let d = tcp_packet(f(b), FlowLookup::None, true);
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
        assert_eq!(TcpState::SynSent.name(), "SYN_SENT");
        assert_eq!(TcpState::Established.name(), "ESTABLISHED");
        assert_eq!(TcpState::Close.name(), "CLOSE");
    }
}
