//! What the robust locks of `host/src/sys/owner_lock.rs` report, and the
//! bytes a primitive's page keeps before its kind's words.
//!
//! Robust means a lock whose holder dies (a worker process killed with
//! SIGKILL, a trap that ends it) never hangs the others: the broker, reaping
//! the process, hands the lock to the next acquirer, who learns that its
//! previous holder died. (This used to be glibc's robust
//! `pthread_mutex_t`, for Condition and Barrier; every primitive now keeps
//! its state in plain words that guests with a window also use.)

/// Bytes at the start of a primitive's page before its kind's words (see
/// `host/src/interfaces/sync.rs`): a Lock's, RLock's or Condition's
/// owner lock is in the first of them. Guests' window offsets count from
/// here too, so the number stays.
pub(crate) const MUTEX_BYTES: usize = 64;

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
    /// Anything else (e.g. `EDEADLK`: a Lock its holder acquires again).
    Os(i32),
}
