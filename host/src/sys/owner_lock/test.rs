#![cfg(test)]

use std::sync::atomic::{AtomicU32, Ordering};

use super::{me, repair, OwnerLock, OWNER_DIED, WAITERS};
use crate::sys::ipc::{Deadline, SharedMap};
use crate::sys::robust::{Acquired, LockError};

fn lock(words: &[AtomicU32; 2], recursive: bool) -> OwnerLock<'_> {
    OwnerLock {
        word: &words[0],
        count: &words[1],
        recursive,
        me: me(),
    }
}

fn now() -> Deadline {
    Deadline::after_ms(Some(0))
}

#[test]
fn the_word_names_the_owner_and_a_lock_is_not_reentrant() {
    let words = [AtomicU32::new(0), AtomicU32::new(0)];
    let l = lock(&words, false);
    assert_eq!(l.lock(now()), Ok(Acquired::Clean));
    assert_eq!(words[0].load(Ordering::SeqCst), me());
    assert!(l.is_locked());
    assert_eq!(l.lock(now()), Err(LockError::Os(libc::EDEADLK)));
    assert_eq!(l.unlock(), Ok(()));
    assert_eq!(l.unlock(), Err(LockError::Os(libc::EPERM)));
    assert!(!l.is_locked());
}

#[test]
fn an_rlock_counts_its_reentries() {
    let words = [AtomicU32::new(0), AtomicU32::new(0)];
    let l = lock(&words, true);
    for _ in 0..3 {
        assert_eq!(l.lock(now()), Ok(Acquired::Clean));
    }
    assert_eq!(words[1].load(Ordering::SeqCst), 3);
    for _ in 0..3 {
        assert!(l.is_locked());
        assert_eq!(l.unlock(), Ok(()));
    }
    assert!(!l.is_locked());
}

#[test]
fn a_lock_owned_by_another_pid_times_out_and_is_repaired_only_for_that_pid() {
    let other = me() + 1;
    let words = [AtomicU32::new(other), AtomicU32::new(1)];
    let l = lock(&words, false);
    assert_eq!(l.lock(now()), Err(LockError::Timeout));
    assert_eq!(
        l.lock(Deadline::after_ms(Some(20))),
        Err(LockError::Timeout)
    );
    assert_eq!(l.unlock(), Err(LockError::Os(libc::EPERM)));
    // The waiter announced itself.
    assert_eq!(words[0].load(Ordering::SeqCst), other | WAITERS);
    assert!(!repair(&words[0], other + 1), "not that pid's lock");
    assert!(repair(&words[0], other));
    assert_eq!(words[0].load(Ordering::SeqCst), OWNER_DIED | WAITERS);
    assert!(!l.is_locked());
    assert_eq!(l.lock(now()), Ok(Acquired::OwnerDied));
    assert_eq!(l.unlock(), Ok(()));
    assert_eq!(l.lock(now()), Ok(Acquired::Clean));
}

#[test]
fn a_sleeping_waiter_in_another_process_is_woken_by_the_repair() {
    // A forked child sleeps on a lock "owned" by a pid that is not its
    // own; the parent repairs the lock and the child gets it, owner-died.
    let page = SharedMap::page("mpwasm-test").unwrap();
    let dead = me() + 1;
    page.word(0).store(dead, Ordering::SeqCst);
    // SAFETY: the child only does atomics and futex calls on the shared
    // page, then `_exit`s.
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        let l = OwnerLock {
            word: page.word(0),
            count: page.word(1),
            recursive: false,
            me: me(),
        };
        let got = l.lock(Deadline::after_ms(Some(10_000)));
        let code = if got == Ok(Acquired::OwnerDied) { 0 } else { 1 };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    // Wait (bounded) until the child sleeps, then repair.
    let start = std::time::Instant::now();
    while page.word(0).load(Ordering::SeqCst) & WAITERS == 0 {
        assert!(start.elapsed().as_secs() < 10, "the child never waited");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(repair(page.word(0), dead));
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_eq!(
        page.word(0).load(Ordering::SeqCst) & super::OWNER,
        (child as u32) & super::OWNER
    );
}

#[test]
fn the_word_names_the_process_the_lock_was_given_without_asking_the_kernel() {
    // A holder passes its pid in once (no `getpid` per call): the lock
    // word is what it was given, and only a lock given the same pid
    // releases it.
    let words = [AtomicU32::new(0), AtomicU32::new(0)];
    let given = OwnerLock {
        me: me() + 1,
        ..lock(&words, false)
    };
    assert_eq!(given.lock(now()), Ok(Acquired::Clean));
    assert_eq!(words[0].load(Ordering::SeqCst), me() + 1);
    assert_eq!(
        lock(&words, false).unlock(),
        Err(LockError::Os(libc::EPERM))
    );
    assert_eq!(given.unlock(), Ok(()));
}
