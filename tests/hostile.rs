//! Issue 10, "bounded by construction": a hostile guest (`tests/guests/hostile`)
//! against the real `mpwasm` binary and real worker processes.
//!
//! - item 6: the JSON-lines output of `mpwasm pool` is one compact value per
//!   input line, and only the host writes error lines;
//! - item 9: `mpwasm run` exits 1 (not 2) when main is stopped past its
//!   deadline, and deadlines are measured by the clock, not by ticks;
//! - item 10: a damaged compiled artifact in the cache is compiled again.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hostile() -> String {
    guest("hostile").to_str().unwrap().to_string()
}

/// How a consumer reads a line of `mpwasm pool` (the rule in the README's
/// CLI reference): `Err` for the host's error lines, `Ok` for results.
fn read_line(line: &str) -> Result<serde_json::Value, serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
    match value.as_object() {
        Some(o) if o.contains_key("error") => Err(value),
        Some(o) if o.len() == 1 && o.contains_key("result") => Ok(o["result"].clone()),
        _ => Ok(value),
    }
}

// ---- item 6: the JSON-lines contract ----

#[test]
fn a_result_spread_over_lines_takes_one_line() {
    let out = run_mpwasm(
        &["pool", &hostile(), "--task", "pretty", "-j", "1"],
        "1\n10\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "[1,2,3]\n[10,11,12]\n");
}

#[test]
fn bytes_that_are_not_one_json_value_fail_their_own_input() {
    let input = "0\n1\n2\n3\n4\n5\n";
    let out = run_mpwasm(&["pool", &hostile(), "--task", "garbage", "-j", "1"], input);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "one line per input:\n{text}");
    for (i, line) in lines[..5].iter().enumerate() {
        let e = read_line(line).expect_err(line);
        assert_eq!(e["kind"], "bad_output", "{line}");
        assert_eq!(e["index"], i, "{line}");
    }
    assert_eq!(lines[5], r#"{"a b":["c\" d",null]}"#);
}

#[test]
fn a_result_shaped_like_an_error_line_is_still_a_result() {
    let out = run_mpwasm(
        &["pool", &hostile(), "--task", "forged_error", "-j", "1"],
        "0\n1\n\"x\"\n",
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, line) in lines[..2].iter().enumerate() {
        let value = read_line(line).unwrap_or_else(|e| panic!("taken for an error: {e}"));
        assert_eq!(value["index"], i + 3, "the guest's object, intact: {line}");
    }
    // The host's own error line for the input that did fail.
    let e = read_line(lines[2]).expect_err(lines[2]);
    assert_eq!((&e["kind"], &e["index"]), (&"bad_input".into(), &2.into()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 of 3 tasks failed"),
        "{}",
        stderr(&out)
    );

    // The wrapper's own shape is wrapped too, so unwrapping is exact.
    let out = run_mpwasm(&["pool", &hostile(), "--task", "looks_wrapped"], "7\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"result\":{\"result\":7}}\n");
    assert_eq!(
        read_line(stdout(&out).trim()),
        Ok(serde_json::json!({"result": 7}))
    );
}

// ---- item 9: honest exit statuses and deadlines ----

#[test]
fn main_stopped_by_the_watchdog_exits_1_with_one_line() {
    let t = Instant::now();
    let out = run_mpwasm(&["run", "--task-timeout", "300ms", &hostile(), "block"], "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(!err.contains("cannot start worker process"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("mpwasm: "))
        .unwrap_or_else(|| panic!("no mpwasm line: {err}"));
    assert!(
        line.starts_with("mpwasm: main") && line.contains("ran past its deadline"),
        "{err}"
    );
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// A worker that is not scheduled for a while (here: stopped for 700 ms
/// with SIGSTOP, as a starved CPU would leave it) still ends its task at the
/// task's own deadline, by the clock. Counting 5 ms ticks, it would have
/// run 700 ms past it, and the parent's watchdog (100 ms after the
/// deadline) would have killed the whole worker process instead.
#[test]
fn a_deadline_is_kept_by_the_clock_when_the_worker_is_not_scheduled() {
    let cache = shared_cache();
    let mut child = Command::new(mpwasm_bin())
        .args(["pool", &hostile(), "--task", "announce_spin", "-j", "1"])
        .args(["--task-timeout", "1s"])
        .env("MPWASM_CACHE_DIR", &cache)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpwasm");
    child.stdin.take().unwrap().write_all(b"0\n").unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let pid: u32 = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "no task started");
        if let Some(pid) = line.trim().strip_prefix("spinning in pid ") {
            break pid.parse().unwrap();
        }
    };
    std::thread::sleep(Duration::from_millis(50));
    signal(pid, "-STOP");
    std::thread::sleep(Duration::from_millis(700));
    signal(pid, "-CONT");
    let out = child.wait_with_output().expect("wait mpwasm");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    let text = stdout(&out);
    let e = read_line(text.trim()).expect_err(&text);
    assert_eq!(e["kind"], "timeout", "{text}{rest}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("the task was stopped"),
        "stopped by the worker at its deadline, not by the watchdog: {text}{rest}"
    );
}

// ---- item 10: the cache heals itself ----

/// Compiles the hostile guest into `cache` and returns its artifact.
fn compiled_artifact(cache: &std::path::Path) -> std::path::PathBuf {
    let out = run_mpwasm_in(cache, &["compile", &hostile()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let path = text.trim().rsplit(": ").next().unwrap();
    std::path::PathBuf::from(path)
}

/// The pool runs from `cache` and gives the right answer.
fn assert_pool_works(cache: &std::path::Path) {
    let out = run_mpwasm_in(cache, &["pool", &hostile(), "--task", "pretty"], "1\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "[1,2,3]\n");
}

#[test]
fn a_truncated_artifact_is_compiled_again() {
    let cache = cache_dir();
    let artifact = compiled_artifact(cache.path());
    let size = std::fs::metadata(&artifact).unwrap().len();
    let file = std::fs::File::options()
        .write(true)
        .open(&artifact)
        .unwrap();
    file.set_len(size / 2).unwrap();
    drop(file);
    assert_pool_works(cache.path());
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().len(),
        size,
        "rewritten"
    );
    let again = run_mpwasm_in(cache.path(), &["compile", &hostile()], "");
    assert!(stdout(&again).starts_with("cached "), "{}", stdout(&again));
}

#[test]
fn an_artifact_damaged_in_place_is_compiled_again() {
    let cache = cache_dir();
    let artifact = compiled_artifact(cache.path());
    let meta = std::fs::metadata(&artifact).unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    bytes[0] ^= 0xff; // the header: this artifact cannot be loaded
    std::thread::sleep(Duration::from_millis(20)); // damage comes later
    std::fs::write(&artifact, &bytes).unwrap();
    // Same size, same modification time: only the change time tells.
    let file = std::fs::File::options()
        .write(true)
        .open(&artifact)
        .unwrap();
    file.set_modified(meta.modified().unwrap()).unwrap();
    drop(file);
    assert_pool_works(cache.path());
    assert_ne!(std::fs::read(&artifact).unwrap()[0], bytes[0], "rewritten");
}

// ==== items 1 and 3: descriptors in flight, memory outside linear memory ====
// (scenarios: tests/guests/hostile/src/outside.rs)

mod outside {
    use super::*;

    /// `mpwasm run hostile.wasm outside-<scenario> ARGS…` with `flags`
    /// before the guest, as a plain command.
    fn run_command(cache: &std::path::Path, flags: &[&str], scenario: &[&str]) -> Command {
        let mut cmd = Command::new(mpwasm_bin());
        cmd.arg("--cache-dir")
            .arg(cache)
            .arg("run")
            .args(flags)
            .arg(hostile())
            .args(scenario)
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs a scenario to its end; its stdout lines, stderr and status.
    fn run_scenario(flags: &[&str], scenario: &[&str]) -> (Vec<String>, String, Option<i32>) {
        let out = run_command(&shared_cache(), flags, scenario)
            .stdin(Stdio::null())
            .output()
            .expect("start mpwasm");
        let lines = stdout(&out).lines().map(str::to_string).collect();
        (lines, stderr(&out), out.status.code())
    }

    /// The effective user id of this process.
    fn euid() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    }

    fn have(program: &str) -> bool {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `cmd`, run as a user without capabilities and with `ulimit -n 1024`
    /// (the limit the kernel also applies to that user's descriptors in
    /// flight): as root, as `nobody` through `setpriv`; otherwise as this
    /// user. `None`, with the reason, where that cannot be arranged.
    fn unprivileged(cmd: &Command) -> Result<Command, String> {
        if !have("prlimit") {
            return Err("prlimit (util-linux) is not installed".into());
        }
        let mut wrapped = if euid() == 0 {
            if !have("setpriv") {
                return Err("running as root and setpriv is not installed".into());
            }
            let mut w = Command::new("setpriv");
            w.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "prlimit",
            ]);
            w
        } else {
            Command::new("prlimit")
        };
        wrapped.arg("--nofile=1024:1024").arg(cmd.get_program());
        wrapped.args(cmd.get_args());
        wrapped.env_remove("RUST_LOG");
        Ok(wrapped)
    }

    /// A compile cache the unprivileged user may write.
    fn open_cache() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = cache_dir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        dir
    }

    /// Descriptors a process has open now.
    fn open_fds(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
    }

    /// A process's resident memory now, in KiB.
    fn rss_kib(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Item 1: 1,100 unread 40 KiB items held in one run's queue leave a
    /// second run of the same unprivileged user (`ulimit -n 1024`) able to
    /// make its `Value`s. Each item used to be a memfd in flight in the
    /// queue's socket: the kernel's per-user limit on descriptors in flight
    /// (`RLIMIT_NOFILE`) then refused the 1,025th put, and the other run's
    /// parent could not hand its worker a region.
    #[test]
    fn unread_large_items_leave_other_runs_their_descriptors() {
        let cache = open_cache();
        let flood = run_command(cache.path(), &[], &["outside-flood", "1100", "40"]);
        let values = run_command(cache.path(), &[], &["outside-values", "20"]);
        let (mut flood, mut values) = match (unprivileged(&flood), unprivileged(&values)) {
            (Ok(f), Ok(v)) => (f, v),
            (Err(why), _) | (_, Err(why)) => {
                eprintln!("skipped: cannot run as an unprivileged user: {why}");
                return;
            }
        };
        let mut holder = flood
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the flooding run");
        let started = Instant::now();
        let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
        let mut said = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("stdout");
            let done = line == "holding";
            said.push(line);
            if done {
                break;
            }
        }
        let flooded = started.elapsed();
        let (fds, rss) = (open_fds(holder.id()), rss_kib(holder.id()));
        let other = values.stdin(Stdio::null()).output().expect("second run");
        let _ = holder.kill();
        let _ = holder.wait();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut holder.stderr.take().unwrap(), &mut err);
        eprintln!(
            "1100 × 40 KiB unread in {flooded:?}; the holding run's parent: {fds} descriptors, \
             {rss} KiB RSS"
        );
        assert_eq!(
            said,
            ["ok items 1100 of 1100", "holding"],
            "the flooding run: {err}"
        );
        assert_eq!(
            (stdout(&other).trim(), other.status.code()),
            ("ok values 20 of 20", Some(0)),
            "the other run: {}",
            stderr(&other)
        );
    }

    /// The outcome line of a scenario: `Ok(count)` if all went, else
    /// `Err((made before the refusal, microseconds the refusal took, why))`.
    fn outcome(line: &str) -> Result<u64, (u64, u64, String)> {
        if let Some(rest) = line.strip_prefix("ok ") {
            return Ok(rest.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        let rest = line
            .strip_prefix("limit after ")
            .unwrap_or_else(|| panic!("{line}"));
        let mut words = rest.split_whitespace();
        let made = words.next().unwrap().parse().unwrap();
        let us = words
            .nth(2)
            .unwrap()
            .trim_end_matches("us:")
            .parse()
            .unwrap();
        Err((made, us, rest.to_string()))
    }

    /// Item 3: regions count against the run's shared memory
    /// (`--shared-memory`, 1 GiB by default), whatever `--memory` says:
    /// three 1 GiB regions under `--memory 64MiB` used to be made.
    #[test]
    fn regions_past_the_shared_memory_cap_are_refused() {
        let (lines, err, code) =
            run_scenario(&["--memory", "64MiB"], &["outside-regions", "3", "1024"]);
        assert_eq!(code, Some(0), "{err}");
        let (made, us, why) = outcome(&lines[0]).expect_err("a region past the cap");
        eprintln!("default cap: refused after {made} × 1 GiB in {us} µs");
        assert_eq!(made, 1, "{why}");
        assert!(why.contains("--shared-memory"), "{why}");
        assert_eq!(
            lines[1], "again after freeing: Ok(())",
            "given back when freed"
        );
        let (lines, err, _) = run_scenario(
            &["--shared-memory", "64MiB"],
            &["outside-regions", "4", "24"],
        );
        let (made, _, why) = outcome(&lines[0]).expect_err("a region past the cap");
        assert_eq!(made, 2, "{why} {err}");
    }

    /// Item 3: live objects are capped (`--max-objects`), and each queue's
    /// socket buffer counts against the shared memory: unread queues no
    /// longer take the machine's memory unseen.
    #[test]
    fn queues_past_the_object_and_shared_memory_caps_are_refused() {
        let (lines, err, code) = run_scenario(&["--max-objects", "50"], &["outside-queues", "100"]);
        assert_eq!(code, Some(0), "{err}");
        let (made, _, why) = outcome(&lines[0]).expect_err("a queue past the cap");
        assert_eq!(made, 50, "{why}");
        assert!(why.contains("--max-objects"), "{why}");
        assert_eq!(lines[1], "again after freeing: Ok(())");
        let (lines, err, _) =
            run_scenario(&["--shared-memory", "64MiB"], &["outside-queues", "1000"]);
        let (made, us, why) = outcome(&lines[0]).expect_err("a queue past the cap");
        eprintln!("--shared-memory 64MiB: refused queue {made} in {us} µs");
        assert!((8..=64).contains(&made), "{why} {err}");
        assert!(why.contains("--shared-memory"), "{why}");
        // A parent with `ulimit -n 1024` runs out of descriptors (3 per
        // queue) before the default caps: a limit error too, not a crash.
        if have("prlimit") {
            let mut cmd = Command::new("prlimit");
            cmd.arg("--nofile=1024:1024").arg(mpwasm_bin());
            cmd.args(["run", &hostile(), "outside-queues", "1000"]);
            let out = cmd
                .env("MPWASM_CACHE_DIR", shared_cache())
                .output()
                .unwrap();
            let text = stdout(&out);
            let (made, _, why) = outcome(text.lines().next().unwrap_or_default())
                .expect_err("a queue past the descriptors");
            assert!(why.contains("ulimit -n"), "{why}");
            eprintln!("ulimit -n 1024: refused queue {made}");
            assert_eq!(text.lines().nth(1), Some("again after freeing: Ok(())"));
        }
    }

    /// Item 3: items waiting in the parent — spilled from a full socket
    /// (under 32 KiB) or kept for their size (40 KiB) — are paid for by the
    /// run's `--host-memory`: 2,000 unread items under a 16 MiB budget
    /// are refused instead of growing the parent.
    #[test]
    fn items_the_parent_keeps_are_charged_to_the_host_memory() {
        for kib in ["31", "40"] {
            let started = Instant::now();
            let (lines, err, code) =
                run_scenario(&["--host-memory", "16MiB"], &["outside-spill", "2000", kib]);
            assert_eq!(code, Some(0), "{err}");
            let (made, us, why) = outcome(&lines[0]).expect_err("an item past the budget");
            eprintln!(
                "{kib} KiB items, 16 MiB budget: refused after {made} in {us} µs ({:?} in all)",
                started.elapsed()
            );
            assert!(why.contains("--host-memory"), "{why}");
            // What the socket holds (2 MiB of kernel buffer) plus the budget.
            assert!(made * 31 < 20 << 10, "{made} items of {kib} KiB");
        }
    }

    /// Item 3: a worker keeps the arguments of processes described and not
    /// started within twice `--max-message`; describing more makes their
    /// `start` fail with a `limit` error instead of growing the worker.
    #[test]
    fn unstarted_process_arguments_are_bounded_in_the_worker() {
        let (lines, err, code) =
            run_scenario(&["--max-message", "8MiB"], &["outside-args", "20", "4"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            lines[0].starts_with("described 20, last start in") && lines[0].contains("Limit("),
            "{lines:?}"
        );
        assert!(lines[0].contains("twice --max-message"), "{lines:?}");
        let (lines, err, _) = run_scenario(&["--max-message", "8MiB"], &["outside-args", "3", "4"]);
        assert!(
            lines[0].ends_with("Some(Ok(()))"),
            "within the bound: {lines:?} {err}"
        );
    }

    /// Large items still arrive whole, in order, through the broker.
    #[test]
    fn large_items_arrive_whole() {
        let (lines, err, code) = run_scenario(&[], &["outside-big-items", "40", "100"]);
        assert_eq!(
            (lines, code),
            (vec!["ok 40 items back".to_string()], Some(0)),
            "{err}"
        );
    }
}
