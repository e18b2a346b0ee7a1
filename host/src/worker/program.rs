//! Which program a run's zygote and workers are: the runtime-only worker
//! beside the `mpwasm` executable when there is one of this very build,
//! else the program the pool was given (by default the current executable).
//!
//! `mpwasm-worker` (the package in `host/worker/`) is this crate built
//! without its `compiler` feature: wasmtime's runtime without Cranelift and
//! none of the command line's crates, so every worker forked from its
//! zygote maps and touches less code. It is built in a Cargo invocation of
//! its own (`scripts/build-worker.sh`), so it can be missing or left over
//! from other sources; it is used only if it answers `--build-id` with this
//! crate's [`BUILD_ID`], checked once per program and process.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The runtime-only worker's file name.
pub(crate) const RUNTIME_WORKER: &str = "mpwasm-worker";

/// The argument the runtime-only worker answers with its build id.
pub const BUILD_ID_ARG: &str = "--build-id";

/// A hash of this crate's sources and WIT contract (see `host/build.rs`):
/// equal in two builds of the same sources, whatever their features.
pub const BUILD_ID: &str = env!("MPWASM_BUILD_ID");

/// How long the check of a candidate worker may take before it is killed
/// and not used.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The most the check reads of a candidate's answer.
const MAX_ANSWER: u64 = 64;

/// Checked candidates: requested program -> the one to run.
static RESOLVED: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);

/// The program to start for `requested`: `mpwasm-worker` from the same
/// directory when `requested` is the `mpwasm` binary (by name) or
/// `default` (the current executable, not named by the embedder) and that
/// worker is of this build; otherwise `requested` itself.
pub(crate) fn resolve(requested: &Path, default: bool) -> PathBuf {
    let named_mpwasm = requested.file_name().is_some_and(|n| n == "mpwasm");
    if !(default || named_mpwasm) {
        return requested.to_path_buf();
    }
    let mut resolved = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
    let resolved = resolved.get_or_insert_with(HashMap::new);
    if let Some(program) = resolved.get(requested) {
        return program.clone();
    }
    let program = requested
        .parent()
        .map(|dir| dir.join(RUNTIME_WORKER))
        .filter(|candidate| candidate.is_file() && same_build(candidate, requested))
        .unwrap_or_else(|| requested.to_path_buf());
    tracing::debug!(program = %program.display(), "worker program");
    resolved.insert(requested.to_path_buf(), program.clone());
    program
}

/// Whether `candidate` answers [`BUILD_ID_ARG`] with [`BUILD_ID`] within
/// [`CHECK_TIMEOUT`]. Says once why a worker beside `mpwasm` is not used
/// and `requested` runs instead.
fn same_build(candidate: &Path, requested: &Path) -> bool {
    let answer = build_id_of(candidate);
    let same = answer.as_deref() == Ok(BUILD_ID);
    if !same {
        let why = match answer {
            Ok(id) => format!("it is of another build ({id:?}, this is {BUILD_ID})"),
            Err(e) => e,
        };
        tracing::warn!(
            "{} not used ({why}); workers run {} instead (scripts/build-worker.sh builds it)",
            candidate.display(),
            requested.display()
        );
    }
    same
}

/// What `candidate --build-id` prints, trimmed.
fn build_id_of(candidate: &Path) -> Result<String, String> {
    let mut child = Command::new(candidate)
        .arg(BUILD_ID_ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it did not answer within {CHECK_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let mut answer = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = out.take(MAX_ANSWER).read_to_string(&mut answer);
    }
    if !status.success() {
        return Err(format!("`{BUILD_ID_ARG}` ended with {status}"));
    }
    Ok(answer.trim().to_string())
}
