//! Timed waits return false (or `Timeout`, or `Broken`) after about their
//! timeout, and return at once when another process does the waking.

use std::time::{Duration, Instant};

use mpwasm_guest::{Barrier, Condition, Event, Lock, LockGuard, Process, Result, Semaphore, Value};

use crate::{ms, PATIENCE};

/// The timeout of every timed wait here.
const TIMEOUT: Duration = Duration::from_millis(200);

/// Takes the lock, says so, and holds it until told to let go.
#[mpwasm_guest::task]
fn hold_until(lock: Lock, ready: Event, done: Event) -> Result<()> {
    let _held = lock.acquire()?;
    ready.set();
    done.wait_timeout(PATIENCE);
    Ok(())
}

/// Prints `name result milliseconds` for a wait.
fn timed<T: std::fmt::Debug>(name: &str, wait: impl FnOnce() -> T) {
    let t = Instant::now();
    let r = wait();
    println!("{name} {r:?} {:.1}", ms(t));
}

/// `timeouts`: nobody wakes these waits; each gives up after `TIMEOUT`.
pub fn timeouts() -> Result<()> {
    let event = Event::new()?;
    timed("event", || event.wait_timeout(TIMEOUT));

    let cond = Condition::new()?;
    {
        let _held = cond.acquire()?;
        timed("condition", || cond.wait_timeout(TIMEOUT));
        timed("condition_wait_for", || {
            cond.wait_for(|| false, Some(TIMEOUT))
        });
    }

    let sem = Semaphore::new(0)?;
    timed("semaphore", || sem.acquire_timeout(TIMEOUT).map(|_| ()));

    let lock = Lock::new()?;
    let (ready, done) = (Event::new()?, Event::new()?);
    let mut holder = Process::new("hold_until", (&lock, &ready, &done));
    holder.start()?;
    ready.wait_timeout(PATIENCE);
    timed("lock", || {
        lock.acquire_timeout(TIMEOUT).map(|g| g.owner_died())
    });
    done.set();
    holder.join_timeout(PATIENCE)?;
    println!("holder_exitcode {:?}", holder.exitcode());

    let barrier = Barrier::new(2)?;
    timed("barrier", || barrier.wait_timeout(TIMEOUT));
    println!("barrier_broken {}", barrier.broken());
    // Python: a wait that times out breaks the barrier; the next wait fails
    // at once.
    timed("barrier_after", || barrier.wait_timeout(PATIENCE));
    Ok(())
}

/// After `ms` milliseconds: sets the event, notifies the condition,
/// releases the semaphore, waits on the barrier.
#[mpwasm_guest::task]
fn wake(event: Event, cond: Condition, sem: Semaphore, barrier: Barrier) -> Result<()> {
    std::thread::sleep(Duration::from_millis(100));
    event.set();
    {
        let _held = cond.acquire()?;
        cond.notify_all()?;
    }
    sem.release()?;
    barrier.wait_timeout(PATIENCE)?;
    Ok(())
}

/// `wakeups`: the same waits, woken by another process, return true.
pub fn wakeups() -> Result<()> {
    let event = Event::new()?;
    let cond = Condition::new()?;
    let sem = Semaphore::new(0)?;
    let barrier = Barrier::new(2)?;
    let held = cond.acquire()?;
    let mut waker = Process::new("wake", (&event, &cond, &sem, &barrier));
    waker.start()?;
    timed("event", || event.wait_timeout(PATIENCE));
    timed("condition", || cond.wait_timeout(PATIENCE));
    drop(held);
    timed("semaphore", || sem.acquire_timeout(PATIENCE).map(|_| ()));
    timed("barrier", || barrier.wait_timeout(PATIENCE));
    waker.join_timeout(PATIENCE)?;
    println!("waker_exitcode {:?}", waker.exitcode());
    Ok(())
}

/// The state `notify_one` shares, guarded by its condition's lock:
/// processes waiting this round, the round's phase (1 while the single
/// notify is the only one sent), and waiters woken in phase 1.
type NotifyState = (Value<i32>, Value<i32>, Value<i32>);

/// Waits on `cond` once per round and counts a wake-up seen in phase 1.
#[mpwasm_guest::task]
fn notify_waiter(cond: Condition, state: NotifyState, end: Barrier, rounds: u32) -> Result<()> {
    let (waiting, phase, woken) = state;
    for _ in 0..rounds {
        let held = cond.acquire()?;
        waiting.set(waiting.get() + 1);
        cond.wait_timeout(PATIENCE)?;
        if phase.get() == 1 {
            woken.set(woken.get() + 1);
        }
        drop(held);
        end.wait_timeout(PATIENCE)?;
    }
    Ok(())
}

/// Takes `cond`'s lock over and over until `ready` holds under it, and
/// returns holding it; `None` after `PATIENCE`. Without a pause between
/// tries, the caller is often blocked on the lock when a waiter lets it go
/// in `wait`, and gets it before that waiter is asleep: the window a
/// notify must not wake two waiters in.
fn lock_when<'c>(cond: &'c Condition, ready: impl Fn() -> bool) -> Result<Option<LockGuard<'c>>> {
    let t = Instant::now();
    while t.elapsed() < PATIENCE {
        let held = cond.acquire()?;
        if ready() {
            return Ok(Some(held));
        }
    }
    Ok(None)
}

/// `notify_one [ROUNDS]`: two processes wait on a condition; `notify()` as
/// soon as both are enlisted must wake exactly one, even when the second has
/// released the lock but not yet gone to sleep (Python's `test_notify`).
/// Prints `woken_per_round [..]`: how many woke to the single notify.
pub fn notify_one(args: &[String]) -> Result<()> {
    let rounds: u32 = crate::arg(args, 0, 20);
    let settle = Duration::from_millis(crate::arg(args, 1, 0));
    let cond = Condition::new()?;
    let state: NotifyState = (Value::new(0)?, Value::new(0)?, Value::new(0)?);
    let (waiting, phase, woken) = state.clone();
    let end = Barrier::new(3)?;
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let mut p = Process::new("notify_waiter", (&cond, &state, &end, rounds));
        p.start()?;
        waiters.push(p);
    }
    let mut per_round = Vec::new();
    for _ in 0..rounds {
        if let Some(_held) = lock_when(&cond, || waiting.get() == 2)? {
            std::thread::sleep(settle);
            phase.set(1);
            cond.notify()?;
        }
        drop(lock_when(&cond, || woken.get() >= 1)?);
        // Room for a second, wrongly woken waiter to show up.
        std::thread::sleep(Duration::from_millis(30));
        {
            let _held = cond.acquire()?;
            per_round.push(woken.get());
            phase.set(2);
            waiting.set(0);
            woken.set(0);
            cond.notify_all()?;
        }
        end.wait_timeout(PATIENCE)?;
    }
    println!("woken_per_round {per_round:?}");
    for mut p in waiters {
        p.join_timeout(PATIENCE)?;
        println!("waiter_exitcode {:?}", p.exitcode());
    }
    Ok(())
}
