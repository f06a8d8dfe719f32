// SPDX-License-Identifier: GPL-2.0

//! What one IPv4 or IPv6 packet is to the tracker: parsed from the headers it needs, each
//! read once along the header chain. The kernel reads a packet's bytes from its skb and calls
//! [`Packet::parse`]; the host tests and fuzzers call the same function on byte slices.

use super::addr::{Addr, Family};
use super::decide::Subject;
use super::flow_state;
use super::icmp_types::{self, IcmpKind};
use super::reader::{self, PacketBytes, Window};
use super::state::InvalidReason;
use super::tcp_window::{self, TcpSegment};
use super::tuple::{self, Tuple, IPPROTO_TCP, IPPROTO_UDP};
use super::{icmp, icmp_error, ipv4, ipv6};

/// The longest TCP header (data offset 15): `parse_tcp` checks the options are there, and
/// sequence tracking reads the window scale among them.
const TCP_MAX_HEADER_LEN: usize = 60;

/// The UDP header, and all the tracker reads of other transport headers (ports).
const TRANSPORT_LEN: usize = 8;

/// What the tracker needs of the IP header of either family.
struct IpView<'a, R: ?Sized> {
    src: Addr,
    dst: Addr,
    /// Upper-layer protocol.
    protocol: u8,
    /// IPv4 TTL or IPv6 hop limit.
    hop_limit: u8,
    /// The upper-layer bytes (empty for a non-first fragment).
    l4: Window<'a, R>,
    /// Offset of the upper-layer header from the network header.
    l4_offset: u32,
    /// Part of a fragmented packet.
    fragmented: bool,
    /// Starts with the upper-layer header (not a non-first fragment).
    has_transport_header: bool,
}

impl<'a, R: PacketBytes + ?Sized> IpView<'a, R> {
    fn parse(family: Family, bytes: &'a R) -> Result<Self, InvalidReason> {
        match family {
            Family::Ipv4 => {
                let ip = ipv4::read(bytes)?;
                Ok(IpView {
                    src: Addr::from_v4(ip.src),
                    dst: Addr::from_v4(ip.dst),
                    protocol: ip.protocol,
                    hop_limit: ip.ttl,
                    l4: ip.payload_window(bytes),
                    l4_offset: u32::try_from(ip.header_len).unwrap_or(u32::MAX),
                    fragmented: ip.is_fragment(),
                    has_transport_header: ip.carries_transport_header(),
                })
            }
            Family::Ipv6 => {
                let ip = ipv6::read(bytes)?;
                Ok(IpView {
                    src: Addr::from_v6(ip.src),
                    dst: Addr::from_v6(ip.dst),
                    protocol: ip.protocol,
                    hop_limit: ip.hop_limit,
                    l4: ip.payload_window(bytes),
                    l4_offset: u32::try_from(ip.l4_offset).unwrap_or(u32::MAX),
                    fragmented: ip.is_fragment(),
                    has_transport_header: ip.carries_transport_header(),
                })
            }
        }
    }
}

/// A packet as the tracker classifies it.
#[derive(Clone, Copy)]
pub enum Packet {
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
        /// Written by this host's own stack (`icmp_send`, `icmpv6_send`), not by a process.
        from_host_stack: bool,
    },
    /// A UDP, TCP or other IP protocol packet.
    Flow {
        /// Its tuple.
        tuple: Tuple,
        /// The TCP segment's fields, for TCP.
        tcp: Option<TcpSegment>,
    },
}

impl Packet {
    /// Whether this is a fragment of an ICMP message (first or later).
    pub fn is_fragmented_icmp(&self) -> bool {
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

    /// Parses a packet of `family` (its bytes from the network header).
    ///
    /// Returns the packet itself rather than a `Result`, so that it is built where the
    /// caller keeps it: every hook parses, and moving it out of a `Result` was a copy each.
    pub fn parse<R: PacketBytes + ?Sized>(family: Family, bytes: &R) -> Packet {
        /// `?` for a parse step that fails with a reason: the packet is INVALID for it.
        macro_rules! step {
            ($result:expr) => {
                match $result {
                    Ok(value) => value,
                    Err(reason) => {
                        return Packet::Invalid {
                            reason: InvalidReason::from(reason),
                            icmp_type: None,
                        }
                    }
                }
            };
        }
        let ip = step!(IpView::parse(family, bytes));
        let icmp_protocol = family.icmp_protocol();
        if !ip.has_transport_header {
            return Packet::Fragment {
                icmp: ip.protocol == icmp_protocol,
            };
        }
        let IpView {
            src,
            dst,
            hop_limit,
            l4,
            l4_offset,
            fragmented,
            ..
        } = ip;
        match ip.protocol {
            protocol if protocol == icmp_protocol => {
                let header = step!(icmp::read(&l4));
                match icmp_types::kind(family, header.icmp_type) {
                    IcmpKind::Error => {
                        let payload = l4.skip(icmp::HEADER_LEN);
                        let embedded =
                            match family {
                                Family::Ipv4 => icmp_error::read_embedded_v4(&payload)
                                    .map_err(InvalidReason::from),
                                Family::Ipv6 if header.icmp_type == icmp_error::ICMPV6_REDIRECT => {
                                    icmp_error::read_redirect(&l4, header.code, hop_limit, src)
                                }
                                Family::Ipv6 => icmp_error::read_embedded_v6(&payload)
                                    .map_err(InvalidReason::from),
                            };
                        let checked = embedded.and_then(|embedded| {
                            icmp_error::check_embedded(dst, &embedded).map(|()| embedded)
                        });
                        let embedded = match checked {
                            Ok(embedded) => embedded,
                            Err(reason) => {
                                return Packet::Invalid {
                                    reason,
                                    icmp_type: Some(header.icmp_type),
                                }
                            }
                        };
                        Packet::IcmpError {
                            embedded: embedded.tuple,
                            icmp_type: header.icmp_type,
                            code: header.code,
                            l4_offset,
                            fragmented,
                            from_host_stack: false,
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
                let mut buffer = [0u8; TCP_MAX_HEADER_LEN];
                let bytes = reader::prefix(&l4, 0, &mut buffer);
                let header = step!(flow_state::parse_tcp(bytes));
                Packet::Flow {
                    tuple: Tuple::ports(family, src, dst, ip.protocol, header.sport, header.dport),
                    tcp: Some(tcp_window::segment(&header, bytes, l4.len())),
                }
            }
            IPPROTO_UDP => Packet::Flow {
                tuple: Tuple {
                    family,
                    src,
                    dst,
                    protocol: ip.protocol,
                    l4: step!(tuple::l4_from_transport(
                        family,
                        ip.protocol,
                        reader::prefix(&l4, 0, &mut [0u8; TRANSPORT_LEN]),
                    )),
                },
                tcp: None,
            },
            protocol => Packet::Flow {
                tuple: Tuple::generic(family, src, dst, protocol),
                tcp: None,
            },
        }
    }

    /// What the decision needs of the packet, and the tuple to look up for it; `None` for a
    /// packet that is not looked up. `local_output`: the packet is at the local output hook,
    /// where an error this host's own stack sends about a packet it refused needs no entry.
    pub fn subject(&self, local_output: bool) -> Option<(Subject<'_>, &Tuple)> {
        match self {
            Packet::Fragment { .. } | Packet::NotTracked | Packet::Invalid { .. } => None,
            Packet::Icmp { tuple, kind, .. } => {
                Some((Subject::Query { tuple, kind: *kind }, tuple))
            }
            Packet::IcmpError {
                embedded,
                icmp_type,
                code,
                from_host_stack,
                ..
            } => Some((
                Subject::Error {
                    family: embedded.family,
                    icmp_type: *icmp_type,
                    code: *code,
                    local: local_output && *from_host_stack,
                },
                embedded,
            )),
            Packet::Flow { tuple, tcp } => Some((Subject::Flow { tuple, tcp: *tcp }, tuple)),
        }
    }

    /// The ICMP type of an ICMP message whose header could be read.
    pub fn icmp_type(&self) -> Option<u8> {
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
}
