//! Pools across machines, on NATS JetStream.
//!
//! A *worker host* (`mpwasm serve --cluster URL`, [`serve`]) runs chunks on
//! its own sandboxed worker processes, with today's local pool; a *caller*
//! ([`PoolBuilder::cluster`](crate::PoolBuilder::cluster), `mpwasm pool
//! --cluster URL`) sends a pool's chunks to the cluster instead of to local
//! workers. Every `Pool` method works unchanged: the caller's dispatcher
//! takes the chunks the pool's scheduler cuts and hands back each chunk's
//! results, so ordering, per-input errors and `imap` back-pressure are the
//! local pool's.
//!
//! # The protocol
//!
//! One caller is one *run*, named by 128 random bits (`RUN`, hex). Every
//! subject a run uses carries its name, so a NATS account can be scoped to
//! one run (`mpwasm.*.RUN.>`).
//!
//! | what | where | how |
//! |---|---|---|
//! | guest | object store `MPWASM_GUESTS`, object named by its BLAKE3 hash | put once by the caller; a host fetches it, checks the hash, compiles and caches it |
//! | chunk | stream `MPWASM_CHUNKS` (work-queue retention), subject `mpwasm.chunk.RUN` | one message per chunk, `Nats-Msg-Id` `RUN.N` (N counts the run's chunks), so a republished chunk is dropped by the server |
//! | hosts' consumer | durable pull consumer `hosts` on `MPWASM_CHUNKS` | explicit ack, `AckWait` and `MaxDeliver` set by the hosts (`--ack-wait`, `--max-deliver`) |
//! | result | stream `MPWASM_RESULTS` (limits retention), subject `mpwasm.result.RUN` | `Nats-Msg-Id` = the chunk's id; read by the caller through its durable consumer `rRUN` (made again if a restarted server lost it) |
//! | liveness | core NATS `mpwasm.alive.RUN` every [`HEARTBEAT`] | a host drops the chunks of a run it has not heard from for [`RUN_SILENCE`] and stops any it is running |
//! | stop | core NATS `mpwasm.stop.RUN` | `terminate()`: hosts stop the run's chunks at once |
//!
//! Delivery: a host takes one chunk per free slot, sends `+WPI` (in
//! progress) every `AckWait / 3` while it runs, publishes the result and
//! waits for the server to store it, and only then acks the chunk (a double
//! ack). A host that dies or stalls stops sending `+WPI`, so the server
//! hands its chunks to another host after `AckWait`. A result can therefore
//! arrive twice (a stalled host that wakes up, or a late ack taken for the
//! redelivery, nats-server#4786): the caller keeps the first result of each
//! chunk and drops the rest, so every input is answered exactly once. A
//! chunk delivered `MaxDeliver` times without a result is failed by the
//! caller with `worker_lost` when the server's max-deliveries advisory
//! arrives.
//!
//! The network client lives in the host process (the worker host or the
//! caller), never in a sandboxed worker: guests see no more than in a local
//! pool. A host's sandbox options are a ceiling: a caller may ask for a
//! lower memory cap, deadline or fuel budget, never for more, and never for
//! files or environment.

mod caller;
mod options;
pub(crate) mod queue;
mod serve;
mod wire;

pub(crate) use caller::start as start_caller;
pub use options::ClusterOptions;
pub use serve::{serve, ServeOptions};
pub(crate) use wire::Limits;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::error::{Error, Result};

/// How often a caller says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long a host waits without a caller's heartbeat before it takes the
/// caller for dead: it stops the caller's chunks and drops those queued.
pub const RUN_SILENCE: Duration = Duration::from_secs(3);

/// The most re-runs a caller may ask of a host for a task whose worker
/// process died.
pub(crate) const MAX_RETRIES: u32 = 10;

/// The stream of chunks waiting for a host.
const CHUNKS: &str = "MPWASM_CHUNKS";
/// The stream of chunks' results.
const RESULTS: &str = "MPWASM_RESULTS";
/// The object store holding guests by hash.
const GUESTS: &str = "MPWASM_GUESTS";
/// The hosts' shared durable consumer of [`CHUNKS`].
const HOSTS: &str = "hosts";

/// How long the server remembers message ids to drop republished chunks
/// and results.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Results nobody read (their caller died) are dropped after this.
const RESULT_MAX_AGE: Duration = Duration::from_secs(3600);

fn chunk_subject(run: &str) -> String {
    format!("mpwasm.chunk.{run}")
}

fn result_subject(run: &str) -> String {
    format!("mpwasm.result.{run}")
}

/// The durable consumer through which a caller reads its results.
fn results_consumer(run: &str) -> String {
    format!("r{run}")
}

fn alive_subject(run: &str) -> String {
    format!("mpwasm.alive.{run}")
}

fn stop_subject(run: &str) -> String {
    format!("mpwasm.stop.{run}")
}

/// The run a subject `mpwasm.<kind>.<run>` names.
fn run_of(subject: &str) -> Option<&str> {
    let run = subject.rsplit('.').next()?;
    (run.len() == 32 && run.bytes().all(|b| b.is_ascii_hexdigit())).then_some(run)
}

/// A fresh run name: 128 random bits in hex.
fn new_run() -> String {
    let mut bytes = [0u8; 16];
    // getrandom(2) on Linux; falls back to the time and pid, which only
    // needs to be unique, not secret (subjects are not credentials).
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the cluster's streams keep their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk: a job survives a restart of the NATS server.
    #[default]
    File,
    /// In memory: faster, lost if the server restarts.
    Memory,
}

impl Storage {
    fn nats(self) -> stream::StorageType {
        match self {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        }
    }
}

/// Makes the chunk and result streams if they do not exist (every host and
/// caller does this; the first one wins and the rest find them).
async fn ensure_streams(js: &jetstream::Context, storage: Storage, replicas: usize) -> Result<()> {
    let chunks = stream::Config {
        name: CHUNKS.into(),
        subjects: vec!["mpwasm.chunk.*".into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: storage.nats(),
        num_replicas: replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    get_or_create(js, chunks, "cannot make the chunk stream").await?;
    let results = stream::Config {
        name: RESULTS.into(),
        subjects: vec!["mpwasm.result.*".into()],
        retention: stream::RetentionPolicy::Limits,
        storage: storage.nats(),
        num_replicas: replicas,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: RESULT_MAX_AGE,
        ..Default::default()
    };
    get_or_create(js, results, "cannot make the result stream").await?;
    Ok(())
}

/// `get_or_create_stream`, tolerating a creator that raced us: when hosts
/// and a caller start together, the server can refuse the loser's create
/// ("subjects overlap with an existing stream") while the winner's stream
/// is being made. Then the stream is looked up again (a few times, briefly
/// apart) before the error is reported.
async fn get_or_create(js: &jetstream::Context, config: stream::Config, what: &str) -> Result<()> {
    let name = config.name.clone();
    let created = match js.get_or_create_stream(config).await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if js.get_stream(&name).await.is_ok() {
            return Ok(());
        }
    }
    Err(nats_error(what, created))
}

/// The hosts' shared consumer of chunks.
async fn hosts_consumer(
    js: &jetstream::Context,
    ack_wait: Duration,
    max_deliver: i64,
) -> Result<consumer::PullConsumer> {
    let stream = js
        .get_stream(CHUNKS)
        .await
        .map_err(|e| nats_error("cannot open the chunk stream", e))?;
    stream
        .get_or_create_consumer(
            HOSTS,
            consumer::pull::Config {
                durable_name: Some(HOSTS.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver,
                max_ack_pending: 100_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| nats_error("cannot make the hosts' consumer", e))
}

/// An error from NATS, with what was being done.
fn nats_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Cluster(format!("{what}: {e}"))
}

/// The object store of guests, made if missing.
async fn guest_store(
    js: &jetstream::Context,
    storage: Storage,
    replicas: usize,
) -> Result<jetstream::object_store::ObjectStore> {
    if let Ok(store) = js.get_object_store(GUESTS).await {
        return Ok(store);
    }
    js.create_object_store(jetstream::object_store::Config {
        bucket: GUESTS.into(),
        storage: storage.nats(),
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error("cannot make the guest store", e))
}
