// SPDX-License-Identifier: GPL-2.0

//! Race windows held open on request, in test builds only (`make ICMP_CT_RACE_WINDOWS=1`,
//! what `make check` builds for the debug kernel): the module parameter `race_window` names
//! one, and a CPU that reaches it busy-waits there until the test closes it (or at most
//! `race_window_ms`), so that a selftest can act from another CPU inside a window that is
//! otherwise a few instructions wide (`selftests/icmp_ct_races.sh`). In other builds
//! [`RaceWindow::hold`] is empty.

/// The windows, numbered as the `race_window` parameter names them.
#[derive(Clone, Copy)]
pub(crate) enum RaceWindow {
    /// `Table::insert`: node 0 of a two-node entry is hashed, node 1 not yet.
    InsertHalfway = 1,
    /// A reply has closed its query's entry (the compare-and-swap that ends it).
    ReplyClosed = 2,
}

impl RaceWindow {
    /// Holds this window open if the test build was asked to.
    #[inline(always)]
    pub(crate) fn hold(self) {
        #[cfg(icmp_ct_race_windows)]
        // SAFETY: a plain function of the shim, callable in any context; it only reads its
        // parameters and busy-waits.
        unsafe {
            crate::bindings::icmp_ct_race_window(self as i32)
        };
    }
}
