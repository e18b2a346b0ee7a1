//! `mpwasm pool`: JSON lines in, results out, through real worker processes.

mod common;
use common::*;

fn numbers(range: std::ops::RangeInclusive<i64>) -> String {
    range.map(|i| format!("{i}\n")).collect()
}

#[test]
fn ten_thousand_inputs_come_back_right_and_in_order() {
    let sq = guest("pool_square");
    let out = run_mpwasm(
        &["pool", sq.to_str().unwrap(), "-j", "3"],
        &numbers(1..=10_000),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let got: Vec<i64> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    let want: Vec<i64> = (1..=10_000).map(|i| i * i).collect();
    assert_eq!(got, want);
}

#[test]
fn two_hundred_thousand_squares_in_order() {
    let sq = guest("pool_square");
    let out = run_mpwasm(
        &["pool", sq.to_str().unwrap(), "--task", "square"],
        &numbers(1..=200_000),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let mut n = 0i64;
    for (i, line) in text.lines().enumerate() {
        let x = i as i64 + 1;
        assert_eq!(line, (x * x).to_string(), "line {}", i + 1);
        n += 1;
    }
    assert_eq!(n, 200_000);
}

#[test]
fn unordered_returns_the_same_multiset() {
    let sq = guest("pool_square");
    let out = run_mpwasm(
        &[
            "pool",
            sq.to_str().unwrap(),
            "--unordered",
            "-j",
            "4",
            "--chunksize",
            "7",
        ],
        &numbers(1..=5_000),
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let mut got: Vec<i64> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    got.sort_unstable();
    let want: Vec<i64> = (1..=5_000).map(|i| i * i).collect();
    assert_eq!(got, want);
}

#[test]
fn a_panicking_task_fails_only_itself_and_its_message_reaches_the_caller() {
    let kit = guest("testkit");
    let out = run_mpwasm(
        &[
            "pool",
            kit.to_str().unwrap(),
            "--task",
            "unlucky",
            "--chunksize",
            "50",
        ],
        &numbers(1..=100),
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 100);
    for (i, line) in lines.iter().enumerate() {
        let x = i as i64 + 1;
        if x == 13 {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["index"], 12);
            assert_eq!(v["kind"], "panic");
            assert!(
                v["error"].as_str().unwrap().contains("unlucky number 13"),
                "{line}"
            );
        } else {
            assert_eq!(line, &(x * 2).to_string());
        }
    }
    assert!(
        stderr(&out).contains("1 of 100 tasks failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_trap_that_is_not_a_panic_fails_only_its_input() {
    let kit = guest("testkit");
    let out = run_mpwasm(
        &[
            "pool",
            kit.to_str().unwrap(),
            "--task",
            "trap_on_zero",
            "--chunksize",
            "10",
            "-j",
            "1",
        ],
        "3\n2\n1\n0\n-1\n-2\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..3], ["3", "2", "1"]);
    assert!(lines[3].contains("\"kind\":\"trap\""), "{}", lines[3]);
    assert_eq!(lines[4..], ["-1", "-2"]);
}

#[test]
fn task_errors_and_bad_input_are_reported_per_line() {
    let kit = guest("testkit");
    let out = run_mpwasm(
        &["pool", kit.to_str().unwrap(), "--task", "checked_sqrt"],
        "4\n-1\nnot json\n\"x\"\n9\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0], 2.0);
    assert_eq!(lines[1]["kind"], "failed");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("square root of -1"));
    assert_eq!(lines[2]["kind"], "bad_input");
    assert_eq!(lines[2]["index"], 2);
    assert_eq!(lines[3]["kind"], "bad_input");
    assert_eq!(lines[4], 3.0);
}

#[test]
fn several_arguments_come_as_a_json_array() {
    let kit = guest("testkit");
    let out = run_mpwasm(
        &["pool", kit.to_str().unwrap(), "-t", "add"],
        "[1, 2]\n[40, 2]\n",
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "3\n42\n");
}

#[test]
fn unknown_task_is_one_line_and_exit_2() {
    let kit = guest("testkit");
    let out = run_mpwasm(&["pool", kit.to_str().unwrap(), "--task", "nope"], "1\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no task named `nope`") && err.contains("unlucky"),
        "{err}"
    );
}

#[test]
fn several_tasks_need_a_choice() {
    let kit = guest("testkit");
    let out = run_mpwasm(&["pool", kit.to_str().unwrap()], "1\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("choose one with --task"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn guest_output_goes_to_stderr_not_into_the_results() {
    let kit = guest("testkit");
    let out = run_mpwasm(&["pool", kit.to_str().unwrap(), "-t", "shout"], "\"hey\"\n");
    assert!(out.status.success());
    assert_eq!(stdout(&out), "3\n");
    assert!(stderr(&out).contains("out: hey") && stderr(&out).contains("err: hey"));
}

#[test]
fn input_file_and_stats() {
    let sq = guest("pool_square");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, numbers(1..=100)).unwrap();
    let out = run_mpwasm(
        &[
            "pool",
            sq.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--stats",
        ],
        "",
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 100);
    assert!(stderr(&out).contains("tasks: 100"), "{}", stderr(&out));
}

#[test]
fn the_sandbox_has_no_files_and_no_environment() {
    let kit = guest("testkit");
    let out = run_mpwasm(
        &["pool", kit.to_str().unwrap(), "-t", "read_file"],
        "\"/etc/passwd\"\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"kind\":\"failed\""),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("root:"));
    let out = run_mpwasm(
        &["pool", kit.to_str().unwrap(), "-t", "env_var"],
        "\"PATH\"\n\"HOME\"\n",
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out), "null\nnull\n");
}

#[test]
fn help_reads_at_every_level() {
    for args in [
        &["--help"][..],
        &["pool", "--help"],
        &["compile", "--help"],
        &["inspect", "--help"],
        &["run", "--help"],
    ] {
        let out = run_mpwasm(args, "");
        assert!(out.status.success());
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
    let out = run_mpwasm(&["pool", "--help"], "");
    assert!(stdout(&out).contains("--unordered") && stdout(&out).contains("exit status 1"));
}

#[test]
fn an_input_over_max_message_is_refused_in_one_line() {
    let square = guest("pool_square");
    let long = format!("\"{}\"\n", "a".repeat(100));
    let out = run_mpwasm(
        &[
            "pool",
            square.to_str().unwrap(),
            "-t",
            "square",
            "--max-message",
            "20B",
        ],
        &long,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("input 0 is 102 bytes, over the message limit of 20"),
        "{err}"
    );
}
