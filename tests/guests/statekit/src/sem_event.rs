//! Semaphore, BoundedSemaphore and Event, whose uncontended operations a
//! guest with a window does in its own code (the host only sleeps and
//! wakes): their semantics across processes, and kill-at-every-step.

use std::time::{Duration, Instant};

use mpwasm_guest::{BoundedSemaphore, Event, Process, Result, Semaphore, Value};

use crate::{arg, PATIENCE};

/// How long a unit or a set flag may wait for a live process to take it,
/// and a free semaphore to be acquired.
const GUARD: Duration = Duration::from_secs(2);

/// Answers each of `rounds` pings on `ping` with a pong on `pong`.
#[mpwasm_guest::task]
fn ponger(ping: Semaphore, pong: Semaphore, rounds: u32) -> Result<()> {
    for _ in 0..rounds {
        std::mem::forget(ping.acquire_timeout(PATIENCE)?);
        pong.release()?;
    }
    Ok(())
}

/// Reports what this process sees of `flag` and `bounded` to main through
/// `seen`, then sets `flag` and waits for main to clear it (on `cleared`).
#[mpwasm_guest::task]
fn peer(flag: Event, cleared: Event, bounded: BoundedSemaphore, seen: Value<i32>) -> Result<()> {
    // 1: main's set is visible here; 2: the bound holds here too.
    let mut bits = i32::from(flag.is_set());
    if bounded.release().is_err() {
        bits |= 2;
    }
    seen.set(bits);
    flag.clear();
    // Main waits for the clear, then sets `cleared`.
    if cleared.wait_timeout(PATIENCE) && !flag.is_set() {
        seen.set(seen.get() | 4);
    }
    Ok(())
}

/// `sem_event [ROUNDS]`: a semaphore ping-pong between two processes
/// (each side asleep in turn, each wake-up a unit given back in guest
/// code), then an event and a bounded semaphore seen from both sides.
pub fn sem_event(rest: &[String]) -> Result<()> {
    let rounds: u32 = arg(rest, 0, 2000);
    let (ping, pong) = (Semaphore::new(0)?, Semaphore::new(0)?);
    let mut p = Process::new("ponger", (&ping, &pong, rounds));
    p.start()?;
    let mut answered = 0;
    for _ in 0..rounds {
        ping.release()?;
        match pong.acquire_timeout(PATIENCE) {
            Ok(unit) => std::mem::forget(unit),
            Err(_) => break,
        }
        answered += 1;
    }
    p.join_timeout(PATIENCE)?;
    println!("pingpong {answered}");
    println!("pingpong_values {} {}", ping.get_value(), pong.get_value());
    println!("ponger_exitcode {:?}", p.exitcode());

    let (flag, cleared) = (Event::new()?, Event::new()?);
    let bounded = BoundedSemaphore::new(1)?;
    let seen = Value::new(0_i32)?;
    println!("unset_wait {}", flag.wait_timeout(Duration::ZERO));
    flag.set();
    println!("set_wait {}", flag.wait_timeout(Duration::ZERO));
    let mut p = Process::new("peer", (&flag, &cleared, &bounded, &seen));
    p.start()?;
    // The peer clears the flag after looking at it.
    let t = Instant::now();
    while (seen.get() == 0 || flag.is_set()) && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("peer_cleared {}", !flag.is_set());
    cleared.set();
    p.join_timeout(PATIENCE)?;
    println!("peer_seen {}", seen.get());
    println!("peer_exitcode {:?}", p.exitcode());
    let unit = bounded.try_acquire().map(std::mem::forget);
    println!("bounded_take {unit:?} {}", bounded.get_value());
    println!("bounded_empty {:?}", bounded.try_acquire().map(|_| ()));
    println!("bounded_back {:?} {:?}", bounded.release(), bounded.release());
    Ok(())
}

/// Forever: under `mutex` (a BoundedSemaphore(1)), bump `a` then `b`; then
/// give a unit to `tokens` and set `flag`.
#[mpwasm_guest::task]
fn sem_hammer(
    mutex: BoundedSemaphore,
    tokens: Semaphore,
    flag: Event,
    ab: (Value<i64>, Value<i64>),
    ready: Event,
) -> Result<()> {
    let (a, b) = ab;
    ready.set();
    loop {
        {
            let _held = mutex.acquire()?;
            a.set(a.get() + 1);
            b.set(b.get() + 1);
        }
        tokens.release()?;
        flag.set();
    }
}

/// Forever: takes every unit of `tokens` (asleep when there is none).
#[mpwasm_guest::task]
fn drain(tokens: Semaphore) -> Result<()> {
    loop {
        std::mem::forget(tokens.acquire()?);
    }
}

/// Forever: waits for `flag` (asleep while it is clear) and clears it.
#[mpwasm_guest::task]
fn watch(flag: Event) -> Result<()> {
    loop {
        flag.wait();
        flag.clear();
    }
}

/// Polls `done` for at most [`GUARD`]; whether it came true.
fn within_guard(done: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while !done() && t.elapsed() < GUARD {
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}

/// `sem_kill_steps ROUNDS`: each round starts two hammers and SIGKILLs
/// them at a moment that varies with the round (holding the semaphore or
/// not, between a unit given back and its wake-up, asleep or not). A
/// `drain` and a `watch` process, alive throughout, sleep on the tokens
/// and the flag. After the kills: the bounded semaphore is never above
/// its bound, is 1 (and `a == b`) unless a hammer died holding it, and can
/// be acquired; every token left is taken and the flag cleared by the
/// sleepers within [`GUARD`] (no sleeper beside a free unit or a set flag).
pub fn sem_kill_steps(rest: &[String]) -> Result<()> {
    let rounds: u32 = arg(rest, 0, 20);
    let mutex = BoundedSemaphore::new(1)?;
    let (tokens, flag) = (Semaphore::new(0)?, Event::new()?);
    let (a, b) = (Value::new(0_i64)?, Value::new(0_i64)?);
    let mut sleepers = [
        Process::new("drain", &tokens),
        Process::new("watch", &flag),
    ];
    for p in &mut sleepers {
        p.start()?;
    }
    let (mut over, mut inconsistent, mut lost, mut hung, mut stuck) = (0, 0, 0, 0, 0);
    for round in 0..rounds {
        crate::kill_two(round, |ready| {
            Process::new("sem_hammer", (&mutex, &tokens, &flag, (&a, &b), ready))
        })?;
        match mutex.get_value() {
            0 => {
                // A hammer died holding it: its unit is gone, as in
                // CPython (a semaphore has no owner to hand it on).
                lost += 1;
                b.set(a.get());
                mutex.release()?;
            }
            1 if a.get() != b.get() => inconsistent += 1,
            1 => {}
            _ => over += 1,
        }
        match mutex.acquire_timeout(GUARD) {
            Ok(_unit) => {}
            Err(_) => hung += 1,
        }
        if !within_guard(|| tokens.get_value() == 0 && !flag.is_set()) {
            stuck += 1;
        }
    }
    for p in &mut sleepers {
        p.kill()?;
        p.join_timeout(PATIENCE)?;
    }
    println!("rounds {rounds}");
    println!("over {over}");
    println!("inconsistent {inconsistent}");
    println!("hung {hung}");
    println!("stuck {stuck}");
    println!("lost_rounds {lost}");
    println!("increments {}", a.get());
    Ok(())
}
