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
