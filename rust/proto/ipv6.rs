// SPDX-License-Identifier: GPL-2.0

//! IPv6 header parsing (RFC 8200), walking the extension headers to the
//! upper-layer header.

use super::error::ParseError;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// How many extension headers the parser follows before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Next-header value meaning "no next header".
pub const NEXTHDR_NONE: u8 = 59;

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

    /// The upper-layer bytes, bounded by the slice, and by the payload
    /// length when that lies within the slice and covers the extension
    /// headers.
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        let end = HEADER_LEN.saturating_add(usize::from(self.payload_len));
        let end = if end >= self.l4_offset && end <= packet.len() {
            end
        } else {
            packet.len()
        };
        packet.get(self.l4_offset..end).unwrap_or(&[])
    }
}

/// Parses the IPv6 header at the start of `packet` and skips hop-by-hop,
/// routing, destination options, fragment and AH extension headers.
///
/// A non-first fragment stops the walk: `protocol` is then the fragment
/// header's next header and no transport header follows.
pub fn parse(packet: &[u8]) -> Result<Ipv6Header, ParseError> {
    let (fixed, _) = packet
        .split_first_chunk::<8>()
        .ok_or(ParseError::TruncatedIpv6Header)?;
    let [ver, _, _, _, pl0, pl1, next, hop_limit] = *fixed;
    if ver >> 4 != 6 {
        return Err(ParseError::BadIpVersion);
    }
    let src = packet
        .get(8..24)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or(ParseError::TruncatedIpv6Header)?;
    let dst = packet
        .get(24..HEADER_LEN)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or(ParseError::TruncatedIpv6Header)?;
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
        let ext_len = match hdr.protocol {
            // Hop-by-hop, routing, destination options: (len + 1) * 8.
            0 | 43 | 60 => {
                let (nh, len) = ext_start(packet, hdr.l4_offset)?;
                let len = usize::from(len).wrapping_add(1).wrapping_mul(8);
                (nh, len)
            }
            // Fragment header: 8 bytes.
            44 => {
                let [nh, _, f0, f1] = packet
                    .get(hdr.l4_offset..)
                    .and_then(|b| b.first_chunk::<4>())
                    .copied()
                    .ok_or(ParseError::TruncatedExtensionHeader)?;
                let frag = u16::from_be_bytes([f0, f1]);
                hdr.fragment_offset = frag >> 3;
                hdr.more_fragments = frag & 1 != 0;
                if hdr.fragment_offset != 0 {
                    hdr.protocol = nh;
                    hdr.l4_offset = hdr.l4_offset.saturating_add(8);
                    return Ok(hdr);
                }
                (nh, 8)
            }
            // Authentication header: (len + 2) * 4.
            51 => {
                let (nh, len) = ext_start(packet, hdr.l4_offset)?;
                let len = usize::from(len).wrapping_add(2).wrapping_mul(4);
                (nh, len)
            }
            _ => return Ok(hdr),
        };
        let (nh, len) = ext_len;
        let end = hdr.l4_offset.saturating_add(len);
        if end > packet.len() {
            return Err(ParseError::TruncatedExtensionHeader);
        }
        hdr.protocol = nh;
        hdr.l4_offset = end;
    }
    match hdr.protocol {
        0 | 43 | 44 | 51 | 60 => Err(ParseError::TooManyExtensionHeaders),
        _ => Ok(hdr),
    }
}

/// Next header and length byte of the extension header at `offset`.
fn ext_start(packet: &[u8], offset: usize) -> Result<(u8, u8), ParseError> {
    let [nh, len] = packet
        .get(offset..)
        .and_then(|b| b.first_chunk::<2>())
        .copied()
        .ok_or(ParseError::TruncatedExtensionHeader)?;
    Ok((nh, len))
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
}
