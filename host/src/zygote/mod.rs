//! Zygotes: worker processes started like `fork`, not like `exec`.
//!
//! Starting a worker with `exec` costs a new program image, an engine, the
//! component mapped and linked — about 1.5 ms on a small VM, paid by every
//! `Process::start`, every pool worker and every replacement. A *zygote*
//! pays it once per guest and engine variant (fuel and epoch checks on or off, a
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
//! than threads, `clone3` answered `ENOSYS`, installed on top of the
//! zygote's filter it inherited), starts its deadline ticker,
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use self::client::{ForkFailure, Zygote};
use crate::engine::Checks;

/// Set in a zygote's environment; its value is the parent's pid.
pub(crate) const ZYGOTE_ENV: &str = "MPWASM_ZYGOTE_PARENT";

/// Set to `1` in the parent's environment: no zygotes, every worker is
/// started with `exec`.
const NO_ZYGOTE_ENV: &str = "MPWASM_NO_ZYGOTE";

/// A request from the broker to a zygote.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToZygote {
    /// The first frame: map and link this artifact (compiled with
    /// `checks`, for the window engine if `window`).
    Load {
        artifact: PathBuf,
        checks: Checks,
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

/// The most workers asked of a zygote in one go ([`client::Zygote::fork_many`]):
/// each answer carries a pidfd, and a channel holds at most
/// `4 * MAX_FDS_PER_MESSAGE` descriptors ahead of their frames.
const MAX_BATCH: usize = 2 * crate::sys::ipc::MAX_FDS_PER_MESSAGE;

/// What a zygote serves: program, artifact, compiled checks, window engine.
type Serves = (PathBuf, PathBuf, Checks, bool);

/// The zygote of one run, if it runs.
#[derive(Default)]
struct Slot {
    zygote: Option<Zygote>,
    /// The fork path failed for good for this run: exec instead.
    disabled: bool,
    /// Workers forked for requests that were waiting while another was
    /// served ([`Lease::fork_worker`]), and what they were forked for.
    stock: Vec<(Serves, ForkedWorker)>,
}

impl Slot {
    /// A stocked worker forked for `serves`.
    fn take(&mut self, serves: &Serves) -> Option<ForkedWorker> {
        let at = self.stock.iter().position(|(s, _)| s == serves)?;
        Some(self.stock.swap_remove(at).1)
    }

    /// Ends and reaps the stocked workers that were not forked for
    /// `serves` (all of them if `None`).
    fn discard_stock(&mut self, serves: Option<&Serves>) {
        let (keep, gone) = std::mem::take(&mut self.stock)
            .into_iter()
            .partition(|(s, _)| Some(s) == serves);
        self.stock = keep;
        for (_, worker) in gone {
            end(worker);
        }
    }
}

impl Drop for Slot {
    /// No forked worker nobody took outlives its run (they are this
    /// process's children: reaped here, never left as zombies).
    fn drop(&mut self) {
        self.discard_stock(None);
    }
}

/// Ends a forked worker that was never given its `Init` (closing its
/// channel ends it too; the kill makes it prompt) and reaps it.
fn end(worker: ForkedWorker) {
    drop(worker.socket);
    let _ = crate::sys::fork::pidfd_kill(&worker.pidfd);
    let _ = crate::sys::fork::pidfd_wait(&worker.pidfd, true);
}

/// What a lease's clones share.
#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    /// Requests in [`Lease::fork_worker`] waiting for the slot: the one
    /// holding it asks the zygote for a worker for each of them too.
    waiting: AtomicUsize,
}

/// A run's zygote: made when its first worker is asked for, replaced if it
/// dies, ended (killed and reaped) when the last clone of the lease goes —
/// with the run's broker, i.e. with the pool or `mpwasm run` it served.
/// Guest-made pools share their run's.
///
/// Requests that come together (a pool's drivers each starting its
/// worker) are served by one batch: the request that holds the slot asks
/// the zygote for a worker for itself and one for each request waiting
/// for the slot, and keeps the others' in a stock they take from.
#[derive(Clone, Default)]
pub(crate) struct Lease(Arc<Shared>);

impl Lease {
    /// A lease with no zygote yet.
    pub(crate) fn new() -> Self {
        Lease::default()
    }

    /// Forks a worker for `artifact` (compiled with `checks`, for the
    /// window engine if `window`) from this run's zygote of `program`, starting that zygote first if
    /// there is none or the last one died. `None` means: start this worker
    /// with `exec`.
    pub(crate) fn fork_worker(
        &self,
        program: &Path,
        artifact: &Path,
        checks: Checks,
        window: bool,
    ) -> Option<ForkedWorker> {
        if std::env::var_os(NO_ZYGOTE_ENV).is_some_and(|v| v == "1") {
            return None;
        }
        let serves = (
            program.to_path_buf(),
            artifact.to_path_buf(),
            checks,
            window,
        );
        self.0.waiting.fetch_add(1, Ordering::SeqCst);
        let slot = self.0.slot.lock().unwrap_or_else(|e| e.into_inner());
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.fork_locked(slot, &serves)
    }

    /// [`Lease::fork_worker`] once this request holds the slot.
    fn fork_locked(
        &self,
        mut slot: std::sync::MutexGuard<'_, Slot>,
        serves: &Serves,
    ) -> Option<ForkedWorker> {
        if let Some(worker) = slot.take(serves) {
            return Some(worker);
        }
        if slot.disabled {
            return None;
        }
        let (program, artifact, checks, window) = serves;
        // A zygote that died is replaced once per request; one that dies
        // again at once is not tried further.
        for _ in 0..2 {
            let zygote = match &mut slot.zygote {
                Some(zygote) if zygote.serves(program, artifact, *checks, *window) => zygote,
                _ => {
                    slot.discard_stock(Some(serves));
                    match Zygote::start(program, artifact, *checks, *window) {
                        Ok(zygote) => slot.zygote.insert(zygote),
                        Err(e) => {
                            slot.disabled = true;
                            say_once(&format!("cannot start a zygote: {e}"));
                            return None;
                        }
                    }
                }
            };
            // This request and every one waiting for the slot (counted
            // after the zygote's start, which is when most have come). Each
            // of those takes one worker, from the stock or forked itself, so
            // none is forked for nobody.
            let waiting = self.0.waiting.load(Ordering::SeqCst);
            let batch = (1 + waiting).min(MAX_BATCH);
            let (mut forked, failure) = zygote.fork_many(batch);
            let mine = (!forked.is_empty()).then(|| forked.swap_remove(0));
            slot.stock
                .extend(forked.into_iter().map(|worker| (serves.clone(), worker)));
            match failure {
                None => {}
                Some(ForkFailure::Gone(e)) => {
                    tracing::debug!(error = %e, "the zygote is gone; starting another");
                    slot.zygote = None;
                }
                Some(ForkFailure::Refused(why)) => {
                    // It will not fork the next one either (a second
                    // thread does not go away): exec for the rest of the run.
                    slot.disabled = true;
                    say_once(&format!("the zygote did not fork: {why}"));
                    return mine;
                }
            }
            if mine.is_some() {
                return mine;
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
