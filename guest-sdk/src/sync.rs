//! Synchronization between processes (Python's `multiprocessing.Lock`,
//! `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition` and
//! `Barrier`).
//!
//! Each primitive lives in a page of shared memory every holder maps;
//! acquiring, waiting and notifying are host calls that act on that page in
//! the calling process (futexes on lock and sequence words), without a
//! message to another process. What needs no sleep needs no host call
//! either: the page is mapped into the guest's window, and an uncontended
//! [`Lock`] or [`RLock`] is taken and released with one atomic
//! compare-and-swap on its lock word, which names the owner (with spare
//! CPUs, a busy one is watched for a few microseconds before sleeping); a
//! [`Semaphore`] unit that is there is taken, and one given back, the same
//! way; an [`Event`] is read, cleared, waited for when set and set with
//! nobody asleep on it; a [`Condition`]'s lock is taken and released as an
//! RLock's, and its holder's `notify` with nobody waiting is done there; a
//! [`Barrier`]'s last arrival moves it to the next generation with one
//! compare-and-swap. A wake-up is a host call only when a process may be
//! asleep, and so is every wait (a condition's, a barrier party's that is
//! not the last).
//!
//! Locks are *robust*: when a process dies holding one, the next acquirer
//! gets it anyway, and its [`LockGuard::owner_died`] says so, because the
//! data the lock protects may be half-updated. A barrier breaks when one of
//! its parties dies, so the others get [`Error::Broken`] instead of
//! waiting forever.
//!
//! ```no_run
//! use mpwasm_guest::{Lock, Process, Value};
//!
//! #[mpwasm_guest::task]
//! fn deposit(account: (Value<i64>, Lock)) {
//!     let (balance, lock) = account;
//!     for _ in 0..100 {
//!         let _guard = lock.acquire().unwrap(); // released at the end of the block
//!         balance.set(balance.get() + 10);
//!     }
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let balance = Value::new(0_i64)?;
//!     let lock = Lock::new()?;
//!     let mut p = Process::new("deposit", (balance.clone(), lock.clone()));
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(balance.get(), 1000);
//!     Ok(())
//! }
//! ```
//!
//! The three forms of acquiring share one internal call taking a timeout:
//! `acquire` (forever), `acquire_timeout`, `try_acquire` (zero: does not
//! block; [`Error::Timeout`] if busy).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::bindings::{sync as wit, types};
use crate::capability::Handle;
use crate::error::{Error, Result};
use crate::time;

mod fast;
use fast::Fast;

/// Which primitive a handle is, written after its token so that a receiver
/// expecting another kind fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Tag {
    Lock,
    RLock,
    Semaphore,
    BoundedSemaphore,
    Event,
    Condition,
    Barrier,
}

/// One host primitive, shared by every clone of a handle in this process.
#[derive(Clone)]
struct Object {
    host: Handle<wit::SyncObject>,
    /// What this guest does in its own code on the primitive's page in its
    /// window, without a host call.
    fast: Fast,
}

impl Object {
    fn create(kind: wit::Kind) -> Result<Object> {
        let tag = match kind {
            wit::Kind::Lock => Tag::Lock,
            wit::Kind::Rlock => Tag::RLock,
            wit::Kind::Semaphore((_, false)) => Tag::Semaphore,
            wit::Kind::Semaphore((_, true)) => Tag::BoundedSemaphore,
            wit::Kind::Event => Tag::Event,
            wit::Kind::Condition => Tag::Condition,
            wit::Kind::Barrier(_) => Tag::Barrier,
        };
        Ok(Object::with(Handle::new(wit::create(kind)?), tag))
    }

    fn with(host: Handle<wit::SyncObject>, tag: Tag) -> Object {
        let fast = match host.window() {
            Some(at) => Fast::new(tag, at),
            None => Fast::None,
        };
        Object { host, fast }
    }

    /// Acquires, waiting at most `timeout` (`None`: forever; zero: not at
    /// all). `Ok(true)` if the previous holder died holding it.
    fn acquire(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.fast.lock().is_some_and(fast::FastLock::try_acquire) {
            return Ok(false);
        }
        match self.fast {
            Fast::Semaphore(sem) if sem.try_acquire() => return Ok(false),
            // None left, and no wait wanted: nothing for the host to do.
            Fast::Semaphore(_) if timeout == Some(Duration::ZERO) => return Err(Error::Timeout),
            _ => {}
        }
        match self.host.acquire(time::millis(timeout)) {
            Ok(()) => Ok(false),
            Err(types::Error::OwnerDied) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    fn release(&self) -> Result<()> {
        if self.fast.lock().is_some_and(fast::FastLock::try_release) {
            return Ok(());
        }
        match self.fast {
            Fast::Semaphore(sem) if sem.try_release() => {
                if sem.may_sleep() {
                    self.host.notify(1)?;
                }
                return Ok(());
            }
            _ => {}
        }
        Ok(self.host.release()?)
    }

    /// A semaphore's units left.
    fn value(&self) -> u32 {
        match self.fast {
            Fast::Semaphore(sem) => sem.value(),
            _ => self.host.value(),
        }
    }

    /// The host's `wait`: 1 if set, notified, or (barrier) the arrival
    /// index; a barrier's last arrival passes in guest code.
    fn wait(&self, timeout: Option<Duration>) -> Result<u32> {
        if let Fast::Barrier(barrier) = self.fast {
            match barrier.try_pass() {
                fast::Pass::Last(index, wake) => {
                    if wake {
                        self.host.notify(u32::MAX)?;
                    }
                    return Ok(index);
                }
                fast::Pass::Broken => return Err(Error::Broken),
                fast::Pass::NotLast => {}
            }
        }
        Ok(self.host.wait(time::millis(timeout))?)
    }

    /// A barrier's parties waiting now.
    fn arrived(&self) -> u32 {
        match self.fast {
            Fast::Barrier(barrier) => barrier.arrived(),
            _ => self.host.value(),
        }
    }

    /// Whether a barrier is broken.
    fn broken(&self) -> bool {
        match self.fast {
            Fast::Barrier(barrier) => barrier.broken(),
            _ => self.host.is_set(),
        }
    }

    /// Writes the token, the kind and `param` (a barrier's parties).
    fn serialize<S: Serializer>(&self, s: S, tag: Tag, param: u32) -> Result<S::Ok, S::Error> {
        (&self.host, tag as u8, param).serialize(s)
    }

    /// Reads what [`serialize`](Self::serialize) wrote; `Err` unless the
    /// kind is `tag`.
    fn deserialize<'de, D: Deserializer<'de>>(d: D, tag: Tag) -> Result<(Object, u32), D::Error> {
        let (host, got, param) = <(Handle<wit::SyncObject>, u8, u32)>::deserialize(d)?;
        if got != tag as u8 {
            return Err(de::Error::custom(format_args!(
                "a sync object of kind {got} cannot be received as a {tag:?}"
            )));
        }
        Ok((Object::with(host, tag), param))
    }
}

/// For host calls that fail only on a primitive of another kind, which a
/// handle of this module cannot hold (its kind is checked on arrival).
fn infallible<T>(result: Result<T, types::Error>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("the host refused {what}: {}", Error::from(e)))
}

/// Stamps out `Clone`, `Debug` and the capability `Serialize` /
/// `Deserialize` of a primitive that is just its `Object`.
macro_rules! handle_impls {
    ($ty:ident) => {
        impl Clone for $ty {
            /// Another handle to the same primitive.
            fn clone(&self) -> Self {
                $ty {
                    object: self.object.clone(),
                }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("handle", &self.object.host.handle())
                    .finish()
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.object.serialize(serializer, Tag::$ty, 0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let (object, _) = Object::deserialize(deserializer, Tag::$ty)?;
                Ok($ty { object })
            }
        }
    };
}

/// Proof that a [`Lock`], [`RLock`] or [`Condition`] is held; releases it
/// when dropped (Python's `with lock:`).
///
/// If the process that held the lock before died holding it, the lock
/// passed to this one anyway and [`owner_died`](Self::owner_died) is true:
/// the lock *is* held, but what it protects may be half-updated. Check and
/// repair it before relying on it. Reporting this on the guard rather than
/// as an `Err` keeps `let _guard = lock.acquire()?;` working.
///
/// To release the lock by hand later (Python's explicit
/// `acquire()`/`release()`), `std::mem::forget` the guard and call the
/// lock's `release`.
///
/// # Examples
///
/// ```no_run
/// let lock = mpwasm_guest::Lock::new()?;
/// {
///     let guard = lock.acquire()?;
///     if guard.owner_died() {
///         // the previous holder died mid-update: repair the shared state
///     }
/// } // released here
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    object: &'a Object,
    owner_died: bool,
}

impl LockGuard<'_> {
    /// Acquires `object` as a lock, waiting at most `timeout`.
    fn acquire(object: &Object, timeout: Option<Duration>) -> Result<LockGuard<'_>> {
        let owner_died = object.acquire(timeout)?;
        Ok(LockGuard { object, owner_died })
    }

    /// Whether the previous holder died holding the lock (the host's
    /// `owner-died`). The lock is held either way; when this is true, the
    /// state it protects may be half-updated.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Lock::new()?;
    /// let guard = lock.acquire()?;
    /// assert!(!guard.owner_died()); // a new lock: nobody died holding it
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Held by this guard, so the release cannot be refused.
        let _ = self.object.release();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("owner_died", &self.owner_died)
            .finish_non_exhaustive()
    }
}

/// A lock between processes (Python's `multiprocessing.Lock`): one holder
/// at a time, not re-entrant.
///
/// Unlike CPython's, only the process holding the lock may release it, and
/// acquiring it again in the process that holds it fails at once instead of
/// deadlocking. If the holder dies, the next acquirer gets the lock with
/// [`LockGuard::owner_died`] set.
///
/// Clones are handles to the same lock; sending one to another process
/// gives the receiver a handle to the same lock.
///
/// # Examples
///
/// ```no_run
/// let lock = mpwasm_guest::Lock::new()?;
/// let guard = lock.acquire()?;
/// assert!(lock.try_acquire().is_err()); // not re-entrant
/// drop(guard);
/// assert!(lock.try_acquire().is_ok());
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct Lock {
    object: Object,
}

handle_impls!(Lock);

impl Lock {
    /// A new, unlocked lock (Python's `Lock()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Lock::new()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            object: Object::create(wit::Kind::Lock)?,
        })
    }

    /// Acquires the lock, waiting as long as another process holds it; the
    /// guard releases it. See [`LockGuard::owner_died`] for a holder that
    /// died.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if this process already holds it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Lock::new()?;
    /// let _guard = lock.acquire()?;
    /// // ... one process at a time here ...
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, None)
    }

    /// Acquires the lock, waiting at most `timeout` (Python's
    /// `acquire(timeout=...)`).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is still held by another process when the
    /// timeout passes; otherwise as [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let lock = mpwasm_guest::Lock::new()?;
    /// let _guard = lock.acquire_timeout(Duration::from_secs(1))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, Some(timeout))
    }

    /// Acquires the lock only if it is free now (Python's
    /// `acquire(block=False)`).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if another process holds it; otherwise as
    /// [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Lock::new()?;
    /// match lock.try_acquire() {
    ///     Ok(_guard) => println!("got it"),
    ///     Err(mpwasm_guest::Error::Timeout) => println!("busy"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, Some(Duration::ZERO))
    }

    /// Releases the lock (Python's `release()`), for a lock whose guard was
    /// `std::mem::forget`-ten. With a guard, dropping it is the release.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] unless this process holds the lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Lock::new()?;
    /// std::mem::forget(lock.acquire()?); // held until release()
    /// lock.release()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.object.release()
    }

    /// Whether some process holds the lock now (Python's `locked()`): a
    /// snapshot, which may be stale by the time it is read. A lock whose
    /// holder died counts as free, since the next acquirer gets it at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Lock::new()?;
    /// assert!(!lock.locked());
    /// let guard = lock.acquire()?;
    /// assert!(lock.locked());
    /// drop(guard);
    /// assert!(!lock.locked());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn locked(&self) -> bool {
        self.object.host.value() != 0
    }
}

/// A re-entrant lock between processes (Python's `multiprocessing.RLock`):
/// the holding process may acquire it again, and must release it as many
/// times; only the holder can release it.
///
/// Same API as [`Lock`], and the same robustness: a holder's death passes
/// the lock on with [`LockGuard::owner_died`] set.
///
/// # Examples
///
/// ```no_run
/// let lock = mpwasm_guest::RLock::new()?;
/// let outer = lock.acquire()?;
/// let inner = lock.acquire()?; // the same process: fine
/// drop(inner);
/// drop(outer); // free for others now
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct RLock {
    object: Object,
}

handle_impls!(RLock);

impl RLock {
    /// A new, unlocked re-entrant lock (Python's `RLock()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::RLock::new()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            object: Object::create(wit::Kind::Rlock)?,
        })
    }

    /// Acquires the lock (once more, if this process holds it), waiting as
    /// long as another process holds it.
    ///
    /// # Errors
    ///
    /// The host's error (a corrupt lock).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::RLock::new()?;
    /// let _guard = lock.acquire()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, None)
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if another process still holds it when the
    /// timeout passes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::RLock::new()?;
    /// let _guard = lock.acquire_timeout(std::time::Duration::from_millis(100))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, Some(timeout))
    }

    /// Acquires the lock only if it is free now or held by this process.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if another process holds it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::RLock::new()?;
    /// let a = lock.try_acquire()?;
    /// let b = lock.try_acquire()?; // re-entrant
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, Some(Duration::ZERO))
    }

    /// Releases one level of the lock, for a guard that was
    /// `std::mem::forget`-ten.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] unless this process holds the lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::RLock::new()?;
    /// std::mem::forget(lock.acquire()?);
    /// lock.release()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.object.release()
    }
}

/// Proof that a [`Semaphore`] or [`BoundedSemaphore`] was acquired once;
/// releases it when dropped.
///
/// # Examples
///
/// ```no_run
/// let slots = mpwasm_guest::Semaphore::new(2)?;
/// {
///     let _slot = slots.acquire()?;
///     assert_eq!(slots.get_value(), 1);
/// }
/// assert_eq!(slots.get_value(), 2);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[must_use = "the semaphore is released as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    object: &'a Object,
}

impl SemaphoreGuard<'_> {
    fn acquire(object: &Object, timeout: Option<Duration>) -> Result<SemaphoreGuard<'_>> {
        object.acquire(timeout)?;
        Ok(SemaphoreGuard { object })
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // Acquired by this guard, so even a bounded semaphore takes it back.
        let _ = self.object.release();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

/// A counter between processes (Python's `multiprocessing.Semaphore`):
/// `acquire` takes one (waiting while it is zero), `release` gives one
/// back. Any process may release.
///
/// # Examples
///
/// ```no_run
/// let downloads = mpwasm_guest::Semaphore::new(3)?; // three at a time
/// let _slot = downloads.acquire()?;
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct Semaphore {
    object: Object,
}

handle_impls!(Semaphore);

impl Semaphore {
    /// A semaphore starting at `value` (Python's `Semaphore(value)`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::Semaphore::new(1)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<Semaphore> {
        Ok(Semaphore {
            object: Object::create(wit::Kind::Semaphore((value, false)))?,
        })
    }

    /// Takes one, waiting as long as the value is zero; the guard gives it
    /// back.
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::Semaphore::new(1)?;
    /// let _guard = s.acquire()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<SemaphoreGuard<'_>> {
        SemaphoreGuard::acquire(&self.object, None)
    }

    /// Takes one, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the value is still zero when it passes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mpwasm_guest::{Error, Semaphore};
    ///
    /// let s = Semaphore::new(0)?;
    /// assert_eq!(s.acquire_timeout(Duration::from_millis(10)).err(), Some(Error::Timeout));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>> {
        SemaphoreGuard::acquire(&self.object, Some(timeout))
    }

    /// Takes one only if the value is above zero now.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is zero.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::Semaphore::new(1)?;
    /// let _a = s.try_acquire()?;
    /// assert!(s.try_acquire().is_err());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<SemaphoreGuard<'_>> {
        SemaphoreGuard::acquire(&self.object, Some(Duration::ZERO))
    }

    /// Gives one back, waking a waiter (Python's `release()`); for a guard
    /// that was `std::mem::forget`-ten, or to signal from another process.
    ///
    /// # Errors
    ///
    /// The host's error (the value would pass `u32::MAX`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ready = mpwasm_guest::Semaphore::new(0)?;
    /// ready.release()?; // a waiter in another process may go on
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.object.release()
    }

    /// The current value (Python's `get_value()`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::Semaphore::new(4)?;
    /// assert_eq!(s.get_value(), 4);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get_value(&self) -> u32 {
        self.object.value()
    }
}

/// A [`Semaphore`] that refuses to be released above its initial value
/// (Python's `multiprocessing.BoundedSemaphore`).
///
/// # Examples
///
/// ```no_run
/// let s = mpwasm_guest::BoundedSemaphore::new(1)?;
/// assert!(s.release().is_err()); // already at its initial value
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct BoundedSemaphore {
    object: Object,
}

handle_impls!(BoundedSemaphore);

impl BoundedSemaphore {
    /// A bounded semaphore starting at, and bounded by, `value` (Python's
    /// `BoundedSemaphore(value)`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::BoundedSemaphore::new(2)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            object: Object::create(wit::Kind::Semaphore((value, true)))?,
        })
    }

    /// Takes one, waiting as long as the value is zero; the guard gives it
    /// back.
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::BoundedSemaphore::new(1)?;
    /// let _guard = s.acquire()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<SemaphoreGuard<'_>> {
        SemaphoreGuard::acquire(&self.object, None)
    }

    /// Takes one, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the value is still zero when it passes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::BoundedSemaphore::new(1)?;
    /// let _guard = s.acquire_timeout(std::time::Duration::from_millis(10))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>> {
        SemaphoreGuard::acquire(&self.object, Some(timeout))
    }

    /// Takes one only if the value is above zero now.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is zero.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::BoundedSemaphore::new(1)?;
    /// let _guard = s.try_acquire()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<SemaphoreGuard<'_>> {
        SemaphoreGuard::acquire(&self.object, Some(Duration::ZERO))
    }

    /// Gives one back, waking a waiter.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if the value is already at its initial value
    /// (Python's `ValueError: Semaphore released too many times`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::BoundedSemaphore::new(1)?;
    /// std::mem::forget(s.acquire()?);
    /// s.release()?;
    /// assert!(s.release().is_err());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.object.release()
    }

    /// The current value.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::BoundedSemaphore::new(3)?;
    /// assert_eq!(s.get_value(), 3);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get_value(&self) -> u32 {
        self.object.value()
    }
}

/// A flag between processes that processes can wait for (Python's
/// `multiprocessing.Event`).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// let go = mpwasm_guest::Event::new()?;
/// assert!(!go.wait_timeout(Duration::from_millis(10))); // not set yet
/// go.set();
/// assert!(go.wait()); // returns at once
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct Event {
    object: Object,
}

handle_impls!(Event);

impl Event {
    /// A new event, not set (Python's `Event()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let e = mpwasm_guest::Event::new()?;
    /// assert!(!e.is_set());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<Event> {
        Ok(Event {
            object: Object::create(wit::Kind::Event)?,
        })
    }

    /// Sets the flag and wakes every process waiting for it.
    ///
    /// # Panics
    ///
    /// Only if the host refuses, which it does not for an event.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let e = mpwasm_guest::Event::new()?;
    /// e.set();
    /// assert!(e.is_set());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set(&self) {
        if let Fast::Event(event) = self.object.fast {
            if event.try_set() {
                return;
            }
        }
        infallible(self.object.host.set(), "to set an event");
    }

    /// Clears the flag: later waits block until the next
    /// [`set`](Self::set).
    ///
    /// # Panics
    ///
    /// Only if the host refuses, which it does not for an event.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let e = mpwasm_guest::Event::new()?;
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn clear(&self) {
        match self.object.fast {
            Fast::Event(event) => event.clear(),
            _ => infallible(self.object.host.clear(), "to clear an event"),
        }
    }

    /// Whether the flag is set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let e = mpwasm_guest::Event::new()?;
    /// assert!(!e.is_set());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn is_set(&self) -> bool {
        match self.object.fast {
            Fast::Event(event) => event.is_set(),
            _ => self.object.host.is_set(),
        }
    }

    /// Waits until the flag is set; returns `true` (Python's `wait()`).
    ///
    /// # Panics
    ///
    /// Only if the host refuses, which it does not for an event.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let e = mpwasm_guest::Event::new()?;
    /// e.set();
    /// assert!(e.wait());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn wait(&self) -> bool {
        self.wait_for(None)
    }

    /// Waits at most `timeout` for the flag: whether it is set (Python's
    /// `wait(timeout)`).
    ///
    /// # Panics
    ///
    /// Only if the host refuses, which it does not for an event.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let e = mpwasm_guest::Event::new()?;
    /// assert!(!e.wait_timeout(std::time::Duration::from_millis(10)));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_for(Some(timeout))
    }

    fn wait_for(&self, timeout: Option<Duration>) -> bool {
        if let Fast::Event(event) = self.object.fast {
            if event.is_set() {
                return true;
            }
            if timeout == Some(Duration::ZERO) {
                return false;
            }
        }
        let set = self.object.host.wait(time::millis(timeout));
        infallible(set, "to wait for an event") != 0
    }
}

/// A condition variable between processes, with its own re-entrant lock
/// (Python's `multiprocessing.Condition()`).
///
/// Acquire it as an [`RLock`]; while holding it, [`wait`](Self::wait)
/// releases it, sleeps until another process calls
/// [`notify`](Self::notify), and takes it back. As everywhere, a wake-up
/// does not promise the awaited state: check it in a loop, or use
/// [`wait_for`](Self::wait_for).
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{Condition, Value};
///
/// fn take(ready: &Condition, items: &Value<u32>) -> mpwasm_guest::Result<()> {
///     let _guard = ready.acquire()?;
///     ready.wait_for(|| items.get() > 0, None)?;
///     items.set(items.get() - 1);
///     Ok(())
/// }
///
/// fn give(ready: &Condition, items: &Value<u32>) -> mpwasm_guest::Result<()> {
///     let _guard = ready.acquire()?;
///     items.set(items.get() + 1);
///     ready.notify()
/// }
/// ```
pub struct Condition {
    object: Object,
}

handle_impls!(Condition);

impl Condition {
    /// A new condition with its own re-entrant lock (Python's
    /// `Condition()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<Condition> {
        Ok(Condition {
            object: Object::create(wit::Kind::Condition)?,
        })
    }

    /// Acquires the condition's lock (re-entrant), as
    /// [`RLock::acquire`].
    ///
    /// # Errors
    ///
    /// The host's error (a corrupt lock).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.acquire()?;
    /// c.notify_all()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, None)
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if another process still holds it when the
    /// timeout passes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.acquire_timeout(std::time::Duration::from_secs(1))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, Some(timeout))
    }

    /// Acquires the lock only if it is free now or held by this process.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if another process holds it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.try_acquire()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<LockGuard<'_>> {
        LockGuard::acquire(&self.object, Some(Duration::ZERO))
    }

    /// Releases one level of the lock, for a guard that was
    /// `std::mem::forget`-ten.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] unless this process holds the lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// std::mem::forget(c.acquire()?);
    /// c.release()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.object.release()
    }

    /// Releases the lock (however many times this process holds it), waits
    /// for a notify, and takes the lock back as many times; `true` once
    /// notified (Python's `wait()`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if this process does not hold the lock;
    /// [`Error::OwnerDied`] if, while this process waited, a holder died
    /// holding the lock: the lock is held again all the same, and the
    /// state it protects may be half-updated.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.acquire()?;
    /// c.wait()?; // until another process calls notify
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn wait(&self) -> Result<bool> {
        Ok(self.object.wait(None)? != 0)
    }

    /// As [`wait`](Self::wait), for at most `timeout`: `false` if the
    /// timeout passed without a notify (the lock is held again either way).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.acquire()?;
    /// let notified = c.wait_timeout(std::time::Duration::from_millis(50))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        Ok(self.object.wait(Some(timeout))? != 0)
    }

    /// Waits until `predicate` returns `true`, checking it first and after
    /// every wake-up, for at most `timeout` in all (`None`: forever).
    /// Returns the predicate's last answer (Python's `wait_for`). The lock
    /// must be held, and is held again when this returns.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let c = mpwasm_guest::Condition::new()?;
    /// let done = mpwasm_guest::Value::new(false)?;
    /// let _guard = c.acquire()?;
    /// if !c.wait_for(|| done.get(), Some(Duration::from_secs(5)))? {
    ///     println!("gave up");
    /// }
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = time::deadline(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            let left = time::remaining(deadline);
            if left == Some(Duration::ZERO) {
                return Ok(false);
            }
            self.object.wait(left)?;
        }
    }

    /// Wakes one process waiting on the condition (Python's `notify()`).
    /// The lock must be held.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if this process does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.acquire()?;
    /// c.notify()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1)
    }

    /// Wakes up to `n` waiting processes (Python's `notify(n)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if this process does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.acquire()?;
    /// c.notify_n(3)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn notify_n(&self, n: u32) -> Result<()> {
        if let Fast::Condition(c) = self.object.fast {
            if c.nobody_to_notify() {
                return Ok(());
            }
        }
        // The kernel reads the count as a signed int: above i32::MAX it
        // would wake just one.
        Ok(self.object.host.notify(n.min(i32::MAX as u32))?)
    }

    /// Wakes every waiting process (Python's `notify_all()`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if this process does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let c = mpwasm_guest::Condition::new()?;
    /// let _guard = c.acquire()?;
    /// c.notify_all()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn notify_all(&self) -> Result<()> {
        self.notify_n(u32::MAX)
    }
}

/// A meeting point for a fixed number of processes (Python's
/// `multiprocessing.Barrier(parties)`): each [`wait`](Self::wait) blocks
/// until `parties` processes are waiting, then all go on.
///
/// The barrier *breaks* (every waiter, and every later `wait`, fails with
/// [`Error::Broken`]) when it is [`abort`](Self::abort)ed, when a timed
/// wait runs out, or when a process holding it dies, so that no party
/// waits forever for one that will never come. [`reset`](Self::reset)
/// mends it.
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{Barrier, Process};
///
/// #[mpwasm_guest::task]
/// fn phase(b: Barrier) {
///     // ... phase 1 ...
///     b.wait().unwrap(); // nobody starts phase 2 before all finished phase 1
///     // ... phase 2 ...
/// }
///
/// #[mpwasm_guest::main]
/// fn main() -> mpwasm_guest::Result<()> {
///     let b = Barrier::new(3)?;
///     let mut ps: Vec<Process> = (0..2).map(|_| Process::new("phase", b.clone())).collect();
///     for p in &mut ps {
///         p.start()?;
///     }
///     b.wait()?; // the third party
///     for p in &mut ps {
///         p.join()?;
///     }
///     Ok(())
/// }
/// ```
pub struct Barrier {
    object: Object,
    parties: u32,
    /// With an action: the task run by the last party to arrive, and the
    /// second barrier every party passes only once the action is done.
    action: Option<(String, Object)>,
    /// The timeout of a [`wait`](Self::wait) (Python's `timeout`).
    timeout: Option<Duration>,
}

impl Barrier {
    /// A barrier for `parties` processes (Python's `Barrier(parties)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if `parties` is 0; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Barrier::new(4)?;
    /// assert_eq!(b.parties(), 4);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(parties: u32) -> Result<Barrier> {
        Barrier::with_options(parties, None, None)
    }

    /// A barrier for `parties` processes with an `action` and a default
    /// `timeout` (Python's `Barrier(parties, action, timeout)`).
    ///
    /// `action` names a `#[task]` of this guest taking no parameters. When
    /// the barrier trips, the last process to arrive runs it, and no party
    /// passes before it has returned. Like CPython's (which pickles the
    /// callable), the action travels with the barrier to other processes,
    /// here by name. If it returns `Err`, or its process dies running it,
    /// the barrier breaks: every party gets [`Error::Broken`], except the
    /// one that ran it, which gets the action's error (Python re-raises the
    /// action's exception there).
    ///
    /// `timeout` is what [`wait`](Self::wait) waits at most (`None`:
    /// forever); [`wait_timeout`](Self::wait_timeout) overrides it.
    ///
    /// A barrier with an action costs a second host wait per pass.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if `parties` is 0 or no task is named `action`;
    /// the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// #[mpwasm_guest::task]
    /// fn tick() {
    ///     println!("everybody is here");
    /// }
    ///
    /// let b = mpwasm_guest::Barrier::with_options(1, Some("tick"), Some(Duration::from_secs(5)))?;
    /// b.wait()?; // prints, then passes
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn with_options(
        parties: u32,
        action: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Barrier> {
        let action = match action {
            Some(name) if !crate::dispatch::has_task(name) => {
                return Err(Error::Other(format!(
                    "no task named {name:?} for the barrier's action"
                )))
            }
            Some(name) => Some((
                name.to_string(),
                Object::create(wit::Kind::Barrier(parties))?,
            )),
            None => None,
        };
        Ok(Barrier {
            object: Object::create(wit::Kind::Barrier(parties))?,
            parties,
            action,
            timeout,
        })
    }

    /// Passes the barrier, waiting at most until `deadline`: the host's
    /// barrier, then, with an action, the action (in the last party) and
    /// the second barrier.
    fn pass(&self, timeout: Option<Duration>) -> Result<u32> {
        let deadline = time::deadline(timeout);
        let index = self.object.wait(timeout)?;
        let Some((name, gate)) = &self.action else {
            return Ok(index);
        };
        if index + 1 == self.parties {
            if let Err(e) = crate::dispatch::run_here(name) {
                // Python: an action that raises breaks the barrier.
                let _ = gate.host.abort();
                let _ = self.object.host.abort();
                return Err(e);
            }
        }
        gate.wait(time::remaining(deadline)).inspect_err(|_| {
            // A party that gives up on the gate breaks the barrier too.
            let _ = self.object.host.abort();
        })?;
        Ok(index)
    }

    /// Waits until `parties` processes wait; returns this process's arrival
    /// index, from 0 to `parties - 1`, different for each (Python's
    /// `wait()`). Waits at most the barrier's default timeout, if it was
    /// given one ([`with_options`](Self::with_options)).
    ///
    /// # Errors
    ///
    /// [`Error::Broken`] if the barrier is or becomes broken while waiting
    /// (including by the default timeout passing); the action's error in
    /// the process that ran it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Barrier::new(1)?;
    /// assert_eq!(b.wait()?, 0); // one party: goes on at once
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn wait(&self) -> Result<u32> {
        self.pass(self.timeout)
    }

    /// As [`wait`](Self::wait), for at most `timeout`. As in Python, a wait
    /// that times out breaks the barrier for every party.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`] if the barrier is or becomes broken, including by
    /// this wait timing out; the action's error in the process that ran it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mpwasm_guest::{Barrier, Error};
    ///
    /// let b = Barrier::new(2)?;
    /// assert_eq!(b.wait_timeout(Duration::from_millis(10)), Err(Error::Broken));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.pass(Some(timeout))
    }

    /// Breaks the barrier: every process waiting, and every later
    /// [`wait`](Self::wait), fails with [`Error::Broken`] until
    /// [`reset`](Self::reset) (Python's `abort()`).
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Barrier, Error};
    ///
    /// let b = Barrier::new(2)?;
    /// b.abort()?;
    /// assert_eq!(b.wait(), Err(Error::Broken));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn abort(&self) -> Result<()> {
        if let Some((_, gate)) = &self.action {
            gate.host.abort()?;
        }
        Ok(self.object.host.abort()?)
    }

    /// Returns the barrier to its initial state: not broken, nobody waiting
    /// (Python's `reset()`).
    ///
    /// As in CPython, processes waiting during a reset get
    /// [`Error::Broken`]; so does a process arriving while the reset is
    /// under way.
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Barrier::new(2)?;
    /// b.abort()?;
    /// b.reset()?; // usable again
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn reset(&self) -> Result<()> {
        if let Some((_, gate)) = &self.action {
            gate.host.reset()?;
        }
        Ok(self.object.host.reset()?)
    }

    /// The number of processes needed to pass (Python's `parties`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Barrier::new(3)?;
    /// assert_eq!(b.parties(), 3);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// The number of processes waiting now (Python's `n_waiting`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Barrier::new(3)?;
    /// assert_eq!(b.n_waiting(), 0);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.object.arrived()
    }

    /// Whether the barrier is broken: aborted, a wait timed out, or a party
    /// died (Python's `broken`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Barrier::new(3)?;
    /// b.abort()?;
    /// assert!(b.broken());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn broken(&self) -> bool {
        self.object.broken() || self.action.as_ref().is_some_and(|(_, gate)| gate.broken())
    }

    /// The default timeout of [`wait`](Self::wait) (Python's `timeout`
    /// argument).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Barrier::new(3)?;
    /// assert_eq!(b.timeout(), None);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl Clone for Barrier {
    /// Another handle to the same barrier.
    fn clone(&self) -> Self {
        Barrier {
            object: self.object.clone(),
            parties: self.parties,
            action: self.action.clone(),
            timeout: self.timeout,
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("handle", &self.object.host.handle())
            .field("parties", &self.parties)
            .field("action", &self.action.as_ref().map(|(name, _)| name))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// On the wire: the token, the kind and the number of parties (which the
/// host keeps no getter for), then the action's name and second barrier,
/// and the default timeout in milliseconds.
impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct Head<'a>(&'a Barrier);
        impl Serialize for Head<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.object.serialize(s, Tag::Barrier, self.0.parties)
            }
        }
        let action = self.action.as_ref().map(|(name, gate)| (name, &gate.host));
        let mut t = serializer.serialize_tuple(3)?;
        t.serialize_element(&Head(self))?;
        t.serialize_element(&action)?;
        t.serialize_element(&time::millis(self.timeout))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Head(Object, u32);
        impl<'de> Deserialize<'de> for Head {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let (object, parties) = Object::deserialize(d, Tag::Barrier)?;
                Ok(Head(object, parties))
            }
        }
        type Wire = (Head, Option<(String, Handle<wit::SyncObject>)>, Option<u64>);
        let (Head(object, parties), action, timeout_ms) = Wire::deserialize(deserializer)?;
        Ok(Barrier {
            object,
            parties,
            action: action.map(|(name, host)| (name, Object::with(host, Tag::Barrier))),
            timeout: timeout_ms.map(Duration::from_millis),
        })
    }
}
