// SPDX-License-Identifier: GPL-2.0

//! IPv4 header parsing (RFC 791).

pub use super::error::ParseError;
use super::reader::{self, PacketBytes, Window};

/// Length of the IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// The fields of an IPv4 header that the tracker uses.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Ipv4Header {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol of the payload (1 ICMP, 6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// Header length in bytes (IHL * 4), options included.
    pub header_len: usize,
    /// Total length field as sent (not checked against the slice: the
    /// header embedded in an ICMP error is truncated).
    pub total_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// Fragment offset in 8-byte units.
    pub fragment_offset: u16,
    /// The "more fragments" flag.
    pub more_fragments: bool,
}

impl Ipv4Header {
    /// Whether the packet is a fragment (offset nonzero or more to come).
    pub fn is_fragment(&self) -> bool {
        self.fragment_offset != 0 || self.more_fragments
    }

    /// Whether the packet is the first (or only) fragment.
    pub fn is_first_fragment(&self) -> bool {
        self.fragment_offset == 0
    }

    /// Whether the payload begins with the transport header: only the first
    /// fragment carries it.
    pub fn carries_transport_header(&self) -> bool {
        self.is_first_fragment()
    }

    /// End of the packet: `total_len` when that covers the header and lies within the
    /// `packet_len` bytes there are, else `packet_len`.
    pub fn end(&self, packet_len: usize) -> usize {
        let total = usize::from(self.total_len);
        if total >= self.header_len && total <= packet_len {
            total
        } else {
            packet_len
        }
    }

    /// The bytes after the header, up to [`Ipv4Header::end`].
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.header_len..self.end(packet.len()))
            .unwrap_or(&[])
    }

    /// The bytes after the header, up to [`Ipv4Header::end`], as a window of `packet`.
    pub fn payload_window<'r, R: PacketBytes + ?Sized>(&self, packet: &'r R) -> Window<'r, R> {
        Window::new(packet, self.header_len, self.end(packet.len()))
    }
}

/// Parses the IPv4 header at the start of `packet` (a slice; see [`read`]).
pub fn parse(packet: &[u8]) -> Result<Ipv4Header, ParseError> {
    read(packet)
}

/// Reads the IPv4 header at the start of `packet`: its fixed 20 bytes, then checks that the
/// options its IHL announces are there (the tracker does not look into them).
///
/// The version must be 4 and the IHL at least 5. The total length is reported, not
/// enforced.
pub fn read<R: PacketBytes + ?Sized>(packet: &R) -> Result<Ipv4Header, ParseError> {
    let fixed: [u8; MIN_HEADER_LEN] =
        reader::array(packet, 0).ok_or(ParseError::TruncatedIpHeader)?;
    let [vihl, _tos, tl0, tl1, _id0, _id1, fo0, fo1, ttl, protocol, _c0, _c1, s0, s1, s2, s3, d0, d1, d2, d3] =
        fixed;
    if vihl >> 4 != 4 {
        return Err(ParseError::BadIpVersion);
    }
    let ihl = vihl & 0x0f;
    if ihl < 5 {
        return Err(ParseError::BadIpHeaderLength);
    }
    // ihl <= 15, so this is at most 60.
    let header_len = usize::from(ihl).wrapping_mul(4);
    if packet.len() < header_len {
        return Err(ParseError::TruncatedIpHeader);
    }
    let frag = u16::from_be_bytes([fo0, fo1]);
    Ok(Ipv4Header {
        src: [s0, s1, s2, s3],
        dst: [d0, d1, d2, d3],
        protocol,
        header_len,
        total_len: u16::from_be_bytes([tl0, tl1]),
        ttl,
        fragment_offset: frag & 0x1fff,
        more_fragments: frag & 0x2000 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize) -> std::vec::Vec<u8> {
        let mut h = std::vec![0u8; len];
        h[0] = 0x40 | (len / 4) as u8;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        h[8] = 64;
        h[9] = 1;
        h[12..16].copy_from_slice(&[192, 168, 1, 6]);
        h[16..20].copy_from_slice(&[192, 168, 1, 10]);
        h
    }

    #[test]
    fn parses_plain_header() {
        let h = header(20);
        let p = parse(&h).unwrap();
        assert_eq!(p.src, [192, 168, 1, 6]);
        assert_eq!(p.dst, [192, 168, 1, 10]);
        assert_eq!(p.protocol, 1);
        assert_eq!(p.header_len, 20);
        assert_eq!(p.total_len, 20);
        assert_eq!(p.ttl, 64);
        assert!(!p.is_fragment());
        assert!(p.carries_transport_header());
        assert!(p.payload(&h).is_empty());
    }

    #[test]
    fn parses_options_and_payload() {
        let mut h = header(24);
        h.extend_from_slice(&[8, 0, 1, 2, 3, 4, 5, 6]);
        h[2..4].copy_from_slice(&32u16.to_be_bytes());
        let p = parse(&h).unwrap();
        assert_eq!(p.header_len, 24);
        assert_eq!(p.payload(&h), &[8, 0, 1, 2, 3, 4, 5, 6]);
        // Trailing link-layer padding is cut by total_len.
        h[2..4].copy_from_slice(&28u16.to_be_bytes());
        let p = parse(&h).unwrap();
        assert_eq!(p.payload(&h), &[8, 0, 1, 2]);
        // total_len beyond the slice (truncated, as in ICMP errors): slice wins.
        h[2..4].copy_from_slice(&1500u16.to_be_bytes());
        let p = parse(&h).unwrap();
        assert_eq!(p.total_len, 1500);
        assert_eq!(p.payload(&h).len(), 8);
        // total_len below the header length: ignored.
        h[2..4].copy_from_slice(&4u16.to_be_bytes());
        let p = parse(&h).unwrap();
        assert_eq!(p.payload(&h).len(), 8);
    }

    #[test]
    fn truncated_header() {
        let h = header(20);
        assert_eq!(parse(&h[..19]), Err(ParseError::TruncatedIpHeader));
        assert_eq!(parse(&[]), Err(ParseError::TruncatedIpHeader));
        // IHL announces options that are not there.
        let h = header(24);
        assert_eq!(parse(&h[..23]), Err(ParseError::TruncatedIpHeader));
    }

    #[test]
    fn bad_version() {
        let mut h = header(20);
        h[0] = 0x65;
        assert_eq!(parse(&h), Err(ParseError::BadIpVersion));
    }

    #[test]
    fn bad_ihl() {
        let mut h = header(20);
        h[0] = 0x44;
        assert_eq!(parse(&h), Err(ParseError::BadIpHeaderLength));
        h[0] = 0x40;
        assert_eq!(parse(&h), Err(ParseError::BadIpHeaderLength));
    }

    #[test]
    fn fragments() {
        let mut h = header(20);
        h[6] = 0x20; // MF, offset 0: first fragment
        let p = parse(&h).unwrap();
        assert!(p.more_fragments);
        assert!(p.is_fragment());
        assert!(p.is_first_fragment());
        assert!(p.carries_transport_header());
        h[6] = 0x00;
        h[7] = 0xb9; // offset 185 (1480 bytes), last fragment
        let p = parse(&h).unwrap();
        assert_eq!(p.fragment_offset, 185);
        assert!(!p.more_fragments);
        assert!(p.is_fragment());
        assert!(!p.carries_transport_header());
        h[6] = 0x40; // DF only, offset 0: not a fragment
        h[7] = 0;
        let p = parse(&h).unwrap();
        assert!(!p.is_fragment());
        h[6] = 0x5f; // DF + max offset
        h[7] = 0xff;
        assert_eq!(parse(&h).unwrap().fragment_offset, 0x1fff);
    }
}
