//! Why a process, queue, pipe or pool operation failed.
//!
//! One error type for the whole SDK, as Python raises a handful of
//! exception classes across `multiprocessing`: the variants the host reports
//! (the WIT `error` variant) plus the ones the SDK itself detects (encoding,
//! a failed pool task, a receive buffer that is too short, an index outside
//! a shared array).

use std::fmt;

use crate::bindings::types;

/// Why an operation failed.
///
/// `Display` names the Python exception each variant stands for, where
/// there is one.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use mpwasm_guest::{Error, Queue};
///
/// let q: Queue<i32> = Queue::new()?;
/// match q.get_timeout(Duration::from_millis(10)) {
///     Ok(item) => println!("got {item}"),
///     Err(Error::Empty) => println!("nothing yet"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The object was closed by this process (Python's `ValueError: ... is
    /// closed`, `OSError: handle is closed`).
    Closed,
    /// The peer closed its end or died: nothing more will arrive (Python's
    /// `EOFError`).
    Eof,
    /// A non-blocking or timed get found nothing (Python's `queue.Empty`).
    Empty,
    /// A non-blocking or timed put found no room (Python's `queue.Full`).
    Full,
    /// A timed wait ran out (Python's `multiprocessing.TimeoutError`).
    Timeout,
    /// The handle or capability token is not valid in this process.
    InvalidHandle,
    /// A sandbox limit refused the operation (process cap, payload size,
    /// message longer than `maxlength`, ...).
    Limit(String),
    /// The previous owner of a lock died while holding it.
    ///
    /// Acquiring a lock reports this on the guard instead
    /// ([`LockGuard::owner_died`](crate::LockGuard::owner_died)), since the
    /// lock *is* acquired; [`Condition::wait`](crate::Condition::wait)
    /// returns it after taking the lock back.
    OwnerDied,
    /// A barrier was broken (Python's `BrokenBarrierError`).
    Broken,
    /// The queue was shut down (Python 3.13's `queue.ShutDown`).
    ShutDown,
    /// Anything else, described.
    Other(String),
    /// A value could not be encoded or decoded (serde/bincode).
    Codec(String),
    /// One pool task failed: its input's position in the job, the kind of
    /// failure (one of [`task_kind`]: `panic`, `failed`, `trap`, `timeout`,
    /// `worker_lost`, ...) and what happened.
    Task {
        /// Position of the failed input among the job's inputs, from 0.
        index: u64,
        /// What kind of failure: one of the names in [`task_kind`].
        kind: String,
        /// The panic message, the task's `Err` rendered with `Display`, or
        /// the host's description.
        message: String,
    },
    /// [`Connection::recv_bytes_into`](crate::Connection::recv_bytes_into):
    /// the buffer is shorter than the message, which is handed back here
    /// (Python's `BufferTooShort`).
    BufferTooShort(Vec<u8>),
    /// An index or range outside a shared array, shared memory block or
    /// shareable list, caught before asking the host (Python's
    /// `IndexError`).
    IndexOutOfRange {
        /// The first index out of range.
        index: usize,
        /// The length of the array, block or list.
        len: usize,
    },
}

/// The kinds of pool task failure, as [`Error::Task`]'s `kind`: the same
/// names the host crate's `TaskErrorKind` displays and `mpwasm pool` writes
/// as a failed line's `"kind"`.
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{task_kind, Error, Pool};
///
/// let pool = Pool::new(2)?;
/// match pool.apply::<i64, i64>("square", 3) {
///     Ok(n) => println!("{n}"),
///     Err(Error::Task { kind, .. }) if kind == task_kind::PANIC => println!("it panicked"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), Error>(())
/// ```
pub mod task_kind {
    /// The guest exports no task of that name.
    pub const UNKNOWN_TASK: &str = "unknown_task";
    /// The input could not be decoded as the task's argument type.
    pub const BAD_INPUT: &str = "bad_input";
    /// The task panicked.
    pub const PANIC: &str = "panic";
    /// The task returned `Err(e)`.
    pub const FAILED: &str = "failed";
    /// The task's result could not be encoded or decoded.
    pub const BAD_OUTPUT: &str = "bad_output";
    /// The instance trapped outside a panic (`unreachable`, abort, out of
    /// bounds, stack overflow).
    pub const TRAP: &str = "trap";
    /// The worker process died while holding the task.
    pub const WORKER_LOST: &str = "worker_lost";
    /// The task ran past its deadline and was stopped.
    pub const TIMEOUT: &str = "timeout";
    /// The task hit its memory cap or ran out of fuel.
    pub const RESOURCE_LIMIT: &str = "resource_limit";
    /// Every kind, in the order of the host's `TaskErrorKind::ALL`.
    pub const ALL: [&str; 9] = [
        UNKNOWN_TASK,
        BAD_INPUT,
        PANIC,
        FAILED,
        BAD_OUTPUT,
        TRAP,
        WORKER_LOST,
        TIMEOUT,
        RESOURCE_LIMIT,
    ];
}

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("handle is closed"),
            Error::Eof => f.write_str("end of file: the peer closed its end or died (EOFError)"),
            Error::Empty => f.write_str("queue is empty (queue.Empty)"),
            Error::Full => f.write_str("queue is full (queue.Full)"),
            Error::Timeout => f.write_str("timed out (TimeoutError)"),
            Error::InvalidHandle => {
                f.write_str("handle or capability is not valid in this process")
            }
            Error::Limit(what) => write!(f, "limit exceeded: {what}"),
            Error::OwnerDied => f.write_str("the previous owner died holding the lock"),
            Error::Broken => f.write_str("barrier is broken (BrokenBarrierError)"),
            Error::ShutDown => f.write_str("queue was shut down (queue.ShutDown)"),
            Error::Other(what) => f.write_str(what),
            Error::Codec(what) => write!(f, "cannot encode or decode a value: {what}"),
            Error::Task {
                index,
                kind,
                message,
            } => write!(f, "task input {index} failed ({kind}): {message}"),
            Error::BufferTooShort(message) => write!(
                f,
                "buffer too short for a {}-byte message (BufferTooShort)",
                message.len()
            ),
            Error::IndexOutOfRange { index, len } => {
                write!(
                    f,
                    "index {index} out of range for length {len} (IndexError)"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<types::Error> for Error {
    fn from(e: types::Error) -> Self {
        match e {
            types::Error::Closed => Error::Closed,
            types::Error::Eof => Error::Eof,
            types::Error::Empty => Error::Empty,
            types::Error::Full => Error::Full,
            types::Error::Timeout => Error::Timeout,
            types::Error::InvalidHandle => Error::InvalidHandle,
            types::Error::Limit(what) => Error::Limit(what),
            types::Error::OwnerDied => Error::OwnerDied,
            types::Error::Broken => Error::Broken,
            types::Error::ShutDown => Error::ShutDown,
            types::Error::Other(what) => Error::Other(what),
        }
    }
}
