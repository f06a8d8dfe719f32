// SPDX-License-Identifier: GPL-2.0

//! Socket buffers (`struct sk_buff`), as the netfilter hooks see them.

use crate::abstractions::netfilter::HookPoint;
use crate::bindings;
use crate::proto::addr::Family;
use crate::proto::reader::PacketBytes;
use kernel::types::Opaque;

/// A packet handed to a netfilter hook.
///
/// # Invariants
///
/// A `&SkBuff` refers to a live `sk_buff` that nobody else modifies while the reference
/// exists (netfilter hooks own the packet for the duration of the call).
#[repr(transparent)]
pub(crate) struct SkBuff(Opaque<bindings::sk_buff>);

impl SkBuff {
    /// Creates a reference to the packet at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a live `sk_buff` owned by the caller for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::sk_buff) -> &'a SkBuff {
        // SAFETY: `SkBuff` is `repr(transparent)` over `Opaque<sk_buff>`; validity per caller.
        // INVARIANT: the caller owns the packet for `'a`.
        unsafe { &*ptr.cast::<SkBuff>() }
    }

    /// The raw pointer, for kernel calls.
    pub(crate) fn as_ptr(&self) -> *mut bindings::sk_buff {
        self.0.get()
    }

    /// Length of the packet data from `skb->data`, linear and paged parts together.
    pub(crate) fn len(&self) -> u32 {
        // SAFETY: by the type invariant the packet is live and not modified concurrently.
        unsafe { (*self.as_ptr()).len }
    }

    /// Offset of the network header from `skb->data` (0 at the IPv4 hooks).
    pub(crate) fn network_offset(&self) -> i32 {
        // SAFETY: by the type invariant the packet is live.
        unsafe { bindings::icmp_ct_skb_network_offset(self.as_ptr()) }
    }

    /// Reads `buffer.len()` bytes at `offset` from `skb->data`, also from paged data.
    ///
    /// Returns the bytes (in the packet's linear area or copied into `buffer`), or `None` if
    /// the packet is shorter than `offset + buffer.len()`.
    pub(crate) fn header<'a>(&'a self, offset: u32, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
        let len = i32::try_from(buffer.len()).ok()?;
        let offset = i32::try_from(offset).ok()?;
        // SAFETY: the packet is live (type invariant) and `buffer` is writable for `len` bytes.
        let ptr = unsafe {
            bindings::icmp_ct_skb_header_pointer(
                self.as_ptr(),
                offset,
                len,
                buffer.as_mut_ptr().cast(),
            )
        };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: `skb_header_pointer` returned either `buffer` or a pointer into the linear
        // area holding at least `len` bytes, both valid while `self` and `buffer` are borrowed.
        Some(unsafe { core::slice::from_raw_parts(ptr.cast::<u8>(), buffer.len()) })
    }
}

impl SkBuff {
    /// The packet's bytes from its network header to its end, for the `proto` parsers; its
    /// first `head.len()` bytes (or fewer) are read at once, with one `skb_header_pointer`.
    pub(crate) fn network_bytes<'a>(&'a self, head: &'a mut [u8]) -> NetworkBytes<'a> {
        let offset = u32::try_from(self.network_offset()).ok();
        // A network header outside the data (it cannot be) reads as an empty packet.
        let len = offset.map_or(0, |offset| self.len().saturating_sub(offset) as usize);
        let offset = offset.unwrap_or(0);
        let wanted = len.min(head.len());
        let head = head
            .get_mut(..wanted)
            .and_then(|head| self.header(offset, head))
            .unwrap_or(&[]);
        NetworkBytes {
            skb: self,
            offset,
            len,
            head,
        }
    }
}

/// A packet's bytes from its network header, read with `skb_header_pointer`: the first bytes
/// once, in place in the linear area or copied to the caller's stack; headers past them
/// (long IPv6 extension headers) each when asked for, the same way.
pub(crate) struct NetworkBytes<'a> {
    skb: &'a SkBuff,
    /// Offset of the network header from `skb->data`.
    offset: u32,
    /// Bytes from the network header to the end of the packet.
    len: usize,
    /// The first bytes from the network header.
    head: &'a [u8],
}

impl PacketBytes for NetworkBytes<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn read<'a>(&'a self, offset: usize, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
        let end = offset.checked_add(buffer.len())?;
        if end > self.len {
            return None;
        }
        if let Some(bytes) = self.head.get(offset..end) {
            return Some(bytes);
        }
        let offset = self.offset.checked_add(u32::try_from(offset).ok()?)?;
        self.skb.header(offset, buffer)
    }
}

impl SkBuff {
    /// Whether the transport checksum of a packet of `family` whose transport header starts
    /// at `offset` is correct (`nf_checksum`: the IPv4 or IPv6 pseudo-header, hardware
    /// verification when present).
    pub(crate) fn checksum_ok(
        &self,
        family: Family,
        hook: HookPoint,
        offset: u32,
        protocol: u8,
    ) -> bool {
        let pf = crate::abstractions::netfilter::nfproto(family);
        let hook = hook.to_raw();
        // SAFETY: the packet is live and owned by the hook; `nf_checksum` may mark the
        // checksum verified, which the caller's ownership allows.
        unsafe { bindings::nf_checksum(self.as_ptr(), hook, offset, protocol, pf.into()) == 0 }
    }

    /// Whether the packet's transport checksum is known to be correct without computing it:
    /// verified by hardware, or by an earlier `checksum_ok` on this packet, which leaves its
    /// result in the packet (`skb_csum_unnecessary`).
    pub(crate) fn checksum_verified(&self) -> bool {
        // SAFETY: the packet is live.
        unsafe { bindings::icmp_ct_skb_csum_verified(self.as_ptr()) }
    }

    /// Whether the raw table exempted the packet from connection tracking (`notrack`).
    pub(crate) fn is_notrack(&self) -> bool {
        // SAFETY: the packet is live.
        unsafe { bindings::icmp_ct_skb_is_notrack(self.as_ptr()) }
    }

    /// Whether the packet was received on an interface (`skb_iif` is set), as opposed to
    /// generated on this host.
    pub(crate) fn arrived_from_outside(&self) -> bool {
        // SAFETY: the packet is live.
        unsafe { bindings::icmp_ct_skb_iif(self.as_ptr()) != 0 }
    }

    /// Whether this host's own stack wrote the packet on one of its kernel sockets
    /// (`icmp_send`, `icmpv6_send`, neighbour discovery), as opposed to a process on a socket
    /// of its own (a raw socket included).
    pub(crate) fn sent_on_kernel_socket(&self) -> bool {
        // SAFETY: the packet is live; its socket, if any, is held by the packet.
        unsafe { bindings::icmp_ct_skb_from_kernel_socket(self.as_ptr()) }
    }

    /// `skb->mark`.
    pub(crate) fn mark(&self) -> u32 {
        // SAFETY: the packet is live.
        unsafe { bindings::icmp_ct_skb_mark(self.as_ptr()) }
    }

    /// Sets `skb->mark`.
    pub(crate) fn set_mark(&self, mark: u32) {
        // SAFETY: the hook owns the packet, so it may change its metadata.
        unsafe { bindings::icmp_ct_skb_set_mark(self.as_ptr(), mark) }
    }
}
