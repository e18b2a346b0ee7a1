//! The pool scheduler: [`Pool`], Python's `multiprocessing.Pool` for wasm
//! guests.
//!
//! A pool owns `processes` worker processes, each driven by one host thread
//! ([`driver`]). Work travels as chunks over one crossbeam channel that all
//! drivers pull from, so a free worker always takes the next chunk; results
//! come back on a per-job channel and are put in order by [`stream`].

mod async_result;
mod builder;
mod driver;
mod stream;

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use serde::{de::DeserializeOwned, Serialize};

pub use async_result::AsyncResult;
pub use builder::PoolBuilder;
pub use stream::Payload;
pub(crate) use stream::{Payloads, Stream};
use stream::{Raw, Source, Typed};

use crate::broker::Launch;
use crate::error::{Error, Result, TaskError, TaskErrorKind};
use crate::load::CompiledGuest;
use crate::wire::{Codec, Sandbox};
use driver::Chunk;
pub(crate) use driver::WATCHDOG_GRACE;
pub(crate) use driver::{ChunkDone, Job};
use stream::Chunking;

/// What the driver threads share.
pub(crate) struct Shared {
    retries: u32,
    maxtasksperchild: Option<u64>,
    /// The task each worker runs first, and its argument as a one-input
    /// batch.
    initializer: Option<(Arc<str>, crate::batch::Batch)>,
    /// The workers' places among the run's processes (`--max-processes`),
    /// given back when the last driver is done with them.
    _places: Arc<crate::broker::budget::Places>,
    /// Serves the workers' upcalls, and holds how they are started
    /// ([`Launch`]: guest, program, sandbox).
    broker: Arc<crate::broker::Broker>,
    terminated: AtomicBool,
    /// Per worker slot: the live worker's pid and a handle on its socket.
    workers: Mutex<Vec<Option<(u32, UnixStream)>>>,
}

impl Shared {
    /// How the pool's workers are started.
    pub(crate) fn launch(&self) -> &Launch {
        self.broker.launch()
    }

    /// The broker serving the workers' upcalls.
    pub(crate) fn broker(&self) -> &Arc<crate::broker::Broker> {
        &self.broker
    }

    /// The pool's limits and grants.
    pub(crate) fn sandbox(&self) -> &Sandbox {
        &self.launch().sandbox
    }

    /// How many times a task whose worker died is re-run.
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }

    /// Records the worker in slot `id` (`None`: the slot is empty).
    fn set_worker(&self, id: u32, worker: Option<(u32, UnixStream)>) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_terminated() {
            // terminate() ran while this worker was starting.
            if let Some((_, socket)) = &worker {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
        workers[id as usize] = worker;
    }
}

/// What pool handles and running jobs share.
pub(crate) struct Inner {
    shared: Arc<Shared>,
    processes: usize,
    chunksize: Option<usize>,
    jobs: Mutex<Option<Sender<Job>>>,
    /// Never carries a message; disconnects when the pool is terminated.
    terminated: Receiver<()>,
    terminate_tx: Mutex<Option<Sender<()>>>,
    drivers: Mutex<Vec<JoinHandle<()>>>,
    /// The threads collecting `*_async` results: [`Pool::join`] waits for
    /// them too, so every result is set when it returns (as CPython's
    /// result handler has set them when its `join` returns).
    collectors: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    /// A sender of work for a job starting now. Each running job keeps its
    /// own, so work submitted before [`Pool::close`] still reaches the
    /// drivers after it: they stop once every sender is gone.
    fn sender(&self) -> Result<Sender<Job>> {
        if self.shared.is_terminated() {
            return Err(Error::Terminated);
        }
        match &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(jobs) => Ok(jobs.clone()),
            None => Err(Error::Closed),
        }
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.sender()?.send(job).map_err(|_| Error::Terminated)
    }

    fn stream<S: Source>(
        self: &Arc<Self>,
        task: &str,
        codec: Codec,
        inputs: S,
        chunking: Chunking,
        ordered: bool,
    ) -> Stream<S> {
        Stream::new(self.clone(), task, codec, inputs, chunking, ordered)
    }

    /// How typed inputs and results are encoded: JSON for a Python guest
    /// (a module-level function reads and returns JSON values), bincode
    /// otherwise.
    fn typed_codec(&self) -> Codec {
        if crate::python::is_program(self.shared.launch().guest.source()) {
            Codec::Json
        } else {
            Codec::Bincode
        }
    }

    /// The largest input or message the pool accepts.
    fn max_message(&self) -> u64 {
        self.shared.sandbox().max_message_bytes()
    }

    fn chunking_for(&self, len: Option<usize>) -> Chunking {
        match (self.chunksize, len) {
            (Some(n), _) => Chunking::Fixed(n),
            (None, Some(len)) => Chunking::for_len(len, self.processes),
            (None, None) => Chunking::Growing(1),
        }
    }

    /// Queues every chunk of a `map` now (encoding every input, so encoding
    /// errors surface here); the results are read from the returned stream.
    /// `inputs` should know its length (`size_hint`) for CPython's default
    /// chunksize; one that does not is chunked as `imap` chunks.
    fn start_map<A: Serialize, I: Iterator<Item = A>>(
        self: &Arc<Self>,
        task: &str,
        inputs: I,
    ) -> Result<Stream<Typed<I>>> {
        let len = match inputs.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(lower),
            _ => None,
        };
        let chunking = self.chunking_for(len);
        let mut stream = self
            .stream(
                task,
                self.typed_codec(),
                Typed(inputs, self.typed_codec()),
                chunking,
                false, // collect() puts them in order
            )
            .unbounded();
        stream.fill()?;
        Ok(stream)
    }

    fn terminate(&self) {
        self.shared.terminated.store(true, Ordering::Release);
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.terminate_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for (_, socket) in self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
        {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    fn join(&self) {
        let drivers = std::mem::take(&mut *self.drivers.lock().unwrap_or_else(|e| e.into_inner()));
        for d in drivers {
            let _ = d.join();
        }
        let collectors =
            std::mem::take(&mut *self.collectors.lock().unwrap_or_else(|e| e.into_inner()));
        for c in collectors {
            let _ = c.join();
        }
    }

    /// Runs `work` on a thread of its own, which `join` waits for, and
    /// hands back its result's handle.
    fn spawn_collector<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<AsyncResult<T>> {
        let (promise, result) = async_result::pair();
        let handle = std::thread::Builder::new()
            .name("mpwasm-async".into())
            .spawn(move || promise.fulfil(work()))
            .map_err(|e| Error::Spawn(format!("cannot start a thread: {e}")))?;
        let mut collectors = self.collectors.lock().unwrap_or_else(|e| e.into_inner());
        collectors.retain(|c| !c.is_finished());
        collectors.push(handle);
        Ok(result)
    }
}

/// Collects a `map`'s results in input order. The first failure to arrive
/// ends it at once, as CPython's `map` raises the first exception it sees
/// without waiting for the rest. Chunks are decoded as they arrive; one
/// that arrives before its turn waits, decoded, until the chunks before it
/// are in. The results go straight into the one vector returned, allocated
/// once: a `map` of tiny tasks would otherwise spend more on first touches
/// of fresh memory than on its tasks.
fn collect<S: Source, R: DeserializeOwned>(stream: Stream<S>) -> Result<Vec<R>> {
    let len = stream.len_hint();
    let codec = stream.codec();
    let mut out: Vec<R> = Vec::with_capacity(len);
    let mut early: BTreeMap<u64, Vec<R>> = BTreeMap::new();
    stream.for_each_chunk(|first, results| {
        let next = out.len() as u64;
        let end = first + results.len() as u64;
        if first < next || end > len as u64 || early.contains_key(&first) {
            return Err(bad_output(first, "a result for no pending input".into()));
        }
        let decoded = (0..results.len()).map(|i| decode(codec, first + i as u64, results.get(i)));
        if first == next {
            for value in decoded {
                out.push(value?);
            }
            while let Some(waiting) = early.remove(&(out.len() as u64)) {
                out.extend(waiting);
            }
        } else {
            early.insert(first, decoded.collect::<Result<_>>()?);
        }
        Ok(())
    })?;
    if out.len() != len {
        return Err(bad_output(out.len() as u64, "no result came".into()));
    }
    Ok(out)
}

/// Decodes one result from the guest (untrusted bytes).
fn decode<R: DeserializeOwned>(codec: Codec, index: u64, bytes: &[u8]) -> Result<R> {
    if codec == Codec::Json {
        return serde_json::from_slice(bytes)
            .map_err(|e| bad_output(index, format!("cannot decode the result: {e}")));
    }
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(bad_output(index, "trailing bytes after the result".into())),
        Err(e) => Err(bad_output(index, format!("cannot decode the result: {e}"))),
    }
}

fn bad_output(index: u64, message: String) -> Error {
    Error::Task(TaskError {
        index,
        kind: TaskErrorKind::BadOutput,
        message,
        backtrace: None,
    })
}

/// A pool of sandboxed worker processes running one wasm guest (Python's
/// `multiprocessing.Pool`).
///
/// Each worker is its own OS process with its own wasmtime instance. A task
/// that panics or traps fails only its own input; a worker process that dies
/// fails only the inputs it held and is replaced.
///
/// Dropping the pool terminates it, as leaving Python's `with Pool() as p:`
/// block does: queued work is abandoned and the workers are stopped and
/// reaped. Call [`close`](Pool::close) and [`join`](Pool::join) to let queued
/// `*_async` work finish first.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> mpwasm::Result<()> {
/// let pool = mpwasm::Pool::builder("pool_square.wasm").processes(4).build()?;
/// let squares: Vec<i64> = pool.map("square", [1i64, 2, 3, 4, 5])?;
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # Ok(()) }
/// ```
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Options for a pool running the guest at `guest` (a wasm32-wasip1
    /// module or an mpwasm component).
    pub fn builder(guest: impl AsRef<Path>) -> PoolBuilder {
        PoolBuilder::new(guest.as_ref().to_path_buf())
    }

    /// A pool with default options: see [`PoolBuilder::build`].
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`].
    pub fn new(guest: impl AsRef<Path>) -> Result<Pool> {
        Pool::builder(guest).build()
    }

    /// Number of worker processes.
    pub fn processes(&self) -> usize {
        self.inner.processes
    }

    /// OS pids of the worker processes running now (Python's
    /// `[p.pid for p in pool._pool]`). A worker that is being replaced is
    /// missing until its successor is up.
    pub fn worker_pids(&self) -> Vec<u32> {
        let workers = self
            .inner
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        workers.iter().flatten().map(|(pid, _)| *pid).collect()
    }

    /// The guest as loaded into the cache.
    pub fn guest(&self) -> &CompiledGuest {
        &self.inner.shared.launch().guest
    }

    /// Names of the tasks the guest exports, asked of a worker process.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]/[`Error::Terminated`], or [`Error::Spawn`] if no
    /// worker could answer.
    pub fn task_names(&self) -> Result<Vec<String>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner.submit(Job::Names(tx))?;
        crossbeam_channel::select! {
            recv(rx) -> r => r.map_err(|_| Error::Terminated)?,
            recv(self.inner.terminated) -> _ => Err(Error::Terminated),
        }
    }

    /// Runs the guest's `#[mpwasm_guest::main]` in a worker process and
    /// returns its exit code (what `mpwasm run` does): what main returns (0
    /// for `()`), 1 after a non-zero `exit` (WASI preview 2 carries only
    /// success or failure), or 1 if it panics or traps. Program arguments
    /// are set with [`PoolBuilder::args`].
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if the worker cannot start; [`Error::Main`] if its
    /// process ends while main runs (stopped past its deadline, killed, or
    /// broke the protocol); [`Error::Closed`]/[`Error::Terminated`].
    pub fn run_main(&self) -> Result<i32> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner.submit(Job::Main(tx))?;
        crossbeam_channel::select! {
            recv(rx) -> r => r.map_err(|_| Error::Terminated)?,
            recv(self.inner.terminated) -> _ => Err(Error::Terminated),
        }
    }

    /// Checks that the guest exports `task`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`] listing the tasks it does export, or as
    /// [`Pool::task_names`].
    pub fn check_task(&self, task: &str) -> Result<()> {
        let available = self.task_names()?;
        if available.iter().any(|t| t == task) {
            Ok(())
        } else {
            Err(Error::UnknownTask {
                name: task.to_string(),
                available,
            })
        }
    }

    /// Applies `task` to every input and returns the results in order
    /// (Python's `Pool.map`). Blocks until all are done.
    ///
    /// # Errors
    ///
    /// The first failed input's [`Error::Task`] (the others still ran), an
    /// [`Error::Encode`] for an input that cannot be encoded, or
    /// [`Error::Closed`]/[`Error::Terminated`].
    pub fn map<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let inputs = inputs.into_iter();
        match inputs.size_hint() {
            // Known length: encoded straight from the iterator, never
            // collected into a vector first.
            (lower, Some(upper)) if lower == upper => collect(self.inner.start_map(task, inputs)?),
            _ => collect(
                self.inner
                    .start_map(task, inputs.collect::<Vec<_>>().into_iter())?,
            ),
        }
    }

    /// [`map`](Pool::map) for tasks of several arguments, each input a tuple
    /// (Python's `Pool.starmap`).
    ///
    /// # Errors
    ///
    /// As [`Pool::map`].
    pub fn starmap<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        self.map(task, inputs)
    }

    /// Runs `task` once on `arg` in a worker (Python's `Pool.apply`).
    ///
    /// # Errors
    ///
    /// As [`Pool::map`].
    pub fn apply<A, R>(&self, task: &str, arg: A) -> Result<R>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let mut out = self.map(task, [arg])?;
        Ok(out.pop().expect("one input, one output"))
    }

    /// Like [`map`](Pool::map) but returns at once; the results arrive in the
    /// [`AsyncResult`] (Python's `Pool.map_async`).
    ///
    /// # Errors
    ///
    /// Only encoding errors and a closed pool are reported here; everything
    /// else comes from [`AsyncResult::get`].
    pub fn map_async<A, R>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let stream = self
            .inner
            .start_map(task, inputs.into_iter().collect::<Vec<_>>().into_iter())?;
        self.inner.spawn_collector(move || collect(stream))
    }

    /// Like [`apply`](Pool::apply) but returns at once (Python's
    /// `Pool.apply_async`).
    ///
    /// # Errors
    ///
    /// As [`Pool::map_async`].
    pub fn apply_async<A, R>(&self, task: &str, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let stream = self.inner.start_map(task, std::iter::once(arg))?;
        self.inner.spawn_collector(move || {
            collect(stream).map(|mut v: Vec<R>| v.pop().expect("one input, one output"))
        })
    }

    /// Applies `task` lazily: inputs are pulled as workers free up and
    /// results are yielded in input order (Python's `Pool.imap`). At most
    /// `2 * processes + 1` chunks are in flight, so the input may be endless.
    ///
    /// A failed input yields its [`Error::Task`] and the iteration goes on;
    /// an input that cannot be encoded yields [`Error::Encode`] and ends it.
    pub fn imap<A, R, I>(&self, task: &str, inputs: I) -> Imap<R, I::IntoIter>
    where
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.typed_stream(task, inputs, true)
    }

    /// Like [`imap`](Pool::imap), in completion order (Python's
    /// `Pool.imap_unordered`).
    pub fn imap_unordered<A, R, I>(&self, task: &str, inputs: I) -> Imap<R, I::IntoIter>
    where
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.typed_stream(task, inputs, false)
    }

    fn typed_stream<A, R, I>(&self, task: &str, inputs: I, ordered: bool) -> Imap<R, I::IntoIter>
    where
        A: Serialize,
        R: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let chunking = self.inner.chunking_for(None);
        Imap {
            stream: self.inner.stream(
                task,
                self.inner.typed_codec(),
                Typed(inputs.into_iter(), self.inner.typed_codec()),
                chunking,
                ordered,
            ),
            _result: std::marker::PhantomData,
        }
    }

    /// The untyped form of [`imap`](Pool::imap) behind `mpwasm pool`: inputs
    /// and results are raw payloads in `codec` (JSON text for the CLI), and
    /// each result comes with its input's index.
    pub fn imap_raw<I>(
        &self,
        task: &str,
        codec: Codec,
        inputs: I,
        ordered: bool,
    ) -> RawStream<I::IntoIter>
    where
        I: IntoIterator<Item = Vec<u8>>,
    {
        let chunking = self.inner.chunking_for(None);
        RawStream(
            self.inner
                .stream(task, codec, Raw(inputs.into_iter()), chunking, ordered),
        )
    }

    /// The untyped stream behind a guest pool's jobs: raw bincode inputs,
    /// chunked by `chunksize` or CPython's default for their number.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]/[`Error::Terminated`]: the pool takes no new job.
    pub(crate) fn submit_raw(
        &self,
        task: &str,
        inputs: crate::batch::Batch,
        ordered: bool,
        chunksize: Option<usize>,
    ) -> Result<Stream<Payloads>> {
        let chunking = match chunksize {
            Some(n) => Chunking::Fixed(n),
            None => self.inner.chunking_for(Some(inputs.len())),
        };
        let stream = self.inner.stream(
            task,
            Codec::Bincode,
            Payloads {
                batch: inputs,
                next: 0,
            },
            chunking,
            ordered,
        );
        stream.accepted()?;
        Ok(stream)
    }

    /// The broker serving this pool's workers' upcalls.
    pub(crate) fn broker(&self) -> &Arc<crate::broker::Broker> {
        self.inner.shared.broker()
    }

    /// Runs one chunk of encoded inputs on the pool's workers and returns
    /// its outcome, indexed from 0 (what a cluster worker host does with a
    /// chunk it took).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]/[`Error::Terminated`]: the pool takes no new work,
    /// or was terminated while the chunk ran.
    pub(crate) fn run_chunk(
        &self,
        task: &str,
        codec: Codec,
        inputs: crate::batch::Batch,
    ) -> Result<ChunkDone> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.inner.submit(Job::Run(Chunk {
            task: task.into(),
            codec,
            first_index: 0,
            inputs,
            reply,
        }))?;
        crossbeam_channel::select! {
            recv(rx) -> r => r.map_err(|_| Error::Terminated),
            recv(self.inner.terminated) -> _ => Err(Error::Terminated),
        }
    }

    /// Stops taking work; every job submitted before still runs to its end
    /// (Python's `Pool.close`): `map_async`/`apply_async` work, and the
    /// inputs of an [`imap`](Pool::imap) started before (as they are pulled:
    /// [`join`](Pool::join) waits until such an iterator is exhausted or
    /// dropped).
    pub fn close(&self) {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Stops the workers at once; pending work fails with
    /// [`Error::Terminated`] (Python's `Pool.terminate`).
    pub fn terminate(&self) {
        self.inner.terminate();
    }

    /// Waits for the workers to exit after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) (Python's `Pool.join`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the pool is still open, as Python raises
    /// `ValueError`.
    pub fn join(&self) -> Result<()> {
        if self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return Err(Error::Config(
                "join() called before close() or terminate()".into(),
            ));
        }
        self.inner.join();
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.terminate();
        self.inner.join();
    }
}

/// The iterator [`Pool::imap`] and [`Pool::imap_unordered`] return: one
/// decoded result (or error) per input.
pub struct Imap<R, I> {
    stream: Stream<Typed<I>>,
    _result: std::marker::PhantomData<fn() -> R>,
}

impl<A: Serialize, R: DeserializeOwned, I: Iterator<Item = A>> Iterator for Imap<R, I> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        let codec = self.stream.codec();
        Some(
            self.stream
                .next()?
                .and_then(|(index, bytes)| decode(codec, index, &bytes)),
        )
    }
}

/// The iterator [`Pool::imap_raw`] returns: each input's index and its
/// encoded result, or its error.
pub struct RawStream<I>(Stream<Raw<I>>);

impl<I: Iterator<Item = Vec<u8>>> Iterator for RawStream<I> {
    type Item = Result<(u64, Payload)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}
