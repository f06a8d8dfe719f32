// SPDX-License-Identifier: GPL-2.0

//! The kernel's tick counter, as the 32-bit wrapping clock entry deadlines use.

use crate::bindings;

/// Ticks per second.
pub(crate) const HZ: u32 = bindings::ICMP_CT_HZ;

/// The low 32 bits of `jiffies`.
pub(crate) fn now() -> u32 {
    // SAFETY: reading `jiffies` has no preconditions.
    unsafe { bindings::icmp_ct_jiffies() as u32 }
}

/// Whether the 32-bit tick `deadline` has been reached at `now`. Correct while deadlines lie
/// less than 2^31 ticks in the future.
pub(crate) fn reached(deadline: u32, now: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

/// `seconds` in ticks, saturating at the 2^31 - 1 that [`reached`] can handle.
pub(crate) fn from_secs(seconds: u32) -> u32 {
    let ticks = u64::from(seconds).saturating_mul(u64::from(HZ));
    u32::try_from(ticks)
        .unwrap_or(u32::MAX)
        .min(i32::MAX as u32)
}

/// Whole seconds from `now` until `deadline` (0 once reached).
pub(crate) fn secs_until(deadline: u32, now: u32) -> u32 {
    if reached(deadline, now) {
        return 0;
    }
    deadline.wrapping_sub(now).checked_div(HZ).unwrap_or(0)
}

/// Bytes of RAM, for sizing defaults.
pub(crate) fn total_ram_bytes() -> u64 {
    // SAFETY: no preconditions.
    let pages = unsafe { bindings::icmp_ct_totalram_pages() } as u64;
    pages.saturating_mul(kernel::page::PAGE_SIZE as u64)
}
