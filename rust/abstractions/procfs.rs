// SPDX-License-Identifier: GPL-2.0

//! Per-namespace procfs files backed by `seq_file`.
//!
//! A file is a marker type implementing [`ProcShow`] (one `show` call prints the whole file)
//! or [`ProcSeq`] (one item per `show` call, iterated under RCU from `start` to `stop`, with
//! a walk state kept for the whole open file). The callbacks find the namespace's state
//! through `seq_file_net`, and the state owns the [`ProcEntry`], whose drop waits for
//! readers in progress and releases the files still open.

use crate::abstractions::net::Net;
use crate::abstractions::pernet::{self, PernetData};
use crate::abstractions::rcu::RcuGuard;
use crate::abstractions::zeroed::{zeroed, ZeroValid};
use crate::bindings;
use core::ffi::{c_int, c_void};
use core::fmt;
use core::pin::Pin;
use kernel::prelude::*;
use kernel::str::CStr;

/// Text output into a `seq_file` buffer.
///
/// Overflowing the buffer is not an error here: `seq_file` notices it and calls `show` again
/// with a larger buffer.
pub(crate) struct SeqWriter {
    seq: *mut bindings::seq_file,
}

impl fmt::Write for SeqWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: `self.seq` is the live `seq_file` of the callback that created the writer;
        // `s` is valid for `s.len()` bytes.
        unsafe { bindings::seq_write(self.seq, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// A file whose whole content one call prints.
pub(crate) trait ProcShow {
    /// The namespace state the file shows.
    type Data: PernetData;
    /// Prints the file for `data`'s namespace.
    fn show(data: &Self::Data, out: &mut SeqWriter) -> fmt::Result;
}

/// A file of records walked under RCU, one `show` call per record.
///
/// What the walk keeps is a `State` in the open file's private area: all-zero bytes when
/// the file is opened, kept from one read to the next, pinned there (the area never moves)
/// until `release`, the last callback of the file.
///
/// The functions are unsafe to call; only this module calls them (the callbacks of files
/// made by [`ProcEntry::seq`]), so that their common contract holds for every call:
/// `state` is the state in the private area of one open file made with `Self`, and `data`
/// the state of that file's namespace; the calls for one file are serialised, `start`, then
/// `next` and `show`, then `stop`, any number of times, then `release` once (after which
/// the area is freed).
pub(crate) trait ProcSeq {
    /// The namespace state the file shows.
    type Data: PernetData;
    /// The open file's walk state; all-zero bytes are its initial value.
    type State: ZeroValid;
    /// Positions the walk on record `pos` (0 for the first, which starts a new walk) at the
    /// start of a read; false if there is none. `pos` is, when not 0, the position of the
    /// record the previous read stopped at without copying it.
    ///
    /// # Safety
    ///
    /// The trait's contract; `stop` follows.
    unsafe fn start(
        data: &Self::Data,
        state: Pin<&mut Self::State>,
        pos: u64,
        rcu: &RcuGuard,
    ) -> bool;
    /// Moves the walk to the next record; false if there is none.
    ///
    /// # Safety
    ///
    /// The trait's contract; between `start` and `stop`.
    unsafe fn next(data: &Self::Data, state: Pin<&mut Self::State>, rcu: &RcuGuard) -> bool;
    /// Prints the record the walk stands on.
    ///
    /// # Safety
    ///
    /// The trait's contract; between `start` and `stop`, for a record they found.
    unsafe fn show(
        data: &Self::Data,
        state: &Self::State,
        rcu: &RcuGuard,
        out: &mut SeqWriter,
    ) -> fmt::Result;
    /// Ends a read; called after every `start` of the file, also one not passed on to
    /// [`ProcSeq::start`] (when the namespace state is already gone).
    ///
    /// # Safety
    ///
    /// The trait's contract.
    unsafe fn stop(state: Pin<&mut Self::State>);
    /// The file is closed, or removed while open (when its owner drops its [`ProcEntry`]).
    ///
    /// # Safety
    ///
    /// The trait's contract; after the file's last `stop`, and nothing follows.
    unsafe fn release(state: Pin<&mut Self::State>);
}

/// Where the state of type `S` sits in the private area of a `ProcSeq` file.
struct StateSlot<S>(core::marker::PhantomData<S>);

impl<S> StateSlot<S> {
    /// After the `seq_net_private` that `seq_file_net` reads first, aligned.
    const OFFSET: usize = {
        let base = core::mem::size_of::<bindings::seq_net_private>();
        let align = core::mem::align_of::<S>();
        // The area comes from kzalloc, aligned to at least 8 bytes.
        assert!(align <= 8);
        base.div_ceil(align) * align
    };
    /// The size of the whole private area.
    const STATE_SIZE: u32 = {
        let size = Self::OFFSET + core::mem::size_of::<S>();
        assert!(size <= u32::MAX as usize);
        size as u32
    };
}

/// The walk state of the file behind `seq`.
///
/// # Safety
///
/// `seq` must be a live `seq_file` of a file created by [`ProcEntry::seq`] with `F`, not yet
/// released, and the caller must be its only user for `'a` (seq_file serialises the
/// callbacks of one open file, and release comes after all of them).
unsafe fn seq_state<'a, F: ProcSeq>(seq: *mut bindings::seq_file) -> Pin<&'a mut F::State> {
    // SAFETY: `private` is the zeroed area of `StateSlot::STATE_SIZE` bytes (8-byte aligned,
    // from kzalloc) that `proc_open` asked for; all-zero bytes are a valid `F::State`
    // (`ZeroValid`), and callbacks only change it through `&mut`.
    let state = unsafe {
        &mut *(*seq)
            .private
            .cast::<u8>()
            .add(StateSlot::<F::State>::OFFSET)
            .cast::<F::State>()
    };
    // SAFETY: the area stays at its address until `seq_release_private` frees it, after
    // `F::release`; nothing moves the state out of it.
    unsafe { Pin::new_unchecked(state) }
}

/// The namespace state of the file behind `seq`.
///
/// # Safety
///
/// `seq` must be a live `seq_file` of a file created by [`ProcEntry::seq`] for `T`'s
/// namespace state; that state removes the file (waiting for readers) before it is freed.
unsafe fn seq_data<'a, T: PernetData>(seq: *mut bindings::seq_file) -> Option<&'a T> {
    // SAFETY: an open file made by `ProcEntry::seq` holds a reference on its namespace.
    let net = unsafe { Net::from_raw(bindings::icmp_ct_seq_file_net(seq)) };
    // SAFETY: a procfs handler of a file the state owns, per the caller.
    unsafe { pernet::data::<T>(net) }
}

/// As [`seq_data`], for a file created by [`ProcEntry::single`] (whose `seq_file` holds the
/// namespace itself rather than a `seq_net_private`).
///
/// # Safety
///
/// As for [`seq_data`], with a file made by [`ProcEntry::single`].
unsafe fn single_data<'a, T: PernetData>(seq: *mut bindings::seq_file) -> Option<&'a T> {
    // SAFETY: files made by `proc_create_net_single` keep a reference on their namespace.
    let net = unsafe { Net::from_raw(bindings::icmp_ct_seq_file_single_net(seq)) };
    // SAFETY: a procfs handler of a file the state owns, per the caller.
    unsafe { pernet::data::<T>(net) }
}

/// # Safety
///
/// Called by `seq_file` for a file made by [`ProcEntry::single`] with `F`.
unsafe extern "C" fn single_show<F: ProcShow>(
    seq: *mut bindings::seq_file,
    _v: *mut c_void,
) -> c_int {
    // SAFETY: per this function's contract.
    if let Some(data) = unsafe { single_data::<F::Data>(seq) } {
        // A formatting error only means an incomplete line; seq_file handles overflow.
        let _ = F::show(data, &mut SeqWriter { seq });
    }
    0
}

/// What `start` and `next` return to `seq_file` for a record: any non-null pointer (the
/// callbacks find the walk in the private area, not through it).
fn record(seq: *mut bindings::seq_file, found: bool) -> *mut c_void {
    if found {
        seq.cast()
    } else {
        core::ptr::null_mut()
    }
}

/// # Safety
///
/// Called by `seq_file` for a file made by [`ProcEntry::seq`] with `F`; `stop` follows.
unsafe extern "C" fn seq_start<F: ProcSeq>(
    seq: *mut bindings::seq_file,
    pos: *mut bindings::loff_t,
) -> *mut c_void {
    let rcu = RcuGuard::new();
    // SAFETY: `pos` is valid for the call.
    let pos = u64::try_from(unsafe { *pos }).unwrap_or(u64::MAX);
    // SAFETY: per this function's contract.
    let state = unsafe { seq_state::<F>(seq) };
    // SAFETY: per this function's contract.
    // SAFETY: per this function's contract: a callback of a file made with `F`, the state and
    // the data of that file; `stop` follows.
    let found = unsafe { seq_data::<F::Data>(seq) }
        .is_some_and(|data| unsafe { F::start(data, state, pos, &rcu) });
    // `stop` always follows `start` and leaves the section.
    rcu.keep_open();
    record(seq, found)
}

/// # Safety
///
/// Called by `seq_file` between `start` and `stop`.
unsafe extern "C" fn seq_next<F: ProcSeq>(
    seq: *mut bindings::seq_file,
    _v: *mut c_void,
    pos: *mut bindings::loff_t,
) -> *mut c_void {
    // SAFETY: `pos` is valid for the call.
    unsafe { *pos = (*pos).wrapping_add(1) };
    // SAFETY: `start` entered the section and `stop` leaves it.
    let rcu = core::mem::ManuallyDrop::new(unsafe { RcuGuard::assume_entered() });
    // SAFETY: per this function's contract.
    let state = unsafe { seq_state::<F>(seq) };
    // SAFETY: per this function's contract.
    // SAFETY: per this function's contract, as in `seq_start`.
    let found = unsafe { seq_data::<F::Data>(seq) }
        .is_some_and(|data| unsafe { F::next(data, state, &rcu) });
    record(seq, found)
}

/// # Safety
///
/// Called by `seq_file` after `start`.
unsafe extern "C" fn seq_stop<F: ProcSeq>(seq: *mut bindings::seq_file, _v: *mut c_void) {
    // SAFETY: per this function's contract, as in `seq_start`.
    unsafe { F::stop(seq_state::<F>(seq)) };
    // SAFETY: `start` entered the section and left it open for us to close.
    drop(unsafe { RcuGuard::assume_entered() });
}

/// # Safety
///
/// Called by `seq_file` between `start` and `stop`, for a record they found.
unsafe extern "C" fn seq_show<F: ProcSeq>(seq: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `start` entered the section and `stop` leaves it.
    let rcu = core::mem::ManuallyDrop::new(unsafe { RcuGuard::assume_entered() });
    // SAFETY: per this function's contract.
    let state = unsafe { seq_state::<F>(seq) };
    // SAFETY: per this function's contract.
    if let Some(data) = unsafe { seq_data::<F::Data>(seq) } {
        // SAFETY: per this function's contract, as in `seq_start`.
        let _ = unsafe { F::show(data, &state, &rcu, &mut SeqWriter { seq }) };
    }
    0
}

struct SeqOps<F>(core::marker::PhantomData<F>);

impl<F: ProcSeq> SeqOps<F> {
    const OPS: bindings::seq_operations = bindings::seq_operations {
        start: Some(seq_start::<F>),
        next: Some(seq_next::<F>),
        stop: Some(seq_stop::<F>),
        show: Some(seq_show::<F>),
    };
}

/// # Safety
///
/// Called by procfs to open a file made by [`ProcEntry::seq`] with `F`.
unsafe extern "C" fn proc_open<F: ProcSeq>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: the file's parent is a namespace's `/proc/net` (or a directory in it), whose
    // data is the namespace; the operations are `'static`; the area size leaves room for
    // the `seq_net_private` first.
    unsafe {
        bindings::icmp_ct_seq_open_net(
            inode,
            file,
            &SeqOps::<F>::OPS,
            StateSlot::<F::State>::STATE_SIZE,
        )
    }
}

/// # Safety
///
/// Called by procfs once for a file opened by [`proc_open`] with `F`: when it is closed, or
/// when its entry is removed while it is open (`proc_entry_rundown`, after the callbacks
/// in progress have returned).
unsafe extern "C" fn proc_release<F: ProcSeq>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `proc_open` made the file a `seq_file`, whose other callbacks are done.
    let seq = unsafe { (*file).private_data }.cast::<bindings::seq_file>();
    // SAFETY: per this function's contract: the file's last callback; the area is freed
    // only below.
    unsafe { F::release(seq_state::<F>(seq)) };
    // SAFETY: opened by `icmp_ct_seq_open_net`; released once.
    unsafe { bindings::icmp_ct_seq_release_net(inode, file) }
}

struct FileOps<F>(core::marker::PhantomData<F>);

impl<F: ProcSeq> FileOps<F> {
    const OPS: bindings::proc_ops = bindings::proc_ops {
        proc_open: Some(proc_open::<F>),
        proc_read_iter: Some(bindings::seq_read_iter),
        proc_lseek: Some(bindings::seq_lseek),
        proc_release: Some(proc_release::<F>),
        ..zeroed()
    };
}

/// The parent directory of a per-namespace proc file.
#[derive(Clone, Copy)]
pub(crate) enum ProcDir {
    /// `/proc/net`
    Net,
    /// `/proc/net/stat`
    NetStat,
}

/// A procfs file; removed on drop, after readers in progress have finished.
///
/// # Invariants
///
/// `entry` is a live proc entry created by this module.
pub(crate) struct ProcEntry {
    entry: *mut bindings::proc_dir_entry,
}

// SAFETY: `proc_remove` may be called from any thread.
unsafe impl Send for ProcEntry {}
// SAFETY: no `&self` methods.
unsafe impl Sync for ProcEntry {}

impl ProcEntry {
    fn parent(net: &Net, dir: ProcDir) -> *mut bindings::proc_dir_entry {
        match dir {
            ProcDir::Net => net.proc_net(),
            ProcDir::NetStat => net.proc_net_stat(),
        }
    }

    fn checked(entry: *mut bindings::proc_dir_entry) -> Result<Self> {
        if entry.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: non-null entries returned by `proc_create_net*` are live.
        Ok(ProcEntry { entry })
    }

    /// Creates `dir/name` in `net`, printed by `F::show`.
    pub(crate) fn single<F: ProcShow>(
        net: &Net,
        dir: ProcDir,
        name: &'static CStr,
        mode: u16,
    ) -> Result<Self> {
        // SAFETY: `net` is alive, `name` is `'static`, and the callback's contract holds for
        // files made here.
        let entry = unsafe {
            bindings::proc_create_net_single(
                name.as_char_ptr(),
                mode,
                Self::parent(net, dir),
                Some(single_show::<F>),
                core::ptr::null_mut(),
            )
        };
        Self::checked(entry)
    }

    /// Creates `dir/name` in `net`, iterated with `F`. Unlike `proc_create_net_data`'s
    /// files, its `release` calls [`ProcSeq::release`]; removing the entry (dropping the
    /// `ProcEntry`) releases the files still open before it returns.
    pub(crate) fn seq<F: ProcSeq>(
        net: &Net,
        dir: ProcDir,
        name: &'static CStr,
        mode: u16,
    ) -> Result<Self> {
        // SAFETY: `net` is alive, `name` and the operations are `'static`, and the callbacks'
        // contracts hold for files made here. The parent is a directory of `net`'s
        // `/proc/net`, whose data is `net` (what `proc_open` reads), and whose entries are
        // looked up again in every namespace, as `proc_create_net_data`'s are.
        let entry = unsafe {
            bindings::proc_create_data(
                name.as_char_ptr(),
                mode,
                Self::parent(net, dir),
                &FileOps::<F>::OPS,
                core::ptr::null_mut(),
            )
        };
        Self::checked(entry)
    }
}

impl Drop for ProcEntry {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the entry is live; this waits for the callbacks in
        // progress, then releases the files still open (`proc_entry_rundown`).
        unsafe { bindings::proc_remove(self.entry) };
    }
}
