//! The worker host: `mpwasm serve --cluster URL`.
//!
//! `--slots N` loops each pull one chunk at a time from the hosts' shared
//! consumer and run it on a local pool of N sandboxed worker processes (one
//! pool per caller, made on its first chunk and stopped when the caller
//! ends or goes silent). While a chunk runs its slot sends `+WPI` every
//! `AckWait / 3`; when it is done the slot publishes the result, waits for
//! the server to store it, then acks the chunk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, message::PublishMessage, AckKind};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::wire::{self, ChunkMsg, ResultMsg};
use super::{nats_error, run_of, ClusterOptions, CHUNKS, RUN_SILENCE};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::load::Cache;
use crate::pool::{Pool, PoolBuilder};

/// A worker host's options: where the cluster is, how many chunks it runs
/// at once, and the sandbox every chunk runs in (a ceiling for callers).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    cluster: ClusterOptions,
    slots: usize,
    sandbox: PoolBuilder,
    cache: Cache,
    ack_wait: Duration,
    max_deliver: i64,
}

impl ServeOptions {
    /// Serves the cluster `cluster` with `slots` worker processes.
    /// `sandbox` carries the limits and grants (memory, deadline, fuel,
    /// directories, environment, worker program): what it sets is the most
    /// a caller gets; its guest path is ignored.
    pub fn new(cluster: ClusterOptions, slots: usize, sandbox: PoolBuilder, cache: Cache) -> Self {
        ServeOptions {
            cluster,
            slots: slots.max(1),
            sandbox,
            cache,
            ack_wait: Duration::from_secs(5),
            max_deliver: 5,
        }
    }

    /// How long the server waits for a chunk's ack or `+WPI` before it
    /// hands the chunk to another host (default 5 s). Applies when this
    /// host makes the shared consumer (the first host to start does).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait.max(Duration::from_millis(300));
        self
    }

    /// How many times a chunk is delivered before the server gives up on
    /// it and its caller fails its inputs with `worker_lost` (default 5).
    pub fn max_deliver(mut self, n: u32) -> Self {
        self.max_deliver = i64::from(n.max(1));
        self
    }
}

/// Runs a worker host until the process is killed.
///
/// # Errors
///
/// [`Error::Cluster`] if the cluster cannot be reached at start or refuses
/// the streams; [`Error::Spawn`] if the runtime cannot start.
pub fn serve(options: ServeOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mpwasm-serve")
        .enable_all()
        .build()
        .map_err(|e| Error::Spawn(format!("cannot start the host runtime: {e}")))?;
    runtime.block_on(async move {
        let host = Host::connect(options).await?;
        host.run().await
    })
}

/// What a host knows of one caller.
struct RunState {
    last_seen: Instant,
    stopped: bool,
    /// Its chunks still queued were purged (it is gone).
    purged: bool,
    pool: Option<Arc<Pool>>,
}

struct Host {
    options: ServeOptions,
    client: async_nats::Client,
    js: jetstream::Context,
    consumer: consumer::PullConsumer,
    guests: jetstream::object_store::ObjectStore,
    runs: Mutex<HashMap<String, RunState>>,
    /// Serializes fetching guests and making pools.
    making: tokio::sync::Mutex<()>,
    guest_dir: PathBuf,
}

/// Why a chunk was not run.
enum NotRun {
    /// Its caller is gone or stopped it: drop it.
    Dropped,
    /// This host could not run it now (guest unavailable, ...): another
    /// delivery may.
    Retry(String),
}

impl Host {
    async fn connect(options: ServeOptions) -> Result<Arc<Host>> {
        let client = options
            .cluster
            .connect(&format!("mpwasm host {}", std::process::id()))
            .await?;
        let js = jetstream::new(client.clone());
        let (storage, replicas) = (
            options.cluster.storage_kind(),
            options.cluster.replica_count(),
        );
        super::ensure_streams(&js, storage, replicas).await?;
        let consumer = super::hosts_consumer(&js, options.ack_wait, options.max_deliver).await?;
        let guests = super::guest_store(&js, storage, replicas).await?;
        let guest_dir = options.cache.dir().join("cluster-guests");
        std::fs::create_dir_all(&guest_dir)
            .map_err(|e| Error::Spawn(format!("{}: {e}", guest_dir.display())))?;
        Ok(Arc::new(Host {
            options,
            client,
            js,
            consumer,
            guests,
            runs: Mutex::new(HashMap::new()),
            making: tokio::sync::Mutex::new(()),
            guest_dir,
        }))
    }

    async fn run(self: Arc<Self>) -> Result<()> {
        let mut alive = self
            .client
            .subscribe("mpwasm.alive.*")
            .await
            .map_err(|e| nats_error("cannot subscribe", e))?;
        let mut stop = self
            .client
            .subscribe("mpwasm.stop.*")
            .await
            .map_err(|e| nats_error("cannot subscribe", e))?;
        for _ in 0..self.options.slots {
            tokio::spawn(self.clone().slot());
        }
        let mut janitor = tokio::time::interval(Duration::from_millis(200));
        eprintln!(
            "mpwasm: serving {} with {} slots",
            self.options.cluster.url(),
            self.options.slots
        );
        loop {
            tokio::select! {
                Some(msg) = alive.next() => self.heard(&msg.subject, false),
                Some(msg) = stop.next() => self.heard(&msg.subject, true),
                _ = janitor.tick() => self.sweep(),
            }
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunState>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn heard(&self, subject: &str, stopped: bool) {
        let Some(run) = run_of(subject) else { return };
        let mut runs = self.runs();
        let state = runs.entry(run.to_string()).or_insert(RunState {
            last_seen: Instant::now(),
            stopped: false,
            purged: false,
            pool: None,
        });
        state.last_seen = Instant::now();
        state.stopped |= stopped;
    }

    /// Stops the pools of callers that ended or went silent, and forgets
    /// callers long gone.
    fn sweep(&self) {
        let mut stopping = Vec::new();
        self.runs().retain(|_, state| {
            let silent = state.last_seen.elapsed() > RUN_SILENCE;
            if silent || state.stopped {
                if let Some(pool) = state.pool.take() {
                    pool.terminate();
                    stopping.push(pool);
                }
            }
            state.last_seen.elapsed() < Duration::from_secs(600)
        });
        if !stopping.is_empty() {
            // Dropping a pool waits for its workers to exit.
            tokio::task::spawn_blocking(move || drop(stopping));
        }
    }

    /// Whether the run's caller is alive, waiting up to [`RUN_SILENCE`] to
    /// hear from one not heard from yet.
    async fn alive(&self, run: &str) -> bool {
        let deadline = Instant::now() + RUN_SILENCE;
        loop {
            if let Some(state) = self.runs().get(run) {
                if state.stopped {
                    return false;
                }
                if state.last_seen.elapsed() <= RUN_SILENCE {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One slot: pull a chunk, run it, repeat.
    async fn slot(self: Arc<Self>) {
        loop {
            let batch = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!("cluster: pulling a chunk: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            while let Some(msg) = batch.next().await {
                match msg {
                    Ok(msg) => self.handle(Arc::new(msg)).await,
                    Err(e) => tracing::debug!("cluster: pulling a chunk: {e}"),
                }
            }
        }
    }

    async fn handle(&self, msg: Arc<jetstream::Message>) {
        let Some(run) = run_of(&msg.subject).map(str::to_string) else {
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        };
        let chunk: ChunkMsg = match wire::decode(&msg.payload) {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::warn!("cluster: a chunk of run {run} does not decode ({e}); dropped");
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
        };
        let progress = {
            let msg = msg.clone();
            let period = self.options.ack_wait / 3;
            tokio::spawn(async move {
                loop {
                    let _ = msg.ack_with(AckKind::Progress).await;
                    tokio::time::sleep(period).await;
                }
            })
        };
        let outcome = self.run_chunk(&run, chunk).await;
        progress.abort();
        match outcome {
            Ok(result) => {
                if self.publish_result(&run, result).await {
                    let _ = msg.double_ack().await;
                }
            }
            Err(NotRun::Dropped) => {
                let _ = msg.ack_with(AckKind::Term).await;
                self.purge_run(&run).await;
            }
            Err(NotRun::Retry(why)) => {
                tracing::warn!("cluster: a chunk of run {run} not run here: {why}");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }

    async fn run_chunk(
        &self,
        run: &str,
        chunk: ChunkMsg,
    ) -> std::result::Result<ResultMsg, NotRun> {
        if !self.alive(run).await {
            return Err(NotRun::Dropped);
        }
        let pool = self.pool_for(run, &chunk).await?;
        let inputs = Batch::parse(chunk.inputs).map_err(|e| NotRun::Retry(e.to_string()))?;
        let (task, codec) = (chunk.task, chunk.codec);
        let done = tokio::task::spawn_blocking(move || pool.run_chunk(&task, codec, inputs))
            .await
            .map_err(|e| NotRun::Retry(e.to_string()))?;
        match done {
            Ok(done) => Ok(ResultMsg {
                chunk: chunk.chunk,
                results: done.results.encoded(0..done.results.len()).to_vec(),
                failures: done.failures,
            }),
            Err(Error::Terminated) => Err(NotRun::Dropped),
            Err(e) => Err(NotRun::Retry(e.to_string())),
        }
    }

    /// The run's local pool, made on its first chunk.
    async fn pool_for(
        &self,
        run: &str,
        chunk: &ChunkMsg,
    ) -> std::result::Result<Arc<Pool>, NotRun> {
        if let Some(pool) = self.runs().get(run).and_then(|s| s.pool.clone()) {
            return Ok(pool);
        }
        let _making = self.making.lock().await;
        if let Some(pool) = self.runs().get(run).and_then(|s| s.pool.clone()) {
            return Ok(pool);
        }
        let path = self.guest(&chunk.guest).await.map_err(NotRun::Retry)?;
        let builder = self
            .options
            .sandbox
            .clone()
            .for_cluster_chunk(path, self.options.slots, &chunk.limits)
            .cache(self.options.cache.clone());
        let pool = tokio::task::spawn_blocking(move || builder.build())
            .await
            .map_err(|e| NotRun::Retry(e.to_string()))?
            .map_err(|e| NotRun::Retry(e.to_string()))?;
        if !chunk.queues.is_empty() && super::run_of(&format!(".{}", chunk.queues)).is_some() {
            let queues = super::queue::Queues::host(
                self.client.clone(),
                tokio::runtime::Handle::current(),
                chunk.queues.clone(),
            );
            let _ = pool.broker().queues_or_init(|| Ok(queues));
        }
        let pool = Arc::new(pool);
        let mut runs = self.runs();
        match runs.get_mut(run) {
            Some(state) if !state.stopped => {
                state.pool = Some(pool.clone());
                Ok(pool)
            }
            _ => Err(NotRun::Dropped),
        }
    }

    /// The guest with this hash, fetched into the host's guest directory if
    /// it is not there; bytes whose hash differs are never written.
    async fn guest(&self, hash: &str) -> std::result::Result<PathBuf, String> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a guest hash that is not BLAKE3 hex: {hash:.80}"));
        }
        for kept in [GuestKind::Wasm, GuestKind::Python] {
            let path = self.guest_dir.join(kept.file_name(hash));
            if path.is_file() {
                return Ok(path);
            }
        }
        let mut object = self
            .guests
            .get(hash)
            .await
            .map_err(|e| format!("cannot fetch guest {hash}: {e}"))?;
        let mut bytes = Vec::new();
        (&mut object)
            .take(crate::limits::MAX_GUEST_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("cannot fetch guest {hash}: {e}"))?;
        let actual = blake3::hash(&bytes).to_hex();
        if actual.as_str() != hash {
            return Err(format!(
                "the guest fetched as {hash} hashes to {actual}: not run"
            ));
        }
        let path = self.guest_dir.join(GuestKind::of(&bytes).file_name(hash));
        let tmp = self
            .guest_dir
            .join(format!("{hash}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// Publishes a chunk's result and waits until the server stored it
    /// (retrying while the caller is alive). Returns whether it did.
    async fn publish_result(&self, run: &str, result: ResultMsg) -> bool {
        let payload = bytes::Bytes::from(wire::encode(&result));
        let id = format!("{run}.{}", result.chunk);
        for _ in 0..300 {
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(&id);
            if let Ok(ack) = self
                .js
                .send_publish(super::result_subject(run), message)
                .await
            {
                if ack.await.is_ok() {
                    return true;
                }
            }
            if !self.alive(run).await {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Drops the queued chunks of a caller that is gone, once.
    async fn purge_run(&self, run: &str) {
        {
            let mut runs = self.runs();
            let state = runs.entry(run.to_string()).or_insert(RunState {
                last_seen: Instant::now()
                    .checked_sub(RUN_SILENCE * 2)
                    .unwrap_or_else(Instant::now),
                stopped: true,
                purged: false,
                pool: None,
            });
            if state.purged {
                return;
            }
            state.purged = true;
        }
        if let Ok(stream) = self.js.get_stream_no_info(CHUNKS).await {
            let _ = stream.purge().filter(super::chunk_subject(run)).await;
        }
        if let Ok(stream) = self.js.get_stream_no_info(super::RESULTS).await {
            let _ = stream.purge().filter(super::result_subject(run)).await;
            let _ = stream.delete_consumer(&super::results_consumer(run)).await;
        }
    }
}

/// What a fetched guest is, which names the file it is kept in: the host
/// loads a Python program (`.py`) with its own Python component and the
/// source in the guest's environment, as `mpwasm pool prog.py` does.
#[derive(Clone, Copy)]
enum GuestKind {
    /// A wasm module or component.
    Wasm,
    /// A Python program's source.
    Python,
}

impl GuestKind {
    /// Wasm starts with the magic `\0asm`; a Python source, UTF-8 text,
    /// never starts with a NUL (the host's loader rejects whatever else
    /// it is).
    fn of(bytes: &[u8]) -> Self {
        if bytes.starts_with(b"\0asm") {
            GuestKind::Wasm
        } else {
            GuestKind::Python
        }
    }

    fn file_name(self, hash: &str) -> String {
        match self {
            GuestKind::Wasm => format!("{hash}.wasm"),
            GuestKind::Python => format!("{hash}.py"),
        }
    }
}
