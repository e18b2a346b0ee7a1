//! Python's `multiprocessing`, rebuilt for WebAssembly: pools of sandboxed
//! worker processes running a wasm guest.
//!
//! Write tasks in Rust with the `mpwasm-guest` SDK, build them for
//! `wasm32-wasip1`, and map over them from the shell (`mpwasm pool`) or from
//! Rust with this crate:
//!
//! ```no_run
//! fn main() -> mpwasm::Result<()> {
//!     // Worker processes re-run this program: let them in first.
//!     mpwasm::init();
//!     let pool = mpwasm::Pool::builder("pool_square.wasm").processes(4).build()?;
//!     let squares: Vec<i64> = pool.map("square", 1..=5i64)?;
//!     println!("{squares:?}"); // [1, 4, 9, 16, 25]
//!     Ok(())
//! }
//! ```
//!
//! # What happens
//!
//! 1. **Loading** ([`Cache::load`]): the guest file is componentized if it is
//!    a core module, checked against mpwasm's WIT world, compiled once and
//!    cached on disk.
//! 2. **Worker processes**: each worker is a separate OS process (this
//!    program, or the `mpwasm` binary, started again in worker mode) that
//!    maps the cached component and holds one wasmtime instance. It has no
//!    filesystem, environment or network, its stdin is closed, and it dies
//!    with its parent.
//! 3. **The wire** (`wire`): parent and worker exchange length-prefixed
//!    bincode frames over a socketpair. Frames from a worker are bounded and
//!    decoded defensively: a hostile worker can only end itself.
//! 4. **The scheduler** ([`Pool`]): chunks of inputs go to whichever worker
//!    is free; results come back in input order ([`Pool::map`],
//!    [`Pool::imap`]) or as they complete ([`Pool::imap_unordered`]).
//!
//! # Processes, queues, pipes and shared state inside guests
//!
//! A guest's `main` (run with [`Pool::run_main`], or `mpwasm run`) can use
//! Python's whole `multiprocessing` surface through the guest SDK: start
//! processes (each a new worker process with a fresh instance), queues,
//! pipes, pools, shared values and arrays, locks and other primitives,
//! shared memory and manager containers. The worker asks its parent for
//! what only the parent may do — start a process, create a queue, redeem a
//! handle — over the channel it already has (an *upcall*); the parent's
//! broker keeps the run's objects and checks every id a worker names. Data
//! then flows directly between worker processes: queue items and pipe
//! messages over OS sockets the broker handed out, shared values in memfd
//! mappings, locks as robust futex mutexes in them. `docs/messaging.md`
//! explains the design and why.
//!
//! # Failures
//!
//! A task that panics, returns `Err`, or traps fails only its own input: the
//! others run, and the error ([`TaskError`]) carries the message and, for
//! panics and traps, the wasm backtrace. A worker process that dies fails only
//! the inputs it held ([`TaskErrorKind::WorkerLost`]) and is replaced.
//!
//! # Compared with Python
//!
//! | Python | mpwasm |
//! |---|---|
//! | `Pool(processes=4)` | `Pool::builder(guest).processes(4).build()?` |
//! | `pool.map(f, xs)` | `pool.map("f", xs)?` |
//! | `pool.starmap(f, pairs)` | `pool.starmap("f", pairs)?` |
//! | `pool.imap(f, xs)` / `imap_unordered` | `pool.imap("f", xs)` / `imap_unordered` |
//! | `pool.apply(f, (x,))` | `pool.apply("f", x)?` |
//! | `r = pool.map_async(f, xs); r.get(timeout=5)` | `pool.map_async("f", xs)?.get(Some(secs(5)))?` |
//! | `pool.close(); pool.join()` | `pool.close(); pool.join()?` |
//! | `pool.terminate()` / leaving `with` | `pool.terminate()` / dropping the pool |

// The runtime-only worker (host/worker/) builds this crate without its
// `compiler` feature; the loading helpers and imports only the compiling side
// uses are then unused.
#![cfg_attr(not(feature = "compiler"), allow(dead_code, unused_imports))]

mod batch;
mod bindings;
mod broker;
mod cluster;
mod engine;
mod error;
mod interfaces;
pub mod limits;
mod load;
mod pool;
mod python;
mod sys;
mod wire;
mod worker;
mod zygote;

pub use cluster::{serve, ClusterOptions, ServeOptions, Storage};
pub use error::{Error, LoadError, Result, TaskError, TaskErrorKind};
pub use load::{Cache, CompiledGuest};
pub use pool::{AsyncResult, Imap, Payload, Pool, PoolBuilder, RawStream};
pub use python::{build_python, COMPONENTIZE_PY_ENV, COMPONENTIZE_PY_VERSION};
pub use wire::Codec;
/// The build id the runtime-only worker (`host/worker/`) reports, and the
/// argument that asks for it; not a stable API.
#[doc(hidden)]
pub use worker::program::{BUILD_ID, BUILD_ID_ARG};

/// Runs this process as an mpwasm worker if it was started as one, and
/// exits; returns at once otherwise.
///
/// A [`Pool`] starts its worker processes by running the current executable
/// again (unless [`PoolBuilder::worker_program`] names another), so a program
/// that embeds mpwasm calls this first thing in `main`, before anything with
/// side effects — the counterpart of Python's `if __name__ == "__main__"`.
/// The `mpwasm` binary does this too.
pub fn init() {
    let served = worker::child::run_if_worker().or_else(zygote::server::run_if_zygote);
    if let Some(code) = served {
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }
}

/// Sends mpwasm's log and the guests' `log` lines to stderr, filtered by
/// `RUST_LOG` (default `warn,guest=info`: warnings, and guests' info and
/// above). Worker processes and the `mpwasm` binary call this; a program
/// that embeds mpwasm may call it or set up `tracing` its own way.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,guest=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// What `bench/` needs from inside the crate to measure a native reference
/// the way a worker runs. Not a stable API.
#[doc(hidden)]
pub mod benchmarking {
    /// Installs a worker's seccomp filters on the calling process, for
    /// the rest of its life (`no_new_privs` included): a native loop run
    /// under them pays what a worker pays on each system call. Returns
    /// whether they are installed.
    pub fn lock_down_like_a_worker() -> bool {
        crate::sys::install_worker_seccomp()
    }
}

/// Entry points for the fuzz targets in `fuzz/`: the parsers that read
/// untrusted bytes. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes bytes as frames from a worker, the way the parent does.
    /// Returns how many frames decoded before the stream ended or broke.
    pub fn worker_frames(mut bytes: &[u8]) -> usize {
        let mut n = 0;
        while let Ok(Some((frame, _))) =
            crate::wire::read_frame::<_, crate::wire::FromWorker>(&mut bytes)
        {
            if let crate::wire::FromWorker::Done(outcome) = frame {
                let _ = crate::batch::Batch::parse(outcome.results);
            }
            n += 1;
        }
        n
    }

    /// Reads bytes as a result batch from a guest.
    pub fn result_batch(bytes: &[u8]) -> Option<usize> {
        crate::batch::Batch::parse(bytes.to_vec())
            .ok()
            .map(|b| b.len())
    }

    /// The loading path up to (not including) compilation: magic check,
    /// validation, componentization.
    #[cfg(feature = "compiler")]
    pub fn componentize(bytes: &[u8]) -> bool {
        let path = std::path::Path::new("fuzz-input.wasm");
        bytes.starts_with(b"\0asm") && crate::load::componentize(path, bytes).is_ok()
    }

    /// The window rewrite of a valid core module (any module, with or
    /// without window imports). Returns whether it was given a window.
    ///
    /// # Panics
    ///
    /// If the rewrite produced an invalid module: a bug the fuzzer is
    /// looking for.
    pub fn window_rewrite(bytes: &[u8]) -> bool {
        let valid = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(bytes)
            .is_ok();
        if !valid {
            return false;
        }
        match crate::load::window::rewrite(bytes) {
            Ok(_) => true,
            Err(e) if e.to_string().contains("rewritten module is invalid") => {
                panic!("the window rewrite made an invalid module: {e}")
            }
            Err(_) => false,
        }
    }
}
