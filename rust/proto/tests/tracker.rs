// SPDX-License-Identifier: GPL-2.0

//! The protocol core composed into a toy IPv4 tracker, the way the kernel side uses it: real
//! packets in, the real decision (`decide`) applied to a toy table, states and `/proc` lines
//! out. Entries are applied at once, as if every packet passed the last hook.

use icmp_ct_proto::addr::{Addr, Family};
use icmp_ct_proto::checksum::{checksum_is_valid, internet_checksum};
use icmp_ct_proto::conntrack_line::{write_line, LineEntry};
use icmp_ct_proto::decide::{self, Action, Dir, Knobs};
use icmp_ct_proto::entry_word;
use icmp_ct_proto::flow_state::Timeouts;
use icmp_ct_proto::key::Key;
use icmp_ct_proto::packet::Packet;
use icmp_ct_proto::quota::{self, Admission, Source};
use icmp_ct_proto::state::{InvalidReason, State};
use icmp_ct_proto::tcp_window::TcpWindows;
use icmp_ct_proto::tuple::{Tuple, L4};
use icmp_ct_proto::ParseError;

struct Entry {
    orig: Tuple,
    reply: Tuple,
    word: u64,
    timeout: u32,
    windows: Option<TcpWindows>,
}

#[derive(Default)]
struct Tracker {
    entries: Vec<Entry>,
    keep_replied: bool,
    timeouts: Timeouts,
    /// `ip_ct_max_per_source`.
    quota: u32,
}

impl Tracker {
    fn find(&self, t: &Tuple) -> Option<(usize, Dir)> {
        self.entries
            .iter()
            .position(|e| e.orig == *t)
            .map(|i| (i, Dir::Original))
            .or_else(|| {
                self.entries
                    .iter()
                    .position(|e| e.reply == *t)
                    .map(|i| (i, Dir::Reply))
            })
    }

    /// One packet through the module's own parse and decision, its ICMP checksum checked as
    /// on arrival.
    fn packet(&mut self, pkt: &[u8]) -> State {
        let packet = Packet::parse(Family::Ipv4, pkt);
        if let Packet::Invalid { reason, .. } = packet {
            return State::Invalid(reason);
        }
        if let Packet::Icmp { l4_offset, .. } | Packet::IcmpError { l4_offset, .. } = packet {
            let icmp = usize::try_from(l4_offset).ok().and_then(|o| pkt.get(o..));
            if !icmp.is_some_and(checksum_is_valid) {
                return State::Invalid(InvalidReason::BadChecksum);
            }
        }
        let Some((subject, looked_up)) = packet.subject(false) else {
            return State::Untracked;
        };
        let t = *looked_up;
        let found = self.find(&t);
        let view = found.map(|(i, dir)| decide::Found {
            dir,
            word: self.entries[i].word,
            windows: self.entries[i].windows,
        });
        let knobs = Knobs {
            keep_replied: self.keep_replied,
            tcp_loose: true,
        };
        let mut d = decide::decide(&subject, view.as_ref(), &knobs);
        if let Action::Create { .. } = d.action {
            d = self.within_quota(d, &t);
        }
        match (d.action, found) {
            (Action::Nothing, _) => {}
            (
                Action::Create {
                    word,
                    timeout,
                    windows,
                },
                _,
            ) => self.entries.push(Entry {
                orig: t,
                reply: t.reply().unwrap(),
                word,
                timeout: self.timeouts.get(timeout),
                windows,
            }),
            (
                Action::Update {
                    word,
                    timeout,
                    windows,
                },
                Some((i, _)),
            ) => {
                let e = &mut self.entries[i];
                e.word = word;
                e.windows = windows;
                if let Some(timeout) = timeout {
                    e.timeout = self.timeouts.get(timeout);
                }
            }
            (Action::Close | Action::Destroy, Some((i, _))) => {
                self.entries.remove(i);
            }
            (action, None) => panic!("{action:?} without an entry"),
        }
        d.state
    }

    /// The quota as the kernel applies it: the source's count and its oldest entry it may
    /// lose (the table is in creation order, oldest first), evicted when admitted over it.
    fn within_quota(&mut self, d: decide::Decision, t: &Tuple) -> decide::Decision {
        let source = Source::of(&Key::of(t));
        let own: Vec<usize> = (0..self.entries.len())
            .filter(|&i| Source::of(&Key::of(&self.entries[i].orig)) == source)
            .collect();
        let count = own.len() as u32;
        let loses = own
            .iter()
            .copied()
            .find(|&i| quota::may_lose(self.entries[i].word, false));
        let admission = quota::admit(self.quota, count, loses.is_some());
        if let (Admission::EvictOwnOldest, Some(i)) = (admission, loses) {
            self.entries.remove(i);
        }
        quota::limit(d, admission)
    }

    fn lines(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            let (unreplied, assured, tcp_state) = match e.orig.l4 {
                L4::Icmp { .. } => (entry_word::is_unreplied(e.word), false, None),
                _ => {
                    let f = entry_word::unpack_flow(e.word);
                    (!f.replied, f.assured, f.tcp)
                }
            };
            let le = LineEntry {
                tuple: e.orig,
                secs_left: e.timeout,
                unreplied,
                assured,
                tcp_state,
                rtt_us: None,
                use_count: 1,
            };
            write_line(&mut s, &le).unwrap();
        }
        s
    }
}

const A: [u8; 4] = [192, 168, 1, 6];
const B: [u8; 4] = [192, 168, 1, 10];
const R: [u8; 4] = [192, 168, 1, 1];

fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = internet_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

fn icmp_msg(t: u8, code: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = internet_checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn ping(src: [u8; 4], dst: [u8; 4], t: u8, id: u16, seq: u16) -> Vec<u8> {
    ip4(src, dst, 1, &icmp_msg(t, 0, id, seq, b"0123456789abcdef"))
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 12, 0, 0, 1, 2, 3, 4]);
    ip4(src, dst, 17, &u)
}

/// An ICMP error from `from` about `inner` (IP header + 8 bytes kept).
fn error(from: [u8; 4], to: [u8; 4], t: u8, code: u8, inner: &[u8]) -> Vec<u8> {
    let cut = &inner[..inner.len().min(28)];
    ip4(from, to, 1, &icmp_msg(t, code, 0, 0, cut))
}

#[test]
fn ping_as_in_the_tutorial() {
    let mut ct = Tracker::default();
    assert_eq!(ct.packet(&ping(A, B, 8, 33029, 1)), State::New);
    assert_eq!(
        ct.lines(),
        "icmp     1 30 src=192.168.1.6 dst=192.168.1.10 type=8 code=0 id=33029 [UNREPLIED] src=192.168.1.10 dst=192.168.1.6 type=0 code=0 id=33029 use=1\n"
    );
    assert_eq!(ct.packet(&ping(B, A, 0, 33029, 1)), State::Established);
    // Destroyed once the reply has passed: the next reply is unsolicited.
    assert!(ct.entries.is_empty());
    assert_eq!(
        ct.packet(&ping(B, A, 0, 33029, 1)),
        State::Invalid(InvalidReason::UnsolicitedReply)
    );
}

#[test]
fn ping_keep_replied() {
    let mut ct = Tracker {
        keep_replied: true,
        ..Default::default()
    };
    assert_eq!(ct.packet(&ping(A, B, 8, 7, 1)), State::New);
    assert_eq!(ct.packet(&ping(B, A, 0, 7, 1)), State::Established);
    assert_eq!(ct.packet(&ping(A, B, 8, 7, 2)), State::Established);
    assert_eq!(ct.packet(&ping(B, A, 0, 7, 2)), State::Established);
    assert_eq!(ct.packet(&ping(B, A, 0, 7, 2)), State::Established);
    assert_eq!(ct.entries.len(), 1);
    assert!(ct
        .lines()
        .starts_with("icmp     1 30 src=192.168.1.6 dst=192.168.1.10 type=8 code=0 id=7 src="));
}

#[test]
fn every_query_pair_over_the_wire() {
    for (req, rep) in [(8, 0), (13, 14), (15, 16), (17, 18), (42, 43)] {
        let mut ct = Tracker::default();
        assert_eq!(
            ct.packet(&ping(A, B, rep, 1, 1)),
            State::Invalid(InvalidReason::UnsolicitedReply)
        );
        assert_eq!(ct.packet(&ping(A, B, req, 1, 1)), State::New, "{req}");
        assert_eq!(ct.packet(&ping(A, B, req, 1, 2)), State::New, "{req}");
        // Wrong id: nothing.
        assert_eq!(
            ct.packet(&ping(B, A, rep, 2, 1)),
            State::Invalid(InvalidReason::UnsolicitedReply)
        );
        assert_eq!(
            ct.packet(&ping(B, A, rep, 1, 1)),
            State::Established,
            "{rep}"
        );
        assert_eq!(ct.entries.len(), 1, "one request still outstanding");
        assert_eq!(ct.packet(&ping(B, A, rep, 1, 2)), State::Established);
        assert!(ct.entries.is_empty());
    }
}

#[test]
fn malformed_and_unknown() {
    let mut ct = Tracker::default();
    let p = ping(A, B, 8, 1, 1);
    assert_eq!(
        ct.packet(&p[..10]),
        State::Invalid(InvalidReason::Malformed(ParseError::TruncatedIpHeader))
    );
    let mut v6 = p.clone();
    v6[0] = 0x65;
    assert_eq!(
        ct.packet(&v6),
        State::Invalid(InvalidReason::Malformed(ParseError::BadIpVersion))
    );
    let mut ihl = p.clone();
    ihl[0] = 0x44;
    assert_eq!(
        ct.packet(&ihl),
        State::Invalid(InvalidReason::Malformed(ParseError::BadIpHeaderLength))
    );
    let short = ip4(A, B, 1, &[8, 0, 0, 0]);
    assert_eq!(
        ct.packet(&short),
        State::Invalid(InvalidReason::Malformed(ParseError::TruncatedIcmpHeader))
    );
    let mut bad = p.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(ct.packet(&bad), State::Invalid(InvalidReason::BadChecksum));
    assert_eq!(
        ct.packet(&ping(A, B, 9, 1, 1)),
        State::Invalid(InvalidReason::UnknownType)
    );
    assert_eq!(
        ct.packet(&ping(A, B, 200, 1, 1)),
        State::Invalid(InvalidReason::UnknownType)
    );
    let mut frag = p.clone();
    frag[7] = 10; // offset 80 bytes
    assert_eq!(ct.packet(&frag), State::Untracked);
    assert!(ct.entries.is_empty(), "nothing created by bad packets");
}

#[test]
fn udp_and_related_errors() {
    let mut ct = Tracker::default();
    let q = udp(A, B, 1025, 53);
    assert_eq!(ct.packet(&q), State::New);
    // Error about an UNREPLIED entry: RELATED, entry destroyed.
    assert_eq!(ct.packet(&error(R, A, 3, 9, &q)), State::Related);
    assert!(ct.entries.is_empty());
    assert_eq!(
        ct.packet(&error(R, A, 3, 9, &q)),
        State::Invalid(InvalidReason::NoRelatedEntry)
    );

    // Path MTU never destroys; a replied entry is never destroyed.
    assert_eq!(ct.packet(&q), State::New);
    assert_eq!(ct.packet(&error(R, A, 3, 4, &q)), State::Related);
    assert_eq!(ct.entries.len(), 1);
    assert_eq!(ct.packet(&udp(B, A, 53, 1025)), State::Established);
    assert_eq!(
        ct.lines(),
        "udp      17 180 src=192.168.1.6 dst=192.168.1.10 sport=1025 dport=53 src=192.168.1.10 dst=192.168.1.6 sport=53 dport=1025 [ASSURED] use=1\n"
    );
    assert_eq!(ct.packet(&error(R, A, 3, 3, &q)), State::Related);
    assert_eq!(ct.entries.len(), 1);
    // An error about the reply direction, sent to the replier.
    assert_eq!(
        ct.packet(&error(R, B, 11, 0, &udp(B, A, 53, 1025))),
        State::Related
    );

    // Spoofed: the error goes to B, but A sent the embedded packet.
    assert_eq!(
        ct.packet(&error(R, B, 3, 3, &q)),
        State::Invalid(InvalidReason::SpoofedError)
    );
    // Error inside an error.
    let inner_err = ip4(A, B, 1, &icmp_msg(3, 3, 0, 0, &q[..28]));
    assert_eq!(
        ct.packet(&error(R, A, 3, 1, &inner_err)),
        State::Invalid(InvalidReason::ErrorInError)
    );
    // Truncated embedded header.
    let cut = ip4(R, A, 1, &icmp_msg(3, 3, 0, 0, &q[..24]));
    assert_eq!(
        ct.packet(&cut),
        State::Invalid(InvalidReason::Malformed(
            ParseError::TruncatedEmbeddedHeader
        ))
    );
}

#[test]
fn error_about_a_ping() {
    let mut ct = Tracker::default();
    let p = ping(A, B, 8, 5, 1);
    assert_eq!(ct.packet(&p), State::New);
    assert_eq!(ct.packet(&error(R, A, 11, 0, &p)), State::Related);
    assert!(
        ct.entries.is_empty(),
        "unreplied ICMP entry destroyed by the error"
    );
}

#[test]
fn tcp_and_generic() {
    let mut ct = Tracker::default();
    let tcp = |src, dst, sport: u16, dport: u16, flags: u8, seq: u32, ack: u32| {
        let mut h = vec![0u8; 20];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[4..8].copy_from_slice(&seq.to_be_bytes());
        h[8..12].copy_from_slice(&ack.to_be_bytes());
        h[12] = 0x50;
        h[13] = flags;
        h[14..16].copy_from_slice(&1000u16.to_be_bytes());
        ip4(src, dst, 6, &h)
    };
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let syn = tcp(a, b, 40000, 80, 0x02, 100, 0);
    assert_eq!(ct.packet(&syn), State::New);
    assert_eq!(
        ct.lines(),
        "tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 use=1\n"
    );
    assert_eq!(
        ct.packet(&tcp(b, a, 80, 40000, 0x12, 700, 101)),
        State::Established
    );
    assert!(ct.lines().contains(" 60 SYN_RECV "));
    assert!(!ct.lines().contains("[ASSURED]"));
    assert_eq!(
        ct.packet(&tcp(a, b, 40000, 80, 0x10, 101, 701)),
        State::Established
    );
    assert!(ct.lines().contains(" 432000 ESTABLISHED "));
    assert!(ct.lines().contains("[ASSURED]"));
    // A blind RST: INVALID, nothing changes.
    assert_eq!(
        ct.packet(&tcp(b, a, 80, 40000, 0x04, 700 + 1_000_000, 0)),
        State::Invalid(InvalidReason::TcpOutOfWindow)
    );
    assert!(ct.lines().contains(" 432000 ESTABLISHED "));
    assert_eq!(
        ct.packet(&tcp(a, b, 40000, 80, 0x11, 101, 701)),
        State::Established
    );
    assert!(ct.lines().starts_with("tcp      6 120 FIN_WAIT "));
    ct.packet(&tcp(b, a, 80, 40000, 0x11, 701, 102));
    assert!(ct.lines().starts_with("tcp      6 120 TIME_WAIT "));
    assert_eq!(
        ct.packet(&tcp([10, 0, 0, 3], b, 1, 80, 0x04, 1, 0)),
        State::Invalid(InvalidReason::TcpRstWithoutEntry)
    );
    let mut ct = Tracker::default();
    let gre = ip4([10, 0, 0, 1], [10, 0, 0, 2], 47, &[0; 4]);
    assert_eq!(ct.packet(&gre), State::New);
    assert_eq!(
        ct.lines(),
        "unknown  47 600 src=10.0.0.1 dst=10.0.0.2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 use=1\n"
    );
    assert_eq!(
        ct.packet(&ip4([10, 0, 0, 2], [10, 0, 0, 1], 47, &[0; 4])),
        State::Established
    );
}

fn ids_from(ct: &Tracker, src: [u8; 4]) -> Vec<u16> {
    ct.entries
        .iter()
        .filter(|e| e.orig.src == Addr::from_v4(src))
        .filter_map(|e| match e.orig.l4 {
            L4::Icmp { id, .. } => Some(id),
            _ => None,
        })
        .collect()
}

#[test]
fn quota_flood_takes_only_its_own_entries() {
    const S: [u8; 4] = [192, 168, 1, 66];
    let mut ct = Tracker {
        quota: 3,
        keep_replied: true,
        ..Default::default()
    };
    // A's answered flow and A's unanswered request, then a flood from S.
    assert_eq!(ct.packet(&ping(A, B, 8, 1, 1)), State::New);
    assert_eq!(ct.packet(&ping(B, A, 0, 1, 1)), State::Established);
    assert_eq!(ct.packet(&ping(A, B, 8, 2, 1)), State::New);
    for id in 100..110 {
        assert_eq!(ct.packet(&ping(S, B, 8, id, 1)), State::New);
    }
    assert_eq!(ids_from(&ct, A), [1, 2]);
    // Each request over the quota took S's oldest [UNREPLIED] entry.
    assert_eq!(ids_from(&ct, S), [107, 108, 109]);
    // Replies and requests of existing entries never count.
    assert_eq!(ct.packet(&ping(B, S, 0, 109, 1)), State::Established);
    assert_eq!(ct.packet(&ping(S, B, 8, 109, 2)), State::Established);
    assert_eq!(ids_from(&ct, S), [107, 108, 109]);
}

#[test]
fn quota_with_nothing_to_lose_is_invalid() {
    let mut ct = Tracker {
        quota: 2,
        keep_replied: true,
        ..Default::default()
    };
    for id in [1, 2] {
        assert_eq!(ct.packet(&ping(A, B, 8, id, 1)), State::New);
        assert_eq!(ct.packet(&ping(B, A, 0, id, 1)), State::Established);
    }
    assert_eq!(
        ct.packet(&ping(A, B, 8, 3, 1)),
        State::Invalid(InvalidReason::Quota)
    );
    assert_eq!(ids_from(&ct, A), [1, 2]);
    // Its reply then matches nothing; UDP from the same source is refused too.
    assert_eq!(
        ct.packet(&ping(B, A, 0, 3, 1)),
        State::Invalid(InvalidReason::UnsolicitedReply)
    );
    assert_eq!(
        ct.packet(&udp(A, B, 5000, 53)),
        State::Invalid(InvalidReason::Quota)
    );
    // Another source has its own quota; 0 is no limit.
    assert_eq!(ct.packet(&ping(R, B, 8, 3, 1)), State::New);
    ct.quota = 0;
    assert_eq!(ct.packet(&ping(A, B, 8, 3, 1)), State::New);
}
