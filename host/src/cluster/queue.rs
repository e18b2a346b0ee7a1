//! Queues across machines: a guest's `Queue` or `JoinableQueue` that a
//! task on another host uses lives in a JetStream stream.
//!
//! # How a queue reaches another host
//!
//! In CPython a queue reaches a pool's workers only as an argument (the
//! `initializer`'s `initargs`, or a task's arguments through a Manager
//! proxy) and a `Process` child by inheritance. `mpwasm run --cluster` sends
//! a guest's pools to the worker hosts and keeps its `Process`es local, so
//! the one way a queue crosses to another host is as a handle in a cluster
//! pool's task arguments (a cluster pool takes no initializer). There the
//! handle is a token of the caller's run, which the host's broker has never
//! minted. So:
//!
//! 1. The caller's broker answers `mpwasm.queue.NS` requests (`NS`: 128
//!    random bits naming the caller's run, carried in every chunk). A host
//!    whose guest adopts an unknown token asks there.
//! 2. The caller *promotes* the queue: it makes the stream
//!    `MPWASM_Q_NS_TOKEN` (subject `mpwasm.q.NS.TOKEN`), sets the queue's
//!    `remote` word, which every local holder reads before each operation,
//!    moves the items already queued locally into the stream (in order,
//!    before any later put), and replies with `maxsize` and `joinable`.
//! 3. The host registers the token as a queue whose `remote` word is set.
//!    From then on every process that uses the queue, on any host, sends
//!    its operations to its own broker ([`Call::QueueRemote`]), which
//!    publishes to and pulls from the stream. Queues never shared with a
//!    cluster pool keep the local fast path (no broker, no network).
//!
//! The network client stays in the broker (the caller's `mpwasm run`, the
//! host's `mpwasm serve`), never in a sandboxed worker.
//!
//! # Semantics
//!
//! - **Bound**: the stream holds at most `maxsize` messages and refuses a
//!   publish when full (`discard: new`); a `put` retries with a backoff
//!   until there is room or its timeout passes (`queue.Full`).
//! - **Exactly once, per-producer order**: a `put` returns only when the
//!   server stored the item, under the message id `PRODUCER.N` (a random
//!   id of the broker's handle and a counter), so a publish retried after a
//!   lost ack is dropped by the server; one producer's puts are therefore
//!   stored in the order they returned. All consumers pull from one durable
//!   consumer of the work-queue stream: the server hands each message to
//!   one of them.
//! - **Ack**: a plain `Queue`'s `get` acks (and waits for the server to
//!   confirm) before it returns the item. A `JoinableQueue`'s `get` keeps
//!   the message unacked, sending `+WPI` every [`PROGRESS`] while it is
//!   held, and `task_done` acks the oldest one the host took: a consumer
//!   host that dies before `task_done` stops sending `+WPI` and the server
//!   hands its item to another consumer after [`QUEUE_ACK_WAIT`]. `join`
//!   waits until the stream is empty (a work-queue stream deletes a message
//!   when it is acked).
//!
//! Differences from a local queue, all documented in `docs/cluster-queues.md`:
//! a `JoinableQueue`'s items count against `maxsize` until `task_done`
//! (not only until `get`); `task_done` must be called on the host that got
//! the item; `qsize` is the server's count of undelivered messages;
//! `shutdown` and `multiprocessing.connection.wait` on a promoted queue
//! are not supported (an error, and never ready).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::PublishMessage, stream, AckKind};
use futures_util::StreamExt;
use tokio::runtime::Handle;

use super::{nats_error, ClusterOptions, Storage, DUPLICATE_WINDOW};
use crate::broker::Broker;
use crate::error::{Error, Result};
#[cfg(doc)]
use crate::wire::Call;
use crate::wire::CallError;

/// How long the server waits for a taken, unfinished item's ack or `+WPI`
/// before it hands the item to another consumer.
pub(crate) const QUEUE_ACK_WAIT: Duration = Duration::from_secs(2);
/// How often a host says it still holds a `JoinableQueue`'s taken items.
pub(crate) const PROGRESS: Duration = Duration::from_millis(500);
/// How long an unbounded queue's `put` keeps retrying a publish the server
/// does not take before it fails.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(60);
/// How long a host waits for the caller to describe a queue.
const ASK_PATIENCE: Duration = Duration::from_secs(10);
/// The longest a `put` on a full queue or a `join` sleeps before looking
/// again.
const MAX_NAP: Duration = Duration::from_millis(100);
/// Queue streams nobody deleted (their caller died) drop their items after
/// this.
const QUEUE_MAX_AGE: Duration = Duration::from_secs(3600);
/// The most a caller waits for the server to delete a queue's stream.
const DELETE_PATIENCE: Duration = Duration::from_secs(2);
/// The durable consumer every getter of a queue pulls from.
const GETTERS: &str = "get";

/// The subject a caller answers hosts' questions about its queues on.
fn ask_subject(ns: &str) -> String {
    format!("mpwasm.queue.{ns}")
}

fn stream_name(ns: &str, token: u64) -> String {
    format!("MPWASM_Q_{ns}_{token:016x}")
}

fn item_subject(ns: &str, token: u64) -> String {
    format!("mpwasm.q.{ns}.{token:016x}")
}

/// What a caller tells a host about a queue: `maxsize` (u32, little-endian)
/// then `joinable` (one byte).
fn describe(maxsize: u32, joinable: bool) -> Vec<u8> {
    let mut bytes = maxsize.to_le_bytes().to_vec();
    bytes.push(u8::from(joinable));
    bytes
}

fn parse_description(bytes: &[u8]) -> Option<(u32, bool)> {
    match bytes {
        [a, b, c, d, j @ (0 | 1)] => Some((u32::from_le_bytes([*a, *b, *c, *d]), *j == 1)),
        _ => None,
    }
}

/// A broker's link to the cluster for its queues: the caller's (which
/// promotes its queues and answers hosts) or a worker host's (which opens
/// the caller's queues for its tasks).
pub(crate) struct Queues {
    runtime: Handle,
    /// The caller's own runtime (a host lends its own).
    _own: Option<tokio::runtime::Runtime>,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The caller's run, which names its queues.
    ns: String,
    storage: Storage,
    replicas: usize,
    /// A worker host's (which opens queues) rather than the caller's
    /// (which promotes them).
    host: bool,
    /// Serializes promotions.
    promoting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").field("ns", &self.ns).finish()
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        // The last holder may be a task of this very runtime.
        if let Some(own) = self._own.take() {
            own.shutdown_background();
        }
    }
}

impl Queues {
    /// The caller's side for `broker`'s run: connects, and answers hosts
    /// asking about the run's queues (promoting each one asked about).
    ///
    /// # Errors
    ///
    /// [`Error::Cluster`] if the cluster cannot be reached;
    /// [`Error::Spawn`] if the runtime cannot start.
    pub(crate) fn caller(options: &ClusterOptions, broker: Weak<Broker>) -> Result<Arc<Queues>> {
        let own = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mpwasm-queues")
            .enable_all()
            .build()
            .map_err(|e| Error::Spawn(format!("cannot start the queue runtime: {e}")))?;
        let ns = super::new_run();
        let client = own.block_on(options.connect(&format!("mpwasm queues {ns}")))?;
        let asked = own
            .block_on(client.subscribe(ask_subject(&ns)))
            .map_err(|e| nats_error("cannot subscribe", e))?;
        let runtime = own.handle().clone();
        // The JetStream context starts its acker task on the current runtime.
        let entered = runtime.enter();
        let js = jetstream::new(client.clone());
        drop(entered);
        let queues = Arc::new(Queues {
            runtime: runtime.clone(),
            _own: Some(own),
            client,
            js,
            ns,
            storage: options.storage_kind(),
            replicas: options.replica_count(),
            host: false,
            promoting: tokio::sync::Mutex::new(()),
        });
        runtime.spawn(answer(Arc::downgrade(&queues), broker, asked));
        Ok(queues)
    }

    /// A worker host's side for the chunks of the caller `ns`, on the
    /// host's connection and runtime.
    pub(crate) fn host(client: async_nats::Client, runtime: Handle, ns: String) -> Arc<Queues> {
        Arc::new(Queues {
            runtime,
            _own: None,
            js: jetstream::new(client.clone()),
            client,
            ns,
            storage: Storage::default(),
            replicas: 1,
            host: true,
            promoting: tokio::sync::Mutex::new(()),
        })
    }

    /// The caller's run name that chunks carry to hosts.
    pub(crate) fn ns(&self) -> &str {
        &self.ns
    }

    /// Whether this is a worker host's side.
    pub(crate) fn is_host(&self) -> bool {
        self.host
    }

    /// One promotion at a time.
    pub(crate) async fn promoting(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.promoting.lock().await
    }

    /// A host opens the caller's queue `token`: asks the caller (which
    /// promotes it) and binds to its stream.
    ///
    /// # Errors
    ///
    /// `InvalidHandle` if the caller has no such queue; `Other` if the
    /// cluster cannot be reached.
    pub(crate) fn open(
        self: &Arc<Self>,
        token: u64,
    ) -> std::result::Result<RemoteQueue, CallError> {
        self.runtime.block_on(async {
            let ask = self
                .client
                .request(ask_subject(&self.ns), token.to_le_bytes().to_vec().into());
            let reply = tokio::time::timeout(ASK_PATIENCE, ask)
                .await
                .map_err(|_| CallError::Other("the queue's owner did not answer".into()))?
                .map_err(|e| CallError::Other(format!("asking the queue's owner: {e}")))?;
            let (maxsize, joinable) =
                parse_description(&reply.payload).ok_or(CallError::InvalidHandle)?;
            RemoteQueue::open(self, token, maxsize, joinable, false)
                .await
                .map_err(|e| CallError::Other(e.to_string()))
        })
    }

    /// Runs `work` to completion on the queues' runtime (from a broker
    /// thread, never from inside the runtime).
    pub(crate) fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }
}

/// The caller answers hosts: each request names a token; the queue behind
/// it is promoted and described, or the reply is empty (no such queue).
async fn answer(queues: Weak<Queues>, broker: Weak<Broker>, mut asked: async_nats::Subscriber) {
    while let Some(request) = asked.next().await {
        let (Some(queues), Some(broker)) = (queues.upgrade(), broker.upgrade()) else {
            return;
        };
        let Some(reply) = request.reply.clone() else {
            continue;
        };
        let token = <[u8; 8]>::try_from(&request.payload[..]).map(u64::from_le_bytes);
        let client = queues.client.clone();
        tokio::spawn(async move {
            let described = match token {
                Ok(token) => crate::interfaces::queue::promote(&broker, &queues, token).await,
                Err(_) => Err("a malformed request".into()),
            };
            let payload = match described {
                Ok((maxsize, joinable)) => describe(maxsize, joinable),
                Err(why) => {
                    tracing::debug!("cluster: a host asked for a queue: {why}");
                    Vec::new()
                }
            };
            let _ = client.publish(reply, payload.into()).await;
        });
    }
}

/// One broker's view of a queue kept in a stream.
pub(crate) struct RemoteQueue {
    queues: Arc<Queues>,
    stream: stream::Stream,
    subject: String,
    consumer: consumer::PullConsumer,
    maxsize: u32,
    joinable: bool,
    /// This handle's producer id; with `seq`, each put's message id.
    producer: String,
    seq: AtomicU64,
    /// Held for writing while a promotion moves the local items in: puts
    /// wait, so a producer's earlier items are stored first.
    order: Arc<tokio::sync::RwLock<()>>,
    /// Items taken from a `JoinableQueue` and not yet marked done, oldest
    /// first.
    held: Arc<Mutex<VecDeque<jetstream::Message>>>,
    progress: Option<tokio::task::JoinHandle<()>>,
    /// The caller's (which made the stream, and deletes it when the queue
    /// is gone).
    owner: bool,
}

impl Drop for RemoteQueue {
    fn drop(&mut self) {
        // Items still held go back to the stream after `QUEUE_ACK_WAIT`.
        if let Some(progress) = self.progress.take() {
            progress.abort();
        }
        // The caller's queue is gone: nobody can reach the stream any more.
        // (Never from inside the runtime, where waiting is not allowed; a
        // stream left behind drops its items after `QUEUE_MAX_AGE`.)
        if self.owner && Handle::try_current().is_err() {
            let (js, name) = (
                self.queues.js.clone(),
                self.stream.cached_info().config.name.clone(),
            );
            self.queues.block_on(async move {
                let _ = tokio::time::timeout(DELETE_PATIENCE, js.delete_stream(&name)).await;
            });
        }
    }
}

impl RemoteQueue {
    /// Binds to the stream of queue `token` (the caller makes it first:
    /// `create`).
    pub(crate) async fn open(
        queues: &Arc<Queues>,
        token: u64,
        maxsize: u32,
        joinable: bool,
        create: bool,
    ) -> Result<RemoteQueue> {
        let name = stream_name(&queues.ns, token);
        let subject = item_subject(&queues.ns, token);
        let stream = if create {
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: queues.storage.nats(),
                num_replicas: queues.replicas,
                duplicate_window: DUPLICATE_WINDOW,
                max_messages: if maxsize == 0 { -1 } else { i64::from(maxsize) },
                discard: stream::DiscardPolicy::New,
                max_age: QUEUE_MAX_AGE,
                ..Default::default()
            };
            queues
                .js
                .get_or_create_stream(config)
                .await
                .map_err(|e| nats_error("cannot make a queue's stream", e))?
        } else {
            queues
                .js
                .get_stream(&name)
                .await
                .map_err(|e| nats_error("cannot open a queue's stream", e))?
        };
        let consumer = stream
            .get_or_create_consumer(
                GETTERS,
                consumer::pull::Config {
                    durable_name: Some(GETTERS.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: QUEUE_ACK_WAIT,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats_error("cannot make a queue's consumer", e))?;
        let held: Arc<Mutex<VecDeque<jetstream::Message>>> = Arc::default();
        let progress = joinable.then(|| queues.runtime.spawn(keep_alive(held.clone())));
        Ok(RemoteQueue {
            queues: queues.clone(),
            stream,
            subject,
            consumer,
            maxsize,
            joinable,
            producer: super::new_run(),
            seq: AtomicU64::new(0),
            order: Arc::default(),
            held,
            progress,
            owner: create,
        })
    }

    /// Runs `work` on the queues' runtime, from a broker thread.
    pub(crate) fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.queues.block_on(work)
    }

    /// `maxsize` (0: unbounded) and whether the queue is joinable.
    pub(crate) fn shape(&self) -> (u32, bool) {
        (self.maxsize, self.joinable)
    }

    /// Stops puts until the guard drops (a promotion moving items in).
    pub(crate) async fn hold_puts(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.order.clone().write_owned().await
    }

    /// Stores `item`; `false` if the queue stayed full until `timeout`.
    ///
    /// # Errors
    ///
    /// `Other` if the server does not take the item for
    /// [`PUBLISH_PATIENCE`] for another reason than a full queue.
    pub(crate) async fn put(
        &self,
        item: bytes::Bytes,
        timeout: Option<Duration>,
    ) -> std::result::Result<bool, CallError> {
        let _order = self.order.read().await;
        self.publish(item, timeout).await
    }

    /// [`put`](Self::put) without waiting for a promotion (the promotion
    /// itself).
    pub(crate) async fn publish(
        &self,
        item: bytes::Bytes,
        timeout: Option<Duration>,
    ) -> std::result::Result<bool, CallError> {
        let id = format!(
            "{}.{}",
            self.producer,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let start = tokio::time::Instant::now();
        let deadline = timeout.map(|t| start + t);
        let mut nap = Duration::from_millis(2);
        loop {
            let message = PublishMessage::build()
                .payload(item.clone())
                .message_id(&id);
            let why = match self
                .queues
                .js
                .send_publish(self.subject.clone(), message)
                .await
            {
                Ok(ack) => match ack.await {
                    Ok(_) => return Ok(true),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            let full = why.contains("maximum messages");
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return if full {
                    Ok(false)
                } else {
                    Err(CallError::Other(format!(
                        "the cluster did not take the item: {why}"
                    )))
                };
            }
            if !full && now - start > PUBLISH_PATIENCE {
                return Err(CallError::Other(format!(
                    "the cluster did not take the item: {why}"
                )));
            }
            let left = deadline.map_or(nap, |d| d - now);
            tokio::time::sleep(nap.min(left)).await;
            nap = (nap * 2).min(MAX_NAP);
        }
    }

    /// Takes the oldest item; `None` if there was none until `timeout`.
    pub(crate) async fn get(
        &self,
        timeout: Option<Duration>,
    ) -> std::result::Result<Option<Vec<u8>>, CallError> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let wait = match deadline {
                None => Duration::from_secs(1),
                Some(d) => d
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(Duration::from_secs(1)),
            };
            if let Some(msg) = self.pull(wait).await? {
                let item = msg.payload.to_vec();
                if self.joinable {
                    self.held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(msg);
                } else if !acked(&msg).await {
                    // Not acked: the server will hand it out again.
                    continue;
                }
                return Ok(Some(item));
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// At most one message, waiting up to `wait` (not at all for zero).
    async fn pull(
        &self,
        wait: Duration,
    ) -> std::result::Result<Option<jetstream::Message>, CallError> {
        let batch = if wait < Duration::from_millis(10) {
            self.consumer.fetch().max_messages(1).messages().await
        } else {
            self.consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("cluster queue: pulling: {e}");
                tokio::time::sleep(wait.min(MAX_NAP)).await;
                return Ok(None);
            }
        };
        while let Some(msg) = batch.next().await {
            match msg {
                Ok(msg) => return Ok(Some(msg)),
                Err(e) => tracing::debug!("cluster queue: pulling: {e}"),
            }
        }
        Ok(None)
    }

    /// Acks the oldest item this host took and did not mark done; `false`
    /// if there is none.
    pub(crate) async fn task_done(&self) -> bool {
        let msg = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        match msg {
            Some(msg) => {
                acked(&msg).await;
                true
            }
            None => false,
        }
    }

    /// Items waiting to be taken (the server's count, approximate).
    pub(crate) async fn qsize(&self) -> u64 {
        match self.stream.consumer_info(GETTERS).await {
            Ok(info) => info.num_pending,
            Err(_) => 0,
        }
    }

    /// Waits until every item put was acked; `false` on timeout.
    pub(crate) async fn join(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut nap = Duration::from_millis(5);
        let mut stream = self.stream.clone();
        loop {
            if let Ok(info) = stream.info().await {
                if info.state.messages == 0 {
                    return true;
                }
            }
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            let left = deadline.map_or(nap, |d| d - now);
            tokio::time::sleep(nap.min(left)).await;
            nap = (nap * 2).min(MAX_NAP);
        }
    }
}

/// Acks a message and waits for the server to confirm (a few tries);
/// whether it did.
async fn acked(msg: &jetstream::Message) -> bool {
    for _ in 0..5 {
        if msg.double_ack().await.is_ok() {
            return true;
        }
    }
    false
}

/// Tells the server, every [`PROGRESS`], that the taken items are still
/// being worked on.
async fn keep_alive(held: Arc<Mutex<VecDeque<jetstream::Message>>>) {
    loop {
        tokio::time::sleep(PROGRESS).await;
        let now: Vec<jetstream::Message> = held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for msg in now {
            let _ = msg.ack_with(AckKind::Progress).await;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_description_round_trips_and_garbage_is_refused() {
        assert_eq!(parse_description(&describe(1000, true)), Some((1000, true)));
        assert_eq!(parse_description(&describe(0, false)), Some((0, false)));
        assert_eq!(parse_description(&[]), None);
        assert_eq!(parse_description(&[1, 0, 0, 0, 2]), None);
        assert_eq!(parse_description(&[1, 0, 0, 0, 1, 0]), None);
    }
}
