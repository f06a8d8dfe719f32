// SPDX-License-Identifier: GPL-2.0

//! Round-trip times of answered ICMP queries: when a packet reads the clock, the log2
//! histogram's buckets, and the format of `/proc/net/stat/icmp_ct_rtt`.
//!
//! Times are microseconds of a monotonic clock, kept as their low 32 bits: a round trip is
//! the wrapping difference of two readings, right for any answer within 71 minutes.

use core::fmt;

use super::addr::Family;
use super::entry_word;
use super::icmp_types::IcmpKind;

/// Buckets of the histogram: bucket `i` holds the samples below `2^i` microseconds and at
/// least `2^(i-1)` (bucket 0: below 1), up to bucket 32, which ends at `u32::MAX`.
pub const BUCKETS: usize = 33;

/// The bucket of a sample of `us` microseconds.
pub fn bucket(us: u32) -> usize {
    // At most 32: fits any usize.
    u32::BITS.wrapping_sub(us.leading_zeros()) as usize
}

/// The upper bound of bucket `index`, in microseconds (exclusive).
pub fn bucket_bound(index: usize) -> u64 {
    u32::try_from(index)
        .ok()
        .and_then(|shift| 1u64.checked_shl(shift))
        .unwrap_or(u64::MAX)
}

/// The round trip from a request read at `request_us` to its answer read at `reply_us`.
pub fn elapsed(request_us: u32, reply_us: u32) -> u32 {
    reply_us.wrapping_sub(request_us)
}

/// What a query packet applied to its entry does with the clock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timing {
    /// Nothing to time.
    None,
    /// A request created or refreshed the entry: it is the one the next answer is timed from.
    Request,
    /// A reply answered an outstanding request: one round trip, counted in the echo
    /// histogram when `echo`.
    Answer {
        /// The query is an echo (IPv4 type 8, IPv6 type 128).
        echo: bool,
    },
}

/// The timing of a query message of `kind` in `family` applied to an entry whose state word
/// was `before` (`None`: the packet created the entry). Only a reply that finds requests
/// outstanding answers one; a late duplicate (`ip_ct_icmp_keep_replied = 1`) does not.
pub fn timing(family: Family, kind: IcmpKind, before: Option<u64>) -> Timing {
    match kind {
        IcmpKind::Request { .. } => Timing::Request,
        IcmpKind::Reply { request } => match before {
            Some(word) if entry_word::unpack_icmp(word).outstanding > 0 => Timing::Answer {
                echo: is_echo(family, request),
            },
            _ => Timing::None,
        },
        _ => Timing::None,
    }
}

/// Whether a request of `request_type` in `family` is an echo request.
fn is_echo(family: Family, request_type: u8) -> bool {
    matches!(
        (family, request_type),
        (Family::Ipv4, 8) | (Family::Ipv6, 128)
    )
}

/// What `/proc/net/stat/icmp_ct_rtt` shows: the echo round trips of one namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Histogram {
    /// Samples per bucket.
    pub buckets: [u64; BUCKETS],
    /// The sum of all samples, in microseconds.
    pub sum_us: u64,
    /// The smallest sample (meaningless without samples).
    pub min_us: u32,
    /// The largest sample.
    pub max_us: u32,
}

impl Histogram {
    /// The number of samples.
    pub fn samples(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |sum, &count| sum.wrapping_add(count))
    }

    /// The mean sample, rounded down; 0 without samples.
    pub fn mean_us(&self) -> u64 {
        self.sum_us.checked_div(self.samples()).unwrap_or(0)
    }

    /// Writes the file: `samples`, `min`, `mean` and `max` (microseconds; 0 without samples)
    /// as `name value` lines, then one `bound count` line per bucket, bound in microseconds.
    pub fn write<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        let samples = self.samples();
        let (min, max) = if samples == 0 {
            (0, 0)
        } else {
            (self.min_us, self.max_us)
        };
        writeln!(w, "samples {samples}")?;
        writeln!(w, "min {min}")?;
        writeln!(w, "mean {}", self.mean_us())?;
        writeln!(w, "max {max}")?;
        for (index, count) in self.buckets.iter().enumerate() {
            writeln!(w, "{} {count}", bucket_bound(index))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::icmp_state::IcmpEntryState;
    use super::*;
    use std::string::String;

    #[test]
    fn buckets_are_log2_with_exclusive_upper_bounds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(2), 2);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 3);
        assert_eq!(bucket(20_000), 15);
        assert_eq!(bucket_bound(15), 32_768);
        assert_eq!(bucket(u32::MAX), BUCKETS - 1);
        assert_eq!(bucket_bound(BUCKETS - 1), 1 << 32);
        assert_eq!(bucket_bound(64), u64::MAX);
        for us in [0, 1, 2, 3, 1000, 16_383, 16_384, 1 << 31, u32::MAX] {
            let i = bucket(us);
            assert!(u64::from(us) < bucket_bound(i), "{us}");
            assert!(i == 0 || u64::from(us) >= bucket_bound(i - 1), "{us}");
        }
    }

    #[test]
    fn elapsed_wraps() {
        assert_eq!(elapsed(100, 512), 412);
        assert_eq!(elapsed(u32::MAX - 9, 402), 412);
    }

    #[test]
    fn only_answers_to_outstanding_requests_are_timed() {
        let echo_request = IcmpKind::Request { reply: 0 };
        let echo_reply = IcmpKind::Reply { request: 8 };
        let waiting = entry_word::pack_icmp(IcmpEntryState::first_request());
        let answered = entry_word::pack_icmp(IcmpEntryState {
            outstanding: 0,
            replied: true,
        });
        assert_eq!(timing(Family::Ipv4, echo_request, None), Timing::Request);
        assert_eq!(
            timing(Family::Ipv4, echo_request, Some(answered)),
            Timing::Request
        );
        assert_eq!(
            timing(Family::Ipv4, echo_reply, Some(waiting)),
            Timing::Answer { echo: true }
        );
        assert_eq!(
            timing(Family::Ipv4, echo_reply, Some(answered)),
            Timing::None
        );
        assert_eq!(timing(Family::Ipv4, echo_reply, None), Timing::None);
        let timestamp_reply = IcmpKind::Reply { request: 13 };
        assert_eq!(
            timing(Family::Ipv4, timestamp_reply, Some(waiting)),
            Timing::Answer { echo: false }
        );
        let v6_echo_reply = IcmpKind::Reply { request: 128 };
        assert_eq!(
            timing(Family::Ipv6, v6_echo_reply, Some(waiting)),
            Timing::Answer { echo: true }
        );
        assert_eq!(
            timing(Family::Ipv4, v6_echo_reply, Some(waiting)),
            Timing::Answer { echo: false }
        );
        assert_eq!(timing(Family::Ipv4, IcmpKind::Error, None), Timing::None);
    }

    #[test]
    fn file_format() {
        let mut h = Histogram {
            buckets: [0; BUCKETS],
            sum_us: 0,
            min_us: u32::MAX,
            max_us: 0,
        };
        let mut empty = String::new();
        h.write(&mut empty).unwrap();
        assert!(empty.starts_with("samples 0\nmin 0\nmean 0\nmax 0\n1 0\n2 0\n"));
        assert!(empty.ends_with("\n4294967296 0\n"));
        assert_eq!(empty.lines().count(), 4 + BUCKETS);
        for us in [96, 130, 254] {
            h.buckets[bucket(us)] += 1;
            h.sum_us += u64::from(us);
            h.min_us = h.min_us.min(us);
            h.max_us = h.max_us.max(us);
        }
        let mut s = String::new();
        h.write(&mut s).unwrap();
        assert!(s.starts_with("samples 3\nmin 96\nmean 160\nmax 254\n"));
        assert!(s.contains("\n64 0\n128 1\n256 2\n512 0\n"));
    }
}
