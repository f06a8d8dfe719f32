// SPDX-License-Identifier: GPL-2.0

//! IPv6 header parsing (RFC 8200), walking the extension headers to the
//! upper-layer header.

use super::error::ParseError;
use super::reader::{self, PacketBytes, Window};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// How many extension headers the parser follows before giving up (INVALID, "more than 8
/// IPv6 extension headers"). RFC 8200 section 4.1 allows each header once, destination
/// options twice: 6 before the upper layer; the rest is slack.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Next-header value of a hop-by-hop options header.
pub const NEXTHDR_HOP: u8 = 0;
/// Next-header value of a routing header (SRv6 among them).
pub const NEXTHDR_ROUTING: u8 = 43;
/// Next-header value of a fragment header.
pub const NEXTHDR_FRAGMENT: u8 = 44;
/// Next-header value of an authentication header.
pub const NEXTHDR_AUTH: u8 = 51;
/// Next-header value meaning "no next header".
pub const NEXTHDR_NONE: u8 = 59;
/// Next-header value of a destination options header.
pub const NEXTHDR_DEST: u8 = 60;

/// Length of the fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// The fields of an IPv6 packet that the tracker uses.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Ipv6Header {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Payload length field as sent (not enforced, see `Ipv4Header`).
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Upper-layer protocol after the extension headers (58 ICMPv6, 6 TCP,
    /// 17 UDP, ..., 59 for none).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the packet.
    pub l4_offset: usize,
    /// Fragment offset in 8-byte units (0 without a fragment header).
    pub fragment_offset: u16,
    /// The M flag of a fragment header.
    pub more_fragments: bool,
}

impl Ipv6Header {
    /// Whether the packet has a fragment header making it a real fragment.
    pub fn is_fragment(&self) -> bool {
        self.fragment_offset != 0 || self.more_fragments
    }

    /// Whether the payload at `l4_offset` begins with the transport header
    /// (not a non-first fragment).
    pub fn carries_transport_header(&self) -> bool {
        self.fragment_offset == 0
    }

    /// End of the packet: the fixed header plus `payload_len` when that covers the
    /// extension headers and lies within the `packet_len` bytes there are, else `packet_len`.
    pub fn end(&self, packet_len: usize) -> usize {
        let end = HEADER_LEN.saturating_add(usize::from(self.payload_len));
        if end >= self.l4_offset && end <= packet_len {
            end
        } else {
            packet_len
        }
    }

    /// The upper-layer bytes, up to [`Ipv6Header::end`].
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.l4_offset..self.end(packet.len()))
            .unwrap_or(&[])
    }

    /// The upper-layer bytes, up to [`Ipv6Header::end`], as a window of `packet`.
    pub fn payload_window<'r, R: PacketBytes + ?Sized>(&self, packet: &'r R) -> Window<'r, R> {
        Window::new(packet, self.l4_offset, self.end(packet.len()))
    }
}

/// Parses the IPv6 header at the start of `packet` (a slice; see [`read`]).
pub fn parse(packet: &[u8]) -> Result<Ipv6Header, ParseError> {
    read(packet)
}

/// Reads the IPv6 header at the start of `packet` and walks the hop-by-hop, routing,
/// destination options, fragment and AH extension headers to the upper-layer header.
///
/// Of each extension header only its first two bytes are read (the fragment header: all 8),
/// and it must end within the packet; a routing header may be as long as its length byte
/// says (an SRv6 header with 127 segments is 2 KB). More than [`MAX_EXTENSION_HEADERS`] is
/// an error. A non-first fragment stops the walk: `protocol` is then the fragment header's
/// next header and no transport header follows.
pub fn read<R: PacketBytes + ?Sized>(packet: &R) -> Result<Ipv6Header, ParseError> {
    let fixed: [u8; HEADER_LEN] =
        reader::array(packet, 0).ok_or(ParseError::TruncatedIpv6Header)?;
    let [ver, _, _, _, pl0, pl1, next, hop_limit, ..] = fixed;
    if ver >> 4 != 6 {
        return Err(ParseError::BadIpVersion);
    }
    let address = |range: core::ops::Range<usize>| {
        fixed
            .get(range)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or(ParseError::TruncatedIpv6Header)
    };
    let src = address(8..24)?;
    let dst = address(24..HEADER_LEN)?;
    let mut hdr = Ipv6Header {
        src,
        dst,
        payload_len: u16::from_be_bytes([pl0, pl1]),
        hop_limit,
        protocol: next,
        l4_offset: HEADER_LEN,
        fragment_offset: 0,
        more_fragments: false,
    };
    for _ in 0..MAX_EXTENSION_HEADERS {
        let (nh, len) = match hdr.protocol {
            // Hop-by-hop, routing, destination options: (len + 1) * 8.
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let [nh, len] = ext_start(packet, hdr.l4_offset)?;
                (nh, usize::from(len).wrapping_add(1).wrapping_mul(8))
            }
            NEXTHDR_FRAGMENT => {
                let [nh, _, f0, f1, ..] =
                    reader::array::<FRAGMENT_HEADER_LEN, _>(packet, hdr.l4_offset)
                        .ok_or(ParseError::TruncatedExtensionHeader)?;
                let frag = u16::from_be_bytes([f0, f1]);
                hdr.fragment_offset = frag >> 3;
                hdr.more_fragments = frag & 1 != 0;
                if hdr.fragment_offset != 0 {
                    hdr.protocol = nh;
                    hdr.l4_offset = hdr.l4_offset.saturating_add(FRAGMENT_HEADER_LEN);
                    return Ok(hdr);
                }
                (nh, FRAGMENT_HEADER_LEN)
            }
            // Authentication header: (len + 2) * 4.
            NEXTHDR_AUTH => {
                let [nh, len] = ext_start(packet, hdr.l4_offset)?;
                (nh, usize::from(len).wrapping_add(2).wrapping_mul(4))
            }
            _ => return Ok(hdr),
        };
        let end = hdr.l4_offset.saturating_add(len);
        if end > packet.len() {
            return Err(ParseError::TruncatedExtensionHeader);
        }
        hdr.protocol = nh;
        hdr.l4_offset = end;
    }
    if is_walked_extension_header(hdr.protocol) {
        Err(ParseError::TooManyExtensionHeaders)
    } else {
        Ok(hdr)
    }
}

/// Whether `next_header` is an extension header [`read`] walks past.
pub fn is_walked_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_FRAGMENT | NEXTHDR_AUTH | NEXTHDR_DEST
    )
}

/// Next header and length byte of the extension header at `offset`.
fn ext_start<R: PacketBytes + ?Sized>(packet: &R, offset: usize) -> Result<[u8; 2], ParseError> {
    reader::array(packet, offset).ok_or(ParseError::TruncatedExtensionHeader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn header(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = std::vec![0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        h[6] = next;
        h[7] = 64;
        h[8] = 0xfd;
        h[23] = 1;
        h[24] = 0xfd;
        h[39] = 2;
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn plain_icmpv6() {
        let p = header(58, &[128, 0, 0, 0, 0, 7, 0, 1]);
        let h = parse(&p).unwrap();
        assert_eq!(h.protocol, 58);
        assert_eq!(h.l4_offset, 40);
        assert_eq!(h.hop_limit, 64);
        assert_eq!(h.src[0], 0xfd);
        assert_eq!(h.dst[15], 2);
        assert_eq!(h.payload(&p), &[128, 0, 0, 0, 0, 7, 0, 1]);
        assert!(!h.is_fragment());
    }

    #[test]
    fn skips_extension_headers() {
        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> fragment
        // (first, M set) -> AH (12 bytes) -> UDP.
        let mut ext = Vec::new();
        ext.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[44, 1]);
        ext.extend_from_slice(&[0; 14]);
        ext.extend_from_slice(&[51, 0, 0, 1, 0, 0, 0, 0]);
        ext.extend_from_slice(&[17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[0, 53, 4, 1, 0, 8, 0, 0]);
        let p = header(0, &ext);
        let h = parse(&p).unwrap();
        assert_eq!(h.protocol, 17);
        assert_eq!(h.l4_offset, 40 + 8 + 16 + 8 + 12);
        assert!(h.is_fragment());
        assert!(h.carries_transport_header());
        assert_eq!(h.payload(&p), &[0, 53, 4, 1, 0, 8, 0, 0]);
    }

    #[test]
    fn non_first_fragment_stops() {
        let p = header(44, &[58, 0, 0x05, 0xc8, 0, 0, 0, 1, 1, 2, 3]);
        let h = parse(&p).unwrap();
        assert_eq!(h.protocol, 58);
        assert_eq!(h.fragment_offset, 185);
        assert!(!h.carries_transport_header());
    }

    #[test]
    fn errors() {
        let p = header(58, &[]);
        assert_eq!(parse(&p[..39]), Err(ParseError::TruncatedIpv6Header));
        assert_eq!(parse(&p[..7]), Err(ParseError::TruncatedIpv6Header));
        let mut bad = p.clone();
        bad[0] = 0x45;
        assert_eq!(parse(&bad), Err(ParseError::BadIpVersion));
        // Hop-by-hop announcing 16 bytes, only 8 present.
        let p = header(0, &[58, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(&p), Err(ParseError::TruncatedExtensionHeader));
        let p = header(0, &[58]);
        assert_eq!(parse(&p), Err(ParseError::TruncatedExtensionHeader));
        // A chain of destination options longer than the limit.
        let mut ext = Vec::new();
        for _ in 0..MAX_EXTENSION_HEADERS + 1 {
            ext.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = header(60, &ext);
        assert_eq!(parse(&p), Err(ParseError::TooManyExtensionHeaders));
        // Exactly the limit is fine.
        let mut ext = Vec::new();
        for i in 0..MAX_EXTENSION_HEADERS {
            let nh = if i + 1 == MAX_EXTENSION_HEADERS {
                58
            } else {
                60
            };
            ext.extend_from_slice(&[nh, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = header(60, &ext);
        assert_eq!(parse(&p).unwrap().protocol, 58);
    }

    /// A reader that records every read it serves, to check what the parser takes.
    struct Recording<'a> {
        bytes: &'a [u8],
        reads: core::cell::RefCell<Vec<(usize, usize)>>,
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

    /// An SRv6 segment routing header (RFC 8754) with `segments` segments, segments left 0.
    fn srh(next: u8, segments: u8) -> Vec<u8> {
        let mut h = std::vec![next, 2 * segments, 4, 0, segments - 1, 0, 0, 0];
        for i in 0..segments {
            let mut segment = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            segment[15] = i;
            h.extend_from_slice(&segment);
        }
        h
    }

    #[test]
    fn srv6_header_past_256_bytes() {
        // 16 segments: 264 bytes of routing header, the ICMPv6 header at 304.
        let mut ext = srh(58, 16);
        ext.extend_from_slice(&[128, 0, 0, 0, 0, 7, 0, 1]);
        let p = header(NEXTHDR_ROUTING, &ext);
        assert!(p.len() > 256);
        let h = parse(&p).unwrap();
        assert_eq!(h.protocol, 58);
        assert_eq!(h.l4_offset, 40 + 8 + 16 * 16);
        assert_eq!(h.payload(&p), &[128, 0, 0, 0, 0, 7, 0, 1]);
        // Each header read once: the fixed header, then the routing header's first two bytes.
        let r = Recording {
            bytes: &p,
            reads: Default::default(),
        };
        assert_eq!(read(&r).unwrap(), h);
        assert_eq!(*r.reads.borrow(), [(0, 40), (40, 2)]);
        // The largest routing header there is: 255 * 8 + 8 bytes.
        let mut ext = std::vec![58, 255];
        ext.resize(2048, 0);
        let p = header(NEXTHDR_ROUTING, &ext);
        assert_eq!(parse(&p).unwrap().l4_offset, 40 + 2048);
        assert_eq!(
            parse(&p[..p.len() - 1]),
            Err(ParseError::TruncatedExtensionHeader)
        );
    }

    #[test]
    fn packet_ending_inside_fragment_header() {
        // Next header 44, then 4 of the fragment header's 8 bytes: 44 bytes in all. A
        // non-first fragment (offset 185) and a first one alike.
        for frag in [[0x05, 0xc8], [0, 1]] {
            let p = header(NEXTHDR_FRAGMENT, &[58, 0, frag[0], frag[1]]);
            assert_eq!(p.len(), 44);
            assert_eq!(parse(&p), Err(ParseError::TruncatedExtensionHeader));
            let mut whole = p.clone();
            whole.extend_from_slice(&[0, 0, 0, 1]);
            assert!(parse(&whole).is_ok());
        }
    }

    #[test]
    fn truncation_at_every_offset() {
        // Hop-by-hop, an SRv6 header of 12 segments, destination options, fragment (first),
        // ICMPv6: every cut before the upper-layer header is truncated, and a window ending
        // there reads the same as a slice ending there.
        let mut ext = std::vec![NEXTHDR_ROUTING, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&srh(NEXTHDR_DEST, 12));
        ext.extend_from_slice(&[NEXTHDR_FRAGMENT, 1]);
        ext.extend_from_slice(&[0; 14]);
        ext.extend_from_slice(&[58, 0, 0, 0, 0, 0, 0, 9]);
        ext.extend_from_slice(&[128, 0, 0, 0, 0, 7, 0, 1]);
        let p = header(NEXTHDR_HOP, &ext);
        let l4_offset = parse(&p).unwrap().l4_offset;
        assert_eq!(l4_offset, p.len() - 8);
        for cut in 0..p.len() {
            let got = parse(&p[..cut]);
            if cut < l4_offset {
                assert!(got.is_err(), "cut at {cut}: {got:?}");
            }
            let window = Window::new(&p[..], 0, cut);
            assert_eq!(read(&window), got, "cut at {cut}");
            let r = Recording {
                bytes: &p[..cut],
                reads: Default::default(),
            };
            assert_eq!(read(&r), got);
            // Four extension headers at most, each read once, and never two reads of the
            // same bytes.
            let reads = r.reads.borrow();
            assert!(reads.len() <= 5);
            for pair in reads.windows(2) {
                assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{reads:?}");
            }
        }
    }

    #[test]
    fn too_many_reason_names_the_limit() {
        let reason = ParseError::TooManyExtensionHeaders.as_str();
        assert!(reason.contains(&std::format!(" {MAX_EXTENSION_HEADERS} ")));
    }
}
