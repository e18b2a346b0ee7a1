//! `mpwasm:runtime/process`: processes started from a guest.
//!
//! Hops of `Process::start` → `join`:
//! 1. the guest's host function ([`WorkerState`], in its worker process)
//!    sends `Call::ProcessStart` to the parent;
//! 2. the broker ([`start`]) registers an [`Entry`], spawns a sibling worker
//!    process and a thread ([`run`]) that drives it: wait until it is ready,
//!    send `ToWorker::Target`, serve the child's own upcalls;
//! 3. when the target returns, [`run`] joins the process's non-daemon
//!    children, terminates its daemon children, reaps the worker and records
//!    the exit code; [`join`] waits for that record.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use wasmtime::component::Resource;

use super::{unexpected, HostResult};
use crate::bindings::{process, types};
use crate::broker::budget::{Charge, Places};
use crate::broker::{Answer, Broker, Object};
use crate::limits::{MAX_NAME_BYTES, UNSTARTED_ARGS_FACTOR};
use crate::sys::ipc::Deadline;
use crate::wire::{Call, CallError, Failure, FromWorker, ProcessDesc, Reply, ToWorker};
use crate::worker::child::WorkerState;
use crate::worker::spawn::WorkerProcess;

// ---------------------------------------------------------------------------
// The worker's side.

/// A process handle in a guest's resource table.
pub struct ProcessHandle {
    target: String,
    /// Held until start, counted in the worker's `unstarted_args`.
    args: Vec<u8>,
    /// Why the arguments were not kept (too large): `start` fails with it.
    refused: Option<String>,
    name: String,
    daemon: bool,
    /// Broker id and pid, once started (or adopted).
    started: Option<(u64, Option<u32>)>,
    exitcode: Option<i32>,
}

impl ProcessHandle {
    fn from_desc(desc: ProcessDesc) -> Self {
        ProcessHandle {
            target: String::new(),
            args: Vec::new(),
            refused: None,
            name: desc.name,
            daemon: desc.daemon,
            started: Some((desc.id, desc.pid)),
            exitcode: desc.exitcode,
        }
    }
}

impl WorkerState {
    /// The arguments of a process being described, kept if they fit: within
    /// `--max-message`, and with every unstarted process's arguments within
    /// [`UNSTARTED_ARGS_FACTOR`] times it. Otherwise nothing is kept and
    /// the reason is returned, for `start` to fail with (`new` cannot fail).
    fn keep_args(&mut self, args: Vec<u8>) -> (Vec<u8>, Option<String>) {
        let len = args.len() as u64;
        let max = self.max_message;
        let room = max.saturating_mul(UNSTARTED_ARGS_FACTOR);
        if len > max {
            let why = format!("process arguments of {len} bytes exceed the limit of {max}");
            return (Vec::new(), Some(why));
        }
        if self.unstarted_args.saturating_add(len) > room {
            let why = format!(
                "this process's unstarted processes already hold {} bytes of arguments and may \
                 hold {room} (twice --max-message): start or drop some before describing more",
                self.unstarted_args
            );
            return (Vec::new(), Some(why));
        }
        self.unstarted_args += len;
        (args, None)
    }

    fn process(&self, handle: &Resource<ProcessHandle>) -> wasmtime::Result<&ProcessHandle> {
        Ok(self.table.get(handle)?)
    }

    /// The broker id of a started process, or the guest's error.
    fn started(
        &self,
        handle: &Resource<ProcessHandle>,
    ) -> wasmtime::Result<Result<u64, types::Error>> {
        Ok(match self.process(handle)?.started {
            Some((id, _)) => Ok(id),
            None => Err(types::Error::Other(
                "the process has not been started".into(),
            )),
        })
    }

    /// Asks the broker about a started process and caches the answer.
    fn refresh(&mut self, handle: &Resource<ProcessHandle>) -> wasmtime::Result<()> {
        let Some((id, _)) = self.process(handle)?.started else {
            return Ok(());
        };
        if self.process(handle)?.exitcode.is_some() {
            return Ok(());
        }
        if let Ok((Reply::Process(desc), _)) = self.upcall(Call::ProcessStatus { id }, &[])? {
            let p = self.table.get_mut(handle)?;
            p.started = Some((id, desc.pid));
            p.exitcode = desc.exitcode;
        }
        Ok(())
    }
}

impl process::HostProcess for WorkerState {
    fn new(
        &mut self,
        target: String,
        args: Vec<u8>,
        name: Option<String>,
        daemon: bool,
    ) -> wasmtime::Result<Resource<ProcessHandle>> {
        let name = name.unwrap_or_else(|| {
            self.children_named += 1;
            match self.info.name.as_str() {
                "MainProcess" => format!("Process-{}", self.children_named),
                own => format!("{own}:{}", self.children_named),
            }
        });
        let (args, refused) = self.keep_args(args);
        Ok(self.table.push(ProcessHandle {
            target,
            args,
            refused,
            name,
            daemon,
            started: None,
            exitcode: None,
        })?)
    }

    fn start(&mut self, handle: Resource<ProcessHandle>) -> HostResult<()> {
        let p = self.process(&handle)?;
        if p.started.is_some() {
            return Ok(Err(types::Error::Other(
                "processes can only be started once".into(),
            )));
        }
        if let Some(why) = &p.refused {
            return Ok(Err(types::Error::Limit(why.clone())));
        }
        let call = Call::ProcessStart {
            target: p.target.clone(),
            args: p.args.clone(),
            name: p.name.clone(),
            daemon: p.daemon,
        };
        Ok(match self.upcall(call, &[])? {
            Ok((Reply::Process(desc), _)) => {
                let p = self.table.get_mut(&handle)?;
                p.started = Some((desc.id, desc.pid));
                let held = std::mem::take(&mut p.args).len() as u64;
                self.unstarted_args = self.unstarted_args.saturating_sub(held);
                Ok(())
            }
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }

    fn join(
        &mut self,
        handle: Resource<ProcessHandle>,
        timeout_ms: Option<u64>,
    ) -> HostResult<Option<i32>> {
        let id = match self.started(&handle)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(code) = self.process(&handle)?.exitcode {
            return Ok(Ok(Some(code)));
        }
        Ok(
            match self.upcall(Call::ProcessJoin { id, timeout_ms }, &[])? {
                Ok((Reply::Joined(code), _)) => {
                    self.table.get_mut(&handle)?.exitcode = code;
                    Ok(code)
                }
                Ok((other, _)) => return Err(unexpected(other)),
                Err(e) => Err(e),
            },
        )
    }

    fn is_alive(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<bool> {
        self.refresh(&handle)?;
        let p = self.process(&handle)?;
        Ok(p.started.is_some() && p.exitcode.is_none())
    }

    fn terminate(&mut self, handle: Resource<ProcessHandle>) -> HostResult<()> {
        self.signal(&handle, false)
    }

    fn kill(&mut self, handle: Resource<ProcessHandle>) -> HostResult<()> {
        self.signal(&handle, true)
    }

    fn close(&mut self, handle: Resource<ProcessHandle>) -> HostResult<()> {
        self.refresh(&handle)?;
        let p = self.process(&handle)?;
        if p.started.is_some() && p.exitcode.is_none() {
            return Ok(Err(types::Error::Other(
                "cannot close a process while it is still running".into(),
            )));
        }
        Ok(Ok(()))
    }

    fn pid(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<Option<u32>> {
        Ok(self.process(&handle)?.started.and_then(|(_, pid)| pid))
    }

    fn exitcode(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<Option<i32>> {
        self.refresh(&handle)?;
        Ok(self.process(&handle)?.exitcode)
    }

    fn name(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<String> {
        Ok(self.process(&handle)?.name.clone())
    }

    fn daemon(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<bool> {
        Ok(self.process(&handle)?.daemon)
    }

    fn share(&mut self, handle: Resource<ProcessHandle>) -> HostResult<u64> {
        let id = match self.started(&handle)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        super::token(self.upcall(Call::Share { id }, &[])?)
    }

    fn drop(&mut self, handle: Resource<ProcessHandle>) -> wasmtime::Result<()> {
        let p = self.table.delete(handle)?;
        self.unstarted_args = self.unstarted_args.saturating_sub(p.args.len() as u64);
        if let Some((id, _)) = p.started {
            self.upcall(Call::Release { id }, &[])?.ok();
        }
        Ok(())
    }
}

impl WorkerState {
    /// The pid of a process that is running now (for `wait`); `None` if it
    /// has ended (or never started).
    /// Whether the process behind `handle` was started.
    pub(crate) fn process_started(
        &mut self,
        handle: &Resource<ProcessHandle>,
    ) -> wasmtime::Result<bool> {
        Ok(self.process(handle)?.started.is_some())
    }

    pub(crate) fn process_pid_if_running(
        &mut self,
        handle: &Resource<ProcessHandle>,
    ) -> wasmtime::Result<Option<u32>> {
        self.refresh(handle)?;
        let p = self.process(handle)?;
        Ok(match (p.started, p.exitcode) {
            (Some((_, pid)), None) => pid,
            _ => None,
        })
    }

    fn signal(&mut self, handle: &Resource<ProcessHandle>, kill: bool) -> HostResult<()> {
        let id = match self.started(handle)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self
            .upcall(Call::ProcessSignal { id, kill }, &[])?
            .map(|_| ()))
    }
}

impl process::Host for WorkerState {
    fn adopt(&mut self, cap: u64) -> HostResult<Resource<ProcessHandle>> {
        Ok(match self.upcall(Call::Adopt { token: cap }, &[])? {
            Ok((Reply::Process(desc), _)) => Ok(self.table.push(ProcessHandle::from_desc(desc))?),
            Ok((other, _)) => Err(self.refuse(other)?),
            Err(e) => Err(e),
        })
    }

    fn parent(&mut self) -> wasmtime::Result<Option<process::ParentInfo>> {
        Ok(match self.upcall(Call::Parent, &[])? {
            Ok((Reply::Parent(parent), _)) => {
                parent.map(|(pid, name)| process::ParentInfo { pid, name })
            }
            Ok((other, _)) => return Err(unexpected(other)),
            Err(_) => None,
        })
    }

    fn active_children(&mut self) -> wasmtime::Result<Vec<Resource<ProcessHandle>>> {
        let descs = match self.upcall(Call::ActiveChildren, &[])? {
            Ok((Reply::Processes(descs), _)) => descs,
            Ok((other, _)) => return Err(unexpected(other)),
            Err(_) => Vec::new(),
        };
        descs
            .into_iter()
            .map(|d| Ok(self.table.push(ProcessHandle::from_desc(d))?))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The broker's side.

/// What kind of worker process an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Started by a guest.
    Child,
    /// Started by a pool: `mpwasm run`'s main, or a pool worker.
    Worker,
}

/// How a process is doing.
#[derive(Debug, Default)]
struct Status {
    pid: Option<u32>,
    exitcode: Option<i32>,
    /// The OS process was (or is being) reaped: its pid may be reused, so
    /// it must not be signalled.
    reaped: bool,
    /// A pool worker (which has no exit code) that is gone.
    retired: bool,
}

/// A worker process of the run, as the broker tracks it.
pub(crate) struct Entry {
    /// Broker id.
    pub(crate) id: u64,
    name: Mutex<String>,
    daemon: bool,
    kind: Kind,
    /// The broker id of the process that started it.
    parent: Option<u64>,
    status: Mutex<Status>,
    ended: Condvar,
    /// It ran into a per-process quota (connection ends in transit): a
    /// pool worker is replaced after its task, so its next inputs start
    /// with a clean slate.
    exhausted: std::sync::atomic::AtomicBool,
}

impl Entry {
    /// An entry for a worker process about to be spawned.
    pub(crate) fn new(
        id: u64,
        name: String,
        daemon: bool,
        kind: Kind,
        parent: Option<u64>,
    ) -> Self {
        Entry {
            id,
            name: Mutex::new(name),
            daemon,
            kind,
            parent,
            status: Mutex::new(Status::default()),
            ended: Condvar::new(),
            exhausted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records that the process ran into a per-process quota.
    pub(crate) fn exhausted(&self) {
        self.exhausted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether it ran into a per-process quota since it started.
    pub(crate) fn is_exhausted(&self) -> bool {
        self.exhausted.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The process's name.
    pub(crate) fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Renames it (main is named by its request).
    pub(crate) fn rename(&self, name: &str) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_string();
    }

    /// Records the OS pid.
    pub(crate) fn set_pid(&self, pid: u32) {
        self.status().pid = Some(pid);
    }

    fn pid(&self) -> Option<u32> {
        self.status().pid
    }

    fn running(&self) -> bool {
        let s = self.status();
        s.pid.is_some() && s.exitcode.is_none()
    }

    /// Whether the process is over for good: its entry may go once nobody
    /// holds it.
    pub(crate) fn ended(&self) -> bool {
        let s = self.status();
        s.exitcode.is_some() || s.retired
    }

    /// Marks a pool worker's entry as gone.
    pub(crate) fn retire(&self) {
        self.status().retired = true;
    }

    /// The entry as a reply.
    pub(crate) fn describe(&self) -> ProcessDesc {
        let s = self.status();
        ProcessDesc {
            id: self.id,
            name: self.name(),
            daemon: self.daemon,
            pid: s.pid,
            exitcode: s.exitcode,
        }
    }

    /// Marks the OS process as about to be reaped: no more signals.
    fn reaping(&self) {
        self.status().reaped = true;
    }

    fn set_exitcode(&self, code: i32) {
        self.status().exitcode = Some(code);
        self.ended.notify_all();
    }

    /// Waits until the process has ended or the deadline passes.
    fn wait(&self, deadline: Deadline) -> Option<i32> {
        let mut s = self.status();
        loop {
            if s.exitcode.is_some() {
                return s.exitcode;
            }
            s = match deadline.remaining() {
                None => self.ended.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(left) if left.is_zero() => return None,
                Some(left) => {
                    self.ended
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Sends a signal unless the process has ended.
    fn signal(&self, signal: i32) {
        let s = self.status();
        if let (Some(pid), false) = (s.pid, s.reaped) {
            // SAFETY: kill(2) on a pid that is ours and not yet reaped (the
            // status lock is held, and reaping first sets `reaped`), so it
            // cannot have been reused.
            unsafe {
                libc::kill(pid as i32, signal);
            }
        }
    }
}

fn entry(broker: &Broker, caller: u64, id: u64) -> Result<Arc<Entry>, CallError> {
    match broker.get(caller, id)? {
        Object::Process(p) => Ok(p),
        _ => Err(CallError::InvalidHandle),
    }
}

/// `Call::ProcessStart`: registers and spawns the process, and starts the
/// thread that drives it.
pub(crate) fn start(
    broker: &Arc<Broker>,
    caller: u64,
    target: String,
    args: Vec<u8>,
    name: String,
    daemon: bool,
) -> Answer {
    let parent = broker.caller(caller).ok_or(CallError::InvalidHandle)?;
    if parent.daemon {
        return Err(CallError::Other(
            "daemonic processes are not allowed to have children".into(),
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(CallError::Limit(format!(
            "a process name may have at most {MAX_NAME_BYTES} bytes"
        )));
    }
    let launch = broker.launch();
    // Held until the process has ended: its place among the run's
    // processes, and the parent's memory for its name and arguments.
    let places = broker.process_count().reserve(1, "starting a process")?;
    let charge = broker.budget().charge(
        (name.len() + args.len()) as u64,
        "a process's name and arguments",
    )?;
    let init = launch.init(
        0,
        name.clone(),
        parent.pid().map(|pid| (pid, parent.name())),
    );
    let entry = broker.register_process(
        |id| Entry::new(id, name, daemon, Kind::Child, Some(caller)),
        Some(caller),
    )?;
    let mut worker = match WorkerProcess::spawn(&launch.program, &init, &launch.zygote) {
        Ok(w) => w,
        Err(e) => {
            entry.set_exitcode(1);
            return Err(CallError::Other(format!("cannot start a process: {e}")));
        }
    };
    entry.set_pid(worker.pid());
    worker.serve_calls(broker.clone(), entry.id);
    let desc = entry.describe();
    let (b, e) = (broker.clone(), entry.clone());
    std::thread::Builder::new()
        .name(format!("mpwasm-process-{}", entry.id))
        .spawn(move || run(b, e, worker, target, args, (places, charge)))
        .map_err(|e| CallError::Other(format!("cannot start a thread: {e}")))?;
    Ok((Reply::Process(desc), Vec::new()))
}

/// Drives a guest-started process from start to exit code. What it
/// `held` (its place among the run's processes, its charge) is given back
/// before the exit code is set: once `join` returns, the place is free.
fn run(
    broker: Arc<Broker>,
    entry: Arc<Entry>,
    mut worker: WorkerProcess,
    target: String,
    args: Vec<u8>,
    held: (Places, Charge),
) {
    let name = entry.name();
    // The worker stops its task at the deadline by itself; this is for a
    // task blocked in a host call (a queue `get`, a `join`) past it.
    let watchdog = broker
        .launch()
        .sandbox
        .timeout
        .map(|t| t + crate::pool::WATCHDOG_GRACE);
    let outcome = match worker.wait_ready() {
        Ok(()) => match worker.request_within(&ToWorker::Target { task: target, args }, watchdog) {
            Ok(reply) => Some(reply),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let f = Failure {
                    kind: crate::error::TaskErrorKind::Timeout,
                    message: "deadline exceeded while blocked; the process was killed".into(),
                    backtrace: None,
                };
                Some(FromWorker::Rejected(f))
            }
            Err(_) => None,
        },
        Err(_) => None,
    };
    let code = match outcome {
        Some(FromWorker::Done(o)) => match o.failures.into_iter().next() {
            None => Some(0),
            Some((_, f)) => Some(report(&name, &f)),
        },
        Some(FromWorker::Rejected(f)) => Some(report(&name, &f)),
        // The target called `exit(n)`.
        Some(FromWorker::Exited(code)) => Some(code),
        Some(FromWorker::Trapped {
            kind,
            panic,
            trap,
            backtrace,
            ..
        }) => Some(report(
            &name,
            &Failure {
                // The SDK reported a panic just before the instance trapped.
                kind: if panic.is_some() {
                    crate::error::TaskErrorKind::Panic
                } else {
                    kind
                },
                message: panic.unwrap_or(trap),
                backtrace,
            },
        )),
        Some(_) | None => None,
    };
    entry.reaping();
    let status = worker.end_status();
    let code = code.unwrap_or_else(|| status_code(status));
    finish(&broker, &entry, code == 0);
    drop(held);
    entry.set_exitcode(code);
    broker.drop_unused(entry.id);
}

/// Prints a process's failure on stderr, as Python prints the traceback of
/// an exception that ends a process; returns exit code 1.
fn report(name: &str, f: &Failure) -> i32 {
    eprintln!("Process {name}: {}: {}", f.kind, f.message);
    if let Some(bt) = &f.backtrace {
        eprintln!("{bt}");
    }
    1
}

/// An OS exit status as Python's `exitcode`: the code, or −N for signal N.
fn status_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().or_else(|| s.signal().map(|n| -n)).unwrap_or(1),
        Err(_) => 1,
    }
}

/// The end of process `entry` (main, a child, a pool worker): its daemon
/// children are terminated; when it ended normally, its other children are
/// joined first (Python joins them at exit); then everything it held is let
/// go.
pub(crate) fn finish(broker: &Broker, entry: &Entry, join_children: bool) {
    // It holds no lock any more, however it ended: those it held pass on
    // as owner-died (what a robust mutex does when its thread exits).
    if let Some(pid) = entry.pid() {
        crate::interfaces::sync::repair_locks(&broker.held_by(entry.id), pid);
    }
    if !join_children {
        // It died (or failed): the barriers it was a party of break rather
        // than wait for it forever.
        let held = broker.held_by(entry.id);
        crate::interfaces::sync::break_barriers(&held);
        // A condition waiter that died must not keep a notify to itself.
        if let Some(pid) = entry.pid() {
            crate::interfaces::sync::forget_waiters(&held, pid);
        }
    }
    let children: Vec<Arc<Entry>> = broker
        .processes()
        .into_iter()
        .filter(|p| p.parent == Some(entry.id) && p.running())
        .collect();
    for child in children.iter().filter(|c| c.daemon) {
        child.signal(libc::SIGTERM);
    }
    for child in &children {
        if child.daemon || join_children {
            child.wait(Deadline::after(None));
        }
    }
    broker.release_all(entry.id);
}

/// The end of a run (main returned; its children were joined or
/// terminated): every guest-started process still running is an orphan
/// whose parent ended first. It is killed and reaped, so that no process
/// outlives the run.
pub(crate) fn end_run(broker: &Broker) {
    let left: Vec<Arc<Entry>> = broker
        .processes()
        .into_iter()
        .filter(|p| p.kind == Kind::Child && p.running())
        .collect();
    for p in &left {
        p.signal(libc::SIGKILL);
    }
    for p in &left {
        p.wait(Deadline::after(None));
    }
}

/// `Call::ProcessJoin`.
pub(crate) fn join(broker: &Broker, caller: u64, id: u64, timeout_ms: Option<u64>) -> Answer {
    if id == caller {
        return Err(CallError::Other("a process cannot join itself".into()));
    }
    let p = entry(broker, caller, id)?;
    Ok((
        Reply::Joined(p.wait(Deadline::after_ms(timeout_ms))),
        Vec::new(),
    ))
}

/// `Call::ProcessStatus`.
pub(crate) fn status(broker: &Broker, caller: u64, id: u64) -> Answer {
    Ok((
        Reply::Process(entry(broker, caller, id)?.describe()),
        Vec::new(),
    ))
}

/// `Call::ProcessSignal`.
pub(crate) fn signal(broker: &Broker, caller: u64, id: u64, kill: bool) -> Answer {
    let p = entry(broker, caller, id)?;
    p.signal(if kill { libc::SIGKILL } else { libc::SIGTERM });
    Ok((Reply::Ok, Vec::new()))
}

/// `Call::Parent`.
pub(crate) fn parent(broker: &Broker, caller: u64) -> Answer {
    let me = broker.caller(caller).ok_or(CallError::InvalidHandle)?;
    let parent = me
        .parent
        .and_then(|id| broker.caller(id))
        .and_then(|p| p.pid().map(|pid| (pid, p.name())));
    Ok((Reply::Parent(parent), Vec::new()))
}

/// `Call::ActiveChildren`: the caller now holds each.
pub(crate) fn active_children(broker: &Broker, caller: u64) -> Answer {
    let children: Vec<ProcessDesc> = broker
        .processes()
        .into_iter()
        .filter(|p| p.kind == Kind::Child && p.parent == Some(caller) && p.running())
        .map(|p| {
            broker.hold(caller, p.id);
            p.describe()
        })
        .collect();
    Ok((Reply::Processes(children), Vec::new()))
}
