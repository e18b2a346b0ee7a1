//! Queue scenarios: MPMC exactly-once and FIFO, bounded queues' timeouts,
//! an unbounded queue outliving its producer, `JoinableQueue`.

use std::time::{Duration, Instant};

use mpwasm_guest::{Error, JoinableQueue, Process, Queue, Result};

use crate::{arg, ms, sleep_ms, PATIENCE};

const PRODUCERS: u64 = 8;
const CONSUMERS: usize = 8;
const PER_PRODUCER: u64 = 12_500;
/// Tells a consumer to stop; no producer puts it.
const STOP: u64 = u64::MAX;

/// Puts `PER_PRODUCER` items `id << 32 | seq`, seq ascending.
#[mpwasm_guest::task]
fn mpmc_producer(q: Queue<u64>, id: u64) -> Result<()> {
    for seq in 0..PER_PRODUCER {
        q.put(id << 32 | seq)?;
    }
    Ok(())
}

/// Gets items until `STOP`, then hands main every item, in the order got.
#[mpwasm_guest::task]
fn mpmc_consumer(q: Queue<u64>, results: Queue<Vec<u64>>) -> Result<()> {
    let mut got = Vec::new();
    loop {
        match q.get()? {
            STOP => break,
            item => got.push(item),
        }
    }
    results.put(got)
}

/// `mpmc [MAXSIZE]`: 8 producers and 8 consumers share one queue (0:
/// unbounded). Prints `ok 100000` when every item was got exactly once and
/// each consumer saw each producer's items in the order put.
pub fn mpmc(args: &[String]) -> Result<()> {
    let maxsize: usize = arg(args, 0, 0);
    let q = Queue::<u64>::with_maxsize(maxsize)?;
    let results = Queue::<Vec<u64>>::new()?;
    let t = Instant::now();
    let mut consumers: Vec<Process> = (0..CONSUMERS)
        .map(|_| Process::new("mpmc_consumer", (&q, &results)))
        .collect();
    let mut producers: Vec<Process> = (0..PRODUCERS)
        .map(|id| Process::new("mpmc_producer", (&q, id)))
        .collect();
    for p in consumers.iter_mut().chain(&mut producers) {
        p.start()?;
    }
    for p in &mut producers {
        p.join()?;
    }
    println!("producers {:?}", exitcodes(&producers));
    for _ in 0..CONSUMERS {
        q.put(STOP)?;
    }
    let lists = (0..CONSUMERS)
        .map(|_| results.get_timeout(PATIENCE))
        .collect::<Result<Vec<_>>>()?;
    for p in &mut consumers {
        p.join()?;
    }
    println!("consumers {:?}", exitcodes(&consumers));
    println!("elapsed_ms {}", ms(t));
    check_exactly_once(&lists);
    Ok(())
}

fn exitcodes(ps: &[Process]) -> Vec<Option<i32>> {
    ps.iter().map(Process::exitcode).collect()
}

/// Every item seen exactly once over all consumers; per consumer, each
/// producer's items in ascending order.
fn check_exactly_once(lists: &[Vec<u64>]) {
    let total = PRODUCERS * PER_PRODUCER;
    let mut seen = vec![0_u32; total as usize];
    let (mut foreign, mut fifo_breaks) = (0, 0);
    for list in lists {
        let mut last: Vec<Option<u64>> = vec![None; PRODUCERS as usize];
        for &item in list {
            let (id, seq) = (item >> 32, item & 0xffff_ffff);
            if id >= PRODUCERS || seq >= PER_PRODUCER {
                foreign += 1;
                continue;
            }
            seen[(id * PER_PRODUCER + seq) as usize] += 1;
            let last = &mut last[id as usize];
            if last.is_some_and(|l| seq <= l) {
                fifo_breaks += 1;
            }
            *last = Some(seq);
        }
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let repeated = seen.iter().filter(|&&n| n > 1).count();
    let sizes: Vec<usize> = lists.iter().map(Vec::len).collect();
    println!("per_consumer {sizes:?}");
    println!("missing {missing} repeated {repeated} foreign {foreign} fifo_breaks {fifo_breaks}");
    if missing + repeated + foreign + fifo_breaks == 0 {
        println!("ok {total}");
    }
}

/// Sleeps `ms`, then gets one item and prints it.
#[mpwasm_guest::task]
fn get_after(q: Queue<u32>, ms: u64) -> Result<()> {
    sleep_ms(ms);
    println!("child got {}", q.get()?);
    Ok(())
}

fn sizes(q: &Queue<u32>) -> String {
    format!("qsize {} empty {} full {}", q.qsize(), q.empty(), q.full())
}

/// `bounded`: `Queue::with_maxsize(2)`: timeouts, the non-blocking forms,
/// `qsize`/`empty`/`full`, and a put that waits for a get in another process.
pub fn bounded() -> Result<()> {
    let q = Queue::<u32>::with_maxsize(2)?;
    println!("new maxsize {} {}", q.maxsize(), sizes(&q));
    q.put(1)?;
    q.put(2)?;
    println!("two {}", sizes(&q));
    let t = Instant::now();
    let r = q.put_timeout(3, Duration::from_millis(300));
    println!("put_timeout {r:?} after_ms {}", ms(t));
    println!("put_nowait {:?}", q.put_nowait(3));
    println!("get_nowait {:?}", q.get_nowait());
    println!("put_nowait {:?}", q.put_nowait(3));
    println!("get {:?} {:?}", q.get(), q.get());
    let t = Instant::now();
    let r = q.get_timeout(Duration::from_millis(300));
    println!("get_timeout {r:?} after_ms {}", ms(t));
    println!("get_nowait {:?}", q.get_nowait());
    println!("drained {}", sizes(&q));
    // Full again; another process frees a slot after 300 ms.
    q.put(10)?;
    q.put(11)?;
    let mut p = Process::new("get_after", (&q, 300_u64));
    let t = Instant::now();
    p.start()?;
    let r = q.put_timeout(12, PATIENCE);
    println!("blocked_put {r:?} after_ms {}", ms(t));
    println!(
        "rest {:?} {:?}",
        q.get_timeout(PATIENCE),
        q.get_timeout(PATIENCE)
    );
    p.join()?;
    println!("exitcode {:?}", p.exitcode());
    Ok(())
}

/// An item of `unbounded_exit`: 100 bytes and more, so that a few thousand
/// overflow any socket buffer.
fn flood_item(i: u32) -> String {
    format!("{i:06}:{}", "x".repeat(100))
}

/// Puts `n` items and returns at once.
#[mpwasm_guest::task]
fn flood(q: Queue<String>, n: u32) -> Result<()> {
    for i in 0..n {
        q.put(flood_item(i))?;
    }
    Ok(())
}

/// `unbounded_exit [N]`: a child puts N items on an unbounded queue and
/// exits; main joins it before getting any (CPython's "joining processes
/// that use queues" deadlock, gh-73983, must not happen), then gets them all
/// in order.
pub fn unbounded_exit(args: &[String]) -> Result<()> {
    let n: u32 = arg(args, 0, 10_000);
    let q = Queue::<String>::new()?;
    let mut p = Process::new("flood", (&q, n));
    let t = Instant::now();
    p.start()?;
    p.join_timeout(PATIENCE)?;
    println!(
        "joined exitcode {:?} alive {} after_ms {}",
        p.exitcode(),
        p.is_alive(),
        ms(t)
    );
    if p.is_alive() {
        // Deadlocked: end it so the run can report the rest.
        p.kill()?;
        p.join()?;
    }
    println!("qsize {}", q.qsize());
    let mut in_order = 0;
    for i in 0..n {
        match q.get_timeout(Duration::from_secs(10)) {
            Ok(item) if item == flood_item(i) => in_order += 1,
            other => {
                println!("item {i} is {other:?}");
                break;
            }
        }
    }
    println!("in_order {in_order} of {n}");
    println!("then {:?}", q.get_nowait());
    Ok(())
}

/// Sums items until 0, calling `task_done` for each (0 included); puts the
/// sum on `out`.
#[mpwasm_guest::task]
fn joinable_consumer(q: JoinableQueue<u64>, out: Queue<u64>) -> Result<()> {
    let mut sum = 0;
    loop {
        let x = q.get()?;
        sum += x;
        q.task_done()?;
        if x == 0 {
            return out.put(sum);
        }
    }
}

/// `joinable`: `JoinableQueue::join` waits for `task_done` of every item,
/// across processes; `join_timeout` runs out while one is unfinished; an
/// extra `task_done` fails (Python's `ValueError`).
pub fn joinable() -> Result<()> {
    let q = JoinableQueue::<u64>::new()?;
    q.put(5)?;
    let t = Instant::now();
    let r = q.join_timeout(Duration::from_millis(200));
    println!("unfinished join_timeout {r:?} after_ms {}", ms(t));
    println!("get {:?} task_done {:?}", q.get(), q.task_done());
    println!("join {:?}", q.join_timeout(PATIENCE));
    println!("extra task_done is_err {}", q.task_done().is_err());

    let sums = Queue::<u64>::new()?;
    let mut consumers: Vec<Process> = (0..2)
        .map(|_| Process::new("joinable_consumer", (&q, &sums)))
        .collect();
    for p in &mut consumers {
        p.start()?;
    }
    for x in 1..=1000 {
        q.put(x)?;
    }
    println!("all done join {:?}", q.join_timeout(PATIENCE));
    for _ in &consumers {
        q.put(0)?;
    }
    let total = sums.get_timeout(PATIENCE)? + sums.get_timeout(PATIENCE)?;
    println!("sum {total}");
    for p in &mut consumers {
        p.join()?;
    }
    println!("exitcodes {:?}", exitcodes(&consumers));
    match q.get_nowait() {
        Err(Error::Empty) => println!("then empty"),
        other => println!("then {other:?}"),
    }
    Ok(())
}

/// Says it is ready, then blocks in `get` on an empty queue.
#[mpwasm_guest::task]
fn blocked_get(q: Queue<u32>, ready: Queue<u8>) -> Result<()> {
    ready.put(1)?;
    println!("blocked_get returned {:?}", q.get());
    Ok(())
}

/// Says it is ready, then blocks in `put` on a full queue.
#[mpwasm_guest::task]
fn blocked_put(q: Queue<u32>, ready: Queue<u8>) -> Result<()> {
    ready.put(1)?;
    println!("blocked_put returned {:?}", q.put(2));
    Ok(())
}

/// Starts `target` on `(q, ready)`, waits until it is about to block, and
/// kills it there; returns its exit code.
fn kill_when_blocked(target: &str, q: &Queue<u32>) -> Result<Option<i32>> {
    let ready = Queue::<u8>::new()?;
    let mut p = Process::new(target, (q, &ready));
    p.start()?;
    ready.get_timeout(PATIENCE)?;
    sleep_ms(200);
    p.kill()?;
    p.join_timeout(PATIENCE)?;
    Ok(p.exitcode())
}

/// `killed_while_blocked`: a consumer killed inside `get` takes no item
/// with it, and a producer killed inside `put` on a full queue neither
/// lands its item nor leaks or adds a slot.
pub fn killed_while_blocked() -> Result<()> {
    let q = Queue::<u32>::new()?;
    println!(
        "get killed exitcode {:?}",
        kill_when_blocked("blocked_get", &q)?
    );
    q.put(1)?;
    println!(
        "after get {:?} {}",
        q.get_timeout(Duration::from_secs(5)),
        sizes(&q)
    );

    let q = Queue::<u32>::with_maxsize(1)?;
    q.put(1)?;
    println!(
        "put killed exitcode {:?}",
        kill_when_blocked("blocked_put", &q)?
    );
    println!("after put {}", sizes(&q));
    println!("items {:?} {:?}", q.get_nowait(), q.get_nowait());
    println!("room {:?} {:?}", q.put_nowait(3), q.put_nowait(4));
    println!("end {}", sizes(&q));
    Ok(())
}
