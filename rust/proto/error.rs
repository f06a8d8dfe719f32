// SPDX-License-Identifier: GPL-2.0

//! Reasons why a packet could not be parsed.

/// Why a header could not be parsed. Every such packet is INVALID.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum ParseError {
    /// Fewer bytes than the fixed IPv4 header or than its IHL announces.
    TruncatedIpHeader,
    /// The IP version nibble is not the one expected.
    BadIpVersion,
    /// The IPv4 IHL is below 5 (20 bytes).
    BadIpHeaderLength,
    /// The transport header (TCP, UDP, first 8 bytes) is cut short.
    TruncatedL4Header,
    /// Fewer than the 8 bytes of an ICMP/ICMPv6 header.
    TruncatedIcmpHeader,
    /// The TCP data offset is below 5 or beyond the packet.
    BadTcpDataOffset,
    /// Fewer than the 40 bytes of the fixed IPv6 header.
    TruncatedIpv6Header,
    /// An IPv6 extension header is cut short.
    TruncatedExtensionHeader,
    /// More IPv6 extension headers than the parser follows
    /// (`ipv6::MAX_EXTENSION_HEADERS`).
    TooManyExtensionHeaders,
    /// The IP header embedded in an ICMP error, or the first 8 bytes of its
    /// payload, are cut short.
    TruncatedEmbeddedHeader,
    /// The IP header embedded in an ICMP error has a bad version or length.
    BadEmbeddedHeader,
    /// The packet embedded in an ICMP error is a non-first fragment, so it
    /// carries no transport header to match.
    EmbeddedFragment,
}

impl ParseError {
    /// Short human reason, used in rate-limited log lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TruncatedIpHeader => "truncated IPv4 header",
            Self::BadIpVersion => "bad IP version",
            Self::BadIpHeaderLength => "bad IPv4 header length",
            Self::TruncatedL4Header => "truncated transport header",
            Self::TruncatedIcmpHeader => "truncated ICMP header",
            Self::BadTcpDataOffset => "bad TCP data offset",
            Self::TruncatedIpv6Header => "truncated IPv6 header",
            Self::TruncatedExtensionHeader => "truncated IPv6 extension header",
            Self::TooManyExtensionHeaders => "more than 8 IPv6 extension headers",
            Self::TruncatedEmbeddedHeader => "truncated embedded header",
            Self::BadEmbeddedHeader => "bad embedded IP header",
            Self::EmbeddedFragment => "embedded non-first fragment",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ParseError;

    #[test]
    fn reasons_are_distinct_and_non_empty() {
        let all = [
            ParseError::TruncatedIpHeader,
            ParseError::BadIpVersion,
            ParseError::BadIpHeaderLength,
            ParseError::TruncatedL4Header,
            ParseError::TruncatedIcmpHeader,
            ParseError::BadTcpDataOffset,
            ParseError::TruncatedIpv6Header,
            ParseError::TruncatedExtensionHeader,
            ParseError::TooManyExtensionHeaders,
            ParseError::TruncatedEmbeddedHeader,
            ParseError::BadEmbeddedHeader,
            ParseError::EmbeddedFragment,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.as_str().is_empty());
            for b in &all[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
        assert_eq!(
            ParseError::TruncatedIpHeader.as_str(),
            "truncated IPv4 header"
        );
    }
}
