//! The rest of Python's queue and connection API: `shutdown` (3.13),
//! `close`/`join_thread`/`cancel_join_thread`, `send_bytes(buf, offset,
//! size)`.

use std::time::{Duration, Instant};

use mpwasm_guest::{pipe, JoinableQueue, Process, Queue, Result};

use crate::{ms, sleep_ms, PATIENCE};

/// Says it is ready, then reports how a blocking `get` ended.
#[mpwasm_guest::task]
fn get_report(q: Queue<u32>, ready: Queue<u8>, out: Queue<String>) -> Result<()> {
    ready.put(1)?;
    let got = q.get();
    out.put(format!("{got:?}"))
}

/// Says it is ready, then reports how a blocking `put` ended.
#[mpwasm_guest::task]
fn put_report(q: Queue<u32>, ready: Queue<u8>, out: Queue<String>) -> Result<()> {
    ready.put(1)?;
    let put = q.put(2);
    out.put(format!("{put:?}"))
}

/// Starts `task` on `q`, waits until it is about to block, and gives it
/// time to.
fn blocked(task: &str, q: &Queue<u32>, out: &Queue<String>) -> Result<Process> {
    let ready = Queue::<u8>::new()?;
    let mut p = Process::new(task, (q, &ready, out));
    p.start()?;
    ready.get_timeout(PATIENCE)?;
    sleep_ms(100);
    Ok(p)
}

/// `shutdown`: Python 3.13's `Queue.shutdown` across processes.
pub fn shutdown() -> Result<()> {
    // Not immediate: puts fail, gets take what is left, then fail.
    let q = Queue::<u32>::new()?;
    q.put(1)?;
    q.put(2)?;
    q.shutdown(false)?;
    println!("put after shutdown {:?}", q.put(3));
    let gets: Vec<_> = (0..3).map(|_| q.get_timeout(PATIENCE)).collect();
    println!("gets {gets:?}");
    println!("get_nowait {:?}", q.get_nowait());
    println!("qsize {}", q.qsize());

    // Immediate, on a joinable queue: the items go, join returns.
    let jq = JoinableQueue::<u32>::new()?;
    for x in 0..3 {
        jq.put(x)?;
    }
    jq.shutdown(true)?;
    println!("immediate get {:?}", jq.get_timeout(PATIENCE));
    println!(
        "immediate join {:?}",
        jq.join_timeout(Duration::from_secs(5))
    );
    println!("immediate qsize {}", jq.qsize());

    // Two consumers blocked in other processes both wake up.
    let empty = Queue::<u32>::new()?;
    let out = Queue::<String>::new()?;
    let mut consumers = vec![
        blocked("get_report", &empty, &out)?,
        blocked("get_report", &empty, &out)?,
    ];
    let t = Instant::now();
    empty.shutdown(false)?;
    let woke: Vec<_> = (0..2).map(|_| out.get_timeout(PATIENCE)).collect();
    println!("blocked gets {woke:?} after_ms {}", ms(t));
    for p in &mut consumers {
        p.join_timeout(PATIENCE)?;
    }

    // A producer blocked on a full queue wakes up too.
    let full = Queue::<u32>::with_maxsize(1)?;
    full.put(1)?;
    let mut producer = blocked("put_report", &full, &out)?;
    let t = Instant::now();
    full.shutdown(false)?;
    println!(
        "blocked put {:?} after_ms {}",
        out.get_timeout(PATIENCE),
        ms(t)
    );
    producer.join_timeout(PATIENCE)?;
    println!("left {:?}", full.get_timeout(PATIENCE));
    Ok(())
}

/// `join_thread`: `close`, `join_thread`, `cancel_join_thread`.
pub fn join_thread() -> Result<()> {
    let q = Queue::<u32>::new()?;
    q.put(1)?;
    println!("open join_thread is_err {}", q.join_thread().is_err());
    q.cancel_join_thread();
    q.close();
    println!("closed join_thread {:?}", q.join_thread());
    println!("closed put {:?}", q.put(2));
    Ok(())
}

/// `send_bytes_range`: Python's `send_bytes(buf, offset, size)`.
pub fn send_bytes_range() -> Result<()> {
    let (a, b) = pipe(true)?;
    let buf = b"abcdef";
    for (offset, size) in [(2, Some(3)), (4, None), (6, Some(0)), (0, None)] {
        let sent = a.send_bytes_range(buf, offset, size);
        let got = b
            .recv_bytes()
            .map(|m| String::from_utf8_lossy(&m).into_owned());
        println!("range {offset} {size:?} {sent:?} {got:?}");
    }
    for (offset, size) in [(7, None), (2, Some(5)), (usize::MAX, Some(2))] {
        println!(
            "bad {offset} {size:?} is_err {}",
            a.send_bytes_range(buf, offset, size).is_err()
        );
    }
    println!("nothing sent {:?}", b.poll(Some(Duration::ZERO)));
    Ok(())
}
