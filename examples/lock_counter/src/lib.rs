//! Seed S12 (`lock_counter`): a `Value` guarded by a `Lock`, Python's
//!
//! ```python
//! def add(counter, lock):
//!     for _ in range(10000):
//!         with lock: counter.value += 1
//! counter = Value('i', 0, lock=False); lock = Lock()
//! # 4 processes; join all
//! print(f"Final counter: {counter.value}")
//! ```
//!
//! Prints `Final counter: 40000`: under the lock no increment is lost.
//! `Value('i', 0, lock=False)` is a [`RawValue`]; `with lock:` is the guard
//! [`Lock::acquire`] returns, which releases at the end of its block.

use mpwasm_guest::{Lock, Process, RawValue};

/// How many processes add, and how many times each.
const PROCESSES: usize = 4;
const INCREMENTS: usize = 10_000;

/// Adds one to the counter `INCREMENTS` times, each under the lock.
#[mpwasm_guest::task]
fn add(counter: RawValue<i32>, lock: Lock) -> mpwasm_guest::Result<()> {
    for _ in 0..INCREMENTS {
        let _held = lock.acquire()?;
        counter.set(counter.get() + 1);
    }
    Ok(())
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let counter = RawValue::new(0_i32)?;
    let lock = Lock::new()?;
    let mut processes: Vec<Process> = (0..PROCESSES)
        .map(|_| Process::new("add", (&counter, &lock)))
        .collect();
    for p in &mut processes {
        p.start()?;
    }
    for p in &mut processes {
        p.join()?;
    }
    println!("Final counter: {}", counter.get());
    Ok(())
}
