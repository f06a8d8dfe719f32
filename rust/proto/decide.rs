// SPDX-License-Identifier: GPL-2.0

//! The decision one packet gets: its state, and what it does to the table, from what the
//! packet is, the entry the table holds for it, and the sysctls. The kernel's hooks look the
//! packet up, call [`decide`] and apply its action; the host tests and fuzzers drive the same
//! function.

use super::addr::Family;
use super::entry_word;
use super::flow_state::{self, FlowAction, FlowLookup, TimeoutKind};
use super::icmp_error::{self, ErrorLookup};
use super::icmp_state::{self, Lookup, QueryAction};
use super::icmp_types::IcmpKind;
use super::state::State;
use super::tcp_window::{TcpSegment, TcpWindows};
use super::tuple::{self, Tuple};

/// Which of an entry's tuples a packet matched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dir {
    /// The tuple of the packet that created the entry.
    Original,
    /// The tuple of the expected reply.
    Reply,
}

/// What a packet is, as far as the decision goes.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// An ICMP query, reply or other non-error message.
    Query {
        /// Its tuple.
        tuple: &'a Tuple,
        /// What its type is.
        kind: IcmpKind,
    },
    /// An ICMP error; the entry looked up is that of the packet it embeds.
    Error {
        /// Its family.
        family: Family,
        /// Its type.
        icmp_type: u8,
        /// Its code.
        code: u8,
        /// This host's stack sends it (the local output hook) about a packet it refused.
        local: bool,
    },
    /// A UDP, TCP or other IP protocol packet.
    Flow {
        /// Its tuple.
        tuple: &'a Tuple,
        /// The TCP segment's fields, for TCP.
        tcp: Option<TcpSegment>,
    },
}

/// The live entry the table holds for the packet.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    /// Which of its tuples the packet matched.
    pub dir: Dir,
    /// Its state word ([`entry_word`]).
    pub word: u64,
    /// Its TCP sequence state (TCP entries), read together with `word`.
    pub windows: Option<TcpWindows>,
}

/// The sysctls the decision reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Knobs {
    /// `ip_ct_icmp_keep_replied`.
    pub keep_replied: bool,
    /// `ip_ct_tcp_loose`.
    pub tcp_loose: bool,
}

/// What the packet does to the table once it has passed the last hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    /// Nothing.
    Nothing,
    /// Create an entry with this state word and timeout.
    Create {
        /// The new entry's state word.
        word: u64,
        /// Its timeout.
        timeout: TimeoutKind,
        /// TCP: its sequence state.
        windows: Option<TcpWindows>,
    },
    /// Store this state word into the entry found, and restart this timeout.
    Update {
        /// The entry's new state word.
        word: u64,
        /// The timeout to restart, if any.
        timeout: Option<TimeoutKind>,
        /// TCP: the entry's new sequence state.
        windows: Option<TcpWindows>,
    },
    /// The reply that answers the last request ends the query's entry.
    Close,
    /// An error ends the flow it reports on.
    Destroy,
}

/// A packet's state and action.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    /// The packet's state.
    pub state: State,
    /// What it does to the table.
    pub action: Action,
}

/// Decides `subject`'s state and action, given the live entry `found` for its tuple.
pub fn decide(subject: &Subject<'_>, found: Option<&Found>, knobs: &Knobs) -> Decision {
    match *subject {
        Subject::Query { tuple, kind } => query(tuple, kind, found, knobs),
        Subject::Error {
            family,
            icmp_type,
            code,
            local,
        } => error(family, icmp_type, code, local, found),
        Subject::Flow { tuple, tcp } => flow(tuple, tcp, found, knobs),
    }
}

fn query(tuple: &Tuple, kind: IcmpKind, found: Option<&Found>, knobs: &Knobs) -> Decision {
    let entry = found.map(|f| (f.dir, entry_word::unpack_icmp(f.word)));
    let lookup = match &entry {
        None => Lookup::None,
        Some((Dir::Original, state)) => Lookup::Original(state),
        Some((Dir::Reply, state)) => Lookup::Reply(state),
    };
    let decision = icmp_state::classify_query(kind, lookup, knobs.keep_replied);
    let timeout = TimeoutKind::icmp(tuple.family);
    let action = match decision.action {
        QueryAction::Nothing => Action::Nothing,
        // A request without a reply type creates nothing: no reply could ever match it.
        QueryAction::Create(_) if tuple.reply().is_none() => Action::Nothing,
        QueryAction::Create(state) => Action::Create {
            word: entry_word::pack_icmp(state),
            timeout,
            windows: None,
        },
        QueryAction::Update { destroy: true, .. } => Action::Close,
        QueryAction::Update { entry, refresh, .. } => Action::Update {
            word: entry_word::pack_icmp(entry),
            timeout: refresh.then_some(timeout),
            windows: None,
        },
    };
    Decision {
        state: decision.state,
        action,
    }
}

fn error(family: Family, icmp_type: u8, code: u8, local: bool, found: Option<&Found>) -> Decision {
    let lookup = match found {
        // This host reports on a packet it received and refused (a router's
        // fragmentation-needed, time-exceeded or reject): that packet never passed the last
        // hook, so it has no entry, yet the error is about it. nf_conntrack makes such errors
        // RELATED by attaching the packet's connection; anything else would break path MTU
        // discovery and traceroute through a router with ip_ct_drop_invalid = 1.
        None if local => {
            return Decision {
                state: State::Related,
                action: Action::Nothing,
            }
        }
        None => ErrorLookup::NoEntry,
        Some(f) => ErrorLookup::Entry {
            replied: !entry_word::is_unreplied(f.word),
        },
    };
    let decision = icmp_error::classify_error(family, icmp_type, code, lookup);
    Decision {
        state: decision.state,
        action: if decision.destroy_entry {
            Action::Destroy
        } else {
            Action::Nothing
        },
    }
}

fn flow(tuple: &Tuple, tcp: Option<TcpSegment>, found: Option<&Found>, knobs: &Knobs) -> Decision {
    let lookup = match found {
        None => FlowLookup::None,
        Some(f) => {
            let entry = entry_word::unpack_flow(f.word);
            match f.dir {
                Dir::Original => FlowLookup::Original(entry),
                Dir::Reply => FlowLookup::Reply(entry),
            }
        }
    };
    let decision = match tcp {
        Some(seg) => {
            let windows = found.and_then(|f| f.windows).unwrap_or_default();
            flow_state::tcp_packet(&seg, lookup, &windows, knobs.tcp_loose)
        }
        None if tuple::uses_ports(tuple.protocol) => flow_state::udp_packet(lookup),
        None => flow_state::generic_packet(lookup),
    };
    let action = match decision.action {
        FlowAction::Nothing => Action::Nothing,
        FlowAction::Create(update) => Action::Create {
            word: entry_word::pack_flow(update.entry),
            timeout: update.timeout,
            windows: update.windows,
        },
        FlowAction::Update(update) => Action::Update {
            word: entry_word::pack_flow(update.entry),
            timeout: Some(update.timeout),
            windows: update.windows,
        },
    };
    Decision {
        state: decision.state,
        action,
    }
}
