//! Guests in other languages (issue 13, item 5): a JavaScript component made
//! by componentize-js (`examples/js/square.js`, built by `make guests` when
//! `scripts/setup.sh` could install the toolchain) runs as a pool and as a
//! main with no host change — the guest contract is the WIT's.

mod common;
use common::*;

use std::path::PathBuf;

/// `target/guests/NAME.wasm`; `None` (with a note) when its toolchain
/// cannot be had on this machine (`tool` not on `PATH`).
fn polyglot_guest(name: &str, tool: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guests")
        .join(format!("{name}.wasm"));
    if path.is_file() {
        return Some(path);
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        !on_path,
        "{} is missing though `{tool}` is installed: run `make guests`",
        path.display()
    );
    eprintln!("note: {tool} is not installed: {name} not tested");
    None
}

#[test]
fn javascript_guest_runs_tasks_and_main() {
    let Some(js) = polyglot_guest("square_js", "npm") else {
        return;
    };
    let js = js.to_str().unwrap();
    let out = run_mpwasm(&["pool", js, "--task", "square", "-j", "2"], "1\n2\n3\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\n4\n9\n");
    let out = run_mpwasm(&["pool", js, "--task", "add"], "[1,2]\n");
    assert_eq!(stdout(&out), "3\n", "{}", stderr(&out));
    // A throwing task fails only its input.
    let out = run_mpwasm(&["pool", js, "--task", "boom"], "7\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Error: bad input 7"),
        "{}",
        stdout(&out)
    );
    let out = run_mpwasm(&["run", js, "a", "b"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "hello from JavaScript main in worker 0, name MainProcess, args [\"a\",\"b\"]\n"
    );
    let out = run_mpwasm(&["inspect", js], "");
    assert_eq!(stdout(&out), "square\nadd\nboom\n");
}

#[test]
fn c_guest_runs_tasks_and_main() {
    let Some(c) = polyglot_guest("square_c", "clang-19") else {
        return;
    };
    let c = c.to_str().unwrap();
    let out = run_mpwasm(&["pool", c, "--task", "square", "-j", "2"], "1\n2\n3\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\n4\n9\n");
    // A bad input and a trap each fail only their input.
    let out = run_mpwasm(&["pool", c, "--task", "square"], "4\nx\n5\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = stdout(&out);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "16");
    assert!(lines[1].contains("bad_input"), "{got}");
    assert_eq!(lines[2], "25");
    let out = run_mpwasm(&["pool", c, "--task", "boom"], "1\n");
    assert!(
        stdout(&out).contains("\"kind\":\"trap\""),
        "{}",
        stdout(&out)
    );
    let out = run_mpwasm(&["run", c, "a"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "hello from C main in worker 0, name MainProcess, 2 args\n"
    );
}
