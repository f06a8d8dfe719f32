// SPDX-License-Identifier: GPL-2.0

//! What happens to one IPv4 or IPv6 packet at icmp_ct's hooks.
//!
//! Every packet passes one classification hook (PRE_ROUTING or LOCAL_OUT, priority -99) and,
//! unless the ruleset drops it, one confirmation hook (LOCAL_IN or POST_ROUTING, priority 99).
//! Classification only reads the table: it decides the packet's state for statistics (and
//! the rules after it). Confirmation applies the packet to the table: it inserts the entry of
//! a NEW packet, refreshes timeouts, counts requests and replies, and destroys entries that a
//! reply or an error ends. So a packet dropped in between leaves no trace, and an entry is
//! destroyed "once the reply has traveled all the way through the Netfilter structure".

use crate::abstractions::jiffies;
use crate::abstractions::netfilter::{HookPoint, NetHooks, Verdict};
use crate::abstractions::race_window::RaceWindow;
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::skb::SkBuff;
use crate::abstractions::table::{Entry, EntryRef, Eviction, InsertError, NewEntry, WindowsGuard};
use crate::net_state::NetState;
use crate::packet;
use crate::proto::addr::Family;
use crate::proto::decide::{self, Action, Decision, Knobs, Subject};
use crate::proto::entry_word;
use crate::proto::flow_state::TimeoutKind;
use crate::proto::packet::Packet;
use crate::proto::quota;
use crate::proto::rtt::{self, Timing};
use crate::proto::state::{InvalidReason, State};
use crate::proto::tcp_window::TcpWindows;
use crate::proto::tuple::Tuple;
use crate::rtt_stats;
use crate::stats::Counter;
use crate::sysctls::Knob;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

fn hook_counter(point: HookPoint) -> Counter {
    match point {
        HookPoint::PreRouting => Counter::HookPreRouting,
        HookPoint::LocalIn => Counter::HookLocalIn,
        HookPoint::LocalOut => Counter::HookLocalOut,
        HookPoint::PostRouting => Counter::HookPostRouting,
    }
}

fn state_counter(state: &State) -> Counter {
    match state {
        State::New => Counter::New,
        State::Established => Counter::Established,
        State::Related => Counter::Related,
        State::Invalid(_) => Counter::Invalid,
        State::Untracked => Counter::Untracked,
    }
}

impl NetHooks for NetState {
    fn hook(&self, family: Family, point: HookPoint, skb: &SkBuff) -> Verdict {
        self.stats.inc(hook_counter(point));
        match point {
            HookPoint::PreRouting | HookPoint::LocalOut => self.classify_hook(family, point, skb),
            HookPoint::LocalIn | HookPoint::PostRouting => self.confirm_hook(family, point, skb),
        }
    }
}

/// A live (not expired) entry found for a tuple.
struct Found<'a> {
    entry: EntryRef<'a>,
    /// Its direction and state word when it was found.
    view: decide::Found,
    /// A TCP entry's sequence state, locked from the lookup until the packet is applied.
    windows: Option<WindowsGuard<'a>>,
}

/// Whether an action reached its entry.
enum Applied {
    /// Applied, or nothing to apply.
    Done,
    /// The entry stopped being live under us: look the tuple up again.
    Gone,
}

/// What `subject`, applied to an entry whose word was `before` (`None`: creating it), does
/// with the round-trip clock.
fn timing(subject: &Subject<'_>, before: Option<u64>) -> Timing {
    match subject {
        Subject::Query { tuple, kind } => rtt::timing(tuple.family, *kind, before),
        _ => Timing::None,
    }
}

impl NetState {
    fn classify_hook(&self, family: Family, point: HookPoint, skb: &SkBuff) -> Verdict {
        let packet = packet::read(family, skb);
        let verdict = self.classify_packet(family, point, skb, &packet);
        match verdict {
            Verdict::Accept => self.handoff.put(packet::Tag::of(family, skb), packet),
            Verdict::Drop => self.handoff.clear(),
        }
        verdict
    }

    fn classify_packet(
        &self,
        family: Family,
        point: HookPoint,
        skb: &SkBuff,
        packet: &Packet,
    ) -> Verdict {
        // The filtering guide: fragmented ICMP is dropped before any other analysis.
        if packet.is_fragmented_icmp() && self.sysctl(Knob::DropFragments) != 0 {
            self.stats.inc(Counter::DroppedFragment);
            return Verdict::Drop;
        }
        let rcu = RcuGuard::new();
        let state = match self.checksum_failure(family, point, skb, packet) {
            Some(reason) => State::Invalid(reason),
            None => self.classify(point, packet, &rcu),
        };
        match state {
            State::Invalid(reason) => self.stats.inc_invalid(reason),
            _ => self.stats.inc(state_counter(&state)),
        }
        if let Some(icmp_type) = packet.icmp_type() {
            self.type_stats.count(family, icmp_type, &state);
        }
        self.mark(skb, &state);
        if let State::Invalid(reason) = state {
            if self.sysctl(Knob::LogInvalid) != 0 {
                self.log.invalid(reason.as_str());
            }
            if self.sysctl(Knob::DropInvalid) != 0 {
                self.stats.inc(Counter::DroppedInvalid);
                return Verdict::Drop;
            }
        }
        Verdict::Accept
    }

    /// Writes the state code into `skb->mark` under `ip_ct_mark_mask`, shifted to the mask's
    /// lowest set bit; bits outside the mask are kept.
    fn mark(&self, skb: &SkBuff, state: &State) {
        let mask = self.sysctl(Knob::MarkMask) as u32;
        if mask == 0 {
            return;
        }
        let code = state.mark_code().wrapping_shl(mask.trailing_zeros());
        skb.set_mark((skb.mark() & !mask) | (code & mask));
    }

    /// `Some` if the packet is an ICMP message whose checksum is wrong and checksums are
    /// checked: like nf_conntrack, only for packets that arrived from outside (locally
    /// generated ones may carry a partial checksum) and not on fragments (the checksum covers
    /// the whole message). It is computed once, at PRE_ROUTING; the confirmation hooks read
    /// the result that left in the packet, so that a packet classified INVALID for its
    /// checksum is not applied to the table, and an outgoing packet is never given receive
    /// checksum state. Only LOCAL_IN computes again, for what PRE_ROUTING could not verify: a
    /// message reassembled from fragments, or one that failed there.
    fn checksum_failure(
        &self,
        family: Family,
        point: HookPoint,
        skb: &SkBuff,
        packet: &Packet,
    ) -> Option<InvalidReason> {
        let (Packet::Icmp {
            l4_offset,
            fragmented: false,
            ..
        }
        | Packet::IcmpError {
            l4_offset,
            fragmented: false,
            ..
        }) = packet
        else {
            return None;
        };
        if point == HookPoint::LocalOut || self.sysctl(Knob::Checksum) == 0 {
            return None;
        }
        let compute = |hook| {
            u32::try_from(skb.network_offset())
                .ok()
                .map(|offset| offset.saturating_add(*l4_offset))
                .is_some_and(|offset| skb.checksum_ok(family, hook, offset, family.icmp_protocol()))
        };
        let correct = match point {
            HookPoint::PreRouting => compute(HookPoint::PreRouting),
            HookPoint::LocalIn => skb.checksum_verified() || compute(HookPoint::LocalIn),
            HookPoint::PostRouting => !skb.arrived_from_outside() || skb.checksum_verified(),
            HookPoint::LocalOut => true,
        };
        (!correct).then_some(InvalidReason::BadChecksum)
    }

    /// Looks `tuple` up, ignoring expired entries and entries not (or no longer) live.
    fn find<'a>(&'a self, tuple: &Tuple, rcu: &'a RcuGuard) -> Option<Found<'a>> {
        let (entry, dir) = self.table.lookup(tuple, rcu)?;
        let windows = entry.lock_windows();
        let word = entry.state().load(Ordering::Acquire);
        if !entry_word::is_live(word) || entry.expired(jiffies::now()) {
            return None;
        }
        Some(Found {
            entry,
            view: decide::Found {
                dir,
                word,
                windows: windows.as_ref().map(WindowsGuard::get),
            },
            windows,
        })
    }

    fn classify(&self, point: HookPoint, packet: &Packet, rcu: &RcuGuard) -> State {
        match packet {
            Packet::Fragment { .. } | Packet::NotTracked => return State::Untracked,
            Packet::Invalid { reason, .. } => return State::Invalid(*reason),
            _ => {}
        }
        let Some((subject, tuple)) = packet.subject(point == HookPoint::LocalOut) else {
            return State::Untracked;
        };
        let found = self.find(tuple, rcu);
        if found.is_some() {
            self.stats.inc(Counter::Found);
        }
        let view = found.as_ref().map(|f| &f.view);
        let decision = self.within_quota(decide::decide(&subject, view, &self.knobs()), tuple, rcu);
        if decision.state == State::Invalid(InvalidReason::Quota) {
            self.stats.inc(Counter::QuotaDrop);
        }
        decision.state
    }

    /// `ip_ct_max_per_source`, 0 when off.
    fn quota(&self) -> u32 {
        u32::try_from(self.sysctl(Knob::MaxPerSource)).unwrap_or(0)
    }

    /// `decision` as the source's quota leaves it: a creation the quota refuses is INVALID.
    fn within_quota(&self, decision: Decision, tuple: &Tuple, rcu: &RcuGuard) -> Decision {
        if !matches!(decision.action, Action::Create { .. }) {
            return decision;
        }
        quota::limit(
            decision,
            self.table.quota_admission(tuple, self.quota(), rcu),
        )
    }

    fn knobs(&self) -> Knobs {
        Knobs {
            keep_replied: self.sysctl(Knob::IcmpKeepReplied) != 0,
            tcp_loose: self.sysctl(Knob::TcpLoose) != 0,
        }
    }

    fn confirm_hook(&self, family: Family, point: HookPoint, skb: &SkBuff) -> Verdict {
        let packet = self
            .handoff
            .take(packet::Tag::of(family, skb))
            .unwrap_or_else(|| packet::read(family, skb));
        if self.checksum_failure(family, point, skb, &packet).is_some() {
            return Verdict::Accept;
        }
        let Some((subject, tuple)) = packet.subject(point == HookPoint::LocalOut) else {
            return Verdict::Accept;
        };
        let rcu = RcuGuard::new();
        let knobs = self.knobs();
        // A lost race with another CPU (inserting the same entry, or ending the one found):
        // look again, once.
        for _ in 0..2 {
            let found = self.find(tuple, &rcu);
            let decision = decide::decide(&subject, found.as_ref().map(|f| &f.view), &knobs);
            // Refused: classified INVALID and counted (`classify`); creates nothing.
            let decision = self.within_quota(decision, tuple, &rcu);
            let applied = match (found, decision.action) {
                (_, Action::Nothing) => Applied::Done,
                (
                    None,
                    Action::Create {
                        word,
                        timeout,
                        windows,
                    },
                ) => match self.create(
                    tuple,
                    word,
                    timeout,
                    windows.as_ref(),
                    timing(&subject, None),
                    &rcu,
                ) {
                    Some(verdict) => return verdict,
                    None => Applied::Gone,
                },
                (Some(found), Action::Destroy) => {
                    if found.entry.remove() {
                        self.stats.inc(Counter::DestroyedOnError);
                    }
                    Applied::Done
                }
                (Some(found), _) => self.apply(
                    &found,
                    decision,
                    |view| decide::decide(&subject, Some(view), &knobs),
                    |before| self.time(&found.entry, timing(&subject, Some(before))),
                ),
                (None, _) => Applied::Done,
            };
            if let Applied::Done = applied {
                break;
            }
        }
        Verdict::Accept
    }

    fn timeout_deadline(&self, kind: TimeoutKind) -> u32 {
        let seconds = u32::try_from(self.sysctl(Knob::timeout(kind))).unwrap_or(1);
        jiffies::now().wrapping_add(jiffies::from_secs(seconds))
    }

    /// Creates the entry of a NEW packet; `None` when another CPU inserted it first (look it
    /// up again), else the packet's verdict.
    fn create(
        &self,
        tuple: &Tuple,
        word: u64,
        timeout: TimeoutKind,
        windows: Option<&TcpWindows>,
        timing: Timing,
        rcu: &RcuGuard,
    ) -> Option<Verdict> {
        let deadline = self.timeout_deadline(timeout);
        let request_us = match timing {
            Timing::Request => rtt_stats::now_us(),
            _ => 0,
        };
        let limit = u32::try_from(self.sysctl(Knob::ConntrackMax)).unwrap_or(0);
        // The entry a reply closed, if it is still there: cheaper than a new one.
        if self
            .table
            .reopen(tuple, word, deadline, request_us, limit, self.quota(), rcu)
        {
            self.stats.inc(Counter::Insert);
            return Some(Verdict::Accept);
        }
        match self.insert(tuple, word, deadline, windows, request_us) {
            Err(InsertError::Clash) => None,
            Err(InsertError::Full) => Some(Verdict::Drop),
            // Lost a race for the source's last slot after classification found one.
            Err(InsertError::Quota) => Some(Verdict::Accept),
            Ok(()) => Some(Verdict::Accept),
        }
    }

    /// Applies `decision`'s update or close to `found` in one compare-and-swap of its state
    /// word (closing marks the entry so in the same step, so that no packet counted after
    /// that is lost with it); when another CPU changed the word first, decides again on the
    /// word it left (`redecide`). Stores that change nothing are skipped. `applied` gets the
    /// word the packet was applied to.
    fn apply(
        &self,
        found: &Found<'_>,
        mut decision: Decision,
        redecide: impl Fn(&decide::Found) -> Decision,
        applied: impl FnOnce(u64),
    ) -> Applied {
        let word = found.entry.state();
        let mut current = found.view.word;
        loop {
            let result = match decision.action {
                Action::Close => found.entry.close(current),
                Action::Update { word: new, .. } if new != current => word
                    .compare_exchange(current, new, Ordering::AcqRel, Ordering::Relaxed)
                    .map(|_| ()),
                Action::Update { .. } => Ok(()),
                _ => return Applied::Done,
            };
            match result {
                Ok(()) => {
                    applied(current);
                    break;
                }
                Err(actual) if entry_word::is_live(actual) => {
                    current = actual;
                    decision = redecide(&decide::Found {
                        word: actual,
                        ..found.view
                    });
                }
                Err(_) => return Applied::Gone,
            }
        }
        match decision.action {
            Action::Close => {
                RaceWindow::ReplyClosed.hold();
                self.stats.inc(Counter::DestroyedOnReply);
            }
            Action::Update {
                timeout, windows, ..
            } => {
                if let (Some(windows), Some(guard)) = (windows, &found.windows) {
                    guard.set(&windows);
                }
                if let Some(timeout) = timeout {
                    let deadline = self.timeout_deadline(timeout);
                    if found.entry.deadline().load(Ordering::Relaxed) != deadline {
                        found.entry.deadline().store(deadline, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
        Applied::Done
    }

    /// Reads the clock for a query packet applied to `entry`: the request's time, or the
    /// round trip its reply ends (counted in the histogram for echo).
    fn time(&self, entry: &Entry, timing: Timing) {
        match timing {
            Timing::None => {}
            Timing::Request => entry
                .request_us()
                .store(rtt_stats::now_us(), Ordering::Relaxed),
            Timing::Answer { echo } => {
                let request_us = entry.request_us().load(Ordering::Relaxed);
                let us = rtt::elapsed(request_us, rtt_stats::now_us());
                entry.rtt_us().store(us, Ordering::Relaxed);
                if echo {
                    self.rtt.record(us);
                }
            }
        }
    }

    /// Inserts a new entry, making room when the table is full. `Err(Full)` means the packet
    /// must be dropped.
    fn insert(
        &self,
        original: &Tuple,
        word: u64,
        deadline: u32,
        windows: Option<&TcpWindows>,
        request_us: u32,
    ) -> Result<(), InsertError> {
        let Some(mut new) = NewEntry::new(original, word, deadline) else {
            self.stats.inc(Counter::InsertFailed);
            return Err(InsertError::Full);
        };
        if let Some(windows) = windows {
            new.set_windows(windows);
        }
        new.set_request_us(request_us);
        let limit = u32::try_from(self.sysctl(Knob::ConntrackMax)).unwrap_or(0);
        let now = jiffies::now();
        let result = self.table.insert(new, limit, self.quota(), |entry| {
            if entry.expired(now) {
                Eviction::Expired
            } else if entry_word::is_unreplied(entry.state().load(Ordering::Relaxed)) {
                Eviction::EarlyDrop
            } else {
                Eviction::Keep
            }
        });
        match result {
            Ok(evicted) => {
                self.stats.inc(Counter::Insert);
                self.stats.add(Counter::Expired, evicted.expired.into());
                self.stats
                    .add(Counter::EarlyDrop, evicted.early_dropped.into());
                Ok(())
            }
            Err(InsertError::Full) => {
                self.stats.inc(Counter::Drop);
                if crate::abstractions::log::ratelimited() {
                    pr_warn!("table full, dropping packet\n");
                }
                Err(InsertError::Full)
            }
            Err(InsertError::Clash) => {
                self.stats.inc(Counter::InsertFailed);
                Err(InsertError::Clash)
            }
            Err(InsertError::Quota) => {
                self.stats.inc(Counter::QuotaDrop);
                Err(InsertError::Quota)
            }
        }
    }
}
