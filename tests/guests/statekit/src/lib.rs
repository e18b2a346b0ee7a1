//! Test guest for `tests/shared_state.rs`: shared values, arrays, locks,
//! barriers and manager containers under contention and failure.
//!
//! `mpwasm run statekit.wasm <scenario> [ARGS…]` runs one scenario in `main`,
//! which prints one fact per line (`name value…`, values in `{:?}` form) for
//! the test to check; the `#[task]`s are the targets its processes run.
//! Scenarios do not assert: a wrong value is printed, so the test shows all
//! of them, and every blocking call that could hang on a bug has a timeout.

mod api;
mod bounds;
mod cond_barrier;
mod counters;
mod deaths;
mod kill_steps;
mod sem_event;
mod waits;

use std::time::{Duration, Instant};

use mpwasm_guest::{Error, Event, LockGuard, Process, Result, Value};

/// How long any scenario waits for something that should come at once.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Milliseconds since `t`, with a fraction.
pub(crate) fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The scenario's `i`th argument (after its name), or `default`.
pub(crate) fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[mpwasm_guest::main]
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((scenario, rest)) = args.split_first() else {
        return Err(Error::Other(
            "usage: statekit.wasm <scenario> [args…]".into(),
        ));
    };
    match scenario.as_str() {
        "locked" => counters::locked(rest),
        "atomics" => counters::atomics(rest),
        "owner_died" => deaths::owner_died(),
        "lock_kill_steps" => kill_steps::lock_kill_steps(rest),
        "sem_event" => sem_event::sem_event(rest),
        "sem_kill_steps" => sem_event::sem_kill_steps(rest),
        "barrier_kill" => deaths::barrier_kill(),
        "condition" => cond_barrier::condition(rest),
        "barrier" => cond_barrier::barrier(rest),
        "cond_barrier_kill_steps" => cond_barrier::cond_barrier_kill_steps(rest),
        "manager_kill" => deaths::manager_kill(),
        "condition_kill" => deaths::condition_kill(),
        "timeouts" => waits::timeouts(),
        "wakeups" => waits::wakeups(),
        "notify_one" => waits::notify_one(rest),
        "lock_locked" => api::locked(),
        "barrier_action" => api::barrier_action(),
        "shareable_list" => api::shareable_list(),
        "manager" => api::manager(),
        "array_bounds" => bounds::array_bounds(),
        "forged" => bounds::forged(),
        other => Err(Error::Other(format!("no scenario {other:?}"))),
    }
}

/// One round of a kill-at-every-step scenario: starts two processes made by
/// `make` (each sets the event it is given once running), then SIGKILLs
/// each at a moment 0 to ~3 ms in, different every `round`, and reaps it.
/// Their exit codes.
pub(crate) fn kill_two(round: u32, make: impl Fn(&Event) -> Process) -> Result<Vec<Option<i32>>> {
    let mut victims = Vec::new();
    for _ in 0..2 {
        let ready = Event::new()?;
        let mut p = make(&ready);
        p.start()?;
        ready.wait_timeout(PATIENCE);
        victims.push(p);
    }
    let mut codes = Vec::new();
    for p in &mut victims {
        let spin = Duration::from_micros(u64::from(round * 397 % 3000));
        let t = Instant::now();
        while t.elapsed() < spin {
            std::hint::spin_loop();
        }
        p.kill()?;
        p.join_timeout(PATIENCE)?;
        codes.push(p.exitcode());
    }
    Ok(codes)
}

/// What the lock of kill rounds was found in, once its users were dead.
#[derive(Default)]
pub(crate) struct Handovers {
    /// Not acquired in time.
    pub(crate) hung: u32,
    /// Handed on clean, with `a != b`.
    pub(crate) inconsistent: u32,
    /// Handed on owner-died (then `b` is repaired).
    pub(crate) died: u32,
}

impl Handovers {
    /// Counts one acquire of a lock that guards `a == b`.
    pub(crate) fn count(&mut self, held: Result<LockGuard<'_>>, a: &Value<i64>, b: &Value<i64>) {
        match held {
            Ok(guard) if guard.owner_died() => {
                self.died += 1;
                b.set(a.get());
            }
            Ok(_) if a.get() != b.get() => self.inconsistent += 1,
            Ok(_) => {}
            Err(_) => self.hung += 1,
        }
    }
}
