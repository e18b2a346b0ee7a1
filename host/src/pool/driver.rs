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
//! dies, or sends a frame that breaks the protocol, fails the inputs it held
//! with `WorkerLost` and is replaced for the next chunk.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::Shared;
use crate::error::{Error, TaskErrorKind};
use crate::wire::{Codec, Failure, FromWorker, Init, Outcome, ToWorker};
use crate::worker::spawn::WorkerProcess;

/// Work for a driver.
pub(crate) enum Job {
    /// Run a chunk of inputs.
    Run(Chunk),
    /// Ask the guest for its task names.
    Names(Sender<Result<Vec<String>, Error>>),
}

/// A contiguous run of a job's inputs, sent to one worker in one frame.
pub(crate) struct Chunk {
    pub(crate) task: Arc<str>,
    pub(crate) codec: Codec,
    pub(crate) first_index: u64,
    pub(crate) inputs: Vec<Vec<u8>>,
    pub(crate) reply: Sender<ChunkDone>,
}

/// The outcomes of a chunk, in input order.
pub(crate) struct ChunkDone {
    pub(crate) first_index: u64,
    pub(crate) outcomes: Vec<Outcome>,
}

pub(crate) struct Driver {
    id: u32,
    shared: Arc<Shared>,
    worker: Option<WorkerProcess>,
}

impl Driver {
    pub(crate) fn new(id: u32, shared: Arc<Shared>) -> Self {
        Driver {
            id,
            shared,
            worker: None,
        }
    }

    /// Starts the worker, then serves jobs until the channel closes or the
    /// pool is terminated.
    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        let _ = self.worker();
        for job in jobs {
            if self.shared.is_terminated() {
                break;
            }
            match job {
                Job::Run(chunk) => {
                    let outcomes = self.run_chunk(&chunk);
                    if self.shared.is_terminated() {
                        break;
                    }
                    let _ = chunk.reply.send(ChunkDone {
                        first_index: chunk.first_index,
                        outcomes,
                    });
                }
                Job::Names(reply) => {
                    let _ = reply.send(self.names());
                }
            }
        }
        self.discard_worker();
    }

    /// The live worker, starting one if needed.
    fn worker(&mut self) -> Result<&mut WorkerProcess, String> {
        if self.worker.is_none() {
            let init = Init {
                artifact: self.shared.guest.artifact().to_path_buf(),
                id: self.id,
                name: format!("PoolWorker-{}", self.id + 1),
                stdout_to_stderr: self.shared.stdout_to_stderr,
            };
            let mut worker =
                WorkerProcess::spawn(&self.shared.program, &init).map_err(|e| e.to_string())?;
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

    fn run_chunk(&mut self, chunk: &Chunk) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(chunk.inputs.len());
        let mut pending: VecDeque<Range<usize>> = VecDeque::from([0..chunk.inputs.len()]);
        while let Some(range) = pending.pop_front() {
            if range.is_empty() {
                continue;
            }
            if self.shared.is_terminated() {
                return outcomes;
            }
            self.run_range(chunk, range, &mut outcomes, &mut pending);
        }
        outcomes
    }

    /// Runs `chunk.inputs[range]` once, appending outcomes for the inputs it
    /// settled and pushing what must run again to the front of `pending`.
    fn run_range(
        &mut self,
        chunk: &Chunk,
        range: Range<usize>,
        outcomes: &mut Vec<Outcome>,
        pending: &mut VecDeque<Range<usize>>,
    ) {
        let n = range.len();
        let lost = |message: String| Failure {
            kind: TaskErrorKind::WorkerLost,
            message,
            backtrace: None,
        };
        let worker = match self.worker() {
            Ok(w) => w,
            Err(msg) => {
                let f = lost(format!("cannot start worker: {msg}"));
                outcomes.extend((0..n).map(|_| Err(f.clone())));
                return;
            }
        };
        let request = ToWorker::Run {
            task: std::borrow::Cow::Borrowed(&chunk.task),
            codec: chunk.codec,
            first_index: chunk.first_index + range.start as u64,
            inputs: std::borrow::Cow::Borrowed(&chunk.inputs[range.clone()]),
        };
        let pid = worker.pid();
        match worker.request(&request) {
            Ok(FromWorker::Done(done)) if done.len() == n => outcomes.extend(done),
            Ok(FromWorker::Rejected(f)) => outcomes.extend((0..n).map(|_| Err(f.clone()))),
            Ok(FromWorker::Trapped {
                completed,
                panic,
                trap,
                backtrace,
            }) if completed.len() < n => {
                let k = completed.len();
                outcomes.extend(completed);
                match panic {
                    Some(message) => {
                        outcomes.push(Err(Failure {
                            kind: TaskErrorKind::Panic,
                            message,
                            backtrace,
                        }));
                        pending.push_front(range.start + k + 1..range.end);
                    }
                    None if n == 1 => outcomes.push(Err(Failure {
                        kind: TaskErrorKind::Trap,
                        message: trap,
                        backtrace,
                    })),
                    None => {
                        for i in (range.start + k..range.end).rev() {
                            pending.push_front(i..i + 1);
                        }
                    }
                }
            }
            Ok(other) => {
                tracing::warn!(
                    worker = self.id,
                    pid,
                    "protocol violation: {}",
                    frame_name(&other)
                );
                self.discard_worker();
                let f = lost(format!(
                    "worker process {pid} broke the protocol and was stopped"
                ));
                outcomes.extend((0..n).map(|_| Err(f.clone())));
            }
            Err(e) => {
                let status = self
                    .worker
                    .take()
                    .map(WorkerProcess::end)
                    .unwrap_or_default();
                if !self.shared.is_terminated() {
                    tracing::warn!(worker = self.id, pid, "worker lost: {e}; {status}");
                }
                let f = lost(format!("worker process {pid} {status} ({e})"));
                outcomes.extend((0..n).map(|_| Err(f.clone())));
            }
        }
    }
}

fn frame_name(frame: &FromWorker) -> &'static str {
    match frame {
        FromWorker::Ready { .. } => "unexpected Ready",
        FromWorker::InitFailed(_) => "unexpected InitFailed",
        FromWorker::Done(_) => "wrong number of outcomes",
        FromWorker::Rejected(_) => "unexpected Rejected",
        FromWorker::Trapped { .. } => "too many completed outcomes",
        FromWorker::Names(_) => "unexpected Names",
    }
}
