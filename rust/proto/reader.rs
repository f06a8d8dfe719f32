// SPDX-License-Identifier: GPL-2.0

//! Bounded reads of a packet's bytes.
//!
//! The parsers read each header they walk once, exactly as long as it is, through
//! [`PacketBytes`]: a byte slice on the host, the socket buffer (`skb_header_pointer`) in the
//! kernel. No read goes past the end of the packet, or of the [`Window`] it is made through.

/// The bytes of one packet, from its network header to its end.
pub trait PacketBytes {
    /// Number of bytes from the network header to the end of the packet.
    fn len(&self) -> usize;

    /// Whether the packet has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `buffer.len()` bytes at `offset`: borrowed from the packet where they lie together,
    /// else copied into `buffer`. `None` when they go past the end.
    fn read<'a>(&'a self, offset: usize, buffer: &'a mut [u8]) -> Option<&'a [u8]>;
}

impl PacketBytes for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn read<'a>(&'a self, offset: usize, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
        let end = offset.checked_add(buffer.len())?;
        self.get(offset..end)
    }
}

/// The `N` bytes at `offset`, or `None` when they go past the end.
pub fn array<const N: usize, R: PacketBytes + ?Sized>(bytes: &R, offset: usize) -> Option<[u8; N]> {
    let mut buffer = [0u8; N];
    let read = bytes.read(offset, &mut buffer)?;
    <[u8; N]>::try_from(read).ok()
}

/// Up to `buffer.len()` bytes at `offset`: fewer (maybe none) where the packet ends first.
pub fn prefix<'a, R: PacketBytes + ?Sized>(
    bytes: &'a R,
    offset: usize,
    buffer: &'a mut [u8],
) -> &'a [u8] {
    let available = bytes.len().saturating_sub(offset);
    let wanted = available.min(buffer.len());
    match buffer.get_mut(..wanted) {
        Some(buffer) => bytes.read(offset, buffer).unwrap_or(&[]),
        None => &[],
    }
}

/// A part of a packet's bytes: offsets count from its start, reads stop at its end.
pub struct Window<'r, R: ?Sized> {
    bytes: &'r R,
    start: usize,
    len: usize,
}

impl<R: ?Sized> Clone for Window<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R: ?Sized> Copy for Window<'_, R> {}

impl<'r, R: PacketBytes + ?Sized> Window<'r, R> {
    /// The bytes of `bytes` from `start` to `end`, both cut to its length.
    pub fn new(bytes: &'r R, start: usize, end: usize) -> Self {
        let end = end.min(bytes.len());
        let start = start.min(end);
        Window {
            bytes,
            start,
            len: end.saturating_sub(start),
        }
    }

    /// The bytes of this window from `start` (relative to it) to its end.
    pub fn skip(&self, start: usize) -> Self {
        let start = start.min(self.len);
        Window {
            bytes: self.bytes,
            start: self.start.saturating_add(start),
            len: self.len.saturating_sub(start),
        }
    }
}

impl<R: PacketBytes + ?Sized> PacketBytes for Window<'_, R> {
    fn len(&self) -> usize {
        self.len
    }

    fn read<'a>(&'a self, offset: usize, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
        if offset.checked_add(buffer.len())? > self.len {
            return None;
        }
        self.bytes.read(self.start.checked_add(offset)?, buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_within_bounds() {
        let p: &[u8] = &[1, 2, 3, 4, 5];
        assert_eq!(array::<2, _>(p, 3), Some([4, 5]));
        assert_eq!(array::<2, _>(p, 4), None);
        assert_eq!(array::<1, _>(p, usize::MAX), None);
        assert_eq!(array::<0, _>(p, 5), Some([]));
        assert_eq!(prefix(p, 3, &mut [0; 8]), &[4, 5]);
        assert_eq!(prefix(p, 9, &mut [0; 8]), &[] as &[u8]);
        assert_eq!(prefix(p, 0, &mut [0; 2]), &[1, 2]);
    }

    #[test]
    fn windows_stop_at_their_end() {
        let p: &[u8] = &[1, 2, 3, 4, 5, 6];
        let w = Window::new(p, 1, 4);
        assert_eq!(PacketBytes::len(&w), 3);
        assert_eq!(array::<3, _>(&w, 0), Some([2, 3, 4]));
        assert_eq!(array::<2, _>(&w, 2), None);
        assert_eq!(prefix(&w, 1, &mut [0; 8]), &[3, 4]);
        let inner = w.skip(2);
        assert_eq!(PacketBytes::len(&inner), 1);
        assert_eq!(array::<1, _>(&inner, 0), Some([4]));
        assert_eq!(array::<1, _>(&inner, 1), None);
        // Bounds beyond the packet are cut to it.
        let w = Window::new(p, 4, 100);
        assert_eq!(PacketBytes::len(&w), 2);
        assert!(Window::new(p, 9, 100).is_empty());
        assert!(w.skip(7).is_empty());
        assert!(Window::new(p, 5, 2).is_empty());
    }
}
