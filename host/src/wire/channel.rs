//! One end of a parent/worker socket: frames out and in, with the file
//! descriptors that travel beside them.

use std::collections::VecDeque;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use super::{encode_frame, read_frame};
use crate::sys::ipc::{self, MAX_FDS_PER_MESSAGE};

/// Most descriptors received ahead of the frames that claim them; a peer
/// that sends more is broken or hostile.
const MAX_PENDING_FDS: usize = 4 * MAX_FDS_PER_MESSAGE;

/// The reading side: `recvmsg` so descriptors are collected, in order, as
/// the bytes they came with are buffered.
struct FdReader {
    socket: UnixStream,
    fds: VecDeque<OwnedFd>,
}

impl Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut fds = Vec::new();
        let got = ipc::recv(self.socket.as_fd(), buf, &mut fds, true);
        self.fds.extend(fds);
        if self.fds.len() > MAX_PENDING_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "peer sent descriptors no frame claims",
            ));
        }
        got
    }
}

/// Frames (and descriptors) over a Unix stream socket.
pub(crate) struct Channel {
    reader: BufReader<FdReader>,
    writer: UnixStream,
}

impl Channel {
    /// Wraps a connected socket.
    pub(crate) fn new(socket: UnixStream) -> io::Result<Self> {
        let writer = socket.try_clone()?;
        Ok(Channel {
            reader: BufReader::with_capacity(
                64 << 10,
                FdReader {
                    socket,
                    fds: VecDeque::new(),
                },
            ),
            writer,
        })
    }

    /// Sends `msg` with `fds` attached.
    ///
    /// # Errors
    ///
    /// I/O errors; a message over the frame limit.
    pub(crate) fn send<T: Serialize>(&mut self, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let frame = encode_frame(msg, fds.len())?;
        ipc::send_all(self.writer.as_fd(), &[&frame], fds)
    }

    /// Receives one message and the descriptors that came with it; `None`
    /// on a clean end of stream.
    ///
    /// # Errors
    ///
    /// I/O errors, a read timeout (`WouldBlock`), or a frame that breaks the
    /// protocol (`InvalidData`).
    pub(crate) fn recv<T: DeserializeOwned>(&mut self) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        let Some((msg, n)) = read_frame(&mut self.reader)? else {
            return Ok(None);
        };
        let pending = &mut self.reader.get_mut().fds;
        if pending.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame claims descriptors that did not arrive",
            ));
        }
        Ok(Some((msg, pending.drain(..n).collect())))
    }

    /// Limits how long [`recv`](Channel::recv) blocks (`None`: forever).
    pub(crate) fn set_read_timeout(&self, limit: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().socket.set_read_timeout(limit)
    }

    /// A second handle on the socket (to shut it down from another thread).
    pub(crate) fn socket(&self) -> io::Result<UnixStream> {
        self.writer.try_clone()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn frames_and_descriptors_arrive_paired() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        let (x, _y) = ipc::socketpair(None).unwrap();
        a.send(&"no fds".to_string(), &[]).unwrap();
        a.send(&"two fds".to_string(), &[x.as_fd(), x.as_fd()])
            .unwrap();
        a.send(&"none again".to_string(), &[]).unwrap();
        let got: Vec<(String, usize)> = (0..3)
            .map(|_| {
                let (m, fds) = b.recv::<String>().unwrap().unwrap();
                (m, fds.len())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("no fds".into(), 0),
                ("two fds".into(), 2),
                ("none again".into(), 0)
            ]
        );
        drop(a);
        assert!(b.recv::<String>().unwrap().is_none());
    }

    #[test]
    fn a_frame_claiming_missing_descriptors_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut b = Channel::new(b).unwrap();
        let frame = encode_frame(&7u32, 3).unwrap();
        ipc::send_all(a.as_fd(), &[&frame], &[]).unwrap();
        let err = b.recv::<u32>().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
