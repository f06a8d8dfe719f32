// SPDX-License-Identifier: GPL-2.0

//! What one IPv4 or IPv6 packet is to the tracker: parsed from the first bytes of its network
//! header with `proto`, without touching the packet.

use crate::abstractions::skb::SkBuff;
use crate::proto::addr::{Addr, Family};
use crate::proto::flow_state::{self, TcpFlags};
use crate::proto::icmp_types::{self, IcmpKind};
use crate::proto::state::InvalidReason;
use crate::proto::tuple::{self, Tuple, IPPROTO_TCP, IPPROTO_UDP};
use crate::proto::{icmp, icmp_error, ipv4, ipv6};

/// Bytes read from each packet: for IPv4 the longest header (60), the ICMP header (8), and
/// the embedded header of an ICMP error with the 8 bytes after it (68); for IPv6 the fixed
/// header (40) twice with room for extension headers. A packet whose headers do not fit is
/// INVALID (truncated), as nf_conntrack's would be beyond its own limits.
const SNAPLEN: usize = 256;

/// What the tracker needs of the IP header of either family.
struct IpView<'a> {
    src: Addr,
    dst: Addr,
    /// Upper-layer protocol.
    protocol: u8,
    /// The upper-layer bytes (empty for a non-first fragment).
    l4: &'a [u8],
    /// Offset of the upper-layer header from the network header.
    l4_offset: u32,
    /// Part of a fragmented packet.
    fragmented: bool,
    /// Starts with the upper-layer header (not a non-first fragment).
    has_transport_header: bool,
}

impl<'a> IpView<'a> {
    fn parse(family: Family, bytes: &'a [u8]) -> Result<Self, InvalidReason> {
        match family {
            Family::Ipv4 => {
                let ip = ipv4::parse(bytes)?;
                Ok(IpView {
                    src: Addr::from_v4(ip.src),
                    dst: Addr::from_v4(ip.dst),
                    protocol: ip.protocol,
                    l4: ip.payload(bytes),
                    l4_offset: u32::try_from(ip.header_len).unwrap_or(u32::MAX),
                    fragmented: ip.is_fragment(),
                    has_transport_header: ip.carries_transport_header(),
                })
            }
            Family::Ipv6 => {
                let ip = ipv6::parse(bytes)?;
                Ok(IpView {
                    src: Addr::from_v6(ip.src),
                    dst: Addr::from_v6(ip.dst),
                    protocol: ip.protocol,
                    l4: ip.payload(bytes),
                    l4_offset: u32::try_from(ip.l4_offset).unwrap_or(u32::MAX),
                    fragmented: ip.is_fragment(),
                    has_transport_header: ip.carries_transport_header(),
                })
            }
        }
    }
}

/// A packet as the tracker classifies it.
pub(crate) enum Packet {
    /// A non-first fragment: no transport header to track it by.
    Fragment {
        /// Whether the fragmented packet is an ICMP (or ICMPv6) message.
        icmp: bool,
    },
    /// A packet that cannot be tracked.
    Invalid {
        /// Why.
        reason: InvalidReason,
        /// The ICMP type, when the packet is an ICMP message with a readable header.
        icmp_type: Option<u8>,
    },
    /// A packet the raw table exempted from tracking (`notrack`).
    NotTracked,
    /// An ICMP query, reply or other non-error message.
    Icmp {
        /// Its tuple.
        tuple: Tuple,
        /// What its type is.
        kind: IcmpKind,
        /// Offset of the ICMP header from the network header, for checksumming.
        l4_offset: u32,
        /// Whether it is a fragment (then its checksum cannot be verified).
        fragmented: bool,
    },
    /// An ICMP error about the flow of `embedded`.
    IcmpError {
        /// The tuple of the packet the error is about, as its sender sent it.
        embedded: Tuple,
        /// Its ICMP type.
        icmp_type: u8,
        /// Its ICMP code.
        code: u8,
        /// Offset of the ICMP header from the network header, for checksumming.
        l4_offset: u32,
        /// Whether it is a fragment (then its checksum cannot be verified).
        fragmented: bool,
    },
    /// A UDP, TCP or other IP protocol packet.
    Flow {
        /// Its tuple.
        tuple: Tuple,
        /// The TCP flags for TCP.
        tcp: Option<TcpFlags>,
    },
}

impl Packet {
    /// Whether this is a fragment of an ICMP message (first or later).
    pub(crate) fn is_fragmented_icmp(&self) -> bool {
        matches!(
            self,
            Packet::Fragment { icmp: true }
                | Packet::Icmp {
                    fragmented: true,
                    ..
                }
                | Packet::IcmpError {
                    fragmented: true,
                    ..
                }
        )
    }

    /// Reads and parses `skb`, a packet of `family`.
    pub(crate) fn read(family: Family, skb: &SkBuff) -> Packet {
        if skb.is_notrack() {
            return Packet::NotTracked;
        }
        let truncated = Packet::Invalid {
            reason: ipv4::ParseError::TruncatedIpHeader.into(),
            icmp_type: None,
        };
        let mut buffer = [0u8; SNAPLEN];
        let Ok(offset) = u32::try_from(skb.network_offset()) else {
            return truncated;
        };
        let available = skb.len().saturating_sub(offset) as usize;
        let Some(wanted) = buffer.get_mut(..available.min(SNAPLEN)) else {
            return truncated;
        };
        match skb.header(offset, wanted) {
            Some(bytes) => Packet::parse(family, bytes),
            None => truncated,
        }
    }

    /// Parses the first bytes of a packet of `family`.
    pub(crate) fn parse(family: Family, bytes: &[u8]) -> Packet {
        Self::try_parse(family, bytes).unwrap_or_else(|reason| Packet::Invalid {
            reason,
            icmp_type: None,
        })
    }

    /// The ICMP type of an ICMP message whose header could be read.
    pub(crate) fn icmp_type(&self) -> Option<u8> {
        match self {
            Packet::Icmp {
                tuple:
                    Tuple {
                        l4: tuple::L4::Icmp { icmp_type, .. },
                        ..
                    },
                ..
            }
            | Packet::IcmpError { icmp_type, .. } => Some(*icmp_type),
            Packet::Invalid { icmp_type, .. } => *icmp_type,
            _ => None,
        }
    }

    fn try_parse(family: Family, bytes: &[u8]) -> Result<Packet, InvalidReason> {
        let ip = IpView::parse(family, bytes)?;
        let icmp_protocol = family.icmp_protocol();
        if !ip.has_transport_header {
            return Ok(Packet::Fragment {
                icmp: ip.protocol == icmp_protocol,
            });
        }
        let IpView {
            src,
            dst,
            l4,
            l4_offset,
            fragmented,
            ..
        } = ip;
        Ok(match ip.protocol {
            protocol if protocol == icmp_protocol => {
                let header = icmp::parse(l4)?;
                match icmp_types::kind(family, header.icmp_type) {
                    IcmpKind::Error => {
                        let embedded = match family {
                            Family::Ipv4 => icmp_error::parse_embedded_v4(icmp::payload(l4)),
                            Family::Ipv6 => icmp_error::parse_embedded_v6(icmp::payload(l4)),
                        };
                        let checked = embedded.map_err(InvalidReason::from).and_then(|embedded| {
                            icmp_error::check_embedded(dst, &embedded).map(|()| embedded)
                        });
                        let embedded = match checked {
                            Ok(embedded) => embedded,
                            Err(reason) => {
                                return Ok(Packet::Invalid {
                                    reason,
                                    icmp_type: Some(header.icmp_type),
                                })
                            }
                        };
                        Packet::IcmpError {
                            embedded: embedded.tuple,
                            icmp_type: header.icmp_type,
                            code: header.code,
                            l4_offset,
                            fragmented,
                        }
                    }
                    kind => Packet::Icmp {
                        tuple: Tuple::icmp(
                            family,
                            src,
                            dst,
                            header.icmp_type,
                            header.code,
                            header.id(),
                        ),
                        kind,
                        l4_offset,
                        fragmented,
                    },
                }
            }
            IPPROTO_TCP => {
                let header = flow_state::parse_tcp(l4)?;
                Packet::Flow {
                    tuple: Tuple::ports(family, src, dst, ip.protocol, header.sport, header.dport),
                    tcp: Some(header.flags),
                }
            }
            IPPROTO_UDP => Packet::Flow {
                tuple: Tuple {
                    family,
                    src,
                    dst,
                    protocol: ip.protocol,
                    l4: tuple::l4_from_transport(family, ip.protocol, l4)?,
                },
                tcp: None,
            },
            protocol => Packet::Flow {
                tuple: Tuple::generic(family, src, dst, protocol),
                tcp: None,
            },
        })
    }
}
