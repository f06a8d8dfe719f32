// SPDX-License-Identifier: GPL-2.0

//! ICMP and ICMPv6 types and codes: names, and how the tracker treats each
//! type.
//!
//! IPv4 names follow the "ICMP Packet Filtering" guide, spelled as iptables
//! spells them (`--icmp-type`). The guide numbers destination-unreachable
//! codes 8 and above one lower than RFC 1812 does (it leaves out code 8,
//! "source host isolated"); the wire values here follow RFC 1812 and
//! iptables, so 3/9 is `network-prohibited` and 3/13
//! `communication-prohibited`. IPv6 names are those of ip6tables, or of
//! nftables where ip6tables has none (MLD).

use super::addr::Family;

/// How the tracker treats an ICMP type.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum IcmpKind {
    /// A query that creates an entry; `reply` is the answer's type.
    Request {
        /// The type of the matching reply.
        reply: u8,
    },
    /// The answer to a query; `request` is the query's type.
    Reply {
        /// The type of the matching request.
        request: u8,
    },
    /// An error about another packet, RELATED when that packet is tracked.
    Error,
    /// Not tracked at all (IPv6 neighbour discovery and MLD): UNTRACKED.
    Untracked,
    /// Anything else: INVALID.
    Other,
}

impl IcmpKind {
    /// Whether this is an error message.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error)
    }
}

/// How the tracker treats `icmp_type` in `family` (see Documentation/contract.rst).
///
/// IPv4 queries: echo 8->0, timestamp 13->14, information 15->16, address
/// mask 17->18, extended echo 42->43; errors 3, 4, 5, 11, 12. IPv6 queries:
/// echo 128->129, node information 139->140; errors every type below 128
/// (RFC 4443's error range, as nf_conntrack) and the redirect 137; neighbour
/// discovery 133-136 and MLD 130-132, 143 untracked. Everything else is
/// `Other`.
pub fn kind(family: Family, icmp_type: u8) -> IcmpKind {
    match family {
        Family::Ipv4 => match icmp_type {
            8 => IcmpKind::Request { reply: 0 },
            0 => IcmpKind::Reply { request: 8 },
            13 => IcmpKind::Request { reply: 14 },
            14 => IcmpKind::Reply { request: 13 },
            15 => IcmpKind::Request { reply: 16 },
            16 => IcmpKind::Reply { request: 15 },
            17 => IcmpKind::Request { reply: 18 },
            18 => IcmpKind::Reply { request: 17 },
            42 => IcmpKind::Request { reply: 43 },
            43 => IcmpKind::Reply { request: 42 },
            3 | 4 | 5 | 11 | 12 => IcmpKind::Error,
            _ => IcmpKind::Other,
        },
        Family::Ipv6 => match icmp_type {
            128 => IcmpKind::Request { reply: 129 },
            129 => IcmpKind::Reply { request: 128 },
            139 => IcmpKind::Request { reply: 140 },
            140 => IcmpKind::Reply { request: 139 },
            0..=127 | 137 => IcmpKind::Error,
            130..=136 | 143 => IcmpKind::Untracked,
            _ => IcmpKind::Other,
        },
    }
}

/// Whether the message is a path-MTU message, which never destroys an
/// entry: IPv4 3/4 fragmentation-needed, IPv6 2 packet-too-big (any code).
pub fn is_path_mtu_error(family: Family, icmp_type: u8, code: u8) -> bool {
    match family {
        Family::Ipv4 => icmp_type == 3 && code == 4,
        Family::Ipv6 => icmp_type == 2,
    }
}

/// The name of a type, or `None` when it has none.
pub fn type_name(family: Family, icmp_type: u8) -> Option<&'static str> {
    match family {
        Family::Ipv4 => v4_type_name(icmp_type),
        Family::Ipv6 => v6_type_name(icmp_type),
    }
}

/// The name of a code of a type, or `None` when it has none.
pub fn code_name(family: Family, icmp_type: u8, code: u8) -> Option<&'static str> {
    match family {
        Family::Ipv4 => v4_code_name(icmp_type, code),
        Family::Ipv6 => v6_code_name(icmp_type, code),
    }
}

fn v4_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "echo-reply",
        1 | 2 | 7 => "unassigned",
        3 => "destination-unreachable",
        4 => "source-quench",
        5 => "redirect",
        6 => "alternate-host-address",
        8 => "echo-request",
        9 => "router-advertisement",
        10 => "router-solicitation",
        11 => "time-exceeded",
        12 => "parameter-problem",
        13 => "timestamp-request",
        14 => "timestamp-reply",
        15 => "information-request",
        16 => "information-reply",
        17 => "address-mask-request",
        18 => "address-mask-reply",
        19..=29 => "reserved",
        30 => "traceroute",
        31 => "datagram-conversion-error",
        32 => "mobile-host-redirect",
        33 => "ipv6-where-are-you",
        34 => "ipv6-i-am-here",
        35 => "mobile-registration-request",
        36 => "mobile-registration-reply",
        37 => "domain-name-request",
        38 => "domain-name-reply",
        39 => "skip",
        40 => "photuris",
        41 => "experimental-mobility",
        42 => "extended-echo-request",
        43 => "extended-echo-reply",
        _ => return None,
    })
}

fn v4_code_name(t: u8, code: u8) -> Option<&'static str> {
    Some(match (t, code) {
        (3, 0) => "network-unreachable",
        (3, 1) => "host-unreachable",
        (3, 2) => "protocol-unreachable",
        (3, 3) => "port-unreachable",
        (3, 4) => "fragmentation-needed",
        (3, 5) => "source-route-failed",
        (3, 6) => "network-unknown",
        (3, 7) => "host-unknown",
        (3, 8) => "source-host-isolated",
        (3, 9) => "network-prohibited",
        (3, 10) => "host-prohibited",
        (3, 11) => "TOS-network-unreachable",
        (3, 12) => "TOS-host-unreachable",
        (3, 13) => "communication-prohibited",
        (3, 14) => "host-precedence-violation",
        (3, 15) => "precedence-cutoff",
        (5, 0) => "network-redirect",
        (5, 1) => "host-redirect",
        (5, 2) => "TOS-network-redirect",
        (5, 3) => "TOS-host-redirect",
        (11, 0) => "ttl-zero-during-transit",
        (11, 1) => "ttl-zero-during-reassembly",
        (12, 0) => "ip-header-bad",
        (12, 1) => "required-option-missing",
        (31, 0) => "unknown-error",
        (31, 1) => "dont-convert-option-present",
        (31, 2) => "unknown-mandatory-option-present",
        (31, 3) => "known-unsupported-option-present",
        (31, 4) => "unsupported-transport-protocol",
        (31, 5) => "overall-length-exceeded",
        (31, 6) => "ip-header-length-exceeded",
        (31, 7) => "transport-protocol-over-255",
        (31, 8) => "port-conversion-out-of-range",
        (31, 9) => "transport-header-length-exceeded",
        (31, 10) => "32-bit-rollover-missing-and-ack-set",
        (31, 11) => "unknown-mandatory-transport-option-present",
        (40, 0) => "bad-spi",
        (40, 1) => "authentication-failed",
        (40, 2) => "decompression-failed",
        (40, 3) => "decryption-failed",
        (40, 4) => "need-authentication",
        (40, 5) => "need-authorization",
        (43, 0) => "no-error",
        (43, 1) => "malformed-query",
        (43, 2) => "no-such-interface",
        (43, 3) => "no-such-table-entry",
        (43, 4) => "multiple-interfaces-satisfy-query",
        _ => return None,
    })
}

fn v6_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "destination-unreachable",
        2 => "packet-too-big",
        3 => "time-exceeded",
        4 => "parameter-problem",
        // The rest of the error range as IANA lists it.
        0 | 127 => "reserved",
        5..=99 | 102..=126 => "unassigned",
        100 | 101 => "private-experimentation",
        128 => "echo-request",
        129 => "echo-reply",
        130 => "mld-listener-query",
        131 => "mld-listener-report",
        132 => "mld-listener-done",
        133 => "router-solicitation",
        134 => "router-advertisement",
        135 => "neighbour-solicitation",
        136 => "neighbour-advertisement",
        137 => "redirect",
        139 => "node-information-query",
        140 => "node-information-response",
        143 => "mld2-listener-report",
        _ => return None,
    })
}

fn v6_code_name(t: u8, code: u8) -> Option<&'static str> {
    Some(match (t, code) {
        (1, 0) => "no-route",
        (1, 1) => "communication-prohibited",
        (1, 2) => "beyond-scope",
        (1, 3) => "address-unreachable",
        (1, 4) => "port-unreachable",
        (1, 5) => "failed-policy",
        (1, 6) => "reject-route",
        (3, 0) => "ttl-zero-during-transit",
        (3, 1) => "ttl-zero-during-reassembly",
        (4, 0) => "bad-header",
        (4, 1) => "unknown-header-type",
        (4, 2) => "unknown-option",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Family::{Ipv4, Ipv6};

    #[test]
    fn ipv4_query_pairs() {
        for (req, rep) in [(8, 0), (13, 14), (15, 16), (17, 18), (42, 43)] {
            assert_eq!(kind(Ipv4, req), IcmpKind::Request { reply: rep });
            assert_eq!(kind(Ipv4, rep), IcmpKind::Reply { request: req });
        }
    }

    #[test]
    fn ipv6_query_pairs() {
        for (req, rep) in [(128, 129), (139, 140)] {
            assert_eq!(kind(Ipv6, req), IcmpKind::Request { reply: rep });
            assert_eq!(kind(Ipv6, rep), IcmpKind::Reply { request: req });
        }
    }

    #[test]
    fn errors_untracked_and_other() {
        for t in [3, 4, 5, 11, 12] {
            assert!(kind(Ipv4, t).is_error(), "{t}");
        }
        for t in (0..128).chain([137]) {
            assert!(kind(Ipv6, t).is_error(), "{t}");
        }
        for t in [130, 131, 132, 133, 134, 135, 136, 143] {
            assert_eq!(kind(Ipv6, t), IcmpKind::Untracked, "{t}");
        }
        // Every type not listed in Documentation/contract.rst is INVALID.
        let v4_listed = [0, 3, 4, 5, 8, 11, 12, 13, 14, 15, 16, 17, 18, 42, 43];
        let v6_listed = [
            128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 139, 140, 143,
        ];
        for t in 0..=255u8 {
            if !v4_listed.contains(&t) {
                assert_eq!(kind(Ipv4, t), IcmpKind::Other, "v4 {t}");
            }
            if t >= 128 && !v6_listed.contains(&t) {
                assert_eq!(kind(Ipv6, t), IcmpKind::Other, "v6 {t}");
            }
        }
        // Router advertisement/solicitation are not tracked queries in IPv4.
        assert_eq!(kind(Ipv4, 9), IcmpKind::Other);
        assert_eq!(kind(Ipv4, 10), IcmpKind::Other);
    }

    #[test]
    fn type_names() {
        let v4 = [
            (0, "echo-reply"),
            (3, "destination-unreachable"),
            (4, "source-quench"),
            (5, "redirect"),
            (8, "echo-request"),
            (9, "router-advertisement"),
            (10, "router-solicitation"),
            (11, "time-exceeded"),
            (12, "parameter-problem"),
            (13, "timestamp-request"),
            (14, "timestamp-reply"),
            (15, "information-request"),
            (16, "information-reply"),
            (17, "address-mask-request"),
            (18, "address-mask-reply"),
            (30, "traceroute"),
            (31, "datagram-conversion-error"),
            (39, "skip"),
            (42, "extended-echo-request"),
            (43, "extended-echo-reply"),
        ];
        for (t, n) in v4 {
            assert_eq!(type_name(Ipv4, t), Some(n));
        }
        assert_eq!(type_name(Ipv4, 44), None);
        assert_eq!(type_name(Ipv4, 255), None);
        let v6 = [
            (1, "destination-unreachable"),
            (2, "packet-too-big"),
            (3, "time-exceeded"),
            (4, "parameter-problem"),
            (128, "echo-request"),
            (129, "echo-reply"),
            (133, "router-solicitation"),
            (135, "neighbour-solicitation"),
            (139, "node-information-query"),
            (140, "node-information-response"),
            (143, "mld2-listener-report"),
        ];
        for (t, n) in v6 {
            assert_eq!(type_name(Ipv6, t), Some(n));
        }
        assert_eq!(type_name(Ipv6, 0), Some("reserved"));
        assert_eq!(type_name(Ipv6, 8), Some("unassigned"));
        assert_eq!(type_name(Ipv6, 141), None);
        // Every tracked type has a name.
        for t in 0..=255u8 {
            if kind(Ipv4, t) != IcmpKind::Other {
                assert!(type_name(Ipv4, t).is_some(), "v4 {t}");
            }
            if kind(Ipv6, t) != IcmpKind::Other {
                assert!(type_name(Ipv6, t).is_some(), "v6 {t}");
            }
        }
    }

    #[test]
    fn code_names() {
        let unreachable = [
            "network-unreachable",
            "host-unreachable",
            "protocol-unreachable",
            "port-unreachable",
            "fragmentation-needed",
            "source-route-failed",
            "network-unknown",
            "host-unknown",
            "source-host-isolated",
            "network-prohibited",
            "host-prohibited",
            "TOS-network-unreachable",
            "TOS-host-unreachable",
            "communication-prohibited",
            "host-precedence-violation",
            "precedence-cutoff",
        ];
        for (c, n) in unreachable.iter().enumerate() {
            assert_eq!(code_name(Ipv4, 3, c as u8), Some(*n));
        }
        assert_eq!(code_name(Ipv4, 3, 16), None);
        assert_eq!(code_name(Ipv4, 5, 1), Some("host-redirect"));
        assert_eq!(code_name(Ipv4, 11, 0), Some("ttl-zero-during-transit"));
        assert_eq!(code_name(Ipv4, 11, 1), Some("ttl-zero-during-reassembly"));
        assert_eq!(code_name(Ipv4, 12, 0), Some("ip-header-bad"));
        assert_eq!(code_name(Ipv4, 12, 1), Some("required-option-missing"));
        assert_eq!(code_name(Ipv4, 40, 5), Some("need-authorization"));
        assert_eq!(code_name(Ipv4, 8, 0), None);
        assert_eq!(code_name(Ipv6, 1, 0), Some("no-route"));
        assert_eq!(code_name(Ipv6, 1, 4), Some("port-unreachable"));
        assert_eq!(code_name(Ipv6, 3, 1), Some("ttl-zero-during-reassembly"));
        assert_eq!(code_name(Ipv6, 4, 2), Some("unknown-option"));
        assert_eq!(code_name(Ipv6, 2, 0), None);
    }

    #[test]
    fn path_mtu() {
        assert!(is_path_mtu_error(Ipv4, 3, 4));
        assert!(!is_path_mtu_error(Ipv4, 3, 3));
        assert!(!is_path_mtu_error(Ipv4, 11, 4));
        assert!(!is_path_mtu_error(Ipv4, 2, 0));
        assert!(is_path_mtu_error(Ipv6, 2, 0));
        assert!(is_path_mtu_error(Ipv6, 2, 7));
        assert!(!is_path_mtu_error(Ipv6, 1, 4));
        assert!(!is_path_mtu_error(Ipv6, 3, 4));
    }
}
