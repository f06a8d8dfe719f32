// SPDX-License-Identifier: GPL-2.0

//! Every `/proc/net/ip_conntrack` sample line of Documentation/contract.rst
//! and of the tutorial, byte for byte.

use icmp_ct_proto::addr::{Addr, Family};
use icmp_ct_proto::conntrack_line::{write_line, LineEntry};
use icmp_ct_proto::flow_state::TcpState;
use icmp_ct_proto::tuple::Tuple;

fn v4(a: [u8; 4]) -> Addr {
    Addr::from_v4(a)
}

fn fd00(x: u8) -> Addr {
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[15] = x;
    Addr::from_v6(b)
}

fn entry(tuple: Tuple, secs_left: u32, unreplied: bool, assured: bool) -> LineEntry {
    LineEntry {
        tuple,
        secs_left,
        unreplied,
        assured,
        tcp_state: None,
        rtt_us: None,
        use_count: 1,
    }
}

/// The entries behind the five samples of the contract, with their lines.
fn contract_samples() -> Vec<(LineEntry, &'static str)> {
    let icmp = Tuple::icmp(
        Family::Ipv4,
        v4([192, 168, 1, 6]),
        v4([192, 168, 1, 10]),
        8,
        0,
        33029,
    );
    let udp = Tuple::ports(
        Family::Ipv4,
        v4([192, 168, 1, 2]),
        v4([192, 168, 1, 5]),
        17,
        137,
        1025,
    );
    let tcp = Tuple::ports(
        Family::Ipv4,
        v4([10, 0, 0, 1]),
        v4([10, 0, 0, 2]),
        6,
        40000,
        80,
    );
    let icmpv6 = Tuple::icmp(Family::Ipv6, fd00(1), fd00(2), 128, 0, 7);
    let gre = Tuple::generic(Family::Ipv4, v4([10, 0, 0, 1]), v4([10, 0, 0, 2]), 47);
    vec![
        (
            entry(icmp, 25, true, false),
            "icmp     1 25 src=192.168.1.6 dst=192.168.1.10 type=8 code=0 id=33029 [UNREPLIED] src=192.168.1.10 dst=192.168.1.6 type=0 code=0 id=33029 use=1",
        ),
        (
            entry(udp, 170, false, true),
            "udp      17 170 src=192.168.1.2 dst=192.168.1.5 sport=137 dport=1025 src=192.168.1.5 dst=192.168.1.2 sport=1025 dport=137 [ASSURED] use=1",
        ),
        (
            LineEntry {
                tcp_state: Some(TcpState::SynSent),
                ..entry(tcp, 117, true, false)
            },
            "tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 use=1",
        ),
        (
            entry(icmpv6, 29, true, false),
            "icmpv6   58 29 src=fd00::1 dst=fd00::2 type=128 code=0 id=7 [UNREPLIED] src=fd00::2 dst=fd00::1 type=129 code=0 id=7 use=1",
        ),
        (
            entry(gre, 599, true, false),
            "unknown  47 599 src=10.0.0.1 dst=10.0.0.2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 use=1",
        ),
    ]
}

fn render(e: &LineEntry) -> String {
    let mut s = String::new();
    write_line(&mut s, e).unwrap();
    s
}

#[test]
fn contract_samples_byte_for_byte() {
    for (e, want) in contract_samples() {
        assert_eq!(render(&e), format!("{want}\n"));
    }
}

/// The tutorial's UDP lines (its copy wraps them; the fields are the same).
#[test]
fn tutorial_udp_lines() {
    let first = Tuple::ports(
        Family::Ipv4,
        v4([192, 168, 1, 2]),
        v4([192, 168, 1, 5]),
        17,
        137,
        1025,
    );
    assert_eq!(
        render(&entry(first, 20, true, false)),
        "udp      17 20 src=192.168.1.2 dst=192.168.1.5 sport=137 dport=1025 [UNREPLIED] src=192.168.1.5 dst=192.168.1.2 sport=1025 dport=137 use=1\n"
    );
    let dns = Tuple::ports(
        Family::Ipv4,
        v4([192, 168, 1, 5]),
        v4([195, 22, 79, 2]),
        17,
        1025,
        53,
    );
    assert_eq!(
        render(&entry(dns, 175, false, true)),
        "udp      17 175 src=192.168.1.5 dst=195.22.79.2 sport=1025 dport=53 src=195.22.79.2 dst=192.168.1.5 sport=53 dport=1025 [ASSURED] use=1\n"
    );
}

#[test]
fn tcp_state_names_in_lines() {
    let tcp = Tuple::ports(
        Family::Ipv4,
        v4([10, 0, 0, 1]),
        v4([10, 0, 0, 2]),
        6,
        40000,
        80,
    );
    for (s, name) in [
        (TcpState::Established, "ESTABLISHED"),
        (TcpState::Close, "CLOSE"),
    ] {
        let e = LineEntry {
            tcp_state: Some(s),
            use_count: 3,
            ..entry(tcp, 9, false, true)
        };
        assert_eq!(
            render(&e),
            format!("tcp      6 9 {name} src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] use=3\n")
        );
    }
}

/// The sample lines of Documentation/contract.rst (literal block lines that
/// start with a protocol name) are exactly ours, in order: a sample changed in
/// the contract, or a contract without them, fails here.
#[test]
fn contract_rst_shows_exactly_these_samples() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Documentation/contract.rst");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let documented: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|sample| {
            let mut fields = sample.split_whitespace();
            let proto = fields.next().unwrap_or("");
            ["icmp", "udp", "tcp", "icmpv6", "unknown"].contains(&proto)
                && fields.next().is_some_and(|n| n.parse::<u8>().is_ok())
        })
        .collect();
    let ours: Vec<&str> = contract_samples().iter().map(|(_, l)| *l).collect();
    assert_eq!(documented, ours, "samples of {}", path.display());
}
