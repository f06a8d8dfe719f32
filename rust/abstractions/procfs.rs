// SPDX-License-Identifier: GPL-2.0

//! Per-namespace procfs files backed by `seq_file`.
//!
//! A file is a marker type implementing [`ProcShow`] (one `show` call prints the whole file)
//! or [`ProcSeq`] (one item per `show` call, iterated under RCU from `start` to `stop`). The
//! callbacks find the namespace's state through `seq_file_net`, and the state owns the
//! [`ProcEntry`], whose drop waits for readers in progress.

use crate::abstractions::net::Net;
use crate::abstractions::pernet::{self, PernetData};
use crate::abstractions::rcu::RcuGuard;
use crate::bindings;
use core::ffi::{c_int, c_void};
use core::fmt;
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
/// The walk's position is a `Cursor` kept in the open file's private area; it is valid only
/// between one `start` and the following `stop` (one RCU read-side section), and reset to
/// its default at both.
pub(crate) trait ProcSeq {
    /// The namespace state the file shows.
    type Data: PernetData;
    /// A position in the walk, reset by every `start` and `stop`; its default is what
    /// all-zero bytes are (the area is zeroed when the file is opened).
    type Cursor: Default;
    /// Positions `cursor` on record `pos` (0 for the first); false if there is none.
    fn start(data: &Self::Data, cursor: &mut Self::Cursor, pos: u64, rcu: &RcuGuard) -> bool;
    /// Moves `cursor` to the next record; false if there is none.
    fn next(data: &Self::Data, cursor: &mut Self::Cursor, rcu: &RcuGuard) -> bool;
    /// Prints the record at `cursor`.
    fn show(
        data: &Self::Data,
        cursor: &Self::Cursor,
        rcu: &RcuGuard,
        out: &mut SeqWriter,
    ) -> fmt::Result;
}

/// Where a cursor of type `C` sits in the private area of a `ProcSeq` file.
struct CursorSlot<C>(core::marker::PhantomData<C>);

impl<C> CursorSlot<C> {
    /// After the `seq_net_private` that `proc_create_net_data` requires first, aligned.
    const OFFSET: usize = {
        let base = core::mem::size_of::<bindings::seq_net_private>();
        let align = core::mem::align_of::<C>();
        base.div_ceil(align) * align
    };
    /// The size of the whole private area.
    const STATE_SIZE: usize = Self::OFFSET + core::mem::size_of::<C>();
}

/// The cursor of the file behind `seq`.
///
/// # Safety
///
/// `seq` must be a live `seq_file` of a file created by [`ProcEntry::seq`] with `F`, and the
/// caller must be its only user (seq_file serialises the callbacks of one open file).
unsafe fn seq_cursor<'a, F: ProcSeq>(seq: *mut bindings::seq_file) -> &'a mut F::Cursor {
    // SAFETY: `private` is the zeroed area of `CursorSlot::STATE_SIZE` bytes
    // (8-byte aligned, from kzalloc) that `proc_create_net_data` was asked for.
    unsafe {
        &mut *(*seq)
            .private
            .cast::<u8>()
            .add(CursorSlot::<F::Cursor>::OFFSET)
            .cast::<F::Cursor>()
    }
}

/// The namespace state of the file behind `seq`.
///
/// # Safety
///
/// `seq` must be a live `seq_file` of a file created by [`ProcEntry::seq`] for `T`'s
/// namespace state; that state removes the file (waiting for readers) before it is freed.
unsafe fn seq_data<'a, T: PernetData>(seq: *mut bindings::seq_file) -> Option<&'a T> {
    // SAFETY: files made by `proc_create_net_data` keep a reference on their namespace.
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
    let cursor = unsafe { seq_cursor::<F>(seq) };
    // SAFETY: `cursor` is valid for writes; not dropped first: a zeroed area holds no value.
    unsafe { core::ptr::write(cursor, F::Cursor::default()) };
    // SAFETY: per this function's contract.
    let found =
        unsafe { seq_data::<F::Data>(seq) }.is_some_and(|data| F::start(data, cursor, pos, &rcu));
    // `stop` always follows `start` and leaves the section.
    rcu.keep_open();
    if found {
        (cursor as *mut F::Cursor).cast()
    } else {
        core::ptr::null_mut()
    }
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
    let cursor = unsafe { seq_cursor::<F>(seq) };
    // SAFETY: per this function's contract.
    let found = unsafe { seq_data::<F::Data>(seq) }.is_some_and(|data| F::next(data, cursor, &rcu));
    if found {
        (cursor as *mut F::Cursor).cast()
    } else {
        core::ptr::null_mut()
    }
}

/// # Safety
///
/// Called by `seq_file` after `start`.
unsafe extern "C" fn seq_stop<F: ProcSeq>(seq: *mut bindings::seq_file, _v: *mut c_void) {
    // SAFETY: per this function's contract; `start` wrote a cursor there. A position is
    // only valid within the section that ends here.
    unsafe { *seq_cursor::<F>(seq) = F::Cursor::default() };
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
    let cursor = unsafe { seq_cursor::<F>(seq) };
    // SAFETY: per this function's contract.
    if let Some(data) = unsafe { seq_data::<F::Data>(seq) } {
        let _ = F::show(data, cursor, &rcu, &mut SeqWriter { seq });
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

    /// Creates `dir/name` in `net`, iterated with `F`.
    pub(crate) fn seq<F: ProcSeq>(
        net: &Net,
        dir: ProcDir,
        name: &'static CStr,
        mode: u16,
    ) -> Result<Self> {
        // SAFETY: `net` is alive, `name` and the operations are `'static`, and the callbacks'
        // contracts hold for files made here.
        let entry = unsafe {
            bindings::proc_create_net_data(
                name.as_char_ptr(),
                mode,
                Self::parent(net, dir),
                &SeqOps::<F>::OPS,
                CursorSlot::<F::Cursor>::STATE_SIZE as u32,
                core::ptr::null_mut(),
            )
        };
        Self::checked(entry)
    }
}

impl Drop for ProcEntry {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the entry is live; this waits for readers.
        unsafe { bindings::proc_remove(self.entry) };
    }
}
