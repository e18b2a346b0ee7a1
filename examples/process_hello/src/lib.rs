//! Seed S1 (`process_hello`): Python's
//!
//! ```python
//! from multiprocessing import Process
//! def worker(name):
//!     print(f"Hello from {name}")
//! if __name__ == "__main__":
//!     p = Process(target=worker, args=("Process-1",))
//!     p.start(); p.join()
//! ```
//!
//! `mpwasm run process_hello.wasm` prints `Hello from Process-1`, with the
//! parent's and the child's pids (two OS processes, so they differ).

use mpwasm_guest::{current_process, Process};

/// The process's target: greets from the child process.
#[mpwasm_guest::task]
fn worker(name: String) {
    println!("child pid: {}", current_process().pid);
    println!("Hello from {name}");
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    println!("parent pid: {}", current_process().pid);
    let mut p = Process::new("worker", "Process-1");
    p.start()?;
    p.join()?;
    Ok(())
}
