// SPDX-License-Identifier: GPL-2.0

//! The five states a classified packet can have, and why a packet is
//! INVALID.

use super::error::ParseError;

/// Why a packet is INVALID.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum InvalidReason {
    /// A header could not be parsed.
    Malformed(ParseError),
    /// The ICMP checksum is wrong (with `ip_ct_checksum = 1`).
    BadChecksum,
    /// An ICMP type that is neither a query, an error nor untracked.
    UnknownType,
    /// A reply that matches no entry.
    UnsolicitedReply,
    /// A reply on an entry whose requests have all been answered and that
    /// is being destroyed ("there will be absolutely no more legal traffic
    /// in the same connection").
    AlreadyAnswered,
    /// A request matching an entry's reply direction or a reply matching
    /// its original direction.
    WrongDirection,
    /// An ICMP error handed to the query classifier.
    NotAQuery,
    /// An ICMP error about an ICMP error.
    ErrorInError,
    /// An ICMP error whose outer destination did not send the embedded
    /// packet.
    SpoofedError,
    /// An ICMPv6 redirect that nf_conntrack would not relate: code not 0, hop limit not
    /// 255, a source that is not link-local, or no redirected-header option first.
    BadRedirect,
    /// An ICMP error whose embedded packet matches no entry.
    NoRelatedEntry,
    /// A TCP RST with no entry.
    TcpRstWithoutEntry,
    /// A TCP packet other than a SYN with no entry while
    /// `ip_ct_tcp_loose = 0`.
    TcpNoEntry,
    /// A TCP flag combination that no valid segment has.
    BadTcpFlags,
    /// A TCP RST or FIN outside the window its receiver advertised.
    TcpOutOfWindow,
    /// A packet that would create an entry from a source at `ip_ct_max_per_source` that
    /// has no `[UNREPLIED]` entry to lose.
    Quota,
}

impl InvalidReason {
    /// Short human reason, used in rate-limited log lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Malformed(e) => e.as_str(),
            Self::BadChecksum => "bad ICMP checksum",
            Self::UnknownType => "unknown ICMP type",
            Self::UnsolicitedReply => "unsolicited reply",
            Self::AlreadyAnswered => "reply to an answered request",
            Self::WrongDirection => "query in the wrong direction",
            Self::NotAQuery => "not an ICMP query",
            Self::ErrorInError => "ICMP error inside ICMP error",
            Self::SpoofedError => "ICMP error not sent to the embedded source",
            Self::BadRedirect => "bad ICMPv6 redirect",
            Self::NoRelatedEntry => "ICMP error about no tracked connection",
            Self::TcpRstWithoutEntry => "TCP RST without connection",
            Self::TcpNoEntry => "TCP non-SYN without connection",
            Self::BadTcpFlags => "bad TCP flags",
            Self::TcpOutOfWindow => "TCP RST or FIN outside the window",
            Self::Quota => "source over its quota",
        }
    }
}

impl From<ParseError> for InvalidReason {
    fn from(e: ParseError) -> Self {
        Self::Malformed(e)
    }
}

/// The state of a classified packet, with the tutorial's meaning.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum State {
    /// The packet starts a connection (or the connection has seen no reply
    /// yet).
    New,
    /// The connection has seen traffic in both directions.
    Established,
    /// An ICMP error about a tracked connection.
    Related,
    /// Malformed, unknown or not matching what the tracker expects.
    Invalid(InvalidReason),
    /// Not tracked (raw table NOTRACK, neighbour discovery, MLD, non-first
    /// fragments).
    Untracked,
}

impl State {
    /// The code written into `skb->mark`: NEW 1, ESTABLISHED 2, RELATED 3,
    /// INVALID 4, UNTRACKED 5.
    pub fn mark_code(&self) -> u32 {
        match self {
            Self::New => 1,
            Self::Established => 2,
            Self::Related => 3,
            Self::Invalid(_) => 4,
            Self::Untracked => 5,
        }
    }

    /// The state's name: `NEW`, `ESTABLISHED`, `RELATED`, `INVALID` or
    /// `UNTRACKED`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::Established => "ESTABLISHED",
            Self::Related => "RELATED",
            Self::Invalid(_) => "INVALID",
            Self::Untracked => "UNTRACKED",
        }
    }

    /// Whether the state is INVALID.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names() {
        let all = [
            (State::New, 1, "NEW"),
            (State::Established, 2, "ESTABLISHED"),
            (State::Related, 3, "RELATED"),
            (State::Invalid(InvalidReason::UnknownType), 4, "INVALID"),
            (State::Untracked, 5, "UNTRACKED"),
        ];
        for (s, code, name) in all {
            assert_eq!(s.mark_code(), code);
            assert_eq!(s.name(), name);
            assert_eq!(s.is_invalid(), code == 4);
        }
    }

    #[test]
    fn reasons() {
        let r: InvalidReason = ParseError::TruncatedIpHeader.into();
        assert_eq!(r, InvalidReason::Malformed(ParseError::TruncatedIpHeader));
        assert_eq!(r.as_str(), "truncated IPv4 header");
        assert_eq!(
            InvalidReason::UnsolicitedReply.as_str(),
            "unsolicited reply"
        );
    }
}
