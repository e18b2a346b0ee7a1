//! The caller's side: a pool whose chunks go to the cluster.
//!
//! One dispatcher thread per cluster pool stands where a local pool's
//! driver threads stand: it takes the chunks the pool's scheduler cuts
//! ([`Job::Run`]), publishes each as one message, and hands each chunk's
//! first result back to the scheduler. Every `Pool` method therefore keeps
//! its local semantics (ordering, per-input errors, `imap`'s bound on
//! chunks in flight).

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use crossbeam_channel::{Receiver, Sender};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::wire::{self, ChunkMsg, Limits, ResultMsg};
use super::{nats_error, ClusterOptions, CHUNKS, HOSTS, RESULTS};
use crate::batch::Batch;
use crate::error::{Error, Result, TaskErrorKind};
use crate::load::Cache;
use crate::pool::{ChunkDone, Job, Shared};
use crate::wire::Failure;

/// How long a chunk is re-published for before its inputs fail (the server
/// drops the copies by message id).
const PUBLISH_PATIENCE: Duration = Duration::from_secs(60);
/// The most `terminate()` waits for the cluster to purge the run's chunks.
const PURGE_PATIENCE: Duration = Duration::from_secs(2);
/// The server drops a dead caller's result consumer after this long unused
/// (servers 2.10 and later; hosts also drop it when they see the caller
/// gone).
const RESULTS_INACTIVE: Duration = Duration::from_secs(300);

/// Connects, publishes the guest, and starts the dispatcher for a pool
/// built with [`PoolBuilder::cluster`](crate::PoolBuilder::cluster).
///
/// # Errors
///
/// [`Error::Cluster`] if the cluster cannot be reached or refuses the
/// streams or the guest; [`Error::Spawn`] if a thread cannot start.
pub(crate) fn start(
    options: ClusterOptions,
    shared: Arc<Shared>,
    cache: Cache,
    jobs: Receiver<Job>,
    terminated: Receiver<()>,
) -> Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mpwasm-cluster")
        .enable_all()
        .build()
        .map_err(|e| Error::Spawn(format!("cannot start the cluster runtime: {e}")))?;
    let mut dispatcher = runtime.block_on(Dispatcher::connect(&options, &shared, cache))?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("mpwasm-cluster-jobs".into())
        .spawn(move || bridge(jobs, terminated, tx))
        .map_err(|e| Error::Spawn(format!("cannot start a thread: {e}")))?;
    std::thread::Builder::new()
        .name("mpwasm-cluster".into())
        .spawn(move || runtime.block_on(dispatcher.run(rx)))
        .map_err(|e| Error::Spawn(format!("cannot start a thread: {e}")))
}

/// What the dispatcher hears from the pool.
enum FromPool {
    Job(Job),
    /// Every sender of jobs is gone: finish what is pending, then stop.
    NoMoreJobs,
    /// `terminate()`, or the pool was dropped.
    Terminate,
}

/// Carries the pool's jobs (a crossbeam channel) into the async
/// dispatcher.
fn bridge(jobs: Receiver<Job>, terminated: Receiver<()>, tx: mpsc::UnboundedSender<FromPool>) {
    loop {
        crossbeam_channel::select! {
            recv(jobs) -> job => match job {
                Ok(job) => {
                    if tx.send(FromPool::Job(job)).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let _ = tx.send(FromPool::NoMoreJobs);
                    let _ = terminated.recv();
                    let _ = tx.send(FromPool::Terminate);
                    return;
                }
            },
            recv(terminated) -> _ => {
                let _ = tx.send(FromPool::Terminate);
                return;
            }
        }
    }
}

/// A chunk sent and not answered yet.
struct Pending {
    first_index: u64,
    len: usize,
    reply: Sender<ChunkDone>,
}

/// What a publishing task reports.
enum Published {
    /// The chunk is in the stream at this sequence.
    Stored(u64, u64),
    /// The chunk could not be published.
    Failed(u64, String),
}

struct Dispatcher {
    client: async_nats::Client,
    js: jetstream::Context,
    run: String,
    guest_hash: String,
    limits: Limits,
    max_payload: usize,
    shared: Arc<Shared>,
    cache: Cache,
    /// Result messages' payloads, from [`read_results`].
    results: mpsc::UnboundedReceiver<bytes::Bytes>,
    advisories: async_nats::Subscriber,
    next_chunk: u64,
    pending: HashMap<u64, Pending>,
    /// Stream sequence → chunk, for max-deliveries advisories.
    by_seq: HashMap<u64, u64>,
}

impl Dispatcher {
    async fn connect(options: &ClusterOptions, shared: &Arc<Shared>, cache: Cache) -> Result<Self> {
        let run = super::new_run();
        let client = options.connect(&format!("mpwasm caller {run}")).await?;
        let js = jetstream::new(client.clone());
        super::ensure_streams(&js, options.storage_kind(), options.replica_count()).await?;
        let guest_hash = publish_guest(&js, shared.launch().guest.source(), options).await?;
        let (results_tx, results) = mpsc::unbounded_channel();
        tokio::spawn(read_results(js.clone(), run.clone(), results_tx));
        let advisories = client
            .subscribe(format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{CHUNKS}.{HOSTS}"
            ))
            .await
            .map_err(|e| nats_error("cannot subscribe to advisories", e))?;
        let sandbox = shared.sandbox();
        let limits = Limits {
            memory: sandbox.memory,
            timeout_ms: sandbox.timeout.map(|t| t.as_millis() as u64),
            fuel: sandbox.fuel,
            retries: shared.retries(),
        };
        let max_payload = client.server_info().max_payload;
        Ok(Dispatcher {
            client,
            js,
            run,
            guest_hash,
            limits,
            max_payload,
            shared: shared.clone(),
            cache,
            results,
            advisories,
            next_chunk: 0,
            pending: HashMap::new(),
            by_seq: HashMap::new(),
        })
    }

    async fn run(&mut self, mut from_pool: mpsc::UnboundedReceiver<FromPool>) {
        let (published_tx, mut published) = mpsc::unbounded_channel();
        let mut heartbeat = tokio::time::interval(super::HEARTBEAT);
        let mut more_jobs = true;
        loop {
            if !more_jobs && self.pending.is_empty() {
                break;
            }
            tokio::select! {
                msg = from_pool.recv() => match msg {
                    Some(FromPool::Job(job)) => self.job(job, &published_tx),
                    Some(FromPool::NoMoreJobs) => more_jobs = false,
                    Some(FromPool::Terminate) | None => {
                        self.stop().await;
                        return;
                    }
                },
                Some(p) = published.recv() => match p {
                    Published::Stored(chunk, seq) => {
                        if self.pending.contains_key(&chunk) {
                            self.by_seq.insert(seq, chunk);
                        }
                    }
                    Published::Failed(chunk, why) => {
                        self.fail_chunk(chunk, TaskErrorKind::WorkerLost, &why);
                    }
                },
                Some(payload) = self.results.recv() => self.result(&payload),
                Some(msg) = self.advisories.next() => self.advisory(&msg.payload),
                _ = heartbeat.tick() => {
                    let _ = self.client.publish(super::alive_subject(&self.run), "".into()).await;
                }
            }
        }
        self.purge(&[super::result_subject(&self.run)]).await;
    }

    fn job(&mut self, job: Job, published: &mpsc::UnboundedSender<Published>) {
        match job {
            Job::Run(chunk) => {
                let n = self.next_chunk;
                self.next_chunk += 1;
                let len = chunk.inputs.len();
                let msg = ChunkMsg {
                    chunk: n,
                    guest: self.guest_hash.clone(),
                    task: chunk.task.to_string(),
                    codec: chunk.codec,
                    limits: self.limits.clone(),
                    queues: self
                        .shared
                        .broker()
                        .queues()
                        .map(|q| q.ns().to_string())
                        .unwrap_or_default(),
                    inputs: chunk.inputs.encoded(0..len).to_vec(),
                };
                self.pending.insert(
                    n,
                    Pending {
                        first_index: chunk.first_index,
                        len,
                        reply: chunk.reply,
                    },
                );
                let bytes = wire::encode(&msg);
                if bytes.len() > self.max_payload {
                    let why = format!(
                        "its chunk is {} bytes, over the cluster's message limit of {} (max_payload): use a smaller chunksize",
                        bytes.len(),
                        self.max_payload
                    );
                    self.fail_chunk(n, TaskErrorKind::BadInput, &why);
                    return;
                }
                let js = self.js.clone();
                let subject = super::chunk_subject(&self.run);
                let id = format!("{}.{n}", self.run);
                let published = published.clone();
                tokio::spawn(async move {
                    let outcome = match publish(&js, subject, id, bytes).await {
                        Ok(seq) => Published::Stored(n, seq),
                        Err(why) => Published::Failed(n, why),
                    };
                    let _ = published.send(outcome);
                });
            }
            Job::Names(reply) => {
                let (shared, cache) = (self.shared.clone(), self.cache.clone());
                tokio::task::spawn_blocking(move || {
                    let _ = reply.send(local_task_names(&shared, cache));
                });
            }
            Job::Main(reply) => {
                let _ = reply.send(Err(Error::Config(
                    "a cluster pool runs tasks, not main".into(),
                )));
            }
        }
    }

    /// A result from some host: the first one for a chunk wins.
    fn result(&mut self, payload: &[u8]) {
        let msg: ResultMsg = match wire::decode(payload) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!("cluster: a result that does not decode ({e}); dropped");
                return;
            }
        };
        let Some(pending) = self.pending.remove(&msg.chunk) else {
            return; // a duplicate (a redelivered chunk), or not ours
        };
        let done = match check_result(msg, pending.first_index, pending.len) {
            Ok(done) => done,
            Err(why) => failed(
                pending.first_index,
                pending.len,
                TaskErrorKind::BadOutput,
                &format!("a worker host sent a malformed result: {why}"),
            ),
        };
        let _ = pending.reply.send(done);
    }

    /// The server gave up on a chunk after `MaxDeliver` deliveries.
    fn advisory(&mut self, payload: &[u8]) {
        let Ok(advisory) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let Some(seq) = advisory.get("stream_seq").and_then(|s| s.as_u64()) else {
            return;
        };
        let deliveries = advisory
            .get("deliveries")
            .and_then(|d| d.as_u64())
            .unwrap_or(0);
        if let Some(chunk) = self.by_seq.remove(&seq) {
            let why = format!("no worker host finished its chunk in {deliveries} deliveries");
            self.fail_chunk(chunk, TaskErrorKind::WorkerLost, &why);
        }
    }

    fn fail_chunk(&mut self, chunk: u64, kind: TaskErrorKind, why: &str) {
        if let Some(p) = self.pending.remove(&chunk) {
            let _ = p.reply.send(failed(p.first_index, p.len, kind, why));
        }
    }

    /// `terminate()`: tells the hosts to stop the run's chunks and drops
    /// those still queued.
    async fn stop(&mut self) {
        let _ = self
            .client
            .publish(super::stop_subject(&self.run), "".into())
            .await;
        let _ = tokio::time::timeout(PURGE_PATIENCE, self.client.flush()).await;
        self.purge(&[
            super::chunk_subject(&self.run),
            super::result_subject(&self.run),
        ])
        .await;
    }

    async fn purge(&self, subjects: &[String]) {
        let work = async {
            if let Ok(s) = self.js.get_stream_no_info(RESULTS).await {
                let _ = s.delete_consumer(&super::results_consumer(&self.run)).await;
            }
            for (stream, subject) in [CHUNKS, RESULTS].iter().zip(subjects) {
                let Ok(s) = self.js.get_stream_no_info(*stream).await else {
                    continue;
                };
                if let Err(e) = s.purge().filter(subject.clone()).await {
                    tracing::debug!("cluster: purging {subject}: {e}");
                }
            }
        };
        let _ = tokio::time::timeout(PURGE_PATIENCE, work).await;
    }
}

/// Reads the run's results into `tx`, through a durable consumer of its
/// own (made again from the first result if the server lost it: the
/// dispatcher drops the results it has seen), until `tx` closes.
async fn read_results(
    js: jetstream::Context,
    run: String,
    tx: mpsc::UnboundedSender<bytes::Bytes>,
) {
    let name = super::results_consumer(&run);
    let config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: super::result_subject(&run),
        ack_policy: consumer::AckPolicy::Explicit,
        inactive_threshold: RESULTS_INACTIVE,
        ..Default::default()
    };
    while !tx.is_closed() {
        let consumer = match js.get_stream_no_info(RESULTS).await {
            Ok(stream) => stream.get_or_create_consumer(&name, config.clone()).await,
            Err(e) => {
                tracing::debug!("cluster: opening the result stream: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let consumer: consumer::PullConsumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("cluster: opening the result consumer: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while !tx.is_closed() {
            let batch = consumer
                .batch()
                .max_messages(256)
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            let Ok(mut batch) = batch else { break };
            let mut failed = false;
            while let Some(msg) = batch.next().await {
                match msg {
                    Ok(msg) => {
                        let _ = tx.send(msg.payload.clone());
                        let _ = msg.ack().await;
                    }
                    Err(e) => {
                        tracing::debug!("cluster: reading results: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                tokio::time::sleep(Duration::from_millis(50)).await;
                break;
            }
        }
    }
}

/// Publishes one chunk, re-publishing (same id: the server keeps one copy)
/// until the server stores it or [`PUBLISH_PATIENCE`] runs out.
async fn publish(
    js: &jetstream::Context,
    subject: String,
    id: String,
    bytes: Vec<u8>,
) -> std::result::Result<u64, String> {
    let payload = bytes::Bytes::from(bytes);
    let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        let message = PublishMessage::build()
            .payload(payload.clone())
            .message_id(&id);
        match js.send_publish(subject.clone(), message).await {
            Ok(ack) => match ack.await {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the cluster did not take its chunk: {last}"))
}

/// Puts the guest into the object store under its BLAKE3 hash, unless it is
/// there already, and returns the hash.
async fn publish_guest(
    js: &jetstream::Context,
    path: &std::path::Path,
    options: &ClusterOptions,
) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Load(crate::error::LoadError::Read {
            path: path.to_path_buf(),
            source: e,
        })
    })?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let store = super::guest_store(js, options.storage_kind(), options.replica_count()).await?;
    if store.info(&hash).await.is_err() {
        store
            .put(hash.as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| nats_error("cannot publish the guest", e))?;
    }
    Ok(hash)
}

/// The guest's task names, asked of one local sandboxed worker (the caller
/// has the guest compiled already).
fn local_task_names(shared: &Shared, cache: Cache) -> Result<Vec<String>> {
    let launch = shared.launch();
    crate::Pool::builder(launch.guest.source())
        .worker_program(launch.program.clone())
        .cache(cache)
        .processes(1)
        .build()?
        .task_names()
}

/// A result checked against its chunk (it comes from another machine).
fn check_result(
    msg: ResultMsg,
    first_index: u64,
    len: usize,
) -> std::result::Result<ChunkDone, String> {
    let results = Batch::parse(msg.results)?;
    if results.len() != len {
        return Err(format!("{} results for {len} inputs", results.len()));
    }
    let mut last = None;
    for (i, _) in &msg.failures {
        if *i as usize >= len || last.is_some_and(|l| l >= *i) {
            return Err(format!("failure index {i} out of order or range"));
        }
        last = Some(*i);
    }
    Ok(ChunkDone {
        first_index,
        results,
        failures: msg.failures,
    })
}

/// Every input of a chunk failed with `kind`.
fn failed(first_index: u64, len: usize, kind: TaskErrorKind, why: &str) -> ChunkDone {
    let mut results = Batch::new();
    let mut failures = Vec::with_capacity(len);
    for i in 0..len {
        results.push(&[]);
        failures.push((
            i as u32,
            Failure {
                kind,
                message: why.to_string(),
                backtrace: None,
            },
        ));
    }
    ChunkDone {
        first_index,
        results,
        failures,
    }
}
