// SPDX-License-Identifier: GPL-2.0

//! The invariants the fuzz targets assert, one function per target. The cargo-fuzz targets
//! (`fuzz_targets/*.rs`) and the corpus replay on stable Rust (`tests/fuzz_corpus.rs`) both
//! run these functions, so a corpus file checks in `make check` exactly what it checked
//! while fuzzing. Each function takes any bytes and panics when an invariant breaks.

use std::vec::Vec;

use icmp_ct_proto::addr::{Addr, Family};
use icmp_ct_proto::checksum;
use icmp_ct_proto::decide::{self, Action, Dir, Found, Knobs, Subject};
use icmp_ct_proto::entry_word;
use icmp_ct_proto::flow_state::{self, TcpFlags};
use icmp_ct_proto::icmp_error::{self, Embedded};
use icmp_ct_proto::icmp_types::{self, IcmpKind};
use icmp_ct_proto::key::{Key, KEY_WORDS};
use icmp_ct_proto::packet::Packet;
use icmp_ct_proto::reader::{self, PacketBytes, Window};
use icmp_ct_proto::state::{InvalidReason, State};
use icmp_ct_proto::tcp_window::{TcpSegment, TcpWindows};
use icmp_ct_proto::tuple::{self, Tuple, L4};
use icmp_ct_proto::{icmp, ipv4, ipv6, ParseError};

/// A target's check: panics when an invariant breaks on its input.
pub type Check = fn(&[u8]);

/// Every target: its name (the directory of its corpus) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("ipv4", ipv4),
    ("ipv6", ipv6),
    ("icmp", icmp),
    ("transport", transport),
    ("embedded", embedded),
    ("checksum", checksum),
    ("key", key),
    ("packets", packets),
    ("tracker", tracker),
];

/// `data` with other bytes around it, read through a window that shows only `data`: a parser
/// that gives the same result through it took nothing from beyond the end of its input.
struct Framed {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl Framed {
    fn new(data: &[u8]) -> Self {
        let before = [0xa5u8; 7];
        let mut bytes = before.to_vec();
        bytes.extend_from_slice(data);
        // Bytes that would make a longer parse succeed: a copy of the input, then zeros.
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&[0; 64]);
        Framed {
            bytes,
            start: before.len(),
            end: before.len() + data.len(),
        }
    }

    fn window(&self) -> Window<'_, [u8]> {
        Window::new(&self.bytes[..], self.start, self.end)
    }
}

/// `data` followed by more bytes, in the two ways [`Framed`] puts them.
fn longer(data: &[u8]) -> [Vec<u8>; 2] {
    let mut doubled = data.to_vec();
    doubled.extend_from_slice(data);
    let mut zeros = data.to_vec();
    zeros.extend_from_slice(&[0; 64]);
    [doubled, zeros]
}

/// Packet bytes that record each read they serve and check that it was served exactly when
/// it lay within them.
struct Recording<'a> {
    bytes: &'a [u8],
    reads: std::cell::RefCell<Vec<(usize, usize)>>,
}

impl<'a> Recording<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Recording {
            bytes,
            reads: Default::default(),
        }
    }

    /// The reads served, in order; each one after the end of the one before (every byte is
    /// read at most once).
    fn reads_in_order(&self) -> Vec<(usize, usize)> {
        let reads = self.reads.borrow().clone();
        for pair in reads.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "reads {reads:?}");
        }
        reads
    }
}

impl PacketBytes for Recording<'_> {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn read<'b>(&'b self, offset: usize, buffer: &'b mut [u8]) -> Option<&'b [u8]> {
        let wanted = buffer.len();
        let got = self.bytes.read(offset, buffer);
        let within = offset
            .checked_add(wanted)
            .is_some_and(|end| end <= self.bytes.len());
        assert_eq!(got.is_some(), within, "read of {wanted} at {offset}");
        if let Some(got) = got {
            assert_eq!(got, &self.bytes[offset..offset + got.len()]);
            self.reads.borrow_mut().push((offset, got.len()));
        }
        got
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// IPv4 header: the outcome the RFC 791 fields give, the fields as sent, the same result
/// through a window and with more bytes after a header that parsed.
pub fn ipv4(data: &[u8]) {
    let got = ipv4::read(data);
    let expected = match data {
        d if d.len() < ipv4::MIN_HEADER_LEN => Err(ParseError::TruncatedIpHeader),
        d if d[0] >> 4 != 4 => Err(ParseError::BadIpVersion),
        d if d[0] & 0xf < 5 => Err(ParseError::BadIpHeaderLength),
        d if d.len() < usize::from(d[0] & 0xf) * 4 => Err(ParseError::TruncatedIpHeader),
        _ => Ok(()),
    };
    assert_eq!(got.map(|_| ()), expected);
    assert_eq!(ipv4::read(&Framed::new(data).window()), got);
    let recording = Recording::new(data);
    assert_eq!(ipv4::read(&recording), got);
    assert!(recording.reads_in_order().len() <= 1);
    let Ok(h) = got else { return };
    assert_eq!(h.header_len, usize::from(data[0] & 0xf) * 4);
    assert_eq!(
        (h.src, h.dst),
        (&data[12..16], &data[16..20]).try_into_arrays()
    );
    assert_eq!(
        (h.protocol, h.ttl, h.total_len),
        (data[9], data[8], be16(data, 2))
    );
    assert_eq!(h.fragment_offset, be16(data, 6) & 0x1fff);
    assert_eq!(h.more_fragments, data[6] & 0x20 != 0);
    let payload = h.payload(data);
    assert!(payload.len() <= data.len() - h.header_len);
    assert_eq!(payload, &data[h.header_len..h.header_len + payload.len()]);
    assert_eq!(PacketBytes::len(&h.payload_window(data)), payload.len());
    for more in longer(data) {
        assert_eq!(ipv4::read(&more[..]), got);
    }
}

/// IPv6 header and extension header chain: the fixed fields as sent, a walk that ends within
/// the packet on an upper-layer protocol (or a non-first fragment), each header read once,
/// every cut before the walk's end truncated, the same result through a window and with
/// more bytes after a chain that parsed.
pub fn ipv6(data: &[u8]) {
    let got = ipv6::read(data);
    if data.len() < ipv6::HEADER_LEN {
        assert_eq!(got, Err(ParseError::TruncatedIpv6Header));
    }
    assert_eq!(ipv6::read(&Framed::new(data).window()), got);
    let recording = Recording::new(data);
    assert_eq!(ipv6::read(&recording), got);
    assert!(recording.reads_in_order().len() <= 1 + ipv6::MAX_EXTENSION_HEADERS);
    match got {
        Err(ParseError::TruncatedIpv6Header) => assert!(data.len() < ipv6::HEADER_LEN),
        Err(ParseError::BadIpVersion) => assert_ne!(data[0] >> 4, 6),
        Err(ParseError::TooManyExtensionHeaders) => {
            // Every header is at least 8 bytes long.
            assert!(data.len() >= ipv6::HEADER_LEN + 8 * ipv6::MAX_EXTENSION_HEADERS);
            for more in longer(data) {
                assert_eq!(ipv6::read(&more[..]), got);
            }
        }
        Err(e) => assert_eq!(e, ParseError::TruncatedExtensionHeader),
        Ok(h) => {
            assert_eq!(data[0] >> 4, 6);
            assert_eq!(
                (h.src, h.dst),
                (&data[8..24], &data[24..40]).try_into_arrays()
            );
            assert_eq!((h.payload_len, h.hop_limit), (be16(data, 4), data[7]));
            assert!(h.l4_offset >= ipv6::HEADER_LEN && h.l4_offset <= data.len());
            if h.carries_transport_header() {
                assert!(!ipv6::is_walked_extension_header(h.protocol));
            } else {
                assert!(h.is_fragment());
            }
            let payload = h.payload(data);
            assert_eq!(payload, &data[h.l4_offset..h.l4_offset + payload.len()]);
            for cut in 0..h.l4_offset {
                assert!(ipv6::read(&data[..cut]).is_err(), "cut at {cut}");
            }
            for more in longer(data) {
                assert_eq!(ipv6::read(&more[..]), got);
            }
        }
    }
}

/// ICMP header: 8 bytes as sent, identifier and sequence number from bytes 4-7.
pub fn icmp(data: &[u8]) {
    let got = icmp::read(data);
    assert_eq!(icmp::read(&Framed::new(data).window()), got);
    assert_eq!(got.is_ok(), data.len() >= icmp::HEADER_LEN);
    let Ok(h) = got else {
        assert_eq!(got, Err(ParseError::TruncatedIcmpHeader));
        return;
    };
    assert_eq!(
        (h.icmp_type, h.code, h.checksum),
        (data[0], data[1], be16(data, 2))
    );
    assert_eq!((h.id(), h.sequence()), (be16(data, 4), be16(data, 6)));
    assert_eq!(icmp::payload(data), &data[8..]);
    for more in longer(data) {
        assert_eq!(icmp::read(&more[..]), got);
    }
}

/// Transport fields of a tuple and the TCP header, against the bytes they come from.
pub fn transport(data: &[u8]) {
    let protocols = [0, 1, 6, 17, 47, 58, 255, data.first().copied().unwrap_or(0)];
    for family in [Family::Ipv4, Family::Ipv6] {
        for protocol in protocols {
            let got = tuple::l4_from_transport(family, protocol, data);
            let expected = if protocol == family.icmp_protocol() {
                match data {
                    [t, c, _, _, i0, i1, _, _, ..] => Ok(L4::Icmp {
                        icmp_type: *t,
                        code: *c,
                        id: u16::from_be_bytes([*i0, *i1]),
                    }),
                    _ => Err(ParseError::TruncatedIcmpHeader),
                }
            } else if protocol == 6 || protocol == 17 {
                match data {
                    [s0, s1, d0, d1, _, _, _, _, ..] => Ok(L4::Ports {
                        sport: u16::from_be_bytes([*s0, *s1]),
                        dport: u16::from_be_bytes([*d0, *d1]),
                    }),
                    _ => Err(ParseError::TruncatedL4Header),
                }
            } else {
                Ok(L4::None)
            };
            assert_eq!(got, expected, "{family:?} protocol {protocol}");
        }
    }
    let got = flow_state::parse_tcp(data);
    let data_offset = data.get(12).map_or(0, |b| usize::from(b >> 4));
    match got {
        Err(ParseError::TruncatedL4Header) => assert!(data.len() < 20),
        Err(ParseError::BadTcpDataOffset) => {
            assert!(data.len() >= 20 && (data_offset < 5 || data_offset * 4 > data.len()))
        }
        Err(e) => panic!("parse_tcp: {e:?}"),
        Ok(h) => {
            assert!(data_offset >= 5 && h.header_len == data_offset * 4);
            assert!(h.header_len <= data.len());
            assert_eq!((h.sport, h.dport), (be16(data, 0), be16(data, 2)));
            let word = |at: usize| {
                u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
            };
            assert_eq!((h.seq, h.ack_seq), (word(4), word(8)));
            assert_eq!(h.flags, TcpFlags::from_byte(data[13]));
            for more in longer(data) {
                assert_eq!(flow_state::parse_tcp(&more), got);
            }
        }
    }
}

/// The packet embedded in an ICMP error, of either family: its tuple as the embedded headers
/// give it, the anti-spoofing and error-in-error checks, the key and reply properties of the
/// tuple, the same result through a window and with more bytes after an error that parsed.
pub fn embedded(data: &[u8]) {
    for family in [Family::Ipv4, Family::Ipv6] {
        let read = |bytes: &[u8]| match family {
            Family::Ipv4 => icmp_error::read_embedded_v4(bytes),
            Family::Ipv6 => icmp_error::read_embedded_v6(bytes),
        };
        let got = read(data);
        let framed = Framed::new(data);
        let through_window = match family {
            Family::Ipv4 => icmp_error::read_embedded_v4(&framed.window()),
            Family::Ipv6 => icmp_error::read_embedded_v6(&framed.window()),
        };
        assert_eq!(through_window, got);
        // The embedded IP header, read as the packet's own: where its transport header is.
        let header = match family {
            Family::Ipv4 => ipv4::read(data).map(|h| {
                let t = h.carries_transport_header();
                (
                    Addr::from_v4(h.src),
                    Addr::from_v4(h.dst),
                    h.protocol,
                    h.header_len,
                    t,
                )
            }),
            Family::Ipv6 => ipv6::read(data).map(|h| {
                let t = h.carries_transport_header();
                (
                    Addr::from_v6(h.src),
                    Addr::from_v6(h.dst),
                    h.protocol,
                    h.l4_offset,
                    t,
                )
            }),
        };
        let Ok(e) = got else {
            match (header, got) {
                (
                    Err(_),
                    Err(ParseError::TruncatedEmbeddedHeader | ParseError::BadEmbeddedHeader),
                ) => {}
                (Ok((.., false)), Err(ParseError::EmbeddedFragment)) => {}
                (
                    Ok((_, _, protocol, l4_offset, true)),
                    Err(ParseError::TruncatedEmbeddedHeader),
                ) => {
                    assert!(tuple::l4_from_transport(family, protocol, &data[l4_offset..]).is_err())
                }
                (header, got) => panic!("{family:?}: header {header:?}, embedded {got:?}"),
            }
            continue;
        };
        let Ok((src, dst, protocol, l4_offset, true)) = header else {
            panic!("{family:?}: embedded {e:?} from header {header:?}");
        };
        let l4 = tuple::l4_from_transport(family, protocol, &data[l4_offset..]);
        let expected = Tuple {
            family,
            src,
            dst,
            protocol,
            l4: l4.unwrap(),
        };
        assert_eq!(e.tuple, expected);
        let is_error = matches!(e.tuple.l4, L4::Icmp { icmp_type, .. }
            if protocol == family.icmp_protocol() && icmp_types::kind(family, icmp_type).is_error());
        assert_eq!(e.is_icmp_error, is_error);
        embedded_checks(&e);
        tuple_properties(&e.tuple);
        for more in longer(data) {
            assert_eq!(read(&more), got);
        }
    }
}

/// An error goes to the embedded packet's sender and is not about an error; to any other
/// address it is spoofed.
fn embedded_checks(e: &Embedded) {
    let mut other = e.sender().octets();
    other[3] ^= 1;
    let other = match e.tuple.family {
        Family::Ipv4 => Addr::from_v4([other[0], other[1], other[2], other[3]]),
        Family::Ipv6 => Addr::from_v6(other),
    };
    assert!(icmp_error::outer_destination_matches(e.sender(), e));
    assert!(!icmp_error::outer_destination_matches(other, e));
    let (to_sender, to_other) = if e.is_icmp_error {
        (
            Err(InvalidReason::ErrorInError),
            Err(InvalidReason::ErrorInError),
        )
    } else {
        (Ok(()), Err(InvalidReason::SpoofedError))
    };
    assert_eq!(icmp_error::check_embedded(e.sender(), e), to_sender);
    assert_eq!(icmp_error::check_embedded(other, e), to_other);
}

/// A tuple's key gives the tuple back; the reply of its reply (for ICMP: the inverse of its
/// reply) is the original, as tuples and as keys.
fn tuple_properties(t: &Tuple) {
    let key = Key::of(t);
    assert_eq!(key.tuple(), Some(*t));
    assert_eq!(key.reply(), t.reply().map(|r| Key::of(&r)));
    if let Some(r) = t.reply() {
        assert_eq!((r.src, r.dst), (t.dst, t.src));
        assert_eq!(r.invert(), Some(*t));
        if !matches!(t.l4, L4::Icmp { .. }) {
            assert_eq!(r.reply(), Some(*t));
            assert_eq!(Key::of(&r).reply(), Some(key));
        }
    }
    if let Some(i) = t.invert() {
        assert_eq!(i.invert(), Some(*t));
    }
}

/// The table's key as the compare callback meets it, ten words from any bytes: words that
/// decode to a tuple are that tuple's key, and the reply key computed on the words is the key
/// of that tuple's reply; no other words have a reply key.
pub fn key(data: &[u8]) {
    let mut words = [0u32; KEY_WORDS];
    for (word, bytes) in words.iter_mut().zip(data.chunks(4)) {
        let mut b = [0u8; 4];
        b[..bytes.len()].copy_from_slice(bytes);
        *word = u32::from_be_bytes(b);
    }
    let key = Key(words);
    let tuple = key.tuple();
    assert_eq!(
        key.reply(),
        tuple.and_then(|t| t.reply()).map(|r| Key::of(&r))
    );
    if let Some(t) = tuple {
        assert_eq!(Key::of(&t), key);
        tuple_properties(&t);
    }
}

/// The one's complement sum of `bytes` as 16-bit big-endian words (an odd last byte padded),
/// folded to 16 bits the plain way: sum in 64 bits, then reduce modulo 0xffff, where a
/// nonzero multiple of 0xffff is 0xffff (one's complement's negative zero).
fn reference_sum(bytes: &[u8]) -> u16 {
    let sum: u64 = bytes
        .chunks(2)
        .map(|w| u64::from(w[0]) << 8 | u64::from(w.get(1).copied().unwrap_or(0)))
        .sum();
    match (sum, sum % 0xffff) {
        (0, _) => 0,
        (_, 0) => 0xffff,
        (_, r) => r as u16,
    }
}

/// The Internet checksum and the ICMPv6 one against [`reference_sum`]; a checksum stored in
/// its field validates, and the next value there does not.
pub fn checksum(data: &[u8]) {
    let sum = reference_sum(data);
    assert_eq!(checksum::internet_checksum(data), !sum);
    assert_eq!(checksum::checksum_is_valid(data), sum == 0xffff);
    if let Some((addresses, message)) = data.split_first_chunk::<32>() {
        let (src, dst) = addresses.split_at(16);
        let (src, dst): ([u8; 16], [u8; 16]) = (src.try_into().unwrap(), dst.try_into().unwrap());
        let mut pseudo = Vec::from(*addresses);
        pseudo.extend_from_slice(&(message.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(message);
        let sum = reference_sum(&pseudo);
        assert_eq!(checksum::icmpv6_checksum(&src, &dst, message), !sum);
        assert_eq!(
            checksum::icmpv6_checksum_is_valid(&src, &dst, message),
            sum == 0xffff
        );
        if message.len() >= 4 {
            let mut m = message.to_vec();
            m[2..4].fill(0);
            let c = checksum::icmpv6_checksum(&src, &dst, &m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            assert!(checksum::icmpv6_checksum_is_valid(&src, &dst, &m));
            let wrong = c.wrapping_add(1);
            // 0 and 0xffff are the same one's complement value.
            if !(c == 0xffff && wrong == 0) {
                m[2..4].copy_from_slice(&wrong.to_be_bytes());
                assert!(!checksum::icmpv6_checksum_is_valid(&src, &dst, &m));
            }
        }
    }
    if data.len() >= 2 {
        let mut d = data.to_vec();
        d[..2].fill(0);
        let c = checksum::internet_checksum(&d);
        d[..2].copy_from_slice(&c.to_be_bytes());
        assert!(checksum::checksum_is_valid(&d));
    }
}

/// What the tracker makes of one packet, as far as the model table goes.
#[derive(Debug, PartialEq)]
enum Parsed {
    Fragment,
    Invalid,
    Query {
        tuple: Tuple,
        kind: IcmpKind,
    },
    Error {
        embedded: Tuple,
        family: Family,
        icmp_type: u8,
        code: u8,
    },
    Flow {
        tuple: Tuple,
        tcp: Option<TcpSegment>,
    },
}

/// The module's own parse of `bytes` (`Packet::parse`), the family from the version nibble.
fn parse_packet<R: PacketBytes + ?Sized>(bytes: &R) -> Parsed {
    let family = match reader::array::<1, _>(bytes, 0) {
        Some([b]) if b >> 4 == 6 => Family::Ipv6,
        _ => Family::Ipv4,
    };
    match Packet::parse(family, bytes) {
        Packet::Fragment { .. } => Parsed::Fragment,
        Packet::Invalid { .. } | Packet::NotTracked => Parsed::Invalid,
        Packet::Icmp { tuple, kind, .. } => Parsed::Query { tuple, kind },
        Packet::IcmpError {
            embedded,
            icmp_type,
            code,
            ..
        } => Parsed::Error {
            embedded,
            family,
            icmp_type,
            code,
        },
        Packet::Flow { tuple, tcp } => Parsed::Flow { tuple, tcp },
    }
}

/// One entry of the model table: its two keys and its state word.
struct Entry {
    original: Key,
    reply: Key,
    word: u64,
    windows: Option<TcpWindows>,
    icmp: bool,
}

/// A table driven by the real decision: packets in, entries created, updated and removed as
/// `decide` says, with every decision checked against the table it was made on.
#[derive(Default)]
struct Tracker {
    entries: Vec<Entry>,
    knobs: Knobs,
}

impl Tracker {
    fn find(&self, t: &Tuple) -> Option<(usize, Dir)> {
        let key = Key::of(t);
        self.entries.iter().enumerate().find_map(|(i, e)| {
            if e.original == key {
                Some((i, Dir::Original))
            } else if e.reply == key {
                Some((i, Dir::Reply))
            } else {
                None
            }
        })
    }

    fn packet(&mut self, parsed: Parsed, local: bool) {
        match parsed {
            Parsed::Fragment | Parsed::Invalid => {}
            Parsed::Query { tuple, kind } => {
                tuple_properties(&tuple);
                self.step(
                    &Subject::Query {
                        tuple: &tuple,
                        kind,
                    },
                    &tuple,
                );
            }
            Parsed::Flow { tuple, tcp } => {
                tuple_properties(&tuple);
                self.step(&Subject::Flow { tuple: &tuple, tcp }, &tuple);
            }
            Parsed::Error {
                embedded,
                family,
                icmp_type,
                code,
            } => {
                tuple_properties(&embedded);
                let subject = Subject::Error {
                    family,
                    icmp_type,
                    code,
                    local,
                };
                self.step(&subject, &embedded);
            }
        }
    }

    /// Decides `subject`, whose entry is that of `looked_up`, checks the decision and
    /// applies it.
    fn step(&mut self, subject: &Subject<'_>, looked_up: &Tuple) {
        let found = self.find(looked_up);
        let view = found.map(|(i, dir)| Found {
            dir,
            word: self.entries[i].word,
            windows: self.entries[i].windows,
        });
        let d = decide::decide(subject, view.as_ref(), &self.knobs);
        if let Subject::Error {
            family,
            icmp_type,
            code,
            local,
        } = *subject
        {
            // An error is RELATED exactly when the packet it embeds is tracked (or this host
            // reports on a packet it refused), and only an unreplied entry is ended by it.
            assert_eq!(d.state == State::Related, found.is_some() || local, "{d:?}");
            if found.is_none() && !local {
                assert_eq!(d.state, State::Invalid(InvalidReason::NoRelatedEntry));
            }
            assert!(
                matches!(d.action, Action::Nothing | Action::Destroy),
                "{d:?}"
            );
            if d.action == Action::Destroy {
                let (i, _) = found.expect("Destroy without an entry");
                assert!(entry_word::is_unreplied(self.entries[i].word));
                assert!(!icmp_types::is_path_mtu_error(family, icmp_type, code));
            }
        }
        if let Subject::Flow { tcp: None, .. } = subject {
            // UDP and other protocols: NEW until a reply was seen, ESTABLISHED from the reply
            // on, in both directions.
            let established = found.is_some_and(|(i, dir)| {
                dir == Dir::Reply || !entry_word::is_unreplied(self.entries[i].word)
            });
            let expected = if established {
                State::Established
            } else {
                State::New
            };
            assert_eq!(d.state, expected);
        }
        let subject_is_query = matches!(subject, Subject::Query { .. });
        match d.action {
            Action::Nothing => {}
            Action::Create { word, windows, .. } => {
                assert!(found.is_none(), "Create over an entry: {d:?}");
                assert_eq!(d.state, State::New);
                assert!(!matches!(subject, Subject::Error { .. }));
                let reply = looked_up.reply().expect("an entry without a reply tuple");
                let entry = Entry {
                    original: Key::of(looked_up),
                    reply: Key::of(&reply),
                    word,
                    windows,
                    icmp: subject_is_query,
                };
                // Neither key is in the table yet (no entry could be found by both).
                assert!(self.find(&reply).is_none(), "reply key clashes: {reply:?}");
                check_entry(&entry);
                self.entries.push(entry);
            }
            Action::Update { word, windows, .. } => {
                let (i, _) = found.expect("Update without an entry");
                assert!(!matches!(subject, Subject::Error { .. }));
                self.entries[i].word = word;
                if windows.is_some() {
                    self.entries[i].windows = windows;
                }
                check_entry(&self.entries[i]);
            }
            Action::Close => {
                let (i, dir) = found.expect("Close without an entry");
                assert!(subject_is_query && dir == Dir::Reply, "{d:?} {dir:?}");
                self.entries.swap_remove(i);
            }
            Action::Destroy => {
                let (i, _) = found.expect("Destroy without an entry");
                self.entries.swap_remove(i);
            }
        }
    }
}

/// An entry's word is one `decide` can have made, and each of its keys is the other's reply.
fn check_entry(e: &Entry) {
    if e.icmp {
        assert_eq!(
            entry_word::pack_icmp(entry_word::unpack_icmp(e.word)),
            e.word
        );
    } else {
        assert_eq!(
            entry_word::pack_flow(entry_word::unpack_flow(e.word)),
            e.word
        );
    }
    assert_eq!(e.original.reply(), Some(e.reply));
    if !e.icmp {
        assert_eq!(e.reply.reply(), Some(e.original));
    }
}

/// A sequence of raw IPv4 and IPv6 packets (each a 2-byte length, then its bytes; the version
/// nibble picks the family; 32 at most) through the parsers and the model table.
pub fn packets(data: &[u8]) {
    let mut tracker = Tracker::default();
    let mut rest = data;
    for _ in 0..32 {
        let Some(([l0, l1], tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]) & 0x7ff).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        let parsed = parse_packet(packet);
        assert_eq!(parse_packet(&Framed::new(packet).window()), parsed);
        tracker.knobs.keep_replied = l0 & 0x80 != 0;
        tracker.knobs.tcp_loose = l0 & 0x40 == 0;
        tracker.packet(parsed, l0 & 0x20 != 0);
    }
}

/// Tuples from a small set of addresses, identifiers and ports, so that packets meet each
/// other's entries; 4 bytes per packet, 64 packets at most.
pub fn tracker(data: &[u8]) {
    const PORTS: [u16; 4] = [53, 1025, 7, 80];
    let mut tracker = Tracker::default();
    for op in data.chunks_exact(4).take(64) {
        let [b0, b1, b2, b3] = [op[0], op[1], op[2], op[3]];
        let family = if b0 & 0x08 != 0 {
            Family::Ipv6
        } else {
            Family::Ipv4
        };
        let address = |host: u8| match family {
            Family::Ipv4 => Addr::from_v4([10, 0, 0, host]),
            Family::Ipv6 => Addr::from_v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host]),
        };
        let (mut src, mut dst) = (address(1 + (b2 >> 4 & 1)), address(1 + (b2 >> 5 & 1)));
        if b0 & 0x10 != 0 {
            core::mem::swap(&mut src, &mut dst);
        }
        let (requests, replies, errors): (&[u8], &[u8], &[u8]) = match family {
            Family::Ipv4 => (
                &[8, 13, 15, 17, 42],
                &[0, 14, 16, 18, 43],
                &[3, 4, 5, 11, 12],
            ),
            Family::Ipv6 => (&[128, 139], &[129, 140], &[1, 2, 3, 4]),
        };
        let pick = |set: &[u8], b: u8| set[usize::from(b) % set.len()];
        let id = PORTS[usize::from(b2 & 3)];
        let ports = (PORTS[usize::from(b2 & 3)], PORTS[usize::from(b2 >> 2 & 3)]);
        // A tuple of the kind in bits 0-1 of `k`: query, UDP, TCP or generic.
        let flow = |k: u8, icmp_type: u8| match k & 3 {
            0 => Tuple::icmp(family, src, dst, icmp_type, b3 & 1, id),
            1 => Tuple::ports(family, src, dst, tuple::IPPROTO_UDP, ports.0, ports.1),
            2 => Tuple::ports(family, src, dst, tuple::IPPROTO_TCP, ports.0, ports.1),
            _ => Tuple::generic(family, src, dst, 47),
        };
        let parsed = match b0 & 7 {
            0 => {
                let tuple = flow(0, pick(requests, b1));
                Parsed::Query {
                    tuple,
                    kind: icmp_types::kind(family, pick(requests, b1)),
                }
            }
            1 => {
                let tuple = flow(0, pick(replies, b1));
                Parsed::Query {
                    tuple,
                    kind: icmp_types::kind(family, pick(replies, b1)),
                }
            }
            2 => Parsed::Query {
                tuple: flow(0, b1),
                kind: icmp_types::kind(family, b1),
            },
            3 => Parsed::Flow {
                tuple: flow(1, 0),
                tcp: None,
            },
            4 => Parsed::Flow {
                tuple: flow(2, 0),
                tcp: Some(fuzzed_segment(b1, b3)),
            },
            5 => Parsed::Flow {
                tuple: flow(3, 0),
                tcp: None,
            },
            6 => Parsed::Error {
                embedded: flow(b1, pick(requests, b1 >> 2)),
                family,
                icmp_type: pick(errors, b3 >> 1),
                code: b3 >> 4 & 7,
            },
            _ => {
                tracker.knobs.keep_replied = b1 & 1 != 0;
                tracker.knobs.tcp_loose = b1 & 2 != 0;
                continue;
            }
        };
        tracker.packet(parsed, b3 & 0x80 != 0);
    }
}

/// A segment with the flags of `flags` and, from `b3`, sequence numbers spread so that
/// some land in the peer's window and some far outside it.
fn fuzzed_segment(flags: u8, b3: u8) -> TcpSegment {
    let seq = u32::from(b3 & 0x7f).wrapping_mul(0x0300_0000);
    TcpSegment {
        flags: TcpFlags::from_byte(flags),
        seq,
        ack: seq.rotate_left(8),
        window: 0xffff,
        wscale: (flags & 0x02 != 0).then_some(b3 & 0x0f),
        payload_len: u32::from(b3 & 0x03) * 100,
    }
}

/// Two slices as two arrays, to compare header fields with the bytes they came from.
trait TryIntoArrays<A, B> {
    fn try_into_arrays(self) -> (A, B);
}

impl<const N: usize> TryIntoArrays<[u8; N], [u8; N]> for (&[u8], &[u8]) {
    fn try_into_arrays(self) -> ([u8; N], [u8; N]) {
        (self.0.try_into().unwrap(), self.1.try_into().unwrap())
    }
}
