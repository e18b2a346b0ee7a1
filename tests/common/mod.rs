//! Helpers shared by the integration tests: where the real binary and the
//! real compiled guests are.

#![allow(dead_code)] // each test binary uses a different subset

pub mod nats;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The `mpwasm` binary cargo built for this test run.
pub fn mpwasm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mpwasm"))
}

/// A guest built by `make guests` (scripts/build-guests.sh).
pub fn guest(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guests")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make guests` (or `make test`) first",
        path.display()
    );
    path
}

/// A fresh, private compile cache for one test.
pub fn cache_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The shared compile cache most tests use (compiling once per guest).
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache")
}

/// Runs `mpwasm args...` with `stdin` as input.
pub fn run_mpwasm(args: &[&str], stdin: &str) -> Output {
    run_mpwasm_in(&shared_cache(), args, stdin)
}

/// Runs `mpwasm args...` with a given cache directory.
pub fn run_mpwasm_in(cache: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(mpwasm_bin())
        .args(args)
        .env("MPWASM_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpwasm");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(data.as_bytes());
    });
    let out = child.wait_with_output().expect("wait mpwasm");
    writer.join().expect("stdin writer");
    out
}

/// A pool for host-crate tests: real worker processes running the real
/// `mpwasm` binary in worker mode.
pub fn pool(guest_name: &str, processes: usize) -> mpwasm::Pool {
    pool_builder(guest_name)
        .processes(processes)
        .build()
        .expect("pool")
}

/// A builder with the test binary's worker program and shared cache.
pub fn pool_builder(guest_name: &str) -> mpwasm::PoolBuilder {
    mpwasm::Pool::builder(guest(guest_name))
        .worker_program(mpwasm_bin())
        .cache(mpwasm::Cache::new(shared_cache()))
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What testkit's `whoami` task reports (bincode: every field, in order).
#[derive(serde::Deserialize, Debug)]
pub struct Identity {
    pub pid: u32,
    pub parent_pid: u32,
    pub worker: u32,
    pub name: String,
    pub task: String,
    pub index: u64,
}
