//! One driver thread per worker process: it takes chunks from the pool's
//! job channel, runs them on its worker, and heals the worker when it traps
//! or dies.
//!
//! A trap ends only the instance, not the process: the worker starts a
//! fresh instance and the driver re-sends what did not run. When the guest
//! SDK reported a panic, the driver knows which input panicked and the
//! results before it; it fails that input and re-sends the rest. For any
//! other trap it re-runs the chunk's inputs one at a time, so only the input
//! that traps fails (the inputs before it run twice). A worker process that
//! dies fails the inputs it held with `WorkerLost` (or re-runs them, up to
//! the pool's `retries`) and is replaced for the next chunk; one that sends a
//! frame that breaks the protocol is stopped and fails its inputs likewise.
//!
//! Deadlines are the worker's job (epoch interruption); the driver keeps a
//! watchdog a little past the deadline for a worker that cannot stop by
//! itself, and replaces it. `maxtasksperchild` replaces a worker after it
//! has run that many inputs.

use std::collections::VecDeque;
use std::ops::{Range, RangeInclusive};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::Shared;
use crate::batch::Batch;
use crate::error::{Error, TaskErrorKind};
use crate::interfaces::process::{self as process, Entry, Kind};
use crate::wire::{Codec, Failure, FromWorker, Outcome, ToWorker};
use crate::worker::spawn::WorkerProcess;

/// Work for a driver.
pub(crate) enum Job {
    /// Run a chunk of inputs.
    Run(Chunk),
    /// Ask the guest for its task names.
    Names(Sender<Result<Vec<String>, Error>>),
    /// Run the guest's `main`; its exit code.
    Main(Sender<Result<i32, Error>>),
}

/// A contiguous run of a job's inputs, sent to one worker in one frame.
pub(crate) struct Chunk {
    pub(crate) task: Arc<str>,
    pub(crate) codec: Codec,
    pub(crate) first_index: u64,
    pub(crate) inputs: Batch,
    pub(crate) reply: Sender<ChunkDone>,
}

/// The results of a chunk: one payload per input (empty for a failed
/// input) and the failures by position, ascending.
pub(crate) struct ChunkDone {
    pub(crate) first_index: u64,
    pub(crate) results: Batch,
    pub(crate) failures: Vec<(u32, Failure)>,
}

impl ChunkDone {
    fn fail(&mut self, f: Failure) {
        self.failures.push((self.results.len() as u32, f));
        self.results.push(&[]);
    }

    /// Appends a worker's outcome, checking it first (the worker is
    /// untrusted): it must hold a number of results in `allowed`, and
    /// failures in ascending order within them. Returns how many results it
    /// held; on `Err` (the protocol violation) nothing was appended.
    fn append(
        &mut self,
        outcome: Outcome,
        allowed: RangeInclusive<usize>,
    ) -> Result<usize, String> {
        let results = Batch::parse(outcome.results)?;
        let n = results.len();
        if !allowed.contains(&n) {
            return Err(format!("{n} results where {allowed:?} were possible"));
        }
        let mut last = None;
        for (i, _) in &outcome.failures {
            if *i as usize >= n || last.is_some_and(|l| l >= *i) {
                return Err(format!("failure index {i} out of order or range"));
            }
            last = Some(*i);
        }
        let base = self.results.len() as u32;
        self.failures
            .extend(outcome.failures.into_iter().map(|(i, f)| (base + i, f)));
        if self.results.is_empty() {
            self.results = results;
        } else {
            self.results.extend_from(&results, 0..n);
        }
        Ok(n)
    }
}

pub(crate) struct Driver {
    id: u32,
    shared: Arc<Shared>,
    worker: Option<WorkerProcess>,
    /// The live worker as the broker knows it.
    entry: Option<Arc<Entry>>,
    /// Inputs the current worker process has run (for `maxtasksperchild`).
    served: u64,
    /// The pool's initializer ran in the worker's current instance.
    initialized: bool,
}

/// A run of a chunk's inputs still to do, and how many times a worker
/// died holding it.
struct Pending {
    range: Range<usize>,
    lost: u32,
}

/// How long the parent waits beyond a deadline before it kills a worker
/// that did not stop by itself (one blocked in a host call, say).
pub(crate) const WATCHDOG_GRACE: Duration = Duration::from_millis(100);

impl Driver {
    pub(crate) fn new(id: u32, shared: Arc<Shared>) -> Self {
        Driver {
            id,
            shared,
            worker: None,
            entry: None,
            served: 0,
            initialized: false,
        }
    }

    /// Starts the worker, then serves jobs until the channel closes or the
    /// pool is terminated.
    /// `terminated` disconnects when the pool is terminated: a job that
    /// still holds a sender (an `imap` nobody iterates) must not keep the
    /// driver waiting.
    pub(crate) fn run(mut self, jobs: Receiver<Job>, terminated: Receiver<()>) {
        // As CPython's workers, each runs the initializer when it starts
        // (a failure replaces it; the next chunk's inputs get the error).
        if self.worker().is_ok() {
            let _ = self.initialize();
        }
        loop {
            let job = crossbeam_channel::select! {
                recv(jobs) -> job => match job {
                    Ok(job) => job,
                    Err(_) => break, // closed, and every job fully queued
                },
                recv(terminated) -> _ => break,
            };
            if self.shared.is_terminated() {
                break;
            }
            match job {
                Job::Run(chunk) => {
                    let done = self.run_chunk(&chunk);
                    if self.shared.is_terminated() {
                        break;
                    }
                    let _ = chunk.reply.send(done);
                    self.served += chunk.inputs.len() as u64;
                    let recycle = self
                        .shared
                        .maxtasksperchild
                        .is_some_and(|max| self.served >= max);
                    // A worker that ran into a per-process quota does not
                    // carry it into the next inputs.
                    let exhausted = self.entry.as_ref().is_some_and(|e| e.is_exhausted());
                    if recycle || exhausted {
                        self.discard_worker(); // the next chunk starts a fresh one
                    }
                }
                Job::Names(reply) => {
                    let _ = reply.send(self.names());
                }
                Job::Main(reply) => {
                    let _ = reply.send(self.main());
                }
            }
        }
        self.discard_worker();
    }

    /// The live worker, starting one if needed.
    fn worker(&mut self) -> Result<&mut WorkerProcess, String> {
        if self.worker.is_none() {
            let name = format!("PoolWorker-{}", self.id + 1);
            let launch = self.shared.launch();
            let init = launch.init(self.id, name.clone(), None);
            let mut worker = WorkerProcess::spawn(&launch.program, &init, &launch.zygote)
                .map_err(|e| e.to_string())?;
            let broker = &self.shared.broker;
            let entry = broker
                .register_process(|id| Entry::new(id, name, false, Kind::Worker, None), None)
                .map_err(|e| e.to_string())?;
            entry.set_pid(worker.pid());
            worker.serve_calls(broker.clone(), entry.id);
            self.entry = Some(entry);
            if let Ok(socket) = worker.socket() {
                self.shared
                    .set_worker(self.id, Some((worker.pid(), socket)));
            }
            if let Err(e) = worker.wait_ready() {
                self.shared.set_worker(self.id, None);
                return Err(e);
            }
            tracing::debug!(worker = self.id, pid = worker.pid(), "worker ready");
            self.worker = Some(worker);
        }
        Ok(self.worker.as_mut().expect("just started"))
    }

    fn discard_worker(&mut self) {
        self.shared.set_worker(self.id, None);
        self.worker = None; // Drop kills and reaps it.
        self.served = 0;
        self.initialized = false;
        self.forget_entry(false);
    }

    /// The worker process ended: the broker lets go of what it held (and of
    /// its daemon children; `normal` joins the others first).
    fn forget_entry(&mut self, normal: bool) {
        if let Some(entry) = self.entry.take() {
            process::finish(&self.shared.broker, &entry, normal);
            entry.retire();
            self.shared.broker.drop_unused(entry.id);
        }
    }

    fn names(&mut self) -> Result<Vec<String>, Error> {
        let worker = self.worker().map_err(Error::Spawn)?;
        match worker.request(&ToWorker::Names) {
            Ok(FromWorker::Names(names)) => Ok(names),
            Ok(FromWorker::Rejected(f)) => Err(Error::Spawn(f.message)),
            Ok(_) | Err(_) => {
                self.discard_worker();
                Err(Error::Spawn("worker failed while listing tasks".into()))
            }
        }
    }

    /// Sends `request` to a live worker. A worker that died while idle
    /// never saw it, so it goes to a fresh one instead and no input is lost.
    fn deliver(&mut self, request: &ToWorker<'_>) -> Result<&mut WorkerProcess, String> {
        for _ in 0..2 {
            let worker = self.worker()?;
            if !worker.has_exited() && worker.send(request).is_ok() {
                return Ok(self.worker.as_mut().expect("live worker"));
            }
            tracing::warn!(
                worker = self.id,
                "worker process died while idle; starting another"
            );
            self.discard_worker();
        }
        Err("workers die as soon as they start".into())
    }

    fn main(&mut self) -> Result<i32, Error> {
        let watchdog = self.shared.sandbox().timeout.map(|t| t + WATCHDOG_GRACE);
        self.worker().map_err(Error::Spawn)?;
        let name = "MainProcess".to_string();
        if let Some(entry) = &self.entry {
            entry.rename(&name);
        }
        let worker = self.worker.as_mut().expect("started above");
        let pid = worker.pid();
        let code = match worker.request_within(&ToWorker::Main { name }, watchdog) {
            Ok(FromWorker::Exited(code)) => {
                // Python joins a main's non-daemon children at exit and
                // terminates its daemon ones.
                self.forget_entry(true);
                Ok(code)
            }
            other => {
                let why = match &other {
                    Err(e) if is_timeout(e) => "ran past its deadline; it ",
                    Ok(_) => "broke the protocol; it ",
                    Err(_) => "",
                };
                let ended = self.end_worker();
                Err(Error::Main(format!(
                    "main's worker process {pid} {why}{ended}"
                )))
            }
        };
        // Processes whose parent ended before them are still running: the
        // run is over, so they end with it.
        process::end_run(&self.shared.broker);
        code
    }

    /// Unregisters the worker, reaps it, and says how it ended.
    fn end_worker(&mut self) -> String {
        self.shared.set_worker(self.id, None);
        self.served = 0;
        self.initialized = false;
        let status = self
            .worker
            .take()
            .map(WorkerProcess::end)
            .unwrap_or_default();
        self.forget_entry(false);
        status
    }

    fn run_chunk(&mut self, chunk: &Chunk) -> ChunkDone {
        let mut done = ChunkDone {
            first_index: chunk.first_index,
            results: Batch::new(),
            failures: Vec::new(),
        };
        let mut pending: VecDeque<Pending> = std::iter::once(Pending {
            range: 0..chunk.inputs.len(),
            lost: 0,
        })
        .collect();
        while let Some(next) = pending.pop_front() {
            if next.range.is_empty() {
                continue;
            }
            if self.shared.is_terminated() {
                return done;
            }
            self.run_range(chunk, next, &mut done, &mut pending);
        }
        done
    }

    /// Runs `chunk.inputs[range]` once, appending the results of the inputs
    /// it settled to `done` and pushing what must run again to the front of
    /// `pending`.
    fn run_range(
        &mut self,
        chunk: &Chunk,
        next: Pending,
        done: &mut ChunkDone,
        pending: &mut VecDeque<Pending>,
    ) {
        let Pending {
            range,
            lost: times_lost,
        } = next;
        let n = range.len();
        let again = |range: Range<usize>| Pending {
            range,
            lost: times_lost,
        };
        let lost = |message: String| Failure {
            kind: TaskErrorKind::WorkerLost,
            message,
            backtrace: None,
        };
        // The worker stops a task at its deadline by itself; the watchdog
        // is for one that cannot (blocked in a host call, or hostile).
        let watchdog = self
            .shared
            .sandbox()
            .timeout
            .map(|t| t * n as u32 + WATCHDOG_GRACE);
        let request = ToWorker::Run {
            task: std::borrow::Cow::Borrowed(&chunk.task),
            codec: chunk.codec,
            first_index: chunk.first_index + range.start as u64,
            inputs: std::borrow::Cow::Borrowed(chunk.inputs.encoded(range.clone())),
        };
        if let Err(f) = self.initialize() {
            (0..n).for_each(|_| done.fail(f.clone()));
            return;
        }
        let worker = match self.deliver(&request) {
            Ok(w) => w,
            Err(msg) => {
                let f = lost(format!("cannot start worker: {msg}"));
                (0..n).for_each(|_| done.fail(f.clone()));
                return;
            }
        };
        let pid = worker.pid();
        let violation = match worker.receive_within(watchdog) {
            Ok(FromWorker::Done(outcome)) => done.append(outcome, n..=n).err(),
            Ok(FromWorker::Rejected(f)) => {
                (0..n).for_each(|_| done.fail(f.clone()));
                None
            }
            Ok(FromWorker::Trapped {
                kind,
                completed,
                panic,
                trap,
                backtrace,
            }) => match done.append(completed, 0..=n - 1) {
                Err(violation) => Some(violation),
                Ok(k) => {
                    self.instance_reset();
                    match panic {
                        // The SDK said which input panicked: the one after
                        // the completed ones. The rest run again.
                        Some(message) => {
                            done.fail(Failure {
                                kind: TaskErrorKind::Panic,
                                message,
                                backtrace,
                            });
                            pending.push_front(again(range.start + k + 1..range.end));
                        }
                        None if n == 1 => done.fail(Failure {
                            kind,
                            message: trap,
                            backtrace,
                        }),
                        // Unknown culprit: one input at a time finds it.
                        None => {
                            for i in (range.start + k..range.end).rev() {
                                pending.push_front(again(i..i + 1));
                            }
                        }
                    }
                    None
                }
            },
            Ok(other) => Some(frame_name(&other).to_string()),
            Err(e) if is_timeout(&e) => {
                self.discard_worker();
                tracing::warn!(
                    worker = self.id,
                    pid,
                    "deadline passed without a reply; worker killed"
                );
                let f = Failure {
                    kind: TaskErrorKind::Timeout,
                    message: format!(
                        "deadline of {:?} exceeded; worker process {pid} was killed",
                        self.shared.sandbox().timeout.unwrap_or_default()
                    ),
                    backtrace: None,
                };
                (0..n).for_each(|_| done.fail(f.clone()));
                None
            }
            Err(e) => {
                let status = self.end_worker();
                if !self.shared.is_terminated() {
                    tracing::warn!(worker = self.id, pid, "worker lost: {e}; {status}");
                }
                if times_lost < self.shared.retries && !self.shared.is_terminated() {
                    pending.push_front(Pending {
                        range,
                        lost: times_lost + 1,
                    });
                } else {
                    let f = lost(format!("worker process {pid} {status} ({e})"));
                    (0..n).for_each(|_| done.fail(f.clone()));
                }
                None
            }
        };
        if let Some(violation) = violation {
            tracing::warn!(worker = self.id, pid, "protocol violation: {violation}");
            self.discard_worker();
            let f = lost(format!(
                "worker process {pid} broke the protocol and was stopped"
            ));
            (0..n).for_each(|_| done.fail(f.clone()));
        }
    }
}

impl Driver {
    /// The worker's instance trapped and was replaced by a fresh one: the
    /// handles the old one held are gone (the broker lets go of them, so a
    /// pool it made does not outlive it) and the initializer runs again.
    fn instance_reset(&mut self) {
        self.initialized = false;
        if let Some(entry) = &self.entry {
            self.shared.broker.release_all(entry.id);
        }
    }

    /// Runs the pool's initializer in the worker's instance if it has not
    /// run there yet. On failure the worker is replaced (the next chunk
    /// tries a fresh one) and the failure is what the chunk's inputs get.
    fn initialize(&mut self) -> Result<(), Failure> {
        let Some((task, args)) = self.shared.initializer.clone() else {
            return Ok(());
        };
        if self.initialized {
            return Ok(());
        }
        let failed = |kind, message: String, backtrace| Failure {
            kind,
            message: format!("initializer `{task}` failed: {message}"),
            backtrace,
        };
        let request = ToWorker::Run {
            task: std::borrow::Cow::Borrowed(&task),
            codec: Codec::Bincode,
            first_index: 0,
            inputs: std::borrow::Cow::Borrowed(args.encoded(0..1)),
        };
        let watchdog = self.shared.sandbox().timeout.map(|t| t + WATCHDOG_GRACE);
        let outcome = match self.deliver(&request) {
            Ok(worker) => worker.receive_within(watchdog),
            Err(msg) => {
                return Err(failed(TaskErrorKind::WorkerLost, msg, None));
            }
        };
        let failure = match outcome {
            Ok(FromWorker::Done(o)) => match o.failures.into_iter().next() {
                None => {
                    self.initialized = true;
                    return Ok(());
                }
                Some((_, f)) => failed(f.kind, f.message, f.backtrace),
            },
            Ok(FromWorker::Rejected(f)) => failed(f.kind, f.message, f.backtrace),
            Ok(FromWorker::Trapped {
                kind,
                panic,
                trap,
                backtrace,
                ..
            }) => match panic {
                Some(message) => failed(TaskErrorKind::Panic, message, backtrace),
                None => failed(kind, trap, backtrace),
            },
            Ok(other) => failed(
                TaskErrorKind::WorkerLost,
                frame_name(&other).to_string(),
                None,
            ),
            Err(e) => failed(TaskErrorKind::WorkerLost, e.to_string(), None),
        };
        self.discard_worker();
        Err(failure)
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn frame_name(frame: &FromWorker) -> &'static str {
    match frame {
        FromWorker::Ready { .. } => "unexpected Ready",
        FromWorker::InitFailed(_) => "unexpected InitFailed",
        FromWorker::Done(_) => "unexpected Done",
        FromWorker::Rejected(_) => "unexpected Rejected",
        FromWorker::Trapped { .. } => "unexpected Trapped",
        FromWorker::Names(_) => "unexpected Names",
        FromWorker::Exited(_) => "unexpected Exited",
        FromWorker::Call(_) => "unexpected Call",
    }
}
