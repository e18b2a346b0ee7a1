//! Processes, queues and pipes inside guests (issue 3), and the process cap
//! (issue 5): each test runs one scenario of the `msgkit` guest
//! (tests/guests/msgkit) with `mpwasm run msgkit.wasm <scenario>` and checks
//! the lines it prints. A run that outlives [`GUARD`] is killed and fails
//! the test, so a hang in the host or the SDK cannot hang the suite.
//!
//! Where a case mirrors CPython's `Lib/test/_test_multiprocessing.py`, its
//! doc comment names the test.

mod common;
use common::*;

use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Longest any scenario may run; the slowest takes a few seconds.
const GUARD: Duration = Duration::from_secs(60);

/// How far past its timeout a timed wait may return on a loaded 2-CPU
/// machine.
const SLACK_MS: u64 = 1500;

/// A running `mpwasm run msgkit.wasm …`, its stdout read line by line as it
/// comes. Dropping it kills the run.
struct Live {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Receiver<String>,
    started: Instant,
}

/// A finished run.
struct Run {
    status: ExitStatus,
    lines: Vec<String>,
    stderr: String,
}

impl Live {
    /// Starts `mpwasm run OPTIONS… msgkit.wasm SCENARIO…`: `options` go
    /// before the guest, `scenario` after it.
    fn start(options: &[&str], scenario: &[&str]) -> Live {
        Live::spawn(Command::new(mpwasm_bin()), options, scenario)
    }

    /// As [`start`](Self::start), with `mpwasm` and every process it
    /// starts on CPU 0 alone.
    fn start_on_one_cpu(options: &[&str], scenario: &[&str]) -> Live {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(mpwasm_bin());
        // SAFETY: between fork and exec the closure makes one system call,
        // which allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(|| {
                let mut one = rustix::thread::CpuSet::new();
                one.set(0);
                rustix::thread::sched_setaffinity(None, &one).map_err(std::io::Error::from)
            });
        }
        Live::spawn(cmd, options, scenario)
    }

    fn spawn(mut cmd: Command, options: &[&str], scenario: &[&str]) -> Live {
        let kit = guest("msgkit");
        let mut child = cmd
            .arg("run")
            .args(options)
            .arg(&kit)
            .args(scenario)
            .env("MPWASM_CACHE_DIR", shared_cache())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpwasm run");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
            let _ = tx.send(text);
        });
        Live {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            started: Instant::now(),
        }
    }

    /// Reads lines until one starts with `prefix`; returns the rest of it.
    /// Fails the test (killing the run) if none comes within [`GUARD`].
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            let left = GUARD.saturating_sub(self.started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim_start().to_string();
                    }
                }
                Err(e) => self.fail(&format!("no line `{prefix}…` ({e:?})")),
            }
        }
    }

    /// Waits for the run to end (killing it after [`GUARD`]) and for its
    /// output to close.
    fn finish(mut self) -> Run {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait mpwasm") {
                break status;
            }
            if self.started.elapsed() > GUARD {
                self.fail(&format!("still running after {GUARD:?}: killed"));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Every process of the run has ended with it, so stdout closes now;
        // a process that outlived the run would hold it open.
        let closed_by = Instant::now() + Duration::from_secs(5);
        loop {
            match self
                .lines
                .recv_timeout(closed_by.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self
                    .fail("stdout still open 5 s after mpwasm exited: a process outlived the run"),
            }
        }
        let stderr = self.stderr_text();
        Run {
            status,
            lines: std::mem::take(&mut self.seen),
            stderr,
        }
    }

    /// Standard error, once closed (a few seconds at most after the run
    /// ended).
    fn stderr_text(&self) -> String {
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "(stderr still open 5 s after the run)".into())
    }

    /// Kills the run and fails the test, showing what it printed.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.seen.extend(self.lines.try_iter());
        let stderr = self.stderr_text();
        panic!(
            "{why}\nstdout:\n{}\nstderr:\n{stderr}",
            self.seen.join("\n")
        );
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Run {
    /// The rest of the first line starting with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim_start)
            .unwrap_or_else(|| panic!("no line `{prefix}…` in\n{self}"))
    }

    /// Every line starting with `prefix`.
    fn all(&self, prefix: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// Asserts the run exited 0.
    fn succeeded(self) -> Run {
        assert!(self.status.success(), "exited with {}\n{self}", self.status);
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stdout:\n{}\nstderr:\n{}",
            self.lines.join("\n"),
            self.stderr
        )
    }
}

/// Runs one scenario to its end.
fn run(scenario: &[&str]) -> Run {
    Live::start(&[], scenario).finish()
}

/// The number after `key ` in `text`.
fn number(text: &str, key: &str) -> u64 {
    text.split_once(&format!("{key} "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{key} N` in {text:?}"))
}

/// Asserts `text` is `expected` followed by ` after_ms N` with `N` in
/// `range`.
fn timed(text: &str, expected: &str, range: std::ops::Range<u64>) {
    let (what, _) = text
        .split_once(" after_ms ")
        .unwrap_or_else(|| panic!("no after_ms in {text:?}"));
    assert_eq!(what, expected, "{text}");
    let ms = number(text, "after_ms");
    assert!(range.contains(&ms), "{text}: expected {range:?} ms");
}

/// `N` from `Some(N)` (a pid as the guest prints `Option<u32>`).
fn some_pid(text: &str) -> u64 {
    text.trim()
        .strip_prefix("Some(")
        .and_then(|t| t.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected Some(PID), got {text:?}"))
}

/// Whether `pid` is a live (not zombie) process of this machine.
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Whether `pid` is gone within `within`.
fn gone_within(pid: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

// ---------------------------------------------------------------------------
// Queues

/// 8 producers × 8 consumers, 100 000 items through one `Queue(1000)`:
/// every item got exactly once, each producer's items in order as each
/// consumer sees them.
#[test]
fn mpmc_bounded_queue_delivers_each_item_once_in_producer_order() {
    let run = run(&["mpmc", "1000"]).succeeded();
    check_mpmc(&run);
}

/// As above through an unbounded queue, whose puts spill to the broker when
/// the pipe is full.
#[test]
fn mpmc_unbounded_queue_delivers_each_item_once_in_producer_order() {
    let run = run(&["mpmc", "0"]).succeeded();
    check_mpmc(&run);
}

/// The bounded MPMC run with every process on one CPU: a `get` then never
/// looks for its item before it sleeps (no CPU to spare), and every item
/// still arrives once, in each producer's order.
#[test]
fn mpmc_on_one_cpu_delivers_each_item_once_in_producer_order() {
    let run = Live::start_on_one_cpu(&[], &["mpmc", "1000"])
        .finish()
        .succeeded();
    check_mpmc(&run);
}

/// Every process exited 0, and the guest's exactly-once and FIFO checks
/// found nothing.
fn check_mpmc(run: &Run) {
    let all_zero = format!("[{}]", ["Some(0)"; 8].join(", "));
    assert_eq!(run.line("producers"), all_zero, "{run}");
    assert_eq!(run.line("consumers"), all_zero, "{run}");
    assert_eq!(
        run.line("missing"),
        "0 repeated 0 foreign 0 fifo_breaks 0",
        "{run}"
    );
    assert_eq!(run.line("ok"), "100000", "{run}");
}

/// `Queue(2)`: `put` with a timeout on a full queue fails with `Full` after
/// about the timeout, `get` with a timeout on an empty one with `Empty`;
/// the `_nowait` forms; `qsize`/`empty`/`full`; a blocked `put` returns when
/// another process gets (CPython: `_TestQueue.test_put`, `test_get`).
#[test]
fn bounded_queue_times_out_when_full_and_when_empty() {
    let run = run(&["bounded"]).succeeded();
    assert_eq!(
        run.line("new"),
        "maxsize 2 qsize 0 empty true full false",
        "{run}"
    );
    assert_eq!(run.line("two"), "qsize 2 empty false full true", "{run}");
    timed(run.line("put_timeout"), "Err(Full)", 300..300 + SLACK_MS);
    assert_eq!(
        run.all("put_nowait"),
        ["put_nowait Err(Full)", "put_nowait Ok(())"],
        "{run}"
    );
    assert_eq!(
        run.all("get_nowait"),
        ["get_nowait Ok(1)", "get_nowait Err(Empty)"],
        "{run}"
    );
    assert_eq!(run.line("get "), "Ok(2) Ok(3)", "{run}");
    timed(run.line("get_timeout"), "Err(Empty)", 300..300 + SLACK_MS);
    assert_eq!(
        run.line("drained"),
        "qsize 0 empty true full false",
        "{run}"
    );
    // The child sleeps 300 ms after it starts, then gets one item.
    timed(run.line("blocked_put"), "Ok(())", 300..10_000);
    assert_eq!(run.line("rest"), "Ok(11) Ok(12)", "{run}");
    assert_eq!(run.line("child got"), "10", "{run}");
    assert_eq!(run.line("exitcode"), "Some(0)", "{run}");
}

/// A child puts 10 000 items (far more than a socket buffer holds) on an
/// unbounded queue and returns; main joins it before anyone gets an item.
/// In CPython this deadlocks unless the child's feeder thread can flush
/// (gh-73983, "joining processes that use queues"); here the join returns
/// at once, and main then gets every item, in order.
#[test]
fn an_unbounded_queue_outlives_its_joined_producer() {
    let run = run(&["unbounded_exit", "10000"]).succeeded();
    timed(
        run.line("joined"),
        "exitcode Some(0) alive false",
        0..10_000,
    );
    assert_eq!(run.line("qsize"), "10000", "{run}");
    assert_eq!(run.line("in_order"), "10000 of 10000", "{run}");
    assert_eq!(run.line("then"), "Err(Empty)", "{run}");
}

/// `JoinableQueue`: `join` waits for `task_done` of every item, done in
/// other processes; `join_timeout` runs out on an unfinished item; one
/// `task_done` too many fails (CPython: `_TestQueue.test_task_done`).
#[test]
fn joinable_queue_join_waits_for_every_task_done() {
    let run = run(&["joinable"]).succeeded();
    timed(
        run.line("unfinished join_timeout"),
        "Err(Timeout)",
        200..200 + SLACK_MS,
    );
    assert_eq!(run.line("get"), "Ok(5) task_done Ok(())", "{run}");
    assert_eq!(run.line("join"), "Ok(())", "{run}");
    assert_eq!(run.line("extra task_done is_err"), "true", "{run}");
    assert_eq!(run.line("all done join"), "Ok(())", "{run}");
    assert_eq!(run.line("sum"), "500500", "{run}");
    assert_eq!(run.line("exitcodes"), "[Some(0), Some(0)]", "{run}");
    assert_eq!(run.line("then"), "empty", "{run}");
}

/// Python 3.13's `Queue.shutdown` (CPython: `test_queue`'s
/// `test_shutdown_*`): after `shutdown()` puts fail with `ShutDown` and gets
/// take the items left, then fail; after `shutdown(immediate=True)` gets
/// fail at once and `join` returns (the items were marked done); consumers
/// and producers blocked in other processes wake up and fail.
#[test]
fn shutdown_fails_puts_and_then_gets_and_wakes_blocked_processes() {
    let run = run(&["shutdown"]).succeeded();
    assert_eq!(run.line("put after shutdown"), "Err(ShutDown)", "{run}");
    assert_eq!(run.line("gets"), "[Ok(1), Ok(2), Err(ShutDown)]", "{run}");
    assert_eq!(run.line("get_nowait"), "Err(ShutDown)", "{run}");
    assert_eq!(run.line("qsize"), "0", "{run}");
    assert_eq!(run.line("immediate get"), "Err(ShutDown)", "{run}");
    assert_eq!(run.line("immediate join"), "Ok(())", "{run}");
    assert_eq!(run.line("immediate qsize"), "0", "{run}");
    timed(
        run.line("blocked gets"),
        r#"[Ok("Err(ShutDown)"), Ok("Err(ShutDown)")]"#,
        0..SLACK_MS,
    );
    timed(
        run.line("blocked put"),
        r#"Ok("Err(ShutDown)")"#,
        0..SLACK_MS,
    );
    assert_eq!(run.line("left"), "Ok(1)", "{run}");
}

/// `close`, `join_thread` and `cancel_join_thread` (CPython:
/// `_TestQueue.test_close`/`test_cancel_join_thread`): `join_thread` wants
/// the queue closed, then returns at once, as there is no feeder thread to
/// wait for.
#[test]
fn join_thread_needs_close_and_then_returns() {
    let run = run(&["join_thread"]).succeeded();
    assert_eq!(run.line("open join_thread is_err"), "true", "{run}");
    assert_eq!(run.line("closed join_thread"), "Ok(())", "{run}");
    assert_eq!(run.line("closed put"), "Err(Closed)", "{run}");
}

// ---------------------------------------------------------------------------
// Pipes

/// `send_bytes(buf, offset, size)` (CPython: `_TestConnection.test_connection`
/// sends `arr, 2, 3` and checks the `ValueError`s): the slice arrives as one
/// message; a range outside the buffer is refused before anything is sent.
#[test]
fn send_bytes_range_sends_the_slice_and_refuses_bad_ranges() {
    let run = run(&["send_bytes_range"]).succeeded();
    assert_eq!(run.line("range 2 Some(3)"), r#"Ok(()) Ok("cde")"#, "{run}");
    assert_eq!(run.line("range 4 None"), r#"Ok(()) Ok("ef")"#, "{run}");
    assert_eq!(run.line("range 6 Some(0)"), r#"Ok(()) Ok("")"#, "{run}");
    assert_eq!(run.line("range 0 None"), r#"Ok(()) Ok("abcdef")"#, "{run}");
    assert_eq!(run.all("bad ").len(), 3, "{run}");
    for line in run.all("bad ") {
        assert!(line.ends_with("is_err true"), "{line}\n{run}");
    }
    assert_eq!(run.line("nothing sent"), "Ok(false)", "{run}");
}

/// A consumer killed (SIGKILL) while blocked in `get` takes no item with
/// it; a producer killed while blocked in `put` on a full `Queue(1)` lands
/// nothing, and the queue's one slot is neither leaked nor doubled.
#[test]
fn a_process_killed_inside_get_or_put_costs_no_item_and_no_slot() {
    let run = run(&["killed_while_blocked"]).succeeded();
    assert_eq!(run.line("get killed exitcode"), "Some(-9)", "{run}");
    assert_eq!(
        run.line("after get"),
        "Ok(1) qsize 0 empty true full false",
        "{run}"
    );
    assert_eq!(run.line("put killed exitcode"), "Some(-9)", "{run}");
    assert_eq!(
        run.line("after put"),
        "qsize 1 empty false full true",
        "{run}"
    );
    assert_eq!(run.line("items"), "Ok(1) Err(Empty)", "{run}");
    assert_eq!(run.line("room"), "Ok(()) Err(Full)", "{run}");
    assert_eq!(run.line("end"), "qsize 1 empty false full true", "{run}");
    assert!(run.all("blocked_").is_empty(), "{run}");
}

// ---------------------------------------------------------------------------
// Pipes

/// A 5 MiB item through a queue, and 5 MiB messages through a pipe both
/// ways (`send` and `send_bytes`), arrive byte-exact.
#[test]
fn five_mib_arrive_byte_exact_through_a_queue_and_a_pipe() {
    let run = run(&["big"]).succeeded();
    for what in ["queue", "pipe", "pipe_bytes"] {
        assert_eq!(
            run.line(&format!("{what} len")),
            "5242880 exact true",
            "{run}"
        );
    }
    assert_eq!(run.line("child_got exact"), "true", "{run}");
    assert_eq!(run.line("exitcode"), "Some(0)", "{run}");
}

/// The only other holder of a pipe's end is killed with SIGKILL: `recv`
/// fails with `Eof` (every time after), promptly, and never hangs.
#[test]
fn recv_fails_with_eof_when_the_peer_is_killed() {
    let run = run(&["eof_kill"]).succeeded();
    assert_eq!(run.line("first"), r#"Ok("ready")"#, "{run}");
    timed(run.line("poll"), "true", 0..5_000);
    assert_eq!(run.line("recv"), "Err(Eof)", "{run}");
    assert_eq!(run.line("again"), "Err(Eof)", "{run}");
    assert_eq!(run.line("exitcode"), "Some(-9)", "{run}");
}

/// The peer returns (dropping its end) after one message: that message,
/// then `Eof`.
#[test]
fn recv_fails_with_eof_when_the_peer_returns() {
    let run = run(&["eof_return"]).succeeded();
    assert_eq!(run.line("first"), r#"Ok("bye")"#, "{run}");
    timed(run.line("poll"), "true", 0..5_000);
    assert_eq!(run.line("recv"), "Err(Eof)", "{run}");
    assert_eq!(run.line("again"), "Err(Eof)", "{run}");
    assert_eq!(run.line("exitcode"), "Some(0)", "{run}");
}

/// `wait` over two connections, a queue and a process sentinel returns the
/// positions of the ready ones, ascending; nothing after its timeout; end
/// of file counts as ready (CPython: `TestWait`).
#[test]
fn wait_returns_the_ready_connections_queues_and_sentinels() {
    let run = run(&["wait"]).succeeded();
    timed(run.line("wait none"), "[]", 200..200 + SLACK_MS);
    timed(run.line("wait conn2"), "[1]", 0..5_000);
    timed(run.line("wait queue"), "[2]", 0..5_000);
    timed(run.line("wait process"), "[3]", 0..5_000);
    timed(run.line("wait all_but_conn2"), "[0, 2, 3]", 0..5_000);
    timed(run.line("wait eof_and_process"), "[0, 3]", 0..5_000);
    assert_eq!(run.line("recv_after_eof"), "Err(Eof)", "{run}");
    timed(run.line("zero"), "[]", 0..SLACK_MS);
    assert_eq!(run.line("exitcode"), "Some(0)", "{run}");
    assert_eq!(run.line("then"), "empty", "{run}");
}

// ---------------------------------------------------------------------------
// Capabilities

/// Made-up capability tokens (0, 1, 12345, `u64::MAX`, and neighbours of a
/// real token) decoded as a queue, joinable queue, connection or process
/// are refused (`InvalidHandle`), never someone else's object; as process
/// arguments they fail the process, not the run. The real token works, and
/// the run carries on.
#[test]
fn forged_tokens_are_refused_and_the_run_stays_healthy() {
    let run = run(&["forged"]).succeeded();
    let forged = run.all("forged ");
    let refusals: Vec<&&str> = forged
        .iter()
        .filter(|l| !l.starts_with("forged args"))
        .collect();
    assert_eq!(refusals.len(), 7 * 4, "{run}");
    for line in refusals {
        assert!(
            line.contains("Err(Codec(\"cannot adopt a mpwasm::")
                && line.contains("not valid in this process"),
            "{line}\n{run}"
        );
    }
    assert_eq!(run.line("real token adopted get"), "Ok(42)", "{run}");
    assert_eq!(run.line("forged args exitcode"), "Some(1)", "{run}");
    assert!(run.all("takes_queue ran").is_empty(), "{run}");
    assert!(
        run.stderr.contains("not valid in this process"),
        "the failed process says why on stderr\n{run}"
    );
    assert_eq!(run.line("healthy"), r#"Ok("still fine")"#, "{run}");
}

// ---------------------------------------------------------------------------
// Processes

/// `join_timeout` on a sleeping child returns after the timeout with the
/// child still running (`exitcode` `None`, `is_alive`); a later `join`
/// gives 0 (CPython: `_TestProcess.test_process` join(timeout)).
#[test]
fn join_timeout_leaves_a_sleeping_child_running() {
    let run = run(&["join_timeout"]).succeeded();
    let line = run.line("join_timeout");
    let ms = number(line, "after_ms");
    // The child sleeps 1500 ms: the join must come back well before that.
    assert!((300..1400).contains(&ms), "{line}");
    assert!(line.starts_with("Ok(()) "), "{line}");
    assert!(line.ends_with("exitcode None alive true"), "{line}");
    assert_eq!(
        run.line("join "),
        "Ok(()) exitcode Some(0) alive false",
        "{run}"
    );
}

/// `terminate` stops a child stuck in a loop that never calls the host:
/// exit code -15, promptly (CPython: `_TestProcess.test_terminate`).
#[test]
fn terminate_stops_a_busy_loop_with_minus_15() {
    let run = run(&["terminate"]).succeeded();
    timed(run.line("exitcode"), "Some(-15)", 0..2_000);
}

/// Every exit code: `None` before start and while running, 0 on return, 1
/// after a panic, an `Err` or a trap, -9 after `kill`, -15 after
/// `terminate`; the child's pid is not main's (CPython:
/// `_TestProcess.test_process`, `test_kill`).
#[test]
fn exit_codes_follow_python() {
    let run = run(&["exitcodes"]).succeeded();
    assert_eq!(
        run.line("unstarted"),
        "exitcode None pid None alive false",
        "{run}"
    );
    assert_eq!(run.line("running"), "exitcode None alive true", "{run}");
    assert!(run.line("pids differ").starts_with("true "), "{run}");
    assert_eq!(run.line("returns"), "exitcode Some(0) alive false", "{run}");
    for (what, code) in [
        ("panics", "Some(1)"),
        ("fails", "Some(1)"),
        ("traps", "Some(1)"),
        ("kill", "Some(-9)"),
        ("terminate", "Some(-15)"),
    ] {
        assert_eq!(run.line(&format!("{what} exitcode")), code, "{run}");
    }
    assert!(
        run.stderr.contains("this child panics on purpose")
            && run.stderr.contains("this child fails on purpose"),
        "failures are reported on stderr\n{run}"
    );
    // Issue 9, item 9: a panic is reported as one (it was `trapped:`), an
    // `Err` as a failure, an abort as a trap, each with its reason.
    for needle in [
        ": panic: this child panics on purpose",
        ": failed: this child fails on purpose",
        ": trap: wasm trap: wasm `unreachable`",
    ] {
        assert!(run.stderr.contains(needle), "{needle:?}\n{run}");
    }
}

/// A non-daemon child starts a daemon grandchild and returns: when main has
/// joined the child, the grandchild was terminated (-15) and its pid is
/// gone from /proc (CPython: daemon children are terminated when their
/// parent exits).
#[test]
fn a_daemon_grandchild_ends_with_its_parent() {
    let mut live = Live::start(&[], &["daemon_grandchild"]);
    let daemon = live.expect("daemon pid");
    let pid = number(&format!("pid {daemon}"), "pid");
    assert!(daemon.ends_with("daemon true alive true"), "{daemon}");
    assert_eq!(live.expect("child exitcode"), "Some(0)");
    let ended = live.expect("daemon exitcode");
    assert!(ended.starts_with("Some(-15) alive false "), "{ended}");
    assert_eq!(live.expect("check"), pid.to_string());
    // Main now sleeps 1.5 s before it returns: the daemon must be gone
    // already, not at the end of the run.
    assert!(
        gone_within(pid, Duration::from_secs(1)),
        "daemon {pid} still alive after its parent ended"
    );
    live.expect("done");
    live.finish().succeeded();
}

/// Main returns while a daemon child sleeps forever: `mpwasm run` exits
/// promptly and the daemon is gone.
#[test]
fn main_returning_ends_its_daemon_children() {
    let mut live = Live::start(&[], &["daemon_at_exit"]);
    let pid = live.expect("daemon pid").parse::<u64>().unwrap();
    let t = Instant::now();
    let run = live.finish().succeeded();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?} to exit after main returned\n{run}",
        t.elapsed()
    );
    assert!(
        gone_within(pid, Duration::from_secs(1)),
        "daemon {pid} outlived the run"
    );
}

/// Main returns at once; its non-daemon child, sleeping 300 ms, still runs
/// to its end (and prints) before the run exits.
#[test]
fn non_daemon_children_are_joined_at_exit() {
    let run = run(&["nondaemon_at_exit"]).succeeded();
    assert_eq!(
        run.lines,
        ["main returns", "child done after 300 ms"],
        "{run}"
    );
}

/// Main → child → grandchild: names `Process-1` and `Process-1:1`,
/// `parent_process()` names the right parent (`MainProcess` for the
/// child, none for main), `active_children` in main (CPython:
/// `_TestProcess.test_parent_process`, `test_active_children`).
#[test]
fn nested_processes_are_named_after_their_parents() {
    let run = run(&["nested"]).succeeded();
    let main = run.line("main name");
    assert!(
        main.starts_with("MainProcess pid ") && main.ends_with(" parent None"),
        "{run}"
    );
    let main_pid = number(main, "pid");
    let child_pid = some_pid(run.line("main started Process-1 pid"));
    assert_eq!(run.line("active_children"), r#"["Process-1"]"#, "{run}");
    assert_eq!(
        run.line("child name"),
        format!(r#"Process-1 pid {child_pid} parent Some("MainProcess:{main_pid}")"#),
        "{run}"
    );
    let started = run.line("child started");
    assert!(started.starts_with("Process-1:1 pid Some("), "{run}");
    let grandchild_pid = some_pid(started.trim_start_matches("Process-1:1 pid"));
    assert_eq!(
        run.line("grandchild name"),
        format!(r#"Process-1:1 pid {grandchild_pid} parent Some("Process-1:{child_pid}")"#),
        "{run}"
    );
    let pids = [main_pid, child_pid, grandchild_pid];
    assert!(
        pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2],
        "{run}"
    );
    assert_eq!(run.line("child joined exitcode"), "Some(0)", "{run}");
    assert_eq!(run.line("main joined exitcode"), "Some(0)", "{run}");
    assert_eq!(run.line("active_after"), "0", "{run}");
}

/// Issues 5 and 10: `--max-processes 4` counts every worker process of the
/// run, main included, so the fourth concurrent start fails with a limit
/// error the guest can print; the run carries on (the three finish, a later
/// start succeeds) and exits 0.
#[test]
fn the_process_cap_refuses_the_start_past_it() {
    let run = Live::start(&["--max-processes", "4"], &["process_cap", "6"])
        .finish()
        .succeeded();
    assert_eq!(
        run.all("started"),
        ["started 0", "started 1", "started 2"],
        "{run}"
    );
    let refused = run.line("start 3 failed:");
    assert!(refused.starts_with("limit exceeded: "), "{run}");
    assert!(refused.contains("--max-processes"), "{run}");
    assert!(run.line("error").starts_with("Limit("), "{run}");
    assert_eq!(
        run.line("exitcodes"),
        "[Some(0), Some(0), Some(0)]",
        "{run}"
    );
    assert_eq!(run.line("after start"), "Ok(())", "{run}");
    assert_eq!(run.line("after exitcode"), "Some(0)", "{run}");
}

/// Issue 5 for processes: a child blocked in a host call (a queue `get`)
/// past `--task-timeout` is stopped by the parent's watchdog; without it the
/// run, which joins the child when main returns, would never end.
#[test]
fn a_child_blocked_past_its_deadline_is_stopped() {
    let mut live = Live::start(&["--task-timeout", "300ms"], &["blocked_child"]);
    let pid = live.expect("child pid").parse::<u64>().unwrap();
    let t = Instant::now();
    let run = live.finish().succeeded();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?} to end\n{run}",
        t.elapsed()
    );
    assert!(run.stderr.contains("deadline exceeded"), "{run}");
    assert!(
        gone_within(pid, Duration::from_secs(1)),
        "child {pid} outlived the run"
    );
}

// ---------------------------------------------------------------------------
// How processes end (issue 9)

/// Issue 9, item 4: main terminates a child P whose non-daemon grandchild G
/// sleeps. As in CPython (`terminate()` sends SIGTERM to P alone; its
/// children are not killed), G goes on running and ends normally. A second
/// orphan, still sleeping when main returns, ends with the run.
#[test]
fn a_grandchild_outlives_its_terminated_parent() {
    let run = run(&["orphan_grandchild"]).succeeded();
    assert_eq!(
        run.all("parent exitcode"),
        ["parent exitcode Some(-15)"; 2],
        "{run}"
    );
    assert_eq!(run.line("grandchild alive"), "true", "{run}");
    assert_eq!(run.line("grandchild exitcode"), "Some(0)", "{run}");
    let orphan = run.line("orphan");
    assert!(orphan.ends_with(" alive true"), "{run}");
    let pid = number(&format!("pid {orphan}"), "pid");
    assert!(
        gone_within(pid, Duration::from_secs(1)),
        "orphan {pid} outlived the run\n{run}"
    );
}

/// Issue 9, item 4, embedded: `Pool::run_main` in this process. Its
/// parent-death signal cannot end an orphan here (this process lives on),
/// so the run must: once the pool is dropped, no worker process this
/// process started is left.
#[test]
fn an_embedded_run_leaves_no_orphan_behind() {
    let pool = mpwasm::Pool::builder(guest("msgkit"))
        .processes(1)
        .cache(mpwasm::Cache::new(shared_cache()))
        .worker_program(mpwasm_bin())
        .args(["msgkit.wasm", "orphan_grandchild"])
        .build()
        .unwrap();
    assert_eq!(pool.run_main().unwrap(), 0);
    drop(pool);
    // Exec'd workers carry the first variable; forked ones, and the zygote
    // they come from, the second.
    let ours = ["MPWASM_WORKER_PARENT", "MPWASM_ZYGOTE_PARENT"]
        .map(|var| format!("{var}={}", std::process::id()));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
                let pid = e.file_name().to_string_lossy().parse().unwrap_or(0);
                alive(pid)
                    && environ
                        .split(|&b| b == 0)
                        .any(|v| ours.iter().any(|o| v == o.as_bytes()))
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker processes {left:?} outlived the run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 9, item 5: `std::process::exit(0)` in a process's target gives
/// exitcode 0 (it was 1, reported as a trap); `exit(3)` gives 1: a
/// wasm32-wasip1 guest's `exit` goes through WASI preview 1's adapter,
/// which carries only success or failure.
#[test]
fn exit_in_a_target_is_its_exit_code() {
    let run = run(&["exit_codes"]).succeeded();
    assert_eq!(run.line("exit 0 exitcode"), "Some(0)", "{run}");
    assert_eq!(run.line("exit 3 exitcode"), "Some(1)", "{run}");
    assert!(!run.stderr.contains("trap"), "{run}");
}
