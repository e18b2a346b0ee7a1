//! The broker's side of a zygote: start it, ask it for workers, end it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{ForkedWorker, FromZygote, ToZygote, ZYGOTE_ENV};
use crate::engine::Checks;
use crate::wire::Channel;

/// How long a new zygote may take to map and link its guest.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a zygote may take to answer a fork request (it forks at once).
const FORK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fork request failed.
#[derive(Debug)]
pub(crate) enum ForkFailure {
    /// The zygote is gone, or broke the protocol: it must be replaced.
    Gone(io::Error),
    /// The zygote answered that it cannot fork, and why.
    Refused(String),
}

/// A running zygote and the broker's end of its control socket.
pub(crate) struct Zygote {
    child: Child,
    channel: Channel,
    /// What it was started for: program, artifact, compiled checks, window.
    serves: (std::path::PathBuf, std::path::PathBuf, Checks, bool),
}

impl Zygote {
    /// Starts `program` as a zygote for `artifact` and waits until it has
    /// mapped and linked it.
    ///
    /// # Errors
    ///
    /// It could not be started, or did not report ready (its own reason,
    /// or that it ended: a program that is not mpwasm-aware).
    pub(crate) fn start(
        program: &Path,
        artifact: &Path,
        checks: Checks,
        window: bool,
    ) -> io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let mut command = Command::new(program);
        command
            .env(ZYGOTE_ENV, std::process::id().to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        // From the spawner thread: the zygote's parent-death signal, and so
        // that of every worker it forks (their parent is the zygote's), is
        // tied to the life of this process, not of the asking thread.
        let child = crate::worker::spawn::spawn_from_spawner(command)?;
        let mut zygote = Zygote {
            child,
            channel: Channel::new(ours)?,
            serves: (
                program.to_path_buf(),
                artifact.to_path_buf(),
                checks,
                window,
            ),
        };
        let load = ToZygote::Load {
            artifact: artifact.to_path_buf(),
            checks,
            window,
        };
        zygote.channel.send(&load, &[])?;
        match zygote.receive(READY_TIMEOUT)? {
            (FromZygote::Ready, fds) if fds.is_empty() => Ok(zygote),
            (FromZygote::Failed(why), _) => Err(io::Error::other(why)),
            (other, _) => Err(protocol(&other)),
        }
    }

    /// Asks the zygote for `n` workers at once: the `n` requests go out
    /// together and the zygote forks them back to back, with no round trip
    /// to the broker between two forks (a pool starting all its workers
    /// waits for one answer time, not `n`). Returns the workers forked, in
    /// order, and the failure that stopped the rest, if any: after
    /// [`ForkFailure::Refused`] every other request is still answered (and
    /// what was forked kept); after [`ForkFailure::Gone`] nothing more is
    /// read.
    pub(crate) fn fork_many(&mut self, n: usize) -> (Vec<ForkedWorker>, Option<ForkFailure>) {
        let mut ours = Vec::with_capacity(n);
        for _ in 0..n {
            let sent = UnixStream::pair().and_then(|(mine, theirs)| {
                self.channel.send(&ToZygote::Fork, &[theirs.as_fd()])?;
                Ok(mine)
            });
            match sent {
                Ok(mine) => ours.push(mine),
                Err(e) if ours.is_empty() => return (Vec::new(), Some(ForkFailure::Gone(e))),
                // Those sent are answered; the rest are not asked for.
                Err(_) => break,
            }
        }
        let mut forked = Vec::with_capacity(ours.len());
        let mut failure = None;
        for socket in ours {
            match self.answer(socket) {
                Ok(worker) => forked.push(worker),
                Err(ForkFailure::Gone(e)) => return (forked, Some(ForkFailure::Gone(e))),
                Err(refused) => {
                    failure.get_or_insert(refused);
                }
            }
        }
        (forked, failure)
    }

    /// The zygote's answer to one fork request whose channel's other end is
    /// `socket`.
    fn answer(&mut self, socket: UnixStream) -> Result<ForkedWorker, ForkFailure> {
        match self.receive(FORK_TIMEOUT).map_err(ForkFailure::Gone)? {
            (FromZygote::Forked { pid }, mut fds) if fds.len() == 1 => Ok(ForkedWorker {
                pid,
                pidfd: fds.remove(0),
                socket,
            }),
            (FromZygote::Refused(why), fds) if fds.is_empty() => Err(ForkFailure::Refused(why)),
            (other, _) => Err(ForkFailure::Gone(protocol(&other))),
        }
    }

    /// Whether it was started for these.
    pub(crate) fn serves(
        &self,
        program: &Path,
        artifact: &Path,
        checks: Checks,
        window: bool,
    ) -> bool {
        let (p, a, c, w) = &self.serves;
        p == program && a == artifact && *c == checks && *w == window
    }

    /// One answer, within `limit`.
    fn receive(&mut self, limit: Duration) -> io::Result<(FromZygote, Vec<OwnedFd>)> {
        self.channel.set_read_timeout(Some(limit))?;
        let answer = self.channel.recv::<FromZygote>();
        let _ = self.channel.set_read_timeout(None);
        answer?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the zygote ended (a worker program without mpwasm::init()?)",
            )
        })
    }
}

fn protocol(answer: &FromZygote) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected answer from the zygote: {answer:?}"),
    )
}

impl Drop for Zygote {
    /// Ends the zygote and reaps it (the workers it forked are the
    /// broker's children and live on).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
