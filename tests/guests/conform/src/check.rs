//! What the ported tests assert with, and the small helpers CPython's test
//! case classes give their methods (`TimingWrapper`, `join_process`,
//! `assertReachesEventually`, a started daemon `Process`).
//!
//! A failed check returns `Err` from the test method instead of panicking:
//! `main` then ends the children the test left running, so a failure is
//! reported with its line instead of hanging the run on a blocked child.

use std::time::{Duration, Instant};

use mpwasm_guest::{Error, Process, Result, Semaphore};

/// CPython's `TIMEOUT1`, `TIMEOUT2`, `TIMEOUT3` and `DELTA` (0.1 s each when
/// `CHECK_TIMINGS` is off, as in CPython's own runs).
pub const TIMEOUT: Duration = Duration::from_millis(100);

/// CPython's `support.SHORT_TIMEOUT` / `LONG_TIMEOUT` where a test waits
/// for something that should come at once: long enough never to fire on a
/// loaded machine, short enough that a bug fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// CPython's `CLOCK_RES`: the slack a timed wait may come back early by.
pub const CLOCK_RES: Duration = Duration::from_millis(100);

/// The error a failed check returns: where, and what.
pub fn failed(file: &str, line: u32, what: String) -> Error {
    Error::Other(format!("{file}:{line}: {what}"))
}

/// `assertTrue(cond)`: returns an error naming the condition if it is false.
macro_rules! check {
    ($cond:expr) => {{
        let holds: bool = $cond;
        if !holds {
            return Err($crate::check::failed(
                file!(),
                line!(),
                format!("check failed: {}", stringify!($cond)),
            ));
        }
    }};
    ($cond:expr, $($why:tt)+) => {{
        let holds: bool = $cond;
        if !holds {
            return Err($crate::check::failed(
                file!(),
                line!(),
                format!("check failed: {}: {}", stringify!($cond), format!($($why)+)),
            ));
        }
    }};
}

/// `assertEqual(left, right)`: returns an error showing both values if they
/// differ.
macro_rules! check_eq {
    ($left:expr, $right:expr $(,)?) => {
        // A match keeps temporaries in the operands alive (as `assert_eq!`).
        match (&$left, &$right) {
            (left, right) => {
                if !(*left == *right) {
                    return Err($crate::check::failed(
                        file!(),
                        line!(),
                        format!(
                            "{} == {}: left {:?}, right {:?}",
                            stringify!($left),
                            stringify!($right),
                            left,
                            right
                        ),
                    ));
                }
            }
        }
    };
}

/// `assertRaises(...)`: the expression must be an `Err` matching `pattern`.
macro_rules! check_err {
    ($result:expr, $pattern:pat $(,)?) => {{
        let result = $result;
        if !matches!(result, Err($pattern)) {
            return Err($crate::check::failed(
                file!(),
                line!(),
                format!(
                    "{} should fail with {}, got {:?}",
                    stringify!($result),
                    stringify!($pattern),
                    result.map(|_| "Ok(..)")
                ),
            ));
        }
    }};
}

pub(crate) use {check, check_eq, check_err};

/// Sleeps `ms` milliseconds (`time.sleep`).
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Runs `f` and returns its result with the time it took (CPython's
/// `TimingWrapper`).
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Starts `target(args)` as a process, daemon or not.
pub fn start(target: &str, args: impl serde::Serialize, daemon: bool) -> Result<Process> {
    let mut p = Process::new(target, args).with_daemon(daemon);
    p.start()?;
    Ok(p)
}

/// Joins `p` (at most [`PATIENCE`]) and requires exit code 0: what
/// CPython's `join_process` plus an uncaught exception in the child would
/// show.
pub fn join_ok(p: &mut Process) -> Result<()> {
    p.join_timeout(PATIENCE)?;
    match p.exitcode() {
        Some(0) => Ok(()),
        code => Err(Error::Other(format!(
            "process {} ended with exit code {code:?}",
            p.name()
        ))),
    }
}

/// Takes one from `sem` and keeps it (Python's bare `sem.acquire()`, which
/// has no guard to give it back).
pub fn take(sem: &Semaphore) -> Result<()> {
    std::mem::forget(sem.acquire_timeout(PATIENCE)?);
    Ok(())
}

/// CPython's `assertReachesEventually(func, value)`: polls `f` until it
/// gives `value` or [`PATIENCE`] passes, and returns the last value seen.
pub fn eventually<T: PartialEq>(value: T, mut f: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = f();
        if seen == value || Instant::now() > deadline {
            return seen;
        }
        sleep_ms(5);
    }
}

/// Whether `children` holds `p` (CPython's `p in active_children()`:
/// processes are the same when their pids are).
pub fn holds(children: &[Process], p: &Process) -> bool {
    p.pid().is_some() && children.iter().any(|c| c.pid() == p.pid())
}
