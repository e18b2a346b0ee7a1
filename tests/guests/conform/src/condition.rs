//! `_TestCondition` and `_TestEvent`.
//!
//! CPython's condition tests wait with one process and one thread per
//! round; a guest has no threads, so each thread is a second process here.

use std::time::{Duration, Instant};

use mpwasm_guest::{Condition, Event, Process, Result, Semaphore, Value};

use crate::check::*;

/// `_TestCondition.f`: under the condition's lock, says it sleeps, waits
/// (at most `timeout_ms` if given), says it woke.
#[mpwasm_guest::task]
fn condition_f(
    cond: Condition,
    sleeping: Semaphore,
    woken: Semaphore,
    timeout_ms: Option<u64>,
) -> Result<()> {
    let guard = cond.acquire()?;
    sleeping.release()?;
    match timeout_ms {
        Some(ms) => cond.wait_timeout(Duration::from_millis(ms))?,
        None => cond.wait()?,
    };
    woken.release()?;
    drop(guard);
    Ok(())
}

/// Starts `n` daemon processes running [`condition_f`].
fn sleepers(
    n: usize,
    cond: &Condition,
    sleeping: &Semaphore,
    woken: &Semaphore,
    timeout_ms: Option<u64>,
) -> Result<Vec<Process>> {
    (0..n)
        .map(|_| start("condition_f", (cond, sleeping, woken, timeout_ms), true))
        .collect()
}

/// `cond.acquire(); cond.notify(n); cond.release()`.
fn notify(cond: &Condition, n: u32) -> Result<()> {
    let _guard = cond.acquire()?;
    cond.notify_n(n)
}

/// `_TestCondition.test_notify`: each notify wakes exactly one sleeper.
#[mpwasm_guest::task]
pub(crate) fn TestCondition__test_notify() -> Result<()> {
    let cond = Condition::new()?;
    let sleeping = Semaphore::new(0)?;
    let woken = Semaphore::new(0)?;
    let mut workers = sleepers(2, &cond, &sleeping, &woken, None)?;
    take(&sleeping)?;
    take(&sleeping)?;
    check_eq!(eventually(0, || woken.get_value()), 0);

    notify(&cond, 1)?;
    check_eq!(eventually(1, || woken.get_value()), 1);
    notify(&cond, 1)?;
    check_eq!(eventually(2, || woken.get_value()), 2);
    for p in &mut workers {
        join_ok(p)?;
    }
    Ok(())
}

/// `_TestCondition.test_notify_all`: six timed sleepers all time out;
/// six more are all woken by one `notify_all`.
#[mpwasm_guest::task]
pub(crate) fn TestCondition__test_notify_all() -> Result<()> {
    let cond = Condition::new()?;
    let sleeping = Semaphore::new(0)?;
    let woken = Semaphore::new(0)?;
    let mut workers = sleepers(6, &cond, &sleeping, &woken, Some(100))?;
    for _ in 0..6 {
        take(&sleeping)?;
    }
    for _ in 0..6 {
        take(&woken)?;
    }
    check_eq!(woken.get_value(), 0);

    workers.extend(sleepers(6, &cond, &sleeping, &woken, None)?);
    for _ in 0..6 {
        take(&sleeping)?;
    }
    sleep_ms(100);
    check_eq!(woken.get_value(), 0);
    {
        let _guard = cond.acquire()?;
        cond.notify_all()?;
    }
    for _ in 0..6 {
        take(&woken)?;
    }
    check_eq!(woken.get_value(), 0);
    for p in &mut workers {
        join_ok(p)?;
    }
    Ok(())
}

/// `_TestCondition.test_notify_n`: `notify(2)` wakes two, `notify(4)` the
/// other four, `notify(3)` nobody more.
#[mpwasm_guest::task]
pub(crate) fn TestCondition__test_notify_n() -> Result<()> {
    let cond = Condition::new()?;
    let sleeping = Semaphore::new(0)?;
    let woken = Semaphore::new(0)?;
    let mut workers = sleepers(6, &cond, &sleeping, &woken, None)?;
    for _ in 0..6 {
        take(&sleeping)?;
    }
    sleep_ms(100);
    check_eq!(woken.get_value(), 0);
    notify(&cond, 2)?;
    check_eq!(eventually(2, || woken.get_value()), 2);
    notify(&cond, 4)?;
    check_eq!(eventually(6, || woken.get_value()), 6);
    notify(&cond, 3)?;
    check_eq!(woken.get_value(), 6);
    for p in &mut workers {
        join_ok(p)?;
    }
    Ok(())
}

/// `_TestCondition.test_timeout`: a timed wait nobody notifies returns
/// false.
#[mpwasm_guest::task]
pub(crate) fn TestCondition__test_timeout() -> Result<()> {
    let cond = Condition::new()?;
    let guard = cond.acquire()?;
    let (res, took) = timed(|| cond.wait_timeout(TIMEOUT));
    drop(guard);
    check_eq!(res?, false);
    check!(took + CLOCK_RES >= TIMEOUT, "{took:?}");
    Ok(())
}

/// `_TestCondition._test_waitfor_f`: sets the state to 0, notifies, and
/// waits for it to reach 4.
#[mpwasm_guest::task]
fn condition_waitfor(cond: Condition, state: Value<i32>) -> Result<()> {
    let _guard = cond.acquire()?;
    state.set(0);
    cond.notify()?;
    let result = cond.wait_for(|| state.get() == 4, None)?;
    check!(result && state.get() == 4);
    Ok(())
}

/// `_TestCondition.test_waitfor`: `wait_for` in two processes over a
/// shared value.
#[mpwasm_guest::task]
pub(crate) fn TestCondition__test_waitfor() -> Result<()> {
    let cond = Condition::new()?;
    let state = Value::new(-1_i32)?;
    let mut p = start("condition_waitfor", (&cond, &state), true)?;
    {
        let _guard = cond.acquire()?;
        let result = cond.wait_for(|| state.get() == 0, None)?;
        check!(result);
        check_eq!(state.get(), 0);
    }
    for _ in 0..4 {
        sleep_ms(10);
        let _guard = cond.acquire()?;
        state.set(state.get() + 1);
        cond.notify()?;
    }
    p.join_timeout(PATIENCE)?;
    check_eq!(p.exitcode(), Some(0));
    Ok(())
}

/// `_TestCondition._test_waitfor_timeout_f`: a `wait_for` of 100 ms on a
/// state that never comes returns false after about that long.
#[mpwasm_guest::task]
fn condition_waitfor_timeout(
    cond: Condition,
    state: Value<i32>,
    success: Value<i32>,
    sem: Semaphore,
) -> Result<()> {
    sem.release()?;
    let _guard = cond.acquire()?;
    let expected = Duration::from_millis(100);
    let t = Instant::now();
    let result = cond.wait_for(|| state.get() == 4, Some(expected))?;
    let dt = t.elapsed();
    if !result && expected.saturating_sub(CLOCK_RES) <= dt {
        success.set(1);
    }
    Ok(())
}

/// `_TestCondition.test_waitfor_timeout`: `wait_for` gives up at its
/// timeout while the state changes three times short of the goal.
#[mpwasm_guest::task]
pub(crate) fn TestCondition__test_waitfor_timeout() -> Result<()> {
    let cond = Condition::new()?;
    let state = Value::new(0_i32)?;
    let success = Value::new(0_i32)?;
    let sem = Semaphore::new(0)?;
    let mut p = start(
        "condition_waitfor_timeout",
        (&cond, &state, &success, &sem),
        true,
    )?;
    take(&sem)?;
    for _ in 0..3 {
        sleep_ms(10);
        let _guard = cond.acquire()?;
        state.set(state.get() + 1);
        cond.notify()?;
    }
    p.join_timeout(PATIENCE)?;
    check_eq!(success.get(), 1);
    Ok(())
}

/// `_TestCondition._test_wait_result`: notifies once.
#[mpwasm_guest::task]
fn condition_notify_once(c: Condition) -> Result<()> {
    let _guard = c.acquire()?;
    c.notify()
}

/// `_TestCondition.test_wait_result`: a wait returns false on timeout and
/// true when notified. (CPython's second half interrupts the wait with
/// SIGINT; guests have no signal handlers.)
#[mpwasm_guest::task]
pub(crate) fn TestCondition__test_wait_result() -> Result<()> {
    let c = Condition::new()?;
    let _guard = c.acquire()?;
    check_eq!(c.wait_timeout(Duration::ZERO)?, false);
    check_eq!(c.wait_timeout(TIMEOUT)?, false);
    let mut p = start("condition_notify_once", &c, false)?;
    check_eq!(c.wait_timeout(Duration::from_secs(60))?, true);
    join_ok(&mut p)
}

/// `_TestEvent._test_event`: sets the event after a pause.
#[mpwasm_guest::task]
fn event_set_later(event: Event) {
    sleep_ms(100);
    event.set();
}

/// `_TestEvent.test_event`: `wait` returns the flag; set, clear and a set
/// from another process.
#[mpwasm_guest::task]
pub(crate) fn TestEvent__test_event() -> Result<()> {
    let event = Event::new()?;
    check_eq!(event.is_set(), false);
    check_eq!(event.wait_timeout(Duration::ZERO), false);
    let (r, took) = timed(|| event.wait_timeout(TIMEOUT));
    check_eq!(r, false);
    check!(took + CLOCK_RES >= TIMEOUT, "{took:?}");

    event.set();
    check_eq!(event.is_set(), true);
    check_eq!(event.wait(), true);
    check_eq!(event.wait_timeout(TIMEOUT), true);
    event.clear();

    let mut p = start("event_set_later", &event, true)?;
    check_eq!(event.wait(), true);
    join_ok(&mut p)
}
