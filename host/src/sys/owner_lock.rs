//! A process-shared lock whose word names its owner: `Lock` and `RLock`.
//!
//! Two words in shared memory: the **lock word** — the owner's pid, plus
//! [`WAITERS`] when someone may sleep on it, or [`OWNER_DIED`] when its last
//! owner died holding it — and the **count** of an RLock's re-entries,
//! written only by the owner. Uncontended acquire and release are one
//! compare-and-swap each, which guests with a window do in their own code
//! (the SDK's fast path); this module is the host's side of the same
//! protocol: the slow paths that sleep (a futex wait on the lock word; the
//! page is `MAP_SHARED`, so the futex is not private) and wake one waiter.
//!
//! A process killed holding the lock cannot release it: the broker, when it
//! reaps the process, turns every lock word it owned into [`OWNER_DIED`]
//! (keeping [`WAITERS`]) and wakes the waiters ([`repair`]); the next
//! acquirer gets the lock and learns that its previous owner died. Pids are
//! below 2²² on Linux (`pid_max`), so they fit under the two flag bits.
//!
//! The protocol is Drepper's "mutex 2" ("Futexes Are Tricky", 2011): a
//! process that has slept acquires with [`WAITERS`] set, since others may
//! still sleep; a release that finds the flag wakes one.

use std::sync::atomic::{AtomicU32, Ordering};

use super::ipc::{self, Deadline};
use super::robust::{Acquired, LockError};

/// Set in the lock word while a process may be sleeping on it.
pub(crate) const WAITERS: u32 = 1 << 31;
/// The lock is free because its owner died holding it.
pub(crate) const OWNER_DIED: u32 = 1 << 30;
/// The owner's pid.
pub(crate) const OWNER: u32 = OWNER_DIED - 1;

/// The two words of one lock.
#[derive(Clone, Copy)]
pub(crate) struct OwnerLock<'a> {
    /// Owner, [`WAITERS`], [`OWNER_DIED`].
    pub(crate) word: &'a AtomicU32,
    /// An RLock's depth (owner-only).
    pub(crate) count: &'a AtomicU32,
    /// Whether the owner may acquire again (RLock).
    pub(crate) recursive: bool,
    /// The calling process, as [`me`] gives it. A holder that lives in one
    /// process keeps it: `getpid` is a system call, and on this VM's CPUs
    /// (return-stack mitigations) one per acquire and release also slowed
    /// the guest code after it, doubling a Python guest's locked increment.
    pub(crate) me: u32,
}

/// The calling process's id as the lock word holds it.
pub(crate) fn me() -> u32 {
    std::process::id() & OWNER
}

impl OwnerLock<'_> {
    /// Acquires for this process, waiting until `deadline` (a passed one:
    /// try once).
    pub(crate) fn lock(&self, deadline: Deadline) -> Result<Acquired, LockError> {
        let me = self.me;
        let mut slept = false;
        loop {
            let v = self.word.load(Ordering::Acquire);
            let owner = v & OWNER;
            if owner == me {
                if !self.recursive {
                    return Err(LockError::Os(libc::EDEADLK));
                }
                self.count.fetch_add(1, Ordering::Relaxed);
                return Ok(Acquired::Clean);
            }
            if owner == 0 {
                // After sleeping, others may sleep too: keep the flag.
                let waiters = if slept { WAITERS } else { v & WAITERS };
                if self
                    .word
                    .compare_exchange(v, me | waiters, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.count.store(1, Ordering::Relaxed);
                    return Ok(if v & OWNER_DIED != 0 {
                        Acquired::OwnerDied
                    } else {
                        Acquired::Clean
                    });
                }
                continue;
            }
            if deadline.passed() {
                return Err(LockError::Timeout);
            }
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            ipc::futex_wait(self.word, v | WAITERS, deadline);
            slept = true;
        }
    }

    /// Releases once; `Err` unless this process holds the lock.
    pub(crate) fn unlock(&self) -> Result<(), LockError> {
        let me = self.me;
        if self.word.load(Ordering::Acquire) & OWNER != me {
            return Err(LockError::Os(libc::EPERM));
        }
        if self.recursive && self.count.load(Ordering::Relaxed) > 1 {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        self.count.store(0, Ordering::Relaxed);
        if self.word.swap(0, Ordering::AcqRel) & WAITERS != 0 {
            ipc::futex_wake(self.word, 1);
        }
        Ok(())
    }

    /// Whether some live process holds it.
    pub(crate) fn is_locked(&self) -> bool {
        self.word.load(Ordering::Acquire) & OWNER != 0
    }
}

/// Marks the lock word `word` [`OWNER_DIED`] if the dead process `pid`
/// owns it, and wakes its waiters. Returns whether it did.
pub(crate) fn repair(word: &AtomicU32, pid: u32) -> bool {
    let pid = pid & OWNER;
    let mut v = word.load(Ordering::Acquire);
    loop {
        if pid == 0 || v & OWNER != pid {
            return false;
        }
        match word.compare_exchange(
            v,
            OWNER_DIED | (v & WAITERS),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break,
            Err(now) => v = now,
        }
    }
    ipc::futex_wake_all(word);
    true
}

#[cfg(test)]
mod test;
