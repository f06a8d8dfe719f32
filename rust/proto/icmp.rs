// SPDX-License-Identifier: GPL-2.0

//! The 8-byte ICMP / ICMPv6 header (RFC 792, RFC 4443).

use super::error::ParseError;
use super::reader::{self, PacketBytes};

/// Length of the ICMP header: type, code, checksum and 4 more bytes.
pub const HEADER_LEN: usize = 8;

/// An ICMP or ICMPv6 header.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct IcmpHeader {
    /// Message type.
    pub icmp_type: u8,
    /// Message code.
    pub code: u8,
    /// Checksum as sent.
    pub checksum: u16,
    /// The 4 bytes after the checksum: identifier and sequence number for
    /// queries, unused / MTU / pointer for errors.
    pub rest: [u8; 4],
}

impl IcmpHeader {
    /// Query identifier (bytes 4-5, big endian).
    pub fn id(&self) -> u16 {
        let [a, b, _, _] = self.rest;
        u16::from_be_bytes([a, b])
    }

    /// Query sequence number (bytes 6-7, big endian).
    pub fn sequence(&self) -> u16 {
        let [_, _, a, b] = self.rest;
        u16::from_be_bytes([a, b])
    }
}

/// Parses the ICMP header at the start of `bytes` (a slice; see [`read`]).
pub fn parse(bytes: &[u8]) -> Result<IcmpHeader, ParseError> {
    read(bytes)
}

/// Reads the 8-byte ICMP header at the start of `bytes`.
pub fn read<R: PacketBytes + ?Sized>(bytes: &R) -> Result<IcmpHeader, ParseError> {
    let [icmp_type, code, c0, c1, r0, r1, r2, r3] =
        reader::array::<HEADER_LEN, _>(bytes, 0).ok_or(ParseError::TruncatedIcmpHeader)?;
    Ok(IcmpHeader {
        icmp_type,
        code,
        checksum: u16::from_be_bytes([c0, c1]),
        rest: [r0, r1, r2, r3],
    })
}

/// The bytes after the 8-byte header (for an error: the embedded packet).
pub fn payload(bytes: &[u8]) -> &[u8] {
    bytes.get(HEADER_LEN..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_echo_request() {
        let b = [8, 0, 0xab, 0xcd, 0x81, 0x05, 0x00, 0x02, 0xde, 0xad];
        let h = parse(&b).unwrap();
        assert_eq!(h.icmp_type, 8);
        assert_eq!(h.code, 0);
        assert_eq!(h.checksum, 0xabcd);
        assert_eq!(h.id(), 33029);
        assert_eq!(h.sequence(), 2);
        assert_eq!(payload(&b), &[0xde, 0xad]);
    }

    #[test]
    fn truncated() {
        let b = [8, 0, 0, 0, 0, 0, 0, 0];
        assert!(parse(&b).is_ok());
        assert!(payload(&b).is_empty());
        for n in 0..8 {
            assert_eq!(parse(&b[..n]), Err(ParseError::TruncatedIcmpHeader));
        }
    }
}
