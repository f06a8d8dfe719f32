// SPDX-License-Identifier: GPL-2.0

//! Pure, kernel-independent protocol core of icmp_ct.
//!
//! Everything here works on packet bytes (`reader`) and plain values: header parsing,
//! checksums, tuples, the ICMP query and flow state machines, the parsing of
//! ICMP error payloads and the `/proc/net/ip_conntrack` line format. No code
//! in this tree allocates, opts out of the compiler's safety checks, indexes
//! slices or performs unchecked arithmetic, so none of it can panic in softirq
//! context.

pub mod addr;
pub mod checksum;
pub mod conntrack_line;
pub mod decide;
pub mod entry_word;
pub mod error;
pub mod flow_state;
pub mod icmp;
pub mod icmp_error;
pub mod icmp_state;
pub mod icmp_types;
pub mod ipv4;
pub mod ipv6;
pub mod key;
pub mod packet;
pub mod quota;
pub mod reader;
pub mod rtt;
pub mod state;
pub mod tcp_window;
pub mod tuple;

pub use error::ParseError;
