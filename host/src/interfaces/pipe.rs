//! `mpwasm:runtime/pipe`: Python's `Pipe`, `Connection` and
//! `multiprocessing.connection.wait`.
//!
//! Hops of a `send` → `recv`:
//! 1. `pipe()` makes a `SOCK_STREAM` socketpair right in the worker process
//!    (no broker involved); each end is a [`ConnectionHandle`];
//! 2. an end travels to another process as a token: [`share`] moves a
//!    duplicate of its descriptor to the broker, which keeps it only until
//!    the token is redeemed (once);
//! 3. `send` writes one frame — a little-endian `u32` length, then the
//!    bytes — straight into the socket; `recv` reads one back. Nobody else
//!    holds the descriptor, so when the peer closes or dies `recv` sees the
//!    end of the stream: `Eof`, never a hang.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use wasmtime::component::Resource;

use super::{io_error, HostResult};
use crate::bindings::{pipe, types};
use crate::broker::{Answer, Broker};
use crate::interfaces::process::ProcessHandle;
use crate::interfaces::queue::QueueHandle;
use crate::limits::PIPE_BUFFER_COST;
use crate::sys::ipc::{self, Deadline};
use crate::wire::{Call, CallError, Reply};
use crate::worker::child::WorkerState;

// ---------------------------------------------------------------------------
// The worker's side.

/// One end of a pipe in a guest's resource table.
pub struct ConnectionHandle {
    /// `None` once closed (or broken by an oversized message).
    fd: Option<OwnedFd>,
    readable: bool,
    writable: bool,
    /// This process enlarged the end's buffers, and the run's shared memory
    /// is charged for them until the end is closed.
    enlarged: bool,
}

impl ConnectionHandle {
    fn new(fd: OwnedFd, readable: bool, writable: bool) -> Self {
        ConnectionHandle {
            fd: Some(fd),
            readable,
            writable,
            enlarged: false,
        }
    }

    /// The socket, for `wait`; `None` once closed.
    pub(crate) fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }
}

/// What polling or waiting on a send-only end is (Python's `OSError:
/// connection is write-only`): it can never become readable.
fn write_only() -> types::Error {
    types::Error::Other("connection is write-only".into())
}

/// Messages longer than this (64 KiB) enlarge the sending socket's buffer
/// (to a few MiB, once): one large message then goes in a few copies
/// instead of hundreds, while a pipe that never carries one keeps the
/// kernel's default (about 200 KiB of unread data at most).
const ENLARGE_PAST: usize = 64 << 10;

/// Reads exactly `buf.len()` bytes; `Ok(false)` if the stream ended first.
fn read_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8]) -> io::Result<bool> {
    let mut fds = Vec::new();
    while !buf.is_empty() {
        let got = ipc::recv(fd, buf, &mut fds, true)?;
        if got == 0 {
            return Ok(false);
        }
        buf = &mut buf[got..];
        // Descriptors have no business on a pipe: close any that came.
        fds.clear();
    }
    Ok(true)
}

/// A send or receive error as the guest sees it: a vanished peer is `eof`.
fn pipe_error(e: io::Error) -> types::Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => types::Error::Eof,
        _ => io_error(e),
    }
}

impl WorkerState {
    /// Gives back the shared memory charged for the end's enlarged
    /// buffers, if it was charged.
    fn let_go_buffer(&mut self, handle: &Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        let c = self.connection(handle)?;
        if std::mem::take(&mut c.enlarged) {
            self.upcall(Call::PipeBuffer { grow: false }, &[])?.ok();
        }
        Ok(())
    }

    fn connection(
        &mut self,
        handle: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<&mut ConnectionHandle> {
        Ok(self.table.get_mut(handle)?)
    }
}

impl pipe::HostConnection for WorkerState {
    fn send(&mut self, handle: Resource<ConnectionHandle>, msg: Vec<u8>) -> HostResult<()> {
        let max = self.max_message;
        let c = self.connection(&handle)?;
        if c.fd.is_none() {
            return Ok(Err(types::Error::Closed));
        }
        if !c.writable {
            return Ok(Err(types::Error::Other("connection is read-only".into())));
        }
        if msg.len() as u64 > max {
            return Ok(Err(types::Error::Limit(format!(
                "a message of {} bytes exceeds the limit of {max}",
                msg.len()
            ))));
        }
        if msg.len() > ENLARGE_PAST && !c.enlarged {
            // Charged first; with no room in the run's shared memory the
            // message goes through the default buffers, in more copies.
            if self.upcall(Call::PipeBuffer { grow: true }, &[])?.is_ok() {
                let c = self.connection(&handle)?;
                c.enlarged = true;
                if let Some(fd) = &c.fd {
                    ipc::enlarge(fd.as_fd());
                }
            }
        }
        let c = self.connection(&handle)?;
        let Some(fd) = &c.fd else {
            return Ok(Err(types::Error::Closed));
        };
        let header = (msg.len() as u32).to_le_bytes();
        Ok(ipc::send_all(fd.as_fd(), &[&header, &msg], &[]).map_err(pipe_error))
    }

    fn recv(
        &mut self,
        handle: Resource<ConnectionHandle>,
        max_len: Option<u64>,
    ) -> HostResult<Vec<u8>> {
        let limit = max_len.map_or(self.max_message, |m| m.min(self.max_message));
        let c = self.connection(&handle)?;
        let Some(fd) = &c.fd else {
            return Ok(Err(types::Error::Closed));
        };
        if !c.readable {
            return Ok(Err(types::Error::Other("connection is write-only".into())));
        }
        let mut header = [0u8; 4];
        match read_exact(fd.as_fd(), &mut header) {
            Ok(true) => {}
            Ok(false) => return Ok(Err(types::Error::Eof)),
            Err(e) => return Ok(Err(pipe_error(e))),
        }
        let len = u64::from(u32::from_le_bytes(header));
        if len > limit {
            // The rest of the stream cannot be trusted to line up: the
            // connection is done, as Python's is after such an error.
            c.fd = None;
            return Ok(Err(types::Error::Limit(format!(
                "a message of {len} bytes exceeds the limit of {limit}; the connection was closed"
            ))));
        }
        let mut msg = vec![0u8; len as usize];
        Ok(match read_exact(fd.as_fd(), &mut msg) {
            Ok(true) => Ok(msg),
            Ok(false) => Err(types::Error::Eof),
            Err(e) => Err(pipe_error(e)),
        })
    }

    fn poll(
        &mut self,
        handle: Resource<ConnectionHandle>,
        timeout_ms: Option<u64>,
    ) -> HostResult<bool> {
        let c = self.connection(&handle)?;
        let Some(fd) = &c.fd else {
            return Ok(Err(types::Error::Closed));
        };
        if !c.readable {
            return Ok(Err(write_only()));
        }
        Ok(
            ipc::poll_readable(&[fd.as_fd()], Deadline::after_ms(timeout_ms))
                .map(|ready| ready[0])
                .map_err(io_error),
        )
    }

    fn readable(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<bool> {
        Ok(self.connection(&handle)?.readable)
    }

    fn writable(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<bool> {
        Ok(self.connection(&handle)?.writable)
    }

    fn closed(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<bool> {
        Ok(self.connection(&handle)?.fd.is_none())
    }

    fn close(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        let c = self.connection(&handle)?;
        c.fd = None;
        self.let_go_buffer(&handle)
    }

    fn share(&mut self, handle: Resource<ConnectionHandle>) -> HostResult<u64> {
        let c = self.connection(&handle)?;
        let (readable, writable) = (c.readable, c.writable);
        let Some(fd) = &c.fd else {
            return Ok(Err(types::Error::Closed));
        };
        let fd = fd.try_clone()?;
        super::token(self.upcall(Call::ShareConnection { readable, writable }, &[fd.as_fd()])?)
    }

    fn drop(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.let_go_buffer(&handle)?;
        self.table.delete(handle)?;
        Ok(())
    }
}

impl pipe::Host for WorkerState {
    fn pipe(
        &mut self,
        duplex: bool,
    ) -> HostResult<(Resource<ConnectionHandle>, Resource<ConnectionHandle>)> {
        // The kernel's default buffers (about 200 KiB of unread data per
        // direction) until a large message needs more: `send` enlarges
        // them then.
        let (a, b) = match ipc::socketpair(None) {
            Ok(pair) => pair,
            Err(e) => return Ok(Err(io_error(e))),
        };
        let (first, second) = if duplex {
            (
                ConnectionHandle::new(a, true, true),
                ConnectionHandle::new(b, true, true),
            )
        } else {
            // Python's Pipe(False): the first end only receives, the second
            // only sends.
            let _ = rustix::net::shutdown(&a, rustix::net::Shutdown::Write);
            let _ = rustix::net::shutdown(&b, rustix::net::Shutdown::Read);
            (
                ConnectionHandle::new(a, true, false),
                ConnectionHandle::new(b, false, true),
            )
        };
        Ok(Ok((self.table.push(first)?, self.table.push(second)?)))
    }

    fn adopt(&mut self, cap: u64) -> HostResult<Resource<ConnectionHandle>> {
        Ok(match self.upcall(Call::Adopt { token: cap }, &[])? {
            Ok((Reply::Connection { readable, writable }, mut fds)) if fds.len() == 1 => {
                let fd = fds.pop().expect("one");
                Ok(self
                    .table
                    .push(ConnectionHandle::new(fd, readable, writable))?)
            }
            Ok((other, _)) => Err(self.refuse(other)?),
            Err(e) => Err(e),
        })
    }

    fn wait(
        &mut self,
        connections: Vec<Resource<ConnectionHandle>>,
        queues: Vec<Resource<QueueHandle>>,
        processes: Vec<Resource<ProcessHandle>>,
        timeout_ms: Option<u64>,
    ) -> HostResult<Vec<u32>> {
        let deadline = Deadline::after_ms(timeout_ms);
        // Processes are watched through pidfds, opened now; one that has
        // already ended is ready at once.
        let mut pidfds: Vec<Option<OwnedFd>> = Vec::new();
        for p in &processes {
            if !self.process_started(p)? {
                // Python: an unstarted process has no sentinel to wait on.
                return Ok(Err(types::Error::Other(
                    "cannot wait for a process that was not started".into(),
                )));
            }
            let pid = self.process_pid_if_running(p)?;
            pidfds.push(pid.and_then(|pid| {
                let pid = rustix::process::Pid::from_raw(pid as i32)?;
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            }));
        }
        let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
        for c in &connections {
            let c = self.table.get(c)?;
            if c.fd.is_some() && !c.readable {
                return Ok(Err(write_only()));
            }
            match c.readable_fd() {
                Some(fd) => fds.push(fd),
                None => return Ok(Err(types::Error::Closed)),
            }
        }
        for q in &queues {
            fds.push(self.table.get(q)?.readable_fd());
        }
        let ended: Vec<usize> = pidfds
            .iter()
            .enumerate()
            .filter(|(_, fd)| fd.is_none())
            .map(|(i, _)| fds.len() + i)
            .collect();
        let watched: Vec<BorrowedFd<'_>> = pidfds.iter().flatten().map(|f| f.as_fd()).collect();
        let mut all = fds.clone();
        all.extend(watched);
        let deadline = if ended.is_empty() {
            deadline
        } else {
            Deadline::after(Some(Default::default()))
        };
        let ready = match ipc::poll_readable(&all, deadline) {
            Ok(r) => r,
            Err(e) => return Ok(Err(io_error(e))),
        };
        // Map poll positions back to object positions.
        let mut out: Vec<u32> = (0..fds.len())
            .filter(|&i| ready[i])
            .map(|i| i as u32)
            .collect();
        let mut polled = fds.len();
        for (i, fd) in pidfds.iter().enumerate() {
            let position = (fds.len() + i) as u32;
            match fd {
                None => out.push(position),
                Some(_) => {
                    if ready[polled] {
                        out.push(position);
                    }
                    polled += 1;
                }
            }
        }
        Ok(Ok(out))
    }
}

// ---------------------------------------------------------------------------
// The broker's side.

/// A connection end in transit: held by the broker between `share` and
/// `adopt`.
pub(crate) struct End {
    fd: OwnedFd,
    readable: bool,
    writable: bool,
}

/// `Call::ShareConnection`: keeps the attached end under a new token.
pub(crate) fn share(
    broker: &Broker,
    caller: u64,
    mut fds: Vec<OwnedFd>,
    readable: bool,
    writable: bool,
) -> Answer {
    let (Some(fd), true) = (fds.pop(), fds.is_empty()) else {
        return Err(CallError::Other(
            "share a connection with exactly one descriptor".into(),
        ));
    };
    let token = broker.share_connection(
        caller,
        End {
            fd,
            readable,
            writable,
        },
    )?;
    Ok((Reply::Token(token), Vec::new()))
}

/// The reply that gives a process a connection end.
pub(crate) fn adopted(end: End) -> (Reply, Vec<OwnedFd>) {
    (
        Reply::Connection {
            readable: end.readable,
            writable: end.writable,
        },
        vec![end.fd],
    )
}

/// `Call::PipeBuffer`: charges (`grow`) the run's shared memory for one
/// enlarged pipe end of `caller`, or gives one such charge back.
pub(crate) fn buffer(broker: &Broker, caller: u64, grow: bool) -> Answer {
    if grow {
        let charge = broker.charge_shared(PIPE_BUFFER_COST, "a pipe's enlarged buffer")?;
        broker
            .pipe_buffers()
            .entry(caller)
            .or_default()
            .push(charge);
    } else if let Some(charges) = broker.pipe_buffers().get_mut(&caller) {
        charges.pop();
    }
    Ok((Reply::Ok, Vec::new()))
}

/// Gives back every pipe buffer charge of `caller` (its process ended, or
/// its instance was reset and lost its connections).
pub(crate) fn forget_buffers(broker: &Broker, caller: u64) {
    let charges = broker.pipe_buffers().remove(&caller);
    drop(charges);
}
