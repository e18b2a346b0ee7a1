//! How processes end (issue 9): a grandchild outlives its terminated
//! parent, an orphan ends with the run, `exit(n)` in a target is the
//! process's exit code.

use mpwasm_guest::{Process, Queue, Result};

use crate::{sleep_ms, PATIENCE};

/// Starts a non-daemon grandchild running `sleep_for(ms)`, hands main its
/// handle, then sleeps until it is terminated.
#[mpwasm_guest::task]
fn orphan_parent(ms: u64, handles: Queue<Process>) -> Result<()> {
    let mut g = Process::new("sleep_for", ms);
    g.start()?;
    handles.put(g)?;
    loop {
        sleep_ms(3_600_000);
    }
}

/// Starts an `orphan_parent` whose grandchild sleeps `ms`, terminates the
/// parent once the grandchild runs, and returns the grandchild.
fn orphan(ms: u64) -> Result<Process> {
    let handles = Queue::<Process>::new()?;
    let mut p = Process::new("orphan_parent", (ms, &handles));
    p.start()?;
    let g = handles.get_timeout(PATIENCE)?;
    p.terminate()?;
    p.join_timeout(PATIENCE)?;
    println!("parent exitcode {:?}", p.exitcode());
    Ok(g)
}

/// `orphan_grandchild`: main → P → G (non-daemon, sleeping); main
/// terminates P. As in Python, G goes on running and ends normally (0).
/// Then a second orphan that sleeps for an hour is left running when main
/// returns: main prints `orphan PID`, and the run must end it.
pub fn orphan_grandchild() -> Result<()> {
    let mut g = orphan(1500)?;
    // P's process has ended and the broker has reaped it by now.
    sleep_ms(300);
    println!("grandchild alive {}", g.is_alive());
    g.join_timeout(PATIENCE)?;
    println!("grandchild exitcode {:?}", g.exitcode());
    let left = orphan(3_600_000)?;
    println!(
        "orphan {} alive {}",
        left.pid().unwrap_or_default(),
        left.is_alive()
    );
    Ok(())
}

/// Calls `std::process::exit(code)`.
#[mpwasm_guest::task]
fn exits_with(code: i32) {
    std::process::exit(code);
}

/// `exit_codes`: a target that calls `exit(0)` ends with exitcode 0, one
/// that calls `exit(3)` with a failure (see the README for which code).
pub fn exit_codes() -> Result<()> {
    for code in [0, 3] {
        let mut p = Process::new("exits_with", code);
        p.start()?;
        p.join_timeout(PATIENCE)?;
        println!("exit {code} exitcode {:?}", p.exitcode());
    }
    Ok(())
}
