//! Benchmark W5 of `BENCH.md`, run by `make bench` as
//! `mpwasm run bench_state.wasm locked|atomic|racy`: two processes each add
//! one to a shared `Value<i32>` 100 000 times (`… locked 1` runs one
//! process: the cost without contention),
//!
//! - `locked`: under the value's lock (Python's
//!   `with v.get_lock(): v.value += 1`); the final value must be 200 000;
//! - `atomic`: with one atomic `fetch_add(1)` (mpwasm only); also exact;
//! - `racy`: `v.set(v.get() + 1)` without the lock (Python's
//!   `v.value += 1`), which loses updates;
//! - `calls`: no workers; main times `CALLS` uncontended `get`s
//!   (`{"ns_per_call": …}`): one atomic helper call on the guest's window
//!   (one guest→host call before the window);
//! - `barrier`, `condition`: main and one worker pass a `Barrier(2)`
//!   `ROUNDS` times, or hand a turn back and forth `ROUNDS` times under a
//!   `Condition` (each waits for its turn with `wait_for`, takes it, hands
//!   it over with `notify`): `{"rounds_per_s": …, "final": …}`, where
//!   `final` is the rounds done (must be `ROUNDS`).
//!
//! The clock runs from the first worker's start to the last one's end: each
//! worker reads the wall clock (the one clock all processes share) after a
//! barrier all processes pass once the workers have started, and again when
//! its increments are done. (Main's own clock would start only when main is
//! woken from that barrier, late on a busy machine.) Prints one line of
//! JSON: `{"ops_per_s": …, "final": …}`; `bench/cpython_bench.py`
//! runs the same workload with CPython's `multiprocessing`.

use std::time::{Instant, SystemTime};

use mpwasm_guest::{Barrier, Condition, Error, Process, RawArray, Result, Value};

/// Processes (by default; a second argument may change it to see what
/// contention costs), and increments per process.
const PROCESSES: u32 = 2;
const INCREMENTS: u32 = 100_000;
/// `calls`: how many `get`s main times.
const CALLS: u32 = 1_000_000;
/// `barrier`, `condition`: how many rounds.
const ROUNDS: u32 = 20_000;

/// Nanoseconds of the wall clock.
fn wall_ns() -> u64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    since.map_or(0, |d| d.as_nanos() as u64)
}

/// One worker: waits for the start, increments the way `how` says, writes
/// when it started and ended at `times[2 * index]` and `times[2 * index +
/// 1]`, waits for the finish.
#[mpwasm_guest::task]
fn increment(
    counter: Value<i32>,
    how: String,
    index: usize,
    times: RawArray<u64>,
    start: Barrier,
    finish: Barrier,
) -> Result<()> {
    start.wait()?;
    let began = wall_ns();
    match how.as_str() {
        "locked" => {
            for _ in 0..INCREMENTS {
                let _held = counter.get_lock().acquire()?;
                counter.set(counter.get() + 1);
            }
        }
        "atomic" => {
            for _ in 0..INCREMENTS {
                counter.fetch_add(1);
            }
        }
        _ => {
            for _ in 0..INCREMENTS {
                counter.set(counter.get() + 1);
            }
        }
    }
    times.set(2 * index, began)?;
    times.set(2 * index + 1, wall_ns())?;
    finish.wait()?;
    Ok(())
}

#[mpwasm_guest::main]
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let how = args.first().cloned().unwrap_or_default();
    let processes = match args.get(1).map(|p| p.parse::<u32>()) {
        None => PROCESSES,
        Some(Ok(p)) if p > 0 => p,
        Some(_) => return Err(Error::Other(format!("not a process count: {:?}", args[1]))),
    };
    let counter = Value::new(0_i32)?;
    if how == "calls" {
        return calls(&counter);
    }
    if how == "barrier" || how == "condition" {
        return rounds(&how);
    }
    if !["locked", "atomic", "racy"].contains(&how.as_str()) {
        return Err(Error::Other(format!(
            "usage: mpwasm run bench_state.wasm locked|atomic|racy [PROCESSES] | calls (got {how:?})"
        )));
    }
    let (start, finish) = (Barrier::new(processes + 1)?, Barrier::new(processes + 1)?);
    let times = RawArray::<u64>::new(2 * processes as usize)?;
    let mut workers: Vec<Process> = (0..processes as usize)
        .map(|i| Process::new("increment", (&counter, &how, i, &times, &start, &finish)))
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    start.wait()?;
    finish.wait()?;
    for w in &mut workers {
        w.join()?;
    }
    let all = times.read(0..2 * processes as usize)?;
    let first = all.iter().step_by(2).min().copied().unwrap_or(0);
    let last = all.iter().skip(1).step_by(2).max().copied().unwrap_or(0);
    let secs = last.saturating_sub(first).max(1) as f64 / 1e9;
    let ops = f64::from(processes * INCREMENTS);
    println!(
        r#"{{"ops_per_s": {}, "final": {}}}"#,
        ops / secs,
        counter.get()
    );
    Ok(())
}

/// The worker of `barrier` and `condition`: passes `barrier` `ROUNDS`
/// times, or takes every odd turn of `turn` under `cond`; `done` counts
/// its rounds.
#[mpwasm_guest::task]
fn partner(how: String, barrier: Barrier, cond: Condition, turn: Value<i32>) -> Result<()> {
    barrier.wait()?;
    for _ in 0..ROUNDS {
        if how == "barrier" {
            barrier.wait()?;
        } else {
            let _held = cond.acquire()?;
            cond.wait_for(|| turn.get() == 1, None)?;
            turn.set(0);
            cond.notify()?;
        }
    }
    Ok(())
}

/// `barrier` or `condition`: rounds per second between main and one
/// partner process.
fn rounds(how: &str) -> Result<()> {
    let (barrier, cond) = (Barrier::new(2)?, Condition::new()?);
    let turn = Value::new(0_i32)?;
    let mut p = Process::new("partner", (how, &barrier, &cond, &turn));
    p.start()?;
    barrier.wait()?;
    let t = Instant::now();
    let mut done = 0;
    for _ in 0..ROUNDS {
        if how == "barrier" {
            barrier.wait()?;
        } else {
            let _held = cond.acquire()?;
            turn.set(1);
            cond.notify()?;
            cond.wait_for(|| turn.get() == 0, None)?;
        }
        done += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    p.join()?;
    println!(
        r#"{{"rounds_per_s": {}, "final": {done}}}"#,
        f64::from(done) / secs
    );
    Ok(())
}

/// `calls`: nanoseconds per uncontended `get`.
fn calls(counter: &Value<i32>) -> Result<()> {
    let t = Instant::now();
    let mut sum = 0_i64;
    for _ in 0..CALLS {
        sum += i64::from(counter.get());
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sum, 0);
    println!(r#"{{"ns_per_call": {}}}"#, secs * 1e9 / f64::from(CALLS));
    Ok(())
}
