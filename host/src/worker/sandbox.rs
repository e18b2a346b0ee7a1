//! What a worker's guest may do: the WASI context it gets (capabilities off
//! unless granted), its memory cap, and the deadline ticker.

use std::time::{Duration, Instant};

use wasmtime::{Engine, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::error::TaskErrorKind;
use crate::wire::Sandbox;

/// How often the deadline ticker advances the engine's epoch, and so how
/// often a running task compares the clock with its deadline: it is stopped
/// about one tick after it (later only if the ticker itself is starved).
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// The WASI context for one instance. Off by default: no preopened
/// directories, no environment, no arguments, stdin closed, no sockets.
/// Grants in `sandbox` open exactly what they name.
///
/// # Errors
///
/// A granted directory that cannot be opened.
pub(crate) fn wasi_ctx(sandbox: &Sandbox, stdout_to_stderr: bool) -> wasmtime::Result<WasiCtx> {
    let mut wasi = WasiCtx::builder();
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if stdout_to_stderr {
        wasi.stdout(wasmtime_wasi::cli::stderr());
    } else {
        wasi.inherit_stdout();
    }
    wasi.inherit_stderr();
    for (k, v) in &sandbox.env {
        wasi.env(k, v);
    }
    wasi.args(&sandbox.args);
    for dir in &sandbox.dirs {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        wasi.preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| {
                wasmtime::Error::msg(format!("cannot grant {}: {e}", dir.host.display()))
            })?;
    }
    Ok(wasi.build())
}

/// Caps an instance's linear memory and remembers that it did.
#[derive(Debug, Default)]
pub(crate) struct MemoryCap {
    max: Option<usize>,
    /// The guest's window is still to be created: its fixed size is not
    /// the guest's memory (its pages are regions the run pays for).
    window_pending: bool,
    /// Whether a growth was refused since the last [`MemoryCap::take_hit`].
    hit: bool,
}

impl MemoryCap {
    pub(crate) fn new(max: Option<u64>, window: bool) -> Self {
        MemoryCap {
            max: max.map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
            window_pending: window,
            hit: false,
        }
    }

    /// Whether the cap refused a growth; clears the flag.
    pub(crate) fn take_hit(&mut self) -> bool {
        std::mem::take(&mut self.hit)
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        use crate::sys::window::WINDOW_BYTES;
        let window = (current, desired, maximum) == (0, WINDOW_BYTES, Some(WINDOW_BYTES));
        if self.window_pending && window {
            // Once: the loader refuses guests whose own memory has the
            // window's type.
            self.window_pending = false;
            return Ok(true);
        }
        match self.max {
            Some(max) if desired > max => {
                self.hit = true;
                // An error (not `Ok(false)`) traps at once instead of letting
                // the guest's allocator abort with a vaguer message.
                Err(wasmtime::Error::msg(format!(
                    "memory limit of {max} bytes exceeded"
                )))
            }
            _ => Ok(true),
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Starts the thread that advances `engine`'s epoch every [`TICK`], for
/// pools with task deadlines. It lives as long as the process.
pub(crate) fn start_ticker(engine: &Engine) {
    let engine = engine.clone();
    let _ = std::thread::Builder::new()
        .name("mpwasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            engine.increment_epoch();
        });
}

/// The deadline of a call running `n` inputs under `timeout` each,
/// starting now; `None` if it is too far off to represent (no deadline).
pub(crate) fn deadline_after(timeout: Duration, n: u64) -> Option<Instant> {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    Instant::now().checked_add(timeout.checked_mul(n)?)
}

/// What a running guest does at each epoch tick (its epoch deadline is
/// always the next tick): trap once the monotonic clock has passed
/// `deadline`, else run on to the next tick. The ticks only say when to
/// look; counting them instead would stretch a deadline by however late
/// the ticker thread is scheduled (CPU contention, a stopped process).
pub(crate) fn on_tick(deadline: Option<Instant>) -> UpdateDeadline {
    match deadline {
        Some(deadline) if Instant::now() >= deadline => UpdateDeadline::Interrupt,
        _ => UpdateDeadline::Continue(1),
    }
}

/// What kind of failure a trap is, and its message.
pub(crate) fn classify(
    e: &wasmtime::Error,
    memory_hit: bool,
    sandbox: &Sandbox,
) -> (TaskErrorKind, String) {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => (
            TaskErrorKind::Timeout,
            format!(
                "deadline of {:?} exceeded; the task was stopped",
                sandbox.timeout.unwrap_or_default()
            ),
        ),
        Some(wasmtime::Trap::OutOfFuel) => (
            TaskErrorKind::ResourceLimit,
            format!(
                "fuel budget of {} exhausted",
                sandbox.fuel.unwrap_or_default()
            ),
        ),
        _ if memory_hit => (
            TaskErrorKind::ResourceLimit,
            format!(
                "memory limit of {} bytes exceeded",
                sandbox.memory.unwrap_or_default()
            ),
        ),
        Some(trap) => (TaskErrorKind::Trap, trap.to_string()),
        None => (TaskErrorKind::Trap, untrapped_reason(e)),
    }
}

/// Why the instance stopped when wasmtime raised no `Trap`: the guest called
/// `exit`, or a host function failed. The error's first line is only the
/// heading of the wasm backtrace attached to it, so the reason is its root
/// cause.
fn untrapped_reason(e: &wasmtime::Error) -> String {
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return format!(
            "the task called exit (status {}); a pool task cannot end its worker process",
            exit.0
        );
    }
    let reason = e.root_cause().to_string();
    reason.lines().next().unwrap_or_default().to_string()
}
