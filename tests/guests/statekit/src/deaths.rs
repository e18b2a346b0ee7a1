//! A process killed with SIGKILL while it holds shared state: the lock it
//! held, the barrier it waited on, the manager dict it was filling.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mpwasm_guest::{
    Barrier, Condition, DictProxy, Event, Lock, Manager, Process, Queue, Result, Value,
};

use crate::{ms, PATIENCE};

/// The generous guard on anything that should take milliseconds.
const GUARD: Duration = Duration::from_secs(2);

/// Milliseconds since the Unix epoch: a clock all processes share.
fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Takes the lock, says so, and holds it until killed.
#[mpwasm_guest::task]
pub(crate) fn hold_lock(lock: Lock, ready: Event) -> Result<()> {
    let _held = lock.acquire()?;
    ready.set();
    std::thread::sleep(2 * PATIENCE);
    Ok(())
}

/// Says it is about to block on the lock, then reports how the acquire
/// ended and when (wall clock).
#[mpwasm_guest::task]
fn wait_lock(lock: Lock, waiting: Event, out: Queue<(String, f64)>) -> Result<()> {
    waiting.set();
    let got = lock.acquire_timeout(PATIENCE);
    let at = wall_ms();
    let what = match &got {
        Ok(guard) => format!("owner_died={}", guard.owner_died()),
        Err(e) => format!("{e:?}"),
    };
    drop(got);
    out.put((what, at))
}

/// `owner_died`: kill a lock's holder; the next acquirer gets the lock,
/// marked owner-died, at once; afterwards the lock works as before.
pub fn owner_died() -> Result<()> {
    let lock = Lock::new()?;
    let ready = Event::new()?;
    let mut holder = Process::new("hold_lock", (&lock, &ready));
    holder.start()?;
    println!("ready {}", ready.wait_timeout(PATIENCE));
    println!("busy {:?}", lock.try_acquire().err());

    let t = Instant::now();
    holder.kill()?;
    match lock.acquire_timeout(GUARD) {
        Ok(guard) => {
            let took = ms(t);
            println!("owner_died {}", guard.owner_died());
            println!("kill_to_acquire_ms {took:.3}");
        }
        Err(e) => println!("acquire_error {e:?} after {:.3} ms", ms(t)),
    }
    holder.join_timeout(PATIENCE)?;
    println!("holder_exitcode {:?}", holder.exitcode());
    let again = lock.acquire_timeout(GUARD).map(|g| g.owner_died());
    println!("reacquire_owner_died {again:?}");

    blocked_waiter(&lock)
}

/// The same with the next acquirer already blocked in `acquire` (in
/// another process) when the holder dies.
fn blocked_waiter(lock: &Lock) -> Result<()> {
    let (ready, waiting) = (Event::new()?, Event::new()?);
    let out = Queue::<(String, f64)>::new()?;
    let mut holder = Process::new("hold_lock", (lock, &ready));
    holder.start()?;
    ready.wait_timeout(PATIENCE);
    let mut waiter = Process::new("wait_lock", (lock, &waiting, &out));
    waiter.start()?;
    waiting.wait_timeout(PATIENCE);
    // Let the waiter get from `set` into the kernel's wait.
    std::thread::sleep(Duration::from_millis(100));
    let killed_at = wall_ms();
    holder.kill()?;
    match out.get_timeout(GUARD) {
        Ok((what, at)) => {
            println!("blocked_waiter {what}");
            println!("blocked_kill_to_acquire_ms {:.3}", at - killed_at);
        }
        Err(e) => println!("blocked_waiter_error {e:?}"),
    }
    holder.join_timeout(PATIENCE)?;
    waiter.join_timeout(PATIENCE)?;
    println!(
        "blocked_exitcodes {:?} {:?}",
        holder.exitcode(),
        waiter.exitcode()
    );
    Ok(())
}

/// Waits on the barrier; reports how the wait ended and when.
#[mpwasm_guest::task]
fn barrier_party(barrier: Barrier, out: Queue<(String, f64)>) -> Result<()> {
    let r = barrier.wait_timeout(PATIENCE);
    out.put((format!("{r:?}"), wall_ms()))
}

/// `barrier_kill`: of a 3-party barrier's two waiting parties, one is
/// killed: the other gets `Broken` at once instead of waiting for ever, and
/// so does anyone who waits later, until `reset` (after which three parties
/// pass it).
pub fn barrier_kill() -> Result<()> {
    let barrier = Barrier::new(3)?;
    let out = Queue::<(String, f64)>::new()?;
    let mut survivor = Process::new("barrier_party", (&barrier, &out));
    let mut victim = Process::new("barrier_party", (&barrier, &out));
    survivor.start()?;
    victim.start()?;
    let t = Instant::now();
    while barrier.n_waiting() < 2 && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("n_waiting {}", barrier.n_waiting());
    let killed_at = wall_ms();
    victim.kill()?;
    match out.get_timeout(GUARD) {
        Ok((what, at)) => {
            println!("survivor {what}");
            println!("kill_to_broken_ms {:.3}", at - killed_at);
        }
        Err(e) => println!("survivor_error {e:?}"),
    }
    println!("broken {}", barrier.broken());
    // Broken for anyone who comes later too: at once, not after a timeout.
    let t = Instant::now();
    println!(
        "late_wait {:?} {:.3}",
        barrier.wait_timeout(PATIENCE),
        ms(t)
    );
    survivor.join_timeout(PATIENCE)?;
    victim.join_timeout(PATIENCE)?;
    println!(
        "exitcodes {:?} {:?}",
        survivor.exitcode(),
        victim.exitcode()
    );

    barrier.reset()?;
    println!("reset_broken {}", barrier.broken());
    let mut parties: Vec<Process> = (0..2)
        .map(|_| Process::new("barrier_party", (&barrier, &out)))
        .collect();
    for p in &mut parties {
        p.start()?;
    }
    let mine = barrier.wait_timeout(PATIENCE);
    let mut indices = vec![format!("{mine:?}")];
    for _ in 0..2 {
        indices.push(
            out.get_timeout(PATIENCE)
                .map_or_else(|e| format!("{e:?}"), |r| r.0),
        );
    }
    indices.sort();
    println!("after_reset {indices:?}");
    for p in &mut parties {
        p.join_timeout(PATIENCE)?;
    }
    Ok(())
}

/// Fills the dict with `i -> "v{i}"` until killed.
#[mpwasm_guest::task]
fn fill_dict(dict: DictProxy<u32, String>) -> Result<()> {
    for i in 0.. {
        dict.insert(&i, &format!("v{i}"))?;
    }
    Ok(())
}

/// `manager_kill`: a process filling a manager dict is killed mid-way; the
/// dict keeps every entry it had and serves the next process as before.
pub fn manager_kill() -> Result<()> {
    let manager = Manager::new()?;
    let dict = manager.dict::<u32, String>()?;
    dict.insert(&u32::MAX, &"from main".to_string())?;
    let mut filler = Process::new("fill_dict", &dict);
    filler.start()?;
    let t = Instant::now();
    // 500 filled, besides main's own entry.
    while dict.len()? < 501 && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    filler.kill()?;
    filler.join_timeout(PATIENCE)?;
    println!("filler_exitcode {:?}", filler.exitcode());

    let items = dict.items()?;
    let filled = items.len() - 1;
    println!("enough {}", filled >= 500);
    let consistent = items.iter().all(|(k, v)| match *k {
        u32::MAX => v == "from main",
        k => (k as usize) < filled && *v == format!("v{k}"),
    });
    println!("consistent {consistent}");
    println!("len_matches {}", dict.len()? == items.len());
    println!("main_entry {:?}", dict.get(&u32::MAX));

    // Still serves anyone: a new process, then main.
    let mut again = Process::new("fill_dict", &dict);
    again.start()?;
    let before = dict.len()?;
    let t = Instant::now();
    while dict.len()? < before + 100 && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    again.kill()?;
    again.join_timeout(PATIENCE)?;
    dict.insert(&7, &"changed".to_string())?;
    println!("after {:?}", dict.get(&7));
    Ok(())
}

/// Enlists on `cond` (counting itself in `waiting`) and waits up to
/// `timeout_ms`; then prints nothing and stores 1 in `woken` if notified,
/// 2 if the wait timed out.
#[mpwasm_guest::task]
fn cond_waiter(
    cond: Condition,
    waiting: Value<i32>,
    timeout_ms: u64,
    woken: Value<i32>,
) -> Result<()> {
    let _held = cond.acquire()?;
    waiting.set(waiting.get() + 1);
    let notified = cond.wait_timeout(Duration::from_millis(timeout_ms))?;
    woken.set(if notified { 1 } else { 2 });
    Ok(())
}

/// Starts a `cond_waiter` and returns once it is enlisted (`waiting` == `n`).
fn enlist(cond: &Condition, waiting: &Value<i32>, n: i32, woken: &Value<i32>) -> Result<Process> {
    let timeout_ms = GUARD.as_millis() as u64 * 2;
    let mut p = Process::new("cond_waiter", (cond, waiting, timeout_ms, woken));
    p.start()?;
    let t = Instant::now();
    while t.elapsed() < PATIENCE {
        let _held = cond.acquire()?;
        if waiting.get() == n {
            break;
        }
    }
    Ok(p)
}

/// `condition_kill`: the older of two condition waiters is killed; a
/// `notify()` sent right after the kill (before or after the parent reaps
/// it) and one sent after the reap still reach the live waiter.
pub fn condition_kill() -> Result<()> {
    for (case, reap_first) in [("unreaped", false), ("reaped", true)] {
        let cond = Condition::new()?;
        let waiting = Value::new(0)?;
        let (dead_woken, live_woken) = (Value::new(0)?, Value::new(0)?);
        let mut dead = enlist(&cond, &waiting, 1, &dead_woken)?;
        let mut live = enlist(&cond, &waiting, 2, &live_woken)?;
        let t = Instant::now();
        dead.kill()?;
        if reap_first {
            dead.join_timeout(PATIENCE)?;
        }
        {
            let _held = cond.acquire()?;
            cond.notify()?;
        }
        live.join_timeout(PATIENCE)?;
        dead.join_timeout(PATIENCE)?;
        println!("{case}_live_woken {} {:.1}", live_woken.get(), ms(t));
        println!(
            "{case}_exitcodes {:?} {:?}",
            dead.exitcode(),
            live.exitcode()
        );
    }
    Ok(())
}
