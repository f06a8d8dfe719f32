// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the kernel APIs icmp_ct needs that the 6.12 `kernel` crate lacks.
//!
//! Every `unsafe` block of the project lives under this directory; the rest of the module
//! (and all of `proto`) is safe code.

pub(crate) mod delayed_work;
pub(crate) mod jiffies;
pub(crate) mod log;
pub(crate) mod module_param;
pub(crate) mod net;
pub(crate) mod netfilter;
pub(crate) mod percpu;
pub(crate) mod pernet;
pub(crate) mod procfs;
pub(crate) mod race_window;
pub(crate) mod rcu;
pub(crate) mod skb;
pub(crate) mod slab;
pub(crate) mod sysctl;
pub(crate) mod table;
pub(crate) mod zeroed;
