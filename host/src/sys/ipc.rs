//! The OS objects messages travel through: socketpairs that carry file
//! descriptors, packet-mode pipes, `poll`, memfds, shared pages and
//! futexes.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// Most descriptors one message may carry; more is a protocol violation.
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 8;

/// Socket buffer size asked for (the kernel caps it at `wmem_max`).
const SOCKET_BUFFER: usize = 4 << 20;

/// A connected pair of Unix stream sockets (pipes' connections),
/// close-on-exec, with buffers of `buffer` bytes asked for (`None`: the
/// kernel's default).
pub(crate) fn socketpair(buffer: Option<usize>) -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    if let Some(size) = buffer {
        for fd in [&a, &b] {
            set_buffers(fd.as_fd(), size);
        }
    }
    Ok((a, b))
}

/// Asks for `size`-byte send and receive buffers on `fd`: past the
/// system's maximum where allowed (`CAP_NET_ADMIN`), else up to it.
fn set_buffers(fd: BorrowedFd<'_>, size: usize) {
    use rustix::net::sockopt;
    if sockopt::set_socket_send_buffer_size_force(fd, size).is_err() {
        let _ = sockopt::set_socket_send_buffer_size(fd, size);
    }
    if sockopt::set_socket_recv_buffer_size_force(fd, size).is_err() {
        let _ = sockopt::set_socket_recv_buffer_size(fd, size);
    }
}

/// Enlarges a socket's buffers to a few MiB ([`SOCKET_BUFFER`] asked; the
/// kernel doubles it, up to twice `wmem_max`).
pub(crate) fn enlarge(fd: BorrowedFd<'_>) {
    set_buffers(fd, SOCKET_BUFFER);
}

/// The send buffer the kernel gave `fd`, in bytes (what unread data on it
/// may take of the kernel's memory).
#[cfg(test)]
pub(crate) fn send_buffer(fd: BorrowedFd<'_>) -> io::Result<usize> {
    Ok(rustix::net::sockopt::socket_send_buffer_size(fd)?)
}

/// Sends `parts` as one message with `fds` attached. With `wait` false the
/// call fails with `WouldBlock` instead of blocking. Returns the bytes sent
/// (a stream socket may take fewer than offered).
pub(crate) fn send(
    socket: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[BorrowedFd<'_>],
    wait: bool,
) -> io::Result<usize> {
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let mut flags = SendFlags::NOSIGNAL;
    if !wait {
        flags |= SendFlags::DONTWAIT;
    }
    loop {
        match rustix::net::sendmsg(socket, &iov, &mut control, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Sends all of `parts`, back to back, on a stream socket, `fds` with the
/// first byte (the socket may take fewer bytes per call than offered).
pub(crate) fn send_all(
    socket: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    let mut fds = fds;
    while !parts.is_empty() {
        let mut n = send(socket, &parts, fds, true)?;
        fds = &[];
        while n > 0 {
            let taken = n.min(parts[0].len());
            parts[0] = &parts[0][taken..];
            n -= taken;
            if parts[0].is_empty() {
                parts.remove(0);
            }
        }
    }
    Ok(())
}

/// The largest packet of a packet-mode pipe ([`packet_pipe`]): `PIPE_BUF`,
/// one page. A longer write would be split into several packets.
pub(crate) const PACKET_MAX: usize = 4096;

/// The most parts [`write_packet`] gathers into one packet.
pub(crate) const PACKET_PARTS: usize = 4;

/// A packet-mode pipe (`pipe2(O_DIRECT)`), close-on-exec, as (read end,
/// write end): each write of at most [`PACKET_MAX`] bytes is one packet,
/// and each read takes one whole packet (or nothing), so that several
/// readers and writers share it and every packet goes to exactly one
/// reader. Each packet takes a page of the pipe whatever its length: the
/// pipe holds `bytes / 4096` of them; `bytes` is asked for and may be
/// refused (the user's pipe pages are over `pipe-user-pages-soft`, or
/// `bytes` is over `pipe-max-size`), leaving the kernel's default: 16,
/// or 2 for a user past the soft limit.
/// The read end blocks and the write end does not (each end is a file
/// description of its own, shared by every process holding it):
/// [`write_packet`] and [`read_packet`] say, per call, whether to wait.
pub(crate) fn packet_pipe(bytes: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};
    let (read, write) = pipe_with(PipeFlags::DIRECT | PipeFlags::CLOEXEC)?;
    let _ = fcntl_setpipe_size(&write, bytes);
    // A write that finds no room fails at once, so that a writer needs no
    // `pwritev2(RWF_NOWAIT)` (whose I/O vector the kernel copies in). The
    // status flags keep `O_DIRECT`, which the kernel would not set again.
    fcntl_setfl(&write, fcntl_getfl(&write)? | OFlags::NONBLOCK)?;
    Ok((read, write))
}

/// The bytes of pages a pipe holds (what unread packets in it may take of
/// the kernel's memory).
pub(crate) fn pipe_size(fd: BorrowedFd<'_>) -> io::Result<usize> {
    Ok(rustix::pipe::fcntl_getpipe_size(fd)?)
}

/// The offset that makes `preadv2`/`pwritev2` use the file position (a
/// pipe has none): -1.
const NO_OFFSET: u64 = u64::MAX;

/// Writes `parts` as one packet on a [`packet_pipe`]'s write end; with
/// `wait` false, fails with `WouldBlock` instead of waiting for room.
/// `parts` must total at most [`PACKET_MAX`] bytes.
pub(crate) fn write_packet(pipe: BorrowedFd<'_>, parts: &[&[u8]], wait: bool) -> io::Result<()> {
    /// What one system call writes.
    enum Out<'a> {
        /// One buffer, for `write`.
        Whole(&'a [u8]),
        /// Several, for `writev`.
        Gathered(&'a [IoSlice<'a>]),
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    debug_assert!(total <= PACKET_MAX);
    if parts.len() > PACKET_PARTS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a packet of too many parts",
        ));
    }
    // A small packet is copied into one buffer for a plain `write`: the
    // kernel's path for `writev` copies in an I/O vector first.
    // Zeroed only when used (a staged put's packet is one part).
    let mut small: [u8; SMALL_PACKET];
    let mut slices = [IoSlice::new(&[]); PACKET_PARTS];
    let out = match parts {
        [one] => Out::Whole(one),
        _ if total <= SMALL_PACKET => {
            small = [0u8; SMALL_PACKET];
            let mut at = 0;
            for part in parts {
                small[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            Out::Whole(&small[..total])
        }
        _ => {
            let iov = &mut slices[..parts.len()];
            for (slot, part) in iov.iter_mut().zip(parts) {
                *slot = IoSlice::new(part);
            }
            Out::Gathered(iov)
        }
    };
    loop {
        let wrote = match out {
            Out::Whole(bytes) => rustix::io::write(pipe, bytes),
            Out::Gathered(iov) => rustix::io::writev(pipe, iov),
        };
        match wrote {
            // At most `PIPE_BUF` bytes: all of them or none.
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) if wait => {
                poll_writable(pipe, Deadline::after(None))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The longest packet of several parts that [`write_packet`] copies into
/// one buffer.
const SMALL_PACKET: usize = 512;

/// Reads one packet of a [`packet_pipe`] into `buf` (a packet longer than
/// `buf` loses its rest); its length. With `wait` false, fails with
/// `WouldBlock` when there is none (`RWF_NOWAIT`). 0 is end of file: every
/// write end is closed.
pub(crate) fn read_packet(pipe: BorrowedFd<'_>, buf: &mut [u8], wait: bool) -> io::Result<usize> {
    loop {
        // A plain `read` when waiting: the kernel's path for `preadv2`
        // copies in an I/O vector first.
        let got = if wait {
            rustix::io::read(pipe, &mut *buf)
        } else {
            let mut iov = [IoSliceMut::new(&mut *buf)];
            rustix::io::preadv2(
                pipe,
                &mut iov,
                NO_OFFSET,
                rustix::io::ReadWriteFlags::NOWAIT,
            )
        };
        match got {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Receives into `buf`, appending any descriptors that arrive to `fds`
/// (beyond [`MAX_FDS_PER_MESSAGE`] the kernel closes them); the bytes
/// read. With `wait` false, fails with `WouldBlock` when nothing is there.
/// 0 is end of file.
pub(crate) fn recv(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    wait: bool,
) -> io::Result<usize> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if !wait {
        flags |= RecvFlags::DONTWAIT;
    }
    let msg = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(socket, &mut iov, &mut control, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok(msg.bytes)
}

/// Waits until one of `fds` is readable (or hung up), or the deadline
/// passes. Returns which are ready (all false on timeout).
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], deadline: Deadline) -> io::Result<Vec<bool>> {
    use rustix::event::{PollFd, PollFlags};
    let ready = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
    loop {
        let mut polls: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        let timeout = deadline.remaining().map(timespec);
        match rustix::event::poll(&mut polls, timeout.as_ref()) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {
                return Ok(polls
                    .iter()
                    .map(|p| p.revents().intersects(ready))
                    .collect())
            }
        }
    }
}

/// Waits until `fd` has room to send, or the deadline passes; whether it has.
pub(crate) fn poll_writable(fd: BorrowedFd<'_>, deadline: Deadline) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags};
    loop {
        let mut polls = [PollFd::new(&fd, PollFlags::OUT)];
        let timeout = deadline.remaining().map(timespec);
        match rustix::event::poll(&mut polls, timeout.as_ref()) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(polls[0].revents().contains(PollFlags::OUT)),
        }
    }
}

/// When a blocking operation gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// A deadline `timeout_ms` from now; `None` never passes.
    pub(crate) fn after_ms(timeout_ms: Option<u64>) -> Self {
        Deadline(
            timeout_ms.map(|ms| {
                Instant::now() + Duration::from_millis(ms.min(u64::from(u32::MAX) * 1000))
            }),
        )
    }

    /// A deadline `timeout` from now; `None` never passes.
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        Deadline(timeout.map(|t| Instant::now() + t))
    }

    /// Time left (zero once passed); `None` for no deadline.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether it has passed.
    pub(crate) fn passed(&self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }

    /// The earlier of the two.
    pub(crate) fn earlier(self, other: Deadline) -> Self {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Deadline(Some(a.min(b))),
            (a, b) => Deadline(a.or(b)),
        }
    }
}

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Memory shared by every process holding its memfd: queue counters,
/// futex words, locks, `Value`s and `SharedMemory`.
pub(crate) struct SharedMap {
    map: memmap2::MmapMut,
    fd: OwnedFd,
}

impl SharedMap {
    /// A queue's or primitive's page: room for this many `u32` words.
    pub(crate) const PAGE_WORDS: usize = 1024;

    /// A new zeroed mapping of `len` bytes (at least 1).
    pub(crate) fn create(name: &str, len: usize) -> io::Result<Self> {
        let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, len.max(1) as u64)?;
        Self::map(fd, len.max(1))
    }

    /// A new zeroed page of [`PAGE_WORDS`](SharedMap::PAGE_WORDS) words.
    pub(crate) fn page(name: &str) -> io::Result<Self> {
        Self::create(name, Self::PAGE_WORDS * 4)
    }

    /// Maps a memfd received from the broker, which must be exactly `len`
    /// bytes: a smaller one would fault on access.
    pub(crate) fn map(fd: OwnedFd, len: usize) -> io::Result<Self> {
        let file = std::fs::File::from(fd);
        if file.metadata()?.len() != len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared memory of the wrong size",
            ));
        }
        // SAFETY: the memfd is the broker's, never truncated after creation
        // (its size was just checked). Other processes write it
        // concurrently: every access goes through atomics or through the
        // raw-pointer copies of `SharedMap::read`/`write`, never through
        // references to its bytes.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&file)? };
        Ok(SharedMap {
            map,
            fd: OwnedFd::from(file),
        })
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The first byte.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }

    /// Word `i` (panics beyond the mapping: indices are constants).
    pub(crate) fn word(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 4 <= self.len());
        // SAFETY: in bounds (checked), 4-aligned (the mapping is
        // page-aligned), alive as long as `self`; AtomicU32 has u32's layout.
        unsafe { &*(self.map.as_ptr() as *const AtomicU32).add(i) }
    }

    /// The 64-bit word at words `i` and `i + 1` (`i` even; panics beyond
    /// the mapping or on an odd index: indices are constants). Its low half
    /// is [`word(i)`](Self::word) on this little-endian target, which a
    /// futex can wait on.
    pub(crate) fn word64(&self, i: usize) -> &AtomicU64 {
        assert!(i % 2 == 0 && (i + 2) * 4 <= self.len());
        // SAFETY: in bounds (checked), 8-aligned (an even word of a
        // page-aligned mapping), alive as long as `self`; AtomicU64 has
        // u64's layout.
        unsafe { &*(self.map.as_ptr() as *const AtomicU64).add(i / 2) }
    }

    /// The memfd, to hand to another process.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sleeps while `word` holds `expected`, until woken or the deadline.
/// Spurious returns are possible: callers re-check their condition.
///
/// Returns whether a wake-up ended the sleep (one counted in the return of
/// some [`futex_wake`]), as opposed to the word differing, the deadline, or
/// a signal.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    let timeout = deadline.remaining().map(timespec);
    // Shared (not PRIVATE): waiters and wakers are different processes.
    rustix::thread::futex::wait(
        word,
        rustix::thread::futex::Flags::empty(),
        expected,
        timeout.as_ref(),
    )
    .is_ok()
}

/// Wakes up to `n` processes sleeping on `word`; how many it woke.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> u32 {
    rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), n)
        .map_or(0, |woken| u32::try_from(woken).unwrap_or(u32::MAX))
}

/// Wakes every process sleeping on `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    let _ =
        rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), i32::MAX as u32);
}

#[cfg(test)]
mod test {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn sockets_carry_descriptors() {
        let (a, b) = socketpair(None).unwrap();
        let page = SharedMap::page("test").unwrap();
        page.word(3).store(42, Ordering::SeqCst);
        send(a.as_fd(), &[b"he", b"llo"], &[page.fd()], true).unwrap();
        let mut fds = Vec::new();
        let mut buf = [0u8; 64];
        let len = recv(b.as_fd(), &mut buf, &mut fds, false).unwrap();
        assert_eq!(&buf[..len], b"hello");
        assert_eq!(fds.len(), 1);
        let other = SharedMap::map(fds.pop().unwrap(), SharedMap::PAGE_WORDS * 4).unwrap();
        assert_eq!(other.word(3).load(Ordering::SeqCst), 42);
        let err = recv(b.as_fd(), &mut buf, &mut fds, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    /// What queues rely on: a write of up to a page is one packet, read
    /// whole by one read (a gathered write too), and never merged with the
    /// next; a full pipe refuses a write without waiting; an empty one a
    /// read.
    #[test]
    fn packet_pipes_keep_packets_whole() {
        let (read, write) = packet_pipe(4 * PACKET_MAX).unwrap();
        let mut buf = vec![0u8; PACKET_MAX];
        let err = read_packet(read.as_fd(), &mut buf, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        write_packet(write.as_fd(), &[b"\x00", b"hello"], false).unwrap();
        write_packet(write.as_fd(), &[b"!"], false).unwrap();
        let page = vec![7u8; PACKET_MAX];
        write_packet(write.as_fd(), &[&page], false).unwrap();
        let too_many = [&b"x"[..]; PACKET_PARTS + 1];
        let err = write_packet(write.as_fd(), &too_many, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "nothing written");
        assert_eq!(read_packet(read.as_fd(), &mut buf, false).unwrap(), 6);
        assert_eq!(&buf[..6], b"\x00hello");
        assert_eq!(read_packet(read.as_fd(), &mut buf, true).unwrap(), 1);
        assert_eq!(
            read_packet(read.as_fd(), &mut buf, false).unwrap(),
            PACKET_MAX
        );
        // The four pages asked for: four packets, of one page each,
        // whatever their length.
        let mut held = 0;
        while write_packet(write.as_fd(), &[b"x"], false).is_ok() {
            held += 1;
        }
        assert_eq!(held, 4, "one-byte packets");
        assert_eq!(pipe_size(write.as_fd()).unwrap(), 4 * PACKET_MAX);
        // A writer that waits gets in once a reader makes room; a large
        // packet of several parts goes in whole as well.
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut buf = vec![0u8; PACKET_MAX];
            let len = read_packet(read.as_fd(), &mut buf, true).unwrap();
            (read, len)
        });
        let big = vec![5u8; 3000];
        write_packet(write.as_fd(), &[b"\x01", &big], true).unwrap();
        let (read, first) = reader.join().unwrap();
        assert_eq!(first, 1, "the reader took the oldest packet");
        drop(write);
        for _ in 1..held {
            assert_eq!(read_packet(read.as_fd(), &mut buf, false).unwrap(), 1);
        }
        assert_eq!(read_packet(read.as_fd(), &mut buf, false).unwrap(), 3001);
        assert_eq!((buf[0], &buf[1..3001]), (1, &big[..]));
        assert_eq!(
            read_packet(read.as_fd(), &mut buf, true).unwrap(),
            0,
            "end of file"
        );
    }

    #[test]
    fn send_all_delivers_every_part_in_order_past_the_socket_buffer() {
        let (a, b) = socketpair(None).unwrap();
        let big: Vec<u8> = (0..(8 << 20)).map(|i| (i % 251) as u8).collect();
        let expected: Vec<u8> = [&b"head"[..], &[], &big].concat();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut fds = Vec::new();
            loop {
                let r = recv(b.as_fd(), &mut buf, &mut fds, true).unwrap();
                if r == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..r]);
            }
        });
        send_all(a.as_fd(), &[b"head", &[], &big], &[]).unwrap();
        drop(a);
        assert!(reader.join().unwrap() == expected);
    }

    #[test]
    fn poll_times_out_and_sees_hangup() {
        let (a, b) = socketpair(None).unwrap();
        let ready = poll_readable(
            &[b.as_fd()],
            Deadline::after(Some(Duration::from_millis(10))),
        )
        .unwrap();
        assert_eq!(ready, [false]);
        drop(a);
        let ready = poll_readable(&[b.as_fd()], Deadline::after(None)).unwrap();
        assert_eq!(ready, [true]);
    }

    #[test]
    fn buffers_are_the_kernels_default_until_a_large_message_needs_more() {
        let (a, _b) = socketpair(None).unwrap();
        let default = send_buffer(a.as_fd()).unwrap();
        enlarge(a.as_fd());
        let enlarged = send_buffer(a.as_fd()).unwrap();
        assert!(enlarged > default, "enlarged");
        assert!(enlarged as u64 <= crate::limits::PIPE_BUFFER_COST);
        let (q, _) = socketpair(Some(1 << 20)).unwrap();
        // The kernel doubles what is asked (or caps it at wmem_max).
        assert!(send_buffer(q.as_fd()).unwrap() <= 2 << 20);
    }

    #[test]
    fn futex_wait_returns_at_deadline() {
        let word = AtomicU32::new(1);
        let start = Instant::now();
        futex_wait(&word, 1, Deadline::after(Some(Duration::from_millis(20))));
        assert!(start.elapsed() >= Duration::from_millis(15));
        futex_wait(&word, 2, Deadline::after(None)); // value differs: returns at once
    }
}
