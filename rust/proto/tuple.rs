// SPDX-License-Identifier: GPL-2.0

//! Connection tuples: what identifies one direction of a tracked flow.

use core::fmt;

use super::addr::{Addr, Family};
use super::error::ParseError;
use super::icmp_types::{self, IcmpKind};

/// Protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// Protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// Protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// Protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// The transport part of a tuple.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum L4 {
    /// ICMP / ICMPv6: type, code and query identifier.
    Icmp {
        /// Message type.
        icmp_type: u8,
        /// Message code.
        code: u8,
        /// Query identifier.
        id: u16,
    },
    /// TCP and UDP: source and destination ports.
    Ports {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// Any other protocol: addresses and protocol only.
    None,
}

/// One direction of a flow.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Tuple {
    /// Address family.
    pub family: Family,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// IP protocol number (last upper-layer header for IPv6).
    pub protocol: u8,
    /// Transport fields.
    pub l4: L4,
}

/// Whether the tracker keys `protocol` by ports (TCP and UDP).
pub fn uses_ports(protocol: u8) -> bool {
    protocol == IPPROTO_TCP || protocol == IPPROTO_UDP
}

/// The transport part of a tuple for `protocol` from the first bytes of its
/// header, `transport`.
///
/// TCP and UDP need their first 8 bytes (the ports are in the first 4),
/// this family's ICMP its 8-byte header; other protocols need nothing and
/// give [`L4::None`].
pub fn l4_from_transport(family: Family, protocol: u8, transport: &[u8]) -> Result<L4, ParseError> {
    if protocol == family.icmp_protocol() {
        let (h, _) = transport
            .split_first_chunk::<8>()
            .ok_or(ParseError::TruncatedIcmpHeader)?;
        let [icmp_type, code, _, _, i0, i1, _, _] = *h;
        Ok(L4::Icmp {
            icmp_type,
            code,
            id: u16::from_be_bytes([i0, i1]),
        })
    } else if uses_ports(protocol) {
        let (h, _) = transport
            .split_first_chunk::<8>()
            .ok_or(ParseError::TruncatedL4Header)?;
        let [s0, s1, d0, d1, ..] = *h;
        Ok(L4::Ports {
            sport: u16::from_be_bytes([s0, s1]),
            dport: u16::from_be_bytes([d0, d1]),
        })
    } else {
        Ok(L4::None)
    }
}

impl Tuple {
    /// An ICMP (IPv4) or ICMPv6 (IPv6) tuple.
    pub fn icmp(family: Family, src: Addr, dst: Addr, icmp_type: u8, code: u8, id: u16) -> Self {
        Self {
            family,
            src,
            dst,
            protocol: family.icmp_protocol(),
            l4: L4::Icmp {
                icmp_type,
                code,
                id,
            },
        }
    }

    /// A TCP or UDP tuple.
    pub fn ports(
        family: Family,
        src: Addr,
        dst: Addr,
        protocol: u8,
        sport: u16,
        dport: u16,
    ) -> Self {
        Self {
            family,
            src,
            dst,
            protocol,
            l4: L4::Ports { sport, dport },
        }
    }

    /// A tuple of any other protocol.
    pub fn generic(family: Family, src: Addr, dst: Addr, protocol: u8) -> Self {
        Self {
            family,
            src,
            dst,
            protocol,
            l4: L4::None,
        }
    }

    /// The same tuple with the addresses swapped and the transport part
    /// replaced.
    fn swapped(&self, l4: L4) -> Self {
        Self {
            family: self.family,
            src: self.dst,
            dst: self.src,
            protocol: self.protocol,
            l4,
        }
    }

    /// The expected reply to the original tuple `self`: addresses swapped;
    /// for ICMP the request type mapped to its reply type, code and id kept
    /// (`None` when the type is not a request); ports swapped; other
    /// protocols unchanged.
    pub fn reply(&self) -> Option<Tuple> {
        match self.l4 {
            L4::Icmp {
                icmp_type,
                code,
                id,
            } => match icmp_types::kind(self.family, icmp_type) {
                IcmpKind::Request { reply } => Some(self.swapped(L4::Icmp {
                    icmp_type: reply,
                    code,
                    id,
                })),
                _ => None,
            },
            _ => self.invert(),
        }
    }

    /// The inverse tuple in either direction: like [`Tuple::reply`], and
    /// also maps an ICMP reply type back to its request type, so that
    /// `t.reply()?.invert() == Some(t)` for every request tuple. `None` for
    /// ICMP types that are neither request nor reply.
    pub fn invert(&self) -> Option<Tuple> {
        let l4 = match self.l4 {
            L4::Icmp {
                icmp_type,
                code,
                id,
            } => {
                let t = match icmp_types::kind(self.family, icmp_type) {
                    IcmpKind::Request { reply } => reply,
                    IcmpKind::Reply { request } => request,
                    _ => return None,
                };
                L4::Icmp {
                    icmp_type: t,
                    code,
                    id,
                }
            }
            L4::Ports { sport, dport } => L4::Ports {
                sport: dport,
                dport: sport,
            },
            L4::None => L4::None,
        };
        Some(self.swapped(l4))
    }

    /// Writes the tuple as in `/proc/net/ip_conntrack`:
    /// `src=A dst=B type=8 code=0 id=33029`, `src=A dst=B sport=137
    /// dport=1025` or `src=A dst=B`.
    pub fn write<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        w.write_str("src=")?;
        self.src.write(self.family, w)?;
        w.write_str(" dst=")?;
        self.dst.write(self.family, w)?;
        match self.l4 {
            L4::Icmp {
                icmp_type,
                code,
                id,
            } => write!(w, " type={} code={} id={}", icmp_type, code, id),
            L4::Ports { sport, dport } => write!(w, " sport={} dport={}", sport, dport),
            L4::None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use Family::{Ipv4, Ipv6};

    fn a4(x: u8) -> Addr {
        Addr::from_v4([192, 168, 1, x])
    }

    fn a6(x: u8) -> Addr {
        let mut b = [0u8; 16];
        b[0] = 0xfd;
        b[15] = x;
        Addr::from_v6(b)
    }

    fn text(t: &Tuple) -> String {
        let mut s = String::new();
        t.write(&mut s).unwrap();
        s
    }

    #[test]
    fn every_query_pair_replies_and_inverts() {
        let pairs = [
            (Ipv4, 8, 0),
            (Ipv4, 13, 14),
            (Ipv4, 15, 16),
            (Ipv4, 17, 18),
            (Ipv4, 42, 43),
            (Ipv6, 128, 129),
            (Ipv6, 139, 140),
        ];
        for (fam, req, rep) in pairs {
            let (s, d) = match fam {
                Ipv4 => (a4(6), a4(10)),
                Ipv6 => (a6(1), a6(2)),
            };
            let t = Tuple::icmp(fam, s, d, req, 0, 33029);
            let r = t.reply().unwrap();
            assert_eq!(r, Tuple::icmp(fam, d, s, rep, 0, 33029));
            assert_eq!(r.invert(), Some(t));
            assert_eq!(t.invert(), Some(r));
            // A reply type has no reply of its own.
            assert_eq!(r.reply(), None);
            // The code is kept.
            let t = Tuple::icmp(fam, s, d, req, 3, 1);
            assert_eq!(
                t.reply().unwrap().l4,
                L4::Icmp {
                    icmp_type: rep,
                    code: 3,
                    id: 1
                }
            );
        }
    }

    #[test]
    fn non_query_icmp_has_no_reply() {
        for (fam, ty) in [
            (Ipv4, 3),
            (Ipv4, 11),
            (Ipv4, 9),
            (Ipv6, 1),
            (Ipv6, 135),
            (Ipv6, 8),
        ] {
            let t = Tuple::icmp(fam, Addr::default(), Addr::default(), ty, 0, 0);
            assert_eq!(t.reply(), None);
            assert_eq!(t.invert(), None);
        }
    }

    #[test]
    fn ports_and_generic() {
        let t = Tuple::ports(Ipv4, a4(2), a4(5), IPPROTO_UDP, 137, 1025);
        let r = t.reply().unwrap();
        assert_eq!(r, Tuple::ports(Ipv4, a4(5), a4(2), IPPROTO_UDP, 1025, 137));
        assert_eq!(r.invert(), Some(t));
        let g = Tuple::generic(Ipv4, a4(1), a4(2), 47);
        assert_eq!(g.reply(), Some(Tuple::generic(Ipv4, a4(2), a4(1), 47)));
    }

    #[test]
    fn writes_tuples() {
        let t = Tuple::icmp(Ipv4, a4(6), a4(10), 8, 0, 33029);
        assert_eq!(
            text(&t),
            "src=192.168.1.6 dst=192.168.1.10 type=8 code=0 id=33029"
        );
        let t = Tuple::ports(Ipv4, a4(2), a4(5), IPPROTO_UDP, 137, 1025);
        assert_eq!(
            text(&t),
            "src=192.168.1.2 dst=192.168.1.5 sport=137 dport=1025"
        );
        let t = Tuple::generic(Ipv6, a6(1), a6(2), 47);
        assert_eq!(text(&t), "src=fd00::1 dst=fd00::2");
    }

    #[test]
    fn l4_extraction() {
        let icmp = [8, 0, 0, 0, 0x81, 0x05, 0, 1];
        assert_eq!(
            l4_from_transport(Ipv4, 1, &icmp),
            Ok(L4::Icmp {
                icmp_type: 8,
                code: 0,
                id: 33029
            })
        );
        assert_eq!(
            l4_from_transport(Ipv4, 1, &icmp[..7]),
            Err(ParseError::TruncatedIcmpHeader)
        );
        // Protocol 1 inside IPv6 is not ICMPv6: generic.
        assert_eq!(l4_from_transport(Ipv6, 1, &icmp), Ok(L4::None));
        assert_eq!(
            l4_from_transport(Ipv6, 58, &[128, 0, 0, 0, 0, 7, 0, 1]),
            Ok(L4::Icmp {
                icmp_type: 128,
                code: 0,
                id: 7
            })
        );
        let udp = [0, 137, 4, 1, 0, 8, 0, 0];
        assert_eq!(
            l4_from_transport(Ipv4, 17, &udp),
            Ok(L4::Ports {
                sport: 137,
                dport: 1025
            })
        );
        assert_eq!(
            l4_from_transport(Ipv4, 6, &udp[..4]),
            Err(ParseError::TruncatedL4Header)
        );
        assert_eq!(l4_from_transport(Ipv4, 47, &[]), Ok(L4::None));
    }
}
