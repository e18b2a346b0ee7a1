//! Seed S11 (`parallel_squares`): four processes, one second each, Python's
//!
//! ```python
//! def print_square(n):
//!     print(f"Square of {n} is {n * n}"); time.sleep(1)
//! start = time.time()
//! processes = [Process(target=print_square, args=(n,)) for n in range(1, 5)]
//! for p in processes: p.start()
//! for p in processes: p.join()
//! print(f"Elapsed: {round(time.time() - start)} s")
//! ```
//!
//! The four sleep at the same time: `Elapsed: 1 s`.

use std::time::{Duration, Instant};

use mpwasm_guest::Process;

/// Prints `n`'s square, then sleeps a second.
#[mpwasm_guest::task]
fn print_square(n: i64) {
    println!("Square of {n} is {}", n * n);
    std::thread::sleep(Duration::from_secs(1));
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let start = Instant::now();
    let mut processes: Vec<Process> = (1..=4_i64)
        .map(|n| Process::new("print_square", n))
        .collect();
    for p in &mut processes {
        p.start()?;
    }
    for p in &mut processes {
        p.join()?;
    }
    println!("Elapsed: {} s", start.elapsed().as_secs_f64().round());
    Ok(())
}
