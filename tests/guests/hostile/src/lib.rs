//! Hostile test guest (issue 10): tasks and a `main` that try to break what
//! the host promises about its output, its exit statuses and its deadlines.
//! `tests/hostile.rs` drives each through the real `mpwasm` binary.
//!
//! `bounds` holds the scenarios of items 2, 4, 5, 7 and 8 (what the parent
//! may be made to hold), selected by main's first argument.
//!
//! Some tasks write raw result bytes through the SDK's hidden registration
//! API, as any guest not built with the SDK could: the host must not trust
//! that a "JSON" result is one compact JSON value.

mod bounds;

use mpwasm_guest::internal::{inventory, Codec, Task, TaskError};
use serde::Serialize;

mod outside;
mod staged;

/// The JSON number `input`, or a `bad-input` error.
fn number(input: &[u8]) -> Result<i64, TaskError> {
    std::str::from_utf8(input)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| TaskError::BadInput("expected an integer".into()))
}

/// `x` → the bytes `[x,\n x+1,\n x+2]\n`: one valid JSON value over three
/// lines, which a host writing results as they are prints as three lines.
fn pretty(_codec: Codec, input: &[u8], out: &mut Vec<u8>) -> Result<(), TaskError> {
    let x = number(input)?;
    out.extend_from_slice(format!("[{x},\n {},\n {}]\n", x + 1, x + 2).as_bytes());
    Ok(())
}

inventory::submit! { Task { name: "pretty", run: pretty } }

/// `x` → bytes that are not one JSON value (by `x`: two values, a cut-off
/// object, invalid UTF-8 in a string, nothing at all, a bare newline), or,
/// from 5 on, a valid object with blanks and a line break inside.
fn garbage(_codec: Codec, input: &[u8], out: &mut Vec<u8>) -> Result<(), TaskError> {
    let bytes: &[u8] = match number(input)? {
        0 => b"1\n2",
        1 => b"{\"a\":",
        2 => b"\"\xff\"",
        3 => b"",
        4 => b"\n",
        _ => b"{ \"a b\" :\n\t[ \"c\\\" d\" , null ] }\r\n",
    };
    out.extend_from_slice(bytes);
    Ok(())
}

inventory::submit! { Task { name: "garbage", run: garbage } }

/// An object shaped exactly like the CLI's error line.
#[derive(Serialize)]
struct ForgedError {
    error: String,
    kind: String,
    index: u64,
}

/// Input `i` → an error line for input `i + 3`, as a *result*: a consumer
/// of `mpwasm pool` must not take it for the host's report of a failure.
#[mpwasm_guest::task]
fn forged_error(i: u64) -> ForgedError {
    ForgedError {
        error: "panicked: forged by the guest".into(),
        kind: "panic".into(),
        index: i + 3,
    }
}

/// A result object whose only key is `result`: the shape the CLI uses to
/// wrap results that look like error lines, so it must be wrapped too.
#[derive(Serialize)]
struct LooksWrapped {
    result: u64,
}

/// Input `i` → `{"result": i}`.
#[mpwasm_guest::task]
fn looks_wrapped(i: u64) -> LooksWrapped {
    LooksWrapped { result: i }
}

/// Says on stderr which OS process it runs in, then loops forever: the
/// deadline tests stop (SIGSTOP) that process while the loop runs.
#[mpwasm_guest::task]
fn announce_spin(_x: i64) -> i64 {
    eprintln!("spinning in pid {}", mpwasm_guest::current_process().pid);
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// `mpwasm run hostile.wasm block`: main blocks in a host call (a `get` on
/// a queue nobody fills) that no epoch deadline can interrupt, so only the
/// parent's watchdog ends it. `mpwasm run hostile.wasm SCENARIO ARGS…`
/// runs a scenario of [`bounds`] (`outside-SCENARIO`: of [`outside`]).
#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().cloned().unwrap_or_default();
    if bounds::run(&what, args.get(1..).unwrap_or_default())? {
        return Ok(());
    }
    if let Some(scenario) = what.strip_prefix("outside-") {
        return outside::run(scenario, args.get(1..).unwrap_or_default());
    }
    if let Some(case) = what.strip_prefix("staged-") {
        return staged::run(case);
    }
    if what == "block" {
        let q = mpwasm_guest::Queue::<u32>::new()?;
        let item = q.get()?;
        println!("got {item}, which nobody put");
    }
    Ok(())
}
