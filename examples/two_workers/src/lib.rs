//! Seed S6 (`two_workers`): two processes in parallel, Python's
//!
//! ```python
//! def worker(name):
//!     print(f"Worker {name} is starting"); time.sleep(2); print(f"Worker {name} is done")
//! p1 = Process(target=worker, args=("A",)); p2 = Process(target=worker, args=("B",))
//! p1.start(); p2.start(); p1.join(); p2.join(); print("Both processes are done")
//! ```
//!
//! Both workers sleep at the same time: the run takes about 2 s, not 4 s.

use std::time::Duration;

use mpwasm_guest::Process;

/// Announces itself, sleeps two seconds, says it is done.
#[mpwasm_guest::task]
fn worker(name: String) {
    println!("Worker {name} is starting");
    std::thread::sleep(Duration::from_secs(2));
    println!("Worker {name} is done");
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let mut p1 = Process::new("worker", "A");
    let mut p2 = Process::new("worker", "B");
    p1.start()?;
    p2.start()?;
    p1.join()?;
    p2.join()?;
    println!("Both processes are done");
    Ok(())
}
