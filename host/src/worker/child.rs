//! The worker process's side: load the guest, serve `Run` requests.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::sandbox::{self, MemoryCap};
use super::WORKER_ENV;
use crate::bindings::{types, Guest, GuestPre};
use crate::engine::Checks;
use crate::error::TaskErrorKind;
use crate::wire::{Call, Channel, Codec, Failure, FromWorker, Init, Outcome, Reply, ToWorker};

/// If this process was started as an mpwasm worker, runs the worker until
/// its parent is done with it and returns the exit code; otherwise returns
/// `None` at once.
pub(crate) fn run_if_worker() -> Option<ExitCode> {
    let parent: u32 = std::env::var(WORKER_ENV).ok()?.parse().ok()?;
    Some(exit_code(serve(parent)))
}

/// The exit code of a worker whose serve loop ended with `served`.
pub(crate) fn exit_code(served: std::io::Result<()>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        // The parent closed the channel: it is done with this worker.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpwasm worker {}: {e}", std::process::id());
            ExitCode::FAILURE
        }
    }
}

fn serve(parent: u32) -> std::io::Result<()> {
    crate::sys::die_with_parent(parent)?;
    crate::sys::close_inherited_fds();
    crate::init_logging();
    serve_stdin(None)
}

/// Serves the parent on the channel that is this process's stdin, until it
/// closes it: reads `Init`, instantiates the guest (from `prepared`, a
/// forked worker's inheritance from its zygote, when it matches `Init`),
/// reports ready, and answers requests.
pub(crate) fn serve_stdin(prepared: Option<&Prepared>) -> std::io::Result<()> {
    crate::sys::tune_worker_malloc();
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let upcalls = Arc::new(Upcalls {
        channel: Mutex::new(Channel::new(socket)?),
    });
    let Some(ToWorker::Init(init)) = upcalls.next_request()? else {
        return Err(std::io::Error::other("expected an Init frame first"));
    };
    let mut instance = match GuestInstance::load(*init, upcalls.clone(), prepared) {
        Ok(instance) => instance,
        Err(e) => {
            let msg = format!("{e:#}");
            upcalls.answer(&FromWorker::InitFailed(msg.clone()))?;
            return Err(std::io::Error::other(msg));
        }
    };
    upcalls.answer(&FromWorker::Ready {
        pid: std::process::id(),
    })?;
    while let Some(request) = upcalls.next_request()? {
        let reply = match request {
            ToWorker::Run {
                task,
                codec,
                first_index,
                inputs,
            } => instance.run(&task, codec, first_index, inputs.into_owned()),
            ToWorker::Target { task, args } => instance.target(&task, &args),
            ToWorker::Names => instance.names(),
            ToWorker::Main { name } => instance.main(name),
            ToWorker::Init(_) | ToWorker::Reply(_) => {
                return Err(std::io::Error::other("unexpected frame from the parent"))
            }
        };
        upcalls.answer(&reply)?;
    }
    Ok(())
}

/// A guest made ready to instantiate: the engine (compiler off), the
/// mapped component, linked. A zygote makes one and every worker it forks
/// inherits it; an exec'd worker makes its own.
pub(crate) struct Prepared {
    engine: Engine,
    pre: GuestPre<WorkerState>,
    /// The worker's seccomp filters, compiled.
    filters: crate::sys::WorkerFilters,
    /// The artifact it was mapped from.
    artifact: std::path::PathBuf,
    checks: Checks,
    window: bool,
}

impl Prepared {
    /// Maps `artifact` (compiled with `checks`, for the window engine if
    /// `window`: [`crate::engine::engine`]) and links it.
    ///
    /// # Errors
    ///
    /// The artifact cannot be mapped or linked.
    pub(crate) fn load(
        artifact: &std::path::Path,
        checks: Checks,
        window: bool,
    ) -> wasmtime::Result<Self> {
        let engine = crate::engine::runtime_engine(checks, window)?;
        // SAFETY: the artifact was written by `Cache::load` with the same
        // engine configuration, atomically (temp file + rename), into the
        // user's own cache directory, and its checksum was verified by the
        // parent; wasmtime checks its header and compatibility hash before
        // use.
        let component =
            unsafe { wasmtime::component::Component::deserialize_file(&engine, artifact)? };
        let pre = link(&engine, &component)?;
        Ok(Prepared {
            engine,
            pre,
            filters: crate::sys::WorkerFilters::new(),
            artifact: artifact.to_path_buf(),
            checks,
            window,
        })
    }

    /// The seccomp filters its workers install (a zygote installs the
    /// shared part itself: [`crate::sys::lock_down_zygote`]).
    pub(crate) fn filters_mut(&mut self) -> &mut crate::sys::WorkerFilters {
        &mut self.filters
    }

    /// Whether it serves a worker told `init`.
    fn serves(&self, init: &Init) -> bool {
        self.artifact == init.artifact
            && self.checks == Checks::of(&init.sandbox)
            && self.window == init.window
    }
}

/// The worker's channel to its parent, shared by the request loop and the
/// host functions that make upcalls while a request runs (the guest is
/// single-threaded: the two never overlap).
pub(crate) struct Upcalls {
    channel: Mutex<Channel>,
}

impl Upcalls {
    fn channel(&self) -> std::sync::MutexGuard<'_, Channel> {
        self.channel.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_request(&self) -> std::io::Result<Option<ToWorker<'static>>> {
        match self.channel().recv()? {
            None => Ok(None),
            Some((request, fds)) if fds.is_empty() => Ok(Some(request)),
            Some(_) => Err(std::io::Error::other("descriptors sent with a request")),
        }
    }

    fn answer(&self, reply: &FromWorker) -> std::io::Result<()> {
        self.channel().send(reply, &[])
    }

    /// Asks the parent for something and waits for the answer. An error
    /// means the parent is gone or broke the protocol: the caller traps.
    pub(crate) fn call(
        &self,
        call: Call,
        fds: &[BorrowedFd<'_>],
    ) -> wasmtime::Result<(Reply, Vec<OwnedFd>)> {
        let mut channel = self.channel();
        channel
            .send(&FromWorker::Call(call), fds)
            .map_err(|e| wasmtime::Error::msg(format!("upcall to the parent failed: {e}")))?;
        match channel.recv::<ToWorker>() {
            Ok(Some((ToWorker::Reply(reply), fds))) => Ok((reply, fds)),
            Ok(Some(_)) => Err(wasmtime::Error::msg(
                "the parent answered an upcall with a request",
            )),
            Ok(None) => Err(wasmtime::Error::msg(
                "the parent closed the channel during an upcall",
            )),
            Err(e) => Err(wasmtime::Error::msg(format!(
                "upcall to the parent failed: {e}"
            ))),
        }
    }
}

/// Everything a guest instance's host functions can reach.
pub(crate) struct WorkerState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// Who this worker is (the `runtime.worker` import).
    pub(crate) info: crate::bindings::runtime::WorkerInfo,
    /// Set by `runtime.report-panic` just before the instance traps.
    pub(crate) panic: Option<(String, Outcome)>,
    /// The memory cap.
    memory: MemoryCap,
    /// The channel to the parent, for upcalls.
    pub(crate) upcalls: Arc<Upcalls>,
    /// The largest queue item or pipe message this worker accepts.
    pub(crate) max_message: u64,
    /// How many processes this one has named (for `Process-N`).
    pub(crate) children_named: u32,
    /// Bytes of arguments held for processes described and not started.
    pub(crate) unstarted_args: u64,
    /// When the running call must stop (checked at each epoch tick).
    deadline: Option<std::time::Instant>,
    /// The guest's window, where the regions it holds are mapped (guests
    /// built with the SDK's window helpers).
    pub(crate) window: Option<Arc<crate::sys::window::Window>>,
    /// The staging page in the window (`queue.stage`), once the guest
    /// asked for it; kept for the store's life.
    pub(crate) stage: Option<crate::interfaces::queue::Stage>,
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One instance of the guest and the means to make a fresh one after a trap.
struct GuestInstance {
    engine: Engine,
    pre: GuestPre<WorkerState>,
    init: Init,
    upcalls: Arc<Upcalls>,
    store: Store<WorkerState>,
    guest: Guest,
}

impl GuestInstance {
    fn load(
        init: Init,
        upcalls: Arc<Upcalls>,
        prepared: Option<&Prepared>,
    ) -> wasmtime::Result<Self> {
        let owned;
        let prepared = match prepared {
            Some(p) if p.serves(&init) => p,
            Some(p) => {
                return Err(wasmtime::Error::msg(format!(
                    "this worker was forked for {}, not for {}",
                    p.artifact.display(),
                    init.artifact.display()
                )))
            }
            None => {
                owned = Prepared::load(&init.artifact, Checks::of(&init.sandbox), init.window)?;
                &owned
            }
        };
        let (engine, pre) = (prepared.engine.clone(), prepared.pre.clone());
        // The artifact is mapped: from here on the worker needs no files
        // but the granted directories. Threads started after this (the
        // deadline ticker, WASI's I/O threads) inherit the restrictions.
        let lockdown = crate::sys::lock_down(&init.sandbox.dirs, &prepared.filters);
        tracing::debug!(?lockdown, "worker locked down");
        if init.sandbox.timeout.is_some() {
            sandbox::start_ticker(&engine);
        }
        let (store, guest) = instantiate(&engine, &pre, &init, &upcalls)?;
        Ok(GuestInstance {
            engine,
            pre,
            init,
            upcalls,
            store,
            guest,
        })
    }

    /// Runs a guest-started process's target: the task once, on `args`. A
    /// target that calls `exit(n)` ends its process with `n`, as
    /// `sys.exit(n)` ends a Python process.
    fn target(&mut self, task: &str, args: &[u8]) -> FromWorker {
        let mut batch = crate::batch::Batch::new();
        batch.push(args);
        self.call(task, Codec::Bincode, 0, batch.encoded(0..1).to_vec(), true)
    }

    /// Runs a chunk of pool inputs. A task that calls `exit` fails its input
    /// (kind `trap`): a pool worker is not the task's to end.
    fn run(&mut self, task: &str, codec: Codec, first_index: u64, inputs: Vec<u8>) -> FromWorker {
        self.call(task, codec, first_index, inputs, false)
    }

    fn call(
        &mut self,
        task: &str,
        codec: Codec,
        first_index: u64,
        inputs: Vec<u8>,
        may_exit: bool,
    ) -> FromWorker {
        let codec = match codec {
            Codec::Bincode => types::Codec::Bincode,
            Codec::Json => types::Codec::Json,
        };
        self.arm(crate::batch::count(&inputs));
        let tasks = self.guest.mpwasm_runtime_tasks();
        match tasks.call_call(&mut self.store, task, codec, first_index, &inputs) {
            Ok(Ok(outcome)) => FromWorker::Done(outcome_from_guest(outcome)),
            Ok(Err(e)) => FromWorker::Rejected(failure(e)),
            Err(trap) if may_exit && trap.downcast_ref::<wasmtime_wasi::I32Exit>().is_some() => {
                let code = trap
                    .downcast_ref::<wasmtime_wasi::I32Exit>()
                    .map_or(1, |exit| exit.0);
                self.reset();
                FromWorker::Exited(code)
            }
            Err(trap) => {
                let (panic, completed) = match self.store.data_mut().panic.take() {
                    Some((message, completed)) => (Some(message), completed),
                    None => (None, Outcome::default()),
                };
                let (kind, message) = self.classify(&trap);
                let reply = FromWorker::Trapped {
                    kind,
                    completed,
                    panic,
                    trap: message,
                    backtrace: trap
                        .downcast_ref::<wasmtime::WasmBacktrace>()
                        .map(|bt| bt.to_string()),
                };
                self.reset();
                reply
            }
        }
    }

    fn names(&mut self) -> FromWorker {
        self.arm(1);
        let tasks = self.guest.mpwasm_runtime_tasks();
        match tasks.call_names(&mut self.store) {
            Ok(names) => FromWorker::Names(names),
            Err(trap) => {
                let (kind, message) = self.classify(&trap);
                self.reset();
                FromWorker::Rejected(Failure {
                    kind,
                    message,
                    backtrace: None,
                })
            }
        }
    }

    /// Runs the guest's `main`. A trap is reported on stderr and becomes
    /// exit code 1, as an uncaught exception does in a Python process; the
    /// guest's own `exit(n)` becomes `n`.
    fn main(&mut self, name: String) -> FromWorker {
        self.store.data_mut().info.name = name.clone();
        self.init.name = name;
        self.arm(1);
        let args = self.init.sandbox.args.clone();
        let program = self.guest.mpwasm_runtime_program();
        let code = match program.call_main(&mut self.store, &args) {
            Ok(code) => code,
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => exit.0,
                None => {
                    let (kind, message) = self.classify(&e);
                    eprintln!("mpwasm: guest main {kind}: {message}");
                    if let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
                        eprintln!("{bt}");
                    }
                    1
                }
            },
        };
        FromWorker::Exited(code)
    }

    /// What kind of failure the trap `e` of the last call was, and its
    /// message (clearing the memory cap's flag for the next call).
    fn classify(&mut self, e: &wasmtime::Error) -> (TaskErrorKind, String) {
        let hit = self.store.data_mut().memory.take_hit();
        sandbox::classify(e, hit, &self.init.sandbox)
    }

    /// Sets the deadline and fuel for a call running `n` inputs.
    fn arm(&mut self, n: u64) {
        let sandbox = &self.init.sandbox;
        if let Some(timeout) = sandbox.timeout {
            self.store.data_mut().deadline = sandbox::deadline_after(timeout, n);
            self.store.set_epoch_deadline(1);
        }
        if let Some(fuel) = sandbox.fuel {
            let _ = self.store.set_fuel(fuel.saturating_mul(n.max(1)));
        }
    }

    /// A trapped instance cannot be entered again: start a fresh one.
    fn reset(&mut self) {
        match instantiate(&self.engine, &self.pre, &self.init, &self.upcalls) {
            Ok((store, guest)) => {
                self.store = store;
                self.guest = guest;
            }
            Err(e) => {
                // Instantiation worked moments ago; if it no longer does,
                // this worker is useless. Exiting makes the pool replace it.
                eprintln!(
                    "mpwasm worker {}: cannot re-instantiate guest: {e:#}",
                    std::process::id()
                );
                std::process::exit(1);
            }
        }
    }
}

/// Links `component` with everything a worker provides: WASI preview 2
/// and mpwasm's interfaces. `mpwasm compile` runs this too, so a guest
/// importing something else is refused when it is loaded, not at every
/// worker start.
///
/// # Errors
///
/// Names the first import the worker does not provide, or the export the
/// guest lacks.
pub(crate) fn link(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<GuestPre<WorkerState>> {
    let mut linker = Linker::<WorkerState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Guest::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    GuestPre::new(linker.instantiate_pre(component)?)
}

fn instantiate(
    engine: &Engine,
    pre: &GuestPre<WorkerState>,
    init: &Init,
    upcalls: &Arc<Upcalls>,
) -> wasmtime::Result<(Store<WorkerState>, Guest)> {
    let state = WorkerState {
        wasi: sandbox::wasi_ctx(&init.sandbox, init.stdout_to_stderr)?,
        table: ResourceTable::new(),
        info: crate::bindings::runtime::WorkerInfo {
            id: init.id,
            pid: std::process::id(),
            parent_pid: init
                .parent
                .as_ref()
                .map_or_else(crate::sys::parent_pid, |(pid, _)| *pid),
            name: init.name.clone(),
        },
        panic: None,
        memory: MemoryCap::new(init.sandbox.memory, init.window),
        upcalls: upcalls.clone(),
        max_message: init.sandbox.max_message_bytes(),
        children_named: 0,
        unstarted_args: 0,
        deadline: init
            .sandbox
            .timeout
            .and_then(|t| sandbox::deadline_after(t, 1)),
        window: None,
        stage: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    // Every store starts at deadline 0. Without a deadline there is no
    // ticker and the epoch never moves, so the next tick never comes; with
    // one, each tick checks the clock, and start-up code gets one task's
    // allowance. Each call re-arms it (`arm`).
    store.epoch_deadline_callback(|cx| Ok(sandbox::on_tick(cx.data().deadline)));
    store.set_epoch_deadline(1);
    if init.sandbox.fuel.is_some() {
        // Start-up code (static constructors) runs on this allowance.
        store.set_fuel(u64::MAX)?;
    }
    // The window this instantiation creates, not one left by another.
    drop(crate::sys::window::take_created());
    let guest = pre.instantiate(&mut store)?;
    store.data_mut().window = crate::sys::window::take_created();
    Ok((store, guest))
}

/// A guest's outcome in the wire's terms.
pub(crate) fn outcome_from_guest(o: types::Outcome) -> Outcome {
    Outcome {
        results: o.results,
        failures: o
            .failures
            .into_iter()
            .map(|(i, e)| (i, failure(e)))
            .collect(),
    }
}

/// The guest's error for one input, in the wire's terms.
pub(crate) fn failure(e: types::TaskError) -> Failure {
    let (kind, message) = match e {
        types::TaskError::UnknownTask(m) => {
            (TaskErrorKind::UnknownTask, format!("no task named `{m}`"))
        }
        types::TaskError::BadInput(m) => (TaskErrorKind::BadInput, m),
        types::TaskError::Panic(m) => (TaskErrorKind::Panic, m),
        types::TaskError::Failed(m) => (TaskErrorKind::Failed, m),
        types::TaskError::BadOutput(m) => (TaskErrorKind::BadOutput, m),
    };
    Failure {
        kind,
        message,
        backtrace: None,
    }
}
