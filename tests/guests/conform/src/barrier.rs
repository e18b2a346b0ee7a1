//! `_TestBarrier` (itself adapted from CPython's `test/lock_tests.py`).
//!
//! CPython's `run_threads` runs the test function in `N - 1` daemon
//! processes and in the test itself; [`run_parties`] does the same. Its
//! `_DummyList` (a counter in shared memory under a lock) is a
//! [`Counter`]: a shared `Value` whose `append` is an atomic add.

use std::time::Duration;

use mpwasm_guest::{Barrier, Connection, Error, Lock, Queue, Result, SharedMemory, Value};
use serde::{Deserialize, Serialize};

use crate::check::*;

/// The number of parties (`_TestBarrier.N`).
const N: u32 = 5;

/// CPython's `_DummyList`: only `append` and `len`.
#[derive(Clone, Serialize, Deserialize)]
struct Counter(Value<i32>);

impl Counter {
    fn new() -> Result<Counter> {
        Ok(Counter(Value::new(0)?))
    }

    fn append(&self) {
        self.0.fetch_add(1);
    }

    fn len(&self) -> i32 {
        self.0.get()
    }
}

/// CPython's `run_threads(f, args)`: runs the task `target` on `args` in
/// `N - 1` daemon processes and `f` here, then waits for them all (each
/// must exit with 0: an assertion failing in one ends it with 1).
fn run_parties(target: &str, args: impl Serialize, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let mut parties = Vec::new();
    for _ in 0..N - 1 {
        parties.push(start(target, &args, true)?);
    }
    let here = f();
    for p in &mut parties {
        join_ok(p)?;
    }
    here
}

/// `_TestBarrier.multipass`: `n` rounds in lockstep, checked with two
/// counters.
#[mpwasm_guest::task]
fn barrier_multipass(barrier: Barrier, results: (Counter, Counter), n: i32) -> Result<()> {
    let m = barrier.parties() as i32;
    check_eq!(m, N as i32);
    for i in 0..n {
        results.0.append();
        check_eq!(results.1.len(), i * m);
        barrier.wait()?;
        results.1.append();
        check_eq!(results.0.len(), (i + 1) * m);
        barrier.wait()?;
    }
    check_eq!(barrier.n_waiting(), 0);
    check!(!barrier.broken());
    Ok(())
}

/// `_TestBarrier.test_barrier(passes)`.
fn barrier_passes(passes: i32) -> Result<()> {
    let barrier = Barrier::new(N)?;
    let results = (Counter::new()?, Counter::new()?);
    let args = (&barrier, &results, passes);
    run_parties("barrier_multipass", args, || {
        barrier_multipass(barrier.clone(), results.clone(), passes)
    })
}

/// `_TestBarrier.test_barrier`: a barrier is passed in lockstep.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_barrier() -> Result<()> {
    barrier_passes(1)
}

/// `_TestBarrier.test_barrier_10`: ten consecutive rounds.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_barrier_10() -> Result<()> {
    barrier_passes(10)
}

/// `_TestBarrier._test_wait_return_f`.
#[mpwasm_guest::task]
fn barrier_wait_return(barrier: Barrier, queue: Queue<u32>) -> Result<()> {
    queue.put(barrier.wait()?)
}

/// `_TestBarrier.test_wait_return`: exactly one party gets 0 from `wait`.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_wait_return() -> Result<()> {
    let barrier = Barrier::new(N)?;
    let queue = Queue::new()?;
    run_parties("barrier_wait_return", (&barrier, &queue), || {
        barrier_wait_return(barrier.clone(), queue.clone())
    })?;
    let mut results = Vec::new();
    for _ in 0..N {
        results.push(queue.get_timeout(PATIENCE)?);
    }
    check_eq!(results.iter().filter(|&&r| r == 0).count(), 1);
    Ok(())
}

/// `_TestBarrier._test_abort_f`: the middle party aborts after the first
/// round; the others' second wait is broken.
#[mpwasm_guest::task]
fn barrier_abort(barrier: Barrier, results1: Counter, results2: Counter) -> Result<()> {
    let i = barrier.wait()?;
    if i == N / 2 {
        return barrier.abort(); // CPython raises RuntimeError, caught: abort()
    }
    match barrier.wait() {
        Ok(_) => results1.append(),
        Err(Error::Broken) => results2.append(),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// `_TestBarrier.test_abort`: an abort breaks the barrier for everyone
/// waiting on it.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_abort() -> Result<()> {
    let barrier = Barrier::new(N)?;
    let results1 = Counter::new()?;
    let results2 = Counter::new()?;
    run_parties("barrier_abort", (&barrier, &results1, &results2), || {
        barrier_abort(barrier.clone(), results1.clone(), results2.clone())
    })?;
    check_eq!(results1.len(), 0);
    check_eq!(results2.len(), N as i32 - 1);
    check!(barrier.broken());
    Ok(())
}

/// `_TestBarrier._test_reset_f`: the middle party resets the barrier
/// while the others wait in it; then all pass it once more.
#[mpwasm_guest::task]
fn barrier_reset(barrier: Barrier, results: (Counter, Counter, Counter)) -> Result<()> {
    let i = barrier.wait()?;
    if i == N / 2 {
        while barrier.n_waiting() < N - 1 {
            sleep_ms(1);
        }
        barrier.reset()?;
    } else {
        match barrier.wait() {
            Ok(_) => results.0.append(),
            Err(Error::Broken) => results.1.append(),
            Err(e) => return Err(e),
        }
    }
    barrier.wait()?;
    results.2.append();
    Ok(())
}

/// `_TestBarrier.test_reset`: a reset frees the waiting parties (as
/// broken) and leaves the barrier usable.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_reset() -> Result<()> {
    let barrier = Barrier::new(N)?;
    let results = (Counter::new()?, Counter::new()?, Counter::new()?);
    run_parties("barrier_reset", (&barrier, &results), || {
        barrier_reset(barrier.clone(), results.clone())
    })?;
    check_eq!(results.0.len(), 0);
    check_eq!(results.1.len(), N as i32 - 1);
    check_eq!(results.2.len(), N as i32);
    Ok(())
}

/// `_TestBarrier._test_abort_and_reset_f`.
#[mpwasm_guest::task]
fn barrier_abort_and_reset(
    barrier: Barrier,
    barrier2: Barrier,
    results: (Counter, Counter, Counter),
) -> Result<()> {
    let i = barrier.wait()?;
    if i == N / 2 {
        barrier.abort()?;
    } else {
        match barrier.wait() {
            Ok(_) => results.0.append(),
            Err(Error::Broken) => results.1.append(),
            Err(e) => return Err(e),
        }
    }
    // Everyone has left the barrier before the reset, and nobody enters
    // it again before the reset is done.
    if barrier2.wait()? == N / 2 {
        barrier.reset()?;
    }
    barrier2.wait()?;
    barrier.wait()?;
    results.2.append();
    Ok(())
}

/// `_TestBarrier.test_abort_and_reset`: a broken barrier is usable again
/// after a reset.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_abort_and_reset() -> Result<()> {
    let barrier = Barrier::new(N)?;
    let barrier2 = Barrier::new(N)?;
    let results = (Counter::new()?, Counter::new()?, Counter::new()?);
    run_parties(
        "barrier_abort_and_reset",
        (&barrier, &barrier2, &results),
        || barrier_abort_and_reset(barrier.clone(), barrier2.clone(), results.clone()),
    )?;
    check_eq!(results.0.len(), 0);
    check_eq!(results.1.len(), N as i32 - 1);
    check_eq!(results.2.len(), N as i32);
    Ok(())
}

/// `_TestBarrier._test_timeout_f`: the middle party is late for the second
/// round, so every party's timed wait breaks.
#[mpwasm_guest::task]
fn barrier_timeout(barrier: Barrier, results: Counter) -> Result<()> {
    let i = barrier.wait()?;
    if i == N / 2 {
        sleep_ms(1000); // one party is late
    }
    match barrier.wait_timeout(Duration::from_millis(500)) {
        Ok(_) => Ok(()),
        Err(Error::Broken) => {
            results.append();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// `_TestBarrier.test_timeout`: a timed-out wait breaks the barrier for
/// all parties.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_timeout() -> Result<()> {
    let barrier = Barrier::new(N)?;
    let results = Counter::new()?;
    run_parties("barrier_timeout", (&barrier, &results), || {
        barrier_timeout(barrier.clone(), results.clone())
    })?;
    check_eq!(results.len(), barrier.parties() as i32);
    Ok(())
}

/// `_TestBarrier.test_single_thread`: a barrier of one never waits.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_single_thread() -> Result<()> {
    let b = Barrier::new(1)?;
    b.wait()?;
    b.wait()?;
    Ok(())
}

/// `_TestBarrier._test_thousand_f`: `passes` rounds, each sending the
/// round's number under a lock.
#[mpwasm_guest::task]
fn barrier_thousand(barrier: Barrier, passes: u32, conn: Connection, lock: Lock) -> Result<()> {
    for i in 0..passes {
        barrier.wait()?;
        let _guard = lock.acquire()?;
        conn.send(&i)?;
    }
    Ok(())
}

/// `_TestBarrier.test_thousand`: five processes pass a barrier a thousand
/// times; every round's messages come before the next round's.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_thousand() -> Result<()> {
    let passes = 1000_u32;
    let barrier = Barrier::new(N)?;
    let lock = Lock::new()?;
    let (conn, child_conn) = mpwasm_guest::pipe(false)?;
    let mut procs = Vec::new();
    for _ in 0..N {
        procs.push(start(
            "barrier_thousand",
            (&barrier, passes, &child_conn, &lock),
            false,
        )?);
    }
    for i in 0..passes {
        for _ in 0..N {
            check_eq!(conn.recv::<u32>()?, i);
        }
    }
    for p in &mut procs {
        join_ok(p)?;
    }
    Ok(())
}

/// Where the barrier action counts its runs (CPython's `AppendTrue`
/// appends to a list it holds; a task takes no arguments, so it finds its
/// counter by name).
const ACTION_RESULTS: &str = "conform_barrier_action";

/// `AppendTrue(results)()`: counts one run of the action.
#[mpwasm_guest::task]
fn barrier_append_true() -> Result<()> {
    let results = SharedMemory::attach(ACTION_RESULTS)?;
    let n = results.read(0, 1)?[0];
    results.write(0, &[n + 1])
}

/// The action's count of runs.
fn action_runs() -> Result<u8> {
    Ok(SharedMemory::attach(ACTION_RESULTS)?.read(0, 1)?[0])
}

/// `_TestBarrier._test_action_f`: after the barrier, the action has run
/// once.
#[mpwasm_guest::task]
fn barrier_action(barrier: Barrier) -> Result<()> {
    barrier.wait()?;
    check_eq!(action_runs()?, 1);
    Ok(())
}

/// `_TestBarrier.test_action`: the action runs once per pass, before any
/// party goes on.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_action() -> Result<()> {
    let results = SharedMemory::create(ACTION_RESULTS, 1)?;
    let barrier = Barrier::with_options(N, Some("barrier_append_true"), None)?;
    run_parties("barrier_action", &barrier, || {
        barrier_action(barrier.clone())
    })?;
    check_eq!(action_runs()?, 1);
    results.unlink()
}

/// `_TestBarrier._test_default_timeout_f`: the middle party is late for
/// the second round; every other party's wait (with the barrier's default
/// timeout) breaks, and so does the late one's.
#[mpwasm_guest::task]
fn barrier_default_timeout(barrier: Barrier, results: Counter) -> Result<()> {
    let i = barrier.wait_timeout(Duration::from_secs(30))?; // wait(defaultTimeout)
    if i == N / 2 {
        sleep_ms(1000); // later than the default timeout
    }
    match barrier.wait() {
        Ok(_) => Ok(()),
        Err(Error::Broken) => {
            results.append();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// `_TestBarrier.test_default_timeout`: a barrier's own timeout breaks it
/// for all parties.
#[mpwasm_guest::task]
pub(crate) fn TestBarrier__test_default_timeout() -> Result<()> {
    let barrier = Barrier::with_options(N, None, Some(Duration::from_millis(500)))?;
    let results = Counter::new()?;
    run_parties("barrier_default_timeout", (&barrier, &results), || {
        barrier_default_timeout(barrier.clone(), results.clone())
    })?;
    check_eq!(results.len(), barrier.parties() as i32);
    Ok(())
}
