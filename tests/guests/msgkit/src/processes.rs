//! Process scenarios: joining with a timeout, signals and exit codes,
//! daemon and non-daemon children at their parent's end, nesting, the
//! process cap.

use std::time::{Duration, Instant};

use mpwasm_guest::{active_children, current_process, parent_process, Process, Queue, Result};

use crate::{arg, ms, sleep_ms, PATIENCE};

/// Sleeps `ms` milliseconds.
#[mpwasm_guest::task]
fn sleep_for(ms: u64) {
    sleep_ms(ms);
}

/// Never returns.
#[mpwasm_guest::task]
fn sleep_forever() {
    loop {
        sleep_ms(3_600_000);
    }
}

/// Says it is running, then spins in a loop that never calls the host.
#[mpwasm_guest::task]
fn spin(ready: Queue<u8>) -> Result<()> {
    ready.put(1)?;
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// Returns once it gets an item.
#[mpwasm_guest::task]
fn wait_for(go: Queue<u8>) -> Result<()> {
    go.get().map(drop)
}

#[mpwasm_guest::task]
fn panics() {
    panic!("this child panics on purpose");
}

#[mpwasm_guest::task]
fn fails() -> Result<(), String> {
    Err("this child fails on purpose".into())
}

#[mpwasm_guest::task]
fn traps() {
    std::process::abort();
}

/// `join_timeout`: on a child sleeping 1.5 s, a 300 ms `join_timeout`
/// returns with the child still running; a later `join` gives 0.
pub fn join_timeout() -> Result<()> {
    let mut p = Process::new("sleep_for", 1500_u64);
    p.start()?;
    let t = Instant::now();
    let r = p.join_timeout(Duration::from_millis(300));
    println!(
        "join_timeout {r:?} after_ms {} exitcode {:?} alive {}",
        ms(t),
        p.exitcode(),
        p.is_alive()
    );
    let r = p.join_timeout(PATIENCE);
    println!(
        "join {r:?} exitcode {:?} alive {}",
        p.exitcode(),
        p.is_alive()
    );
    Ok(())
}

/// `terminate`: a child stuck in a loop ends with -15 soon after
/// `terminate`.
pub fn terminate() -> Result<()> {
    let ready = Queue::<u8>::new()?;
    let mut p = Process::new("spin", &ready);
    p.start()?;
    ready.get_timeout(PATIENCE)?;
    sleep_ms(100);
    let t = Instant::now();
    p.terminate()?;
    p.join_timeout(Duration::from_secs(10))?;
    println!("exitcode {:?} after_ms {}", p.exitcode(), ms(t));
    if p.is_alive() {
        p.kill()?;
        p.join()?;
        println!("killed exitcode {:?}", p.exitcode());
    }
    Ok(())
}

/// Starts `target` on `()`, joins it, prints its exit code.
fn run_to_end(target: &str) -> Result<()> {
    let mut p = Process::new(target, ());
    p.start()?;
    p.join_timeout(PATIENCE)?;
    println!("{target} exitcode {:?}", p.exitcode());
    Ok(())
}

/// Starts a never-ending child, signals it, joins it.
fn signalled(kill: bool) -> Result<()> {
    let mut p = Process::new("sleep_forever", ());
    p.start()?;
    if kill {
        p.kill()?;
    } else {
        p.terminate()?;
    }
    p.join_timeout(PATIENCE)?;
    let what = if kill { "kill" } else { "terminate" };
    println!("{what} exitcode {:?}", p.exitcode());
    Ok(())
}

/// `exitcodes`: `None` before start and while running, 0 on return, 1
/// after a panic, an `Err` or a trap, -9 after `kill`, -15 after
/// `terminate`; the child's pid is not main's.
pub fn exitcodes() -> Result<()> {
    let go = Queue::<u8>::new()?;
    let mut p = Process::new("wait_for", &go);
    println!(
        "unstarted exitcode {:?} pid {:?} alive {}",
        p.exitcode(),
        p.pid(),
        p.is_alive()
    );
    p.start()?;
    println!("running exitcode {:?} alive {}", p.exitcode(), p.is_alive());
    let (me, child) = (current_process().pid, p.pid());
    println!(
        "pids differ {} (main {me} child {child:?})",
        child.is_some_and(|c| c != me)
    );
    go.put(1)?;
    p.join_timeout(PATIENCE)?;
    println!("returns exitcode {:?} alive {}", p.exitcode(), p.is_alive());
    for target in ["panics", "fails", "traps"] {
        run_to_end(target)?;
    }
    signalled(true)?;
    signalled(false)
}

/// The daemon grandchild: reports its pid, then sleeps forever.
#[mpwasm_guest::task]
fn daemon_sleeper(pids: Queue<u32>) -> Result<()> {
    pids.put(current_process().pid)?;
    loop {
        sleep_ms(3_600_000);
    }
}

/// The non-daemon child: starts a daemon, hands main its handle, returns
/// once main acknowledges.
#[mpwasm_guest::task]
fn daemon_parent(pids: Queue<u32>, handles: Queue<Process>, ack: Queue<u8>) -> Result<()> {
    let mut d = Process::new("daemon_sleeper", &pids).with_daemon(true);
    d.start()?;
    handles.put(d)?;
    ack.get().map(drop)
}

/// `daemon_grandchild`: a child starts a daemon and returns; by the time
/// main has joined the child the daemon is gone. Main prints `check PID`,
/// then waits 1.5 s for the test to look for PID in /proc.
pub fn daemon_grandchild() -> Result<()> {
    let (pids, handles, ack) = (
        Queue::<u32>::new()?,
        Queue::<Process>::new()?,
        Queue::<u8>::new()?,
    );
    let mut c = Process::new("daemon_parent", (&pids, &handles, &ack));
    c.start()?;
    let pid = pids.get_timeout(PATIENCE)?;
    let mut d = handles.get_timeout(PATIENCE)?;
    println!(
        "daemon pid {pid} handle_pid {:?} daemon {} alive {}",
        d.pid(),
        d.daemon(),
        d.is_alive()
    );
    ack.put(1)?;
    c.join_timeout(PATIENCE)?;
    println!("child exitcode {:?}", c.exitcode());
    let t = Instant::now();
    d.join_timeout(Duration::from_secs(5))?;
    println!(
        "daemon exitcode {:?} alive {} after_ms {}",
        d.exitcode(),
        d.is_alive(),
        ms(t)
    );
    println!("check {pid}");
    sleep_ms(1500);
    println!("done");
    Ok(())
}

/// `daemon_at_exit`: main returns while a daemon child sleeps forever.
pub fn daemon_at_exit() -> Result<()> {
    let pids = Queue::<u32>::new()?;
    let mut d = Process::new("daemon_sleeper", &pids).with_daemon(true);
    d.start()?;
    println!("daemon pid {}", pids.get_timeout(PATIENCE)?);
    Ok(())
}

/// Sleeps `ms`, then prints.
#[mpwasm_guest::task]
fn late_print(ms: u64) {
    sleep_ms(ms);
    println!("child done after {ms} ms");
}

/// `nondaemon_at_exit`: main returns at once; its non-daemon child still
/// finishes (and prints) before the run ends.
pub fn nondaemon_at_exit() -> Result<()> {
    let mut p = Process::new("late_print", 300_u64);
    p.start()?;
    println!("main returns");
    Ok(())
}

/// Who the current process is, and its parent, as one line.
fn whoami(role: &str) -> String {
    let me = current_process();
    let parent = parent_process().map(|p| format!("{}:{}", p.name, p.pid));
    format!("{role} name {} pid {} parent {parent:?}", me.name, me.pid)
}

/// The grandchild of `nested`: reports who it is.
#[mpwasm_guest::task]
fn nested_grandchild(report: Queue<String>) -> Result<()> {
    report.put(whoami("grandchild"))
}

/// The child of `nested`: reports who it is, starts the grandchild, joins
/// it.
#[mpwasm_guest::task]
fn nested_child(report: Queue<String>) -> Result<()> {
    report.put(whoami("child"))?;
    let mut g = Process::new("nested_grandchild", &report);
    g.start()?;
    report.put(format!("child started {} pid {:?}", g.name(), g.pid()))?;
    g.join_timeout(PATIENCE)?;
    report.put(format!("child joined exitcode {:?}", g.exitcode()))
}

/// `nested`: main → child → grandchild; names `Process-1`, `Process-1:1`;
/// `parent_process` in each; `active_children` in main.
pub fn nested() -> Result<()> {
    println!("{}", whoami("main"));
    let report = Queue::<String>::new()?;
    let mut c = Process::new("nested_child", &report);
    c.start()?;
    println!("main started {} pid {:?}", c.name(), c.pid());
    let active: Vec<String> = active_children().iter().map(Process::name).collect();
    println!("active_children {active:?}");
    for _ in 0..4 {
        println!("{}", report.get_timeout(PATIENCE)?);
    }
    c.join_timeout(PATIENCE)?;
    println!("main joined exitcode {:?}", c.exitcode());
    println!("active_after {}", active_children().len());
    Ok(())
}

/// `process_cap [N]`: starts up to N processes that wait, reporting each
/// start; stops at the first refused one. Once all have ended, one more
/// start succeeds.
pub fn process_cap(args: &[String]) -> Result<()> {
    let n: usize = arg(args, 0, 6);
    let go = Queue::<u8>::new()?;
    let mut started = Vec::new();
    for i in 0..n {
        let mut p = Process::new("wait_for", &go);
        match p.start() {
            Ok(()) => {
                println!("started {i}");
                started.push(p);
            }
            Err(e) => {
                println!("start {i} failed: {e}");
                println!("error {e:?}");
                break;
            }
        }
    }
    for _ in &started {
        go.put(1)?;
    }
    for p in &mut started {
        p.join_timeout(PATIENCE)?;
    }
    let codes: Vec<_> = started.iter().map(Process::exitcode).collect();
    println!("exitcodes {codes:?}");
    let mut again = Process::new("sleep_for", 1_u64);
    println!("after start {:?}", again.start());
    again.join_timeout(PATIENCE)?;
    println!("after exitcode {:?}", again.exitcode());
    Ok(())
}

/// Reports its pid, then blocks in a queue `get` nobody will answer: a
/// host call, where the epoch deadline cannot reach it.
#[mpwasm_guest::task]
fn blocked_getter(pids: Queue<u32>, never: Queue<u8>) -> Result<()> {
    pids.put(current_process().pid)?;
    never.get()?;
    Ok(())
}

/// `blocked_child` (run with `--task-timeout`): main starts a child that
/// blocks in a host call forever and returns; the run joins the child, so it
/// ends only because the parent's watchdog stops the child at its deadline.
pub fn blocked_child() -> Result<()> {
    let pids = Queue::<u32>::new()?;
    let never = Queue::<u8>::new()?;
    let mut p = Process::new("blocked_getter", (&pids, &never));
    p.start()?;
    println!("child pid {}", pids.get()?);
    Ok(())
}

/// Starts and joins `rest[0]` processes one after the other (each runs
/// `sleep_for(0)`); fails at the first that does not exit with 0.
pub fn start_join(rest: &[String]) -> Result<()> {
    let n: u32 = rest.first().and_then(|n| n.parse().ok()).unwrap_or(1);
    for i in 0..n {
        let mut p = Process::new("sleep_for", 0u64);
        p.start()?;
        p.join_timeout(PATIENCE)?;
        if p.exitcode() != Some(0) {
            let code = p.exitcode();
            return Err(mpwasm_guest::Error::Other(format!("start {i}: exitcode {code:?}")));
        }
    }
    println!("started {n}");
    Ok(())
}
