// SPDX-License-Identifier: GPL-2.0

//! The five states a classified packet can have, and why a packet is
//! INVALID.

use super::error::ParseError;
use core::fmt;

/// Declares [`InvalidReason`], one variant per line with its log text, besides
/// `Malformed` (one reason per [`ParseError`]). Adding a reason is one line here: its
/// `invalid_<text>` counter in `/proc/net/stat/icmp_ct` follows from it.
macro_rules! invalid_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $text:literal,)*) => {
        /// Why a packet is INVALID.
        #[derive(Copy, Clone, PartialEq, Eq, Debug)]
        pub enum InvalidReason {
            /// A header could not be parsed.
            Malformed(ParseError),
            $($(#[doc = $doc])* $variant,)*
        }

        /// The reasons without a field, numbered after the parse errors.
        #[derive(Copy, Clone)]
        enum Plain {
            $($variant,)*
        }

        impl Plain {
            const ALL: &'static [InvalidReason] = &[$(InvalidReason::$variant,)*];
        }

        impl InvalidReason {
            /// Short human reason, used in rate-limited log lines and counter names.
            pub fn as_str(&self) -> &'static str {
                match self {
                    Self::Malformed(e) => e.as_str(),
                    $(Self::$variant => $text,)*
                }
            }

            /// The reason's position among [`InvalidReason::all`], below
            /// [`InvalidReason::COUNT`].
            pub fn index(&self) -> usize {
                match self {
                    Self::Malformed(e) => e.index(),
                    $(Self::$variant => ParseError::ALL.len().wrapping_add(Plain::$variant as usize),)*
                }
            }
        }
    };
}

invalid_reasons! {
    /// The ICMP checksum is wrong (with `ip_ct_checksum = 1`).
    BadChecksum => "bad ICMP checksum",
    /// An ICMP type that is neither a query, an error nor untracked.
    UnknownType => "unknown ICMP type",
    /// A reply that matches no entry.
    UnsolicitedReply => "unsolicited reply",
    /// A reply on an entry whose requests have all been answered and that
    /// is being destroyed ("there will be absolutely no more legal traffic
    /// in the same connection").
    AlreadyAnswered => "reply to an answered request",
    /// A request matching an entry's reply direction or a reply matching
    /// its original direction.
    WrongDirection => "query in the wrong direction",
    /// An ICMP error handed to the query classifier.
    NotAQuery => "not an ICMP query",
    /// An ICMP error about an ICMP error.
    ErrorInError => "ICMP error inside ICMP error",
    /// An ICMP error whose outer destination did not send the embedded
    /// packet.
    SpoofedError => "spoofed ICMP error",
    /// An ICMPv6 redirect that nf_conntrack would not relate: code not 0, hop limit not
    /// 255, a source that is not link-local, or no redirected-header option first.
    BadRedirect => "bad ICMPv6 redirect",
    /// An ICMP error whose embedded packet matches no entry.
    NoRelatedEntry => "ICMP error about no tracked connection",
    /// A TCP RST with no entry.
    TcpRstWithoutEntry => "TCP RST without connection",
    /// A TCP packet other than a SYN with no entry while
    /// `ip_ct_tcp_loose = 0`.
    TcpNoEntry => "TCP non-SYN without connection",
    /// A TCP flag combination that no valid segment has.
    BadTcpFlags => "bad TCP flags",
    /// A TCP RST or FIN outside the window its receiver advertised.
    TcpOutOfWindow => "TCP RST or FIN outside the window",
    /// A packet that would create an entry from a source at `ip_ct_max_per_source` that
    /// has no `[UNREPLIED]` entry to lose.
    Quota => "source over its quota",
}

impl InvalidReason {
    /// How many reasons there are, each parse error counting as one.
    pub const COUNT: usize = ParseError::ALL.len() + Plain::ALL.len();

    /// Every reason, in the order of [`InvalidReason::index`].
    pub fn all() -> impl Iterator<Item = InvalidReason> {
        ParseError::ALL
            .iter()
            .map(|&e| Self::Malformed(e))
            .chain(Plain::ALL.iter().copied())
    }

    /// The reason's counter in `/proc/net/stat/icmp_ct`: `invalid_` and the log text in
    /// lower case, each run of other characters than letters and digits one `_`
    /// ("bad ICMP checksum": `invalid_bad_icmp_checksum`).
    pub fn counter_name(self) -> CounterName {
        CounterName(self)
    }
}

/// The counter name of an INVALID reason, written out by its `Display`.
#[derive(Copy, Clone, Debug)]
pub struct CounterName(InvalidReason);

impl fmt::Display for CounterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid")?;
        let mut separate = true;
        for c in self.0.as_str().chars() {
            if c.is_ascii_alphanumeric() {
                if separate {
                    f.write_str("_")?;
                    separate = false;
                }
                fmt::Write::write_char(f, c.to_ascii_lowercase())?;
            } else {
                separate = true;
            }
        }
        Ok(())
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

    #[test]
    fn every_reason_has_its_own_counter_and_log_text() {
        let all: std::vec::Vec<InvalidReason> = InvalidReason::all().collect();
        assert_eq!(all.len(), InvalidReason::COUNT);
        let names: std::vec::Vec<std::string::String> = all
            .iter()
            .map(|r| std::format!("{}", r.counter_name()))
            .collect();
        for (i, (reason, name)) in all.iter().zip(&names).enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
            let text = reason.as_str();
            assert!(
                !text.is_empty() && text.trim() == text && text.is_ascii(),
                "{reason:?}: log text {text:?}"
            );
            let words = name.strip_prefix("invalid_").unwrap_or_default();
            assert!(
                !words.is_empty()
                    && words.split('_').all(|w| !w.is_empty()
                        && w.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())),
                "{reason:?}: counter name {name:?}"
            );
            for (other, other_name) in all[i + 1..].iter().zip(&names[i + 1..]) {
                assert_ne!(text, other.as_str(), "{reason:?} and {other:?}");
                assert_ne!(name, other_name, "{reason:?} and {other:?}");
            }
        }
        assert!(all.contains(&InvalidReason::TcpOutOfWindow));
        assert!(all.contains(&InvalidReason::BadRedirect));
    }

    #[test]
    fn counter_names_follow_the_log_text() {
        let name = |r: InvalidReason| std::format!("{}", r.counter_name());
        assert_eq!(
            name(InvalidReason::UnknownType),
            "invalid_unknown_icmp_type"
        );
        assert_eq!(
            name(InvalidReason::TcpNoEntry),
            "invalid_tcp_non_syn_without_connection"
        );
        assert_eq!(
            name(ParseError::TooManyExtensionHeaders.into()),
            "invalid_more_than_8_ipv6_extension_headers"
        );
    }
}
