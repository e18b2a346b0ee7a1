//! `mpwasm:runtime/pool`: `Pool` from a guest's main.
//!
//! Hops of `pool.map(...)` in a guest:
//! 1. `Pool::new(n)` → `Call::PoolCreate`: the broker ([`create`]) builds a
//!    host-crate [`Pool`] of the same guest, sandbox and broker (so its
//!    workers' upcalls are served too);
//! 2. `map` → `Call::PoolSubmit` ([`submit`]): the inputs (one batch buffer)
//!    go to the pool's scheduler; a thread moves the results, as they come,
//!    into the job's channel;
//! 3. `Call::JobNext` ([`next`]) hands them out one at a time, with the
//!    guest's timeout. `terminate` (or dropping the pool) kills the workers,
//!    so a task abandoned after a timed-out `get` really stops.

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use wasmtime::component::Resource;

use super::{unexpected, HostResult};
use crate::batch::Batch;
use crate::bindings::pool;
use crate::broker::budget::Charge;
use crate::broker::{Answer, Broker, Object};
use crate::error::Error;
use crate::limits::{MAX_JOB_ITEMS, MAX_JOB_REPLY_BYTES};
use crate::pool::Pool;
use crate::wire::{Call, CallError, JobItem, Reply};
use crate::worker::child::WorkerState;

// ---------------------------------------------------------------------------
// The worker's side.

/// A pool handle in a guest's resource table: the broker's id.
pub struct PoolHandle(u64);

/// A job handle in a guest's resource table: the broker's id.
pub struct JobHandle(u64);

impl pool::HostPool for WorkerState {
    fn submit(
        &mut self,
        handle: Resource<PoolHandle>,
        task: String,
        inputs: Vec<u8>,
        ordered: bool,
        chunksize: Option<u32>,
    ) -> HostResult<Resource<JobHandle>> {
        let pool = self.table.get(&handle)?.0;
        let call = Call::PoolSubmit {
            pool,
            task,
            inputs,
            ordered,
            chunksize,
        };
        Ok(match self.upcall(call, &[])? {
            Ok((Reply::Object(id), _)) => Ok(self.table.push(JobHandle(id))?),
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }

    fn close(&mut self, handle: Resource<PoolHandle>) -> wasmtime::Result<()> {
        self.stop(&handle, false)
    }

    fn terminate(&mut self, handle: Resource<PoolHandle>) -> wasmtime::Result<()> {
        self.stop(&handle, true)
    }

    fn join(&mut self, handle: Resource<PoolHandle>) -> HostResult<()> {
        let pool = self.table.get(&handle)?.0;
        Ok(self.upcall(Call::PoolJoin { pool }, &[])?.map(|_| ()))
    }

    fn drop(&mut self, handle: Resource<PoolHandle>) -> wasmtime::Result<()> {
        let id = self.table.delete(handle)?.0;
        self.upcall(Call::Release { id }, &[])?.ok();
        Ok(())
    }
}

impl WorkerState {
    fn stop(&mut self, handle: &Resource<PoolHandle>, terminate: bool) -> wasmtime::Result<()> {
        let pool = self.table.get(handle)?.0;
        self.upcall(Call::PoolStop { pool, terminate }, &[])?.ok();
        Ok(())
    }
}

impl pool::HostJob for WorkerState {
    #[allow(
        clippy::type_complexity,
        reason = "the WIT signature, as bindgen spells it"
    )]
    fn next(
        &mut self,
        handle: Resource<JobHandle>,
        timeout_ms: Option<u64>,
    ) -> HostResult<Vec<(u64, Result<Vec<u8>, pool::TaskFailure>)>> {
        let job = self.table.get(&handle)?.0;
        Ok(match self.upcall(Call::JobNext { job, timeout_ms }, &[])? {
            Ok((Reply::JobItems(items), _)) => Ok(items
                .into_iter()
                .map(|(index, result)| {
                    let result = result
                        .map(|bytes| bytes.into_vec())
                        .map_err(|(kind, message)| pool::TaskFailure { kind, message });
                    (index, result)
                })
                .collect()),
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }

    fn drop(&mut self, handle: Resource<JobHandle>) -> wasmtime::Result<()> {
        let id = self.table.delete(handle)?.0;
        self.upcall(Call::Release { id }, &[])?.ok();
        Ok(())
    }
}

impl pool::Host for WorkerState {
    fn create(&mut self, options: pool::PoolOptions) -> HostResult<Resource<PoolHandle>> {
        let call = Call::PoolCreate {
            processes: options.processes,
            initializer: options
                .initializer
                .map(|task| (task, serde_bytes::ByteBuf::from(options.initargs))),
            maxtasksperchild: options.maxtasksperchild,
        };
        Ok(match self.upcall(call, &[])? {
            Ok((Reply::Object(id), _)) => Ok(self.table.push(PoolHandle(id))?),
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }
}

// ---------------------------------------------------------------------------
// The broker's side.

/// A guest's pool.
pub(crate) struct Entry {
    /// The host-crate pool doing the work.
    pub(crate) pool: Pool,
}

/// A job's results as they arrive; the channel closes after the last.
pub(crate) struct Job {
    results: Receiver<(Result<JobItem, CallError>, Option<Charge>)>,
    /// An error that ended the job, met while a reply was being filled with
    /// results: the answer to the next call.
    ended: std::sync::Mutex<Option<CallError>>,
}

impl Job {
    fn new(results: Receiver<(Result<JobItem, CallError>, Option<Charge>)>) -> Self {
        Job {
            results,
            ended: std::sync::Mutex::new(None),
        }
    }

    fn failed(&self, e: CallError) {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }

    fn take_failure(&self) -> Option<CallError> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Most workers one guest pool may have.
const MAX_POOL_PROCESSES: u32 = 256;

/// How a guest asked its pool to be made (`Call::PoolCreate`).
pub(crate) struct Options {
    /// `None`: one per CPU.
    pub(crate) processes: Option<u32>,
    /// The task each worker runs first, and its bincode argument.
    pub(crate) initializer: Option<(String, Vec<u8>)>,
    /// `None`: the run's default.
    pub(crate) maxtasksperchild: Option<u64>,
}

/// `Call::PoolCreate`.
pub(crate) fn create(broker: &std::sync::Arc<Broker>, caller: u64, options: Options) -> Answer {
    let n = match options.processes {
        Some(0) => return Err(CallError::Other("processes must be at least 1".into())),
        Some(n) if n > MAX_POOL_PROCESSES => {
            return Err(CallError::Limit(format!(
                "a pool may have at most {MAX_POOL_PROCESSES} processes"
            )))
        }
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if options.maxtasksperchild == Some(0) {
        return Err(CallError::Other(
            "maxtasksperchild must be at least 1".into(),
        ));
    }
    if let Some((_, args)) = &options.initializer {
        let max = broker.launch().sandbox.max_message_bytes();
        if args.len() as u64 > max {
            return Err(CallError::Limit(format!(
                "initargs of {} bytes, over the message limit of {max}",
                args.len()
            )));
        }
    }
    let pool = Pool::for_broker(broker.clone(), n, options).map_err(|e| match e {
        Error::Limit(why) => CallError::Limit(why),
        other => CallError::Other(other.to_string()),
    })?;
    let id = broker.register(
        Object::Pool(std::sync::Arc::new(Entry { pool })),
        Some(caller),
    )?;
    Ok((Reply::Object(id), Vec::new()))
}

/// `Call::PoolSubmit`: starts the job and the thread that collects it. A
/// closed or terminated pool refuses it here, at the call.
#[allow(clippy::too_many_arguments, reason = "one per field of the call")]
pub(crate) fn submit(
    broker: &Broker,
    caller: u64,
    pool: u64,
    task: String,
    inputs: Vec<u8>,
    ordered: bool,
    chunksize: Option<u32>,
) -> Answer {
    let Object::Pool(entry) = broker.get(caller, pool)? else {
        return Err(CallError::InvalidHandle);
    };
    // The inputs stay in the parent until their chunks are sent, and up to
    // as much again travels in chunks: the run's budget pays for both while
    // the job is queued.
    let held = broker
        .budget()
        .charge(2 * inputs.len() as u64, "a pool job's inputs")?;
    let inputs =
        Batch::parse(inputs).map_err(|e| CallError::Other(format!("malformed inputs: {e}")))?;
    let chunksize = chunksize.map(|c| (c as usize).max(1));
    let budget = broker.budget().clone();
    let stream = entry
        .pool
        .submit_raw(&task, inputs, ordered, chunksize)
        .map_err(|e| match e {
            Error::Closed => CallError::Other("pool is closed".into()),
            Error::Terminated => CallError::Other("pool was terminated".into()),
            other => CallError::Other(other.to_string()),
        })?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("mpwasm-job".into())
        .spawn(move || {
            // Pulling the stream to its end queues every chunk, so the job
            // finishes even if the guest closes the pool and never reads.
            // Results wait in the channel until the guest reads them, each
            // paid for by the run's budget; one it cannot pay for ends the
            // job with a `limit` error.
            let _held = held;
            for item in stream {
                let item = match item {
                    Ok((index, payload)) => {
                        Ok((index, Ok(serde_bytes::ByteBuf::from(payload.to_vec()))))
                    }
                    Err(Error::Task(e)) => Ok((e.index, Err((e.kind.to_string(), e.message)))),
                    Err(e) => Err(CallError::Other(e.to_string())),
                };
                let (item, charge) = match &item {
                    Ok(result) => {
                        let cost = item_bytes(result) as u64 + RESULT_COST;
                        match budget.charge(cost, "a pool result waiting to be read") {
                            Ok(charge) => (item, Some(charge)),
                            Err(e) => (Err(e), None),
                        }
                    }
                    Err(_) => (item, None),
                };
                let end = item.is_err();
                if tx.send((item, charge)).is_err() || end {
                    return;
                }
            }
        })
        .map_err(|e| CallError::Other(format!("cannot start a thread: {e}")))?;
    let id = broker.register(Object::Job(std::sync::Arc::new(Job::new(rx))), Some(caller))?;
    Ok((Reply::Object(id), Vec::new()))
}

/// `Call::JobNext`: what has arrived, at least one result (waiting for the
/// first), at most [`MAX_JOB_ITEMS`] of them and about
/// [`MAX_JOB_REPLY_BYTES`].
pub(crate) fn next(broker: &Broker, caller: u64, job: u64, timeout_ms: Option<u64>) -> Answer {
    let Object::Job(job) = broker.get(caller, job)? else {
        return Err(CallError::InvalidHandle);
    };
    if let Some(e) = job.take_failure() {
        return Err(e);
    }
    let first = match timeout_ms {
        None => job
            .results
            .recv()
            .map_err(|_| RecvTimeoutError::Disconnected),
        Some(ms) => job.results.recv_timeout(Duration::from_millis(ms)),
    };
    // A result's charge is given back as it is handed out.
    let mut items = match first {
        Ok((Ok(item), _charge)) => vec![item],
        Ok((Err(e), _)) => return Err(e),
        Err(RecvTimeoutError::Disconnected) => Vec::new(),
        Err(RecvTimeoutError::Timeout) => return Err(CallError::Timeout),
    };
    let mut bytes = items.iter().map(item_bytes).sum::<usize>();
    while !items.is_empty() && items.len() < MAX_JOB_ITEMS && bytes < MAX_JOB_REPLY_BYTES {
        match job.results.try_recv() {
            Ok((Ok(item), _charge)) => {
                bytes += item_bytes(&item);
                items.push(item);
            }
            // An error ends the job: the guest sees it on its next call.
            Ok((Err(e), _)) => {
                job.failed(e);
                break;
            }
            Err(_) => break,
        }
    }
    Ok((Reply::JobItems(items), Vec::new()))
}

/// What the budget charges for a result beside its bytes (its place in the
/// channel, its index, its buffer's header).
const RESULT_COST: u64 = 64;

/// Payload bytes of one result.
fn item_bytes(item: &JobItem) -> usize {
    match &item.1 {
        Ok(bytes) => bytes.len(),
        Err((kind, message)) => kind.len() + message.len(),
    }
}

/// `Call::PoolStop`.
pub(crate) fn stop(broker: &Broker, caller: u64, pool: u64, terminate: bool) -> Answer {
    let Object::Pool(entry) = broker.get(caller, pool)? else {
        return Err(CallError::InvalidHandle);
    };
    if terminate {
        entry.pool.terminate();
    } else {
        entry.pool.close();
    }
    Ok((Reply::Ok, Vec::new()))
}

/// `Call::PoolJoin`.
pub(crate) fn join(broker: &Broker, caller: u64, pool: u64) -> Answer {
    let Object::Pool(entry) = broker.get(caller, pool)? else {
        return Err(CallError::InvalidHandle);
    };
    entry
        .pool
        .join()
        .map(|()| (Reply::Ok, Vec::new()))
        .map_err(|e| CallError::Other(e.to_string()))
}
