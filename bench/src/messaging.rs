//! W3 (queue ping-pong), W4 (pipe throughput) and W8 (queue MPMC) of
//! `shared/BENCH.md`: the guest `examples/bench_msg` under `mpwasm run`,
//! `cpython_bench.py`, and the native reference measured here in the same run.
//!
//! The native references are the same operation in plain Rust: W3 and W4
//! between this program and a copy of itself started as a helper
//! ([`native_helper`]) over its stdin/stdout pipes, W8 between threads
//! sharing one pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::Instant;

use crate::{cpython, median};

/// Selects a native helper mode when this program is started as one.
const HELPER_ENV: &str = "MPWASM_BENCH_NATIVE";
/// W3: round trips of a small int.
pub(crate) const ROUND_TRIPS: u32 = 20_000;
/// W4: messages of `MESSAGE_BYTES` through a simplex pipe.
const MESSAGES: usize = 1024;
const MESSAGE_BYTES: usize = 1 << 20;
/// W8: producers × consumers, messages per producer, bound of the queue.
const PRODUCERS: u64 = 4;
const CONSUMERS: usize = 4;
const PER_PRODUCER: u64 = 50_000;
const MAXSIZE: usize = 1000;
const TOTAL: u64 = PRODUCERS * PER_PRODUCER;

/// Where the mpwasm side runs: the `mpwasm` binary and the guest.
pub struct Guest<'a> {
    pub mpwasm: &'a Path,
    pub wasm: &'a Path,
}

impl Guest<'_> {
    /// `mpwasm run bench_msg.wasm <which>`: its one line of JSON.
    pub fn run(&self, which: &str) -> serde_json::Value {
        let out = Command::new(self.mpwasm)
            .arg("run")
            .arg(self.wasm)
            .arg(which)
            .output()
            .expect("mpwasm run");
        assert!(
            out.status.success(),
            "mpwasm run bench_msg.wasm {which}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text:?}"))
    }
}

fn figure(json: &serde_json::Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
}

/// One repetition's figures: mpwasm, CPython, native.
type Sample = [f64; 3];

/// `reps` repetitions, each running the three sides one after the other so
/// that they meet the same machine load; medians of each side, and the
/// median of the per-repetition ratios mpwasm/native.
fn interleaved(reps: usize, mut sample: impl FnMut() -> Sample) -> (Sample, f64) {
    let samples: Vec<Sample> = (0..reps).map(|_| sample()).collect();
    let side = |i: usize| median(samples.iter().map(|s| s[i]).collect());
    let ratio = median(samples.iter().map(|s| s[0] / s[2]).collect());
    ([side(0), side(1), side(2)], ratio)
}

/// Runs `f` with this thread (and so every process it starts) on CPU 0.
pub(crate) fn on_one_cpu<T>(f: impl FnOnce() -> T) -> T {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
    let all = sched_getaffinity(None).expect("sched_getaffinity");
    let mut one = CpuSet::new();
    one.set(0);
    sched_setaffinity(None, &one).expect("sched_setaffinity");
    let out = f();
    sched_setaffinity(None, &all).expect("sched_setaffinity");
    out
}

/// Runs a native helper and exits if this process was started as one.
pub fn native_helper() {
    let Ok(mode) = std::env::var(HELPER_ENV) else {
        return;
    };
    let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned().unwrap());
    let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned().unwrap());
    match mode.as_str() {
        "echo" => echo(stdin, stdout),
        "send" => send_mib(stdout),
        "filtered-echo" => {
            assert!(mpwasm::benchmarking::lock_down_like_a_worker());
            echo(stdin, stdout);
        }
        "filtered-ping" => {
            assert!(mpwasm::benchmarking::lock_down_like_a_worker());
            let us = ping(stdout, stdin);
            eprintln!("{us}");
        }
        other => match other.strip_prefix("boundary-") {
            Some(kind) => crate::boundary::helper(kind),
            None => panic!("unknown {HELPER_ENV}={other}"),
        },
    }
    std::process::exit(0);
}

/// This program again, as the helper `mode`.
fn helper(mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(HELPER_ENV, mode);
    cmd
}

/// [`helper`] `mode`, started with piped stdin and stdout.
fn spawn_helper(mode: &str) -> std::process::Child {
    helper(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start native helper")
}

/// W3's helper: sends back every 4-byte int until end of file.
fn echo(mut input: File, mut output: File) {
    let mut buf = [0; 4];
    while input.read_exact(&mut buf).is_ok() {
        output.write_all(&buf).unwrap();
    }
}

/// W3 native: µs per round trip of a 4-byte int over two OS pipes.
pub(crate) fn native_ping_pong() -> f64 {
    let mut child = spawn_helper("echo");
    let (ping_end, pong_end) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let us = ping(ping_end, pong_end);
    child.wait().unwrap();
    us
}

/// W3's native round trips, sent on `out` and echoed back on `back`: µs
/// per round trip. Closes `out` at the end, which ends the echo.
fn ping(mut out: impl Write, mut back: impl Read) -> f64 {
    let mut round_trip = |i: u32| {
        let mut buf = [0; 4];
        out.write_all(&i.to_le_bytes()).unwrap();
        back.read_exact(&mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), i);
    };
    round_trip(0);
    let t = Instant::now();
    (0..ROUND_TRIPS).for_each(&mut round_trip);
    let secs = t.elapsed().as_secs_f64();
    secs * 1e6 / f64::from(ROUND_TRIPS)
}

/// A ping-pong between two helpers of this program, `echo` and `ping`,
/// joined by two pipes; what `ping` says on stderr (µs per round trip).
/// W3's native reference under a worker's seccomp filters
/// ([`mpwasm::benchmarking::lock_down_like_a_worker`]), as every mpwasm
/// worker is, is `filtered-echo` and `filtered-ping` (this process cannot
/// take part: the filters would stop it starting processes).
pub(crate) fn filtered_ping_pong(echo: &str, ping: &str) -> f64 {
    let cloexec = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let (to_echo_r, to_echo_w) = cloexec();
    let (to_ping_r, to_ping_w) = cloexec();
    let mut echo = helper(echo)
        .stdin(Stdio::from(to_echo_r))
        .stdout(Stdio::from(to_ping_w))
        .spawn()
        .expect("start native helper");
    let pinger = helper(ping)
        .stdin(Stdio::from(to_ping_r))
        .stdout(Stdio::from(to_echo_w))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start native helper");
    let out = pinger.wait_with_output().expect("the pinging helper");
    echo.wait().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{ping} said {text:?}"))
}

/// W3: two processes, two queues, 20k round trips of a small int; unpinned,
/// then with every process on one CPU (no cross-CPU wakeups: what is left
/// is the software's own cost).
pub fn w3(guest: &Guest, py: &Path) {
    let key = "us_per_round_trip";
    for (label, reps) in [("", 5), (", all on one CPU", 3)] {
        // mpwasm's figure and the filtered native one of each repetition.
        let mut filtered = Vec::new();
        let sample = || {
            let ours = figure(&guest.run("w3"), key);
            let theirs = figure(&cpython(py, "w3"), key);
            let native = native_ping_pong();
            filtered.push((ours, filtered_ping_pong("filtered-echo", "filtered-ping")));
            [ours, theirs, native]
        };
        let ([ours, theirs, native], ratio) = if label.is_empty() {
            interleaved(reps, sample)
        } else {
            on_one_cpu(|| interleaved(reps, sample))
        };
        // The same round trips with both native processes under a
        // worker's seccomp filters: the sandbox's own share.
        let under_filter = median(filtered.iter().map(|f| f.1).collect());
        let filtered_ratio = median(filtered.iter().map(|(o, f)| o / f).collect());
        println!(
            "| W3 | queue ping-pong, 20k round trips{label} | {ours:.1} µs ({ratio:.2}× native; {filtered_ratio:.2}× native under a worker's seccomp filters) | {theirs:.1} µs | {:.1}× faster | {native:.1} µs (pipe ping-pong); {under_filter:.1} µs under a worker's seccomp filters | ≤ 1.3× native |",
            theirs / ours
        );
    }
}

/// W4's helper: enlarges its stdout pipe to 1 MiB, then writes a ready
/// byte and the 1 GiB.
fn send_mib(mut output: File) {
    rustix::pipe::fcntl_setpipe_size(&output, MESSAGE_BYTES).expect("F_SETPIPE_SZ");
    let buf = vec![7_u8; MESSAGE_BYTES];
    output.write_all(b"r").unwrap();
    for _ in 0..MESSAGES {
        output.write_all(&buf).unwrap();
    }
}

/// W4 native: GB/s of 1 MiB × 1024 through a pipe enlarged to 1 MiB.
fn native_pipe_throughput() -> f64 {
    let mut child = spawn_helper("send");
    drop(child.stdin.take());
    let mut input = child.stdout.take().unwrap();
    let mut buf = vec![0_u8; MESSAGE_BYTES];
    input.read_exact(&mut buf[..1]).unwrap();
    assert_eq!(buf[0], b'r');
    let t = Instant::now();
    for _ in 0..MESSAGES {
        input.read_exact(&mut buf).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    child.wait().unwrap();
    (MESSAGES * MESSAGE_BYTES) as f64 / secs / 1e9
}

/// W4: a child sends 1 MiB × 1024 through a simplex pipe.
pub fn w4(guest: &Guest, py: &Path) {
    let key = "gb_per_s";
    let ([ours, theirs, native], _) = interleaved(3, || {
        [
            figure(&guest.run("w4"), key),
            figure(&cpython(py, "w4"), key),
            native_pipe_throughput(),
        ]
    });
    println!(
        "| W4 | pipe throughput, 1 MiB × 1024 | {ours:.2} GB/s | {theirs:.2} GB/s | {:.1}× faster | {native:.2} GB/s (pipe enlarged to 1 MiB) | ≥ 2 GB/s |",
        ours / theirs
    );
}

/// W8 native: msgs/s of 4 + 4 threads through one shared pipe of about
/// `MAXSIZE` 8-byte messages (a pipe write up to `PIPE_BUF` is atomic, so
/// every read of 8 bytes is one whole message).
fn native_mpmc() -> f64 {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    rustix::pipe::fcntl_setpipe_size(&writer, MAXSIZE * 8).unwrap();
    let (reader, writer) = (File::from(reader), File::from(writer));
    let start = Barrier::new(PRODUCERS as usize + CONSUMERS + 1);
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (mut writer, start) = (&writer, &start);
                s.spawn(move || {
                    start.wait();
                    for msg in p * PER_PRODUCER..(p + 1) * PER_PRODUCER {
                        writer.write_all(&msg.to_le_bytes()).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let (mut reader, start) = (&reader, &start);
                s.spawn(move || {
                    let mut seen = Seen::default();
                    start.wait();
                    let mut buf = [0; 8];
                    loop {
                        reader.read_exact(&mut buf).unwrap();
                        match u64::from_le_bytes(buf) {
                            u64::MAX => return seen,
                            msg => seen.mark(msg),
                        }
                    }
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        producers.into_iter().for_each(|p| p.join().unwrap());
        for _ in 0..CONSUMERS {
            (&writer).write_all(&u64::MAX.to_le_bytes()).unwrap();
        }
        let seen: Vec<Seen> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        let secs = t.elapsed().as_secs_f64();
        assert!(Seen::exactly_once(&seen), "native W8 lost or repeated");
        TOTAL as f64 / secs
    })
}

/// Which of the `TOTAL` messages one consumer got, and how many twice.
struct Seen {
    bits: Vec<u64>,
    count: u64,
    repeats: u64,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            bits: vec![0; TOTAL.div_ceil(64) as usize],
            count: 0,
            repeats: 0,
        }
    }
}

impl Seen {
    fn mark(&mut self, msg: u64) {
        let (word, bit) = ((msg / 64) as usize, 1 << (msg % 64));
        self.repeats += u64::from(self.bits[word] & bit != 0);
        self.bits[word] |= bit;
        self.count += 1;
    }

    /// Every message got by exactly one consumer, once.
    fn exactly_once(all: &[Seen]) -> bool {
        let mut union = Seen::default();
        let mut overlap = false;
        for s in all {
            for (u, b) in union.bits.iter_mut().zip(&s.bits) {
                overlap |= *u & b != 0;
                *u |= b;
            }
        }
        let ones: u64 = union.bits.iter().map(|w| u64::from(w.count_ones())).sum();
        let count: u64 = all.iter().map(|s| s.count).sum();
        !overlap && ones == TOTAL && count == TOTAL && all.iter().all(|s| s.repeats == 0)
    }
}

/// W8: 4 producers × 4 consumers, 50k messages each through one queue of
/// maxsize 1000, every message received exactly once.
pub fn w8(guest: &Guest, py: &Path) {
    let key = "msgs_per_s";
    let exactly_once = |run: serde_json::Value| {
        assert_eq!(run["exactly_once"], true, "W8 lost or repeated: {run}");
        figure(&run, key)
    };
    let ([ours, theirs, native], _) = interleaved(3, || {
        [
            exactly_once(guest.run("w8")),
            exactly_once(cpython(py, "w8")),
            native_mpmc(),
        ]
    });
    println!(
        "| W8 | queue MPMC, 4 × 4 processes, 200k msgs, maxsize 1000, exactly once | {:.0} k msgs/s | {:.0} k msgs/s | {:.1}× faster | {:.2} M msgs/s (4 + 4 threads, one shared pipe) | ≥ 1 M msgs/s |",
        ours / 1e3,
        theirs / 1e3,
        ours / theirs,
        native / 1e6
    );
}
