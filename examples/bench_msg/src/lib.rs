//! Benchmarks W3, W4, W6 and W8 of `BENCH.md`, run by `make bench` as
//! `mpwasm run bench_msg.wasm w3|w4|w6|w8` (and `w3 BYTES`: W3's round
//! trips with items of `BYTES` bytes; and `calls`: what a host call and a
//! put-then-get cost in one process, with no other process to switch to).
//! Each times itself with `Instant`
//! from after its processes have started (a first round trip or a ready
//! message) and prints one line of JSON; `bench/cpython_bench.py` runs the
//! same workloads with CPython's `multiprocessing`.

use std::time::Instant;

use mpwasm_guest::{pipe, Connection, Process, Queue};
use serde::{Deserialize, Serialize};

/// W3: round trips of a small int between two processes.
const ROUND_TRIPS: i64 = 20_000;
/// W4: messages of `MESSAGE_BYTES` sent through a simplex pipe.
const MESSAGES: usize = 1024;
const MESSAGE_BYTES: usize = 1 << 20;
/// W8: producers and consumers sharing one queue of `MAXSIZE`, and the
/// messages each producer puts.
const PRODUCERS: u64 = 4;
const CONSUMERS: usize = 4;
const PER_PRODUCER: u64 = 50_000;
const MAXSIZE: usize = 1000;
const TOTAL: u64 = PRODUCERS * PER_PRODUCER;

/// W3's other process: sends back every int it gets until a negative one.
#[mpwasm_guest::task]
fn echo(ping: Queue<i64>, pong: Queue<i64>) -> mpwasm_guest::Result<()> {
    loop {
        let x = ping.get()?;
        if x < 0 {
            return Ok(());
        }
        pong.put(x)?;
    }
}

/// `w3 BYTES`'s other process: sends back every item it gets until an
/// empty one.
#[mpwasm_guest::task]
fn echo_bytes(ping: Queue<Vec<u8>>, pong: Queue<Vec<u8>>) -> mpwasm_guest::Result<()> {
    loop {
        let x = ping.get()?;
        if x.is_empty() {
            return Ok(());
        }
        pong.put(x)?;
    }
}

/// W3 with items of `bytes` bytes: `ROUND_TRIPS / 10` round trips.
fn w3_bytes(bytes: usize) -> mpwasm_guest::Result<String> {
    let (ping, pong) = (Queue::<Vec<u8>>::new()?, Queue::<Vec<u8>>::new()?);
    let mut p = Process::new("echo_bytes", (&ping, &pong));
    p.start()?;
    let item = vec![7_u8; bytes.max(1)];
    ping.put(item.clone())?;
    assert_eq!(pong.get()?.len(), item.len());
    let rounds = ROUND_TRIPS / 10;
    let t = Instant::now();
    for _ in 0..rounds {
        ping.put(item.clone())?;
        assert_eq!(pong.get()?.len(), item.len());
    }
    let secs = t.elapsed().as_secs_f64();
    ping.put(Vec::new())?;
    p.join()?;
    Ok(format!(
        r#"{{"us_per_round_trip": {}}}"#,
        secs * 1e6 / rounds as f64
    ))
}

fn w3() -> mpwasm_guest::Result<String> {
    let (ping, pong) = (Queue::<i64>::new()?, Queue::<i64>::new()?);
    let mut p = Process::new("echo", (&ping, &pong));
    p.start()?;
    // The first round trip waits for the process to start: not timed.
    ping.put(0)?;
    assert_eq!(pong.get()?, 0);
    let t = Instant::now();
    for i in 0..ROUND_TRIPS {
        ping.put(i)?;
        assert_eq!(pong.get()?, i);
    }
    let secs = t.elapsed().as_secs_f64();
    ping.put(-1)?;
    p.join()?;
    Ok(format!(
        r#"{{"us_per_round_trip": {}}}"#,
        secs * 1e6 / ROUND_TRIPS as f64
    ))
}

/// W4's sender: a one-byte ready message, then the timed messages.
#[mpwasm_guest::task]
fn send_mib(writer: Connection) -> mpwasm_guest::Result<()> {
    let buf = vec![7_u8; MESSAGE_BYTES];
    writer.send_bytes(b"r")?;
    for _ in 0..MESSAGES {
        writer.send_bytes(&buf)?;
    }
    writer.close();
    Ok(())
}

fn w4() -> mpwasm_guest::Result<String> {
    let (reader, writer) = pipe(false)?;
    let mut p = Process::new("send_mib", &writer);
    p.start()?;
    writer.close();
    assert_eq!(reader.recv_bytes()?, b"r");
    let t = Instant::now();
    for _ in 0..MESSAGES {
        assert_eq!(reader.recv_bytes()?.len(), MESSAGE_BYTES);
    }
    let secs = t.elapsed().as_secs_f64();
    p.join()?;
    let bytes = (MESSAGES * MESSAGE_BYTES) as f64;
    Ok(format!(r#"{{"gb_per_s": {}}}"#, bytes / secs / 1e9))
}

/// What W8's producers and consumers tell main.
#[derive(Serialize, Deserialize)]
enum Report {
    /// Started; producers then wait for a go.
    Ready,
    /// A producer has put all its messages.
    Produced,
    /// A consumer got the sentinel: how many messages it got, which ones
    /// (one bit per message), and how many it had already got before.
    Consumed {
        count: u64,
        seen: Vec<u64>,
        repeats: u64,
    },
}

/// W8's producer: messages `first..first + PER_PRODUCER` once main says go.
#[mpwasm_guest::task]
fn produce(
    items: Queue<Option<u64>>,
    reports: Queue<Report>,
    go: Queue<()>,
    first: u64,
) -> mpwasm_guest::Result<()> {
    reports.put(Report::Ready)?;
    go.get()?;
    for msg in first..first + PER_PRODUCER {
        items.put(Some(msg))?;
    }
    reports.put(Report::Produced)
}

/// W8's consumer: marks each message it gets until the `None` sentinel.
#[mpwasm_guest::task]
fn consume(items: Queue<Option<u64>>, reports: Queue<Report>) -> mpwasm_guest::Result<()> {
    let mut seen = vec![0_u64; TOTAL.div_ceil(64) as usize];
    let (mut count, mut repeats) = (0, 0);
    reports.put(Report::Ready)?;
    while let Some(msg) = items.get()? {
        let (word, bit) = ((msg / 64) as usize, 1 << (msg % 64));
        repeats += u64::from(seen[word] & bit != 0);
        seen[word] |= bit;
        count += 1;
    }
    reports.put(Report::Consumed {
        count,
        seen,
        repeats,
    })
}

/// Checks that the consumers' reports add up to every message exactly once.
fn exactly_once(reports: &[(u64, Vec<u64>, u64)]) -> bool {
    let mut union = vec![0_u64; TOTAL.div_ceil(64) as usize];
    let mut overlap = false;
    for (_, seen, _) in reports {
        for (u, s) in union.iter_mut().zip(seen) {
            overlap |= *u & s != 0;
            *u |= s;
        }
    }
    let all = union.iter().map(|w| u64::from(w.count_ones())).sum::<u64>() == TOTAL;
    let count = reports.iter().map(|r| r.0).sum::<u64>() == TOTAL;
    all && count && !overlap && reports.iter().all(|r| r.2 == 0)
}

fn w8() -> mpwasm_guest::Result<String> {
    let items = Queue::<Option<u64>>::with_maxsize(MAXSIZE)?;
    let (reports, go) = (Queue::<Report>::new()?, Queue::<()>::new()?);
    let mut procs: Vec<Process> = (0..PRODUCERS)
        .map(|i| Process::new("produce", (&items, &reports, &go, i * PER_PRODUCER)))
        .chain((0..CONSUMERS).map(|_| Process::new("consume", (&items, &reports))))
        .collect();
    for p in &mut procs {
        p.start()?;
    }
    for _ in &procs {
        assert!(matches!(reports.get()?, Report::Ready));
    }
    let t = Instant::now();
    for _ in 0..PRODUCERS {
        go.put(())?;
    }
    let (mut produced, mut consumed) = (0, Vec::new());
    while consumed.len() < CONSUMERS {
        match reports.get()? {
            Report::Produced => {
                produced += 1;
                if produced == PRODUCERS {
                    for _ in 0..CONSUMERS {
                        items.put(None)?;
                    }
                }
            }
            Report::Consumed {
                count,
                seen,
                repeats,
            } => consumed.push((count, seen, repeats)),
            Report::Ready => unreachable!("every process was ready before go"),
        }
    }
    let secs = t.elapsed().as_secs_f64();
    for p in &mut procs {
        p.join()?;
    }
    let once = exactly_once(&consumed);
    assert!(once, "W8: some message was lost or received twice");
    Ok(format!(
        r#"{{"msgs_per_s": {}, "exactly_once": {once}}}"#,
        TOTAL as f64 / secs
    ))
}

/// W6's process: its first answer.
#[mpwasm_guest::task]
fn answer(q: Queue<u8>) -> mpwasm_guest::Result<()> {
    q.put(1)
}

/// W6: `Process` start to its first answer, and start + join, 50 times in
/// sequence (CPython's `Process(target=noop).start(); join()`).
fn w6() -> mpwasm_guest::Result<String> {
    let q = Queue::<u8>::new()?;
    let (mut first, mut whole) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let t = Instant::now();
        let mut p = Process::new("answer", &q);
        p.start()?;
        q.get()?;
        first.push(t.elapsed().as_secs_f64() * 1000.0);
        p.join()?;
        whole.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(format!(
        r#"{{"first_ms": {}, "whole_ms": {}}}"#,
        median(first),
        median(whole)
    ))
}

/// The floor under W3 and W8: ns per `qsize` (a host call that does
/// nothing but find the queue) and per `put` + `get` of a small int in one
/// process (two host calls, a write and a read of the queue's pipe).
fn calls() -> mpwasm_guest::Result<String> {
    const CALLS: u32 = 200_000;
    let q: Queue<u32> = Queue::new()?;
    let t = Instant::now();
    let mut seen = 0;
    for _ in 0..CALLS {
        seen += q.qsize();
    }
    let qsize = t.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS);
    assert_eq!(seen, 0);
    let t = Instant::now();
    for i in 0..CALLS {
        q.put(i)?;
        assert_eq!(q.get()?, i);
    }
    let put_get = t.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS);
    Ok(format!(
        r#"{{"qsize_ns": {qsize}, "put_get_ns": {put_get}}}"#
    ))
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_default();
    let json = match which.as_str() {
        "w3" => match std::env::args().nth(2).map(|b| b.parse::<usize>()) {
            None => w3()?,
            Some(Ok(bytes)) => w3_bytes(bytes)?,
            Some(Err(e)) => panic!("w3 BYTES: {e}"),
        },
        "calls" => calls()?,
        "w4" => w4()?,
        "w6" => w6()?,
        "w8" => w8()?,
        other => panic!("usage: mpwasm run bench_msg.wasm w3|w4|w6|w8|calls (got {other:?})"),
    };
    println!("{json}");
    Ok(())
}
