// SPDX-License-Identifier: GPL-2.0

//! Rate limiting of kernel log messages from the packet path.

use crate::bindings;

/// Whether a networking message may be logged now (`net_ratelimit()`: by default at most 10
/// messages per 5 seconds, shared with the rest of the network stack).
pub(crate) fn ratelimited() -> bool {
    // SAFETY: `net_ratelimit` has no preconditions and may be called from any context.
    unsafe { bindings::net_ratelimit() != 0 }
}
