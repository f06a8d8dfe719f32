// SPDX-License-Identifier: GPL-2.0

//! Kernel log messages from the packet path: rate limited, and per namespace as nf_log
//! allows them.

use crate::abstractions::net::Net;
use crate::bindings;
use kernel::prelude::*;

/// Whether a networking message may be logged now (`net_ratelimit()`: by default at most 10
/// messages per 5 seconds, shared with the rest of the network stack).
pub(crate) fn ratelimited() -> bool {
    // SAFETY: `net_ratelimit` has no preconditions and may be called from any context.
    unsafe { bindings::net_ratelimit() != 0 }
}

/// What a namespace's log lines need: whether it may log, and its name.
pub(crate) struct NamespaceLog {
    /// The namespace's inode number, which names it in every line.
    inum: u32,
    /// The initial namespace, which always logs.
    init: bool,
}

impl NamespaceLog {
    /// For `net`.
    pub(crate) fn new(net: &Net) -> Self {
        NamespaceLog {
            inum: net.inum(),
            init: net.is_init(),
        }
    }

    /// Whether the namespace may log now: nf_log's rule (`nf_log_allowed`), the initial
    /// namespace always, any other only while the host's `net.netfilter.nf_log_all_netns`
    /// is set, so that a container cannot fill the host's log.
    fn allowed(&self) -> bool {
        // SAFETY: reads a global int; no preconditions.
        self.init || unsafe { bindings::icmp_ct_nf_log_all_netns() }
    }

    /// Logs an INVALID packet and why (`ip_ct_log_invalid`), if allowed and not rate limited.
    pub(crate) fn invalid(&self, reason: &str) {
        if self.allowed() && ratelimited() {
            pr_info!("INVALID packet: {} (netns {})\n", reason, self.inum);
        }
    }
}
