// SPDX-License-Identifier: GPL-2.0

//! IPv4 and IPv6 addresses in one fixed-size value, and their text form.

use core::fmt;

/// The address family of a packet, a tuple or an entry.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Family {
    /// IPv4 (ICMP is protocol 1).
    Ipv4,
    /// IPv6 (ICMPv6 is protocol 58).
    Ipv6,
}

impl Family {
    /// The protocol number of this family's ICMP: 1 or 58.
    pub fn icmp_protocol(self) -> u8 {
        match self {
            Self::Ipv4 => 1,
            Self::Ipv6 => 58,
        }
    }
}

/// An IPv4 or IPv6 address: 16 bytes, an IPv4 address in the first 4 and
/// zeros after it. The family is kept beside it (in the tuple).
#[derive(Copy, Clone, PartialEq, Eq, Default, Debug)]
pub struct Addr {
    bytes: [u8; 16],
}

impl Addr {
    /// An IPv4 address.
    pub fn from_v4(a: [u8; 4]) -> Self {
        let [a0, a1, a2, a3] = a;
        Self {
            bytes: [a0, a1, a2, a3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// An IPv6 address.
    pub fn from_v6(a: [u8; 16]) -> Self {
        Self { bytes: a }
    }

    /// All 16 bytes (an IPv4 address is followed by 12 zeros).
    pub fn octets(&self) -> [u8; 16] {
        self.bytes
    }

    /// The first 4 bytes: the address if it is an IPv4 one.
    pub fn v4_octets(&self) -> [u8; 4] {
        let [a0, a1, a2, a3, ..] = self.bytes;
        [a0, a1, a2, a3]
    }

    /// The address as four big-endian 32-bit words (for hashing).
    pub fn words(&self) -> [u32; 4] {
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] = self.bytes;
        [
            u32::from_be_bytes([b0, b1, b2, b3]),
            u32::from_be_bytes([b4, b5, b6, b7]),
            u32::from_be_bytes([b8, b9, b10, b11]),
            u32::from_be_bytes([b12, b13, b14, b15]),
        ]
    }

    /// The address whose [`Addr::words`] are `words`.
    pub fn from_words(words: [u32; 4]) -> Self {
        let [w0, w1, w2, w3] = words.map(u32::to_be_bytes);
        let [b0, b1, b2, b3] = w0;
        let [b4, b5, b6, b7] = w1;
        let [b8, b9, b10, b11] = w2;
        let [b12, b13, b14, b15] = w3;
        Self {
            bytes: [
                b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15,
            ],
        }
    }

    /// The eight 16-bit groups of an IPv6 address.
    fn groups(&self) -> [u16; 8] {
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] = self.bytes;
        [
            u16::from_be_bytes([b0, b1]),
            u16::from_be_bytes([b2, b3]),
            u16::from_be_bytes([b4, b5]),
            u16::from_be_bytes([b6, b7]),
            u16::from_be_bytes([b8, b9]),
            u16::from_be_bytes([b10, b11]),
            u16::from_be_bytes([b12, b13]),
            u16::from_be_bytes([b14, b15]),
        ]
    }

    /// Writes the address: dotted quad for IPv4, RFC 5952 text for IPv6
    /// (lowercase hex, no leading zeros, the longest run of two or more zero
    /// groups shown as `::`, the leftmost one on a tie, and an IPv4-mapped
    /// address as `::ffff:a.b.c.d`).
    pub fn write<W: fmt::Write>(&self, family: Family, w: &mut W) -> fmt::Result {
        match family {
            Family::Ipv4 => write_v4(self.v4_octets(), w),
            Family::Ipv6 => self.write_v6(w),
        }
    }

    fn write_v6<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        let groups = self.groups();
        if let [0, 0, 0, 0, 0, 0xffff, ..] = groups {
            let [.., a0, a1, a2, a3] = self.bytes;
            w.write_str("::ffff:")?;
            return write_v4([a0, a1, a2, a3], w);
        }
        let (start, len) = longest_zero_run(&groups);
        let end = start.saturating_add(len);
        let mut i: usize = 0;
        let mut first = true;
        for g in groups {
            if len >= 2 && i >= start && i < end {
                if i == start {
                    w.write_str("::")?;
                }
                first = true;
            } else {
                if !first {
                    w.write_char(':')?;
                }
                write!(w, "{:x}", g)?;
                first = false;
            }
            i = i.wrapping_add(1);
        }
        Ok(())
    }
}

fn write_v4<W: fmt::Write>(a: [u8; 4], w: &mut W) -> fmt::Result {
    let [a0, a1, a2, a3] = a;
    write!(w, "{}.{}.{}.{}", a0, a1, a2, a3)
}

/// Start and length of the longest run of zero groups (leftmost on a tie);
/// length 0 when there is no zero group.
fn longest_zero_run(groups: &[u16; 8]) -> (usize, usize) {
    let (mut best_start, mut best_len) = (0usize, 0usize);
    let (mut cur_start, mut cur_len) = (0usize, 0usize);
    let mut i: usize = 0;
    for g in groups {
        if *g == 0 {
            if cur_len == 0 {
                cur_start = i;
            }
            cur_len = cur_len.wrapping_add(1);
            if cur_len > best_len {
                best_start = cur_start;
                best_len = cur_len;
            }
        } else {
            cur_len = 0;
        }
        i = i.wrapping_add(1);
    }
    (best_start, best_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn v6(s: &str) -> String {
        let ip: std::net::Ipv6Addr = s.parse().unwrap();
        let mut out = String::new();
        Addr::from_v6(ip.octets())
            .write(Family::Ipv6, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn ipv4_dotted_quad() {
        let mut out = String::new();
        Addr::from_v4([192, 168, 1, 6])
            .write(Family::Ipv4, &mut out)
            .unwrap();
        assert_eq!(out, "192.168.1.6");
        assert_eq!(
            Addr::from_v4([1, 2, 3, 4]).octets(),
            [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Addr::from_v4([1, 2, 3, 4]).v4_octets(), [1, 2, 3, 4]);
    }

    #[test]
    fn ipv6_rfc5952() {
        assert_eq!(v6("fd00::1"), "fd00::1");
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("1::"), "1::");
        assert_eq!(v6("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(v6("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
        // A single zero group is not compressed.
        assert_eq!(v6("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
        assert_eq!(v6("2001:DB8::ABCD"), "2001:db8::abcd");
        assert_eq!(v6("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
        // Tie between two runs of three: the leftmost is compressed.
        assert_eq!(v6("fe80:0:0:0:1:0:0:0"), "fe80::1:0:0:0");
        assert_eq!(v6("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
    }

    #[test]
    fn words_are_big_endian() {
        let a = Addr::from_v4([10, 0, 0, 1]);
        assert_eq!(a.words(), [0x0a00_0001, 0, 0, 0]);
        assert_eq!(Addr::default().words(), [0; 4]);
    }

    #[test]
    fn family_icmp_protocol() {
        assert_eq!(Family::Ipv4.icmp_protocol(), 1);
        assert_eq!(Family::Ipv6.icmp_protocol(), 58);
    }
}
