//! Issue 10, items 1 and 3: memory and descriptors a guest makes the host
//! or the kernel hold outside its own linear memory. Each scenario is a
//! `mpwasm run hostile.wasm outside-<name> ARGS…` main that pushes one
//! resource until the host refuses, and prints one line per outcome for
//! `tests/hostile.rs` to read (`ok …` or `limit after N: …`, with the time
//! the refusal took in microseconds).

use std::io::Write;
use std::time::{Duration, Instant};

use mpwasm_guest::{Error, Process, Queue, Result, SharedMemory, Value};

/// Runs scenario `what` (without its `outside-` prefix) on `args`.
pub fn run(what: &str, args: &[String]) -> Result<()> {
    let n = |i: usize| -> usize { args.get(i).and_then(|a| a.parse().ok()).unwrap_or(0) };
    match what {
        "flood" => flood(n(0), n(1)),
        "values" => values(n(0)),
        "regions" => regions(n(0), n(1)),
        "queues" => queues(n(0)),
        "spill" => spill(n(0), n(1)),
        "args" => unstarted(n(0), n(1)),
        "big-items" => big_items(n(0), n(1)),
        "pipes" => pipes(n(0), n(1), n(2)),
        other => Err(Error::Other(format!("no scenario {other}"))),
    }
}

/// Prints and flushes one line (the test reads them as they come).
fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Reports how many of `tried` succeeded and the first error, with how long
/// the refused call took.
fn report(what: &str, done: usize, tried: usize, failed: Option<(Error, Duration)>) {
    match failed {
        None => say(&format!("ok {what} {done} of {tried}")),
        Some((e, took)) => say(&format!(
            "limit after {done} {what} in {}us: {e:?}",
            took.as_micros()
        )),
    }
}

/// Calls `make` up to `count` times, stopping at the first error.
fn until_refused<T>(what: &str, count: usize, mut make: impl FnMut(usize) -> Result<T>) -> Vec<T> {
    let mut kept = Vec::new();
    for i in 0..count {
        let started = Instant::now();
        match make(i) {
            Ok(x) => kept.push(x),
            Err(e) => {
                report(what, i, count, Some((e, started.elapsed())));
                return kept;
            }
        }
    }
    report(what, count, count, None);
    kept
}

/// Puts `count` unread items of `kib` KiB in a queue nobody reads, says how
/// many went in, then holds them for a minute: the descriptors (or memory)
/// they take stay taken while another run tries its luck.
fn flood(count: usize, kib: usize) -> Result<()> {
    let q = Queue::<Vec<u8>>::new()?;
    let item = vec![7u8; kib << 10];
    until_refused("items", count, |_| q.put(item.clone()));
    say("holding");
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

/// Makes `count` `Value`s (each a region: a memfd handed over by the
/// parent) and says whether it could.
fn values(count: usize) -> Result<()> {
    let kept = until_refused("values", count, |i| Value::new(i as u64));
    drop(kept);
    Ok(())
}

/// Makes `count` shared memory regions of `mib` MiB each and keeps them.
fn regions(count: usize, mib: usize) -> Result<()> {
    let kept = until_refused("regions", count, |_| SharedMemory::new(mib << 20));
    drop(kept);
    // What was given back can be taken again.
    let again = SharedMemory::new(mib << 20).map(|_| ());
    say(&format!("again after freeing: {again:?}"));
    Ok(())
}

/// Makes up to `count` queues and keeps them.
fn queues(count: usize) -> Result<()> {
    let kept = until_refused("queues", count, |_| Queue::<u8>::new());
    drop(kept);
    let again = Queue::<u8>::new().map(|_| ());
    say(&format!("again after freeing: {again:?}"));
    Ok(())
}

/// Puts `count` items of `kib` KiB in one queue nobody reads.
fn spill(count: usize, kib: usize) -> Result<()> {
    let q = Queue::<Vec<u8>>::new()?;
    let item = vec![1u8; kib << 10];
    until_refused("items", count, |_| q.put(item.clone()));
    Ok(())
}

/// Describes `count` processes with arguments of `mib` MiB each and never
/// starts them, asking each its name (which makes the host's handle, and
/// hands the host its arguments); then starts the last one described.
fn unstarted(count: usize, mib: usize) -> Result<()> {
    let arg = vec![3u8; mib << 20];
    let mut kept: Vec<Process> = (0..count)
        .map(|_| Process::new("noop_bytes", &arg))
        .collect();
    for p in &kept {
        let _ = p.name();
    }
    let started = Instant::now();
    let outcome = kept.last_mut().map(|p| p.start().and_then(|()| p.join()));
    say(&format!(
        "described {count}, last start in {}us: {outcome:?}",
        started.elapsed().as_micros()
    ));
    Ok(())
}

/// Puts `count` items of `kib` KiB, then gets them back and checks each.
fn big_items(count: usize, kib: usize) -> Result<()> {
    let q = Queue::<Vec<u8>>::new()?;
    for i in 0..count {
        q.put(vec![i as u8; kib << 10])?;
    }
    for i in 0..count {
        let item = q.get()?;
        if item.len() != kib << 10 || item.iter().any(|b| *b != i as u8) {
            return Err(Error::Other(format!("item {i} came back wrong")));
        }
    }
    say(&format!("ok {count} items back"));
    Ok(())
}

/// A process target that takes bytes and does nothing with them.
#[mpwasm_guest::task]
fn noop_bytes(arg: Vec<u8>) -> usize {
    arg.len()
}

/// Makes `count` pipes and sends one `mib` MiB message on each, unread
/// (large messages enlarge their end's buffers, charged to the run's
/// shared memory); then tries a region of `region` MiB, before and after
/// the pipes are closed.
fn pipes(count: usize, mib: usize, region: usize) -> Result<()> {
    let message = vec![5u8; mib << 20];
    let kept = until_refused("pipes", count, |_| {
        let (a, b) = mpwasm_guest::pipe(true)?;
        a.send_bytes(&message)?;
        Ok((a, b))
    });
    let with = SharedMemory::new(region << 20).map(|_| ());
    drop(kept);
    let without = SharedMemory::new(region << 20).map(|_| ());
    say(&format!("region with the pipes: {with:?}"));
    say(&format!("region without: {without:?}"));
    Ok(())
}
