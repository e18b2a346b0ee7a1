//! Processes (Python's `multiprocessing.Process`), and who this process is.
//!
//! A [`Process`] runs one `#[task]` of this same guest, once, on the
//! arguments given to [`Process::new`], in a new OS process with a fresh
//! instance: the target is looked up by name, so there is nothing to pickle
//! and no `if __name__ == "__main__"` guard. The parent mpwasm process (the
//! broker) starts it, with the same sandbox as every other worker.
//!
//! ```no_run
//! use mpwasm_guest::{Process, Queue};
//!
//! #[mpwasm_guest::task]
//! fn greet(q: Queue<String>) {
//!     q.put(format!("hello from {}", mpwasm_guest::current_process().name)).unwrap();
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let q: Queue<String> = Queue::new()?;
//!     let mut p = Process::new("greet", q.clone());
//!     p.start()?;
//!     println!("{}", q.get()?);
//!     p.join()?;
//!     assert_eq!(p.exitcode(), Some(0));
//!     Ok(())
//! }
//! ```
//!
//! The host creates its side of a `Process` on first use (normally
//! [`start`](Process::start)), so that [`with_name`](Process::with_name) and
//! [`with_daemon`](Process::with_daemon) can still shape it; until then
//! queries answer locally (not alive, no pid, no exit code).

use std::cell::OnceCell;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bindings::{process as wit, runtime};
use crate::error::{Error, Result};
use crate::pipe::sealed::{Sealed, Target};
use crate::{capability, codec, time, Waitable};

/// A child process running one exported task (Python's
/// `multiprocessing.Process`).
///
/// Sending a `Process` to another process (in process arguments, a queue
/// item or a pipe message) gives the receiver a handle to the same process,
/// which it can join, signal or [`wait`](crate::wait) on.
pub struct Process {
    /// What creating the host's process takes; `None` once started, or for
    /// a process this one did not describe (adopted, `active_children`).
    spec: Option<Spec>,
    /// The host's process; created on first use.
    host: OnceCell<wit::Process>,
    /// The name, fetched once (it never changes).
    name: OnceCell<String>,
}

/// A process described by [`Process::new`] and not started yet.
struct Spec {
    target: String,
    /// The encoded arguments (empty if they could not be encoded).
    args: Vec<u8>,
    /// Why the arguments could not be encoded: `start` reports it.
    unencodable: Option<Error>,
    name: Option<String>,
    daemon: bool,
}

impl Process {
    /// Describes a process that will run the task `target` of this guest on
    /// `args`: one value, or a tuple for a task with several parameters.
    /// Python: `Process(target=worker, args=(...))`.
    ///
    /// The arguments are encoded here; handles among them
    /// ([`Queue`](crate::Queue), [`Connection`](crate::Connection),
    /// [`Process`]) travel as capabilities. If they cannot be encoded,
    /// [`start`](Self::start) fails with [`Error::Codec`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// use mpwasm_guest::Process;
    ///
    /// // Runs `#[task] fn add(a: i64, b: i64)` on (2, 3).
    /// let mut p = Process::new("add", (2_i64, 3_i64)).with_name("adder");
    /// p.start()?;
    /// p.join()?;
    /// # Ok(()) }
    /// ```
    pub fn new<A: Serialize>(target: &str, args: A) -> Process {
        let (args, unencodable) = match codec::to_bytes(&args) {
            Ok(args) => (args, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Process::described(Spec {
            target: target.to_string(),
            args,
            unencodable,
            name: None,
            daemon: false,
        })
    }

    /// Sets the process's name (Python's `name=`); without one the host
    /// names it `Process-N` (`Parent:N` under a child process).
    ///
    /// # Panics
    ///
    /// If the process was already started, or was not described by
    /// [`Process::new`] in this process.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let p = mpwasm_guest::Process::new("work", 1_u32).with_name("worker-1");
    /// assert_eq!(p.name(), "worker-1");
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Process {
        self.unstarted("with_name").name = Some(name.into());
        self.forget_host();
        self
    }

    /// Makes the process a daemon (Python's `daemon=True`): it is
    /// terminated when its parent ends, and may not start processes.
    ///
    /// # Panics
    ///
    /// If the process was already started, or was not described by
    /// [`Process::new`] in this process (as Python's `daemon` setter
    /// asserts).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let p = mpwasm_guest::Process::new("watchdog", ()).with_daemon(true);
    /// assert!(p.daemon());
    /// ```
    pub fn with_daemon(mut self, daemon: bool) -> Process {
        self.unstarted("with_daemon").daemon = daemon;
        self.forget_host();
        self
    }

    /// Starts the process.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if the arguments could not be encoded;
    /// [`Error::Other`] if this guest exports no `#[task]` named as the
    /// target (checked here, so the mistake surfaces at the call rather than
    /// as the child's exit code); the host's error if the process was
    /// already started, if this process is a daemon, or over the run's
    /// process cap ([`Error::Limit`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// let mut p = mpwasm_guest::Process::new("work", 7_u64);
    /// p.start()?;
    /// assert!(p.pid().is_some());
    /// # Ok(()) }
    /// ```
    pub fn start(&mut self) -> Result<()> {
        if let Some(spec) = &self.spec {
            if let Some(e) = spec.unencodable.clone() {
                return Err(e);
            }
            if !crate::dispatch::has_task(&spec.target) {
                return Err(Error::Other(format!(
                    "this guest has no #[task] named `{}` to run as a process",
                    spec.target
                )));
            }
        }
        self.host().start()?;
        // Started: the description (and its encoded arguments) is spent.
        self.spec = None;
        Ok(())
    }

    /// Waits until the process ends. Its exit code is then
    /// [`exitcode`](Self::exitcode).
    ///
    /// # Errors
    ///
    /// If the process was never started, or the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// let mut p = mpwasm_guest::Process::new("work", 7_u64);
    /// p.start()?;
    /// p.join()?;
    /// println!("exit code {:?}", p.exitcode());
    /// # Ok(()) }
    /// ```
    pub fn join(&mut self) -> Result<()> {
        self.join_for(None)
    }

    /// Waits at most `timeout` for the process to end. As in Python, a
    /// process still running when the timeout passes is not an error: check
    /// [`exitcode`](Self::exitcode) or [`is_alive`](Self::is_alive).
    ///
    /// # Errors
    ///
    /// If the process was never started, or the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// use std::time::Duration;
    ///
    /// let mut p = mpwasm_guest::Process::new("slow", ());
    /// p.start()?;
    /// p.join_timeout(Duration::from_millis(100))?;
    /// if p.is_alive() {
    ///     p.terminate()?;
    ///     p.join()?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.join_for(Some(timeout))
    }

    fn join_for(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.started("join")?.join(time::millis(timeout))?;
        Ok(())
    }

    /// Whether the process has started and not yet ended.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let p = mpwasm_guest::Process::new("work", ());
    /// assert!(!p.is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        self.spec.is_none() && self.host().is_alive()
    }

    /// Asks the process to stop: sends it `SIGTERM`. Its children are not
    /// terminated (as in Python).
    ///
    /// # Errors
    ///
    /// If the process was never started, or the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// let mut p = mpwasm_guest::Process::new("forever", ());
    /// p.start()?;
    /// p.terminate()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(-15));
    /// # Ok(()) }
    /// ```
    pub fn terminate(&self) -> Result<()> {
        Ok(self.started("terminate")?.terminate()?)
    }

    /// Kills the process: sends it `SIGKILL`.
    ///
    /// # Errors
    ///
    /// If the process was never started, or the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// let mut p = mpwasm_guest::Process::new("forever", ());
    /// p.start()?;
    /// p.kill()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(-9));
    /// # Ok(()) }
    /// ```
    pub fn kill(&self) -> Result<()> {
        Ok(self.started("kill")?.kill()?)
    }

    /// Releases the process's resources in the host.
    ///
    /// The handle is gone either way; a process that is still running keeps
    /// running (as it would if the handle were just dropped).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. while the process still runs (Python's
    /// `ValueError`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// let mut p = mpwasm_guest::Process::new("work", ());
    /// p.start()?;
    /// p.join()?;
    /// p.close()?;
    /// # Ok(()) }
    /// ```
    pub fn close(self) -> Result<()> {
        match self.host.get() {
            Some(host) => Ok(host.close()?),
            // Never created in the host: nothing to release.
            None => Ok(()),
        }
    }

    /// The OS process id, once started.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let p = mpwasm_guest::Process::new("work", ());
    /// assert_eq!(p.pid(), None);
    /// ```
    pub fn pid(&self) -> Option<u32> {
        match self.spec {
            Some(_) => None,
            None => self.host().pid(),
        }
    }

    /// The process's name: the one given with
    /// [`with_name`](Self::with_name), or the host's `Process-N`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let p = mpwasm_guest::Process::new("work", ());
    /// println!("{}", p.name()); // Process-1
    /// ```
    pub fn name(&self) -> String {
        self.name
            .get_or_init(|| match self.spec.as_ref().and_then(|s| s.name.clone()) {
                Some(name) => name,
                None => self.host().name(),
            })
            .clone()
    }

    /// Whether the process is a daemon.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let p = mpwasm_guest::Process::new("work", ());
    /// assert!(!p.daemon());
    /// ```
    pub fn daemon(&self) -> bool {
        match &self.spec {
            Some(spec) => spec.daemon,
            None => self.host().daemon(),
        }
    }

    /// The exit code: `None` while running (or not started), 0 when the
    /// task returned, 1 after a panic, an `Err` or a trap, `-N` when killed
    /// by signal `N`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// let mut p = mpwasm_guest::Process::new("work", ());
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok(()) }
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        match self.spec {
            Some(_) => None,
            None => self.host().exitcode(),
        }
    }

    /// The object to [`wait`](crate::wait) on for the process's end
    /// (Python's `sentinel`): the process itself, which is
    /// [`Waitable`](crate::Waitable).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm_guest::Result<()> {
    /// let mut p = mpwasm_guest::Process::new("work", ());
    /// p.start()?;
    /// let ready = mpwasm_guest::wait(&[p.sentinel()], None)?;
    /// assert_eq!(ready, [0]);
    /// # Ok(()) }
    /// ```
    pub fn sentinel(&self) -> &Process {
        self
    }

    /// The host's process, created from the description on first use.
    fn host(&self) -> &wit::Process {
        self.host.get_or_init(|| {
            let spec = self
                .spec
                .as_ref()
                .expect("a process without a description has its host handle");
            wit::Process::new(&spec.target, &spec.args, spec.name.as_deref(), spec.daemon)
        })
    }

    /// The host's process, if it was started (by this handle or elsewhere).
    fn started(&self, what: &str) -> Result<&wit::Process> {
        match self.spec {
            Some(_) => Err(Error::Other(format!("can only {what} a started process"))),
            None => Ok(self.host()),
        }
    }

    /// The description, for changing it before start.
    fn unstarted(&mut self, what: &str) -> &mut Spec {
        self.spec.as_mut().unwrap_or_else(|| {
            panic!("Process::{what}: the process was started or not described here")
        })
    }

    /// Drops a host process created from an older description (a query
    /// may have created it); the next use creates it afresh.
    fn forget_host(&mut self) {
        self.host = OnceCell::new();
        self.name = OnceCell::new();
    }

    fn described(spec: Spec) -> Process {
        Process {
            spec: Some(spec),
            host: OnceCell::new(),
            name: OnceCell::new(),
        }
    }

    fn adopted(host: wit::Process) -> Process {
        Process {
            spec: None,
            host: OnceCell::from(host),
            name: OnceCell::new(),
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Process");
        if let Some(spec) = &self.spec {
            d.field("target", &spec.target)
                .field("name", &spec.name)
                .field("daemon", &spec.daemon);
        }
        d.field("handle", &self.host.get().map(|h| h.handle()))
            .finish_non_exhaustive()
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        capability::serialize(serializer, "mpwasm::Process", self.host().share())
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        capability::deserialize(deserializer, "mpwasm::Process", wit::adopt).map(Process::adopted)
    }
}

impl Sealed for Process {
    fn target(&self) -> Target<'_> {
        Target::Process(self.host())
    }
}

impl Waitable for Process {}

/// The process that started this one (Python's `parent_process()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProcess {
    /// OS process id of the parent.
    pub pid: u32,
    /// The parent's name.
    pub name: String,
}

/// The process that started this one; `None` in `main` and in pool
/// workers (Python's `multiprocessing.parent_process()`).
///
/// # Examples
///
/// ```no_run
/// #[mpwasm_guest::task]
/// fn child(_: ()) {
///     let parent = mpwasm_guest::parent_process().expect("started by a Process");
///     println!("started by {} ({})", parent.name, parent.pid);
/// }
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    wit::parent().map(|p| ParentProcess {
        pid: p.pid,
        name: p.name,
    })
}

/// The children of this process that are still running (Python's
/// `multiprocessing.active_children()`).
///
/// # Examples
///
/// ```no_run
/// # fn main() -> mpwasm_guest::Result<()> {
/// for mut child in mpwasm_guest::active_children() {
///     child.terminate()?;
///     child.join()?;
/// }
/// # Ok(()) }
/// ```
pub fn active_children() -> Vec<Process> {
    wit::active_children()
        .into_iter()
        .map(Process::adopted)
        .collect()
}

/// The worker process this code runs in (Python's
/// `multiprocessing.current_process()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Index of the worker within its pool, from 0 (0 for `main` and for
    /// processes started with [`Process`]).
    pub id: u32,
    /// OS process id of the worker process.
    pub pid: u32,
    /// OS process id of the process that started it.
    pub parent_pid: u32,
    /// The process's name, e.g. `PoolWorker-1`, `MainProcess` or
    /// `Process-1`.
    pub name: String,
}

/// Describes the worker process this code runs in.
///
/// Each worker is its own OS process, so two tasks that see different `pid`s
/// ran in different processes.
///
/// # Examples
///
/// ```no_run
/// let me = mpwasm_guest::current_process();
/// println!("{} is pid {}", me.name, me.pid);
/// ```
pub fn current_process() -> ProcessInfo {
    let w = runtime::worker();
    ProcessInfo {
        id: w.id,
        pid: w.pid,
        parent_pid: w.parent_pid,
        name: w.name,
    }
}

/// Number of CPUs the host offers (Python's `multiprocessing.cpu_count()`).
///
/// # Examples
///
/// ```no_run
/// println!("{} CPUs", mpwasm_guest::cpu_count());
/// ```
pub fn cpu_count() -> u32 {
    runtime::cpu_count()
}
