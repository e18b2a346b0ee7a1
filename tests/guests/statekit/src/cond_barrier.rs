//! Condition and Barrier, whose uncontended operations a guest with a
//! window does in its own code (a Condition's lock as an RLock's, a notify
//! with nobody waiting, a barrier's last arrival; the host only sleeps and
//! wakes): their semantics across processes, and kill-at-every-step.

use std::time::{Duration, Instant};

use mpwasm_guest::{Barrier, Condition, Error, Event, Process, RawValue, Result, Value};

use crate::{arg, PATIENCE};

/// How long a free or owner-died lock may take to acquire, and a barrier
/// whose party died may take to break.
const GUARD: Duration = Duration::from_secs(5);

/// Takes `items` items one by one from `slot` (under `cond`: a non-zero
/// slot is an item, which the consumer zeroes and adds to `sum`), waking the
/// producer after each with a notify.
#[mpwasm_guest::task]
fn consumer(cond: Condition, slot: Value<i64>, sum: Value<i64>, items: u32) -> Result<()> {
    for _ in 0..items {
        let _held = cond.acquire()?;
        if !cond.wait_for(|| slot.get() != 0, Some(PATIENCE))? {
            return Err(Error::Timeout);
        }
        sum.set(sum.get() + slot.get());
        slot.set(0);
        cond.notify()?;
    }
    Ok(())
}

/// Waits on `cond` once (counting itself in `waiting` first), then counts
/// the wake-up in `woken` if it was notified.
#[mpwasm_guest::task]
fn cond_sleeper(cond: Condition, waiting: Value<i32>, woken: Value<i32>) -> Result<()> {
    let _held = cond.acquire()?;
    waiting.set(waiting.get() + 1);
    if cond.wait_timeout(PATIENCE)? {
        woken.set(woken.get() + 1);
    }
    Ok(())
}

/// Takes `cond`'s lock twice (re-entrant), says so on `ready`, and holds it
/// until killed.
#[mpwasm_guest::task]
fn cond_holder(cond: Condition, ready: Event) -> Result<()> {
    let _outer = cond.acquire()?;
    let _inner = cond.acquire()?;
    ready.set();
    std::thread::sleep(PATIENCE);
    Ok(())
}

/// Waits until `n` processes wait on `cond` (as they count themselves in
/// `waiting`), and returns holding its lock.
fn when_waiting(cond: &Condition, waiting: &Value<i32>, n: i32) -> Result<bool> {
    let t = Instant::now();
    while t.elapsed() < PATIENCE {
        let held = cond.acquire()?;
        if waiting.get() >= n {
            std::mem::forget(held);
            return Ok(true);
        }
        drop(held);
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(false)
}

/// `condition [ITEMS]`: a producer–consumer hand-off of `ITEMS` items over
/// a condition between two processes (no item lost or doubled, no lost
/// wake-up); `notify()` with nobody waiting; `notify(2)` of four waiters
/// wakes two, `notify_all` the rest; a holder killed holding the lock twice
/// hands it on `owner_died`, re-entrant and clean afterwards.
pub fn condition(rest: &[String]) -> Result<()> {
    let items: u32 = arg(rest, 0, 2000);
    let cond = Condition::new()?;
    let (slot, sum) = (Value::new(0_i64)?, Value::new(0_i64)?);
    let mut p = Process::new("consumer", (&cond, &slot, &sum, items));
    p.start()?;
    let mut produced = 0_i64;
    let mut stuck = 0;
    for i in 1..=i64::from(items) {
        let _held = cond.acquire()?;
        if !cond.wait_for(|| slot.get() == 0, Some(PATIENCE))? {
            stuck += 1;
            break;
        }
        slot.set(i);
        produced += i;
        cond.notify()?;
    }
    p.join_timeout(PATIENCE)?;
    println!("handoff {} {}", produced, sum.get());
    println!("handoff_stuck {stuck}");
    println!("consumer_exitcode {:?}", p.exitcode());

    // Nobody waits: a notify is a no-op (and still needs the lock).
    println!("notify_unheld {:?}", cond.notify().is_err());
    {
        let _held = cond.acquire()?;
        println!("notify_nobody {:?}", cond.notify_all());
    }

    let (waiting, woken) = (Value::new(0_i32)?, Value::new(0_i32)?);
    let mut sleepers: Vec<Process> = (0..4)
        .map(|_| Process::new("cond_sleeper", (&cond, &waiting, &woken)))
        .collect();
    for s in &mut sleepers {
        s.start()?;
    }
    let all_in = when_waiting(&cond, &waiting, 4)?;
    cond.notify_n(2)?;
    cond.release()?;
    // The two woken ones count themselves; give a wrongly woken third time
    // to show up.
    let t = Instant::now();
    while woken.get() < 2 && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    let after_two = {
        let _held = cond.acquire()?;
        let n = woken.get();
        cond.notify_all()?;
        n
    };
    for s in &mut sleepers {
        s.join_timeout(PATIENCE)?;
    }
    println!("notify_n {all_in} {after_two} {}", woken.get());

    // A holder killed holding the lock twice.
    let ready = Event::new()?;
    let mut holder = Process::new("cond_holder", (&cond, &ready));
    holder.start()?;
    ready.wait_timeout(PATIENCE);
    println!("locked_by_holder {}", cond.try_acquire().is_err());
    holder.kill()?;
    holder.join_timeout(PATIENCE)?;
    let held = cond.acquire_timeout(GUARD);
    let died = held.as_ref().map(|g| g.owner_died()).map_err(Clone::clone);
    // Held: taken again at once (re-entrant), clean.
    let reentered = cond.try_acquire().map(|g| g.owner_died());
    drop(held);
    println!("after_holder_died {died:?} {reentered:?}");
    let clean = cond.acquire_timeout(GUARD).map(|g| g.owner_died());
    println!("after_repair {clean:?}");
    Ok(())
}

/// Passes `barrier` `generations` times; before each pass, counts itself in
/// `arrived`, and after it, counts a pass that came before every party of
/// this generation arrived in `early`; adds its arrival indices to
/// `indices`.
#[mpwasm_guest::task]
fn barrier_rounds_party(
    barrier: Barrier,
    arrived: RawValue<i64>,
    early: RawValue<i64>,
    indices: RawValue<i64>,
    generations: u32,
) -> Result<()> {
    let parties = i64::from(barrier.parties());
    for g in 1..=i64::from(generations) {
        arrived.fetch_add(1);
        let index = barrier.wait_timeout(PATIENCE)?;
        if arrived.get() < parties * g {
            early.fetch_add(1);
        }
        indices.fetch_add(i64::from(index));
    }
    Ok(())
}

/// Waits on `barrier`, reporting the outcome to `out` (`0` passed,
/// `1` broken, `2` anything else).
#[mpwasm_guest::task]
fn barrier_waiter(barrier: Barrier, out: RawValue<i32>) -> Result<()> {
    let r = barrier.wait_timeout(PATIENCE);
    out.set(match r {
        Ok(_) => 0,
        Err(Error::Broken) => 1,
        Err(_) => 2,
    });
    Ok(())
}

/// `barrier [GENERATIONS]`: `PARTIES` processes (main and the others) pass
/// a barrier `GENERATIONS` times: nobody passes before every party of the
/// generation arrived, each generation hands out every index once; then an
/// abort from main wakes a waiting party with `Broken`, and a reset mends it.
pub fn barrier(rest: &[String]) -> Result<()> {
    const PARTIES: u32 = 3;
    let generations: u32 = arg(rest, 0, 500);
    let barrier = Barrier::new(PARTIES)?;
    let (arrived, early, indices) = (RawValue::new(0)?, RawValue::new(0)?, RawValue::new(0)?);
    let mut ps: Vec<Process> = (1..PARTIES)
        .map(|_| {
            Process::new(
                "barrier_rounds_party",
                (&barrier, &arrived, &early, &indices, generations),
            )
        })
        .collect();
    for p in &mut ps {
        p.start()?;
    }
    barrier_rounds_party(barrier.clone(), arrived.clone(), early.clone(), indices.clone(), generations)?;
    for p in &mut ps {
        p.join_timeout(PATIENCE)?;
        println!("party_exitcode {:?}", p.exitcode());
    }
    let per_generation = i64::from(PARTIES * (PARTIES - 1) / 2);
    println!(
        "generations {} {} {} {}",
        arrived.get(),
        early.get(),
        indices.get(),
        per_generation * i64::from(generations)
    );
    println!("n_waiting_after {}", barrier.n_waiting());

    // An abort wakes a waiting party with Broken.
    let pair = Barrier::new(2)?;
    let out = RawValue::new(-1_i32)?;
    let mut w = Process::new("barrier_waiter", (&pair, &out));
    w.start()?;
    let t = Instant::now();
    while pair.n_waiting() < 1 && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    pair.abort()?;
    w.join_timeout(PATIENCE)?;
    println!(
        "abort {} {} {:?}",
        out.get(),
        pair.broken(),
        pair.wait_timeout(PATIENCE)
    );
    pair.reset()?;
    out.set(-1);
    let mut w = Process::new("barrier_waiter", (&pair, &out));
    w.start()?;
    let mine = pair.wait_timeout(PATIENCE);
    w.join_timeout(PATIENCE)?;
    println!(
        "after_reset {} {:?} {} {}",
        out.get(),
        mine.map(|i| i < 2),
        pair.broken(),
        pair.n_waiting()
    );
    Ok(())
}

/// Forever: passes `barrier` (going on when it breaks), then 50 times
/// under `cond` bumps `a`, works a little, notifies and bumps `b`; every
/// 25th time it then waits on `cond` briefly (asleep in the host, the lock
/// released).
#[mpwasm_guest::task]
fn cond_barrier_hammer(
    cond: Condition,
    barrier: Barrier,
    a: Value<i64>,
    b: Value<i64>,
    (ready, repairs): (Event, RawValue<i64>),
) -> Result<()> {
    ready.set();
    loop {
        match barrier.wait_timeout(PATIENCE) {
            Ok(_) => {}
            // The other hammer died (or main broke it): on with the
            // condition alone.
            Err(Error::Broken) => {}
            Err(e) => return Err(e),
        }
        for i in 0..50 {
            let held = cond.acquire()?;
            if held.owner_died() {
                // The other hammer died between its two bumps.
                b.set(a.get());
                repairs.fetch_add(1);
            }
            a.set(a.get() + 1);
            for k in 0..2000 {
                std::hint::black_box(k);
            }
            cond.notify()?;
            b.set(b.get() + 1);
            if i % 25 == 0 {
                match cond.wait_timeout(Duration::from_millis(1)) {
                    Ok(_) => {}
                    // Held again, from a holder that died between its bumps.
                    Err(Error::OwnerDied) => {
                        b.set(a.get());
                        repairs.fetch_add(1);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// `cond_barrier_kill_steps ROUNDS`: each round starts two hammers on a
/// condition and a 2-party barrier, kills one at a moment that varies with
/// the round, then the other, and checks that the condition's lock can be
/// taken within [`GUARD`] (`a == b` unless handed on owner-died), that the
/// barrier is broken (a party died) and, reset, passes again.
pub fn cond_barrier_kill_steps(rest: &[String]) -> Result<()> {
    let rounds: u32 = arg(rest, 0, 20);
    let cond = Condition::new()?;
    let barrier = Barrier::new(2)?;
    let (a, b) = (Value::new(0_i64)?, Value::new(0_i64)?);
    let mut found = crate::Handovers::default();
    let (mut unbroken, mut stuck) = (0, 0);
    let mut hammer_errors = 0;
    let repairs = RawValue::new(0_i64)?;
    let started = Instant::now();
    for round in 0..rounds {
        let codes = crate::kill_two(round, |ready| {
            let args = (&cond, &barrier, &a, &b, (ready, &repairs));
            Process::new("cond_barrier_hammer", args)
        })?;
        // Killed (-9), not ended by an error of their own.
        hammer_errors += codes.iter().filter(|c| **c != Some(-9)).count();
        found.count(cond.acquire_timeout(GUARD), &a, &b);
        // Both parties are dead: the barrier is broken (whether or not one
        // was waiting in it).
        if !barrier.broken() {
            unbroken += 1;
        }
        barrier.reset()?;
        // Reset, it passes with two live parties again.
        let out = RawValue::new(-1_i32)?;
        let mut w = Process::new("barrier_waiter", (&barrier, &out));
        w.start()?;
        let mine = barrier.wait_timeout(GUARD);
        w.join_timeout(PATIENCE)?;
        if mine.is_err() || out.get() != 0 {
            stuck += 1;
        }
        barrier.reset()?;
    }
    println!("rounds {rounds}");
    println!("hung {}", found.hung);
    println!("inconsistent {}", found.inconsistent);
    println!("owner_died_rounds {}", found.died);
    println!("hammer_repairs {}", repairs.get());
    println!("unbroken {unbroken}");
    println!("stuck_after_reset {stuck}");
    println!("hammer_errors {hammer_errors}");
    println!("increments {}", a.get());
    println!("seconds {:.1}", started.elapsed().as_secs_f64());
    let clean = cond.acquire_timeout(GUARD).map(|g| g.owner_died());
    println!("reacquire {clean:?}");
    Ok(())
}
