// SPDX-License-Identifier: GPL-2.0

//! Property tests: round trips, total parsers, checksums, formatting.

use icmp_ct_proto::addr::{Addr, Family};
use icmp_ct_proto::checksum::{
    checksum_is_valid, icmpv6_checksum, icmpv6_checksum_is_valid, internet_checksum,
};
use icmp_ct_proto::conntrack_line::{write_line, LineEntry};
use icmp_ct_proto::flow_state::{
    self, FlowAction, FlowEntry, FlowLookup, TcpFlags, TcpState, TimeoutKind,
};
use icmp_ct_proto::icmp_error::{self, ErrorLookup};
use icmp_ct_proto::icmp_state::{classify_query, IcmpEntryState, Lookup, QueryAction};
use icmp_ct_proto::icmp_types::{self, IcmpKind};
use icmp_ct_proto::key::Key;
use icmp_ct_proto::reader::{PacketBytes, Window};
use icmp_ct_proto::state::InvalidReason;
use icmp_ct_proto::tcp_window::{TcpSegment, TcpWindows};
use icmp_ct_proto::tuple::{self, Tuple, L4};
use icmp_ct_proto::ParseError;
use icmp_ct_proto::{icmp, ipv4, ipv6};
use proptest::prelude::*;

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)]
}

fn addr(fam: Family) -> BoxedStrategy<Addr> {
    match fam {
        Family::Ipv4 => any::<[u8; 4]>().prop_map(Addr::from_v4).boxed(),
        Family::Ipv6 => any::<[u8; 16]>().prop_map(Addr::from_v6).boxed(),
    }
}

/// Request types of each family.
fn request_type(fam: Family) -> BoxedStrategy<u8> {
    match fam {
        Family::Ipv4 => prop::sample::select(vec![8u8, 13, 15, 17, 42]).boxed(),
        Family::Ipv6 => prop::sample::select(vec![128u8, 139]).boxed(),
    }
}

fn request_tuple() -> impl Strategy<Value = Tuple> {
    family().prop_flat_map(|fam| {
        (
            addr(fam),
            addr(fam),
            request_type(fam),
            any::<u8>(),
            any::<u16>(),
        )
            .prop_map(move |(s, d, t, c, id)| Tuple::icmp(fam, s, d, t, c, id))
    })
}

fn any_tuple() -> impl Strategy<Value = Tuple> {
    family().prop_flat_map(|fam| {
        let l4 = prop_oneof![
            (any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(icmp_type, code, id)| L4::Icmp {
                icmp_type,
                code,
                id
            }),
            (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Ports { sport, dport }),
            Just(L4::None),
        ];
        (addr(fam), addr(fam), any::<u8>(), l4).prop_map(move |(src, dst, protocol, l4)| Tuple {
            family: fam,
            src,
            dst,
            protocol,
            l4,
        })
    })
}

/// A chain of IPv6 extension headers the parser walks: each header's kind (its next-header
/// value) and length byte, long routing headers (SRv6 up to 127 segments) included.
fn extension_chain(max: usize) -> impl Strategy<Value = Vec<(u8, u8)>> {
    let kind = prop::sample::select(vec![
        ipv6::NEXTHDR_HOP,
        ipv6::NEXTHDR_ROUTING,
        ipv6::NEXTHDR_FRAGMENT,
        ipv6::NEXTHDR_AUTH,
        ipv6::NEXTHDR_DEST,
    ]);
    let len = prop_oneof![0u8..4, Just(32u8), Just(254u8), Just(255u8), any::<u8>()];
    prop::collection::vec((kind, len), 0..=max)
}

/// An IPv6 packet with `chain` and then `upper` bytes of ICMPv6. Its fragment headers are
/// first fragments, except the first one when `non_first` (offset 1480, the walk stops
/// there). Returns the packet, where the walk ends, the protocol it finds there and whether
/// it stopped at a non-first fragment.
fn ipv6_with_chain(
    chain: &[(u8, u8)],
    upper: &[u8],
    non_first: bool,
) -> (Vec<u8>, usize, u8, bool) {
    let next_of = |i: usize| chain.get(i).map_or(58, |&(kind, _)| kind);
    let mut p = vec![0x60, 0, 0, 0, 0, 0, next_of(0), 64];
    p.extend_from_slice(&[0xfd; 32]);
    let mut stop = None;
    for (i, &(kind, len)) in chain.iter().enumerate() {
        let next = next_of(i + 1);
        match kind {
            ipv6::NEXTHDR_FRAGMENT => {
                let frag: [u8; 2] = if non_first && stop.is_none() {
                    [0x05, 0xc8]
                } else {
                    [0x00, 0x01]
                };
                p.extend_from_slice(&[next, 0, frag[0], frag[1], 0, 0, 0, 9]);
                if non_first && stop.is_none() {
                    stop = Some((p.len(), next));
                }
            }
            _ => {
                let total = if kind == ipv6::NEXTHDR_AUTH {
                    (usize::from(len) + 2) * 4
                } else {
                    (usize::from(len) + 1) * 8
                };
                p.extend_from_slice(&[next, len]);
                p.resize(p.len() + total - 2, 0xa5);
            }
        }
    }
    let (end, protocol) = stop.unwrap_or((p.len(), 58));
    p.extend_from_slice(upper);
    let payload_len = (p.len() - 40).min(0xffff) as u16;
    p[4..6].copy_from_slice(&payload_len.to_be_bytes());
    (p, end, protocol, stop.is_some())
}

/// A packet's bytes that remembers the reads it served.
struct Recording<'a> {
    bytes: &'a [u8],
    reads: std::cell::RefCell<Vec<(usize, usize)>>,
}

impl PacketBytes for Recording<'_> {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn read<'a>(&'a self, offset: usize, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
        self.reads.borrow_mut().push((offset, buffer.len()));
        self.bytes.read(offset, buffer)
    }
}

/// The one's complement sum of `data` as big-endian 16-bit words (an odd last byte padded
/// with zero), the way RFC 1071 section 4.1 adds them: in 16 bits, each carry added back at
/// once. A test oracle for the checksum functions, which sum in 32 bits and fold at the end.
fn reference_sum(data: &[u8]) -> u16 {
    let mut sum = 0u16;
    for word in data.chunks(2) {
        let word = u16::from_be_bytes([word[0], word.get(1).copied().unwrap_or(0)]);
        let (s, carry) = sum.overflowing_add(word);
        sum = s + u16::from(carry);
    }
    sum
}

fn flow_lookup() -> impl Strategy<Value = FlowLookup> {
    let tcp = prop::option::of(prop::sample::select(TcpState::ALL.to_vec()));
    let entry = (any::<bool>(), any::<bool>(), tcp).prop_map(|(replied, assured, tcp)| FlowEntry {
        replied,
        assured,
        tcp,
    });
    prop_oneof![
        Just(FlowLookup::None),
        entry.clone().prop_map(FlowLookup::Original),
        entry.prop_map(FlowLookup::Reply),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reply_invert_round_trip(t in request_tuple()) {
        let r = t.reply().expect("a request has a reply");
        prop_assert_eq!(r.invert(), Some(t));
        prop_assert_eq!(t.invert(), Some(r));
        prop_assert_eq!(r.src, t.dst);
        prop_assert_eq!(r.dst, t.src);
        // A reply is not a request.
        prop_assert_eq!(r.reply(), None);
        match (t.l4, r.l4) {
            (L4::Icmp { code: c1, id: i1, icmp_type }, L4::Icmp { code: c2, id: i2, icmp_type: rt }) => {
                prop_assert_eq!(c1, c2);
                prop_assert_eq!(i1, i2);
                prop_assert_eq!(icmp_types::kind(t.family, icmp_type), IcmpKind::Request { reply: rt });
            }
            _ => prop_assert!(false, "ICMP tuple lost its ICMP part"),
        }
    }

    #[test]
    fn invert_is_an_involution(t in any_tuple()) {
        if let Some(i) = t.invert() {
            prop_assert_eq!(i.invert(), Some(t));
        }
        if let Some(r) = t.reply() {
            prop_assert_eq!(Some(r), t.invert());
        }
    }

    #[test]
    fn parsers_are_total(data in prop::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(h) = ipv4::parse(&data) {
            prop_assert!(h.header_len >= 20 && h.header_len <= data.len());
            prop_assert!(h.payload(&data).len() <= data.len() - h.header_len);
        }
        if let Ok(h) = ipv6::parse(&data) {
            prop_assert!(h.l4_offset >= 40 && h.l4_offset <= data.len());
            let payload = h.payload(&data);
            prop_assert_eq!(payload, &data[h.l4_offset..h.l4_offset + payload.len()]);
        }
        if let Ok(h) = icmp::parse(&data) {
            prop_assert_eq!(h.icmp_type, data[0]);
            prop_assert_eq!(icmp::payload(&data).len(), data.len() - 8);
        }
        if let Ok(h) = flow_state::parse_tcp(&data) {
            prop_assert!(h.header_len >= 20 && h.header_len <= data.len());
        }
        for fam in [Family::Ipv4, Family::Ipv6] {
            for proto in [1u8, 6, 17, 47, 58] {
                let got = tuple::l4_from_transport(fam, proto, &data);
                let be16 = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
                let expected = match (proto, fam) {
                    (1, Family::Ipv4) | (58, Family::Ipv6) if data.len() < 8 => {
                        Err(ParseError::TruncatedIcmpHeader)
                    }
                    (1, Family::Ipv4) | (58, Family::Ipv6) => Ok(L4::Icmp {
                        icmp_type: data[0],
                        code: data[1],
                        id: be16(4),
                    }),
                    (6 | 17, _) if data.len() < 8 => Err(ParseError::TruncatedL4Header),
                    (6 | 17, _) => Ok(L4::Ports { sport: be16(0), dport: be16(2) }),
                    _ => Ok(L4::None),
                };
                prop_assert_eq!(got, expected, "{:?} protocol {}", fam, proto);
            }
        }
        for e in [icmp_error::parse_embedded_v4(&data), icmp_error::parse_embedded_v6(&data)]
            .into_iter()
            .flatten()
        {
            // Any address but the embedded packet's sender is spoofed.
            let mut other = e.sender().octets();
            other[3] ^= 0x80;
            let other = match e.tuple.family {
                Family::Ipv4 => Addr::from_v4([other[0], other[1], other[2], other[3]]),
                Family::Ipv6 => Addr::from_v6(other),
            };
            prop_assert!(icmp_error::outer_destination_matches(e.sender(), &e));
            prop_assert!(!icmp_error::outer_destination_matches(other, &e));
            let expected = if e.is_icmp_error {
                Err(InvalidReason::ErrorInError)
            } else if e.sender() == Addr::default() {
                Ok(())
            } else {
                Err(InvalidReason::SpoofedError)
            };
            prop_assert_eq!(icmp_error::check_embedded(Addr::default(), &e), expected);
        }
        let sum = reference_sum(&data);
        prop_assert_eq!(internet_checksum(&data), !sum);
        prop_assert_eq!(checksum_is_valid(&data), sum == 0xffff);
    }

    /// Structured input reaches the deeper branches that random bytes rarely do.
    #[test]
    fn embedded_parsers_are_total_on_plausible_headers(
        ihl in 0u8..16,
        proto in prop::sample::select(vec![1u8, 6, 17, 47, 58]),
        frag in any::<u16>(),
        tail in prop::collection::vec(any::<u8>(), 0..80),
        cut in 0usize..120,
    ) {
        let mut p = vec![0x40 | ihl, 0, 0, 0, 0, 0, (frag >> 8) as u8, frag as u8, 64, proto, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        p.extend_from_slice(&tail);
        p.truncate(cut);
        let header_len = usize::from(ihl) * 4;
        let needs_transport = matches!(proto, 1 | 6 | 17);
        let expected = if p.len() < 20 {
            Err(ParseError::TruncatedEmbeddedHeader)
        } else if ihl < 5 {
            Err(ParseError::BadEmbeddedHeader)
        } else if p.len() < header_len {
            Err(ParseError::TruncatedEmbeddedHeader)
        } else if frag & 0x1fff != 0 {
            Err(ParseError::EmbeddedFragment)
        } else if needs_transport && p.len() < header_len + 8 {
            Err(ParseError::TruncatedEmbeddedHeader)
        } else {
            Ok((Addr::from_v4([1, 2, 3, 4]), Addr::from_v4([5, 6, 7, 8]), proto))
        };
        let got = icmp_error::parse_embedded_v4(&p).map(|e| (e.tuple.src, e.tuple.dst, e.tuple.protocol));
        prop_assert_eq!(got, expected);
        let mut q = vec![0x60, 0, 0, 0, 0, 0, proto, 64];
        q.extend_from_slice(&[0xfd; 32]);
        q.extend_from_slice(&tail);
        q.truncate(cut);
        // Protocol 1 inside IPv6 is not ICMPv6: tracked by addresses alone.
        let needs_transport = matches!(proto, 6 | 17 | 58);
        let expected = if q.len() < 40 || (needs_transport && q.len() < 48) {
            Err(ParseError::TruncatedEmbeddedHeader)
        } else {
            Ok((Addr::from_v6([0xfd; 16]), proto))
        };
        let got = icmp_error::parse_embedded_v6(&q).map(|e| (e.tuple.src, e.tuple.protocol));
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn checksum_inserted_validates(mut data in prop::collection::vec(any::<u8>(), 2..256), pos in any::<prop::sample::Index>()) {
        // The checksum field sits at an even offset, as in every header.
        let words = data.len() / 2;
        let at = pos.index(words) * 2;
        data[at] = 0;
        data[at + 1] = 0;
        let c = internet_checksum(&data);
        data[at..at + 2].copy_from_slice(&c.to_be_bytes());
        prop_assert!(checksum_is_valid(&data));
    }

    #[test]
    fn checksum_detects_single_bit_errors(mut data in prop::collection::vec(any::<u8>(), 2..256), byte in any::<prop::sample::Index>(), bit in 0u8..8) {
        data[0] = 0;
        data[1] = 0;
        let c = internet_checksum(&data);
        data[0..2].copy_from_slice(&c.to_be_bytes());
        let i = byte.index(data.len());
        data[i] ^= 1 << bit;
        prop_assert!(!checksum_is_valid(&data));
    }

    #[test]
    fn icmpv6_checksum_inserted_validates(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), mut msg in prop::collection::vec(any::<u8>(), 8..128)) {
        msg[2] = 0;
        msg[3] = 0;
        let c = icmpv6_checksum(&src, &dst, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        prop_assert!(icmpv6_checksum_is_valid(&src, &dst, &msg));
    }

    #[test]
    fn addresses_print_like_std(v6 in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), zeros in any::<u8>()) {
        // Sprinkle zero groups so that compression is exercised.
        let mut b = v6;
        for g in 0..8 {
            if zeros & (1 << g) != 0 {
                b[2 * g] = 0;
                b[2 * g + 1] = 0;
            }
        }
        let mut s = String::new();
        Addr::from_v6(b).write(Family::Ipv6, &mut s).unwrap();
        prop_assert_eq!(s, std::net::Ipv6Addr::from(b).to_string());
        let mut s = String::new();
        Addr::from_v4(v4).write(Family::Ipv4, &mut s).unwrap();
        prop_assert_eq!(s, std::net::Ipv4Addr::from(v4).to_string());
    }

    #[test]
    fn lines_always_format(
        t in any_tuple(),
        secs_left in any::<u32>(),
        unreplied in any::<bool>(),
        assured in any::<bool>(),
        tcp in prop::option::of(prop::sample::select(TcpState::ALL.to_vec())),
        rtt_us in prop::option::of(any::<u32>()),
        use_count in any::<u32>(),
    ) {
        let e = LineEntry { tuple: t, secs_left, unreplied, assured, tcp_state: tcp, rtt_us, use_count };
        let mut s = String::new();
        prop_assert!(write_line(&mut s, &e).is_ok());
        prop_assert!(s.ends_with('\n'));
        prop_assert_eq!(s.matches('\n').count(), 1);
        prop_assert!(["icmp", "udp", "tcp", "icmpv6", "unknown"].contains(&s[..8].trim_end()));
        prop_assert_eq!(&s[8..9], " ");
        prop_assert_eq!(s.contains("[UNREPLIED]"), unreplied);
        prop_assert_eq!(s.contains("[ASSURED]"), assured);
        let head = format!(" {} {} ", t.protocol, secs_left);
        let rtt = rtt_us.map(|us| format!(" rtt={us}")).unwrap_or_default();
        let tail = format!("{rtt} use={use_count}\n");
        prop_assert!(s.contains(&head));
        prop_assert!(s.ends_with(&tail));
        prop_assert_eq!(s.matches("src=").count(), 2);
    }

    #[test]
    fn query_state_invariants(keep in any::<bool>(), ops in prop::collection::vec(any::<bool>(), 1..64)) {
        // true = a request, false = a reply; the entry lives in `entry`.
        let mut entry: Option<IcmpEntryState> = None;
        let (mut requests, mut answered) = (0u32, 0u32);
        for is_request in ops {
            let kind = if is_request { IcmpKind::Request { reply: 0 } } else { IcmpKind::Reply { request: 8 } };
            let lookup = match (&entry, is_request) {
                (None, _) => Lookup::None,
                (Some(e), true) => Lookup::Original(e),
                (Some(e), false) => Lookup::Reply(e),
            };
            let d = classify_query(kind, lookup, keep);
            match d.action {
                QueryAction::Create(e) => {
                    prop_assert!(is_request && entry.is_none());
                    prop_assert_eq!(d.state.name(), "NEW");
                    entry = Some(e);
                    requests = 1;
                    answered = 0;
                }
                QueryAction::Update { entry: e, refresh, destroy } => {
                    prop_assert!(refresh);
                    if is_request {
                        requests += 1;
                        prop_assert!(!destroy);
                    } else {
                        prop_assert_eq!(d.state.name(), "ESTABLISHED");
                        if answered < requests { answered += 1; }
                        prop_assert!(e.replied);
                    }
                    prop_assert_eq!(e.outstanding, requests - answered);
                    prop_assert_eq!(destroy, !keep && !is_request && e.outstanding == 0);
                    entry = if destroy { None } else { Some(e) };
                }
                QueryAction::Nothing => {
                    prop_assert!(!is_request);
                    prop_assert_eq!(d.state.name(), "INVALID");
                    prop_assert!(entry.is_none() || !keep);
                }
            }
        }
    }

    #[test]
    fn rsts_are_checked_against_the_scaled_window(
        (isn_c, isn_s) in (any::<u32>(), any::<u32>()),
        (win_c, win_s) in (1u16.., 1u16..),
        (scale_c, scale_s) in (prop::option::of(0u8..=14), prop::option::of(0u8..=14)),
        offset in any::<u32>(),
        from_server in any::<bool>(),
    ) {
        let seg = |flags, seq, ack, window, wscale| TcpSegment {
            flags: TcpFlags::from_byte(flags), seq, ack, window, wscale, payload_len: 0,
        };
        let (c1, s1) = (isn_c.wrapping_add(1), isn_s.wrapping_add(1));
        let w = TcpWindows::first(&seg(0x02, isn_c, 0, win_c, scale_c));
        let w = w.track(true, &seg(0x12, isn_s, c1, win_s, scale_s), true);
        prop_assert!(w.is_some());
        let w = w.unwrap().track(false, &seg(0x10, c1, s1, win_c, None), true);
        prop_assert!(w.is_some());
        let w = w.unwrap();
        // What the receiver allows the sender past its last byte: the client's window is
        // scaled once both sides announced scaling; the SYN/ACK's window never is.
        let (base, allowed, receiver) = if from_server {
            let shift = match (scale_c, scale_s) {
                (Some(c), Some(_)) => u32::from(c),
                _ => 0,
            };
            (s1, u32::from(win_c) << shift, w.peer(false))
        } else {
            (c1, u32::from(win_s), w.peer(true))
        };
        prop_assert_eq!(w.peer(from_server).maxend, base.wrapping_add(allowed));
        let accepted = w.track(from_server, &seg(0x04, base.wrapping_add(offset), 0, 0, None), false);
        if offset < 1 << 31 {
            prop_assert_eq!(accepted.is_some(), offset <= allowed, "{} {}", offset, allowed);
        } else {
            // Behind the last byte sent: as far as the largest window the receiver advertised.
            prop_assert_eq!(accepted.is_some(), offset.wrapping_neg() <= receiver.maxwin);
        }
        if let Some(after_rst) = accepted {
            prop_assert_eq!(TcpWindows::from_words(&after_rst.to_words()), after_rst);
        }
    }

    #[test]
    fn flow_decisions_are_consistent(
        flags in any::<u8>(),
        (seq, ack, window, payload_len) in (any::<u32>(), any::<u32>(), any::<u16>(), 0u32..2000),
        windows in prop::array::uniform8(any::<u32>()).prop_map(|w| TcpWindows::from_words(&w)),
        lookup in flow_lookup(),
        loose in any::<bool>(),
        which in 0u8..3,
    ) {
        let seg = TcpSegment { flags: TcpFlags::from_byte(flags), seq, ack, window, wscale: None, payload_len };
        let d = match which {
            0 => flow_state::tcp_packet(&seg, lookup, &windows, loose),
            1 => flow_state::udp_packet(lookup),
            _ => flow_state::generic_packet(lookup),
        };
        match d.action {
            // Only a TCP segment outside the windows, neither RST nor FIN, keeps its state.
            FlowAction::Nothing if which == 0 && lookup != FlowLookup::None && flags & 0x05 == 0 => {}
            FlowAction::Nothing => prop_assert_eq!(d.state.name(), "INVALID"),
            FlowAction::Create(u) => {
                prop_assert_eq!(lookup, FlowLookup::None);
                prop_assert_eq!(d.state.name(), "NEW");
                prop_assert!(!u.entry.replied && !u.entry.assured);
                prop_assert_eq!(u.entry.tcp.is_some(), which == 0);
            }
            FlowAction::Update(u) => {
                prop_assert!(lookup != FlowLookup::None);
                if let FlowLookup::Reply(_) = lookup {
                    prop_assert!(u.entry.replied);
                    prop_assert_eq!(d.state.name(), "ESTABLISHED");
                }
                match (which, u.entry.tcp) {
                    (0, Some(_)) => prop_assert_eq!(u.timeout, flow_state::tcp_timeout(&u.entry)),
                    (1, _) => prop_assert_eq!(
                        u.timeout,
                        if u.entry.replied { TimeoutKind::UdpStream } else { TimeoutKind::Udp }
                    ),
                    (2, _) => prop_assert_eq!(u.timeout, TimeoutKind::Generic),
                    _ => {}
                }
            }
        }
        if which == 0 && lookup == FlowLookup::None && flags & 0x04 != 0 {
            prop_assert_eq!(d.state.name(), "INVALID");
        }
    }

    #[test]
    fn errors_never_destroy_replied_or_pmtu(fam in family(), t in any::<u8>(), code in any::<u8>(), replied in any::<bool>()) {
        let d = icmp_error::classify_error(fam, t, code, ErrorLookup::Entry { replied });
        prop_assert_eq!(d.state.name(), "RELATED");
        prop_assert_eq!(d.destroy_entry, !replied && !icmp_types::is_path_mtu_error(fam, t, code));
        let d = icmp_error::classify_error(fam, t, code, ErrorLookup::NoEntry);
        prop_assert_eq!(d.state.name(), "INVALID");
        prop_assert!(!d.destroy_entry);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any chain within the limit is walked to the upper layer (or to a non-first fragment),
    /// whatever its length in bytes; cut anywhere before the walk's end it is truncated,
    /// through a slice or a window of the whole packet alike (nothing past the cut is read);
    /// each header is read once. The same chain in an ICMPv6 error's quote needs the 8 bytes
    /// after it too.
    #[test]
    fn extension_chains_truncated_anywhere(
        chain in extension_chain(ipv6::MAX_EXTENSION_HEADERS),
        non_first in any::<bool>(),
    ) {
        let echo = [128u8, 0, 0, 0, 0, 7, 0, 1];
        let (p, end, protocol, stopped) = ipv6_with_chain(&chain, &echo, non_first);
        let h = ipv6::read(&p[..]).unwrap();
        prop_assert_eq!(h.protocol, protocol);
        prop_assert_eq!(h.l4_offset, end);
        prop_assert_eq!(h.carries_transport_header(), !stopped);
        if !stopped {
            prop_assert_eq!(icmp::read(&h.payload_window(&p[..])).unwrap().icmp_type, 128);
        }
        for cut in 0..=p.len() {
            let got = ipv6::read(&p[..cut]);
            prop_assert_eq!(got.is_err(), cut < end, "cut at {}", cut);
            prop_assert_eq!(ipv6::read(&Window::new(&p[..], 0, cut)), got);
            let recording = Recording { bytes: &p[..cut], reads: Default::default() };
            prop_assert_eq!(ipv6::read(&recording), got);
            let reads = recording.reads.borrow();
            prop_assert!(reads.len() <= 1 + chain.len());
            for pair in reads.windows(2) {
                prop_assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{:?}", reads);
            }
            if got.is_err() {
                prop_assert!(matches!(
                    got,
                    Err(ParseError::TruncatedIpv6Header | ParseError::TruncatedExtensionHeader)
                ));
            }
            let embedded = icmp_error::read_embedded_v6(&Window::new(&p[..], 0, cut));
            let expected = if cut < end {
                Err(ParseError::TruncatedEmbeddedHeader)
            } else if stopped {
                Err(ParseError::EmbeddedFragment)
            } else if cut < p.len() {
                Err(ParseError::TruncatedEmbeddedHeader)
            } else {
                Ok(())
            };
            prop_assert_eq!(embedded.map(|_| ()), expected, "cut at {}", cut);
        }
    }

    /// One header more than the limit is INVALID, however short the chain is in bytes.
    #[test]
    fn extension_chain_over_the_limit(chain in extension_chain(ipv6::MAX_EXTENSION_HEADERS)) {
        let mut chain = chain;
        chain.resize(ipv6::MAX_EXTENSION_HEADERS + 1, (ipv6::NEXTHDR_DEST, 0));
        let (p, _, _, _) = ipv6_with_chain(&chain, &[128, 0, 0, 0, 0, 7, 0, 1], false);
        prop_assert_eq!(ipv6::read(&p[..]), Err(ParseError::TooManyExtensionHeaders));
    }
}

// The table's key codec: a key is its tuple, family included, and the reply key computed
// from a key is the key of the reply tuple.

/// `a.b.c.d` as the IPv4-mapped IPv6 address `::ffff:a.b.c.d`.
fn v4_mapped(v4: [u8; 4]) -> Addr {
    let [a, b, c, d] = v4;
    Addr::from_v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d])
}

proptest! {
    #[test]
    fn key_decodes_to_its_tuple(t in any_tuple()) {
        prop_assert_eq!(Key::of(&t).tuple(), Some(t));
    }

    #[test]
    fn keys_are_equal_exactly_when_tuples_are(a in any_tuple(), b in any_tuple()) {
        prop_assert_eq!(a == b, Key::of(&a) == Key::of(&b));
    }

    #[test]
    fn reply_key_is_key_of_reply(t in any_tuple()) {
        prop_assert_eq!(Key::of(&t).reply(), t.reply().map(|r| Key::of(&r)));
    }

    #[test]
    fn has_reply_is_reply(a in any_tuple(), b in any_tuple(), same in any::<bool>()) {
        let key = Key::of(&a);
        // Half the time the reply itself, so that both answers are reached.
        let wanted = match (same, key.reply()) {
            (true, Some(reply)) => reply,
            _ => Key::of(&b),
        };
        prop_assert_eq!(key.has_reply(&wanted), key.reply() == Some(wanted));
    }

    #[test]
    fn reply_of_reply_key_is_the_original_for_flows(t in any_tuple()) {
        if !matches!(t.l4, L4::Icmp { .. }) {
            let reply = Key::of(&t).reply();
            prop_assert_eq!(reply.and_then(|r| r.reply()), Some(Key::of(&t)));
        }
    }

    #[test]
    fn family_is_in_the_key(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
                            sport in any::<u16>(), dport in any::<u16>()) {
        let v4 = Tuple::ports(Family::Ipv4, Addr::from_v4(src), Addr::from_v4(dst),
                              tuple::IPPROTO_UDP, sport, dport);
        let mapped = Tuple::ports(Family::Ipv6, v4_mapped(src), v4_mapped(dst),
                                  tuple::IPPROTO_UDP, sport, dport);
        prop_assert_ne!(Key::of(&v4), Key::of(&mapped));
        prop_assert_ne!(Key::of(&v4).reply(), Key::of(&mapped).reply());
    }

    #[test]
    fn reply_on_words_is_reply_on_tuples(words in any::<[u32; 10]>(), head in 0usize..4) {
        // Mostly well-formed heads, so that both arms are reached.
        let mut words = words;
        let heads = [0x0411_0200, 0x0601_0100, 0x063a_0100, 0x042f_0300];
        if let (Some(w), Some(h)) = (words.get_mut(0), heads.get(head)) {
            *w = *h;
        }
        let key = Key(words);
        prop_assert_eq!(key.reply(), key.tuple().and_then(|t| t.reply()).map(|r| Key::of(&r)));
    }

    #[test]
    fn words_no_tuple_gives_decode_to_none(words in any::<[u32; 10]>()) {
        if let Some(t) = Key(words).tuple() {
            prop_assert_eq!(Key::of(&t), Key(words));
        }
    }
}

#[test]
fn icmpv6_echo_with_mapped_addresses_and_other_ids_get_other_reply_keys() {
    let src = v4_mapped([10, 7, 0, 2]);
    let dst = v4_mapped([10, 7, 0, 1]);
    let a = Tuple::icmp(Family::Ipv6, src, dst, 128, 0, 1);
    let b = Tuple::icmp(Family::Ipv6, src, dst, 128, 0, 2);
    assert_ne!(Key::of(&a).reply(), Key::of(&b).reply());
    assert!(Key::of(&a).reply().is_some());
}

#[test]
fn self_addressed_flow_has_its_own_key_as_reply() {
    let lo = Addr::from_v4([127, 0, 0, 1]);
    let t = Tuple::ports(Family::Ipv4, lo, lo, tuple::IPPROTO_UDP, 7000, 7000);
    assert_eq!(Key::of(&t).reply(), Some(Key::of(&t)));
}

#[test]
fn reply_key_of_every_icmp_type_is_key_of_reply() {
    for (family, src, dst) in [
        (
            Family::Ipv4,
            Addr::from_v4([10, 0, 0, 1]),
            Addr::from_v4([10, 0, 0, 2]),
        ),
        (
            Family::Ipv6,
            v4_mapped([10, 0, 0, 1]),
            v4_mapped([10, 0, 0, 2]),
        ),
    ] {
        for icmp_type in 0..=u8::MAX {
            let t = Tuple::icmp(family, src, dst, icmp_type, 3, 77);
            assert_eq!(Key::of(&t).reply(), t.reply().map(|r| Key::of(&r)));
        }
    }
}
