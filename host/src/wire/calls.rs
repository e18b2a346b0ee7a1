//! Upcalls: what a running guest asks of the parent (the broker), and the
//! answers. Each variant is served by the interface module named in its
//! doc (`crate::interfaces::*`).
//!
//! Object ids are the broker's: a worker only ever learns ids from replies,
//! and the broker checks every id against what the calling process holds.
//! Descriptors in a reply are listed in the order the variant's doc gives.

use serde::{Deserialize, Serialize};

/// Worker → parent, while a request runs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Call {
    /// process: start a process running `target` on `args`.
    /// → `Process`.
    ProcessStart {
        /// Task name.
        target: String,
        /// bincode-encoded input.
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
        /// Name (the worker assigns `Process-N` when the guest gives none).
        name: String,
        /// Daemon flag.
        daemon: bool,
    },
    /// process: wait for a process to end. → `Joined`.
    ProcessJoin {
        /// Broker id.
        id: u64,
        /// `None`: forever.
        timeout_ms: Option<u64>,
    },
    /// process: describe a process now. → `Process`.
    ProcessStatus {
        /// Broker id.
        id: u64,
    },
    /// process: SIGTERM (`kill` false) or SIGKILL. → `Ok`.
    ProcessSignal {
        /// Broker id.
        id: u64,
        /// SIGKILL instead of SIGTERM.
        kill: bool,
    },
    /// process: the caller's parent. → `Parent`.
    Parent,
    /// process: the caller's running children. → `Processes`.
    ActiveChildren,
    /// Any object the caller holds (process, queue, pool, job): it dropped
    /// its handle. → `Ok`.
    Release {
        /// Broker id.
        id: u64,
    },
    /// A token for an object the caller holds. → `Token`.
    Share {
        /// Broker id.
        id: u64,
    },
    /// pipe: a token for the connection end attached (1 descriptor), with
    /// its direction. → `Token`.
    ShareConnection {
        /// Whether the end receives.
        readable: bool,
        /// Whether the end sends.
        writable: bool,
    },
    /// Redeem a token. → `Process`, `Queue` (3 descriptors) or
    /// `Connection` (1 descriptor).
    Adopt {
        /// The token.
        token: u64,
    },
    /// queue: a new queue. → `Queue` (descriptors: sending socket,
    /// receiving socket, page).
    QueueCreate {
        /// 0: unbounded.
        maxsize: u32,
        /// Whether `task_done`/`join` are allowed.
        joinable: bool,
    },
    /// queue: the queue's pipe is full; the broker keeps this packet
    /// and feeds it in. → `Ok`.
    QueueSpill {
        /// Broker id.
        id: u64,
        /// The packet, as it would have been written into the pipe.
        #[serde(with = "serde_bytes")]
        datagram: Vec<u8>,
    },
    /// queue: keep this large item until a consumer fetches it. →
    /// `Object` (its key, which the datagram carries).
    QueueStore {
        /// Broker id.
        id: u64,
        /// The encoded item.
        #[serde(with = "serde_bytes")]
        item: Vec<u8>,
    },
    /// queue: hand over the item kept under `key`. → `Value` (`None` if
    /// there is none).
    QueueFetch {
        /// Broker id.
        id: u64,
        /// The key from the datagram.
        key: u64,
    },
    /// queue: one operation on a queue that lives in a JetStream stream
    /// (shared with a process on another host, `crate::cluster::queue`).
    /// → `Ok`, `Bool`, `Len` or `Value`, as [`RemoteOp`] says.
    QueueRemote {
        /// Broker id.
        id: u64,
        /// What to do.
        op: RemoteOp,
    },
    /// pipe: the caller enlarges (`grow`) the buffers of one of its pipe
    /// ends for a large message, or lets one such end go; each enlarged
    /// end is charged to the run's shared memory. → `Ok`.
    PipeBuffer {
        /// Enlarge (true) or let go (false).
        grow: bool,
    },
    /// pool: a pool of this guest. → `Object`.
    PoolCreate {
        /// `None`: one per CPU.
        processes: Option<u32>,
        /// A task each worker runs first, and its bincode argument.
        initializer: Option<(String, serde_bytes::ByteBuf)>,
        /// `None`: the run's default.
        maxtasksperchild: Option<u64>,
    },
    /// pool: start a job. → `Object` (the job's id).
    PoolSubmit {
        /// Broker id of the pool.
        pool: u64,
        /// Task name.
        task: String,
        /// Inputs in the batch format.
        #[serde(with = "serde_bytes")]
        inputs: Vec<u8>,
        /// Results in input order.
        ordered: bool,
        /// Inputs per chunk; `None` picks.
        chunksize: Option<u32>,
    },
    /// pool: the job's results that have arrived (at least one). → `Items`.
    JobNext {
        /// Broker id of the job.
        job: u64,
        /// `None`: forever.
        timeout_ms: Option<u64>,
    },
    /// pool: `close` (`terminate` false) or `terminate`. → `Ok`.
    PoolStop {
        /// Broker id.
        pool: u64,
        /// Kill the workers now.
        terminate: bool,
    },
    /// pool: wait for the workers after close/terminate. → `Ok`.
    PoolJoin {
        /// Broker id.
        pool: u64,
    },
    /// shared: a new region. → `Region` (descriptor: the memfd).
    RegionCreate {
        /// Bytes.
        size: u64,
        /// Attachable by this name.
        name: Option<String>,
    },
    /// shared: the region of this name. → `Region` (descriptor: the memfd).
    RegionAttach {
        /// Its name.
        name: String,
    },
    /// shared: remove a region's name. → `Ok`.
    RegionUnlink {
        /// Broker id.
        id: u64,
    },
    /// sync: a new primitive. → `Sync` (descriptor: its page).
    SyncCreate {
        /// Which.
        kind: SyncKind,
    },
    /// manager: a new container. → `Proxy`.
    ManagerCreate {
        /// Which.
        container: Container,
    },
    /// manager: one operation on a container. → `Len`, `Bool`, `Value`,
    /// `Items` or `Ok`.
    Manager {
        /// Broker id.
        id: u64,
        /// What to do.
        op: ManagerOp,
    },
}

/// A synchronization primitive's kind (the WIT `sync.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SyncKind {
    /// Lock.
    Lock,
    /// RLock.
    RLock,
    /// Semaphore; bounded for BoundedSemaphore.
    Semaphore {
        /// Initial value.
        value: u32,
        /// Whether `release` may not exceed it.
        bounded: bool,
    },
    /// Event.
    Event,
    /// Condition, with its own RLock.
    Condition,
    /// Barrier.
    Barrier {
        /// How many processes must wait.
        parties: u32,
    },
}

/// What a manager proxy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Container {
    /// `Manager().list()`.
    List,
    /// `Manager().dict()`.
    Dict,
    /// `Manager().Namespace()`.
    Namespace,
}

/// One operation on a queue kept in a JetStream stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteOp {
    /// Append an item. → `Bool` (false: the queue stayed full until the
    /// timeout).
    Put {
        /// The encoded item.
        item: serde_bytes::ByteBuf,
        /// `None`: wait for room forever.
        timeout_ms: Option<u64>,
    },
    /// Take the oldest item. → `Value` (`None`: empty until the timeout).
    Get {
        /// `None`: wait forever.
        timeout_ms: Option<u64>,
    },
    /// Items waiting to be taken. → `Len`.
    Qsize,
    /// One taken item is done (joinable queues). → `Bool` (false: none
    /// is waiting to be marked done here).
    TaskDone,
    /// Wait until every item put is done. → `Bool` (false: timed out).
    Join {
        /// `None`: forever.
        timeout_ms: Option<u64>,
    },
}

/// One operation on a manager container; keys, values and indices are
/// bincode bytes (see the WIT `manager` interface).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ManagerOp {
    /// Number of items.
    Len,
    /// List: push.
    Append(serde_bytes::ByteBuf),
    /// List: push several.
    Extend(Vec<serde_bytes::ByteBuf>),
    /// List: insert before an index.
    Insert(i64, serde_bytes::ByteBuf),
    /// Value at an index or key.
    Get(serde_bytes::ByteBuf),
    /// Set at an index or key.
    Set(serde_bytes::ByteBuf, serde_bytes::ByteBuf),
    /// Remove and return.
    Pop(Option<serde_bytes::ByteBuf>),
    /// Membership.
    Contains(serde_bytes::ByteBuf),
    /// Snapshot.
    Items,
    /// Empty it.
    Clear,
    /// Keep the objects behind these tokens alive (handles stored in it).
    Keep(Vec<u64>),
}

/// A process as the broker sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProcessDesc {
    /// Broker id.
    pub(crate) id: u64,
    /// Name.
    pub(crate) name: String,
    /// Daemon flag.
    pub(crate) daemon: bool,
    /// OS pid once started.
    pub(crate) pid: Option<u32>,
    /// Exit code once ended.
    pub(crate) exitcode: Option<i32>,
}

/// One result of a pool job: its input's position and its payload, or the
/// failure's kind and message.
pub(crate) type JobItem = (u64, Result<serde_bytes::ByteBuf, (String, String)>);

/// Parent → worker: the answer to one [`Call`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Done.
    Ok,
    /// Refused or failed.
    Err(CallError),
    /// A process.
    Process(ProcessDesc),
    /// Several processes.
    Processes(Vec<ProcessDesc>),
    /// `ProcessJoin`: the exit code, or `None` if still running.
    Joined(Option<i32>),
    /// The caller's parent: pid and name.
    Parent(Option<(u32, String)>),
    /// A token.
    Token(u64),
    /// A queue; descriptors: sending socket, receiving socket, page.
    Queue {
        /// Broker id.
        id: u64,
        /// 0: unbounded.
        maxsize: u32,
        /// Joinable.
        joinable: bool,
    },
    /// A connection end; one descriptor.
    Connection {
        /// Receives.
        readable: bool,
        /// Sends.
        writable: bool,
    },
    /// A pool or job; a stored queue item's key.
    Object(u64),
    /// A job's results that arrived; empty when all were delivered.
    JobItems(Vec<JobItem>),
    /// A shared region; one descriptor (its memfd).
    Region {
        /// Broker id.
        id: u64,
        /// Bytes.
        size: u64,
        /// Its name, if any.
        name: Option<String>,
    },
    /// A synchronization primitive; one descriptor (its page).
    Sync {
        /// Broker id.
        id: u64,
        /// Which.
        kind: SyncKind,
    },
    /// A manager container.
    Proxy {
        /// Broker id.
        id: u64,
        /// Which.
        container: Container,
    },
    /// A count.
    Len(u64),
    /// A yes or no.
    Bool(bool),
    /// A value, or none.
    Value(Option<serde_bytes::ByteBuf>),
    /// Pairs (list values come with empty keys).
    Items(Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>),
}

/// Why a call failed; mirrors the WIT `types.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum CallError {
    /// The object was closed.
    #[error("closed")]
    Closed,
    /// A timed wait ran out.
    #[error("timed out")]
    Timeout,
    /// Not a handle the caller holds, or an unknown token.
    #[error("invalid handle")]
    InvalidHandle,
    /// A sandbox limit refused it.
    #[error("limit: {0}")]
    Limit(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}
