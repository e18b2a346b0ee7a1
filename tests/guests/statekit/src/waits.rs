//! Timed waits return false (or `Timeout`, or `Broken`) after about their
//! timeout, and return at once when another process does the waking.

use std::time::{Duration, Instant};

use mpwasm_guest::{Barrier, Condition, Event, Lock, Process, Result, Semaphore};

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
