// SPDX-License-Identifier: GPL-2.0

//! The state of a table entry packed into one `u64`, so that the kernel can update it with a
//! single compare-and-swap while other CPUs read it without locks.
//!
//! Layout: bits 0-31 outstanding ICMP requests, bit 32 a reply was seen, bit 33 `[ASSURED]`,
//! bits 34-36 the TCP state (0 none, then [`TcpState::ALL`] from 1); bits 61-63 the
//! entry's life: closed, being inserted, dying. Only a live entry (none of them) is matched,
//! listed, counted or updated, so the packet that ends an entry closes it in the same
//! compare-and-swap that applies it, and no other packet can be counted on it after that. A
//! closed entry (an answered query, ip_ct_icmp_keep_replied = 0) stays in the table, unseen,
//! for the next request of the same tuple to reuse: that request finds no entry (NEW) and
//! opens it again instead of allocating and inserting one.

use super::flow_state::{FlowEntry, TcpState};
use super::icmp_state::IcmpEntryState;

const OUTSTANDING_MASK: u64 = 0xffff_ffff;
const REPLIED: u64 = 1 << 32;
const ASSURED: u64 = 1 << 33;
const TCP_SHIFT: u32 = 34;
const TCP_MASK: u64 = 0b111 << TCP_SHIFT;
const CLOSED: u64 = 1 << 61;
const UNCONFIRMED: u64 = 1 << 62;
const DYING: u64 = 1 << 63;
const LIFE: u64 = CLOSED | UNCONFIRMED | DYING;

/// The word of a closed entry.
pub fn closed() -> u64 {
    CLOSED
}

/// Whether an entry with `word` is closed, neither being inserted nor dying: it may be
/// opened again or removed.
pub fn is_closed(word: u64) -> bool {
    word & LIFE == CLOSED
}

/// Whether an entry with `word` was closed (and so no longer counted) when it was marked
/// dying.
pub fn was_closed(word: u64) -> bool {
    word & CLOSED != 0
}

/// Whether an entry with `word` may be marked dying: live or closed.
pub fn is_removable(word: u64) -> bool {
    word & (UNCONFIRMED | DYING) == 0
}

/// `word` of an entry not yet completely in its table: no one may match or remove it.
pub fn unconfirmed(word: u64) -> u64 {
    word | UNCONFIRMED
}

/// `word` of an entry completely in its table.
pub fn confirmed(word: u64) -> u64 {
    word & !UNCONFIRMED
}

/// `word` of an entry that is being removed: it is no longer matched.
pub fn dying(word: u64) -> u64 {
    word | DYING
}

/// Whether an entry with `word` is completely in its table, open, and not being removed.
pub fn is_live(word: u64) -> bool {
    word & LIFE == 0
}

/// Whether an entry with `word` has been marked for removal.
pub fn is_dying(word: u64) -> bool {
    word & DYING != 0
}

/// Packs the state of an ICMP query entry.
pub fn pack_icmp(state: IcmpEntryState) -> u64 {
    let replied = if state.replied { REPLIED } else { 0 };
    u64::from(state.outstanding) | replied
}

/// Unpacks the state of an ICMP query entry.
pub fn unpack_icmp(word: u64) -> IcmpEntryState {
    IcmpEntryState {
        outstanding: (word & OUTSTANDING_MASK) as u32,
        replied: word & REPLIED != 0,
    }
}

/// Packs the state of a UDP, TCP or generic flow.
pub fn pack_flow(flow: FlowEntry) -> u64 {
    let replied = if flow.replied { REPLIED } else { 0 };
    let assured = if flow.assured { ASSURED } else { 0 };
    let tcp: u64 = match flow.tcp {
        None => 0,
        Some(TcpState::SynSent) => 1,
        Some(TcpState::SynRecv) => 2,
        Some(TcpState::Established) => 3,
        Some(TcpState::FinWait) => 4,
        Some(TcpState::TimeWait) => 5,
        Some(TcpState::Close) => 6,
    };
    replied | assured | (tcp << TCP_SHIFT)
}

/// Unpacks the state of a UDP, TCP or generic flow.
pub fn unpack_flow(word: u64) -> FlowEntry {
    FlowEntry {
        replied: word & REPLIED != 0,
        assured: word & ASSURED != 0,
        tcp: match (word & TCP_MASK) >> TCP_SHIFT {
            1 => Some(TcpState::SynSent),
            2 => Some(TcpState::SynRecv),
            3 => Some(TcpState::Established),
            4 => Some(TcpState::FinWait),
            5 => Some(TcpState::TimeWait),
            6 => Some(TcpState::Close),
            _ => None,
        },
    }
}

/// Whether no reply has been seen (`[UNREPLIED]`), for any kind of entry.
pub fn is_unreplied(word: u64) -> bool {
    word & REPLIED == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_round_trip() {
        for outstanding in [0, 1, 2, 77, u32::MAX] {
            for replied in [false, true] {
                let s = IcmpEntryState {
                    outstanding,
                    replied,
                };
                assert_eq!(unpack_icmp(pack_icmp(s)), s);
                assert_eq!(is_unreplied(pack_icmp(s)), !replied);
            }
        }
    }

    #[test]
    fn flow_round_trip() {
        let tcp = TcpState::ALL.map(Some);
        for t in tcp.into_iter().chain([None]) {
            for replied in [false, true] {
                for assured in [false, true] {
                    let f = FlowEntry {
                        replied,
                        assured,
                        tcp: t,
                    };
                    assert_eq!(unpack_flow(pack_flow(f)), f);
                    assert_eq!(is_unreplied(pack_flow(f)), !replied);
                }
            }
        }
    }

    #[test]
    fn life_bits_stay_out_of_the_state() {
        let f = FlowEntry {
            replied: true,
            assured: true,
            tcp: Some(TcpState::Close),
        };
        let word = pack_flow(f);
        assert!(is_live(word));
        assert!(!is_live(unconfirmed(word)));
        assert!(is_live(confirmed(unconfirmed(word))));
        assert!(!is_live(dying(word)) && is_dying(dying(word)));
        assert_eq!(unpack_flow(dying(unconfirmed(word))), f);
        let q = pack_icmp(IcmpEntryState {
            outstanding: u32::MAX,
            replied: true,
        });
        assert!(is_live(q));
        assert_eq!(unpack_icmp(dying(q)).outstanding, u32::MAX);
        assert!(!is_live(closed()) && is_closed(closed()) && is_removable(closed()));
        assert!(was_closed(dying(closed())) && !is_closed(dying(closed())));
        assert!(!is_removable(dying(closed())) && !is_removable(unconfirmed(q)));
        assert!(is_removable(q) && !was_closed(dying(q)));
        assert_eq!(unpack_icmp(closed()).outstanding, 0);
    }

    #[test]
    fn fields_do_not_overlap() {
        let f = pack_flow(FlowEntry {
            replied: true,
            assured: true,
            tcp: Some(TcpState::Close),
        });
        assert_eq!(f & OUTSTANDING_MASK, 0);
        assert_eq!(pack_icmp(IcmpEntryState::first_request()), 1);
    }
}
