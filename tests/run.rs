//! `mpwasm run`: a guest's main as the main process, in a sandboxed worker.

mod common;
use common::*;

#[test]
fn main_runs_in_its_own_process_with_its_arguments() {
    let kit = guest("testkit");
    let out = run_mpwasm(&["run", kit.to_str().unwrap(), "a", "-b", "--c"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(r#"args ["a", "-b", "--c"]"#), "{text}");
    let pid: u32 = text.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_ne!(pid, 0);
}

#[test]
fn the_exit_status_is_mains() {
    let kit = guest("testkit");
    let kit = kit.to_str().unwrap();
    assert_eq!(
        run_mpwasm(&["run", kit, "code", "7"], "").status.code(),
        Some(7)
    );
    assert_eq!(
        run_mpwasm(&["run", kit, "exit", "0"], "").status.code(),
        Some(0)
    );
    assert_eq!(
        run_mpwasm(&["run", kit, "exit", "5"], "").status.code(),
        Some(1)
    );
    let panicked = run_mpwasm(&["run", kit, "panic"], "");
    assert_eq!(panicked.status.code(), Some(1));
    assert!(
        stderr(&panicked).contains("main gave up"),
        "{}",
        stderr(&panicked)
    );
    assert!(
        stderr(&panicked).contains("testkit.wasm!"),
        "wasm backtrace: {}",
        stderr(&panicked)
    );
}

#[test]
fn a_guest_without_main_exits_2() {
    let out = run_mpwasm(&["run", guest("primes").to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no #[mpwasm_guest::main]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_takes_the_sandbox_options_and_bad_files_exit_2() {
    let kit = guest("testkit");
    let out = run_mpwasm(&["run", "--memory", "64MiB", kit.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, "nope").unwrap();
    let out = run_mpwasm(&["run", bad.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}
