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
//! # Shared values and arrays
//!
//! [`Value`] and [`Array`] (and their lock-less [`RawValue`] and
//! [`RawArray`]) hold numbers in shared memory every process holding them
//! sees (Python's `Value('i', 0)` is `Value::new(0_i32)`; [`Scalar`] lists
//! the typecodes). Each `get` and `set` is one instruction (a `set` is a
//! plain store, as CPython's `ctypes` makes it), but
//! `counter.set(counter.get() + 1)` is two, and races exactly like CPython's
//! `counter.value += 1`: two processes can both read 5 and both write 6.
//! Hold [`Value::get_lock`] around the pair, as in Python, or use
//! [`RawValue::fetch_add`], one atomic read-modify-write that never loses an
//! update. Array indices are checked before any host call
//! ([`Error::IndexOutOfRange`]), and [`RawArray::read`] / [`RawArray::write`] move
//! a whole range at once.
//!
//! ```no_run
//! use mpwasm_guest::{Process, Value};
//!
//! #[mpwasm_guest::task]
//! fn count(counter: Value<i32>) {
//!     for _ in 0..1000 {
//!         counter.fetch_add(1); // not counter.set(counter.get() + 1)
//!     }
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let counter = Value::new(0_i32)?;
//!     let mut ps: Vec<Process> = (0..4).map(|_| Process::new("count", counter.clone())).collect();
//!     for p in &mut ps {
//!         p.start()?;
//!     }
//!     for p in &mut ps {
//!         p.join()?;
//!     }
//!     assert_eq!(counter.get(), 4000);
//!     Ok(())
//! }
//! ```
//!
//! # Locks
//!
//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`],
//! [`Condition`] and [`Barrier`] work across processes as Python's do.
//! Acquiring returns a guard ([`LockGuard`], [`SemaphoreGuard`]) that
//! releases on drop, as `with lock:` does.
//!
//! Locks are robust against a holder dying. When a process is killed while
//! holding a lock, the next process to acquire it gets it (it is not stuck
//! forever, as it would be in CPython) and the guard's
//! [`owner_died`](LockGuard::owner_died) is `true`: the lock is held, but
//! the data it protects may be half-updated, so check or repair it before
//! going on. A [`Barrier`] breaks ([`Error::Broken`]) when one of its
//! parties dies, so the others do not wait forever.
//!
//! ```no_run
//! use mpwasm_guest::{Lock, Value};
//!
//! fn add(total: &Value<i64>, lock: &Lock, n: i64) -> mpwasm_guest::Result<()> {
//!     let guard = lock.acquire()?;
//!     if guard.owner_died() {
//!         eprintln!("a process died holding the lock; total may be off");
//!     }
//!     total.set(total.get() + n);
//!     Ok(())
//! } // released here
//! ```
//!
//! # Shared memory
//!
//! [`SharedMemory`] is a block of bytes (Python's
//! `multiprocessing.shared_memory.SharedMemory`), created with a name other
//! processes of the run [`attach`](SharedMemory::attach) by, or without one
//! and sent as a handle. A guest copies bytes in and out with
//! [`read`](SharedMemory::read) and [`write`](SharedMemory::write) (its own
//! memory cannot point into the block). [`ShareableList`] keeps a
//! fixed-length list of numbers, strings and bytes in one.
//!
//! ```no_run
//! use mpwasm_guest::SharedMemory;
//!
//! let shm = SharedMemory::create("frame", 1024)?;
//! shm.write(0, b"header")?;
//! let other = SharedMemory::attach("frame")?; // as another process would
//! assert_eq!(other.read(0, 6)?, b"header");
//! shm.unlink()?;
//! # Ok::<(), mpwasm_guest::Error>(())
//! ```
//!
//! # Managers
//!
//! A [`Manager`] makes lists ([`ListProxy`]), dicts ([`DictProxy`]) and
//! namespaces ([`Namespace`]) of serde values that live in the parent
//! `mpwasm` process: every operation is one message to it, and the
//! containers outlive any worker, even one killed mid-update.
//!
//! ```no_run
//! use mpwasm_guest::{ListProxy, Manager, Process};
//!
//! #[mpwasm_guest::task]
//! fn greet(list: ListProxy<String>) {
//!     list.append("hello").unwrap();
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let list: ListProxy<String> = Manager::new()?.list()?;
//!     let mut p = Process::new("greet", list.clone());
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(list.to_vec()?, ["hello"]);
//!     Ok(())
//! }
//! ```
//!
//! # Handles travel as capabilities
//!
//! Queues, connections, processes, shared values and arrays, locks, shared
//! memory and manager proxies are serde values: put one in process
//! arguments, a queue item or a pipe message and the receiving process gets
//! its own handle to the same object. What travels is a token the host
//! minted for that object (Serialize calls the handle's `share`, Deserialize
//! redeems the token with `adopt`). A token is a bearer capability within
//! the run: whoever presents it gets the object, while the object lives; a
//! token the host never minted, or of an object that is gone, fails to
//! decode ([`Error::Codec`]).
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
//! `mpwasm-guest` is not published on crates.io: depend on it by path, from
//! a checkout of the mpwasm repository (as every guest in its `examples/`
//! does), or by `git` from that repository.
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! mpwasm-guest = { path = "../mpwasm/guest-sdk" }   # where your checkout is
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `rustup target add wasm32-wasip1`, then `cargo build --release --target
//! wasm32-wasip1` makes a core module (`target/wasm32-wasip1/release/NAME.wasm`)
//! that `mpwasm` componentizes and caches on first use.
//!
//! [mpwasm]: https://example.invalid/mpwasm

mod array;
mod bindings;
mod capability;
mod codec;
mod dispatch;
mod error;
mod log;
mod manager;
mod panic;
mod pipe;
mod pool;
mod process;
mod queue;
mod shared_memory;
mod sync;
mod time;
mod value;
mod window;

#[cfg(test)]
mod test;

pub use crate::array::{Array, ByteArray, RawArray};
pub use crate::dispatch::{current_task, TaskInfo};
pub use crate::error::{task_kind, Error, Result};
pub use crate::log::{log, Level};
pub use crate::manager::{DictProxy, ListProxy, Manager, Namespace};
pub use crate::pipe::{pipe, wait, Connection, Waitable};
pub use crate::pool::{AsyncResult, Chunked, Imap, Pool, PoolBuilder};
pub use crate::process::{
    active_children, cpu_count, current_process, parent_process, ParentProcess, Process,
    ProcessInfo,
};
pub use crate::queue::{JoinableQueue, Queue, SimpleQueue};
pub use crate::shared_memory::{Item, ShareableList, SharedMemory};
pub use crate::sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, Semaphore, SemaphoreGuard,
};
pub use crate::value::{AtomicInt, RawValue, Scalar, Value};
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
