//! `_TestLock` and `_TestSemaphore`.
//!
//! Python's bare `acquire()` keeps the lock until `release()`; in Rust an
//! acquire returns a guard, so these ports `forget` the guard where CPython
//! releases by hand.

use mpwasm_guest::{BoundedSemaphore, Error, Event, Lock, RLock, Result, Semaphore, Value};

use crate::check::*;

/// `_TestLock.test_lock`: acquire succeeds and the lock is locked, a
/// second non-blocking acquire fails, release succeeds once and unlocks,
/// and releasing an unlocked lock fails.
#[mpwasm_guest::task]
pub(crate) fn TestLock__test_lock() -> Result<()> {
    let lock = Lock::new()?;
    std::mem::forget(lock.acquire()?);
    check!(lock.locked());
    check!(lock.try_acquire().is_err()); // acquire(False) is False
    check_eq!(lock.release(), Ok(()));
    check!(!lock.locked());
    check!(lock.release().is_err());
    Ok(())
}

/// `_TestLock._test_lock_locked_2processes`: acquires the lock, records
/// `locked()`, and says so.
#[mpwasm_guest::task]
fn lock_locked_in_child(lock: Lock, event: Event, res: Value<i8>) -> Result<()> {
    std::mem::forget(lock.acquire()?);
    res.set(i8::from(lock.locked()));
    event.set();
    Ok(())
}

/// `_TestLock.test_lock_locked_2processes`: a lock another process holds
/// is `locked()` there and here.
#[mpwasm_guest::task]
pub(crate) fn TestLock__test_lock_locked_2processes() -> Result<()> {
    let lock = Lock::new()?;
    let event = Event::new()?;
    let res = Value::new(0_i8)?;
    let mut p = start("lock_locked_in_child", (&lock, &event, &res), false)?;
    check!(event.wait_timeout(PATIENCE));
    check!(lock.locked());
    check!(res.get() != 0);
    join_ok(&mut p)
}

/// `_TestLock.test_rlock`: an RLock is acquired three times by its holder
/// and must be released three times; a fourth release fails.
#[mpwasm_guest::task]
pub(crate) fn TestLock__test_rlock() -> Result<()> {
    let lock = RLock::new()?;
    for _ in 0..3 {
        std::mem::forget(lock.acquire()?);
    }
    for _ in 0..3 {
        check_eq!(lock.release(), Ok(()));
    }
    check!(lock.release().is_err());
    Ok(())
}

/// `_TestLock.test_lock_context`: `with Lock() as locked` holds it, and
/// leaving the block releases it.
#[mpwasm_guest::task]
pub(crate) fn TestLock__test_lock_context() -> Result<()> {
    let lock = Lock::new()?;
    {
        let locked = lock.acquire();
        check!(locked.is_ok());
        check!(lock.try_acquire().is_err());
    }
    check!(lock.try_acquire().is_ok());
    Ok(())
}

/// `_TestLock.test_rlock_context`: `with RLock() as locked` holds it, and
/// leaving the block releases it.
#[mpwasm_guest::task]
pub(crate) fn TestLock__test_rlock_context() -> Result<()> {
    let lock = RLock::new()?;
    {
        let locked = lock.acquire();
        check!(locked.is_ok());
    }
    check!(lock.release().is_err(), "the guard released it");
    Ok(())
}

/// `_TestSemaphore._test_semaphore`: a semaphore of 2 counts down to 0,
/// refuses a non-blocking acquire, and counts back up.
fn semaphore_of_two(
    acquire: &dyn Fn() -> Result<()>,
    try_acquire: &dyn Fn() -> Result<()>,
    release: &dyn Fn() -> Result<()>,
    value: &dyn Fn() -> u32,
) -> Result<()> {
    check_eq!(value(), 2);
    acquire()?;
    check_eq!(value(), 1);
    acquire()?;
    check_eq!(value(), 0);
    check_err!(try_acquire(), Error::Timeout);
    check_eq!(value(), 0);
    check_eq!(release(), Ok(()));
    check_eq!(value(), 1);
    check_eq!(release(), Ok(()));
    check_eq!(value(), 2);
    Ok(())
}

/// `_TestSemaphore.test_semaphore`: as `_test_semaphore`, then a plain
/// semaphore goes past its initial value.
#[mpwasm_guest::task]
pub(crate) fn TestSemaphore__test_semaphore() -> Result<()> {
    let sem = Semaphore::new(2)?;
    semaphore_of_two(
        &|| sem.acquire().map(std::mem::forget),
        &|| sem.try_acquire().map(std::mem::forget),
        &|| sem.release(),
        &|| sem.get_value(),
    )?;
    check_eq!(sem.release(), Ok(()));
    check_eq!(sem.get_value(), 3);
    check_eq!(sem.release(), Ok(()));
    check_eq!(sem.get_value(), 4);
    Ok(())
}

/// `_TestSemaphore.test_bounded_semaphore`: as `_test_semaphore`.
#[mpwasm_guest::task]
pub(crate) fn TestSemaphore__test_bounded_semaphore() -> Result<()> {
    let sem = BoundedSemaphore::new(2)?;
    semaphore_of_two(
        &|| sem.acquire().map(std::mem::forget),
        &|| sem.try_acquire().map(std::mem::forget),
        &|| sem.release(),
        &|| sem.get_value(),
    )
}

/// `_TestSemaphore.test_timeout`: on a semaphore of 0, non-blocking and
/// timed acquires fail.
#[mpwasm_guest::task]
pub(crate) fn TestSemaphore__test_timeout() -> Result<()> {
    let sem = Semaphore::new(0)?;
    check_err!(sem.try_acquire(), Error::Timeout); // acquire(False)
    check_err!(sem.try_acquire(), Error::Timeout); // acquire(False, None)
    check_err!(sem.try_acquire(), Error::Timeout); // acquire(False, TIMEOUT1)
    let (r, took) = timed(|| sem.acquire_timeout(TIMEOUT).map(std::mem::forget));
    check_err!(r, Error::Timeout); // acquire(True, TIMEOUT2)
    check!(took + CLOCK_RES >= TIMEOUT, "{took:?}");
    let r = sem.acquire_timeout(TIMEOUT).map(std::mem::forget);
    check_err!(r, Error::Timeout); // acquire(timeout=TIMEOUT3)
    Ok(())
}
