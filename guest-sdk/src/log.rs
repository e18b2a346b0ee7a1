//! Writing to the host's log.

use crate::bindings::runtime;

/// Severity of a [`log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line to the host's log (its stderr), tagged with the worker
/// and shown according to the host's `RUST_LOG` filter.
///
/// ```no_run
/// mpwasm_guest::log(mpwasm_guest::Level::Info, "starting");
/// ```
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => runtime::Level::Trace,
        Level::Debug => runtime::Level::Debug,
        Level::Info => runtime::Level::Info,
        Level::Warn => runtime::Level::Warn,
        Level::Error => runtime::Level::Error,
    };
    runtime::log(level, message);
}
