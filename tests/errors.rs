//! What failures are called and what they say (issue 9, items 8 and 9):
//! one vocabulary of task failure kinds across the guest SDK, the host
//! crate and the CLI; messages that name what went wrong and what to do.

mod common;
use common::*;

use mpwasm::{Error, TaskErrorKind};

/// `mpwasm run testkit.wasm kinds`: the guest SDK's names, then one line per
/// failure a guest pool reported, as `case CASE: KIND MESSAGE`.
fn guest_kinds() -> String {
    let out = run_mpwasm(&["run", guest("testkit").to_str().unwrap(), "kinds"], "");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// The rest of the line of `text` starting with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}…` in\n{text}"))
}

/// The kind a host-crate pool reports for `task` on `arg`.
fn host_failure<A: serde::Serialize>(task: &str, arg: A) -> mpwasm::TaskError {
    match pool("testkit", 1).apply::<A, serde::de::IgnoredAny>(task, arg) {
        Err(Error::Task(e)) => e,
        other => panic!("{task}: expected a task failure, got {other:?}"),
    }
}

/// The JSON line `mpwasm pool testkit.wasm --task TASK` writes for `input`.
fn cli_failure(task: &str, input: &str) -> serde_json::Value {
    let kit = guest("testkit");
    let out = run_mpwasm(
        &[
            "pool",
            kit.to_str().unwrap(),
            "--task",
            task,
            "--no-progress",
        ],
        &format!("{input}\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("one JSON line")
}

/// Item 8: the guest SDK's `task_kind::ALL`, the host's
/// `TaskErrorKind::ALL` and the CLI's `"kind"` are the same names, and the
/// kinds a guest pool, a host pool and the CLI report for the same failure
/// are the same string.
#[test]
fn the_guest_sdk_the_host_crate_and_the_cli_name_failures_alike() {
    let guest = guest_kinds();
    let host: Vec<&str> = TaskErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        line(&guest, "sdk kinds ").split(' ').collect::<Vec<_>>(),
        host
    );
    for (case, task, input, kind) in [
        ("panic", "unlucky", 13, TaskErrorKind::Panic),
        ("trap", "trap_on_zero", 0, TaskErrorKind::Trap),
    ] {
        let in_guest = line(&guest, &format!("case {case}: "));
        assert!(in_guest.starts_with(&format!("{kind} ")), "{in_guest}");
        let in_host = host_failure(task, input as i64);
        assert_eq!(in_host.kind, kind);
        assert!(
            in_host.to_string().contains(&format!("({kind})")),
            "{in_host}"
        );
        let in_cli = cli_failure(task, &input.to_string());
        assert_eq!(in_cli["kind"], kind.as_str(), "{in_cli}");
        let error = in_cli["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("{kind}: ")), "{error}");
    }
    for (case, kind) in [
        ("failed", TaskErrorKind::Failed),
        ("bad_input", TaskErrorKind::BadInput),
        ("unknown_task", TaskErrorKind::UnknownTask),
    ] {
        let in_guest = line(&guest, &format!("case {case}: "));
        assert!(in_guest.starts_with(&format!("{kind} ")), "{in_guest}");
    }
}

/// Item 9: an input of the wrong type names the task, the type it takes and
/// what was wrong, from the CLI (JSON) and from a guest pool (bincode); it
/// was `bad input: UnexpectedEnd { additional: 5 }`.
#[test]
fn a_bad_input_names_the_task_and_the_type() {
    let in_cli = cli_failure("echo", "5");
    let error = in_cli["error"].as_str().unwrap();
    for needle in [
        "`echo`",
        "alloc::string::String",
        "invalid type: integer `5`",
    ] {
        assert!(error.contains(needle), "{needle:?} in {error}");
    }
    let guest = guest_kinds();
    let in_guest = line(&guest, "case bad_input: ");
    for needle in ["`echo`", "alloc::string::String", "bincode", "too short"] {
        assert!(in_guest.contains(needle), "{needle:?} in {in_guest}");
    }
    assert!(!in_guest.contains("UnexpectedEnd"), "{in_guest}");
}

/// Item 9: a trap's message is its reason (not the heading of the wasm
/// backtrace it carries), and a pool task that calls `exit` is told so.
#[test]
fn a_trap_says_why() {
    let trap = host_failure("trap_on_zero", 0_i64);
    assert!(trap.message.contains("unreachable"), "{trap}");
    let exit = host_failure("exits", 3_i32);
    assert_eq!(exit.kind, TaskErrorKind::Trap);
    assert!(exit.message.contains("called exit"), "{exit}");
    assert!(!exit.message.contains("wasm backtrace"), "{exit}");
}

/// Item 9: `mpwasm run` on a guest without main names the file.
#[test]
fn run_without_main_names_the_file() {
    let primes = guest("primes");
    let out = run_mpwasm(&["run", primes.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&primes.display().to_string()), "{err}");
    assert!(err.contains("no #[mpwasm_guest::main]"), "{err}");
}

/// Item 9: a worker program that is not an mpwasm worker (as an embedding
/// program that forgot `mpwasm::init()` is: here `/bin/true`, a real
/// program that exits at once) is reported with what to do, not as a bare
/// `Connection reset by peer`.
#[test]
fn a_program_that_is_not_a_worker_is_told_to_call_init() {
    let pool = mpwasm::Pool::builder(guest("testkit"))
        .worker_program("/bin/true")
        .cache(mpwasm::Cache::new(shared_cache()))
        .processes(1)
        .build();
    let e = match pool.map(|p| p.apply::<i64, i64>("add", 1)) {
        Ok(Ok(n)) => panic!("/bin/true answered {n}"),
        Ok(Err(e)) | Err(e) => e.to_string(),
    };
    assert!(e.contains("mpwasm::init()"), "{e}");
    assert!(e.contains("/bin/true"), "{e}");
}
