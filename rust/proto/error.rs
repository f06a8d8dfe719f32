// SPDX-License-Identifier: GPL-2.0

//! Reasons why a packet could not be parsed.

/// Declares [`ParseError`], one variant per line with its log text, and the list of all of
/// them: adding a reason is one line, and its counter (`invalid_<text>`) follows.
macro_rules! parse_errors {
    ($($(#[doc = $doc:literal])* $variant:ident => $text:literal,)*) => {
        /// Why a header could not be parsed. Every such packet is INVALID.
        #[derive(Copy, Clone, PartialEq, Eq, Debug)]
        pub enum ParseError {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ParseError {
            /// Every parse error, in the order of their counters.
            pub const ALL: &'static [ParseError] = &[$(ParseError::$variant,)*];

            /// Short human reason, used in rate-limited log lines and counter names.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The position of `self` in [`ParseError::ALL`].
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

parse_errors! {
    /// Fewer bytes than the fixed IPv4 header or than its IHL announces.
    TruncatedIpHeader => "truncated IPv4 header",
    /// The IP version nibble is not the one expected.
    BadIpVersion => "bad IP version",
    /// The IPv4 IHL is below 5 (20 bytes).
    BadIpHeaderLength => "bad IPv4 header length",
    /// The transport header (TCP, UDP, first 8 bytes) is cut short.
    TruncatedL4Header => "truncated transport header",
    /// Fewer than the 8 bytes of an ICMP/ICMPv6 header.
    TruncatedIcmpHeader => "truncated ICMP header",
    /// The TCP data offset is below 5 or beyond the packet.
    BadTcpDataOffset => "bad TCP data offset",
    /// Fewer than the 40 bytes of the fixed IPv6 header.
    TruncatedIpv6Header => "truncated IPv6 header",
    /// An IPv6 extension header is cut short.
    TruncatedExtensionHeader => "truncated IPv6 extension header",
    /// More IPv6 extension headers than the parser follows
    /// (`ipv6::MAX_EXTENSION_HEADERS`).
    TooManyExtensionHeaders => "more than 8 IPv6 extension headers",
    /// The IP header embedded in an ICMP error, or the first 8 bytes of its
    /// payload, are cut short.
    TruncatedEmbeddedHeader => "truncated embedded header",
    /// The IP header embedded in an ICMP error has a bad version or length.
    BadEmbeddedHeader => "bad embedded IP header",
    /// The packet embedded in an ICMP error is a non-first fragment, so it
    /// carries no transport header to match.
    EmbeddedFragment => "embedded non-first fragment",
}

#[cfg(test)]
mod tests {
    use super::ParseError;

    #[test]
    fn all_lists_each_error_at_its_index() {
        for (i, e) in ParseError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        assert_eq!(ParseError::ALL.len(), 12);
        assert_eq!(
            ParseError::TruncatedIpHeader.as_str(),
            "truncated IPv4 header"
        );
    }
}
