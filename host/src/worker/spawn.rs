//! The parent's side of a worker process: start it, talk to it, end it.
//!
//! Every worker process is started from one thread, the *spawner*, which
//! lives as long as the parent process. A worker asks the kernel to SIGKILL
//! it when its parent dies (`PR_SET_PDEATHSIG`), and Linux fires that signal
//! when the *thread* that forked the worker exits, not the process. Started
//! from a short-lived thread (a process's driver thread, a pool's), a worker
//! would die with that thread: a grandchild would be killed when its parent
//! was terminated, which Python never does. From the spawner, a worker dies
//! only with the parent process itself.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};

use super::WORKER_ENV;
use crate::broker::Broker;
use crate::wire::{Channel, FromWorker, Init, ToWorker};

/// How long a new worker may take to load its guest and report ready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A worker process this one is the parent of: started with `exec`, or
/// forked by a zygote ([`crate::zygote`]) and followed by its pidfd.
enum Proc {
    Exec(Child),
    Forked {
        pidfd: OwnedFd,
        /// Its status, once reaped (a pidfd can be waited on only once).
        status: Option<ExitStatus>,
    },
}

impl Proc {
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match self {
            Proc::Exec(child) => child.try_wait(),
            Proc::Forked { pidfd, status } => {
                if status.is_none() {
                    *status = crate::sys::fork::pidfd_wait(pidfd, false)?;
                }
                Ok(*status)
            }
        }
    }

    /// Waits a little for the process to exit, at most until `deadline`:
    /// a forked one until its pidfd says it has (no later), an exec'd one
    /// a millisecond.
    fn pause(&self, deadline: std::time::Instant) {
        if let Proc::Forked { pidfd, .. } = self {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let until = crate::sys::ipc::Deadline::after(Some(left));
            if crate::sys::ipc::poll_readable(&[pidfd.as_fd()], until).is_ok() {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }

    fn kill(&mut self) -> io::Result<()> {
        match self {
            Proc::Exec(child) => child.kill(),
            Proc::Forked {
                status: Some(_), ..
            } => Ok(()),
            Proc::Forked { pidfd, .. } => crate::sys::fork::pidfd_kill(pidfd),
        }
    }

    fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Proc::Exec(child) => child.wait(),
            Proc::Forked {
                status: Some(status),
                ..
            } => Ok(*status),
            Proc::Forked { pidfd, status } => {
                let reaped = crate::sys::fork::pidfd_wait(pidfd, true)?
                    .ok_or_else(|| io::Error::other("waitid returned no status"))?;
                *status = Some(reaped);
                Ok(reaped)
            }
        }
    }
}

/// A running worker process and the parent's end of its socket.
pub(crate) struct WorkerProcess {
    child: Proc,
    pid: u32,
    /// The program started as the worker (for messages).
    program: std::path::PathBuf,
    channel: Channel,
    /// Who answers the worker's upcalls, and the worker's id there.
    broker: Option<(Arc<Broker>, u64)>,
}

impl WorkerProcess {
    /// Starts `program` as a worker and sends it `init`. Does not wait for
    /// it to load: see [`WorkerProcess::wait_ready`].
    /// The run's zygote forks it if it can ([`crate::zygote::Lease`]),
    /// else it is exec'd.
    pub(crate) fn spawn(
        program: &Path,
        init: &Init,
        zygote: &crate::zygote::Lease,
    ) -> io::Result<Self> {
        let checks = crate::engine::Checks::of(&init.sandbox);
        let forked = zygote.fork_worker(program, &init.artifact, checks, init.window);
        let (child, pid, ours) = match forked {
            Some(forked) => (
                Proc::Forked {
                    pidfd: forked.pidfd,
                    status: None,
                },
                forked.pid,
                forked.socket,
            ),
            None => Self::exec(program)?,
        };
        let mut worker = WorkerProcess {
            child,
            pid,
            program: program.to_path_buf(),
            channel: Channel::new(ours)?,
            broker: None,
        };
        worker
            .send(&ToWorker::Init(Box::new(init.clone())))
            .map_err(|e| io::Error::new(e.kind(), worker.not_a_worker(&e)))?;
        Ok(worker)
    }

    /// Starts `program` in worker mode with `exec`.
    fn exec(program: &Path) -> io::Result<(Proc, u32, UnixStream)> {
        let (ours, theirs) = UnixStream::pair()?;
        let mut command = Command::new(program);
        command
            .env(WORKER_ENV, std::process::id().to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        let child = spawn_from_spawner(command)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        let pid = child.id();
        Ok((Proc::Exec(child), pid, ours))
    }

    /// Answers this worker's upcalls with `broker`, as process `id` there.
    pub(crate) fn serve_calls(&mut self, broker: Arc<Broker>, id: u64) {
        self.broker = Some((broker, id));
    }

    /// Waits for the worker to report that the guest is instantiated.
    ///
    /// # Errors
    ///
    /// The worker's own description of what failed, or that it died.
    pub(crate) fn wait_ready(&mut self) -> Result<(), String> {
        // A worker that never reports must not hang its pool.
        let ready = self.receive_within(Some(READY_TIMEOUT));
        match ready {
            Ok(FromWorker::Ready { .. }) => Ok(()),
            Ok(FromWorker::InitFailed(msg)) => Err(msg),
            Ok(other) => Err(format!("unexpected first frame {other:?}")),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Err(format!(
                    "worker did not report ready within {READY_TIMEOUT:?}"
                ))
            }
            Err(e) => Err(self.not_a_worker(&e)),
        }
    }

    /// What to say when the worker went away before it reported anything:
    /// an mpwasm worker always answers, so the likely cause is a program
    /// that never became one (an embedding program without
    /// `mpwasm::init()`).
    fn not_a_worker(&self, e: &io::Error) -> String {
        format!(
            "worker process {} ({}) ended before reporting ready ({e}); if that is your own \
             program, call mpwasm::init() first thing in its main, or point \
             PoolBuilder::worker_program at the mpwasm binary",
            self.pid,
            self.program.display()
        )
    }

    /// Sends one request and waits for its reply.
    ///
    /// # Errors
    ///
    /// I/O errors or a hostile frame: the worker must then be discarded.
    pub(crate) fn request(&mut self, msg: &ToWorker<'_>) -> io::Result<FromWorker> {
        self.request_within(msg, None)
    }

    /// [`request`](WorkerProcess::request) with a limit on the wait for the
    /// reply: past it, an error of kind `WouldBlock` (the worker must then
    /// be discarded: a late reply would be misread as the next one's).
    pub(crate) fn request_within(
        &mut self,
        msg: &ToWorker<'_>,
        limit: Option<std::time::Duration>,
    ) -> io::Result<FromWorker> {
        self.send(msg)?;
        self.receive_within(limit)
    }

    /// Sends one request. An error means it was not delivered: the worker
    /// is gone and never saw it.
    pub(crate) fn send(&mut self, msg: &ToWorker<'_>) -> io::Result<()> {
        self.channel.send(msg, &[])
    }

    /// Waits up to `limit` (forever if `None`) for the reply to the request
    /// just sent; see [`request_within`](WorkerProcess::request_within).
    /// Upcalls that arrive meanwhile are answered; the time spent on them
    /// counts against `limit`.
    pub(crate) fn receive_within(
        &mut self,
        limit: Option<std::time::Duration>,
    ) -> io::Result<FromWorker> {
        let deadline = crate::sys::ipc::Deadline::after(limit);
        loop {
            if let Some(left) = deadline.remaining() {
                // A zero timeout means "none" to the socket: wait 1 µs instead.
                let left = left.max(std::time::Duration::from_micros(1));
                self.channel.set_read_timeout(Some(left))?;
            }
            let frame = self.receive();
            if limit.is_some() {
                let _ = self.channel.set_read_timeout(None);
            }
            match frame? {
                (FromWorker::Call(call), fds) => {
                    let (reply, fds) = match &self.broker {
                        Some((broker, id)) => broker.handle(*id, call, fds),
                        None => crate::broker::unsupported(),
                    };
                    let fds: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
                    self.channel.send(&ToWorker::Reply(reply), &fds)?;
                }
                (reply, fds) if fds.is_empty() => return Ok(reply),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "descriptors sent with a reply",
                    ))
                }
            }
        }
    }

    /// Whether the worker process has already exited (it died while idle).
    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn receive(&mut self) -> io::Result<(FromWorker, Vec<OwnedFd>)> {
        self.channel.recv()?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "worker closed its channel")
        })
    }

    /// The worker's OS pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// A second handle on the socket, to cut it from another thread
    /// (`Pool::terminate`).
    pub(crate) fn socket(&self) -> io::Result<UnixStream> {
        self.channel.socket()
    }
}

/// A command for the spawner thread, and where to send the child.
type SpawnRequest = (Command, std::sync::mpsc::SyncSender<io::Result<Child>>);

/// Starts `command` from the spawner thread (see the module docs), starting
/// that thread on first use.
pub(crate) fn spawn_from_spawner(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<io::Result<std::sync::mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("mpwasm-spawner".into())
            .spawn(move || {
                // Never returns while the process runs: `SPAWNER` keeps a
                // sender for good.
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| tx)
    });
    let spawner = spawner
        .as_ref()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the spawner thread: {e}")))?;
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    let gone = || io::Error::other("the spawner thread is gone");
    spawner.send((command, reply)).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

impl WorkerProcess {
    /// Stops the worker (if it still runs), reaps it, and describes how it
    /// ended: "exited with status N" or "was killed by signal N".
    pub(crate) fn end(self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self.end_status() {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => "ended".to_string(),
            },
            Err(e) => format!("could not be reaped: {e}"),
        }
    }

    /// Stops the worker (if it still runs after a moment), reaps it, and
    /// returns its status.
    pub(crate) fn end_status(mut self) -> io::Result<ExitStatus> {
        // Closing the socket tells a live worker to exit by itself.
        if let Ok(socket) = self.channel.socket() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        // A worker whose socket just closed is usually exiting: give it a
        // moment so its own status is reported, not our SIGKILL.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if std::time::Instant::now() < deadline => self.child.pause(deadline),
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait();
                }
            }
        }
    }
}

impl Drop for WorkerProcess {
    /// Ends the worker and reaps it: no zombie outlives its handle.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
