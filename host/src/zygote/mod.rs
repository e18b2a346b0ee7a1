//! Zygotes: worker processes started like `fork`, not like `exec`.
//!
//! Starting a worker with `exec` costs a new program image, an engine, the
//! component mapped and linked — about 1.5 ms on a small VM, paid by every
//! `Process::start`, every pool worker and every replacement. A *zygote*
//! pays it once per guest and engine variant (fuel metering on or off, a
//! window or not: [`crate::engine`]) in a
//! run: it is the worker program exec'd with [`ZYGOTE_ENV`] set, it makes
//! the engine (compiler off), maps and links the component, locks itself
//! down, and then forks a worker each time the broker asks. A forked worker
//! has everything ready but its own instance.
//!
//! - [`server`] is the zygote's side: its request loop, and the forked
//!   child's way into the ordinary worker loop ([`crate::worker::child`]).
//! - [`client`] is the broker's side: start a zygote, ask it for a worker.
//! - [`Lease`] is what a run's broker holds and [`crate::worker::spawn`]
//!   asks: it keeps the run's zygote while the run lasts (a pool, an
//!   `mpwasm run` and the pools its guests make), replaces one that died,
//!   and answers `None` (start this worker with `exec`) when the fork path
//!   is refused — saying so once. `MPWASM_NO_ZYGOTE=1` in the parent's
//!   environment turns zygotes off (every worker is exec'd, as before).
//!
//! # What a forked worker is
//!
//! The zygote forks with `clone3(CLONE_PARENT | CLONE_PIDFD)`
//! ([`crate::sys::fork`]): the broker, not the zygote, is the new worker's
//! parent, so its parent-death signal, reaping and exit status work as for
//! an exec'd worker; the broker follows it by a pidfd. The zygote forks
//! only while it has one thread (checked in `/proc/self/task` before each
//! fork), and it never runs guest code (wasmtime-wasi starts a thread pool
//! on first use). The child keeps only its channel (as stdin) and the
//! descriptors loading opened (the artifact, which wasmtime maps again at
//! every instantiation), then locks itself down as an exec'd worker does
//! (Landlock with its own grants; seccomp denying new processes other
//! than threads, `clone3` answered `ENOSYS`), starts its deadline ticker,
//! instantiates and reports ready.
//!
//! # What forking changes for the threat model
//!
//! Every worker forked from one zygote has the zygote's address-space
//! layout: ASLR is drawn once per zygote, not once per worker, so a
//! compromised worker that learns its own layout (where the engine, the
//! compiled guest code and the heap are) knows its siblings' too. It still
//! cannot reach them: each is its own process, under its own Landlock
//! domain (no signals to other domains) and seccomp filter, and has no
//! descriptor of theirs. It also inherits the zygote's memory: nothing
//! secret is there (the zygote holds the engine, the mapped artifact and
//! its control socket, which the child closes before it runs any guest
//! code). The zygote itself runs under a seccomp filter that denies what a
//! worker's does except `fork`/`clone`/`clone3`, with no Landlock (each
//! child narrows to its own grants); it reads only the broker's frames,
//! never a worker's.

pub(crate) mod client;
pub(crate) mod server;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use self::client::{ForkFailure, Zygote};

/// Set in a zygote's environment; its value is the parent's pid.
pub(crate) const ZYGOTE_ENV: &str = "MPWASM_ZYGOTE_PARENT";

/// Set to `1` in the parent's environment: no zygotes, every worker is
/// started with `exec`.
const NO_ZYGOTE_ENV: &str = "MPWASM_NO_ZYGOTE";

/// A request from the broker to a zygote.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToZygote {
    /// The first frame: map and link this artifact (compiled with fuel
    /// metering if `metering`, for the window engine if `window`).
    Load {
        artifact: PathBuf,
        metering: bool,
        window: bool,
    },
    /// Fork a worker whose channel is the one socket sent with the frame.
    Fork,
}

/// A zygote's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromZygote {
    /// Loaded: ready to fork.
    Ready,
    /// Could not load; it exits.
    Failed(String),
    /// Forked the worker `pid`; its pidfd comes with the frame.
    Forked { pid: u32 },
    /// Did not fork, and why (it has a second thread, the kernel refused).
    Refused(String),
}

/// A worker a zygote forked: a child of this process.
pub(crate) struct ForkedWorker {
    /// Its pid.
    pub(crate) pid: u32,
    /// A pidfd for it, to wait on and signal.
    pub(crate) pidfd: OwnedFd,
    /// The parent's end of its channel.
    pub(crate) socket: UnixStream,
}

/// The zygote of one run, if it runs.
#[derive(Default)]
struct Slot {
    zygote: Option<Zygote>,
    /// The fork path failed for good for this run: exec instead.
    disabled: bool,
}

/// A run's zygote: made when its first worker is asked for, replaced if it
/// dies, ended (killed and reaped) when the last clone of the lease goes —
/// with the run's broker, i.e. with the pool or `mpwasm run` it served.
/// Guest-made pools share their run's.
#[derive(Clone, Default)]
pub(crate) struct Lease(Arc<Mutex<Slot>>);

impl Lease {
    /// A lease with no zygote yet.
    pub(crate) fn new() -> Self {
        Lease::default()
    }

    /// Forks a worker for `artifact` (with fuel metering if `metering`, the
    /// window engine if `window`) from this run's zygote of `program`, starting that zygote first if
    /// there is none or the last one died. `None` means: start this worker
    /// with `exec`.
    pub(crate) fn fork_worker(
        &self,
        program: &Path,
        artifact: &Path,
        metering: bool,
        window: bool,
    ) -> Option<ForkedWorker> {
        if std::env::var_os(NO_ZYGOTE_ENV).is_some_and(|v| v == "1") {
            return None;
        }
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.disabled {
            return None;
        }
        // A zygote that died is replaced once per request; one that dies
        // again at once is not tried further.
        for _ in 0..2 {
            let zygote = match &mut slot.zygote {
                Some(zygote) if zygote.serves(program, artifact, metering, window) => zygote,
                _ => match Zygote::start(program, artifact, metering, window) {
                    Ok(zygote) => slot.zygote.insert(zygote),
                    Err(e) => {
                        slot.disabled = true;
                        say_once(&format!("cannot start a zygote: {e}"));
                        return None;
                    }
                },
            };
            match zygote.fork() {
                Ok(worker) => return Some(worker),
                Err(ForkFailure::Gone(e)) => {
                    tracing::debug!(error = %e, "the zygote is gone; starting another");
                    slot.zygote = None;
                }
                Err(ForkFailure::Refused(why)) => {
                    // It will not fork the next one either (a second
                    // thread does not go away): exec for the rest of the run.
                    slot.disabled = true;
                    say_once(&format!("the zygote did not fork: {why}"));
                    return None;
                }
            }
        }
        slot.disabled = true;
        say_once("the zygote died twice in a row");
        None
    }
}

/// Warns, once per process, that workers are started with `exec`.
fn say_once(why: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!("{why}; starting worker processes with exec instead (slower)");
    });
}
