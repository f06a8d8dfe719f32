// SPDX-License-Identifier: GPL-2.0

//! The table's key: a tuple as ten 32-bit words, hashed (`jhash2`) and compared as they are.
//!
//! Word 0 holds the family, the protocol and which kind of transport fields follow, word 1
//! those fields, words 2-5 the source and 6-9 the destination address (an IPv4 address in
//! the first word, zeros after it). The family is part of the key: an IPv6 packet from
//! `::ffff:10.0.0.1` is another flow than an IPv4 packet from `10.0.0.1`.

use super::addr::{Addr, Family};
use super::icmp_types::{self, IcmpKind};
use super::tuple::{Tuple, L4};

/// Words in a key.
pub const KEY_WORDS: usize = 10;

/// A tuple in the table's key form.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Key(pub [u32; KEY_WORDS]);

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;
const KIND_ICMP: u8 = 1;
const KIND_PORTS: u8 = 2;
const KIND_NONE: u8 = 3;

impl Key {
    /// The key of `tuple`.
    pub fn of(tuple: &Tuple) -> Key {
        let family = match tuple.family {
            Family::Ipv4 => FAMILY_V4,
            Family::Ipv6 => FAMILY_V6,
        };
        let (kind, fields) = match tuple.l4 {
            L4::Icmp {
                icmp_type,
                code,
                id,
            } => {
                let [i0, i1] = id.to_be_bytes();
                (KIND_ICMP, [icmp_type, code, i0, i1])
            }
            L4::Ports { sport, dport } => {
                let [s0, s1] = sport.to_be_bytes();
                let [d0, d1] = dport.to_be_bytes();
                (KIND_PORTS, [s0, s1, d0, d1])
            }
            L4::None => (KIND_NONE, [0; 4]),
        };
        let [s0, s1, s2, s3] = tuple.src.words();
        let [d0, d1, d2, d3] = tuple.dst.words();
        Key([
            u32::from_be_bytes([family, tuple.protocol, kind, 0]),
            u32::from_be_bytes(fields),
            s0,
            s1,
            s2,
            s3,
            d0,
            d1,
            d2,
            d3,
        ])
    }

    /// The protocol of the tuple this key was made from.
    pub fn protocol(&self) -> u8 {
        let [head, ..] = self.0;
        let [_, protocol, _, _] = head.to_be_bytes();
        protocol
    }

    /// The tuple this key was made from; `None` for words no tuple gives.
    pub fn tuple(&self) -> Option<Tuple> {
        let [head, fields, s0, s1, s2, s3, d0, d1, d2, d3] = self.0;
        let [family, protocol, kind, zero] = head.to_be_bytes();
        let family = match (family, zero) {
            (FAMILY_V4, 0) => Family::Ipv4,
            (FAMILY_V6, 0) => Family::Ipv6,
            _ => return None,
        };
        let [f0, f1, f2, f3] = fields.to_be_bytes();
        let l4 = match kind {
            KIND_ICMP => L4::Icmp {
                icmp_type: f0,
                code: f1,
                id: u16::from_be_bytes([f2, f3]),
            },
            KIND_PORTS => L4::Ports {
                sport: u16::from_be_bytes([f0, f1]),
                dport: u16::from_be_bytes([f2, f3]),
            },
            KIND_NONE if fields == 0 => L4::None,
            _ => return None,
        };
        let addr = |words: [u32; 4]| match (family, words) {
            (Family::Ipv4, [w0, 0, 0, 0]) => Some(Addr::from_v4(w0.to_be_bytes())),
            (Family::Ipv4, _) => None,
            (Family::Ipv6, _) => Some(Addr::from_words(words)),
        };
        Some(Tuple {
            family,
            src: addr([s0, s1, s2, s3])?,
            dst: addr([d0, d1, d2, d3])?,
            protocol,
            l4,
        })
    }

    /// The key of the reply to the flow whose original tuple has this key; `None` when that
    /// tuple has no reply (an ICMP type that is not a request), or for words no tuple gives.
    /// Computed on the words (the table's hash callback keys reply nodes with it), equal to
    /// the key of [`Tuple::reply`].
    pub fn reply(&self) -> Option<Key> {
        let [head, _, s0, s1, s2, s3, d0, d1, d2, d3] = self.0;
        Some(Key([
            head,
            self.reply_fields()?,
            d0,
            d1,
            d2,
            d3,
            s0,
            s1,
            s2,
            s3,
        ]))
    }

    /// Word 1 of [`Self::reply`], the transport fields; `None` as for it.
    fn reply_fields(&self) -> Option<u32> {
        let [head, fields, _, s1, s2, s3, _, d1, d2, d3] = self.0;
        let [family, _, kind, zero] = head.to_be_bytes();
        let family = match (family, zero) {
            (FAMILY_V4, 0) if s1 | s2 | s3 | d1 | d2 | d3 == 0 => Family::Ipv4,
            (FAMILY_V6, 0) => Family::Ipv6,
            _ => return None,
        };
        match kind {
            KIND_ICMP => {
                let [icmp_type, code, i0, i1] = fields.to_be_bytes();
                match icmp_types::kind(family, icmp_type) {
                    IcmpKind::Request { reply } => Some(u32::from_be_bytes([reply, code, i0, i1])),
                    _ => None,
                }
            }
            // Source and destination port swapped.
            KIND_PORTS => Some(fields.rotate_left(16)),
            KIND_NONE if fields == 0 => Some(0),
            _ => None,
        }
    }

    /// Whether `wanted` is [`Self::reply`]: what the compare callback asks of every reply
    /// node it meets, answered without building the reply key (the swapped addresses, which
    /// differ most often, first).
    pub fn has_reply(&self, wanted: &Key) -> bool {
        let [head, _, s0, s1, s2, s3, d0, d1, d2, d3] = self.0;
        let [w_head, w_fields, ws0, ws1, ws2, ws3, wd0, wd1, wd2, wd3] = wanted.0;
        [ws0, ws1, ws2, ws3, wd0, wd1, wd2, wd3] == [d0, d1, d2, d3, s0, s1, s2, s3]
            && w_head == head
            && self.reply_fields() == Some(w_fields)
    }
}
