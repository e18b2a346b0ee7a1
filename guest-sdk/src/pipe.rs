//! Pipes between two processes (Python's `multiprocessing.Pipe` and
//! `Connection`), and waiting on several objects at once
//! (`multiprocessing.connection.wait`).
//!
//! A pipe is a connected pair of OS sockets; messages go straight from one
//! process to the other. When the peer closes its end or dies, `recv` fails
//! with [`Error::Eof`] instead of hanging.
//!
//! ```no_run
//! use mpwasm_guest::{pipe, Connection, Process};
//!
//! #[mpwasm_guest::task]
//! fn echo_upper(conn: Connection) {
//!     while let Ok(text) = conn.recv::<String>() {
//!         conn.send(&text.to_uppercase()).unwrap();
//!     }
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let (here, there) = pipe(true)?;
//!     let mut p = Process::new("echo_upper", there);
//!     p.start()?;
//!     here.send("hello")?;
//!     assert_eq!(here.recv::<String>()?, "HELLO");
//!     here.close(); // the child's recv sees Eof and returns
//!     p.join()
//! }
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bindings::pipe as wit;
use crate::error::{Error, Result};
use crate::{capability, codec, time};

/// A connected pair of connections (Python's `Pipe(duplex)`).
///
/// With `duplex` both ends send and receive; without, the first only
/// receives and the second only sends: `(reader, writer)`.
///
/// # Errors
///
/// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
///
/// # Examples
///
/// ```no_run
/// let (reader, writer) = mpwasm_guest::pipe(false)?;
/// writer.send(&[1, 2, 3])?;
/// assert_eq!(reader.recv::<Vec<i32>>()?, [1, 2, 3]);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub fn pipe(duplex: bool) -> Result<(Connection, Connection)> {
    let (a, b) = wit::pipe(duplex)?;
    Ok((Connection { host: a }, Connection { host: b }))
}

/// One end of a pipe (Python's `multiprocessing.connection.Connection`).
///
/// Sending a `Connection` to another process (in
/// [`Process`](crate::Process) arguments, a queue item or a pipe message)
/// gives the receiver its own copy of this end.
pub struct Connection {
    host: wit::Connection,
}

impl Connection {
    /// Sends `obj`, encoded with bincode.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `obj` cannot be encoded; [`Error::Closed`] after
    /// [`close`](Self::close); [`Error::Eof`] if the peer is gone;
    /// [`Error::Limit`] if the message is too large.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// a.send("text")?;
    /// a.send(&(1, 2.5))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&self, obj: &T) -> Result<()> {
        codec::with_bytes(obj, |bytes| self.send_bytes(bytes))?
    }

    /// Receives one message sent with [`send`](Self::send), waiting for
    /// it.
    ///
    /// # Errors
    ///
    /// [`Error::Eof`] when the peer closed its end or died and nothing is
    /// left; [`Error::Codec`] if the message does not decode as a `T`;
    /// [`Error::Closed`] after [`close`](Self::close).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// b.send(&7_u16)?;
    /// let n: u16 = a.recv()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        codec::from_bytes(&self.recv_bytes()?)
    }

    /// Sends `buf` as one message, as it is.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), without the encoding.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// a.send_bytes(b"raw")?;
    /// assert_eq!(b.recv_bytes()?, b"raw");
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
        Ok(self.host.send(buf)?)
    }

    /// Sends `size` bytes of `buf` from `offset` (all the rest with `None`)
    /// as one message (Python's `send_bytes(buf, offset, size)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if the range does not lie within `buf` (Python's
    /// `ValueError`), before anything is sent; else as
    /// [`send_bytes`](Self::send_bytes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// a.send_bytes_range(b"abcdef", 2, Some(3))?;
    /// assert_eq!(b.recv_bytes()?, b"cde");
    /// a.send_bytes_range(b"abcdef", 4, None)?;
    /// assert_eq!(b.recv_bytes()?, b"ef");
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn send_bytes_range(&self, buf: &[u8], offset: usize, size: Option<usize>) -> Result<()> {
        if offset > buf.len() {
            return Err(Error::Other(format!(
                "buffer length {} < offset {offset} (ValueError)",
                buf.len()
            )));
        }
        let size = size.unwrap_or(buf.len() - offset);
        match offset.checked_add(size).filter(|end| *end <= buf.len()) {
            Some(end) => self.send_bytes(&buf[offset..end]),
            None => Err(Error::Other(format!(
                "buffer length {} < offset {offset} + size {size} (ValueError)",
                buf.len()
            ))),
        }
    }

    /// Receives one message as bytes, waiting for it.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), without the decoding.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// b.send_bytes(&[0xff])?;
    /// assert_eq!(a.recv_bytes()?, [0xff]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.host.recv(None)?)
    }

    /// Receives one message of at most `maxlength` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Limit`] if the message is longer (Python's `OSError: bad
    /// message length`); the message is consumed, and as in Python this end
    /// can receive nothing more (the host closes it). Otherwise as
    /// [`recv_bytes`](Self::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::Error;
    ///
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// b.send_bytes(&[0; 100])?;
    /// assert!(matches!(a.recv_bytes_max(10), Err(Error::Limit(_))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
        let max = u64::try_from(maxlength).unwrap_or(u64::MAX);
        Ok(self.host.recv(Some(max))?)
    }

    /// Receives one message into `buf`, returning its length.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooShort`], holding the message, if `buf` is shorter
    /// than it. Otherwise as [`recv_bytes`](Self::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// b.send_bytes(b"abc")?;
    /// let mut buf = [0; 16];
    /// let n = a.recv_bytes_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        let message = self.recv_bytes()?;
        match buf.get_mut(..message.len()) {
            Some(dest) => {
                dest.copy_from_slice(&message);
                Ok(message.len())
            }
            None => Err(Error::BufferTooShort(message)),
        }
    }

    /// Whether a message (or end of file) is ready to receive, waiting at
    /// most `timeout` for one: `None` waits forever, `Some(Duration::ZERO)`
    /// only checks.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close); [`Error::Other`] on
    /// the sending end of a one-way pipe (Python's `OSError`), as
    /// [`recv`](Self::recv); the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// assert!(!a.poll(Some(Duration::ZERO))?);
    /// b.send(&())?;
    /// assert!(a.poll(None)?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        Ok(self.host.poll(time::millis(timeout))?)
    }

    /// Closes this end. The peer's `recv` then fails with [`Error::Eof`]
    /// once it has taken what was sent (if no other process holds a copy of
    /// this end).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, b) = mpwasm_guest::pipe(true)?;
    /// a.close();
    /// assert_eq!(b.recv_bytes(), Err(mpwasm_guest::Error::Eof));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn close(&self) {
        self.host.close();
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (a, _b) = mpwasm_guest::pipe(true)?;
    /// a.close();
    /// assert!(a.closed());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn closed(&self) -> bool {
        self.host.closed()
    }

    /// Whether this end can receive.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (reader, writer) = mpwasm_guest::pipe(false)?;
    /// assert!(reader.readable() && !writer.readable());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn readable(&self) -> bool {
        self.host.readable()
    }

    /// Whether this end can send.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (reader, writer) = mpwasm_guest::pipe(false)?;
    /// assert!(writer.writable() && !reader.writable());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn writable(&self) -> bool {
        self.host.writable()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("handle", &self.host.handle())
            .finish()
    }
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        capability::serialize(serializer, "mpwasm::Connection", self.host.share())
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        capability::deserialize(deserializer, "mpwasm::Connection", wit::adopt)
            .map(|host| Connection { host })
    }
}

/// What [`wait`] can wait on: a [`Connection`] (a message or end of file to
/// receive), a [`Queue`](crate::Queue), [`JoinableQueue`](crate::JoinableQueue)
/// or [`SimpleQueue`](crate::SimpleQueue) (an item to get), or a
/// [`Process`](crate::Process) (it ended).
///
/// Sealed: only this crate's handles implement it.
pub trait Waitable: sealed::Sealed {}

/// Keeps [`Waitable`] closed to other crates, and says which host handle
/// each waitable stands for.
pub(crate) mod sealed {
    use crate::bindings::{pipe, process, queue};

    /// The host handle a waitable stands for.
    pub enum Target<'a> {
        /// Ready with a message or end of file to receive.
        Connection(&'a pipe::Connection),
        /// Ready with an item to get.
        Queue(&'a queue::Queue),
        /// Ready once the process ended.
        Process(&'a process::Process),
    }

    /// The supertrait of `Waitable`, unnameable outside the crate.
    pub trait Sealed {
        /// The host handle to wait on.
        fn target(&self) -> Target<'_>;
    }
}

impl sealed::Sealed for Connection {
    fn target(&self) -> sealed::Target<'_> {
        sealed::Target::Connection(&self.host)
    }
}

impl Waitable for Connection {}

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: forever), and returns the positions in `objects` of the ready
/// ones, ascending (Python's `multiprocessing.connection.wait`; empty when
/// the timeout passed).
///
/// A connection is ready when a message or end of file can be received, a
/// queue when it holds an item, a process when it has ended.
///
/// # Errors
///
/// The host's error, e.g. [`Error::InvalidHandle`] or [`Error::Closed`] for
/// a handle that can no longer be used.
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{pipe, wait, Queue};
///
/// let (a, b) = pipe(true)?;
/// let q: Queue<u32> = Queue::new()?;
/// q.put(1)?;
/// assert_eq!(wait(&[&a, &q], None)?, [1]);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let mut by_kind = ByKind::default();
    for (position, object) in objects.iter().enumerate() {
        by_kind.push(position, object.target());
    }
    let ready = wit::wait(
        &by_kind.connections,
        &by_kind.queues,
        &by_kind.processes,
        time::millis(timeout),
    )?;
    by_kind.positions(&ready)
}

/// The objects given to [`wait`], split by kind as the WIT takes them, with
/// their positions in the caller's list.
#[derive(Default)]
struct ByKind<'a> {
    connections: Vec<&'a wit::Connection>,
    queues: Vec<&'a wit::Queue>,
    processes: Vec<&'a wit::Process>,
    /// Caller's position of each, in the host's counting order:
    /// connections, then queues, then processes.
    positions: [Vec<usize>; 3],
}

impl<'a> ByKind<'a> {
    fn push(&mut self, position: usize, target: sealed::Target<'a>) {
        let kind = match target {
            sealed::Target::Connection(c) => {
                self.connections.push(c);
                0
            }
            sealed::Target::Queue(q) => {
                self.queues.push(q);
                1
            }
            sealed::Target::Process(p) => {
                self.processes.push(p);
                2
            }
        };
        self.positions[kind].push(position);
    }

    /// The caller's positions for the host's, ascending.
    fn positions(&self, ready: &[u32]) -> Result<Vec<usize>> {
        let order: Vec<usize> = self.positions.concat();
        let mut out = ready
            .iter()
            .map(|&i| {
                order.get(i as usize).copied().ok_or_else(|| {
                    Error::Other(format!(
                        "wait: the host named object {i} of {}",
                        order.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
