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
//! `ARGS`. It returns nothing (exit status 0), an `i32` exit status, or
//! `Result<(), E>` with `E: Debug`, where `Err(e)` prints `Error: {e:?}` on
//! stderr and exits with 1. What any process prints with `println!` goes to
//! `mpwasm run`'s stdout.
//!
//! Inside `main` (and inside processes it starts) a guest has Python's
//! multiprocessing objects. Every fallible operation returns this crate's
//! [`Result`], whose [`Error`] names the Python exception it stands for.
//!
//! # Processes
//!
//! A [`Process`] runs one `#[task]` of the same guest, once, in a new OS
//! process (Python's `Process(target=..., args=...)`): the target is named,
//! not pickled, and there is no `__main__` guard to write.
//!
//! ```no_run
//! use mpwasm_guest::Process;
//!
//! #[mpwasm_guest::task]
//! fn hello(who: String) {
//!     println!("hello, {who}");
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let mut p = Process::new("hello", "world");
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(p.exitcode(), Some(0));
//!     Ok(())
//! }
//! ```
//!
//! A process's exit code is 0 when the task returned, 1 after a panic, an
//! `Err` or a trap, and `-N` when signal `N` killed it. See also
//! [`parent_process`] and [`active_children`].
//!
//! # Queues
//!
//! [`Queue`], [`JoinableQueue`] and [`SimpleQueue`] carry serde values
//! between any number of processes. Items go from the putting process
//! straight to the getting one, and a `put` has handed its item over when it
//! returns: there is no feeder thread to flush before exiting.
//!
//! ```no_run
//! use std::time::Duration;
//! use mpwasm_guest::{Error, Queue};
//!
//! let q = Queue::with_maxsize(2)?;
//! q.put("first".to_string())?;
//! assert_eq!(q.get()?, "first");
//! assert_eq!(q.get_timeout(Duration::from_millis(10)), Err(Error::Empty));
//! # Ok::<(), Error>(())
//! ```
//!
//! # Pipes
//!
//! [`pipe`] makes two connected [`Connection`]s (Python's `Pipe()`); [`wait`]
//! waits on several connections, queues and processes at once (Python's
//! `multiprocessing.connection.wait`). A closed or dead peer makes `recv`
//! fail with [`Error::Eof`], never hang.
//!
//! ```no_run
//! let (parent_end, child_end) = mpwasm_guest::pipe(true)?;
//! child_end.send(&[1_u8, 2, 3])?;
//! let ready = mpwasm_guest::wait(&[&parent_end], None)?;
//! assert_eq!(ready, [0]);
//! assert_eq!(parent_end.recv::<Vec<u8>>()?, [1, 2, 3]);
//! # Ok::<(), mpwasm_guest::Error>(())
//! ```
//!
//! # Pools
//!
//! A [`Pool`] runs tasks of the guest on worker processes the host manages,
//! with its crash isolation and retries: `map`, `starmap`, `apply`, `imap`,
//! `imap_unordered` and their `_async` forms ([`AsyncResult`]). A failed
//! input comes back as [`Error::Task`].
//!
//! ```no_run
//! #[mpwasm_guest::task]
//! fn cube(x: i64) -> i64 {
//!     x * x * x
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let pool = mpwasm_guest::Pool::new(4)?;
//!     let cubes: Vec<i64> = pool.map("cube", 1..=5_i64)?;
//!     assert_eq!(cubes, [1, 8, 27, 64, 125]);
//!     Ok(())
//! }
//! ```
//!
//! # Handles travel as capabilities
//!
//! Queues, connections and processes are serde values: put one in process
//! arguments, a queue item or a pipe message and the receiving process gets
//! its own handle to the same object. What travels is a token the host
//! minted for that object (Serialize calls the handle's `share`, Deserialize
//! redeems the token with `adopt`); a token the host never issued to the
//! receiver fails to decode ([`Error::Codec`]).
//!
//! ```no_run
//! use mpwasm_guest::{Connection, Process, Queue};
//!
//! #[mpwasm_guest::task]
//! fn relay(args: (Queue<Connection>, String)) {
//!     let (mailbox, text) = args;
//!     let conn = mailbox.get().unwrap(); // a connection sent through a queue
//!     conn.send(&text).unwrap();
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let mailbox = Queue::new()?;
//!     let (here, there) = mpwasm_guest::pipe(true)?;
//!     let mut p = Process::new("relay", (mailbox.clone(), "hi".to_string()));
//!     p.start()?;
//!     mailbox.put(there)?;
//!     assert_eq!(here.recv::<String>()?, "hi");
//!     p.join()
//! }
//! ```
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
mod capability;
mod codec;
mod dispatch;
mod error;
mod log;
mod panic;
mod pipe;
mod pool;
mod process;
mod queue;
mod time;

#[cfg(test)]
mod test;

pub use crate::dispatch::{current_task, TaskInfo};
pub use crate::error::{Error, Result};
pub use crate::log::{log, Level};
pub use crate::pipe::{pipe, wait, Connection, Waitable};
pub use crate::pool::{AsyncResult, Imap, Pool};
pub use crate::process::{
    active_children, cpu_count, current_process, parent_process, ParentProcess, Process,
    ProcessInfo,
};
pub use crate::queue::{JoinableQueue, Queue, SimpleQueue};
pub use mpwasm_guest_macros::{main, task};

/// Support code for the `#[task]` and `#[main]` macros. Not a stable API.
#[doc(hidden)]
pub mod internal {
    pub use crate::bindings::types::{Codec, TaskError};
    pub use crate::dispatch::{main_failed, run_task, Main, Task};
    pub use inventory;

    /// Wraps an infallible task result so every task returns a `Result`.
    pub fn infallible<R>(value: R) -> Result<R, std::convert::Infallible> {
        Ok(value)
    }
}
