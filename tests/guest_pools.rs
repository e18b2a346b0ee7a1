//! Pools started from guests (issue 9): a holder that ends in any way ends
//! its pool and the run promptly (item 1); `close` + `join` keep the work
//! submitted before (item 2); Python's pool options reach guest pools (item
//! 6); work offered to a closed pool, waits on what can never be ready and
//! unknown process targets fail at the call (item 7). Each test runs one
//! scenario of the `poolkit` guest (tests/guests/poolkit) and checks what
//! it prints. A run that outlives [`GUARD`] is killed and fails the test.

mod common;
use common::*;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest any run may take; a hang is what these tests look for.
const GUARD: Duration = Duration::from_secs(45);

/// How long a run whose holder ended may take at most: the pool's tasks
/// sleep 30 s, so a run that waited for them (or hung) is well past it.
const PROMPT: Duration = Duration::from_secs(15);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The values after `name` on the line that starts with it.
    fn fact(&self, name: &str) -> String {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{}\n{}", self.stdout, self.stderr))
            .to_string()
    }

    /// The worker pids the scenario reported.
    fn workers(&self) -> Vec<u32> {
        self.fact("workers")
            .split_whitespace()
            .map(|p| p.parse().expect("pid"))
            .collect()
    }
}

/// Runs `mpwasm <command> OPTIONS… poolkit.wasm ARGS…` with `stdin`,
/// killed after [`GUARD`].
fn mpwasm(command: &str, options: &[&str], args: &[&str], stdin: &str) -> Run {
    let started = Instant::now();
    let mut child = Command::new(mpwasm_bin())
        .arg(command)
        .args(options)
        .arg(guest("poolkit"))
        .args(args)
        .env("MPWASM_CACHE_DIR", shared_cache())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpwasm");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        let _ = input.write_all(stdin.as_bytes());
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mpwasm {command} {args:?} hung: killed after {GUARD:?}\nstderr:\n{}",
                err_reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    Run {
        status,
        stdout: reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
        took,
    }
}

fn run(options: &[&str], scenario: &str) -> Run {
    mpwasm("run", options, &[scenario], "")
}

/// Asserts the pids are gone (reaped, not zombies) within a second.
fn assert_gone(pids: &[u32]) {
    assert!(!pids.is_empty(), "no worker pids reported");
    let deadline = Instant::now() + Duration::from_secs(2);
    for pid in pids {
        while alive(*pid) {
            assert!(Instant::now() < deadline, "worker {pid} outlived its run");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

/// Asserts the run ended promptly, with `code`, and took its pool along.
fn assert_ended(run: &Run, code: i32) {
    assert!(
        run.took < PROMPT,
        "the run took {:?}: it waited for (or hung on) the pool\n{}",
        run.took,
        run.stderr
    );
    assert_eq!(run.status.code(), Some(code), "stderr:\n{}", run.stderr);
    assert_gone(&run.workers());
}

#[test]
fn main_panicking_with_a_busy_pool_ends_the_run() {
    let r = run(&[], "panic_main");
    assert_ended(&r, 1);
    assert!(r.stderr.contains("main gives up"), "{}", r.stderr);
}

#[test]
fn a_process_panicking_with_a_busy_pool_can_be_joined() {
    let r = run(&[], "panic_in_process");
    assert_eq!(r.fact("exitcode"), "Some(1)");
    assert_ended(&r, 0);
}

#[test]
fn main_exiting_with_a_busy_pool_ends_the_run() {
    let r = run(&[], "exit_main");
    assert_ended(&r, 0);
}

#[test]
fn a_forgotten_busy_pool_ends_with_main() {
    let r = run(&[], "forget_pool");
    assert_eq!(r.fact("returned"), "yes");
    assert_ended(&r, 0);
}

#[test]
fn a_killed_holder_takes_its_pool_along() {
    let r = run(&[], "killed_holder");
    assert_eq!(r.fact("exitcode"), "Some(-9)");
    assert_ended(&r, 0);
}

/// `mpwasm run --task-timeout` ends a main blocked in its pool's `map`;
/// this hung in 4 of 15 runs, so it runs five times.
#[test]
fn main_stopped_at_its_deadline_while_its_pool_works_ends_the_run() {
    for _ in 0..5 {
        let r = run(&["--task-timeout", "1s"], "blocked_main");
        assert!(r.took < PROMPT, "took {:?}\n{}", r.took, r.stderr);
        assert_ne!(r.status.code(), Some(0), "{}", r.stderr);
        assert_gone(&r.workers());
    }
}

/// `mpwasm pool` over a task that starts a pool and panics: the result
/// line is written and the command ends.
#[test]
fn a_pool_task_panicking_with_its_own_busy_pool_ends_the_job() {
    let r = mpwasm("pool", &["--task", "nested_then_panic"], &[], "1\n2\n");
    assert_eq!(r.status.code(), Some(1), "stderr:\n{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(r.stdout.contains("the task gives up"), "{}", r.stdout);
    assert!(r.took < PROMPT, "took {:?}", r.took);
    let workers: Vec<u32> = r
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("workers "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<u32>().expect("pid")))
        .collect();
    assert_gone(&workers);
}

/// CPython finishes every task submitted before `close()`.
#[test]
fn close_then_join_loses_no_submitted_work() {
    let r = run(&[], "close_join");
    assert!(r.status.success(), "{}", r.stderr);
    for round in 0..5 {
        assert_eq!(
            r.fact(&format!("round {round} results")),
            "6",
            "{}",
            r.stdout
        );
    }
    let r = run(&[], "imap_close");
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.fact("imap results"), "200");
}

/// `mpwasm run --maxtasksperchild 10` reaches the guest's pool: 100
/// one-input chunks on 2 workers need at least 10 worker processes; the
/// pool's own `maxtasksperchild` overrides the run's.
#[test]
fn maxtasksperchild_reaches_guest_pools() {
    let r = run(&["--maxtasksperchild", "10"], "pids");
    assert!(r.status.success(), "{}", r.stderr);
    let distinct: usize = r.fact("distinct").parse().unwrap();
    assert!(distinct >= 10, "{distinct} workers for 100 tasks");
    let r = mpwasm("run", &["--maxtasksperchild", "10"], &["pids", "50"], "");
    let distinct: usize = r.fact("distinct").parse().unwrap();
    assert!(
        (2..=4).contains(&distinct),
        "{distinct} workers with 50 per child"
    );
    let r = run(&[], "pids");
    let distinct: usize = r.fact("distinct").parse().unwrap();
    // (One worker may do them all if the other starts late.)
    assert!(distinct <= 2, "{distinct} workers: no recycling by default");
}

#[test]
fn the_initializer_runs_in_every_instance() {
    let r = run(&[], "initializer");
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.fact("values"), format!("{:?}", [42; 10]));
    // Input 13 panics; the reset instance runs the initializer again.
    let after: Vec<String> = r.fact("after_panic").split(' ').map(String::from).collect();
    assert_eq!(after.len(), 10);
    for (i, v) in after.iter().enumerate() {
        let expected = if i == 3 { "panic" } else { "42" };
        assert_eq!(v, expected, "input {} of {after:?}", i + 10);
    }
    let failing = r.fact("failing_init");
    assert!(
        failing.starts_with("error initializer `refuse` failed")
            && failing.contains("no setup today"),
        "{failing}"
    );
}

#[test]
fn chunksize_sends_whole_chunks_to_one_worker() {
    let r = run(&[], "chunksize");
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.fact("chunks_whole"), "true");
}

#[test]
fn callbacks_run_by_join_after_close() {
    let r = run(&[], "callbacks");
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.fact("callbacks"), "[0, 2, 4]");
    assert_eq!(r.fact("error_callbacks"), "3");
    assert_eq!(r.fact("map_callback"), "285");
}

#[test]
fn a_big_guest_map_is_complete() {
    let r = run(&[], "big_map");
    assert!(r.status.success(), "{}", r.stderr);
    let n: u64 = 50_000;
    assert_eq!(r.fact("count"), n.to_string());
    assert_eq!(
        r.fact("sum"),
        (0..n).map(|x| x * x).sum::<u64>().to_string()
    );
}

#[test]
fn work_for_a_closed_or_terminated_pool_fails_at_the_call() {
    let r = run(&[], "closed_calls");
    assert!(r.status.success(), "{}", r.stderr);
    for fact in [
        "closed_map_async",
        "closed_apply_async",
        "closed_imap",
        "terminated_apply_async",
    ] {
        assert_eq!(r.fact(fact), "true", "{fact}");
    }
}

/// CPython's `map` raises the first exception as soon as it arrives.
#[test]
fn map_reports_the_first_failure_without_waiting_for_the_rest() {
    let r = run(&[], "first_failure");
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.fact("first_failure"), "index 1 early true");
}

#[test]
fn scope_joins_on_success_and_terminates_on_error() {
    let r = run(&[], "scope");
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.fact("scope"), "14 callback 14");
    assert_eq!(r.fact("scope_error"), "true");
}

/// Python fails these at the call; so do we (before: `start` returned `Ok`
/// and the child exited 1, `wait` reported the unstarted process and the
/// write-only end as ready).
#[test]
fn process_and_connection_mistakes_fail_at_the_call() {
    let r = run(&[], "call_errors");
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(r.fact("unknown_target"), "true");
    assert!(r.fact("unknown_target_message").contains("no_such_task"));
    assert_eq!(r.fact("wait_unstarted"), "true");
    assert_eq!(r.fact("wait_write_only"), "true");
    assert_eq!(r.fact("poll_write_only"), "true");
    assert_eq!(r.fact("poll_read_end"), "Ok(false)");
}
