// SPDX-License-Identifier: GPL-2.0

//! The decision a packet gets, for the cases the kernel's apply step distinguishes.

use icmp_ct_proto::addr::{Addr, Family};
use icmp_ct_proto::decide::{decide, Action, Dir, Found, Knobs, Subject};
use icmp_ct_proto::entry_word;
use icmp_ct_proto::flow_state::TimeoutKind;
use icmp_ct_proto::icmp_state::IcmpEntryState;
use icmp_ct_proto::icmp_types::IcmpKind;
use icmp_ct_proto::state::{InvalidReason, State};
use icmp_ct_proto::tuple::{Tuple, IPPROTO_UDP};

fn echo(t: u8) -> Tuple {
    Tuple::icmp(
        Family::Ipv4,
        Addr::from_v4([10, 0, 0, 1]),
        Addr::from_v4([10, 0, 0, 2]),
        t,
        0,
        7,
    )
}

fn one_outstanding() -> Found {
    Found {
        dir: Dir::Reply,
        word: entry_word::pack_icmp(IcmpEntryState::first_request()),
        windows: None,
    }
}

#[test]
fn a_request_without_entry_creates_one_with_the_icmp_timeout() {
    let request = echo(8);
    let subject = Subject::Query {
        tuple: &request,
        kind: IcmpKind::Request { reply: 0 },
    };
    let d = decide(&subject, None, &Knobs::default());
    assert_eq!(d.state, State::New);
    assert_eq!(
        d.action,
        Action::Create {
            word: entry_word::pack_icmp(IcmpEntryState::first_request()),
            timeout: TimeoutKind::Icmp,
            windows: None,
        }
    );
}

#[test]
fn the_last_reply_closes_the_entry_unless_replied_entries_are_kept() {
    let reply = echo(0);
    let subject = Subject::Query {
        tuple: &reply,
        kind: IcmpKind::Reply { request: 8 },
    };
    let d = decide(&subject, Some(&one_outstanding()), &Knobs::default());
    assert_eq!((d.state, d.action), (State::Established, Action::Close));
    let keep = Knobs {
        keep_replied: true,
        ..Knobs::default()
    };
    let d = decide(&subject, Some(&one_outstanding()), &keep);
    assert_eq!(d.state, State::Established);
    assert!(matches!(d.action, Action::Update { .. }), "{:?}", d.action);
}

#[test]
fn a_reply_without_entry_is_invalid_and_changes_nothing() {
    let reply = echo(0);
    let subject = Subject::Query {
        tuple: &reply,
        kind: IcmpKind::Reply { request: 8 },
    };
    let d = decide(&subject, None, &Knobs::default());
    assert_eq!(
        (d.state, d.action),
        (
            State::Invalid(InvalidReason::UnsolicitedReply),
            Action::Nothing
        )
    );
}

#[test]
fn an_error_the_host_sends_about_nothing_tracked_is_related_only_when_local() {
    let error = |local| Subject::Error {
        family: Family::Ipv4,
        icmp_type: 3,
        code: 3,
        local,
    };
    let d = decide(&error(true), None, &Knobs::default());
    assert_eq!((d.state, d.action), (State::Related, Action::Nothing));
    let d = decide(&error(false), None, &Knobs::default());
    assert_eq!(d.state, State::Invalid(InvalidReason::NoRelatedEntry));
    assert_eq!(d.action, Action::Nothing);
}

#[test]
fn a_port_unreachable_destroys_an_unreplied_flow_but_not_a_replied_one() {
    let subject = Subject::Error {
        family: Family::Ipv4,
        icmp_type: 3,
        code: 3,
        local: false,
    };
    let unreplied = Found {
        dir: Dir::Original,
        word: 0,
        windows: None,
    };
    let d = decide(&subject, Some(&unreplied), &Knobs::default());
    assert_eq!((d.state, d.action), (State::Related, Action::Destroy));
    let replied = Found {
        dir: Dir::Original,
        word: entry_word::pack_icmp(IcmpEntryState {
            outstanding: 0,
            replied: true,
        }),
        windows: None,
    };
    let d = decide(&subject, Some(&replied), &Knobs::default());
    assert_eq!((d.state, d.action), (State::Related, Action::Nothing));
}

#[test]
fn udp_first_packet_creates_and_its_reply_updates_with_the_stream_timeout() {
    let lo = Addr::from_v4([10, 0, 0, 1]);
    let hi = Addr::from_v4([10, 0, 0, 2]);
    let out = Tuple::ports(Family::Ipv4, lo, hi, IPPROTO_UDP, 5000, 53);
    let subject = Subject::Flow {
        tuple: &out,
        tcp: None,
    };
    let d = decide(&subject, None, &Knobs::default());
    let Action::Create { word, timeout, .. } = d.action else {
        panic!("{:?}", d.action);
    };
    assert_eq!((d.state, timeout), (State::New, TimeoutKind::Udp));
    let back = Tuple::ports(Family::Ipv4, hi, lo, IPPROTO_UDP, 53, 5000);
    let subject = Subject::Flow {
        tuple: &back,
        tcp: None,
    };
    let d = decide(
        &subject,
        Some(&Found {
            dir: Dir::Reply,
            word,
            windows: None,
        }),
        &Knobs::default(),
    );
    assert_eq!(d.state, State::Established);
    assert!(
        matches!(
            d.action,
            Action::Update {
                timeout: Some(TimeoutKind::UdpStream),
                ..
            }
        ),
        "{:?}",
        d.action
    );
}
