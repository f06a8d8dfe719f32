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
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::skb::SkBuff;
use crate::abstractions::table::{Dir, EntryRef, Eviction, InsertError, NewEntry};
use crate::bindings;
use crate::net_state::NetState;
use crate::packet::Packet;
use crate::proto::addr::Family;
use crate::proto::entry_word;
use crate::proto::flow_state::{self, FlowAction, FlowDecision, FlowLookup, TcpFlags, TimeoutKind};
use crate::proto::icmp_error::{self, ErrorDecision, ErrorLookup};
use crate::proto::icmp_state::{self, Lookup, QueryAction};
use crate::proto::icmp_types::IcmpKind;
use crate::proto::state::{InvalidReason, State};
use crate::proto::tuple::Tuple;
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
    dir: Dir,
    /// Its state word when it was found, live.
    word: u64,
}

/// What a packet does to the entry it matched: its new state word, the timeout to restart,
/// whether it ends the entry.
struct Update {
    word: u64,
    timeout: Option<TimeoutKind>,
    destroy: bool,
}

/// Whether an update reached its entry.
enum Applied {
    /// Applied, or nothing to apply.
    Done,
    /// The entry stopped being live under us: look the tuple up again.
    Gone,
}

impl NetState {
    fn classify_hook(&self, family: Family, point: HookPoint, skb: &SkBuff) -> Verdict {
        let packet = Packet::read(family, skb);
        // The filtering guide: fragmented ICMP is dropped before any other analysis.
        if packet.is_fragmented_icmp() && self.sysctl(Knob::DropFragments) != 0 {
            self.stats.inc(Counter::DroppedFragment);
            return Verdict::Drop;
        }
        let rcu = RcuGuard::new();
        let state = match self.checksum_failure(family, point, skb, &packet) {
            Some(reason) => State::Invalid(reason),
            None => self.classify(point, &packet, &rcu),
        };
        self.stats.inc(state_counter(&state));
        if let Some(icmp_type) = packet.icmp_type() {
            self.type_stats.count(family, icmp_type, &state);
        }
        self.mark(skb, &state);
        if let State::Invalid(reason) = state {
            if self.sysctl(Knob::LogInvalid) != 0 && crate::abstractions::log::ratelimited() {
                pr_info!("INVALID packet: {}\n", reason.as_str());
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
    /// the whole message). The confirmation hook asks again, so that a packet classified
    /// INVALID for its checksum is not applied to the table.
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
        let arrived = match point {
            HookPoint::PreRouting | HookPoint::LocalIn => true,
            HookPoint::PostRouting => skb.arrived_from_outside(),
            HookPoint::LocalOut => false,
        };
        if !arrived || self.sysctl(Knob::Checksum) == 0 {
            return None;
        }
        let offset = u32::try_from(skb.network_offset())
            .ok()?
            .saturating_add(*l4_offset);
        let hook = bindings::ICMP_CT_NF_INET_PRE_ROUTING;
        if skb.checksum_ok(family, hook, offset, family.icmp_protocol()) {
            None
        } else {
            Some(InvalidReason::BadChecksum)
        }
    }

    /// Looks `tuple` up, ignoring expired entries and entries not (or no longer) live.
    fn find<'a>(&'a self, tuple: &Tuple, rcu: &'a RcuGuard) -> Option<Found<'a>> {
        let (entry, dir) = self.table.lookup(tuple, rcu)?;
        let word = entry.state().load(Ordering::Acquire);
        if !entry_word::is_live(word) || entry.expired(jiffies::now()) {
            return None;
        }
        Some(Found { entry, dir, word })
    }

    /// [`Self::find`] for classification, which counts what it finds.
    fn find_counted<'a>(&'a self, tuple: &Tuple, rcu: &'a RcuGuard) -> Option<Found<'a>> {
        let found = self.find(tuple, rcu);
        if found.is_some() {
            self.stats.inc(Counter::Found);
        }
        found
    }

    fn classify(&self, point: HookPoint, packet: &Packet, rcu: &RcuGuard) -> State {
        match packet {
            Packet::Fragment { .. } | Packet::NotTracked => State::Untracked,
            Packet::Invalid { reason, .. } => State::Invalid(*reason),
            Packet::Icmp { tuple, kind, .. } => {
                let found = self.find_counted(tuple, rcu);
                let state = found.as_ref().map(|f| entry_word::unpack_icmp(f.word));
                let lookup = query_lookup(found.as_ref().map(|f| f.dir), state.as_ref());
                icmp_state::classify_query(*kind, lookup, self.keep_replied()).state
            }
            Packet::IcmpError {
                embedded,
                icmp_type,
                code,
                ..
            } => {
                let found = self.find_counted(embedded, rcu);
                if found.is_none() && point == HookPoint::LocalOut {
                    // This host reports on a packet it received and refused (a router's
                    // fragmentation-needed, time-exceeded or reject): that packet never
                    // passed the last hook, so it has no entry, yet the error is about it.
                    // nf_conntrack makes such errors RELATED by attaching the packet's
                    // connection; anything else would break path MTU discovery and
                    // traceroute through a router with ip_ct_drop_invalid = 1.
                    return State::Related;
                }
                error_decision(found.as_ref(), embedded.family, *icmp_type, *code).state
            }
            Packet::Flow { tuple, tcp } => {
                let found = self.find_counted(tuple, rcu);
                let lookup = flow_lookup(found.as_ref());
                self.flow_decision(tuple, *tcp, lookup).state
            }
        }
    }

    fn keep_replied(&self) -> bool {
        self.sysctl(Knob::IcmpKeepReplied) != 0
    }

    fn flow_decision(
        &self,
        tuple: &Tuple,
        tcp: Option<TcpFlags>,
        lookup: FlowLookup,
    ) -> FlowDecision {
        match tcp {
            Some(flags) => flow_state::tcp_packet(flags, lookup, self.sysctl(Knob::TcpLoose) != 0),
            None if crate::proto::tuple::uses_ports(tuple.protocol) => {
                flow_state::udp_packet(lookup)
            }
            None => flow_state::generic_packet(lookup),
        }
    }

    fn confirm_hook(&self, family: Family, point: HookPoint, skb: &SkBuff) -> Verdict {
        let packet = Packet::read(family, skb);
        if self.checksum_failure(family, point, skb, &packet).is_some() {
            return Verdict::Accept;
        }
        let rcu = RcuGuard::new();
        match &packet {
            Packet::Fragment { .. } | Packet::Invalid { .. } | Packet::NotTracked => {
                Verdict::Accept
            }
            Packet::Icmp { tuple, kind, .. } => self.confirm_query(tuple, *kind, &rcu),
            Packet::IcmpError {
                embedded,
                icmp_type,
                code,
                ..
            } => {
                if let Some(found) = self.find(embedded, &rcu) {
                    if error_decision(Some(&found), embedded.family, *icmp_type, *code)
                        .destroy_entry
                        && found.entry.remove()
                    {
                        self.stats.inc(Counter::DestroyedOnError);
                    }
                }
                Verdict::Accept
            }
            Packet::Flow { tuple, tcp } => self.confirm_flow(tuple, *tcp, &rcu),
        }
    }

    fn timeout_deadline(&self, kind: TimeoutKind) -> u32 {
        let seconds = u32::try_from(self.sysctl(Knob::timeout(kind))).unwrap_or(1);
        jiffies::now().wrapping_add(jiffies::from_secs(seconds))
    }

    fn confirm_query(&self, tuple: &Tuple, kind: IcmpKind, rcu: &RcuGuard) -> Verdict {
        let keep_replied = self.keep_replied();
        let timeout = TimeoutKind::icmp(tuple.family);
        // A lost race with another CPU (inserting the same entry, or ending the one found):
        // look again, once.
        for _ in 0..2 {
            let Some(found) = self.find(tuple, rcu) else {
                let decision = icmp_state::classify_query(kind, Lookup::None, keep_replied);
                let QueryAction::Create(state) = decision.action else {
                    return Verdict::Accept;
                };
                match self.create(tuple, entry_word::pack_icmp(state), timeout) {
                    Some(verdict) => return verdict,
                    None => continue,
                }
            };
            let applied = self.apply(&found, |word| {
                let state = entry_word::unpack_icmp(word);
                let lookup = query_lookup(Some(found.dir), Some(&state));
                match icmp_state::classify_query(kind, lookup, keep_replied).action {
                    QueryAction::Update {
                        entry,
                        refresh,
                        destroy,
                    } => Some(Update {
                        word: entry_word::pack_icmp(entry),
                        timeout: refresh.then_some(timeout),
                        destroy,
                    }),
                    _ => None,
                }
            });
            if let Applied::Done = applied {
                return Verdict::Accept;
            }
        }
        Verdict::Accept
    }

    fn confirm_flow(&self, tuple: &Tuple, tcp: Option<TcpFlags>, rcu: &RcuGuard) -> Verdict {
        for _ in 0..2 {
            let Some(found) = self.find(tuple, rcu) else {
                let decision = self.flow_decision(tuple, tcp, FlowLookup::None);
                let FlowAction::Create(update) = decision.action else {
                    return Verdict::Accept;
                };
                match self.create(tuple, entry_word::pack_flow(update.entry), update.timeout) {
                    Some(verdict) => return verdict,
                    None => continue,
                }
            };
            let applied = self.apply(&found, |word| {
                match self
                    .flow_decision(tuple, tcp, flow_lookup_word(found.dir, word))
                    .action
                {
                    FlowAction::Update(update) => Some(Update {
                        word: entry_word::pack_flow(update.entry),
                        timeout: Some(update.timeout),
                        destroy: false,
                    }),
                    _ => None,
                }
            });
            if let Applied::Done = applied {
                return Verdict::Accept;
            }
        }
        Verdict::Accept
    }

    /// Creates the entry of a NEW packet; `None` when another CPU inserted it first (look it
    /// up again), else the packet's verdict.
    fn create(&self, tuple: &Tuple, word: u64, timeout: TimeoutKind) -> Option<Verdict> {
        if tuple.reply().is_none() {
            return Some(Verdict::Accept);
        }
        let deadline = self.timeout_deadline(timeout);
        let limit = u32::try_from(self.sysctl(Knob::ConntrackMax)).unwrap_or(0);
        // The entry a reply closed, if it is still there: cheaper than a new one.
        if self.table.reopen(tuple, word, deadline, limit) {
            self.stats.inc(Counter::Insert);
            return Some(Verdict::Accept);
        }
        match self.insert(tuple, word, deadline) {
            Err(InsertError::Clash) => None,
            Err(InsertError::Full) => Some(Verdict::Drop),
            Ok(()) => Some(Verdict::Accept),
        }
    }

    /// Applies what `decide` makes of the entry's state word to `found`, in one
    /// compare-and-swap: the new word, or, when the packet ends the entry, the closed word,
    /// so that no packet counted after that is lost with it. Stores that change nothing are
    /// skipped.
    fn apply(&self, found: &Found<'_>, decide: impl Fn(u64) -> Option<Update>) -> Applied {
        let word = found.entry.state();
        let mut current = found.word;
        loop {
            if !entry_word::is_live(current) {
                return Applied::Gone;
            }
            let Some(update) = decide(current) else {
                return Applied::Done;
            };
            if update.destroy {
                match found.entry.close(current) {
                    Ok(()) => {
                        self.stats.inc(Counter::DestroyedOnReply);
                        return Applied::Done;
                    }
                    Err(actual) => {
                        current = actual;
                        continue;
                    }
                }
            }
            if update.word != current {
                if let Err(actual) =
                    word.compare_exchange(current, update.word, Ordering::AcqRel, Ordering::Relaxed)
                {
                    current = actual;
                    continue;
                }
            }
            if let Some(timeout) = update.timeout {
                let deadline = self.timeout_deadline(timeout);
                if found.entry.deadline().load(Ordering::Relaxed) != deadline {
                    found.entry.deadline().store(deadline, Ordering::Relaxed);
                }
            }
            return Applied::Done;
        }
    }

    /// Inserts a new entry, making room when the table is full. `Err(Full)` means the packet
    /// must be dropped.
    fn insert(&self, original: &Tuple, word: u64, deadline: u32) -> Result<(), InsertError> {
        let Some(new) = NewEntry::new(original, word, deadline) else {
            self.stats.inc(Counter::InsertFailed);
            return Err(InsertError::Full);
        };
        let limit = u32::try_from(self.sysctl(Knob::ConntrackMax)).unwrap_or(0);
        let now = jiffies::now();
        let result = self.table.insert(new, limit, |entry| {
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
        }
    }
}

fn error_decision(
    found: Option<&Found<'_>>,
    family: Family,
    icmp_type: u8,
    code: u8,
) -> ErrorDecision {
    let lookup = match found {
        None => ErrorLookup::NoEntry,
        Some(f) => ErrorLookup::Entry {
            replied: !entry_word::is_unreplied(f.word),
        },
    };
    icmp_error::classify_error(family, icmp_type, code, lookup)
}

fn query_lookup<'a>(dir: Option<Dir>, state: Option<&'a icmp_state::IcmpEntryState>) -> Lookup<'a> {
    match (dir, state) {
        (Some(Dir::Original), Some(s)) => Lookup::Original(s),
        (Some(Dir::Reply), Some(s)) => Lookup::Reply(s),
        _ => Lookup::None,
    }
}

fn flow_lookup(found: Option<&Found<'_>>) -> FlowLookup {
    match found {
        None => FlowLookup::None,
        Some(f) => flow_lookup_word(f.dir, f.word),
    }
}

fn flow_lookup_word(dir: Dir, word: u64) -> FlowLookup {
    let entry = entry_word::unpack_flow(word);
    match dir {
        Dir::Original => FlowLookup::Original(entry),
        Dir::Reply => FlowLookup::Reply(entry),
    }
}
