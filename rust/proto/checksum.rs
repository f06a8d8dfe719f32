// SPDX-License-Identifier: GPL-2.0

//! The Internet checksum (RFC 1071) and the ICMPv6 variant with its IPv6
//! pseudo-header (RFC 4443 section 2.3).

/// Adds `data` as big-endian 16-bit words to the one's complement
/// accumulator `sum` (an odd trailing byte is padded with a zero byte).
///
/// The accumulator keeps the end-around carry at 32 bits, which is
/// congruent modulo 0xffff, so it never overflows whatever the length.
pub fn ones_complement_add(sum: u32, data: &[u8]) -> u32 {
    let mut acc = sum;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            [hi] => u16::from_be_bytes([*hi, 0]),
            _ => 0,
        };
        acc = add_carry(acc, u32::from(word));
    }
    acc
}

/// One's complement 32-bit addition with end-around carry.
fn add_carry(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u32::from(carry))
}

/// Folds a 32-bit accumulator to 16 bits (not complemented).
pub fn fold(sum: u32) -> u16 {
    let mut s = sum;
    while s > 0xffff {
        s = (s & 0xffff).wrapping_add(s >> 16);
    }
    s as u16
}

/// The RFC 1071 checksum of `data`: one's complement of the one's
/// complement sum of its 16-bit words, an odd length padded with zero.
///
/// Computed over a header whose checksum field is zero, this is the value
/// to store in that field.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(ones_complement_add(0, data))
}

/// Whether `data`, checksum field included, sums to 0xffff (valid).
pub fn checksum_is_valid(data: &[u8]) -> bool {
    fold(ones_complement_add(0, data)) == 0xffff
}

/// Accumulator primed with the ICMPv6 pseudo-header (source, destination,
/// upper-layer length, next header 58).
fn icmpv6_pseudo_header(src: &[u8; 16], dst: &[u8; 16], len: usize) -> u32 {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let mut acc = ones_complement_add(0, src);
    acc = ones_complement_add(acc, dst);
    acc = ones_complement_add(acc, &len.to_be_bytes());
    ones_complement_add(acc, &[0, 0, 0, 58])
}

/// The ICMPv6 checksum of the message `icmp` (its checksum field zero)
/// sent from `src` to `dst`.
pub fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], icmp: &[u8]) -> u16 {
    !fold(ones_complement_add(
        icmpv6_pseudo_header(src, dst, icmp.len()),
        icmp,
    ))
}

/// Whether the ICMPv6 message `icmp`, checksum field included, is valid
/// for the addresses `src` and `dst`.
pub fn icmpv6_checksum_is_valid(src: &[u8; 16], dst: &[u8; 16], icmp: &[u8]) -> bool {
    fold(ones_complement_add(
        icmpv6_pseudo_header(src, dst, icmp.len()),
        icmp,
    )) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_complement_add(0, &data)), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(internet_checksum(&[0x12]), !0x1200);
        assert_eq!(internet_checksum(&[0x12, 0x34, 0x56]), !0x6834);
    }

    #[test]
    fn known_ipv4_header() {
        // Classic example header, checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
        assert!(!checksum_is_valid(&h));
        h[10] = 0xb8;
        h[11] = 0x61;
        assert!(checksum_is_valid(&h));
        h[15] ^= 1;
        assert!(!checksum_is_valid(&h));
    }

    #[test]
    fn fold_carries() {
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0002_0000), 0x0002);
        // End-around carry at 32 bits.
        assert_eq!(add_carry(0xffff_ffff, 1), 1);
    }

    #[test]
    fn empty_is_not_valid() {
        assert_eq!(internet_checksum(&[]), 0xffff);
        assert!(!checksum_is_valid(&[]));
    }

    #[test]
    fn icmpv6_echo_request() {
        let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut msg = [128u8, 0, 0, 0, 0, 7, 0, 1, b'a', b'b', b'c'];
        let c = icmpv6_checksum(&src, &dst, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(icmpv6_checksum_is_valid(&src, &dst, &msg));
        // Pseudo-header matters: other destination, invalid.
        assert!(!icmpv6_checksum_is_valid(&src, &src, &msg));
        // Without the pseudo-header the plain sum does not validate.
        assert!(!checksum_is_valid(&msg));
    }
}
