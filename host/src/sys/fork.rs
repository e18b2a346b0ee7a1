//! Forking a worker from a zygote so that the zygote's parent (the broker)
//! is the worker's parent, and following such a worker by its pidfd.
//!
//! `clone3(CLONE_PARENT | CLONE_PIDFD)` makes the new process a child of
//! the zygote's parent — the same thread of it that started the zygote, so
//! the worker's parent-death signal fires exactly when it would for a
//! worker that thread had started itself — and hands back a pidfd the
//! broker waits on (`waitid(P_PIDFD)`) and signals (`pidfd_send_signal`):
//! it is the broker's child, so its pid is not reused before the broker
//! reaps it.
//!
//! glibc's `fork()` cannot pass `CLONE_PARENT`, so the zygote calls
//! `clone3` itself and does in the child what glibc's `_Fork` does: the
//! kernel writes the child's thread id into the C library's thread
//! descriptor (`CLONE_CHILD_SETTID`), and the child registers the robust
//! mutex list again (the kernel clears it in a new process). Both matter
//! to the C library in the child: its mutexes record their owner's thread
//! id, and a process-shared robust mutex is recovered through that list.
//! (mpwasm's own locks no longer depend on either: their words name the
//! owning process, and the broker repairs a dead owner's.) Where the
//! thread descriptor is not laid out as expected, [`ThreadRecord::current`]
//! fails and the caller starts workers with `exec` instead.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};

/// Where the C library keeps this thread's id and robust-mutex list head.
pub(crate) struct ThreadRecord {
    tid: *mut libc::pid_t,
    robust_head: *mut libc::c_void,
    robust_len: usize,
}

impl ThreadRecord {
    /// Finds them for the calling thread: the robust list head the kernel
    /// knows (`get_robust_list`), and the thread id 16 bytes before it, as
    /// glibc lays out `struct pthread` on 64-bit targets — checked against
    /// `gettid()` before it is trusted.
    ///
    /// # Errors
    ///
    /// The kernel has no robust list for this thread, or the layout is not
    /// glibc's.
    pub(crate) fn current() -> io::Result<Self> {
        let mut head: *mut libc::c_void = std::ptr::null_mut();
        let mut len: libc::size_t = 0;
        // SAFETY: pid 0 is the calling thread; both out-pointers are valid.
        let r = unsafe {
            libc::syscall(
                libc::SYS_get_robust_list,
                0,
                &mut head as *mut *mut libc::c_void,
                &mut len as *mut libc::size_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        if head.is_null() || cfg!(not(target_pointer_width = "64")) {
            return Err(io::Error::other("no robust mutex list registered"));
        }
        let tid = head.cast::<u8>().wrapping_sub(16).cast::<libc::pid_t>();
        // SAFETY: `head` points into the calling thread's C library thread
        // descriptor (glibc's `struct pthread`), which starts well before
        // it; the read is of plain memory of this process.
        let recorded = unsafe { tid.read_volatile() };
        if recorded != rustix::thread::gettid().as_raw_nonzero().get() {
            return Err(io::Error::other(
                "the C library's thread descriptor is not laid out as glibc's",
            ));
        }
        Ok(ThreadRecord {
            tid,
            robust_head: head,
            robust_len: len,
        })
    }
}

/// The two sides of a [`fork_to_parent`].
pub(crate) enum Forked {
    /// In the new process.
    Child,
    /// In the zygote: the new process's pid and a pidfd for it.
    Parent { pid: u32, pidfd: OwnedFd },
}

/// Why a zygote did not fork.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForkError {
    /// The process has more than one thread: a fork copies only the
    /// calling one, and locks other threads held would stay locked forever
    /// in the child.
    #[error("the zygote has {0} threads; it forks only while it has one")]
    Threads(usize),
    /// The kernel refused.
    #[error("clone3 failed: {0}")]
    Clone(io::Error),
}

/// `/proc/self/task`, opened at the first count and read again from its
/// start at each: a zygote counts before every fork, and one read costs
/// less than an open, a read and a close.
static TASKS: std::sync::Mutex<Option<rustix::fs::Dir>> = std::sync::Mutex::new(None);

/// How many threads this process has (`/proc/self/task`).
///
/// # Errors
///
/// `/proc` cannot be read.
pub(crate) fn thread_count() -> io::Result<usize> {
    use rustix::fs::{Dir, Mode, OFlags};
    let mut tasks = TASKS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = match &mut *tasks {
        Some(dir) => dir,
        None => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = rustix::fs::open("/proc/self/task", flags, Mode::empty())?;
            tasks.insert(Dir::new(fd)?)
        }
    };
    dir.rewind();
    let mut threads = 0;
    while let Some(entry) = dir.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            threads += 1;
        }
    }
    Ok(threads)
}

/// `struct clone_args` of `clone3` (Linux 5.5; this layout is its size 88
/// version, with `set_tid` and `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks this (single-threaded) process; the child's parent is this
/// process's parent (see the module docs). `me` must be the calling
/// thread's [`ThreadRecord`].
///
/// # Errors
///
/// [`ForkError::Threads`] if the process has a second thread (checked
/// first: then nothing is forked), or the kernel's refusal.
pub(crate) fn fork_to_parent(me: &ThreadRecord) -> Result<Forked, ForkError> {
    let threads = thread_count().map_err(ForkError::Clone)?;
    if threads != 1 {
        return Err(ForkError::Threads(threads));
    }
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: (libc::CLONE_PARENT | libc::CLONE_PIDFD | libc::CLONE_CHILD_SETTID) as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        child_tid: me.tid as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, with no new
    // stack: the child continues on a copy of this thread's stack, like
    // fork(). The process has one thread (checked above), so no lock is
    // held by a thread the child does not have.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        0 => {
            // SAFETY: `me` describes this thread's own descriptor (copied
            // into the child); the list is empty (a zygote never locks a
            // robust mutex), as glibc's _Fork leaves it.
            unsafe {
                libc::syscall(libc::SYS_set_robust_list, me.robust_head, me.robust_len);
            }
            Ok(Forked::Child)
        }
        pid if pid > 0 => Ok(Forked::Parent {
            pid: pid as u32,
            // SAFETY: CLONE_PIDFD stored a new descriptor we now own.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
        _ => Err(ForkError::Clone(io::Error::last_os_error())),
    }
}

/// Sends SIGKILL to the process of `pidfd` (a no-op once it has exited).
pub(crate) fn pidfd_kill(pidfd: &OwnedFd) -> io::Result<()> {
    Ok(pidfd_send_signal(pidfd, Signal::KILL)?)
}

/// Reaps the child of `pidfd` if it has exited (`block`: waits until it
/// does), and returns its status.
///
/// # Errors
///
/// The kernel's, e.g. `ECHILD` if it was reaped already.
pub(crate) fn pidfd_wait(pidfd: &OwnedFd, block: bool) -> io::Result<Option<ExitStatus>> {
    let mut options = WaitIdOptions::EXITED;
    if !block {
        options |= WaitIdOptions::NOHANG;
    }
    let status = loop {
        match waitid(WaitId::PidFd(std::os::fd::AsFd::as_fd(pidfd)), options) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    Ok(status.and_then(|s| {
        // The raw wait status std's ExitStatus is made from.
        if let Some(code) = s.exit_status() {
            Some(ExitStatus::from_raw((code & 0xff) << 8))
        } else {
            let core = if s.dumped() { 0x80 } else { 0 };
            s.terminating_signal()
                .map(|sig| ExitStatus::from_raw(sig | core))
        }
    }))
}

#[cfg(test)]
mod test {
    use super::*;

    /// The zygote's check: with a second thread alive, `fork_to_parent`
    /// refuses and forks nothing. (This test process has the harness's
    /// threads too; the one started here makes sure of a second.)
    #[test]
    fn a_process_with_a_second_thread_is_not_forked() {
        let me = ThreadRecord::current().expect("glibc's thread descriptor is found");
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        match fork_to_parent(&me) {
            Err(ForkError::Threads(n)) => assert!(n >= 2, "{n} threads"),
            Ok(Forked::Child) => {
                // SAFETY: a forked copy of the test process: leave at once.
                unsafe { libc::_exit(0) }
            }
            Ok(Forked::Parent { pid, .. }) => panic!("forked {pid} with two threads"),
            Err(e) => panic!("{e}"),
        }
        stop.send(()).unwrap();
        other.join().unwrap().unwrap();
    }

    /// The thread record points at this thread's id in glibc's thread
    /// descriptor, which `clone3` then rewrites in the child.
    #[test]
    fn the_thread_record_is_this_threads() {
        let me = ThreadRecord::current().expect("glibc's thread descriptor is found");
        // SAFETY: `current` checked that `tid` is readable and holds ours.
        let tid = unsafe { me.tid.read_volatile() };
        assert_eq!(tid, rustix::thread::gettid().as_raw_nonzero().get());
        let other = std::thread::spawn(|| ThreadRecord::current().map(|r| r.tid as usize))
            .join()
            .unwrap()
            .unwrap();
        assert_ne!(other, me.tid as usize, "each thread has its own");
    }
}
