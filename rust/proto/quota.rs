// SPDX-License-Identifier: GPL-2.0

//! `ip_ct_max_per_source`: how many entries one source may create, and what happens to the
//! packet of a source at its quota.
//!
//! A source is the original tuple's source address: an IPv4 address, or an IPv6 address's
//! /64 (one host hands out addresses from its /64 at will). A source at its quota first
//! loses its own oldest `[UNREPLIED]` entry; with none to lose, its packet is INVALID
//! ([`InvalidReason::Quota`]) and creates nothing. The kernel counts each source's entries
//! and searches for the one to lose; what to do with the count is decided here.

use super::decide::{Action, Decision};
use super::entry_word;
use super::key::Key;
use super::state::{InvalidReason, State};

/// Words of a [`Source`].
pub const SOURCE_WORDS: usize = 3;

/// Entries the search for a source's oldest `[UNREPLIED]` entry looks at: that source's
/// oldest ones.
pub const OWN_SCAN: u32 = 64;

/// One source as the quota counts it: the family, then the IPv4 address or the first 64 bits
/// of the IPv6 address (a zero word after an IPv4 address).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Source(pub [u32; SOURCE_WORDS]);

impl Source {
    /// The source of the entry whose original key is `key`.
    pub fn of(key: &Key) -> Source {
        let [head, _, s0, s1, ..] = key.0;
        // The family sits in the key's first byte ([`Key::of`]); an IPv4 address in `s0`
        // alone, `s1` zero.
        Source([head >> 24, s0, s1])
    }
}

/// What the quota lets a packet that would create an entry do.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Admission {
    /// Create it.
    Admit,
    /// Create it once the source's own oldest `[UNREPLIED]` entry is gone.
    EvictOwnOldest,
    /// Create nothing: the packet is INVALID.
    Refuse,
}

/// The admission of a source that holds `count` entries, with `quota` the sysctl (0: no
/// limit) and `own_unreplied` whether it has an entry it may lose ([`may_lose`]).
pub fn admit(quota: u32, count: u32, own_unreplied: bool) -> Admission {
    if quota == 0 || count < quota {
        Admission::Admit
    } else if own_unreplied {
        Admission::EvictOwnOldest
    } else {
        Admission::Refuse
    }
}

/// Whether a source over its quota may lose its entry with state `word`: live, and
/// `[UNREPLIED]` or expired (an expired entry still counts until it is collected).
pub fn may_lose(word: u64, expired: bool) -> bool {
    entry_word::is_live(word) && (entry_word::is_unreplied(word) || expired)
}

/// `decision` as the quota leaves it: a creation refused becomes INVALID and does nothing.
pub fn limit(decision: Decision, admission: Admission) -> Decision {
    match (decision.action, admission) {
        (Action::Create { .. }, Admission::Refuse) => Decision {
            state: State::Invalid(InvalidReason::Quota),
            action: Action::Nothing,
        },
        _ => decision,
    }
}

/// Whether `quota` admits one more entry for a source holding `count`: the count after it,
/// or `None` (0: no limit). For an atomic compare-and-swap loop on the count.
pub fn take_slot(quota: u32, count: u32) -> Option<u32> {
    if quota != 0 && count >= quota {
        return None;
    }
    count.checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Addr, Family};
    use crate::flow_state::TimeoutKind;
    use crate::icmp_state::IcmpEntryState;
    use crate::tuple::Tuple;

    fn v4(last: u8, id: u16) -> Key {
        let (src, dst) = (
            Addr::from_v4([10, 0, 0, last]),
            Addr::from_v4([10, 0, 0, 1]),
        );
        Key::of(&Tuple::icmp(Family::Ipv4, src, dst, 8, 0, id))
    }

    fn v6(prefix: u8, host: u8) -> Key {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[7] = prefix;
        a[15] = host;
        let dst = Addr::from_v6([0xfd, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1]);
        Key::of(&Tuple::ports(
            Family::Ipv6,
            Addr::from_v6(a),
            dst,
            17,
            1000,
            53,
        ))
    }

    #[test]
    fn sources() {
        assert_eq!(Source::of(&v4(2, 1)), Source::of(&v4(2, 7)));
        assert_ne!(Source::of(&v4(2, 1)), Source::of(&v4(3, 1)));
        // One /64 is one source; another /64 is another.
        assert_eq!(Source::of(&v6(1, 1)), Source::of(&v6(1, 200)));
        assert_ne!(Source::of(&v6(1, 1)), Source::of(&v6(2, 1)));
        // The family counts: ::a00:2 and 10.0.0.2 are two sources.
        let mut mapped = [0u8; 16];
        mapped[..4].copy_from_slice(&[10, 0, 0, 2]);
        let dst = Addr::from_v6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let t = Tuple::icmp(Family::Ipv6, Addr::from_v6(mapped), dst, 128, 0, 1);
        assert_ne!(Source::of(&Key::of(&t)), Source::of(&v4(2, 1)));
    }

    #[test]
    fn admissions() {
        assert_eq!(admit(0, u32::MAX, false), Admission::Admit);
        assert_eq!(admit(2, 1, false), Admission::Admit);
        assert_eq!(admit(2, 2, true), Admission::EvictOwnOldest);
        assert_eq!(admit(2, 2, false), Admission::Refuse);
        assert_eq!(admit(2, 5, false), Admission::Refuse);
        assert_eq!(take_slot(0, 7), Some(8));
        assert_eq!(take_slot(0, u32::MAX), None);
        assert_eq!(take_slot(3, 2), Some(3));
        assert_eq!(take_slot(3, 3), None);
    }

    #[test]
    fn what_a_source_may_lose() {
        let unreplied = entry_word::pack_icmp(IcmpEntryState::first_request());
        let replied = entry_word::pack_icmp(IcmpEntryState {
            outstanding: 1,
            replied: true,
        });
        assert!(may_lose(unreplied, false));
        assert!(!may_lose(replied, false));
        assert!(may_lose(replied, true));
        assert!(!may_lose(entry_word::closed(), true));
        assert!(!may_lose(entry_word::dying(unreplied), false));
        assert!(!may_lose(entry_word::unconfirmed(unreplied), false));
    }

    #[test]
    fn refusal_is_invalid_and_creates_nothing() {
        let create = Decision {
            state: State::New,
            action: Action::Create {
                word: 1,
                timeout: TimeoutKind::Icmp,
                windows: None,
            },
        };
        let refused = limit(create, Admission::Refuse);
        assert_eq!(refused.state, State::Invalid(InvalidReason::Quota));
        assert_eq!(refused.action, Action::Nothing);
        assert_eq!(limit(create, Admission::EvictOwnOldest), create);
        let update = Decision {
            state: State::Established,
            action: Action::Nothing,
        };
        assert_eq!(limit(update, Admission::Refuse), update);
    }
}
