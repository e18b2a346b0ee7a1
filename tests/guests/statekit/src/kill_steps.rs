//! Kill-at-every-step: processes hammering a Lock and an RLock (taken and
//! released in guest code through the window, the host only waiting and
//! waking) are SIGKILLed at varied moments, round after round. No lock may
//! hang, and a lock handed on clean must guard consistent state.

use std::time::{Duration, Instant};

use mpwasm_guest::{Event, Lock, Process, RLock, Result, Value};

use crate::PATIENCE;

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
    let (mut hung, mut inconsistent, mut died) = (0, 0, 0);
    let started = Instant::now();
    for round in 0..rounds {
        let mut hammers = Vec::new();
        for _ in 0..2 {
            let ready = Event::new()?;
            let mut p = Process::new("hammer", (&lock, &rlock, &a, &b, &ready));
            p.start()?;
            ready.wait_timeout(PATIENCE);
            hammers.push(p);
        }
        for p in &mut hammers {
            // 0 to ~3 ms into the loop, different every round.
            let spin = Duration::from_micros(u64::from(round * 397 % 3000));
            let t = Instant::now();
            while t.elapsed() < spin {
                std::hint::spin_loop();
            }
            p.kill()?;
            p.join_timeout(PATIENCE)?;
        }
        match lock.acquire_timeout(GUARD) {
            Ok(guard) if guard.owner_died() => {
                died += 1;
                b.set(a.get());
            }
            Ok(_) if a.get() != b.get() => inconsistent += 1,
            Ok(_) => {}
            Err(_) => hung += 1,
        }
        match rlock.acquire_timeout(GUARD) {
            Ok(_) => {}
            Err(_) => hung += 1,
        }
    }
    println!("rounds {rounds}");
    println!("hung {hung}");
    println!("inconsistent {inconsistent}");
    println!("owner_died_rounds {died}");
    println!("increments {}", a.get());
    println!("seconds {:.1}", started.elapsed().as_secs_f64());
    // Afterwards both locks work as before.
    let clean = lock.acquire_timeout(GUARD).map(|g| g.owner_died());
    println!("reacquire {clean:?}");
    Ok(())
}
