//! Kill-at-every-step: processes hammering a Lock and an RLock (taken and
//! released in guest code through the window, the host only waiting and
//! waking) are SIGKILLed at varied moments, round after round. No lock may
//! hang, and a lock handed on clean must guard consistent state.

use std::time::{Duration, Instant};

use mpwasm_guest::{Event, Lock, Process, RLock, Result, Value};


/// The longest a free or owner-died lock may take to acquire.
const GUARD: Duration = Duration::from_secs(5);

/// Forever: under `lock`, bump `a` then `b` (equal after each critical
/// section; a lock handed on owner-died repairs them first); then take
/// `rlock` twice and release it twice.
#[mpwasm_guest::task]
fn hammer(lock: Lock, rlock: RLock, a: Value<i64>, b: Value<i64>, ready: Event) -> Result<()> {
    ready.set();
    loop {
        {
            let held = lock.acquire()?;
            if held.owner_died() {
                // The other hammer died between its two bumps.
                b.set(a.get());
            }
            a.set(a.get() + 1);
            b.set(b.get() + 1);
        }
        let _outer = rlock.acquire()?;
        let _inner = rlock.acquire()?;
    }
}

/// `lock_kill_steps ROUNDS`: each round starts two hammers, kills one at a
/// moment that varies with the round, then the other, and checks that both
/// locks can be taken within [`GUARD`], with `a == b` unless the lock was
/// handed on owner-died (then it repairs `b`).
pub fn lock_kill_steps(rest: &[String]) -> Result<()> {
    let rounds: u32 = rest.first().and_then(|r| r.parse().ok()).unwrap_or(20);
    let (lock, rlock) = (Lock::new()?, RLock::new()?);
    let (a, b) = (Value::new(0_i64)?, Value::new(0_i64)?);
    let mut found = crate::Handovers::default();
    let started = Instant::now();
    for round in 0..rounds {
        crate::kill_two(round, |ready| {
            Process::new("hammer", (&lock, &rlock, &a, &b, ready))
        })?;
        found.count(lock.acquire_timeout(GUARD), &a, &b);
        if rlock.acquire_timeout(GUARD).is_err() {
            found.hung += 1;
        }
    }
    println!("rounds {rounds}");
    println!("hung {}", found.hung);
    println!("inconsistent {}", found.inconsistent);
    println!("owner_died_rounds {}", found.died);
    println!("increments {}", a.get());
    println!("seconds {:.1}", started.elapsed().as_secs_f64());
    // Afterwards both locks work as before.
    let clean = lock.acquire_timeout(GUARD).map(|g| g.owner_died());
    println!("reacquire {clean:?}");
    Ok(())
}
