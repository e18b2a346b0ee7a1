//! Pools of worker processes started from a guest (Python's
//! `multiprocessing.Pool`).
//!
//! A [`Pool`] asks the parent mpwasm process for a pool of workers running
//! this same guest, with the host scheduler's crash isolation, retries and
//! deadlines. Jobs name a `#[task]` of the guest and hand it inputs, encoded
//! with bincode into one batch (see `batch` in the WIT); results come back
//! one by one.
//!
//! ```no_run
//! use mpwasm_guest::Pool;
//!
//! #[mpwasm_guest::task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let pool = Pool::new(4)?;
//!     let squares: Vec<u64> = pool.map("square", 0..10_u64)?;
//!     println!("{squares:?}");
//!     Ok(())
//! }
//! ```
//!
//! Dropping a pool terminates its workers and waits for them to exit, as
//! leaving Python's `with Pool()` block does; call [`close`](Pool::close)
//! and [`join`](Pool::join) first to let submitted work finish, or run the
//! work inside [`Pool::scope`], which does that when it succeeds.
//!
//! Python's keyword arguments have Rust faces: `Pool(processes,
//! initializer, initargs, maxtasksperchild)` is [`Pool::builder`];
//! `chunksize=` is [`Pool::chunked`]; `callback=` and `error_callback=` are
//! [`AsyncResult::callback`] and [`AsyncResult::error_callback`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::pool as wit;
use crate::error::{Error, Result};
use crate::{codec, time};

/// A pool of worker processes running this guest's tasks (Python's
/// `multiprocessing.Pool`).
///
/// # When callbacks run
///
/// A guest has one thread, so there is no result-handler thread to run a
/// callback the moment its job finishes, as CPython's pool does. A callback
/// runs in the guest's own thread the first time its result is seen ready:
/// by [`AsyncResult::get`], [`wait`](AsyncResult::wait),
/// [`ready`](AsyncResult::ready) or [`successful`](AsyncResult::successful),
/// or by [`Pool::join`] after [`Pool::close`], which waits for every
/// outstanding `*_async` result of the pool and runs its callbacks (so the
/// Python idiom "submit with callbacks, close, join, read what the callbacks
/// collected" works unchanged). After [`Pool::terminate`] no callback runs
/// for a job that did not finish, as in CPython.
pub struct Pool {
    host: wit::Pool,
    /// The `*_async` results not yet collected, for [`Pool::join`].
    outstanding: Outstanding,
    /// `terminate` was called: `join` collects nothing more.
    terminated: Cell<bool>,
}

/// The results with callbacks that a pool's `join` still has to collect.
/// Held strongly: Python code drops the `AsyncResult` of a job whose
/// callback does the work.
type Outstanding = Rc<Registry>;

/// The list behind [`Outstanding`].
type Registry = RefCell<Vec<Rc<RefCell<dyn Collect>>>>;

/// A callback on a job's value.
type Callback<T> = Option<Box<dyn FnOnce(&T)>>;

/// Options of a new pool (Python's `Pool(processes, initializer, initargs,
/// maxtasksperchild)`); made by [`Pool::builder`].
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::Pool;
///
/// // #[task] fn connect(url: String) -> () sets up per-worker state.
/// let pool = Pool::builder()
///     .processes(4)
///     .initializer("connect", "db://local".to_string())
///     .maxtasksperchild(100)
///     .build()?;
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<(String, Result<Vec<u8>>)>,
    maxtasksperchild: Option<u64>,
}

impl PoolBuilder {
    /// Number of workers. Default: one per CPU the host offers.
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// A `#[task]` each worker runs on `args` before its first task, and
    /// again whenever its instance is reset after a trap (Python's
    /// `initializer` and `initargs`). Module-level state it sets (a
    /// `static`, a `thread_local!`) is there for the tasks that worker runs.
    /// If it fails, the tasks that worker was given fail with its error and
    /// the worker is replaced (CPython would restart it forever).
    pub fn initializer<A: Serialize>(mut self, task: &str, args: A) -> Self {
        self.initializer = Some((task.to_string(), codec::to_bytes(&args)));
        self
    }

    /// Replaces each worker after it has run `n` tasks (Python's
    /// `maxtasksperchild`). Default: the run's `--maxtasksperchild`, else
    /// never.
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.maxtasksperchild = Some(n);
        self
    }

    /// Starts the pool.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] for 0 processes or a `maxtasksperchild` of 0
    /// (Python's `ValueError`), [`Error::Codec`] if the initializer's
    /// arguments cannot be encoded, [`Error::Limit`] for more processes than
    /// the host allows; the host's error.
    pub fn build(self) -> Result<Pool> {
        let processes = match self.processes {
            Some(0) => {
                return Err(Error::Other(
                    "number of processes must be at least 1".into(),
                ))
            }
            Some(n) => {
                Some(u32::try_from(n).map_err(|_| Error::Limit(format!("{n} pool processes")))?)
            }
            None => None,
        };
        if self.maxtasksperchild == Some(0) {
            return Err(Error::Other(
                "maxtasksperchild must be a positive int or None".into(),
            ));
        }
        let (initializer, initargs) = match self.initializer {
            Some((task, args)) => (Some(task), args?),
            None => (None, Vec::new()),
        };
        let host = wit::create(&wit::PoolOptions {
            processes,
            initializer,
            initargs,
            maxtasksperchild: self.maxtasksperchild,
        })?;
        Ok(Pool {
            host,
            outstanding: Outstanding::default(),
            terminated: Cell::new(false),
        })
    }
}

impl Pool {
    /// A pool of `processes` workers (Python's `Pool(processes)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] for 0 processes (Python's `ValueError`),
    /// [`Error::Limit`] for more than the host allows; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let pool = mpwasm_guest::Pool::new(2)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// A pool of one worker per CPU the host offers (Python's `Pool()`).
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let pool = mpwasm_guest::Pool::with_cpu_count()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn with_cpu_count() -> Result<Pool> {
        Pool::builder().build()
    }

    /// Options for a pool: processes, initializer, `maxtasksperchild`.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The same jobs with `chunksize` inputs sent to a worker at a time
    /// (Python's `chunksize=` argument of `map`, `imap`, `starmap`, ...).
    /// Without it the host picks CPython's default, `ceil(n / (4 *
    /// processes))`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let squares: Vec<u64> = pool.chunked(100).map("square", 0..10_000_u64)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn chunked(&self, chunksize: usize) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: Some(u32::try_from(chunksize.max(1)).unwrap_or(u32::MAX)),
        }
    }

    /// Runs `body` with the pool, then — as Python's `with Pool() as p:`
    /// block would if it ended with `p.close(); p.join()` — closes and joins
    /// it when `body` succeeds, so every job submitted in it finishes and its
    /// callbacks run; when `body` fails the pool is terminated instead (what
    /// leaving the `with` block does).
    ///
    /// # Errors
    ///
    /// `body`'s error, or the error of [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::Pool;
    ///
    /// let total = Pool::new(2)?.scope(|pool| {
    ///     let squares: Vec<u64> = pool.map("square", 0..10_u64)?;
    ///     Ok(squares.iter().sum::<u64>())
    /// })?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn scope<T>(self, body: impl FnOnce(&Pool) -> Result<T>) -> Result<T> {
        let value = body(&self)?; // dropping `self` terminates on error
        self.close();
        self.join()?;
        Ok(value)
    }

    /// Runs `task` on every input and returns the results in input order.
    ///
    /// # Errors
    ///
    /// [`Error::Task`] for the first failed input to be reported (returned
    /// as soon as it is, as CPython's `map` raises the first exception it
    /// sees; the other inputs still run);
    /// [`Error::Codec`] if an input cannot be encoded or a result decoded;
    /// the host's error, e.g. after [`close`](Self::close).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let squares: Vec<i64> = pool.map("square", [1_i64, 2, 3])?;
    /// assert_eq!(squares, [1, 4, 9]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn map<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        self.plain().map(task, inputs)
    }

    /// Runs a task of several parameters on every tuple of arguments
    /// (Python's `starmap`). A task with several parameters takes them as
    /// one tuple, so this is [`map`](Self::map) under Python's name.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// // #[task] fn add(a: i64, b: i64) -> i64
    /// let sums: Vec<i64> = pool.starmap("add", [(1_i64, 2_i64), (3, 4)])?;
    /// assert_eq!(sums, [3, 7]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn starmap<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        self.plain().map(task, inputs)
    }

    /// Runs `task` once on `arg` in a worker and returns its result
    /// (Python's `apply`).
    ///
    /// # Errors
    ///
    /// [`Error::Task`] if the task failed; otherwise as [`map`](Self::map).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let nine: i64 = pool.apply("square", 3_i64)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn apply<A, R>(&self, task: &str, arg: A) -> Result<R>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        self.apply_async(task, arg)?.get(None)
    }

    /// Starts `task` on every input and returns an iterator over the
    /// results in input order, each available as soon as it and those
    /// before it are done (Python's `imap`).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if an input cannot be encoded; the host's error.
    /// Failed inputs show up as [`Error::Task`] items of the iterator.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// for square in pool.imap::<_, i64>("square", 1..=3_i64)? {
    ///     println!("{}", square?);
    /// }
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn imap<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Imap<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        self.plain().imap(task, inputs)
    }

    /// As [`imap`](Self::imap), but results come in the order they finish
    /// (Python's `imap_unordered`).
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let mut squares = pool
    ///     .imap_unordered::<_, i64>("square", 1..=3_i64)?
    ///     .collect::<mpwasm_guest::Result<Vec<_>>>()?;
    /// squares.sort();
    /// assert_eq!(squares, [1, 4, 9]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn imap_unordered<A, R>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<Imap<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        self.plain().imap_unordered(task, inputs)
    }

    /// Starts [`map`](Self::map) and returns at once (Python's
    /// `map_async`).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if an input cannot be encoded; the host's error.
    /// Failed inputs are reported by [`AsyncResult::get`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let mut pending = pool.map_async::<_, i64>("square", [1_i64, 2, 3])?;
    /// // ... other work ...
    /// let squares = pending.get(None)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn map_async<A, R>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        self.plain().map_async(task, inputs)
    }

    /// Starts [`starmap`](Self::starmap) and returns at once (Python's
    /// `starmap_async`).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let mut sums = pool.starmap_async::<_, i64>("add", [(1_i64, 2_i64)])?;
    /// assert_eq!(sums.get(None)?, [3]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn starmap_async<A, R>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        self.map_async(task, inputs)
    }

    /// Starts [`apply`](Self::apply) and returns at once (Python's
    /// `apply_async`).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    ///
    /// let mut nine = pool.apply_async::<_, i64>("square", 3_i64)?;
    /// match nine.get(Some(Duration::from_secs(1))) {
    ///     Ok(n) => println!("{n}"),
    ///     Err(mpwasm_guest::Error::Timeout) => println!("still running"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn apply_async<A, R>(&self, task: &str, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let job = self.submit(task, [arg], false, None)?;
        Ok(self.track(AsyncResult::new(job, decode_one::<R>)))
    }

    /// Stops taking work; jobs already submitted still finish. Then
    /// [`join`](Self::join) waits for the workers to exit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// pool.close();
    /// pool.join()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn close(&self) {
        self.host.close();
    }

    /// Stops the workers at once, killing running tasks (what dropping the
    /// pool does). Callbacks of jobs that did not finish never run.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// pool.terminate();
    /// pool.join()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn terminate(&self) {
        self.terminated.set(true);
        self.host.terminate();
    }

    /// Waits for the workers to exit, after [`close`](Self::close) or
    /// [`terminate`](Self::terminate). After `close` it first waits for
    /// every outstanding `*_async` result and runs its callbacks.
    ///
    /// # Errors
    ///
    /// The host's error, e.g. if the pool is still running (Python's
    /// `ValueError`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// pool.close();
    /// pool.join()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.host.join()?;
        if !self.terminated.get() {
            let outstanding = std::mem::take(&mut *self.outstanding.borrow_mut());
            for result in outstanding {
                result.borrow_mut().collect(None);
            }
        }
        Ok(())
    }

    /// The jobs with the host's chunk size.
    fn plain(&self) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: None,
        }
    }

    /// Lets `result` register with [`join`](Self::join) once it is given
    /// a callback.
    fn track<T: 'static>(&self, mut result: AsyncResult<T>) -> AsyncResult<T> {
        result.pool = Rc::downgrade(&self.outstanding);
        result
    }

    /// Encodes `inputs` into one batch and submits it.
    fn submit<A: Serialize>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
        ordered: bool,
        chunksize: Option<u32>,
    ) -> Result<Job> {
        let mut batch = Vec::new();
        let mut len = 0_u64;
        for input in inputs {
            codec::push_payload(&mut batch, &input)?;
            len += 1;
        }
        if len == 0 {
            return Ok(Job::empty());
        }
        let host = self.host.submit(task, &batch, ordered, chunksize)?;
        Ok(Job::new(host, len))
    }
}

/// A pool's jobs with a chunk size: what [`Pool::chunked`] returns. Each
/// method is the [`Pool`] method of the same name.
#[derive(Debug, Clone, Copy)]
pub struct Chunked<'p> {
    pool: &'p Pool,
    chunksize: Option<u32>,
}

impl Chunked<'_> {
    /// [`Pool::map`] in chunks.
    ///
    /// # Errors
    ///
    /// As [`Pool::map`].
    pub fn map<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let job = self.pool.submit(task, inputs, false, self.chunksize)?;
        AsyncResult::new(job, decode_all::<R>).get(None)
    }

    /// [`Pool::starmap`] in chunks.
    ///
    /// # Errors
    ///
    /// As [`Pool::map`].
    pub fn starmap<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        self.map(task, inputs)
    }

    /// [`Pool::imap`] in chunks.
    ///
    /// # Errors
    ///
    /// As [`Pool::imap`].
    pub fn imap<A, R>(&self, task: &str, inputs: impl IntoIterator<Item = A>) -> Result<Imap<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        Ok(Imap::new(self.pool.submit(
            task,
            inputs,
            true,
            self.chunksize,
        )?))
    }

    /// [`Pool::imap_unordered`] in chunks.
    ///
    /// # Errors
    ///
    /// As [`Pool::imap`].
    pub fn imap_unordered<A, R>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<Imap<R>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        Ok(Imap::new(self.pool.submit(
            task,
            inputs,
            false,
            self.chunksize,
        )?))
    }

    /// [`Pool::map_async`] in chunks.
    ///
    /// # Errors
    ///
    /// As [`Pool::map_async`].
    pub fn map_async<A, R>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let job = self.pool.submit(task, inputs, false, self.chunksize)?;
        Ok(self.pool.track(AsyncResult::new(job, decode_all::<R>)))
    }

    /// [`Pool::starmap_async`] in chunks.
    ///
    /// # Errors
    ///
    /// As [`Pool::map_async`].
    pub fn starmap_async<A, R>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        self.map_async(task, inputs)
    }
}

impl Drop for Pool {
    /// Terminates the workers and waits for them to exit, as leaving
    /// Python's `with Pool()` does (its `terminate` waits for the workers).
    fn drop(&mut self) {
        self.host.terminate();
        // A pool already joined may say so; nobody is left to tell.
        let _ = self.host.join();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("handle", &self.host.handle())
            .finish()
    }
}

/// One submitted job: its results as the host delivers them (several per
/// call), checked against the number of inputs.
struct Job {
    /// `None` for a job without inputs, which is never submitted.
    host: Option<wit::Job>,
    /// Number of inputs.
    len: u64,
    /// Number of results delivered so far.
    delivered: u64,
    /// Results the host handed over and nobody took yet.
    buffered: VecDeque<(u64, std::result::Result<Vec<u8>, wit::TaskFailure>)>,
}

/// One result: the input's position, and its payload or why it failed.
type Delivery = (u64, Result<Vec<u8>>);

impl Job {
    fn new(host: wit::Job, len: u64) -> Job {
        Job {
            host: Some(host),
            len,
            delivered: 0,
            buffered: VecDeque::new(),
        }
    }

    fn empty() -> Job {
        Job {
            host: None,
            len: 0,
            delivered: 0,
            buffered: VecDeque::new(),
        }
    }

    /// The next result; `Ok(None)` once all were delivered; `Err(Timeout)`
    /// if none came within `timeout`.
    fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        if self.delivered >= self.len {
            return Ok(None);
        }
        if self.buffered.is_empty() {
            let Some(host) = &self.host else {
                return Ok(None);
            };
            self.buffered.extend(host.next(time::millis(timeout))?);
        }
        let Some((index, result)) = self.buffered.pop_front() else {
            return Err(Error::Other(format!(
                "pool job ended after {} of {} results",
                self.delivered, self.len
            )));
        };
        if index >= self.len {
            return Err(Error::Other(format!(
                "pool job delivered a result for input {index} of {}",
                self.len
            )));
        }
        self.delivered += 1;
        let result = result.map_err(|f| Error::Task {
            index,
            kind: f.kind,
            message: f.message,
        });
        Ok(Some((index, result)))
    }

    fn remaining(&self) -> u64 {
        self.len - self.delivered
    }
}

/// The results of [`Pool::imap`] or [`Pool::imap_unordered`], as they
/// come: an iterator of `Result<R>`.
///
/// A failed input is an [`Error::Task`] item and iteration goes on with the
/// next one; any other error (the pool was terminated, a host failure) is
/// the last item.
pub struct Imap<R> {
    job: Job,
    /// Set after an error that ends the job.
    fused: bool,
    results: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> Imap<R> {
    fn new(job: Job) -> Imap<R> {
        Imap {
            job,
            fused: false,
            results: PhantomData,
        }
    }

    /// The next result, waiting at most `timeout` for it (Python's
    /// `next(timeout)`); `None` when every result was delivered.
    ///
    /// # Errors
    ///
    /// `Some(Err(Error::Timeout))` if none came in time (call again to keep
    /// waiting); otherwise as the iterator's items.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    ///
    /// let mut results = pool.imap::<_, u64>("slow_square", 1..=3_u64)?;
    /// while let Some(r) = results.next_timeout(Duration::from_secs(1)) {
    ///     match r {
    ///         Ok(n) => println!("{n}"),
    ///         Err(mpwasm_guest::Error::Timeout) => println!("waiting..."),
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        self.pull(Some(timeout))
    }

    fn pull(&mut self, timeout: Option<Duration>) -> Option<Result<R>> {
        if self.fused {
            return None;
        }
        match self.job.next(timeout) {
            Ok(None) => None,
            Ok(Some((_, Ok(bytes)))) => Some(codec::from_bytes(&bytes)),
            Ok(Some((_, Err(failed)))) => Some(Err(failed)),
            Err(Error::Timeout) => Some(Err(Error::Timeout)),
            Err(e) => {
                self.fused = true;
                Some(Err(e))
            }
        }
    }
}

impl<R: DeserializeOwned> Iterator for Imap<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.pull(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.fused {
            return (0, Some(0));
        }
        let left = usize::try_from(self.job.remaining()).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl<R> fmt::Debug for Imap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("len", &self.job.len)
            .field("delivered", &self.job.delivered)
            .finish()
    }
}

/// A result that will be ready later: what [`Pool::map_async`],
/// [`Pool::starmap_async`] and [`Pool::apply_async`] return (Python's
/// `AsyncResult`).
///
/// Results already pulled from the host are kept, so a [`get`](Self::get)
/// that timed out can simply be called again. See the [`Pool`]'s
/// docs for when callbacks run.
pub struct AsyncResult<T> {
    running: Rc<RefCell<Running<T>>>,
    /// The pool's list of results `join` collects, joined on the first
    /// callback.
    pool: Weak<Registry>,
}

enum State<T> {
    /// Results still to come.
    Running,
    /// Every result came (and decoded), or the first failure did.
    Done(Result<T>),
    /// `get` returned the value.
    Taken,
}

/// A job whose results are being collected, by input position.
struct Running<T> {
    state: State<T>,
    job: Job,
    slots: Vec<Option<Vec<u8>>>,
    /// Turns every input's payload, in input order, into the value.
    finish: fn(Vec<Vec<u8>>) -> Result<T>,
    callback: Callback<T>,
    error_callback: Callback<Error>,
}

/// A result [`Pool::join`] collects, whatever its type.
trait Collect {
    /// Pulls what arrives before `deadline` (`None`: until it is ready).
    fn collect(&mut self, deadline: Option<Instant>);

    /// Results are still to come.
    fn pending(&self) -> bool;
}

impl<T> Collect for Running<T> {
    fn pending(&self) -> bool {
        matches!(self.state, State::Running)
    }

    fn collect(&mut self, deadline: Option<Instant>) {
        if !matches!(self.state, State::Running) {
            return;
        }
        let Some(outcome) = self.pull(deadline) else {
            return;
        };
        match &outcome {
            Ok(value) => {
                if let Some(callback) = self.callback.take() {
                    callback(value);
                }
            }
            Err(e) => {
                if let Some(callback) = self.error_callback.take() {
                    callback(e);
                }
            }
        }
        self.state = State::Done(outcome);
    }
}

impl<T> Running<T> {
    /// Pulls results until all came or one failed (`Some(the outcome)`),
    /// or `deadline` passes (`None`). The first failure to arrive is the
    /// outcome, as in CPython.
    fn pull(&mut self, deadline: Option<Instant>) -> Option<Result<T>> {
        loop {
            match self.job.next(time::remaining(deadline)) {
                Ok(None) => return Some(self.finish()),
                Ok(Some((index, Ok(bytes)))) => {
                    if let Err(e) = self.place(index, bytes) {
                        return Some(Err(e));
                    }
                }
                Ok(Some((_, Err(failed)))) => return Some(Err(failed)),
                Err(Error::Timeout) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn place(&mut self, index: u64, bytes: Vec<u8>) -> Result<()> {
        // `Job::next` checked `index < len`, and `len == slots.len()`.
        let slot = &mut self.slots[index as usize];
        if slot.is_some() {
            return Err(Error::Other(format!(
                "pool job delivered input {index} twice"
            )));
        }
        *slot = Some(bytes);
        Ok(())
    }

    fn finish(&mut self) -> Result<T> {
        let payloads = std::mem::take(&mut self.slots)
            .into_iter()
            .map(|slot| slot.expect("a job that delivered every result filled every slot"))
            .collect();
        (self.finish)(payloads)
    }
}

impl<T> AsyncResult<T> {
    fn new(job: Job, finish: fn(Vec<Vec<u8>>) -> Result<T>) -> AsyncResult<T> {
        // A job's inputs were counted while they were encoded in memory, so
        // their number fits in a usize.
        let slots = (0..job.len).map(|_| None).collect();
        AsyncResult {
            pool: Weak::new(),
            running: Rc::new(RefCell::new(Running {
                state: State::Running,
                job,
                slots,
                finish,
                callback: None,
                error_callback: None,
            })),
        }
    }

    /// Runs `callback` on the value once the job succeeds (Python's
    /// `callback=`); see the [`Pool`]'s docs for when.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::{cell::RefCell, rc::Rc};
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    ///
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// for x in 0..4_u64 {
    ///     let seen = seen.clone();
    ///     pool.apply_async::<_, u64>("square", x)?
    ///         .callback(move |v| seen.borrow_mut().push(*v));
    /// }
    /// pool.close();
    /// pool.join()?; // runs the callbacks
    /// assert_eq!(seen.borrow().len(), 4);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn callback(self, callback: impl FnOnce(&T) + 'static) -> Self
    where
        T: 'static,
    {
        self.running.borrow_mut().callback = Some(Box::new(callback));
        self.register();
        self
    }

    /// Runs `callback` on the error once the job fails (Python's
    /// `error_callback=`): the first failure reported.
    pub fn error_callback(self, callback: impl FnOnce(&Error) + 'static) -> Self
    where
        T: 'static,
    {
        self.running.borrow_mut().error_callback = Some(Box::new(callback));
        self.register();
        self
    }

    /// Puts this result on its pool's list for `join` (once; finished
    /// results leave the list as others join it).
    fn register(&self)
    where
        T: 'static,
    {
        let Some(outstanding) = self.pool.upgrade() else {
            return;
        };
        let mut outstanding = outstanding.borrow_mut();
        outstanding.retain(|r| r.try_borrow().map_or(true, |r| r.pending()));
        let me: Rc<RefCell<dyn Collect>> = self.running.clone();
        if !outstanding
            .iter()
            .any(|r| std::ptr::addr_eq(Rc::as_ptr(r), Rc::as_ptr(&me)))
        {
            outstanding.push(me);
        }
    }

    /// Waits at most `timeout` (`None`: forever) for the result and returns
    /// it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is not ready in time (call again to keep
    /// waiting); [`Error::Task`] for the first failed input reported;
    /// [`Error::Codec`] if a result does not decode; the host's error; and
    /// [`Error::Other`] once an earlier call returned the value.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let mut r = pool.apply_async::<_, u64>("square", 12_u64)?;
    /// assert_eq!(r.get(None)?, 144);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&mut self, timeout: Option<Duration>) -> Result<T> {
        let mut running = self.running.borrow_mut();
        running.collect(time::deadline(timeout));
        match std::mem::replace(&mut running.state, State::Taken) {
            State::Running => {
                running.state = State::Running;
                Err(Error::Timeout)
            }
            State::Done(Ok(value)) => Ok(value),
            State::Done(Err(e)) => {
                running.state = State::Done(Err(e.clone()));
                Err(e)
            }
            State::Taken => Err(Error::Other(
                "AsyncResult::get already returned the value".into(),
            )),
        }
    }

    /// Waits at most `timeout` (`None`: forever) until the result is ready.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    ///
    /// let mut r = pool.map_async::<_, u64>("square", 0..100_u64)?;
    /// r.wait(Some(Duration::from_millis(500)));
    /// println!("ready: {}", r.ready());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn wait(&mut self, timeout: Option<Duration>) {
        self.running.borrow_mut().collect(time::deadline(timeout));
    }

    /// Whether the result is ready (it, or the failure, arrived).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let mut r = pool.apply_async::<_, u64>("square", 2_u64)?;
    /// while !r.ready() {
    ///     // ... other work ...
    /// }
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn ready(&mut self) -> bool {
        let mut running = self.running.borrow_mut();
        running.collect(Some(Instant::now()));
        !matches!(running.state, State::Running)
    }

    /// Whether the job completed without a failure; `None` if it is not
    /// ready yet (where Python raises `ValueError`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let pool = mpwasm_guest::Pool::new(2)?;
    /// let mut r = pool.apply_async::<_, u64>("square", 2_u64)?;
    /// r.wait(None);
    /// assert_eq!(r.successful(), Some(true));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn successful(&mut self) -> Option<bool> {
        let mut running = self.running.borrow_mut();
        running.collect(Some(Instant::now()));
        match running.state {
            State::Running => None,
            State::Done(Ok(_)) | State::Taken => Some(true),
            State::Done(Err(_)) => Some(false),
        }
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self
            .running
            .try_borrow()
            .map(|r| match r.state {
                State::Running => "running",
                State::Done(Ok(_)) => "done",
                State::Done(Err(_)) => "failed",
                State::Taken => "taken",
            })
            .unwrap_or("busy");
        f.debug_struct("AsyncResult")
            .field("state", &state)
            .finish()
    }
}

/// Decodes every result of a `map`, in input order.
fn decode_all<R: DeserializeOwned>(payloads: Vec<Vec<u8>>) -> Result<Vec<R>> {
    payloads
        .iter()
        .enumerate()
        .map(|(index, bytes)| codec::from_bytes(bytes).map_err(|e| in_result(index, e)))
        .collect()
}

/// Decodes the one result of an `apply`.
fn decode_one<R: DeserializeOwned>(payloads: Vec<Vec<u8>>) -> Result<R> {
    match payloads.as_slice() {
        [bytes] => codec::from_bytes(bytes),
        _ => Err(Error::Other(format!(
            "apply expected one result, got {}",
            payloads.len()
        ))),
    }
}

/// Says which result a decoding error is about.
fn in_result(index: usize, e: Error) -> Error {
    match e {
        Error::Codec(what) => Error::Codec(format!("result {index}: {what}")),
        other => other,
    }
}
