//! Exactness under contention: locked increments and every atomic
//! read-modify-write, from several processes at once.

use mpwasm_guest::{Array, Barrier, Process, Queue, Result, Value};
use serde::{Deserialize, Serialize};

use crate::{arg, PATIENCE};

/// Starts one process per argument, joins them all, prints their exit codes.
fn run_all<A: Serialize>(target: &str, args: impl IntoIterator<Item = A>) -> Result<()> {
    let mut processes: Vec<Process> = args.into_iter().map(|a| Process::new(target, a)).collect();
    for p in &mut processes {
        p.start()?;
    }
    for p in &mut processes {
        p.join_timeout(PATIENCE)?;
    }
    let codes: Vec<Option<i32>> = processes.iter().map(Process::exitcode).collect();
    println!("exitcodes {codes:?}");
    Ok(())
}

/// `n` increments of the counter, each under the counter's own lock, once
/// every process has started.
#[mpwasm_guest::task]
fn locked_add(counter: Value<i32>, n: u32, start: Barrier) -> Result<()> {
    start.wait_timeout(PATIENCE)?;
    for _ in 0..n {
        let _held = counter.get_lock().acquire()?;
        counter.set(counter.get() + 1);
    }
    Ok(())
}

/// `locked [PROCESSES] [INCREMENTS]`: every locked increment counts.
pub fn locked(args: &[String]) -> Result<()> {
    let processes: u32 = arg(args, 0, 4);
    let n: u32 = arg(args, 1, 100_000);
    let counter = Value::new(0_i32)?;
    let start = Barrier::new(processes)?;
    run_all("locked_add", (0..processes).map(|_| (&counter, n, &start)))?;
    println!("final {}", counter.get());
    println!("expected {}", processes * n);
    Ok(())
}

/// The shared cells of `atomics`.
#[derive(Serialize, Deserialize)]
struct Cells {
    /// `fetch_add(3)` and `fetch_sub(1)`, `n` each per process.
    sum: Value<i64>,
    /// `n` increments per process by a compare-exchange loop.
    cas: Value<i32>,
    /// Each process swaps in `n` values of its own.
    swapped: Value<i64>,
    /// Slot `i % SLOTS` gets `fetch_add(1)` for `i` in `0..n`.
    slots: Array<i32>,
    /// `fetch_add(1)` `n` times per process on a byte: wraps.
    byte: Value<u8>,
    /// Each process's swapped-out values and compare-exchange retries.
    out: Queue<(Vec<i64>, u64)>,
    /// Passed by every process before its first operation, so that they
    /// all run at once.
    start: Barrier,
}

const SLOTS: usize = 8;

/// Process `p`'s share of `atomics`.
#[mpwasm_guest::task]
fn atomic_worker(cells: Cells, p: i64, n: i64) -> Result<()> {
    let mut retries = 0;
    let mut previous = Vec::with_capacity(n as usize);
    cells.start.wait_timeout(PATIENCE)?;
    for i in 0..n {
        cells.sum.fetch_add(3);
        cells.sum.fetch_sub(1);
        loop {
            let current = cells.cas.get();
            match cells.cas.compare_exchange(current, current + 1) {
                Ok(_) => break,
                Err(_) => retries += 1,
            }
        }
        previous.push(cells.swapped.swap(p * 1_000_000 + i + 1));
        cells.slots.fetch_add(i as usize % SLOTS, 1)?;
        cells.byte.fetch_add(1);
    }
    cells.out.put((previous, retries))
}

/// `atomics [PROCESSES] [N]`: fetch_add, fetch_sub, swap, compare_exchange
/// and array fetch_add across processes, each exact.
pub fn atomics(args: &[String]) -> Result<()> {
    let processes: i64 = arg(args, 0, 4);
    let n: i64 = arg(args, 1, 20_000);
    single_process_semantics()?;
    let cells = Cells {
        sum: Value::new(0)?,
        cas: Value::new(0)?,
        swapped: Value::new(0)?,
        slots: Array::new(SLOTS)?,
        byte: Value::new(0)?,
        out: Queue::new()?,
        start: Barrier::new(processes as u32)?,
    };
    run_all("atomic_worker", (1..=processes).map(|p| (&cells, p, n)))?;
    let total = processes * n;
    println!("sum {} expected {}", cells.sum.get(), 2 * total);
    println!("cas {} expected {}", cells.cas.get(), total);
    let per_slot = total / SLOTS as i64;
    println!("slots {:?} expected {per_slot} each", cells.slots.to_vec());
    println!("byte {} expected {}", cells.byte.get(), total % 256);

    // Every value swapped in comes out exactly once: as some swap's
    // previous value, or as the final value.
    let mut seen = vec![cells.swapped.get()];
    let mut retries = 0;
    for _ in 0..processes {
        let (previous, r) = cells.out.get_timeout(PATIENCE)?;
        seen.extend(previous);
        retries += r;
    }
    seen.sort_unstable();
    let mut written: Vec<i64> = (1..=processes)
        .flat_map(|p| (0..n).map(move |i| p * 1_000_000 + i + 1))
        .collect();
    written.push(0);
    written.sort_unstable();
    println!("swap_each_once {}", seen == written);
    println!("cas_retries {retries}");
    Ok(())
}

/// What each operation returns, in one process.
fn single_process_semantics() -> Result<()> {
    let v = Value::new(5_i32)?;
    println!("cx_wrong {:?}", v.compare_exchange(4, 9));
    println!("cx_right {:?}", v.compare_exchange(5, 9));
    println!("swap {:?} now {}", v.swap(1), v.get());
    println!("fetch_add {:?} now {}", v.fetch_add(10), v.get());
    println!("fetch_sub {:?} now {}", v.fetch_sub(20), v.get());
    let m = Value::new(i32::MAX)?;
    println!("wrapping {:?} now {}", m.fetch_add(1), m.get());
    Ok(())
}
