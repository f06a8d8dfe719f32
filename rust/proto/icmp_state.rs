// SPDX-License-Identifier: GPL-2.0

//! ICMP query tracking: the Iptables Tutorial's "ICMP connections".
//!
//! "The host sends an echo request to the target, which is considered as
//! NEW by the firewall. The target then responds with a echo reply which
//! the firewall considers as state ESTABLISHED." The entry is created by
//! the first request, flagged `[UNREPLIED]`, and "destroyed once the reply
//! has traveled all the way through the Netfilter structure".

use super::icmp_types::IcmpKind;
use super::state::{InvalidReason, State};

/// Per-entry state of a tracked ICMP query.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct IcmpEntryState {
    /// Requests seen on the entry and not answered yet.
    pub outstanding: u32,
    /// Whether a reply was seen (clears `[UNREPLIED]`).
    pub replied: bool,
}

/// What a reply did to an entry.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ReplyOutcome {
    /// The reply's state.
    pub state: State,
    /// Whether this reply answered the last outstanding request.
    pub answered_last: bool,
    /// Whether the entry must be destroyed once this reply has passed the
    /// last hook. Never with `keep_replied`.
    pub destroy: bool,
}

impl IcmpEntryState {
    /// The state of an entry created by its first request: one request
    /// outstanding, `[UNREPLIED]`.
    pub fn first_request() -> Self {
        Self {
            outstanding: 1,
            replied: false,
        }
    }

    /// Whether the entry is still `[UNREPLIED]`.
    pub fn is_unreplied(&self) -> bool {
        !self.replied
    }

    /// The state of a packet in the original direction: ESTABLISHED once
    /// the entry has seen a reply, NEW before.
    pub fn original_state(&self) -> State {
        if self.replied {
            State::Established
        } else {
            State::New
        }
    }

    /// A further request on the entry: counts it (saturating) and returns
    /// its state. The caller refreshes the timeout ("each request refreshes
    /// the timeout").
    pub fn on_request(&mut self) -> State {
        self.outstanding = self.outstanding.saturating_add(1);
        self.original_state()
    }

    /// A reply on the entry's reply direction.
    ///
    /// It is ESTABLISHED and clears `[UNREPLIED]`. When it answers the last
    /// outstanding request the entry is destroyed after the last hook,
    /// since "after the ICMP reply, there will be absolutely no more legal
    /// traffic in the same connection", unless `keep_replied` is set
    /// (modern Linux), where the entry lives until its timeout and further
    /// replies stay ESTABLISHED. Without `keep_replied`, a reply when
    /// nothing is outstanding finds an entry that is already on its way out
    /// and is INVALID, exactly as it would be a moment later once the entry
    /// is gone.
    pub fn on_reply(&mut self, keep_replied: bool) -> ReplyOutcome {
        if self.outstanding == 0 {
            let state = if keep_replied {
                self.replied = true;
                State::Established
            } else {
                State::Invalid(InvalidReason::AlreadyAnswered)
            };
            return ReplyOutcome {
                state,
                answered_last: false,
                destroy: false,
            };
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        self.replied = true;
        let answered_last = self.outstanding == 0;
        ReplyOutcome {
            state: State::Established,
            answered_last,
            destroy: answered_last && !keep_replied,
        }
    }
}

/// Where the packet's tuple was found.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Lookup<'a> {
    /// No entry has this tuple in either direction.
    None,
    /// The tuple is the original direction of this entry.
    Original(&'a IcmpEntryState),
    /// The tuple is the reply direction of this entry.
    Reply(&'a IcmpEntryState),
}

/// What the tracker does with the entry after classifying a query packet.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum QueryAction {
    /// Nothing: the entry, if any, is left as it is.
    Nothing,
    /// Create this entry; it is inserted when the packet passes the last
    /// hook, with the full timeout.
    Create(IcmpEntryState),
    /// Store this state into the entry found.
    Update {
        /// The entry's new state.
        entry: IcmpEntryState,
        /// Reset the timeout to its full value.
        refresh: bool,
        /// Destroy the entry once the packet has passed the last hook.
        destroy: bool,
    },
}

/// The result of classifying an ICMP query packet.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct QueryDecision {
    /// The packet's state.
    pub state: State,
    /// What to do with the entry.
    pub action: QueryAction,
}

impl QueryDecision {
    fn nothing(state: State) -> Self {
        Self {
            state,
            action: QueryAction::Nothing,
        }
    }
}

/// Classifies an ICMP or ICMPv6 packet that is not an error, given its kind
/// and where its tuple was found.
///
/// - Request, no entry: NEW; creates the entry `[UNREPLIED]` with one
///   request outstanding ("when the firewall sees a request packet, it
///   considers it as NEW").
/// - Request on the original direction: a repeated request on the same
///   tuple; counted and refreshed, and its state is the entry's: NEW while
///   `[UNREPLIED]`, ESTABLISHED once replied.
/// - Reply on the reply direction: ESTABLISHED ("the reply packet must
///   match the criterion given by the connection tracking entry to be
///   considered as established"), see [`IcmpEntryState::on_reply`].
/// - Reply with no entry: INVALID (unsolicited).
/// - A request on a reply direction or a reply on an original direction
///   cannot happen with consistent tuples: INVALID.
/// - Untracked kinds (neighbour discovery, MLD): UNTRACKED.
/// - Other types: INVALID (unknown type). Errors do not belong here:
///   INVALID (not a query); see `icmp_error`.
pub fn classify_query(kind: IcmpKind, lookup: Lookup<'_>, keep_replied: bool) -> QueryDecision {
    match kind {
        IcmpKind::Other => QueryDecision::nothing(State::Invalid(InvalidReason::UnknownType)),
        IcmpKind::Untracked => QueryDecision::nothing(State::Untracked),
        IcmpKind::Error => QueryDecision::nothing(State::Invalid(InvalidReason::NotAQuery)),
        IcmpKind::Request { .. } => match lookup {
            Lookup::None => QueryDecision {
                state: State::New,
                action: QueryAction::Create(IcmpEntryState::first_request()),
            },
            Lookup::Original(e) => {
                let mut entry = *e;
                let state = entry.on_request();
                QueryDecision {
                    state,
                    action: QueryAction::Update {
                        entry,
                        refresh: true,
                        destroy: false,
                    },
                }
            }
            Lookup::Reply(_) => {
                QueryDecision::nothing(State::Invalid(InvalidReason::WrongDirection))
            }
        },
        IcmpKind::Reply { .. } => match lookup {
            Lookup::None => QueryDecision::nothing(State::Invalid(InvalidReason::UnsolicitedReply)),
            Lookup::Reply(e) => {
                let mut entry = *e;
                let out = entry.on_reply(keep_replied);
                if out.state.is_invalid() {
                    return QueryDecision::nothing(out.state);
                }
                QueryDecision {
                    state: out.state,
                    action: QueryAction::Update {
                        entry,
                        refresh: true,
                        destroy: out.destroy,
                    },
                }
            }
            Lookup::Original(_) => {
                QueryDecision::nothing(State::Invalid(InvalidReason::WrongDirection))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::addr::{Addr, Family};
    use super::super::icmp_types::kind;
    use super::super::tuple::Tuple;
    use super::*;

    const REQ: IcmpKind = IcmpKind::Request { reply: 0 };
    const REP: IcmpKind = IcmpKind::Reply { request: 8 };

    fn update(d: QueryDecision) -> (IcmpEntryState, bool, bool) {
        match d.action {
            QueryAction::Update {
                entry,
                refresh,
                destroy,
            } => (entry, refresh, destroy),
            a => panic!("expected update, got {a:?}"),
        }
    }

    #[test]
    fn ping_request_then_reply_destroys() {
        let d = classify_query(REQ, Lookup::None, false);
        assert_eq!(d.state, State::New);
        let QueryAction::Create(e) = d.action else {
            panic!("no create")
        };
        assert_eq!(
            e,
            IcmpEntryState {
                outstanding: 1,
                replied: false
            }
        );
        assert!(e.is_unreplied());
        let d = classify_query(REP, Lookup::Reply(&e), false);
        assert_eq!(d.state, State::Established);
        let (e, refresh, destroy) = update(d);
        assert!(refresh);
        assert!(destroy);
        assert_eq!(
            e,
            IcmpEntryState {
                outstanding: 0,
                replied: true
            }
        );
        // A duplicate reply before the entry is gone is INVALID, as after.
        let d = classify_query(REP, Lookup::Reply(&e), false);
        assert_eq!(d.state, State::Invalid(InvalidReason::AlreadyAnswered));
        assert_eq!(d.action, QueryAction::Nothing);
        let d = classify_query(REP, Lookup::None, false);
        assert_eq!(d.state, State::Invalid(InvalidReason::UnsolicitedReply));
    }

    #[test]
    fn keep_replied_never_destroys() {
        let mut e = IcmpEntryState::first_request();
        let out = e.on_reply(true);
        assert_eq!(out.state, State::Established);
        assert!(out.answered_last);
        assert!(!out.destroy);
        // Further replies with nothing outstanding stay ESTABLISHED.
        let d = classify_query(REP, Lookup::Reply(&e), true);
        assert_eq!(d.state, State::Established);
        let (e2, _, destroy) = update(d);
        assert!(!destroy);
        assert_eq!(e2.outstanding, 0);
        // A new request on the replied entry is ESTABLISHED.
        let d = classify_query(REQ, Lookup::Original(&e2), true);
        assert_eq!(d.state, State::Established);
        assert_eq!(update(d).0.outstanding, 1);
    }

    #[test]
    fn outstanding_requests_are_counted() {
        let mut e = IcmpEntryState::first_request();
        assert_eq!(e.on_request(), State::New);
        assert_eq!(e.on_request(), State::New);
        assert_eq!(e.outstanding, 3);
        let out = e.on_reply(false);
        assert_eq!(
            out,
            ReplyOutcome {
                state: State::Established,
                answered_last: false,
                destroy: false
            }
        );
        // Repeated request after a reply: ESTABLISHED, the entry's state.
        let d = classify_query(REQ, Lookup::Original(&e), false);
        assert_eq!(d.state, State::Established);
        let (e, refresh, destroy) = update(d);
        assert!(refresh);
        assert!(!destroy);
        assert_eq!(e.outstanding, 3);
        let mut e = e;
        assert!(!e.on_reply(false).destroy);
        assert!(!e.on_reply(false).destroy);
        let last = e.on_reply(false);
        assert!(last.answered_last);
        assert!(last.destroy);
    }

    #[test]
    fn outstanding_saturates() {
        let mut e = IcmpEntryState {
            outstanding: u32::MAX,
            replied: false,
        };
        assert_eq!(e.on_request(), State::New);
        assert_eq!(e.outstanding, u32::MAX);
    }

    #[test]
    fn other_untracked_error_and_wrong_direction() {
        let e = IcmpEntryState::first_request();
        for l in [Lookup::None, Lookup::Original(&e), Lookup::Reply(&e)] {
            let d = classify_query(IcmpKind::Other, l, false);
            assert_eq!(d.state, State::Invalid(InvalidReason::UnknownType));
            assert_eq!(d.action, QueryAction::Nothing);
            let d = classify_query(IcmpKind::Untracked, l, false);
            assert_eq!(d.state, State::Untracked);
            assert_eq!(d.action, QueryAction::Nothing);
            let d = classify_query(IcmpKind::Error, l, false);
            assert_eq!(d.state, State::Invalid(InvalidReason::NotAQuery));
        }
        let d = classify_query(REQ, Lookup::Reply(&e), false);
        assert_eq!(d.state, State::Invalid(InvalidReason::WrongDirection));
        let d = classify_query(REP, Lookup::Original(&e), false);
        assert_eq!(d.state, State::Invalid(InvalidReason::WrongDirection));
    }

    /// A table holding one entry under its two tuples.
    fn table<'a>(t: &Tuple, orig: &Tuple, reply: &Tuple, e: &'a IcmpEntryState) -> Lookup<'a> {
        if t == orig {
            Lookup::Original(e)
        } else if t == reply {
            Lookup::Reply(e)
        } else {
            Lookup::None
        }
    }

    /// Every query pair, through tuple, reply tuple and classification, with
    /// a one-entry table.
    #[test]
    fn every_query_pair_end_to_end() {
        let v4 = (
            Addr::from_v4([192, 168, 1, 6]),
            Addr::from_v4([192, 168, 1, 10]),
        );
        let mut b1 = [0u8; 16];
        b1[0] = 0xfd;
        b1[15] = 1;
        let mut b2 = b1;
        b2[15] = 2;
        let v6 = (Addr::from_v6(b1), Addr::from_v6(b2));
        let pairs = [
            (Family::Ipv4, 8u8, 0u8),
            (Family::Ipv4, 13, 14),
            (Family::Ipv4, 15, 16),
            (Family::Ipv4, 17, 18),
            (Family::Ipv4, 42, 43),
            (Family::Ipv6, 128, 129),
            (Family::Ipv6, 139, 140),
        ];
        for (fam, req, rep) in pairs {
            let (a, b) = if fam == Family::Ipv4 { v4 } else { v6 };
            let orig = Tuple::icmp(fam, a, b, req, 0, 99);
            let reply = orig.reply().unwrap();
            // A reply before any request is INVALID.
            let d = classify_query(kind(fam, rep), Lookup::None, false);
            assert_eq!(d.state, State::Invalid(InvalidReason::UnsolicitedReply));
            // Request: NEW, creates.
            let d = classify_query(kind(fam, req), Lookup::None, false);
            assert_eq!(d.state, State::New, "{fam:?} {req}");
            let QueryAction::Create(e) = d.action else {
                panic!()
            };
            // The reply packet as the target sends it.
            let pkt = Tuple::icmp(fam, b, a, rep, 0, 99);
            let d = classify_query(kind(fam, rep), table(&pkt, &orig, &reply, &e), false);
            assert_eq!(d.state, State::Established, "{fam:?} {rep}");
            assert!(update(d).2);
            // A reply with another id matches nothing.
            let other = Tuple::icmp(fam, b, a, rep, 0, 100);
            let d = classify_query(kind(fam, rep), table(&other, &orig, &reply, &e), false);
            assert_eq!(d.state, State::Invalid(InvalidReason::UnsolicitedReply));
        }
    }
}
