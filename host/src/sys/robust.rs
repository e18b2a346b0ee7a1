//! A process-shared, robust mutex living in shared memory: glibc's
//! `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED` and
//! `PTHREAD_MUTEX_ROBUST`.
//!
//! Robust means the kernel keeps, per thread, a list of the robust mutexes
//! it holds; when the thread dies (a worker process killed with SIGKILL, a
//! trap that ends it), the kernel marks each as owner-died and wakes a
//! waiter, who gets the lock with `EOWNERDEAD`. A lock held by a dead
//! process therefore never hangs the others.

use std::io;
use std::mem::MaybeUninit;

use super::ipc::Deadline;

/// Bytes reserved for a mutex at the start of a primitive's page.
pub(crate) const MUTEX_BYTES: usize = 64;

const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_BYTES);

/// How an acquisition went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Normally.
    Clean,
    /// The previous owner died holding it; the caller holds it now and the
    /// state it protects may be half-updated.
    OwnerDied,
}

/// Why an acquisition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockError {
    /// Not acquired before the deadline (or at once, for a try).
    Timeout,
    /// Anything else the C library reported (e.g. a corrupt mutex).
    Os(i32),
}

/// A robust mutex at a fixed address in a shared mapping.
pub(crate) struct RobustMutex(*mut libc::pthread_mutex_t);

// SAFETY: a process-shared pthread mutex is made to be used from any thread
// of any process; the pointer stays valid as long as its mapping, which the
// owner of this value keeps alive.
unsafe impl Send for RobustMutex {}
// SAFETY: as above; every operation is a pthread call on the shared object.
unsafe impl Sync for RobustMutex {}

impl RobustMutex {
    /// The mutex at `at`.
    ///
    /// # Safety
    ///
    /// `at` must point to [`MUTEX_BYTES`] bytes of shared memory, 8-aligned,
    /// that outlive the value and were initialized with [`RobustMutex::init`]
    /// (by this or another process) before any lock.
    pub(crate) unsafe fn at(at: *mut u8) -> Self {
        RobustMutex(at.cast())
    }

    /// Initializes the mutex in place; `recursive` for an RLock.
    ///
    /// # Safety
    ///
    /// As [`RobustMutex::at`], and no process may use the mutex yet.
    pub(crate) unsafe fn init(at: *mut u8, recursive: bool) -> io::Result<()> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: attr is initialized by pthread_mutexattr_init before use
        // and destroyed after; `at` is valid per the caller's contract.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let attr_ptr = attr.as_mut_ptr();
            let result = (|| {
                check(libc::pthread_mutexattr_setpshared(
                    attr_ptr,
                    libc::PTHREAD_PROCESS_SHARED,
                ))?;
                check(libc::pthread_mutexattr_setrobust(
                    attr_ptr,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))?;
                let kind = if recursive {
                    libc::PTHREAD_MUTEX_RECURSIVE
                } else {
                    libc::PTHREAD_MUTEX_ERRORCHECK
                };
                check(libc::pthread_mutexattr_settype(attr_ptr, kind))?;
                check(libc::pthread_mutex_init(at.cast(), attr_ptr))
            })();
            libc::pthread_mutexattr_destroy(attr_ptr);
            result
        }
    }

    /// Acquires the mutex, waiting until the deadline (`None`: forever; a
    /// passed deadline: try once).
    pub(crate) fn lock(&self, deadline: Deadline) -> Result<Acquired, LockError> {
        // SAFETY: the mutex is valid and initialized (constructor contract).
        let code = unsafe {
            match deadline.remaining() {
                None => libc::pthread_mutex_lock(self.0),
                Some(left) if left.is_zero() => libc::pthread_mutex_trylock(self.0),
                Some(left) => {
                    let at = realtime_after(left);
                    libc::pthread_mutex_timedlock(self.0, &at)
                }
            }
        };
        match code {
            0 => Ok(Acquired::Clean),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD means acquired).
                unsafe { libc::pthread_mutex_consistent(self.0) };
                Ok(Acquired::OwnerDied)
            }
            libc::EBUSY | libc::ETIMEDOUT => Err(LockError::Timeout),
            e => Err(LockError::Os(e)),
        }
    }

    /// Whether some thread of some process holds the mutex now (a snapshot:
    /// Python's `Lock.locked()`). A mutex whose holder died counts as free,
    /// since the next acquirer gets it at once.
    ///
    /// Reads the lock word without taking the lock. For a robust mutex the
    /// kernel's robust-futex ABI fixes what that word holds: the owner's
    /// thread id (its low 30 bits), plus the waiters and owner-died bits.
    /// glibc keeps it as the first `int` of `pthread_mutex_t`.
    pub(crate) fn is_locked(&self) -> bool {
        /// `FUTEX_TID_MASK` of `linux/futex.h`.
        const TID_MASK: u32 = 0x3fff_ffff;
        // SAFETY: the mutex is valid (constructor contract) and 8-aligned,
        // so its first 4 bytes are an aligned u32 that other threads and
        // processes change only atomically.
        let word = unsafe { &*self.0.cast::<std::sync::atomic::AtomicU32>() };
        word.load(std::sync::atomic::Ordering::Acquire) & TID_MASK != 0
    }

    /// Releases the mutex. Fails (`EPERM`) unless this thread holds it.
    pub(crate) fn unlock(&self) -> Result<(), i32> {
        // SAFETY: the mutex is valid and initialized (constructor contract);
        // an error-checking or recursive mutex refuses a non-owner.
        match unsafe { libc::pthread_mutex_unlock(self.0) } {
            0 => Ok(()),
            e => Err(e),
        }
    }
}

fn check(code: i32) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code))
    }
}

/// `CLOCK_REALTIME` now plus `d`, as `pthread_mutex_timedlock` wants it.
fn realtime_after(d: std::time::Duration) -> libc::timespec {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + d;
    libc::timespec {
        tv_sec: now.as_secs() as libc::time_t,
        tv_nsec: now.subsec_nanos() as libc::c_long,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::sys::ipc::SharedMap;
    use std::time::Duration;

    #[test]
    fn is_locked_follows_the_holder_and_its_death() {
        let page = SharedMap::page("test-mutex-locked").unwrap();
        // SAFETY: a fresh, page-aligned shared page used only by this test.
        unsafe { RobustMutex::init(page.as_ptr(), false).unwrap() };
        // SAFETY: initialized just above; the page outlives the mutex value.
        let m = unsafe { RobustMutex::at(page.as_ptr()) };
        assert!(!m.is_locked());
        m.lock(Deadline::after(None)).unwrap();
        assert!(m.is_locked());
        m.unlock().unwrap();
        assert!(!m.is_locked());
        // SAFETY: the child only locks the shared mutex and exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let _ = m.lock(Deadline::after(None));
            // SAFETY: leave without unlocking or running destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        // Its holder died: the next acquirer gets it at once.
        assert!(!m.is_locked());
    }

    #[test]
    fn lock_timeout_and_owner_died_across_processes() {
        let page = SharedMap::page("test-mutex").unwrap();
        // SAFETY: a fresh, page-aligned shared page used only by this test.
        unsafe { RobustMutex::init(page.as_ptr(), false).unwrap() };
        // SAFETY: initialized just above; the page outlives the mutex value.
        let m = unsafe { RobustMutex::at(page.as_ptr()) };
        // SAFETY: the child only locks the shared mutex and exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let _ = m.lock(Deadline::after(None));
            // SAFETY: leave without unlocking or running destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        let got = m.lock(Deadline::after(Some(Duration::from_secs(5))));
        assert_eq!(got, Ok(Acquired::OwnerDied));
        m.unlock().unwrap();
        assert_eq!(
            m.lock(Deadline::after(Some(Duration::ZERO))),
            Ok(Acquired::Clean)
        );
        m.unlock().unwrap();
        assert!(m.unlock().is_err(), "a second unlock is refused");
    }
}
