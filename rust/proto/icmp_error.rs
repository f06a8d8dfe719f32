// SPDX-License-Identifier: GPL-2.0

//! ICMP errors: the embedded packet, the anti-spoofing check and what the
//! error does to the entry it is about.
//!
//! "ICMP replies will very often be recognized as RELATED to original
//! connections or connection attempts." An error carries the IP header of
//! the packet it is about plus at least the first 8 bytes of that packet's
//! payload; the tracker rebuilds that packet's tuple and looks it up in
//! either direction.

use super::addr::{Addr, Family};
use super::error::ParseError;
use super::icmp_types::{self, IcmpKind};
use super::ipv4;
use super::ipv6;
use super::reader::{self, PacketBytes};
use super::state::{InvalidReason, State};
use super::tuple::{self, Tuple, L4};

/// The packet embedded in an ICMP error.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Embedded {
    /// Its tuple as its sender sent it (look it up in both directions).
    pub tuple: Tuple,
    /// Whether it is itself an ICMP error (then the outer error is INVALID).
    pub is_icmp_error: bool,
}

impl Embedded {
    /// The address that sent the embedded packet.
    pub fn sender(&self) -> Addr {
        self.tuple.src
    }
}

/// How many bytes of the embedded packet's payload an error must carry (RFC 792), and all
/// the tracker reads of them: ports, or ICMP type, code and id.
const EMBEDDED_TRANSPORT_LEN: usize = 8;

/// The embedded packet from its addresses and protocol, reading its transport header at
/// `l4_offset` of `payload` when the protocol needs it.
fn embedded_from<R: PacketBytes + ?Sized>(
    family: Family,
    src: Addr,
    dst: Addr,
    protocol: u8,
    payload: &R,
    l4_offset: usize,
) -> Result<Embedded, ParseError> {
    let mut buffer = [0u8; EMBEDDED_TRANSPORT_LEN];
    let l4 = reader::prefix(payload, l4_offset, &mut buffer);
    let l4 = tuple::l4_from_transport(family, protocol, l4)
        .map_err(|_| ParseError::TruncatedEmbeddedHeader)?;
    let is_icmp_error = match l4 {
        L4::Icmp { icmp_type, .. } => icmp_types::kind(family, icmp_type) == IcmpKind::Error,
        _ => false,
    };
    Ok(Embedded {
        tuple: Tuple {
            family,
            src,
            dst,
            protocol,
            l4,
        },
        is_icmp_error,
    })
}

/// Parses the payload of an IPv4 ICMP error (a slice; see [`read_embedded_v4`]).
pub fn parse_embedded_v4(payload: &[u8]) -> Result<Embedded, ParseError> {
    read_embedded_v4(payload)
}

/// Reads the payload of an IPv4 ICMP error (the bytes after its 8-byte header): the
/// embedded IPv4 header with its options, then the first 8 bytes of its payload when its
/// protocol needs them (TCP and UDP ports, ICMP type, code and id). A non-first fragment
/// carries no transport header and is an error.
pub fn read_embedded_v4<R: PacketBytes + ?Sized>(payload: &R) -> Result<Embedded, ParseError> {
    let ip = ipv4::read(payload).map_err(|e| match e {
        ParseError::TruncatedIpHeader => ParseError::TruncatedEmbeddedHeader,
        _ => ParseError::BadEmbeddedHeader,
    })?;
    if !ip.carries_transport_header() {
        return Err(ParseError::EmbeddedFragment);
    }
    // Not bounded by total_len: that is the original packet's length.
    embedded_from(
        Family::Ipv4,
        Addr::from_v4(ip.src),
        Addr::from_v4(ip.dst),
        ip.protocol,
        payload,
        ip.header_len,
    )
}

/// Parses the payload of an ICMPv6 error (a slice; see [`read_embedded_v6`]).
pub fn parse_embedded_v6(payload: &[u8]) -> Result<Embedded, ParseError> {
    read_embedded_v6(payload)
}

/// Reads the payload of an ICMPv6 error (after its 8-byte header): the embedded IPv6
/// header and extension headers, then the first 8 bytes of the upper-layer header when its
/// protocol needs them.
pub fn read_embedded_v6<R: PacketBytes + ?Sized>(payload: &R) -> Result<Embedded, ParseError> {
    let ip = ipv6::read(payload).map_err(|e| match e {
        ParseError::BadIpVersion | ParseError::TooManyExtensionHeaders => {
            ParseError::BadEmbeddedHeader
        }
        _ => ParseError::TruncatedEmbeddedHeader,
    })?;
    if !ip.carries_transport_header() {
        return Err(ParseError::EmbeddedFragment);
    }
    embedded_from(
        Family::Ipv6,
        Addr::from_v6(ip.src),
        Addr::from_v6(ip.dst),
        ip.protocol,
        payload,
        ip.l4_offset,
    )
}

/// ICMPv6 redirect (RFC 4861 4.5).
pub const ICMPV6_REDIRECT: u8 = 137;

/// A redirect's ICMPv6 header, target and destination address: where its options start.
const REDIRECT_OPTIONS_OFFSET: usize = 8 + 16 + 16;

/// The option that carries the redirected packet (RFC 4861 4.6.3) after 8 bytes of its own.
const ND_OPT_REDIRECTED_HEADER: u8 = 4;
const ND_OPT_REDIRECTED_HEADER_LEN: usize = 8;

/// Whether `addr` is link-local as the kernel's `ipv6_addr_type` says: fe80::/10 unicast or
/// link-local scope multicast.
fn is_link_local_v6(addr: Addr) -> bool {
    let [first, second, ..] = addr.octets();
    (first == 0xfe && second & 0xc0 == 0x80) || (first == 0xff && second & 0x0f == 0x02)
}

/// Reads the packet an ICMPv6 redirect (`message`, from its ICMPv6 header on) is about,
/// under the conditions of nf_conntrack's `nf_conntrack_icmpv6_redirect`: code 0, hop limit
/// 255 and a link-local source (RFC 4861 8.1: only a neighbouring router sends one), and a
/// redirected-header option first. Otherwise the redirect is INVALID, as nf_conntrack makes
/// it.
pub fn read_redirect<R: PacketBytes + ?Sized>(
    message: &R,
    code: u8,
    hop_limit: u8,
    src: Addr,
) -> Result<Embedded, InvalidReason> {
    if code != 0 || hop_limit != 255 || !is_link_local_v6(src) {
        return Err(InvalidReason::BadRedirect);
    }
    match reader::array::<2, _>(message, REDIRECT_OPTIONS_OFFSET) {
        Some([ND_OPT_REDIRECTED_HEADER, len]) if len != 0 => {}
        _ => return Err(InvalidReason::BadRedirect),
    }
    let start = REDIRECT_OPTIONS_OFFSET.saturating_add(ND_OPT_REDIRECTED_HEADER_LEN);
    let packet = reader::Window::new(message, start, message.len());
    Ok(read_embedded_v6(&packet)?)
}

/// Anti-spoofing: the error must go to the address that sent the embedded
/// packet.
pub fn outer_destination_matches(outer_dst: Addr, embedded: &Embedded) -> bool {
    outer_dst == embedded.sender()
}

/// The checks on the embedded packet before any lookup: an error about an
/// error is INVALID, and so is an error not addressed to the sender of the
/// packet it is about.
pub fn check_embedded(outer_dst: Addr, embedded: &Embedded) -> Result<(), InvalidReason> {
    if embedded.is_icmp_error {
        Err(InvalidReason::ErrorInError)
    } else if !outer_destination_matches(outer_dst, embedded) {
        Err(InvalidReason::SpoofedError)
    } else {
        Ok(())
    }
}

/// What the lookup of the embedded tuple found.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum ErrorLookup {
    /// No entry, in either direction.
    NoEntry,
    /// An entry of any protocol; `replied` when it has seen a reply.
    Entry {
        /// The entry has seen a reply (is not `[UNREPLIED]`).
        replied: bool,
    },
}

/// The result of classifying an ICMP error.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ErrorDecision {
    /// RELATED, or INVALID when no entry matches.
    pub state: State,
    /// Destroy the entry once the error has passed the last hook.
    pub destroy_entry: bool,
}

/// Classifies an ICMP error whose embedded packet passed
/// [`check_embedded`].
///
/// An error about a tracked entry is RELATED. If that entry is still
/// `[UNREPLIED]`, it is destroyed once the error has passed the last hook
/// ("the firewall has destroyed the connection tracking entry since it
/// knows this was an error message"), except for path-MTU messages, which
/// never destroy. An entry that has seen a reply is never destroyed by an
/// error. No entry: INVALID.
pub fn classify_error(
    family: Family,
    icmp_type: u8,
    code: u8,
    lookup: ErrorLookup,
) -> ErrorDecision {
    match lookup {
        ErrorLookup::NoEntry => ErrorDecision {
            state: State::Invalid(InvalidReason::NoRelatedEntry),
            destroy_entry: false,
        },
        ErrorLookup::Entry { replied } => ErrorDecision {
            state: State::Related,
            destroy_entry: !replied && !icmp_types::is_path_mtu_error(family, icmp_type, code),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];
    const ROUTER: [u8; 4] = [10, 0, 0, 254];

    fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8], ihl: u8) -> Vec<u8> {
        let hl = ihl as usize * 4;
        let mut p = std::vec![0u8; hl];
        p[0] = 0x40 | ihl;
        p[2..4].copy_from_slice(&((hl + l4.len()) as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let c = super::super::checksum::internet_checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    fn icmp4(t: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut m = std::vec![t, code, 0, 0];
        m.extend_from_slice(&rest);
        m.extend_from_slice(payload);
        let c = super::super::checksum::internet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    /// A full IPv4 packet carrying an ICMP error about `inner`.
    fn error_packet(from: [u8; 4], to: [u8; 4], t: u8, code: u8, inner: &[u8]) -> Vec<u8> {
        ip4(from, to, 1, &icmp4(t, code, [0; 4], inner), 5)
    }

    /// Parses a whole packet as the tracker would: outer IPv4, ICMP header
    /// with checksum, embedded packet, checks.
    fn outer(pkt: &[u8]) -> Result<Embedded, InvalidReason> {
        let ip = ipv4::parse(pkt)?;
        let body = ip.payload(pkt);
        let h = super::super::icmp::parse(body)?;
        if !super::super::checksum::checksum_is_valid(body) {
            return Err(InvalidReason::BadChecksum);
        }
        assert!(icmp_types::kind(Family::Ipv4, h.icmp_type).is_error());
        let e = parse_embedded_v4(super::super::icmp::payload(body))?;
        check_embedded(Addr::from_v4(ip.dst), &e)?;
        Ok(e)
    }

    #[test]
    fn udp_port_unreachable() {
        let udp = [0x04, 0x01, 0x00, 0x89, 0, 8, 0, 0];
        let inner = ip4(A, B, 17, &udp, 5);
        let pkt = error_packet(B, A, 3, 3, &inner);
        let e = outer(&pkt).unwrap();
        assert_eq!(
            e.tuple,
            Tuple::ports(
                Family::Ipv4,
                Addr::from_v4(A),
                Addr::from_v4(B),
                17,
                1025,
                137
            )
        );
        assert!(!e.is_icmp_error);
        assert_eq!(e.sender(), Addr::from_v4(A));
    }

    #[test]
    fn tcp_with_options_from_router() {
        // Embedded header with 4 bytes of options; only 8 bytes of TCP.
        let tcp = [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1];
        let inner = ip4(A, B, 6, &tcp, 6);
        let pkt = error_packet(ROUTER, A, 3, 0, &inner);
        let e = outer(&pkt).unwrap();
        assert_eq!(
            e.tuple.l4,
            L4::Ports {
                sport: 40000,
                dport: 80
            }
        );
        assert_eq!(e.tuple.protocol, 6);
    }

    #[test]
    fn echo_request_time_exceeded() {
        let echo = icmp4(8, 0, [0x81, 0x05, 0, 1], b"abcdefgh");
        let inner = ip4(A, B, 1, &echo, 5);
        let pkt = error_packet(ROUTER, A, 11, 0, &inner);
        let e = outer(&pkt).unwrap();
        assert_eq!(
            e.tuple,
            Tuple::icmp(
                Family::Ipv4,
                Addr::from_v4(A),
                Addr::from_v4(B),
                8,
                0,
                33029
            )
        );
    }

    #[test]
    fn generic_protocol_needs_no_payload() {
        let inner = ip4(A, B, 47, &[], 5);
        let e = parse_embedded_v4(&inner).unwrap();
        assert_eq!(
            e.tuple,
            Tuple::generic(Family::Ipv4, Addr::from_v4(A), Addr::from_v4(B), 47)
        );
    }

    #[test]
    fn error_in_error() {
        let inner_err = icmp4(3, 1, [0; 4], &ip4(B, A, 17, &[0; 8], 5));
        let inner = ip4(A, B, 1, &inner_err, 5);
        let pkt = error_packet(ROUTER, A, 3, 1, &inner);
        assert_eq!(outer(&pkt), Err(InvalidReason::ErrorInError));
        assert!(parse_embedded_v4(&inner).unwrap().is_icmp_error);
    }

    #[test]
    fn spoofed_outer_destination() {
        let inner = ip4(A, B, 17, &[0, 1, 0, 2, 0, 8, 0, 0], 5);
        // Sent to B, but A sent the embedded packet.
        let pkt = error_packet(ROUTER, B, 3, 3, &inner);
        assert_eq!(outer(&pkt), Err(InvalidReason::SpoofedError));
        let e = parse_embedded_v4(&inner).unwrap();
        assert!(outer_destination_matches(Addr::from_v4(A), &e));
        assert!(!outer_destination_matches(Addr::from_v4(B), &e));
    }

    #[test]
    fn truncated_embedded() {
        let inner = ip4(A, B, 17, &[0, 1, 0, 2, 0, 8, 0, 0], 5);
        // Short IP header.
        for n in [0, 1, 19] {
            assert_eq!(
                parse_embedded_v4(&inner[..n]),
                Err(ParseError::TruncatedEmbeddedHeader)
            );
        }
        // Fewer than 8 bytes of UDP.
        assert_eq!(
            parse_embedded_v4(&inner[..27]),
            Err(ParseError::TruncatedEmbeddedHeader)
        );
        assert!(parse_embedded_v4(&inner[..28]).is_ok());
        // Options announced but missing.
        let with_opts = ip4(A, B, 47, &[], 6);
        assert_eq!(
            parse_embedded_v4(&with_opts[..22]),
            Err(ParseError::TruncatedEmbeddedHeader)
        );
        // Through the whole packet path, too.
        let pkt = error_packet(ROUTER, A, 3, 3, &inner[..24]);
        assert_eq!(
            outer(&pkt),
            Err(InvalidReason::Malformed(
                ParseError::TruncatedEmbeddedHeader
            ))
        );
        // Bad version / IHL.
        let mut bad = inner.clone();
        bad[0] = 0x65;
        assert_eq!(parse_embedded_v4(&bad), Err(ParseError::BadEmbeddedHeader));
        bad[0] = 0x43;
        assert_eq!(parse_embedded_v4(&bad), Err(ParseError::BadEmbeddedHeader));
    }

    #[test]
    fn embedded_fragments() {
        let mut inner = ip4(A, B, 17, &[0, 1, 0, 2, 0, 8, 0, 0], 5);
        inner[6] = 0x20; // first fragment: fine
        assert!(parse_embedded_v4(&inner).is_ok());
        inner[7] = 1; // offset 8 bytes: no transport header
        assert_eq!(parse_embedded_v4(&inner), Err(ParseError::EmbeddedFragment));
    }

    #[test]
    fn bad_checksum_on_real_packet() {
        let inner = ip4(A, B, 17, &[0, 1, 0, 2, 0, 8, 0, 0], 5);
        let mut pkt = error_packet(ROUTER, A, 3, 3, &inner);
        assert!(outer(&pkt).is_ok());
        let last = pkt.len() - 1;
        pkt[last] ^= 0x40;
        assert_eq!(outer(&pkt), Err(InvalidReason::BadChecksum));
    }

    /// An ICMPv6 redirect to fd00::1 (from its ICMPv6 header on) whose first option is
    /// `option` (type, length) followed by an echo request fd00::1 -> fd00::2, id 7.
    fn redirect(code: u8, option: [u8; 2]) -> Vec<u8> {
        let a6 = Addr::from_v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).octets();
        let b6 = Addr::from_v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).octets();
        let mut m = std::vec![ICMPV6_REDIRECT, code, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&b6); // target
        m.extend_from_slice(&b6); // destination
        m.extend_from_slice(&[option[0], option[1], 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 58, 64]);
        m.extend_from_slice(&a6);
        m.extend_from_slice(&b6);
        m.extend_from_slice(&[128, 0, 0, 0, 0, 7, 0, 1]);
        m
    }

    #[test]
    fn ipv6_redirect_under_nf_conntrack_conditions() {
        let router = Addr::from_v6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let ok = redirect(0, [ND_OPT_REDIRECTED_HEADER, 7]);
        let e = read_redirect(&ok[..], 0, 255, router).unwrap();
        assert_eq!(
            e.tuple.l4,
            L4::Icmp {
                icmp_type: 128,
                code: 0,
                id: 7
            }
        );
        assert_eq!(e.sender().octets()[15], 1);
        let bad = Err(InvalidReason::BadRedirect);
        assert_eq!(read_redirect(&ok[..], 1, 255, router), bad);
        assert_eq!(read_redirect(&ok[..], 0, 254, router), bad);
        let global = Addr::from_v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(read_redirect(&ok[..], 0, 255, global), bad);
        // ipv6_addr_type() calls link-local scope multicast link-local too.
        let mcast = Addr::from_v6([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(read_redirect(&ok[..], 0, 255, mcast).is_ok());
        // A target link-layer address option first, an option of length 0, none at all.
        let lladdr = redirect(0, [2, 1]);
        assert_eq!(read_redirect(&lladdr[..], 0, 255, router), bad);
        let empty = redirect(0, [ND_OPT_REDIRECTED_HEADER, 0]);
        assert_eq!(read_redirect(&empty[..], 0, 255, router), bad);
        assert_eq!(read_redirect(&ok[..41], 0, 255, router), bad);
        // The redirected packet cut short.
        assert_eq!(
            read_redirect(&ok[..ok.len() - 1], 0, 255, router),
            Err(InvalidReason::Malformed(
                ParseError::TruncatedEmbeddedHeader
            ))
        );
    }

    #[test]
    fn ipv6_errors() {
        let a6 = {
            let mut b = [0u8; 16];
            b[0] = 0xfd;
            b[15] = 1;
            b
        };
        let b6 = {
            let mut b = a6;
            b[15] = 2;
            b
        };
        let mut inner = std::vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        inner.extend_from_slice(&a6);
        inner.extend_from_slice(&b6);
        inner.extend_from_slice(&[128, 0, 0, 0, 0, 7, 0, 1]);
        let e = parse_embedded_v6(&inner).unwrap();
        assert_eq!(
            e.tuple,
            Tuple::icmp(
                Family::Ipv6,
                Addr::from_v6(a6),
                Addr::from_v6(b6),
                128,
                0,
                7
            )
        );
        assert!(!e.is_icmp_error);
        assert_eq!(check_embedded(Addr::from_v6(a6), &e), Ok(()));
        assert_eq!(
            check_embedded(Addr::from_v6(b6), &e),
            Err(InvalidReason::SpoofedError)
        );
        assert_eq!(
            parse_embedded_v6(&inner[..47]),
            Err(ParseError::TruncatedEmbeddedHeader)
        );
        assert_eq!(
            parse_embedded_v6(&inner[..39]),
            Err(ParseError::TruncatedEmbeddedHeader)
        );
        let mut err = inner.clone();
        err[40] = 1; // destination unreachable inside
        assert!(parse_embedded_v6(&err).unwrap().is_icmp_error);
        assert_eq!(
            check_embedded(Addr::from_v6(a6), &parse_embedded_v6(&err).unwrap()),
            Err(InvalidReason::ErrorInError)
        );
        let mut bad = inner.clone();
        bad[0] = 0x40;
        assert_eq!(parse_embedded_v6(&bad), Err(ParseError::BadEmbeddedHeader));
        // Non-first fragment.
        let mut frag = inner[..40].to_vec();
        frag[6] = 44;
        frag.extend_from_slice(&[58, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(parse_embedded_v6(&frag), Err(ParseError::EmbeddedFragment));
    }

    #[test]
    fn error_destroys_only_unreplied_and_not_pmtu() {
        let v4 = Family::Ipv4;
        let d = classify_error(v4, 3, 0, ErrorLookup::Entry { replied: false });
        assert_eq!(
            d,
            ErrorDecision {
                state: State::Related,
                destroy_entry: true
            }
        );
        let d = classify_error(v4, 3, 13, ErrorLookup::Entry { replied: false });
        assert!(d.destroy_entry);
        let d = classify_error(v4, 3, 0, ErrorLookup::Entry { replied: true });
        assert_eq!(
            d,
            ErrorDecision {
                state: State::Related,
                destroy_entry: false
            }
        );
        let d = classify_error(v4, 3, 4, ErrorLookup::Entry { replied: false });
        assert_eq!(
            d,
            ErrorDecision {
                state: State::Related,
                destroy_entry: false
            }
        );
        let d = classify_error(Family::Ipv6, 2, 0, ErrorLookup::Entry { replied: false });
        assert!(!d.destroy_entry);
        let d = classify_error(Family::Ipv6, 1, 4, ErrorLookup::Entry { replied: false });
        assert!(d.destroy_entry);
        let d = classify_error(v4, 11, 0, ErrorLookup::NoEntry);
        assert_eq!(d.state, State::Invalid(InvalidReason::NoRelatedEntry));
        assert!(!d.destroy_entry);
    }

    #[test]
    fn ipv6_error_about_srv6_packet() {
        // An echo request with a 16-segment SRv6 header, as a destination unreachable from
        // a router quotes it: outer IPv6 header, ICMPv6 header, then 40 + 264 + 8 bytes.
        let router = {
            let mut b = [0u8; 16];
            b[0] = 0xfd;
            b[15] = 0xfe;
            b
        };
        let a6 = {
            let mut b = router;
            b[15] = 1;
            b
        };
        let mut inner = std::vec![0x60, 0, 0, 0, 0x01, 0x10, 43, 64];
        inner.extend_from_slice(&a6);
        inner.extend_from_slice(&router);
        inner.extend_from_slice(&[58, 32, 4, 0, 15, 0, 0, 0]);
        inner.extend_from_slice(&[0xfd; 16 * 16]);
        inner.extend_from_slice(&[128, 0, 0, 0, 0, 7, 0, 1]);
        let mut outer = std::vec![0x60, 0, 0, 0];
        outer.extend_from_slice(&((8 + inner.len()) as u16).to_be_bytes());
        outer.extend_from_slice(&[58, 64]);
        outer.extend_from_slice(&router);
        outer.extend_from_slice(&a6);
        outer.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        outer.extend_from_slice(&inner);
        assert!(outer.len() > 256);
        // As the packet path reads it: outer header, ICMPv6 header, embedded packet.
        let ip = ipv6::read(&outer[..]).unwrap();
        let l4 = ip.payload_window(&outer[..]);
        let h = super::super::icmp::read(&l4).unwrap();
        assert!(icmp_types::kind(Family::Ipv6, h.icmp_type).is_error());
        let e = read_embedded_v6(&l4.skip(8)).unwrap();
        assert_eq!(
            e.tuple,
            Tuple::icmp(
                Family::Ipv6,
                Addr::from_v6(a6),
                Addr::from_v6(router),
                128,
                0,
                7
            )
        );
        assert_eq!(check_embedded(Addr::from_v6(a6), &e), Ok(()));
        // Cut anywhere before the 8 bytes of the embedded ICMPv6 header: truncated.
        for cut in 48..outer.len() {
            let ip = ipv6::read(&outer[..cut]).unwrap();
            let l4 = ip.payload_window(&outer[..cut]);
            assert_eq!(
                read_embedded_v6(&l4.skip(8)),
                Err(ParseError::TruncatedEmbeddedHeader),
                "cut at {cut}"
            );
        }
    }
}
