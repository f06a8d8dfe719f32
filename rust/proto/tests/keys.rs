// SPDX-License-Identifier: GPL-2.0

//! Property tests of the table's key codec: a key is its tuple, family included, and the
//! reply key computed from a key is the key of the reply tuple.

use icmp_ct_proto::addr::{Addr, Family};
use icmp_ct_proto::key::Key;
use icmp_ct_proto::tuple::{Tuple, IPPROTO_UDP, L4};
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
                              IPPROTO_UDP, sport, dport);
        let mapped = Tuple::ports(Family::Ipv6, v4_mapped(src), v4_mapped(dst),
                                  IPPROTO_UDP, sport, dport);
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
    let t = Tuple::ports(Family::Ipv4, lo, lo, IPPROTO_UDP, 7000, 7000);
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
