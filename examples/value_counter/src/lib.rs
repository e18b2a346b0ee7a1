//! Seed S8 (`value_counter`): a `Value` shared by four processes, Python's
//!
//! ```python
//! def increment(counter):
//!     for _ in range(1000): counter.value += 1
//! counter = Value('i', 0)
//! # 4 processes run increment(counter); join all
//! print(f"Counter value: {counter.value}")
//! ```
//!
//! `counter.value += 1` is a read, then a write: two processes can read the
//! same value and one increment is lost, so CPython prints a number up to
//! 4000. This guest runs that loop as written (`get` + `set`) and prints
//! `Counter value (racy): N`, then the same loop with mpwasm's atomic add,
//! which loses nothing: `Counter value: 4000`.

use mpwasm_guest::{Process, Value};

/// How many processes increment, and how many times each.
const PROCESSES: usize = 4;
const INCREMENTS: usize = 1000;

/// Python's `counter.value += 1`: a read and a write, racing.
#[mpwasm_guest::task]
fn increment(counter: Value<i32>) {
    for _ in 0..INCREMENTS {
        counter.set(counter.get() + 1);
    }
}

/// The same loop with one atomic read-modify-write per increment.
#[mpwasm_guest::task]
fn increment_atomic(counter: Value<i32>) {
    for _ in 0..INCREMENTS {
        counter.fetch_add(1);
    }
}

/// Runs `target` in four processes on one counter from 0; its final value.
fn count_with(target: &str) -> mpwasm_guest::Result<i32> {
    let counter = Value::new(0_i32)?;
    let mut processes: Vec<Process> = (0..PROCESSES)
        .map(|_| Process::new(target, &counter))
        .collect();
    for p in &mut processes {
        p.start()?;
    }
    for p in &mut processes {
        p.join()?;
    }
    Ok(counter.get())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    println!("Counter value (racy): {}", count_with("increment")?);
    println!("Counter value: {}", count_with("increment_atomic")?);
    Ok(())
}
