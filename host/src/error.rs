//! Error types: one per kind of operation, all convertible into [`Error`].

use std::fmt;
use std::path::PathBuf;

/// Why a guest file could not be loaded. `Display` is one line naming the
/// file and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The guest file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is larger than [`crate::limits::MAX_GUEST_FILE_BYTES`].
    #[error("{}: too large for a guest ({size} bytes; the limit is {limit})", path.display())]
    TooLarge {
        /// The guest file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file does not start with the wasm magic bytes.
    #[error("{}: not a WebAssembly file (no \\0asm header)", path.display())]
    NotWasm {
        /// The guest file.
        path: PathBuf,
    },
    /// The file is wasm but malformed (truncated, invalid, ...).
    #[error("{}: invalid WebAssembly: {reason}", path.display())]
    Invalid {
        /// The guest file.
        path: PathBuf,
        /// What the validator or componentizer said.
        reason: String,
    },
    /// Valid wasm that does not target mpwasm's `worker` world.
    #[error("{}: not an mpwasm guest: {reason}", path.display())]
    WrongWorld {
        /// The guest file.
        path: PathBuf,
        /// What is missing or extra.
        reason: String,
    },
    /// The compiled-component cache could not be used.
    #[error("cache {}: {source}", path.display())]
    Cache {
        /// The cache file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// wasmtime itself failed (not the guest's fault).
    #[error("wasmtime: {0}")]
    Engine(String),
    /// A Python program could not be made into a guest: its source is
    /// unreadable, too large or not UTF-8, or componentize-py is missing or
    /// failed.
    #[error("{}: {reason}", path.display())]
    Python {
        /// The Python file (or the output, for `mpwasm build`).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// What kind of failure a [`TaskError`] is.
///
/// Each kind has one name ([`TaskErrorKind::as_str`], also its `Display`):
/// the same string a guest sees as `Error::Task`'s `kind` (the guest SDK's
/// `task_kind` constants) and `mpwasm pool` writes as a failed line's
/// `"kind"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// The guest exports no task of that name (`unknown_task`).
    UnknownTask,
    /// The input could not be decoded as the task's argument type
    /// (`bad_input`).
    BadInput,
    /// The task panicked (`panic`).
    Panic,
    /// The task returned `Err(e)` (`failed`).
    Failed,
    /// The task's result could not be encoded, or the guest sent a result the
    /// host could not decode (`bad_output`).
    BadOutput,
    /// The instance trapped outside a Rust panic (`unreachable`, out-of-bounds
    /// access, stack overflow, abort, `exit` in a pool task) (`trap`).
    Trap,
    /// The worker process died while holding the task (`worker_lost`).
    WorkerLost,
    /// The task ran past its deadline and was stopped (`timeout`).
    Timeout,
    /// The task hit its memory cap or ran out of fuel (`resource_limit`).
    ResourceLimit,
}

impl TaskErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [TaskErrorKind; 9] = [
        TaskErrorKind::UnknownTask,
        TaskErrorKind::BadInput,
        TaskErrorKind::Panic,
        TaskErrorKind::Failed,
        TaskErrorKind::BadOutput,
        TaskErrorKind::Trap,
        TaskErrorKind::WorkerLost,
        TaskErrorKind::Timeout,
        TaskErrorKind::ResourceLimit,
    ];

    /// The kind's name, in snake case: `panic`, `bad_input`, ...
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mpwasm::TaskErrorKind::WorkerLost.as_str(), "worker_lost");
    /// assert_eq!(mpwasm::TaskErrorKind::Panic.to_string(), "panic");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            TaskErrorKind::UnknownTask => "unknown_task",
            TaskErrorKind::BadInput => "bad_input",
            TaskErrorKind::Panic => "panic",
            TaskErrorKind::Failed => "failed",
            TaskErrorKind::BadOutput => "bad_output",
            TaskErrorKind::Trap => "trap",
            TaskErrorKind::WorkerLost => "worker_lost",
            TaskErrorKind::Timeout => "timeout",
            TaskErrorKind::ResourceLimit => "resource_limit",
        }
    }
}

impl fmt::Display for TaskErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input's failure, as Python's pool re-raises a worker's exception.
///
/// Only that input failed; the rest of the job carried on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// Position of the failed input in the job (0-based).
    pub index: u64,
    /// What kind of failure.
    pub kind: TaskErrorKind,
    /// The message: the panic text, the `Err` value, the trap.
    pub message: String,
    /// The wasm backtrace, with function names, for panics and traps.
    pub backtrace: Option<String>,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task input {} failed ({}): {}",
            self.index, self.kind, self.message
        )
    }
}

impl std::error::Error for TaskError {}

/// The error type of [`Pool`](crate::Pool) operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The guest file could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A task failed; the other inputs were processed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A worker process could not be started.
    #[error("cannot start worker process: {0}")]
    Spawn(String),
    /// The worker process running a guest's `main` ended without main's
    /// exit code: the parent's watchdog stopped it past its deadline, it
    /// broke the protocol, or it died. The message starts with "main".
    #[error("{0}")]
    Main(String),
    /// An argument could not be encoded for the guest.
    #[error("cannot encode task argument: {0}")]
    Encode(String),
    /// The pool was closed: it takes no new work.
    #[error("pool is closed")]
    Closed,
    /// The pool was terminated while the work was pending.
    #[error("pool was terminated")]
    Terminated,
    /// A timed wait ran out (Python's `multiprocessing.TimeoutError`).
    #[error("timed out")]
    Timeout,
    /// The value of an [`AsyncResult`](crate::AsyncResult) was already taken.
    #[error("result already taken")]
    Taken,
    /// The guest exports no task of that name.
    #[error("the guest has no task named `{name}` (it has: {})", available.join(", "))]
    UnknownTask {
        /// The name asked for.
        name: String,
        /// The tasks the guest does export.
        available: Vec<String>,
    },
    /// A builder option was invalid.
    #[error("invalid pool option: {0}")]
    Config(String),
    /// A guest pool would go past one of its run's limits
    /// (`--max-processes`, `--host-memory`).
    #[error("{0}")]
    Limit(String),
    /// The NATS cluster could not be reached or refused a request (a pool
    /// built with [`PoolBuilder::cluster`](crate::PoolBuilder::cluster), or
    /// [`serve`](crate::serve)).
    #[error("cluster: {0}")]
    Cluster(String),
}

/// `Result` with mpwasm's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod test {
    use super::TaskErrorKind;

    #[test]
    fn every_kind_has_one_distinct_snake_case_name() {
        let names: Vec<&str> = TaskErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        for (kind, name) in TaskErrorKind::ALL.iter().zip(&names) {
            assert_eq!(kind.to_string(), *name);
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}
