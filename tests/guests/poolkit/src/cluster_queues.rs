//! Queues shared with tasks on other hosts (issue 14, item 4): the tasks
//! of a `mpwasm run --cluster` guest's pool run on worker hosts, and the
//! queue handles in their arguments reach them through JetStream.

use std::collections::HashSet;
use std::time::Duration;

use mpwasm_guest::{Error, JoinableQueue, Pool, Queue, Result};

/// An item: its producer and its number in that producer's sequence.
type Item = (u64, u64);

/// The end marker a consumer stops at.
const END: Item = (u64::MAX, 0);

/// How long any one get waits before the scenario fails.
const PATIENCE: Duration = Duration::from_secs(90);

/// Puts `count` items `(producer, 0..count)` in order.
#[mpwasm_guest::task]
fn produce(args: (Queue<Item>, u64, u64)) -> Result<u64> {
    let (q, producer, count) = args;
    for i in 0..count {
        q.put((producer, i))?;
    }
    Ok(count)
}

/// [`produce`] on a joinable queue.
#[mpwasm_guest::task]
fn produce_joinable(args: (JoinableQueue<Item>, u64, u64)) -> Result<u64> {
    let (q, producer, count) = args;
    for i in 0..count {
        q.put((producer, i))?;
    }
    Ok(count)
}

/// Takes items (marking each done) until the end marker; what it took, in
/// the order it took them.
#[mpwasm_guest::task]
fn consume(q: JoinableQueue<Item>) -> Result<Vec<Item>> {
    let mut got = Vec::new();
    loop {
        let item = q.get_timeout(PATIENCE)?;
        q.task_done()?;
        if item == END {
            return Ok(got);
        }
        got.push(item);
    }
}

/// Takes one item and never marks it done: sleeps until its host is
/// killed.
#[mpwasm_guest::task]
fn take_and_hang(q: JoinableQueue<u64>) -> Result<u64> {
    let item = q.get_timeout(PATIENCE)?;
    std::thread::sleep(Duration::from_secs(120));
    Ok(item)
}

/// Checks a consumer's view: no item twice, and each producer's items in
/// increasing order. Adds its items to `all`.
fn check(got: &[Item], all: &mut HashSet<Item>) -> Result<()> {
    let mut last: std::collections::HashMap<u64, u64> = Default::default();
    for &(p, i) in got {
        if !all.insert((p, i)) {
            return Err(Error::Other(format!("item {p}.{i} came twice")));
        }
        if last.get(&p).is_some_and(|&l| l >= i) {
            return Err(Error::Other(format!("producer {p}'s item {i} came after {}", last[&p])));
        }
        last.insert(p, i);
    }
    Ok(())
}

/// `cluster_queue PRODUCERS PER MAXSIZE`: producer tasks on the hosts,
/// the consumer here in main.
pub(crate) fn to_main(args: &[String]) -> Result<()> {
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (producers, per, maxsize) = (arg(0, 4), arg(1, 500), arg(2, 0));
    let q = Queue::<Item>::with_maxsize(maxsize as usize)?;
    let pool = Pool::new(producers as usize)?;
    let mut sent = pool
        .chunked(1)
        .map_async::<_, u64>("produce", (0..producers).map(|p| (q.clone(), p, per)))?;
    if maxsize > 0 {
        // The producers fill the queue up to its bound, and no further.
        let deadline = std::time::Instant::now() + PATIENCE;
        while (q.qsize() as u64) < maxsize && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        println!("full at {} of {maxsize}", q.qsize());
    }
    let mut got = Vec::new();
    for _ in 0..producers * per {
        got.push(q.get_timeout(PATIENCE)?);
    }
    let sent: u64 = sent.get(Some(PATIENCE))?.iter().sum();
    let mut all = HashSet::new();
    check(&got, &mut all)?;
    let extra = q.get_timeout(Duration::from_millis(500)).is_ok();
    println!("sent {sent} got {} unique {} extra {extra}", got.len(), all.len());
    Ok(())
}

/// `cluster_queue_mpmc PRODUCERS CONSUMERS PER MAXSIZE`: producers and
/// consumers all tasks on the hosts; main puts one end marker per consumer
/// once the producers are done, then joins the queue.
pub(crate) fn mpmc(args: &[String]) -> Result<()> {
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (producers, consumers, per, maxsize) = (arg(0, 4), arg(1, 4), arg(2, 1000), arg(3, 100));
    let q = JoinableQueue::<Item>::with_maxsize(maxsize as usize)?;
    let pool = Pool::new((producers + consumers) as usize)?;
    let mut taken = pool
        .chunked(1)
        .map_async::<_, Vec<Item>>("consume", (0..consumers).map(|_| q.clone()))?;
    let mut sent = pool.chunked(1).map_async::<_, u64>(
        "produce_joinable",
        (0..producers).map(|p| (q.clone(), p, per)),
    )?;
    let sent: u64 = sent.get(None)?.iter().sum();
    for _ in 0..consumers {
        q.put(END)?;
    }
    let taken = taken.get(None)?;
    q.join_timeout(PATIENCE)?;
    let mut all = HashSet::new();
    for got in &taken {
        check(got, &mut all)?;
    }
    let busy = taken.iter().filter(|got| !got.is_empty()).count();
    println!("sent {sent} unique {} consumers_busy {busy}", all.len());
    Ok(())
}

/// `cluster_queue_redeliver N`: a task on a host takes one of `N` items
/// and hangs without `task_done`; main says `taken` and waits for the test
/// to kill that host, then gets every item, the hung one too (the server
/// hands it out again), marks them done and joins.
pub(crate) fn redeliver(args: &[String]) -> Result<()> {
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let q = JoinableQueue::<u64>::new()?;
    for i in 0..n {
        q.put(i)?;
    }
    let pool = Pool::new(1)?;
    let _hung = pool.apply_async::<_, u64>("take_and_hang", q.clone())?;
    let deadline = std::time::Instant::now() + PATIENCE;
    while q.qsize() as u64 == n {
        if std::time::Instant::now() > deadline {
            return Err(Error::Other("no host took an item".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("taken");
    let mut got: Vec<u64> = Vec::new();
    for _ in 0..n {
        got.push(q.get_timeout(PATIENCE)?);
        q.task_done()?;
    }
    q.join_timeout(PATIENCE)?;
    got.sort_unstable();
    pool.terminate();
    println!("got {got:?}");
    Ok(())
}
