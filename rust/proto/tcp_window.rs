// SPDX-License-Identifier: GPL-2.0

//! TCP sequence tracking: which segments lie within the window their receiver advertised,
//! after nf_conntrack's `tcp_in_window` (net/netfilter/nf_conntrack_proto_tcp.c, itself
//! after Guido van Rooij's "Real Stateful TCP Packet Filtering in IP Filter"). Left out: SACK
//! blocks (the highest acknowledgment is the ACK field), NAT sequence offsets, the
//! retransmission counter, and the allowance for senders that overshoot the window (which
//! nf_conntrack lets pass without effect; here such a segment is outside).

use super::flow_state::{TcpFlags, TcpHeader};

/// The largest window scale (RFC 7323).
const MAX_WSCALE: u8 = 14;
/// How far below the receiver's highest sequence an ACK may lie when the sender advertised
/// no window yet (nf_conntrack's `MAXACKWINDOW`).
const MAX_ACK_WINDOW_DEFAULT: u32 = 66_000;

/// The peer announced window scaling in its SYN.
const FLAG_WINDOW_SCALE: u8 = 1 << 0;
/// The peer sent a FIN that was within the window.
const FLAG_FIN: u8 = 1 << 1;

/// The fields of a TCP segment that sequence tracking reads.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct TcpSegment {
    /// Flags.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Advertised window, unscaled.
    pub window: u16,
    /// Window scale option (SYN only), capped at 14.
    pub wscale: Option<u8>,
    /// Payload bytes after the TCP header.
    pub payload_len: u32,
}

impl TcpSegment {
    /// The sequence number after this segment: SYN and FIN count as one byte each.
    pub fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(u32::from(self.flags.syn))
            .wrapping_add(u32::from(self.flags.fin))
    }
}

/// The window scale option among TCP options `opts` (the bytes after the fixed 20-byte
/// header), as nf_conntrack's `tcp_options` reads it: stops at an end-of-list option or at a
/// malformed length.
pub fn window_scale(opts: &[u8]) -> Option<u8> {
    let mut rest = opts;
    loop {
        match rest {
            [] | [0, ..] => return None,
            [1, tail @ ..] => rest = tail,
            [kind, len, tail @ ..] => {
                let len = usize::from(*len);
                let body_len = len.checked_sub(2)?;
                let body = tail.get(..body_len)?;
                if *kind == 3 && len == 3 {
                    return body.first().map(|s| (*s).min(MAX_WSCALE));
                }
                rest = tail.get(body_len..)?;
            }
            [_] => return None,
        }
    }
}

/// The segment fields of `tcp`, parsed by `parse_tcp` from `header` (the TCP header with
/// its options), given `l4_len` bytes of transport header and payload.
pub fn segment(tcp: &TcpHeader, header: &[u8], l4_len: usize) -> TcpSegment {
    let window = match header.get(14..16) {
        Some([w0, w1]) => u16::from_be_bytes([*w0, *w1]),
        _ => 0,
    };
    let opts = header.get(20..tcp.header_len).unwrap_or(&[]);
    let payload_len = l4_len.saturating_sub(tcp.header_len);
    TcpSegment {
        flags: tcp.flags,
        seq: tcp.seq,
        ack: tcp.ack_seq,
        window,
        wscale: if tcp.flags.syn {
            window_scale(opts)
        } else {
            None
        },
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
    }
}

/// What one side of a connection has sent, as nf_conntrack's `ip_ct_tcp_state`.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct Peer {
    /// Highest sequence number sent, plus one.
    pub end: u32,
    /// Highest sequence number the other side allowed (its ACK plus its window).
    pub maxend: u32,
    /// Largest window the other side advertised to this one; 0: nothing seen yet.
    pub maxwin: u32,
    /// The window scale of this side's windows.
    pub scale: u8,
    /// `FLAG_*`.
    flags: u8,
}

impl Peer {
    /// Whether this side sent a FIN within the window.
    pub fn fin_seen(&self) -> bool {
        self.flags & FLAG_FIN != 0
    }

    fn max_ack_window(&self) -> u32 {
        if self.maxwin == 0 {
            MAX_ACK_WINDOW_DEFAULT
        } else {
            self.maxwin
        }
    }
}

/// The sequence state of both sides: `[original, reply]`.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct TcpWindows(pub [Peer; 2]);

/// Words in the stored form of [`TcpWindows`].
pub const WINDOW_WORDS: usize = 8;

/// `a` comes before `b` in sequence space.
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

impl TcpWindows {
    /// The stored form, as the kernel keeps it next to the entry.
    pub fn to_words(&self) -> [u32; WINDOW_WORDS] {
        let [o, r] = self.0;
        let packed = |p: &Peer| u32::from(p.scale) | (u32::from(p.flags) << 8);
        [
            o.end,
            o.maxend,
            o.maxwin,
            packed(&o),
            r.end,
            r.maxend,
            r.maxwin,
            packed(&r),
        ]
    }

    /// The windows stored as `words`.
    pub fn from_words(words: &[u32; WINDOW_WORDS]) -> Self {
        let [oe, om, ow, of, re, rm, rw, rf] = *words;
        let peer = |end, maxend, maxwin, packed: u32| Peer {
            end,
            maxend,
            maxwin,
            scale: (packed & 0xff) as u8,
            flags: ((packed >> 8) & 0xff) as u8,
        };
        TcpWindows([peer(oe, om, ow, of), peer(re, rm, rw, rf)])
    }

    /// The side that sent in direction `reply`.
    pub fn peer(&self, reply: bool) -> &Peer {
        let [o, r] = &self.0;
        if reply {
            r
        } else {
            o
        }
    }

    /// Both sides sent a FIN.
    pub fn both_fins(&self) -> bool {
        self.0.iter().all(Peer::fin_seen)
    }

    /// Checks `seg`, sent in direction `reply`, against the windows and returns the windows
    /// after it, or `None` when it lies outside them (nothing changes then). `handshake`:
    /// the connection is still in its handshake (SYN_SENT, SYN_RECV), where a new SYN
    /// starts its side over and a RST with sequence number 0 answers the SYN.
    pub fn track(&self, reply: bool, seg: &TcpSegment, handshake: bool) -> Option<TcpWindows> {
        let [mut orig, mut resp] = self.0;
        let (sender, receiver) = if reply {
            (&mut resp, &mut orig)
        } else {
            (&mut orig, &mut resp)
        };
        let mut ack = seg.ack;
        let win = u32::from(seg.window);
        let mut seq = seg.seq;
        let mut end = seg.end();

        if sender.maxwin == 0 {
            if seg.flags.syn {
                init_sender(sender, receiver, seg, reply);
                if !seg.flags.ack {
                    // Simultaneous open (or the SYN that creates the entry).
                    return Some(TcpWindows([orig, resp]));
                }
            } else {
                // Picked up mid-stream: learn what we can from this segment.
                sender.end = end;
                let swin = win.wrapping_shl(u32::from(sender.scale));
                sender.maxwin = swin.max(1);
                sender.maxend = end.wrapping_add(sender.maxwin);
                if receiver.maxwin == 0 {
                    receiver.end = ack;
                    receiver.maxend = ack;
                } else if ack == receiver.end.wrapping_add(1) {
                    // Likely the answer to a keepalive.
                    receiver.end = receiver.end.wrapping_add(1);
                }
            }
        } else if seg.flags.syn && handshake && after(end, sender.end) {
            // RFC 793: a reinitialised TCP need only use higher sequence numbers.
            init_sender(sender, receiver, seg, reply);
            if reply && !seg.flags.ack {
                return Some(TcpWindows([orig, resp]));
            }
        }

        if !seg.flags.ack || (seg.flags.rst && ack == 0) {
            // No ACK (or a broken stack's RST|ACK with ACK 0): assume it acknowledges all.
            ack = receiver.end;
        }
        if seg.flags.rst && seq == 0 && handshake && reply {
            // A RST answering a SYN.
            seq = sender.end;
            end = sender.end;
        }

        let seq_ok = before(seq, sender.maxend.wrapping_add(1));
        let ack_ok = before(ack, receiver.end.wrapping_add(1));
        let in_recv_win = receiver.maxwin == 0
            || after(
                end,
                sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
            );
        let ack_not_stale = after(
            ack,
            receiver
                .end
                .wrapping_sub(sender.max_ack_window())
                .wrapping_sub(1),
        );
        if !(seq_ok && ack_ok && in_recv_win && ack_not_stale) {
            return None;
        }

        let win = if seg.flags.syn {
            win
        } else {
            win.wrapping_shl(u32::from(sender.scale))
        };
        sender.maxwin = sender.maxwin.max(win);
        if after(end, sender.end) {
            sender.end = end;
        }
        if seg.flags.fin {
            sender.flags |= FLAG_FIN;
        }
        if receiver.maxwin != 0 && after(end, sender.maxend) {
            receiver.maxwin = receiver
                .maxwin
                .wrapping_add(end.wrapping_sub(sender.maxend));
        }
        if after(ack.wrapping_add(win), receiver.maxend.wrapping_sub(1)) {
            receiver.maxend = ack.wrapping_add(win);
            if win == 0 {
                receiver.maxend = receiver.maxend.wrapping_add(1);
            }
        }
        Some(TcpWindows([orig, resp]))
    }

    /// The windows of a connection whose first segment, in the original direction, is `seg`.
    /// A segment that creates no valid state (out of its own window) leaves them empty.
    pub fn first(seg: &TcpSegment) -> TcpWindows {
        TcpWindows::default()
            .track(false, seg, seg.flags.syn)
            .unwrap_or_default()
    }
}

/// Starts `sender`'s side from its SYN or SYN/ACK `seg`; RFC 7323: window scaling applies
/// only when both sides announced it.
fn init_sender(sender: &mut Peer, receiver: &mut Peer, seg: &TcpSegment, reply: bool) {
    let end = seg.end();
    sender.end = end;
    sender.maxend = end;
    sender.maxwin = u32::from(seg.window).max(1);
    sender.scale = 0;
    sender.flags = 0;
    if let Some(scale) = seg.wscale {
        sender.scale = scale;
        sender.flags |= FLAG_WINDOW_SCALE;
    }
    let both = sender.flags & receiver.flags & FLAG_WINDOW_SCALE != 0;
    if reply && !both {
        sender.scale = 0;
        receiver.scale = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, window: u16, len: u32) -> TcpSegment {
        TcpSegment {
            flags: TcpFlags::from_byte(flags),
            seq,
            ack,
            window,
            wscale: None,
            payload_len: len,
        }
    }

    const SYN: u8 = 0x02;
    const SYNACK: u8 = 0x12;
    const ACK: u8 = 0x10;
    const RST: u8 = 0x04;
    const FINACK: u8 = 0x11;

    /// SYN (ISN 1000, scale 7), SYN/ACK (ISN 5000, scale 2), ACK.
    fn handshake(client_scale: Option<u8>, server_scale: Option<u8>) -> TcpWindows {
        let mut s = seg(SYN, 1000, 0, 64_000, 0);
        s.wscale = client_scale;
        let w = TcpWindows::first(&s);
        let mut sa = seg(SYNACK, 5000, 1001, 65_000, 0);
        sa.wscale = server_scale;
        let w = w.track(true, &sa, true).unwrap();
        w.track(false, &seg(ACK, 1001, 5001, 500, 0), true).unwrap()
    }

    #[test]
    fn window_scale_option() {
        // MSS, NOP, window scale 7, NOP, NOP, SACK permitted.
        let opts = [2, 4, 5, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2];
        assert_eq!(window_scale(&opts), Some(7));
        assert_eq!(window_scale(&[3, 3, 20]), Some(14));
        assert_eq!(window_scale(&[0, 3, 3, 7]), None);
        assert_eq!(window_scale(&[2, 4, 5]), None);
        assert_eq!(window_scale(&[2, 1, 3, 3, 7]), None);
        assert_eq!(window_scale(&[3, 4, 7, 0]), None);
        assert_eq!(window_scale(&[]), None);
    }

    #[test]
    fn segment_fields() {
        // SYN, window 29200, options MSS, SACK permitted, timestamps, NOP, window scale 7.
        let mut h = [0u8; 40];
        h[4..8].copy_from_slice(&1000u32.to_be_bytes());
        h[12] = 0xa0;
        h[13] = SYN;
        h[14..16].copy_from_slice(&29200u16.to_be_bytes());
        h[20..40].copy_from_slice(&[
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        let tcp = super::super::flow_state::parse_tcp(&h).unwrap();
        let s = segment(&tcp, &h, 40 + 5);
        assert_eq!(
            (s.seq, s.window, s.wscale, s.payload_len),
            (1000, 29200, Some(7), 5)
        );
        assert_eq!(s.end(), 1000 + 5 + 1);
        // Only a SYN's window scale counts.
        h[13] = ACK;
        let tcp = super::super::flow_state::parse_tcp(&h).unwrap();
        assert_eq!(segment(&tcp, &h, 40).wscale, None);
    }

    #[test]
    fn words_round_trip() {
        let w = handshake(Some(7), Some(2));
        assert_eq!(TcpWindows::from_words(&w.to_words()), w);
        let w = w
            .track(false, &seg(FINACK, 1001, 5001, 500, 0), false)
            .unwrap();
        assert!(w.peer(false).fin_seen() && !w.peer(true).fin_seen());
        assert_eq!(TcpWindows::from_words(&w.to_words()), w);
    }

    #[test]
    fn handshake_learns_windows() {
        let w = handshake(None, None);
        let [c, s] = w.0;
        assert_eq!((c.end, s.end), (1001, 5001));
        // The client's ACK advertised 500 bytes: the server may send up to 5001 + 500.
        assert_eq!(s.maxend, 5001 + 500);
        assert_eq!(c.maxend, 1001 + 65_000);
    }

    #[test]
    fn rst_out_of_window() {
        let w = handshake(None, None);
        // Far ahead of what the client allowed the server to send.
        assert_eq!(
            w.track(true, &seg(RST, 5001 + 1_000_000, 0, 0, 0), false),
            None
        );
        // Far behind.
        assert_eq!(
            w.track(
                true,
                &seg(RST, 5001u32.wrapping_sub(1_000_000), 0, 0, 0),
                false
            ),
            None
        );
        // Just past the window's end.
        assert_eq!(w.track(true, &seg(RST, 5001 + 501, 0, 0, 0), false), None);
        // In the window.
        assert!(w
            .track(true, &seg(RST, 5001 + 500, 0, 0, 0), false)
            .is_some());
        assert!(w.track(true, &seg(RST, 5001, 0, 0, 0), false).is_some());
        // A FIN whose ACK covers data never sent is out of window too.
        assert_eq!(
            w.track(false, &seg(FINACK, 1001, 9999, 500, 0), false),
            None
        );
    }

    #[test]
    fn window_scaling_widens_the_window() {
        // The client advertises 500 << 7 = 64000 bytes once scaling is agreed on.
        let w = handshake(Some(7), Some(2));
        assert_eq!(w.peer(true).maxend, 5001 + 500 * 128);
        assert!(w
            .track(true, &seg(RST, 5001 + 60_000, 0, 0, 0), false)
            .is_some());
        // Without the server's agreement, no scaling: the same RST is outside.
        let w = handshake(Some(7), None);
        assert_eq!(w.peer(false).scale, 0);
        assert_eq!(w.peer(true).maxend, 5001 + 500);
        assert_eq!(
            w.track(true, &seg(RST, 5001 + 60_000, 0, 0, 0), false),
            None
        );
    }

    #[test]
    fn data_moves_the_window() {
        let w = handshake(None, None);
        let w = w
            .track(false, &seg(ACK, 1001, 5001, 500, 100), false)
            .unwrap();
        assert_eq!(w.peer(false).end, 1101);
        // The server acknowledges and opens its window.
        let w = w
            .track(true, &seg(ACK, 5001, 1101, 65_535, 0), false)
            .unwrap();
        assert_eq!(w.peer(false).maxend, 1101 + 65_535);
        // An ACK of data never sent is outside.
        assert_eq!(w.track(true, &seg(ACK, 5001, 1201, 65_535, 0), false), None);
    }

    #[test]
    fn rst_answering_syn_with_seq_zero() {
        let w = TcpWindows::first(&seg(SYN, 1000, 0, 64_000, 0));
        assert!(w
            .track(true, &seg(RST | ACK, 0, 1001, 0, 0), true)
            .is_some());
    }

    #[test]
    fn pickup_learns_from_both_directions() {
        let w = TcpWindows::default()
            .track(false, &seg(ACK, 7000, 9000, 1000, 10), false)
            .unwrap();
        assert_eq!(w.peer(false).end, 7010);
        assert_eq!(w.peer(true).end, 9000);
        let w = w
            .track(true, &seg(ACK, 9000, 7010, 2000, 0), false)
            .unwrap();
        assert_eq!(w.peer(false).maxend, 7010 + 2000);
        assert_eq!(
            w.track(true, &seg(RST, 9000 + 100_000, 0, 0, 0), false),
            None
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = seg(SYN, u32::MAX - 10, 0, 1000, 0);
        s.wscale = None;
        let w = TcpWindows::first(&s);
        let w = w
            .track(true, &seg(SYNACK, 100, u32::MAX - 9, 1000, 0), true)
            .unwrap();
        let w = w
            .track(false, &seg(ACK, u32::MAX - 9, 101, 1000, 50), true)
            .unwrap();
        assert_eq!(w.peer(false).end, 40);
        assert!(w.track(true, &seg(ACK, 101, 40, 1000, 0), false).is_some());
    }
}
