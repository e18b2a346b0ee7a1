//! Write [mpwasm] workers in Rust: Python's `multiprocessing`, as a
//! WebAssembly guest.
//!
//! A guest is a `cdylib` crate built for `wasm32-wasip1`. Each function
//! marked [`task`] becomes a task the host can map over, from the shell
//! (`mpwasm pool guest.wasm --task square`) or from Rust
//! (`mpwasm::Pool::map`):
//!
//! ```
//! #[mpwasm_guest::task]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//! # fn main() { assert_eq!(square(7), 49); }
//! ```
//!
//! # Tasks
//!
//! - Arguments and results are serde types. A task with one parameter takes
//!   that value; a task with several takes them as a tuple (a JSON array on
//!   the command line), as Python's `starmap` does.
//! - A task returning `Result<T, E>` with `E: Display` reports `Err(e)` as that
//!   input's error; the rest of the job carries on.
//! - A panic fails only the input that panicked, and its message (with the
//!   source location) reaches the caller, as an exception raised in a Python
//!   pool worker does. There is no `if __name__ == "__main__"` guard and no
//!   pickling: tasks are looked up by name.
//!
//! # Main
//!
//! [`main`] marks the entry point `mpwasm run guest.wasm ARGS…` calls, in a
//! worker process of its own; `std::env::args()` holds the program name and
//! `ARGS`, and the value it returns (an `i32`, or nothing for 0) is the exit
//! status.
//!
//! # Who am I
//!
//! [`current_process`] describes the worker process (Python's
//! `multiprocessing.current_process()`), [`current_task`] the input being
//! processed, [`cpu_count`] the CPUs the host offers, and [`log`] writes a
//! line to the host's log, tagged with the worker.
//!
//! # Building
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! mpwasm-guest = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `cargo build --release --target wasm32-wasip1` makes a core module that
//! `mpwasm` componentizes and caches on first use.
//!
//! [mpwasm]: https://example.invalid/mpwasm

mod bindings;
mod codec;
mod dispatch;
mod panic;

pub use mpwasm_guest_macros::{main, task};

use bindings::runtime;

/// Support code for the `#[task]` and `#[main]` macros. Not a stable API.
#[doc(hidden)]
pub mod internal {
    pub use crate::bindings::types::{Codec, TaskError};
    pub use crate::dispatch::{run_task, Main, Task};
    pub use inventory;

    /// Wraps an infallible task result so every task returns a `Result`.
    pub fn infallible<R>(value: R) -> Result<R, std::convert::Infallible> {
        Ok(value)
    }
}

/// The worker process this code runs in (Python's
/// `multiprocessing.current_process()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Index of the worker within its pool, from 0.
    pub id: u32,
    /// OS process id of the worker process.
    pub pid: u32,
    /// OS process id of the process that started it.
    pub parent_pid: u32,
    /// The process's name, e.g. `PoolWorker-1`.
    pub name: String,
}

/// Describes the worker process this code runs in.
///
/// Each worker is its own OS process, so two tasks that see different `pid`s
/// ran in different processes.
pub fn current_process() -> ProcessInfo {
    let w = runtime::worker();
    ProcessInfo {
        id: w.id,
        pid: w.pid,
        parent_pid: w.parent_pid,
        name: w.name,
    }
}

/// The input currently being processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
    /// Position of this input in the whole job (0 for the first input of a
    /// `map`), whatever chunk it arrived in.
    pub index: u64,
}

/// Describes the input being processed, or `None` outside a task (in `main`).
pub fn current_task() -> Option<TaskInfo> {
    dispatch::BATCH.with(|b| {
        b.borrow().as_ref().map(|batch| TaskInfo {
            name: batch.name.clone(),
            index: batch.first_index + u64::from(batch.done),
        })
    })
}

/// Number of CPUs the host offers (Python's `os.cpu_count()`).
pub fn cpu_count() -> u32 {
    runtime::cpu_count()
}

/// Severity of a [`log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line to the host's log (its stderr), tagged with the worker
/// and shown according to the host's `RUST_LOG` filter.
///
/// ```no_run
/// mpwasm_guest::log(mpwasm_guest::Level::Info, "starting");
/// ```
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => runtime::Level::Trace,
        Level::Debug => runtime::Level::Debug,
        Level::Info => runtime::Level::Info,
        Level::Warn => runtime::Level::Warn,
        Level::Error => runtime::Level::Error,
    };
    runtime::log(level, message);
}
