// SPDX-License-Identifier: GPL-2.0

//! A packet read from its skb: the bytes of the headers the tracker needs, parsed by
//! [`Packet::parse`] (`rust/proto/packet.rs`), plus what only the skb knows.

use crate::abstractions::percpu::SoftirqSlot;
use crate::abstractions::skb::SkBuff;
use crate::proto::addr::Family;
use crate::proto::packet::Packet;

/// Packets parsed at the classification hook, handed to the confirmation hook of the same
/// packet when both run in one softirq (a received packet, or one the stack sends while
/// handling it): the common case then parses each packet once. Elsewhere, and when anything
/// ran in between (another packet classified, the packet queued), confirmation reads the
/// packet again. Confirmation so sees the headers classification saw, as nf_conntrack keeps
/// the tuple it took at the first hook.
pub(crate) type Handoff = SoftirqSlot<Tag, Packet>;

/// Which packet a handed-over [`Packet`] is.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Tag {
    /// The skb's address: the packet in flight between the two hooks.
    skb: usize,
    /// Its length: a packet reassembled in between keeps its last fragment's skb, never its
    /// length (it holds every fragment's bytes; overlapping fragments are dropped).
    len: u32,
    family: Family,
}

impl Tag {
    /// The tag of `skb`, a packet of `family`, as it is now.
    pub(crate) fn of(family: Family, skb: &SkBuff) -> Tag {
        Tag {
            skb: skb.as_ptr() as usize,
            len: skb.len(),
            family,
        }
    }
}

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
