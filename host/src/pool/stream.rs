//! The pool's one scheduling loop: cut inputs into chunks, keep a bounded
//! number in flight, hand results back in input order or as they complete.
//!
//! Every pool operation (`map`, `imap`, `imap_unordered`, `apply`, the
//! `*_async` forms and the CLI) is a [`Stream`] underneath. Inputs are pulled
//! from the caller's iterator only as chunks are submitted, and at most
//! `max_in_flight` chunks are outstanding, so a huge or endless input never
//! sits in memory; ordered results wait only for the chunks before them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crossbeam_channel::{select, Receiver, Sender};

use super::driver::{Chunk, ChunkDone, Job};
use super::Inner;
use crate::batch::Batch;
use crate::error::{Error, TaskError};
use crate::limits::{MAX_AUTO_CHUNK, MAX_CHUNK_BYTES};
use crate::wire::Codec;

/// The most inputs a chunk's buffer is sized for ahead of them.
const PRESIZE_ITEMS: usize = 1 << 16;

/// Where a stream's inputs come from: each call appends the next input's
/// encoding to a batch.
pub trait Source {
    /// Appends the next input to `batch`; `None` at the end.
    fn next_into(&mut self, batch: &mut Batch) -> Option<Result<(), Error>>;
}

/// Raw payloads, already encoded (what `mpwasm pool` reads).
pub(crate) struct Raw<I>(pub(crate) I);

impl<I: Iterator<Item = Vec<u8>>> Source for Raw<I> {
    fn next_into(&mut self, batch: &mut Batch) -> Option<Result<(), Error>> {
        let payload = self.0.next()?;
        Some(batch.push_with(
            |out| {
                out.extend_from_slice(&payload);
                Ok(())
            },
            || Error::Encode("input larger than 4 GiB".into()),
        ))
    }
}

/// The payloads of one batch, in order: a guest pool's job, whose inputs
/// arrive as one buffer and are never copied one by one.
pub(crate) struct Payloads {
    pub(crate) batch: Batch,
    pub(crate) next: usize,
}

impl Source for Payloads {
    fn next_into(&mut self, batch: &mut Batch) -> Option<Result<(), Error>> {
        if self.next == self.batch.len() {
            return None;
        }
        let payload = self.batch.get(self.next);
        self.next += 1;
        Some(batch.push_with(
            |out| {
                out.extend_from_slice(payload);
                Ok(())
            },
            || Error::Encode("input larger than 4 GiB".into()),
        ))
    }
}

/// Serde values, encoded straight into the batch: bincode, or JSON for a
/// Python guest.
pub(crate) struct Typed<I>(pub(crate) I, pub(crate) Codec);

impl<A: serde::Serialize, I: Iterator<Item = A>> Source for Typed<I> {
    fn next_into(&mut self, batch: &mut Batch) -> Option<Result<(), Error>> {
        let arg = self.0.next()?;
        let codec = self.1;
        Some(batch.push_with(
            |out| {
                match codec {
                    Codec::Bincode => bincode::serde::encode_into_std_write(
                        &arg,
                        out,
                        bincode::config::standard(),
                    )
                    .map(|_| ())
                    .map_err(|e| Error::Encode(e.to_string())),
                    Codec::Json => {
                        serde_json::to_writer(out, &arg).map_err(|e| Error::Encode(e.to_string()))
                    }
                }
            },
            || Error::Encode("input larger than 4 GiB".into()),
        ))
    }
}

/// One result's bytes, shared with the rest of its chunk (no copy).
#[derive(Clone)]
pub struct Payload {
    chunk: Arc<Batch>,
    index: usize,
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.chunk.get(self.index)
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Payload").field(&&**self).finish()
    }
}

/// A finished chunk whose results are being handed out.
struct Ready {
    first_index: u64,
    results: Arc<Batch>,
    failures: VecDeque<(u32, crate::wire::Failure)>,
    next: usize,
}

/// How many inputs go into each chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chunking {
    /// Always this many (the last chunk may be shorter).
    Fixed(usize),
    /// Unknown input length: start at 1 for a quick first answer and double
    /// up to [`MAX_AUTO_CHUNK`].
    Growing(usize),
}

impl Chunking {
    /// CPython's default for a known length: `ceil(n / (4 * workers))`.
    pub(crate) fn for_len(n: usize, workers: usize) -> Self {
        Chunking::Fixed(n.div_ceil(4 * workers.max(1)).max(1))
    }

    fn take(&mut self) -> usize {
        match self {
            Chunking::Fixed(n) => *n,
            Chunking::Growing(n) => {
                let now = *n;
                *n = (now * 2).min(MAX_AUTO_CHUNK);
                now
            }
        }
    }
}

/// Why a pool did not take a job.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Closed,
    Terminated,
}

/// A running job: an iterator of `(index, result bytes)` in input order, or
/// in completion order when unordered.
pub struct Stream<S> {
    inner: Arc<Inner>,
    task: Arc<str>,
    codec: Codec,
    inputs: S,
    chunking: Chunking,
    ordered: bool,
    next_index: u64,
    /// Bytes of the inputs submitted so far (to size the next chunk).
    bytes_so_far: usize,
    next_emit: u64,
    in_flight: usize,
    max_in_flight: usize,
    exhausted: bool,
    /// Where chunks go: taken when the job started (so a later
    /// [`Pool::close`](super::Pool::close) does not cut it short) and let go
    /// once the input is exhausted; `Err` if the pool was closed or
    /// terminated before the job started.
    jobs: Result<Option<Sender<Job>>, Refused>,
    reply_tx: Sender<ChunkDone>,
    reply_rx: Receiver<ChunkDone>,
    waiting: BTreeMap<u64, ChunkDone>,
    ready: VecDeque<Ready>,
    broken: bool,
}

impl<S: Source> Stream<S> {
    /// How this stream's payloads are encoded.
    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    pub(crate) fn new(
        inner: Arc<Inner>,
        task: &str,
        codec: Codec,
        inputs: S,
        chunking: Chunking,
        ordered: bool,
    ) -> Self {
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        let max_in_flight = 2 * inner.processes + 1;
        let jobs = match inner.sender() {
            Ok(jobs) => Ok(Some(jobs)),
            Err(Error::Closed) => Err(Refused::Closed),
            Err(_) => Err(Refused::Terminated),
        };
        Stream {
            inner,
            task: task.into(),
            codec,
            inputs,
            chunking,
            ordered,
            next_index: 0,
            bytes_so_far: 0,
            next_emit: 0,
            in_flight: 0,
            max_in_flight,
            exhausted: false,
            jobs,
            reply_tx,
            reply_rx,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            broken: false,
        }
    }

    /// Lifts the bound on chunks in flight: for `map`, whose inputs are all
    /// in memory already, every chunk is queued at once (as Python's
    /// `map_async` queues them before returning).
    pub(crate) fn unbounded(mut self) -> Self {
        self.max_in_flight = usize::MAX;
        self
    }

    /// How many inputs were submitted so far (all of them, for a `map`
    /// after [`fill`](Self::fill)).
    pub(crate) fn len_hint(&self) -> usize {
        self.next_index as usize
    }

    /// Whether the pool took the job: `Err` if it was closed or terminated
    /// before the job started.
    pub(crate) fn accepted(&self) -> Result<(), Error> {
        match self.jobs {
            Ok(_) => Ok(()),
            Err(Refused::Closed) => Err(Error::Closed),
            Err(Refused::Terminated) => Err(Error::Terminated),
        }
    }

    /// Submits chunks until `max_in_flight` are out or the input ends.
    pub(crate) fn fill(&mut self) -> Result<(), Error> {
        self.accepted()?;
        self.submit_chunks()?;
        if self.exhausted {
            // Everything is queued: the pool may close behind this job.
            self.jobs = Ok(None);
        }
        Ok(())
    }

    fn submit_chunks(&mut self) -> Result<(), Error> {
        while !self.exhausted && self.in_flight < self.max_in_flight {
            let want = self.chunking.take();
            let mut inputs = self.presized(want);
            while inputs.len() < want && inputs.byte_len() < MAX_CHUNK_BYTES {
                match self.inputs.next_into(&mut inputs) {
                    Some(pushed) => {
                        pushed?;
                        self.check_size(&inputs)?;
                        if self.next_index == 0 && inputs.len() == 1 {
                            // The job's first input: the size of the rest
                            // of this chunk is guessed from it.
                            let more = (want - 1).min(PRESIZE_ITEMS);
                            let bytes = inputs.byte_len().saturating_mul(more);
                            inputs.reserve(more, bytes.min(MAX_CHUNK_BYTES));
                        }
                    }
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            if inputs.is_empty() {
                break;
            }
            let first_index = self.next_index;
            self.next_index += inputs.len() as u64;
            self.bytes_so_far = self.bytes_so_far.saturating_add(inputs.byte_len());
            let chunk = Job::Run(Chunk {
                task: self.task.clone(),
                codec: self.codec,
                first_index,
                inputs,
                reply: self.reply_tx.clone(),
            });
            if self.inner.shared.is_terminated() {
                return Err(Error::Terminated);
            }
            let Ok(Some(jobs)) = &self.jobs else {
                unreachable!("fill checked the job was accepted and is not exhausted")
            };
            jobs.send(chunk).map_err(|_| Error::Terminated)?;
            self.in_flight += 1;
        }
        Ok(())
    }

    /// An empty chunk for `want` inputs, with room for as many bytes as
    /// `want` of the inputs so far take on average (within
    /// [`PRESIZE_ITEMS`] and [`MAX_CHUNK_BYTES`]): filled without being
    /// moved as it grows, it touches each page of its buffer once.
    fn presized(&self, want: usize) -> Batch {
        let items = want.min(PRESIZE_ITEMS);
        let bytes = match usize::try_from(self.next_index) {
            Ok(done) if done > 0 => (self.bytes_so_far / done).saturating_mul(items),
            _ => 0,
        };
        Batch::with_capacity(items, bytes.min(MAX_CHUNK_BYTES))
    }

    /// Refuses an input larger than the pool's message limit
    /// (`PoolBuilder::max_message`, `--max-message`).
    fn check_size(&self, inputs: &Batch) -> Result<(), Error> {
        let max = self.inner.max_message();
        let len = inputs.get(inputs.len() - 1).len() as u64;
        if len > max {
            return Err(Error::Encode(format!(
                "input {} is {len} bytes, over the message limit of {max}",
                self.next_index + inputs.len() as u64 - 1
            )));
        }
        Ok(())
    }

    /// Waits for one chunk and files its outcomes.
    fn receive(&mut self) -> Result<(), Error> {
        let done = select! {
            recv(self.reply_rx) -> done => done.map_err(|_| Error::Terminated)?,
            recv(self.inner.terminated) -> _ => return Err(Error::Terminated),
        };
        self.in_flight -= 1;
        if self.ordered {
            self.waiting.insert(done.first_index, done);
            while let Some(done) = self.waiting.remove(&self.next_emit) {
                self.next_emit += done.results.len() as u64;
                self.ready.push_back(Ready::from(done));
            }
        } else {
            self.ready.push_back(Ready::from(done));
        }
        Ok(())
    }

    /// The next result of the chunks already received.
    fn pop_ready(&mut self) -> Option<Result<(u64, Payload), Error>> {
        let chunk = self.ready.front_mut()?;
        let i = chunk.next;
        chunk.next += 1;
        let index = chunk.first_index + i as u64;
        let item = match chunk.failures.front() {
            Some((at, _)) if *at as usize == i => {
                let (_, f) = chunk.failures.pop_front().expect("just seen");
                Err(Error::Task(TaskError {
                    index,
                    kind: f.kind,
                    message: f.message,
                    backtrace: f.backtrace,
                }))
            }
            _ => Ok((
                index,
                Payload {
                    chunk: chunk.results.clone(),
                    index: i,
                },
            )),
        };
        if chunk.next == chunk.results.len() {
            self.ready.pop_front();
        }
        Some(item)
    }
}

impl<S: Source> Stream<S> {
    /// Hands every received chunk to `each` as it arrives (its first
    /// input's index and its results, in the batch format), without a
    /// handle per result: a `map` of tiny tasks spends more on the handles
    /// than on decoding. A chunk holding a failure ends it instead, with
    /// that input's error, as soon as it arrives: the first failure to
    /// arrive ends the job.
    pub(crate) fn for_each_chunk(
        mut self,
        mut each: impl FnMut(u64, &Batch) -> Result<(), Error>,
    ) -> Result<(), Error> {
        loop {
            while let Some(mut chunk) = self.ready.pop_front() {
                if let Some((at, f)) = chunk.failures.pop_front() {
                    return Err(Error::Task(TaskError {
                        index: chunk.first_index + u64::from(at),
                        kind: f.kind,
                        message: f.message,
                        backtrace: f.backtrace,
                    }));
                }
                each(chunk.first_index, &chunk.results)?;
            }
            self.fill()?;
            if self.in_flight == 0 {
                return Ok(());
            }
            self.receive()?;
        }
    }
}

impl From<ChunkDone> for Ready {
    fn from(done: ChunkDone) -> Self {
        Ready {
            first_index: done.first_index,
            results: Arc::new(done.results),
            failures: done.failures.into(),
            next: 0,
        }
    }
}

impl<S: Source> Iterator for Stream<S> {
    /// The input's index and its encoded result, or why it failed.
    type Item = Result<(u64, Payload), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pop_ready() {
                return Some(item);
            }
            if self.broken {
                return None;
            }
            let step = self.fill().and_then(|()| {
                if self.in_flight == 0 {
                    Ok(false)
                } else {
                    self.receive().map(|()| true)
                }
            });
            match step {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.broken = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
