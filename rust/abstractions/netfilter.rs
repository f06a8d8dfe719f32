// SPDX-License-Identifier: GPL-2.0

//! Netfilter hook registration for one namespace.
//!
//! The hook function is a trait method of the namespace's [`PernetData`]: the trampoline finds
//! the namespace's state through `net_generic`, so the `nf_hook_ops` carry no private pointer
//! and the state does not refer to itself.

use crate::abstractions::net::Net;
use crate::abstractions::pernet::{self, PernetData};
use crate::abstractions::rcu;
use crate::abstractions::skb::SkBuff;
use crate::abstractions::zeroed::{zeroed, ZeroValid};
use crate::bindings;
use crate::proto::addr::Family;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::error::to_result;
use kernel::prelude::*;

/// The hook points icmp_ct uses (the same numbers for IPv4 and IPv6).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HookPoint {
    /// `NF_INET_PRE_ROUTING`: packets arriving from an interface.
    PreRouting,
    /// `NF_INET_LOCAL_IN`: packets delivered to a local socket.
    LocalIn,
    /// `NF_INET_LOCAL_OUT`: locally generated packets.
    LocalOut,
    /// `NF_INET_POST_ROUTING`: packets leaving through an interface.
    PostRouting,
}

impl HookPoint {
    /// The kernel's `NF_INET_*` number.
    pub(crate) fn to_raw(self) -> u32 {
        match self {
            HookPoint::PreRouting => bindings::ICMP_CT_NF_INET_PRE_ROUTING,
            HookPoint::LocalIn => bindings::ICMP_CT_NF_INET_LOCAL_IN,
            HookPoint::LocalOut => bindings::ICMP_CT_NF_INET_LOCAL_OUT,
            HookPoint::PostRouting => bindings::ICMP_CT_NF_INET_POST_ROUTING,
        }
    }

    /// The point whose [`Self::code`] is `code` (a trampoline's const parameter).
    const fn from_code(code: u8) -> Self {
        match code {
            0 => HookPoint::PreRouting,
            1 => HookPoint::LocalIn,
            2 => HookPoint::LocalOut,
            _ => HookPoint::PostRouting,
        }
    }

    const fn code(self) -> u8 {
        match self {
            HookPoint::PreRouting => 0,
            HookPoint::LocalIn => 1,
            HookPoint::LocalOut => 2,
            HookPoint::PostRouting => 3,
        }
    }
}

/// The family whose [`family_code`] is `code`.
const fn family_from_code(code: u8) -> Family {
    match code {
        0 => Family::Ipv4,
        _ => Family::Ipv6,
    }
}

const fn family_code(family: Family) -> u8 {
    match family {
        Family::Ipv4 => 0,
        Family::Ipv6 => 1,
    }
}

pub(crate) fn nfproto(family: Family) -> u8 {
    match family {
        Family::Ipv4 => bindings::ICMP_CT_NFPROTO_IPV4,
        Family::Ipv6 => bindings::ICMP_CT_NFPROTO_IPV6,
    }
}

/// What a hook decides for a packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Verdict {
    /// Let the packet continue (`NF_ACCEPT`).
    Accept,
    /// Drop and free the packet (`NF_DROP`).
    Drop,
}

/// Namespace state that handles the packets of its own hooks.
pub(crate) trait NetHooks: PernetData {
    /// Called for each packet of `family` at `point`, in softirq or process context with RCU
    /// held.
    fn hook(&self, family: Family, point: HookPoint, skb: &SkBuff) -> Verdict;
}

// SAFETY: the opaque blob bindgen makes of `nf_hook_ops` is an array of integers; all-zero is
// also what C code starts from before setting the fields it uses.
unsafe impl ZeroValid for bindings::nf_hook_ops {}

/// Where one hook sits.
#[derive(Clone, Copy)]
pub(crate) struct HookSpec {
    /// The protocol family whose packets it sees.
    pub(crate) family: Family,
    /// The hook point.
    pub(crate) point: HookPoint,
    /// Its priority (lower runs first).
    pub(crate) priority: i32,
}

/// The trampoline for hooks of `T` at `spec`: one instance per family and point, so that a
/// packet's hook call does not decode them from the hook state.
fn trampoline<T: NetHooks>(spec: &HookSpec) -> bindings::nf_hookfn {
    const V4: u8 = family_code(Family::Ipv4);
    const V6: u8 = family_code(Family::Ipv6);
    const PRE: u8 = HookPoint::PreRouting.code();
    const IN: u8 = HookPoint::LocalIn.code();
    const OUT: u8 = HookPoint::LocalOut.code();
    const POST: u8 = HookPoint::PostRouting.code();
    Some(match (family_code(spec.family), spec.point.code()) {
        (V4, PRE) => hook_callback::<T, V4, PRE>,
        (V4, IN) => hook_callback::<T, V4, IN>,
        (V4, OUT) => hook_callback::<T, V4, OUT>,
        (V4, _) => hook_callback::<T, V4, POST>,
        (_, PRE) => hook_callback::<T, V6, PRE>,
        (_, IN) => hook_callback::<T, V6, IN>,
        (_, OUT) => hook_callback::<T, V6, OUT>,
        (_, _) => hook_callback::<T, V6, POST>,
    })
}

/// # Safety
///
/// Called by netfilter with a live packet and hook state, inside an RCU read-side section,
/// for hooks registered by [`HookRegistration::new::<T>`] at the family and point whose
/// codes are `FAMILY` and `POINT` ([`trampoline`]).
unsafe extern "C" fn hook_callback<T: NetHooks, const FAMILY: u8, const POINT: u8>(
    _priv: *mut core::ffi::c_void,
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> core::ffi::c_uint {
    // SAFETY: netfilter passes a valid state for the duration of the call.
    let state = unsafe { &*state };
    // SAFETY: the namespace of a packet in flight is alive.
    let net = unsafe { Net::from_raw(state.net) };
    // SAFETY: this is a netfilter hook registered by `T`'s state, unregistered in its
    // `pre_exit`, which an RCU grace period separates from freeing the state.
    let Some(data) = (unsafe { pernet::data::<T>(net) }) else {
        return bindings::ICMP_CT_NF_ACCEPT;
    };
    // SAFETY: the hook owns the packet for the duration of the call.
    let skb = unsafe { SkBuff::from_raw(skb) };
    let family = family_from_code(FAMILY);
    match data.hook(family, HookPoint::from_code(POINT), skb) {
        Verdict::Accept => bindings::ICMP_CT_NF_ACCEPT,
        Verdict::Drop => bindings::ICMP_CT_NF_DROP,
    }
}

/// Hooks registered in one namespace; unregistered on [`HookRegistration::unregister`]
/// or drop.
///
/// # Invariants
///
/// `net` is alive while `self` is (the registration is owned by the namespace's state), and
/// `ops` was registered in it while `registered` is true.
pub(crate) struct HookRegistration<const N: usize> {
    net: *mut bindings::net,
    // A fixed-size box, not a `KVec`: `KVec::push` would bring an overflow check (a panic
    // path) into the module.
    ops: KBox<[bindings::nf_hook_ops; N]>,
    registered: AtomicBool,
}

// SAFETY: the raw pointers are only handed to netfilter's (un)registration functions, which
// may be called from any thread.
unsafe impl<const N: usize> Send for HookRegistration<N> {}
// SAFETY: `unregister` is the only `&self` method and it is made idempotent by an atomic swap.
unsafe impl<const N: usize> Sync for HookRegistration<N> {}

impl<const N: usize> HookRegistration<N> {
    /// Registers `specs` in `net`, each calling `T::hook`.
    pub(crate) fn new<T: NetHooks>(net: &Net, specs: &[HookSpec; N]) -> Result<Self> {
        let mut ops = KBox::new(
            core::array::from_fn::<bindings::nf_hook_ops, N, _>(|_| zeroed()),
            GFP_KERNEL,
        )?;
        for (op, spec) in ops.iter_mut().zip(specs) {
            let pf = nfproto(spec.family);
            let hook = trampoline::<T>(spec);
            // SAFETY: `op` is a valid, exclusively borrowed `nf_hook_ops`, not registered yet.
            unsafe {
                bindings::icmp_ct_hook_ops_init(op, hook, pf, spec.point.to_raw(), spec.priority)
            };
        }
        let count = u32::try_from(N).map_err(|_| EINVAL)?;
        // SAFETY: `net` is alive; `ops` is a heap array that is neither moved nor freed until
        // it is unregistered (in `unregister` or `drop`).
        to_result(unsafe { bindings::nf_register_net_hooks(net.as_ptr(), ops.as_ptr(), count) })?;
        // INVARIANT: just registered in `net`, which owns the state that owns `self`.
        Ok(HookRegistration {
            net: net.as_ptr(),
            ops,
            registered: AtomicBool::new(true),
        })
    }

    /// Unregisters the hooks without waiting for running hook calls to finish: for
    /// `PernetData::pre_exit`, after which the kernel waits for an RCU grace period.
    pub(crate) fn unregister(&self) -> bool {
        if !self.registered.swap(false, Ordering::AcqRel) {
            return false;
        }
        let count = N as u32;
        // SAFETY: by the type invariant the hooks are registered in the live `self.net`.
        unsafe { bindings::nf_unregister_net_hooks(self.net, self.ops.as_ptr(), count) };
        true
    }
}

impl<const N: usize> Drop for HookRegistration<N> {
    fn drop(&mut self) {
        // Only reached still registered on error paths: wait for hook calls in flight, since
        // nobody else will before the state is freed.
        if self.unregister() {
            rcu::synchronize();
        }
    }
}
