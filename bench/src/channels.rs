//! The carrier under W3 (issue 12, item 3): µs per round trip of a 4-byte
//! message between two processes over each kernel channel a queue could be
//! carried on — a pipe, a packet-mode pipe (`pipe2(O_DIRECT)`: each write
//! up to `PIPE_BUF` one packet, each read one whole packet) and a
//! `SOCK_SEQPACKET` socketpair (what queues used before the packet pipe) —
//! unpinned and with both processes on one CPU. `mpwasm-bench w3chan`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::pipe::PipeFlags;

use crate::messaging::{on_one_cpu, ROUND_TRIPS};

/// Measurements per figure (the median is printed).
const REPS: usize = 3;

#[derive(Clone, Copy)]
enum Channel {
    Pipe,
    DirectPipe,
    SeqPacket,
}

/// A one-way channel: (read end, write end).
fn one_way(channel: Channel) -> (OwnedFd, OwnedFd) {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    match channel {
        Channel::Pipe => rustix::pipe::pipe_with(PipeFlags::CLOEXEC).unwrap(),
        Channel::DirectPipe => {
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::DIRECT).unwrap()
        }
        Channel::SeqPacket => socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap(),
    }
}

fn exchange(read: &OwnedFd, write: &OwnedFd, buf: &mut [u8; 4]) {
    rustix::io::write(write.as_fd(), &buf[..]).unwrap();
    let n = rustix::io::read(read.as_fd(), &mut buf[..]).unwrap();
    assert_eq!(n, 4, "a message arrived in pieces");
}

/// µs per round trip over two one-way channels of `channel`.
fn round_trip(channel: Channel) -> f64 {
    let (ping_r, ping_w) = one_way(channel);
    let (pong_r, pong_w) = one_way(channel);
    // SAFETY: the child only makes async-signal-safe calls (read, write,
    // _exit), so forking a process with threads is fine.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    let mut buf = [0_u8; 4];
    if child == 0 {
        for _ in 0..ROUND_TRIPS {
            let n = rustix::io::read(ping_r.as_fd(), &mut buf[..]).unwrap_or(0);
            if n != 4 || rustix::io::write(pong_w.as_fd(), &buf[..]).is_err() {
                // SAFETY: ends the forked child at once.
                unsafe { libc::_exit(1) };
            }
        }
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    let t = Instant::now();
    for i in 0..ROUND_TRIPS {
        buf = i.to_le_bytes();
        exchange(&pong_r, &ping_w, &mut buf);
        assert_eq!(u32::from_le_bytes(buf), i);
    }
    let secs = t.elapsed().as_secs_f64();
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    secs * 1e6 / f64::from(ROUND_TRIPS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints one row per placement: pipe, O_DIRECT pipe and SOCK_SEQPACKET.
pub fn w3_channels() {
    let measure = || {
        [Channel::Pipe, Channel::DirectPipe, Channel::SeqPacket]
            .map(|c| median((0..REPS).map(|_| round_trip(c)).collect()))
    };
    for (label, [pipe, direct, seq]) in
        [("", measure()), (", both on one CPU", on_one_cpu(measure))]
    {
        println!(
            "| W3c | 4-byte round trip between two processes{label} | – | – | – | pipe {pipe:.1} µs; O_DIRECT pipe {direct:.1} µs ({:.2}× pipe); SOCK_SEQPACKET {seq:.1} µs ({:.2}× pipe) | choose the queue's carrier by measurement |",
            direct / pipe,
            seq / pipe
        );
    }
}
