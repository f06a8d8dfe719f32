// SPDX-License-Identifier: GPL-2.0

//! A packet read from its skb: the bytes of the headers the tracker needs, parsed by
//! [`Packet::parse`] (`rust/proto/packet.rs`), plus what only the skb knows.

use crate::abstractions::skb::SkBuff;
use crate::proto::addr::Family;
use crate::proto::packet::Packet;

/// Bytes read at once from the network header: all the headers of an ICMP or ICMPv6 message
/// or error without IP options or extension headers (IPv6: 40 + 8 + 40 + 8), so that most
/// packets cost one `skb_header_pointer`. Headers beyond are read one by one as the walk
/// reaches them.
const HEAD_LEN: usize = 96;

/// Reads and parses `skb`, a packet of `family`.
pub(crate) fn read(family: Family, skb: &SkBuff) -> Packet {
    if skb.is_notrack() {
        return Packet::NotTracked;
    }
    let mut head = [0u8; HEAD_LEN];
    let mut packet = Packet::parse(family, &skb.network_bytes(&mut head));
    if let Packet::IcmpError {
        from_host_stack, ..
    } = &mut packet
    {
        *from_host_stack = skb.sent_on_kernel_socket();
    }
    packet
}
