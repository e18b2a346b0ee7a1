//! The parent's side of a worker process: start it, talk to it, end it.

use std::io::{self, BufReader, BufWriter};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::WORKER_ENV;
use crate::wire::{read_frame, write_frame, FromWorker, Init, ToWorker};

/// How long a new worker may take to load its guest and report ready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A running worker process and the parent's end of its socket.
pub(crate) struct WorkerProcess {
    child: Child,
    pid: u32,
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
}

impl WorkerProcess {
    /// Starts `program` as a worker and sends it `init`. Does not wait for
    /// it to load: see [`WorkerProcess::wait_ready`].
    pub(crate) fn spawn(program: &Path, init: &Init) -> io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let child = Command::new(program)
            .env(WORKER_ENV, std::process::id().to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        let pid = child.id();
        let mut worker = WorkerProcess {
            child,
            pid,
            reader: BufReader::new(ours.try_clone()?),
            writer: BufWriter::new(ours),
        };
        write_frame(&mut worker.writer, &ToWorker::Init(init.clone()))?;
        Ok(worker)
    }

    /// Waits for the worker to report that the guest is instantiated.
    ///
    /// # Errors
    ///
    /// The worker's own description of what failed, or that it died.
    pub(crate) fn wait_ready(&mut self) -> Result<(), String> {
        // A worker that never reports must not hang its pool.
        let _ = self.reader.get_ref().set_read_timeout(Some(READY_TIMEOUT));
        let ready = self.receive();
        let _ = self.reader.get_ref().set_read_timeout(None);
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
            Err(e) => Err(format!("worker exited while starting ({e})")),
        }
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
        write_frame(&mut self.writer, msg)
    }

    /// Waits up to `limit` (forever if `None`) for the reply to the request
    /// just sent; see [`request_within`](WorkerProcess::request_within).
    pub(crate) fn receive_within(
        &mut self,
        limit: Option<std::time::Duration>,
    ) -> io::Result<FromWorker> {
        if limit.is_none() {
            return self.receive();
        }
        self.reader.get_ref().set_read_timeout(limit)?;
        let reply = self.receive();
        let _ = self.reader.get_ref().set_read_timeout(None);
        reply
    }

    /// Whether the worker process has already exited (it died while idle).
    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn receive(&mut self) -> io::Result<FromWorker> {
        read_frame(&mut self.reader)?.ok_or_else(|| {
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
        self.writer.get_ref().try_clone()
    }
}

impl WorkerProcess {
    /// Stops the worker (if it still runs), reaps it, and describes how it
    /// ended: "exited with status N" or "was killed by signal N".
    pub(crate) fn end(mut self) -> String {
        use std::os::unix::process::ExitStatusExt;
        // A worker whose socket just closed is usually exiting: give it a
        // moment so its own status is reported, not our SIGKILL.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait();
                }
            }
        };
        match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => "ended".to_string(),
            },
            Err(e) => format!("could not be reaped: {e}"),
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
