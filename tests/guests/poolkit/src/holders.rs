//! A pool's holder ends while the pool works: every way it can end must
//! end the run promptly and take the pool's workers with it (issue 9, 1).
//! Each scenario prints `workers PID…` first, so the test can check that
//! those processes are gone afterwards.

use std::time::Duration;

use mpwasm_guest::{Pool, Process, Queue, Result};

/// A pool of two whose workers are busy for a long time; prints their pids.
fn busy_pool() -> Result<Pool> {
    let pool = Pool::new(2)?;
    let mut pids: Vec<u32> = pool.chunked(1).map("pid", 0..8_u64)?;
    pids.sort();
    pids.dedup();
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("workers {}", pids.join(" "));
    // Long tasks, left running: the holder ends while they run.
    let pending = pool.map_async::<_, u32>("sleep_pid", [30_000_u64, 30_000])?;
    std::mem::forget(pending);
    std::thread::sleep(Duration::from_millis(100));
    Ok(pool)
}

/// Main panics while its pool works.
pub(crate) fn panic_main() -> Result<()> {
    let _pool = busy_pool()?;
    panic!("main gives up with its pool busy");
}

/// A process whose target panics while it holds a busy pool: the parent's
/// join must return, with exit code 1.
pub(crate) fn panic_in_process() -> Result<()> {
    let mut p = Process::new("hold_and_panic", ());
    p.start()?;
    p.join_timeout(Duration::from_secs(20))?;
    println!("exitcode {:?}", p.exitcode());
    Ok(())
}

#[mpwasm_guest::task]
fn hold_and_panic(_: ()) -> Result<()> {
    let _pool = busy_pool()?;
    panic!("the target gives up with its pool busy");
}

/// Main calls `exit(0)` while its pool works.
pub(crate) fn exit_main() -> Result<()> {
    let _pool = busy_pool()?;
    std::process::exit(0);
}

/// Main forgets its busy pool and returns.
pub(crate) fn forget_pool() -> Result<()> {
    std::mem::forget(busy_pool()?);
    println!("returned yes");
    Ok(())
}

/// The holder of a busy pool is killed by its parent.
pub(crate) fn killed_holder() -> Result<()> {
    let q = Queue::<String>::new()?;
    let mut p = Process::new("hold_forever", q.clone());
    p.start()?;
    let workers = q.get_timeout(Duration::from_secs(20))?;
    println!("{workers}");
    p.kill()?;
    p.join_timeout(Duration::from_secs(20))?;
    println!("exitcode {:?}", p.exitcode());
    Ok(())
}

#[mpwasm_guest::task]
fn hold_forever(q: Queue<String>) -> Result<()> {
    let pool = Pool::new(2)?;
    let mut pids: Vec<u32> = pool.chunked(1).map("pid", 0..8_u64)?;
    pids.sort();
    pids.dedup();
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let _busy = pool.map_async::<_, u32>("sleep_pid", [30_000_u64, 30_000])?;
    q.put(format!("workers {}", pids.join(" ")))?;
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

/// Main blocks in its pool's `map` (run it with `--task-timeout`: the
/// watchdog ends main while the pool works).
pub(crate) fn blocked_main() -> Result<()> {
    let pool = Pool::new(2)?;
    let mut pids: Vec<u32> = pool.chunked(1).map("pid", 0..8_u64)?;
    pids.sort();
    pids.dedup();
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("workers {}", pids.join(" "));
    let _: Vec<u32> = pool.map("sleep_pid", [30_000_u64, 30_000])?;
    Ok(())
}

/// A pool task that starts a pool of its own and panics with it busy
/// (`mpwasm pool poolkit.wasm --task nested_then_panic`).
#[mpwasm_guest::task]
fn nested_then_panic(_x: u64) -> u64 {
    let pool = busy_pool().expect("inner pool");
    std::mem::forget(pool);
    panic!("the task gives up with its pool busy");
}
