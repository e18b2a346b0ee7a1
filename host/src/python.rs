//! Python guests: `mpwasm run prog.py`, `mpwasm pool prog.py --task f`,
//! `Pool::builder("prog.py")`.
//!
//! **One component serves every Python program.** componentize-py (pinned,
//! installed by `scripts/setup.sh`) wraps CPython, the `multiprocessing`
//! package of `guest-python/` and the standard library modules it lists
//! (`_preload.py`), pre-imported, into a component for the `guest` world.
//! That build takes 11–25 s and gives ~27 MB, so it is made once per
//! package and toolchain version — the cache key hashes the package's files
//! (compiled into this binary), the WIT and the pinned version — and kept
//! under `<cache>/python/`; then it is compiled like any guest.
//!
//! **The program arrives at run time**: its source travels to every worker
//! process of the run in the guest's environment (`MPWASM_PY_SOURCE`, its
//! file name in `MPWASM_PY_FILE`), which the launcher removes before the
//! program runs. A new program therefore starts at once instead of paying
//! a build, and tests share one build. `mpwasm build prog.py -o prog.wasm`
//! bakes a program in instead, for shipping a single file.
//!
//! The main process runs the source as `__main__`; every other process runs
//! it as `__mp_main__` and then its target, as CPython's spawn start method
//! does. Payloads are pickles, which the host never reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::LoadError;
use crate::limits::MAX_PYTHON_SOURCE_BYTES;

/// The environment variable carrying the program's source to the guest.
pub(crate) const SOURCE_ENV: &str = "MPWASM_PY_SOURCE";
/// The environment variable carrying the program's file name.
pub(crate) const FILE_ENV: &str = "MPWASM_PY_FILE";
/// Names the componentize-py executable to use (else `PATH`, else
/// `target/python-tools/bin/` beside this binary, where `scripts/setup.sh`
/// installs it).
pub const COMPONENTIZE_PY_ENV: &str = "MPWASM_COMPONENTIZE_PY";
/// The componentize-py release Python guests are built with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The Python package, as compiled into this binary.
const PACKAGE: &[(&str, &str)] = &[
    (
        "mpwasm_launcher.py",
        include_str!("../../guest-python/mpwasm_launcher.py"),
    ),
    (
        "_preload.py",
        include_str!("../../guest-python/_preload.py"),
    ),
    (
        "multiprocessing/__init__.py",
        include_str!("../../guest-python/multiprocessing/__init__.py"),
    ),
    (
        "multiprocessing/_runner.py",
        include_str!("../../guest-python/multiprocessing/_runner.py"),
    ),
    (
        "multiprocessing/_wit.py",
        include_str!("../../guest-python/multiprocessing/_wit.py"),
    ),
    (
        "multiprocessing/connection.py",
        include_str!("../../guest-python/multiprocessing/connection.py"),
    ),
    (
        "multiprocessing/context.py",
        include_str!("../../guest-python/multiprocessing/context.py"),
    ),
    (
        "multiprocessing/managers.py",
        include_str!("../../guest-python/multiprocessing/managers.py"),
    ),
    (
        "multiprocessing/pool.py",
        include_str!("../../guest-python/multiprocessing/pool.py"),
    ),
    (
        "multiprocessing/process.py",
        include_str!("../../guest-python/multiprocessing/process.py"),
    ),
    (
        "multiprocessing/queues.py",
        include_str!("../../guest-python/multiprocessing/queues.py"),
    ),
    (
        "multiprocessing/shared_memory.py",
        include_str!("../../guest-python/multiprocessing/shared_memory.py"),
    ),
    (
        "multiprocessing/sharedctypes.py",
        include_str!("../../guest-python/multiprocessing/sharedctypes.py"),
    ),
    (
        "multiprocessing/synchronize.py",
        include_str!("../../guest-python/multiprocessing/synchronize.py"),
    ),
];

/// The WIT the component targets.
const WIT: &str = include_str!("../../wit/mpwasm.wit");

/// Whether `path` names a Python program (by its `.py` extension).
pub(crate) fn is_program(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}

/// The program's source and file name, as the environment the guest reads.
///
/// # Errors
///
/// The file is unreadable, larger than [`MAX_PYTHON_SOURCE_BYTES`], or not
/// UTF-8.
pub(crate) fn program_env(path: &Path) -> Result<Vec<(String, String)>, LoadError> {
    let source = read_source(path)?;
    let name = path
        .file_name()
        .map_or_else(|| "<program>".into(), |n| n.to_string_lossy().into_owned());
    Ok(vec![
        (SOURCE_ENV.to_string(), source),
        (FILE_ENV.to_string(), name),
    ])
}

fn read_source(path: &Path) -> Result<String, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_PYTHON_SOURCE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: MAX_PYTHON_SOURCE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    String::from_utf8(bytes).map_err(|_| LoadError::Python {
        path: path.to_path_buf(),
        reason: "the source is not UTF-8".into(),
    })
}

/// The component that runs every Python program, built into
/// `<cache_dir>/python/` unless it is there already.
///
/// # Errors
///
/// componentize-py cannot be found or fails, or the cache cannot be written
/// (`path` names the program being loaded).
pub(crate) fn generic_component(cache_dir: &Path, path: &Path) -> Result<PathBuf, LoadError> {
    let dir = cache_dir.join("python");
    let out = dir.join(format!("guest-{}.wasm", package_key(None)));
    if out.is_file() {
        return Ok(out);
    }
    build_into(&dir, &out, None).map_err(|reason| LoadError::Python {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(out)
}

/// Builds a component with `program` baked in, at `out` (`mpwasm build`).
/// It runs with `mpwasm run out.wasm` like any guest.
///
/// # Errors
///
/// The program is unreadable, too large or not UTF-8; componentize-py
/// cannot be found or fails; `out` cannot be written.
pub fn build_python(program: &Path, out: &Path) -> Result<std::time::Duration, LoadError> {
    let source = read_source(program)?;
    let name = program
        .file_name()
        .map_or_else(|| "<program>".into(), |n| n.to_string_lossy().into_owned());
    let dir = std::env::temp_dir().join("mpwasm-python-build");
    let start = std::time::Instant::now();
    build_into(&dir, out, Some((&name, &source))).map_err(|reason| LoadError::Python {
        path: program.to_path_buf(),
        reason,
    })?;
    Ok(start.elapsed())
}

/// What the generic component depends on: the package, the WIT and the
/// toolchain version (and a baked-in program).
fn package_key(program: Option<(&str, &str)>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"componentize-py ");
    h.update(COMPONENTIZE_PY_VERSION.as_bytes());
    for (name, text) in PACKAGE {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.update(WIT.as_bytes());
    if let Some((name, source)) = program {
        h.update(name.as_bytes());
        h.update(source.as_bytes());
    }
    h.finalize().to_hex()[..32].to_string()
}

/// Runs componentize-py in a scratch directory under `dir` and moves the
/// component to `out`. One build at a time per directory (a lock file), so
/// parallel first runs wait for one build instead of each making one.
fn build_into(dir: &Path, out: &Path, program: Option<(&str, &str)>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock_path = dir.join(".mpwasm-python-build.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if program.is_none() && out.is_file() {
        return Ok(()); // another process built it while this one waited
    }
    let tool = toolchain()?;
    let scratch = dir.join(format!(".build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = run_componentize(&tool, &scratch, out, program);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn run_componentize(
    tool: &Path,
    scratch: &Path,
    out: &Path,
    program: Option<(&str, &str)>,
) -> Result<(), String> {
    let src = scratch.join("src");
    let write = |rel: &str, text: &str| -> Result<(), String> {
        let path = scratch.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    for (name, text) in PACKAGE {
        write(&format!("src/{name}"), text)?;
    }
    if let Some((name, source)) = program {
        let baked = format!(
            "SOURCE = {}\nFILE = {}\n",
            python_string(source),
            python_string(name)
        );
        write("src/mpwasm_program.py", &baked)?;
    }
    write("wit/mpwasm.wit", WIT)?;
    let tmp_out = scratch.join("guest.wasm");
    tracing::info!(tool = %tool.display(), "building the Python guest component (once)");
    let output = Command::new(tool)
        .arg("-q")
        .arg("-d")
        .arg(scratch.join("wit"))
        .args(["-w", "guest", "componentize", "-p"])
        .arg(&src)
        .arg("mpwasm_launcher")
        .arg("-o")
        .arg(&tmp_out)
        .env_remove("VIRTUAL_ENV")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim_start().starts_with("at ") && !l.trim().is_empty())
            .take(12)
            .collect();
        return Err(format!(
            "componentize-py failed ({}): {}",
            output.status,
            tail.join("; ")
        ));
    }
    // The scratch directory may be on another file system than `out`.
    std::fs::rename(&tmp_out, out)
        .or_else(|_| std::fs::copy(&tmp_out, out).map(drop))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// `text` as a Python string literal (JSON's escapes are Python's).
fn python_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Finds componentize-py: `$MPWASM_COMPONENTIZE_PY`, then `PATH`, then
/// `target/python-tools/bin/` above this executable.
fn toolchain() -> Result<PathBuf, String> {
    if let Some(tool) = std::env::var_os(COMPONENTIZE_PY_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(tool));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("componentize-py"))
            .find(|p| p.is_file())
    });
    if let Some(tool) = on_path {
        return Ok(tool);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|d| d.join("python-tools/bin/componentize-py"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "componentize-py {COMPONENTIZE_PY_VERSION} not found: run scripts/setup.sh, \
                 or `pip install componentize-py=={COMPONENTIZE_PY_VERSION}`, or set {COMPONENTIZE_PY_ENV}"
            )
        })
}
