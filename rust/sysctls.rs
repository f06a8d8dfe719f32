// SPDX-License-Identifier: GPL-2.0

//! The sysctls of `/proc/sys/net/ipv4/netfilter/` (Documentation/contract.rst, "Sysctls").

use crate::abstractions::module_param::IntParam;
use crate::abstractions::sysctl::{IntKnob, KnobKind};
use crate::param;
use crate::proto::flow_state::TimeoutKind;
use core::sync::atomic::AtomicI32;
use kernel::c_str;
use kernel::str::CStr;

/// Where the table sits under `/proc/sys`.
pub(crate) const PATH: &CStr = c_str!("net/ipv4/netfilter");

/// The longest timeout a sysctl accepts, in seconds: below 2^31 jiffies at HZ=1000, so that
/// wrap-safe 32-bit deadline comparisons hold.
pub(crate) const MAX_TIMEOUT: i32 = 2_147_483;

/// `ip_conntrack_max`: one limit for every namespace, set from RAM at load time.
pub(crate) static CONNTRACK_MAX: AtomicI32 = AtomicI32::new(0);

/// Index of each knob in [`KNOBS`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Knob {
    /// `ip_ct_icmp_timeout`
    IcmpTimeout,
    /// `ip_ct_icmpv6_timeout`
    Icmpv6Timeout,
    /// `ip_ct_udp_timeout`
    UdpTimeout,
    /// `ip_ct_udp_timeout_stream`
    UdpTimeoutStream,
    /// `ip_ct_tcp_timeout_syn_sent`
    TcpTimeoutSynSent,
    /// `ip_ct_tcp_timeout_syn_recv`
    TcpTimeoutSynRecv,
    /// `ip_ct_tcp_timeout_established`
    TcpTimeoutEstablished,
    /// `ip_ct_tcp_timeout_fin_wait`
    TcpTimeoutFinWait,
    /// `ip_ct_tcp_timeout_time_wait`
    TcpTimeoutTimeWait,
    /// `ip_ct_tcp_timeout_close`
    TcpTimeoutClose,
    /// `ip_ct_tcp_timeout_unacknowledged`
    TcpTimeoutUnacknowledged,
    /// `ip_ct_generic_timeout`
    GenericTimeout,
    /// `ip_ct_tcp_loose`
    TcpLoose,
    /// `ip_ct_icmp_keep_replied`
    IcmpKeepReplied,
    /// `ip_ct_checksum`
    Checksum,
    /// `ip_ct_drop_invalid`
    DropInvalid,
    /// `ip_ct_drop_fragments`
    DropFragments,
    /// `ip_ct_mark_mask`
    MarkMask,
    /// `ip_ct_log_invalid`
    LogInvalid,
    /// `ip_ct_max_per_source`
    MaxPerSource,
    /// `ip_conntrack_max`
    ConntrackMax,
    /// `ip_conntrack_count`
    ConntrackCount,
    /// `ip_conntrack_buckets`
    ConntrackBuckets,
}

impl Knob {
    /// How many knobs there are (the last one's index plus one).
    pub(crate) const COUNT: usize = Knob::ConntrackBuckets as usize + 1;

    /// The knob holding the timeout of `kind`.
    pub(crate) fn timeout(kind: TimeoutKind) -> Knob {
        match kind {
            TimeoutKind::Icmp => Knob::IcmpTimeout,
            TimeoutKind::Icmpv6 => Knob::Icmpv6Timeout,
            TimeoutKind::Udp => Knob::UdpTimeout,
            TimeoutKind::UdpStream => Knob::UdpTimeoutStream,
            TimeoutKind::TcpSynSent => Knob::TcpTimeoutSynSent,
            TimeoutKind::TcpSynRecv => Knob::TcpTimeoutSynRecv,
            TimeoutKind::TcpEstablished => Knob::TcpTimeoutEstablished,
            TimeoutKind::TcpFinWait => Knob::TcpTimeoutFinWait,
            TimeoutKind::TcpTimeWait => Knob::TcpTimeoutTimeWait,
            TimeoutKind::TcpClose => Knob::TcpTimeoutClose,
            TimeoutKind::TcpUnacknowledged => Knob::TcpTimeoutUnacknowledged,
            TimeoutKind::Generic => Knob::GenericTimeout,
        }
    }
}

// Each per-namespace knob starts at its module parameter (`param!(name = default)`, declared
// for `modinfo` in icmp_ct_shim.c), named after the sysctl without `ip_ct_`.

const fn timeout(name: &'static CStr, start: &'static IntParam) -> IntKnob {
    IntKnob {
        name,
        min: 1,
        max: MAX_TIMEOUT,
        kind: KnobKind::PerNet { start },
    }
}

const fn switch(name: &'static CStr, start: &'static IntParam) -> IntKnob {
    IntKnob {
        name,
        min: 0,
        max: 1,
        kind: KnobKind::PerNet { start },
    }
}

const fn computed(name: &'static CStr) -> IntKnob {
    IntKnob {
        name,
        min: 0,
        max: 0,
        kind: KnobKind::Computed,
    }
}

/// Checks the module parameters against their sysctls' ranges: `Err` names the first one
/// outside, with its value and range.
pub(crate) fn check_params() -> core::result::Result<(), (&'static IntParam, i32, i32)> {
    for knob in &KNOBS {
        if let KnobKind::PerNet { start } = knob.kind {
            if !(knob.min..=knob.max).contains(&start.get()) {
                return Err((start, knob.min, knob.max));
            }
        }
    }
    Ok(())
}

/// The table, in [`Knob`] order.
pub(crate) static KNOBS: [IntKnob; Knob::COUNT] = [
    timeout(c_str!("ip_ct_icmp_timeout"), param!(icmp_timeout = 30)),
    timeout(c_str!("ip_ct_icmpv6_timeout"), param!(icmpv6_timeout = 30)),
    timeout(c_str!("ip_ct_udp_timeout"), param!(udp_timeout = 30)),
    timeout(
        c_str!("ip_ct_udp_timeout_stream"),
        param!(udp_timeout_stream = 180),
    ),
    timeout(
        c_str!("ip_ct_tcp_timeout_syn_sent"),
        param!(tcp_timeout_syn_sent = 120),
    ),
    timeout(
        c_str!("ip_ct_tcp_timeout_syn_recv"),
        param!(tcp_timeout_syn_recv = 60),
    ),
    timeout(
        c_str!("ip_ct_tcp_timeout_established"),
        param!(tcp_timeout_established = 432000),
    ),
    timeout(
        c_str!("ip_ct_tcp_timeout_fin_wait"),
        param!(tcp_timeout_fin_wait = 120),
    ),
    timeout(
        c_str!("ip_ct_tcp_timeout_time_wait"),
        param!(tcp_timeout_time_wait = 120),
    ),
    timeout(
        c_str!("ip_ct_tcp_timeout_close"),
        param!(tcp_timeout_close = 10),
    ),
    timeout(
        c_str!("ip_ct_tcp_timeout_unacknowledged"),
        param!(tcp_timeout_unacknowledged = 300),
    ),
    timeout(
        c_str!("ip_ct_generic_timeout"),
        param!(generic_timeout = 600),
    ),
    switch(c_str!("ip_ct_tcp_loose"), param!(tcp_loose = 1)),
    switch(c_str!("ip_ct_icmp_keep_replied"), param!(keep_replied = 0)),
    switch(c_str!("ip_ct_checksum"), param!(checksum = 1)),
    switch(c_str!("ip_ct_drop_invalid"), param!(drop_invalid = 0)),
    switch(c_str!("ip_ct_drop_fragments"), param!(drop_fragments = 0)),
    IntKnob {
        name: c_str!("ip_ct_mark_mask"),
        // Any 32-bit mask; written as a signed int, so 0xffffffff is -1.
        min: i32::MIN,
        max: i32::MAX,
        kind: KnobKind::PerNet {
            start: param!(mark_mask = 0),
        },
    },
    switch(c_str!("ip_ct_log_invalid"), param!(log_invalid = 0)),
    IntKnob {
        name: c_str!("ip_ct_max_per_source"),
        min: 0,
        max: i32::MAX,
        kind: KnobKind::PerNet {
            start: param!(max_per_source = 0),
        },
    },
    IntKnob {
        name: c_str!("ip_conntrack_max"),
        min: 1,
        max: i32::MAX,
        kind: KnobKind::Global(&CONNTRACK_MAX),
    },
    computed(c_str!("ip_conntrack_count")),
    computed(c_str!("ip_conntrack_buckets")),
];
