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
//!   (one guest→host call before the window).
//!
//! The clock runs from a barrier all three processes pass once the workers
//! have started to a second barrier they pass when both are done. Prints one
//! line of JSON: `{"ops_per_s": …, "final": …}`; `bench/cpython_bench.py`
//! runs the same workload with CPython's `multiprocessing`.

use std::time::Instant;

use mpwasm_guest::{Barrier, Error, Process, Result, Value};

/// Processes (by default; a second argument may change it to see what
/// contention costs), and increments per process.
const PROCESSES: u32 = 2;
const INCREMENTS: u32 = 100_000;
/// `calls`: how many `get`s main times.
const CALLS: u32 = 1_000_000;

/// One worker: waits for the start, increments the way `how` says, waits
/// for the finish.
#[mpwasm_guest::task]
fn increment(counter: Value<i32>, how: String, start: Barrier, finish: Barrier) -> Result<()> {
    start.wait()?;
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
    if !["locked", "atomic", "racy"].contains(&how.as_str()) {
        return Err(Error::Other(format!(
            "usage: mpwasm run bench_state.wasm locked|atomic|racy [PROCESSES] | calls (got {how:?})"
        )));
    }
    let (start, finish) = (Barrier::new(processes + 1)?, Barrier::new(processes + 1)?);
    let mut workers: Vec<Process> = (0..processes)
        .map(|_| Process::new("increment", (&counter, &how, &start, &finish)))
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    start.wait()?;
    let t = Instant::now();
    finish.wait()?;
    let secs = t.elapsed().as_secs_f64();
    for w in &mut workers {
        w.join()?;
    }
    let ops = f64::from(processes * INCREMENTS);
    println!(
        r#"{{"ops_per_s": {}, "final": {}}}"#,
        ops / secs,
        counter.get()
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
