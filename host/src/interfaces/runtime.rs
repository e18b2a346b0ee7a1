//! `mpwasm:runtime/runtime`: identity, logging, panic reports.

use crate::bindings::{runtime, types};
use crate::limits::MAX_LOG_BYTES;
use crate::worker::child::{outcome_from_guest, WorkerState};

impl types::Host for WorkerState {}

impl runtime::Host for WorkerState {
    fn worker(&mut self) -> wasmtime::Result<runtime::WorkerInfo> {
        Ok(self.info.clone())
    }

    fn cpu_count(&mut self) -> wasmtime::Result<u32> {
        Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
    }

    fn log(&mut self, level: runtime::Level, message: String) -> wasmtime::Result<()> {
        let message = truncate(&message, MAX_LOG_BYTES);
        let id = self.info.id;
        match level {
            runtime::Level::Trace => tracing::trace!(target: "guest", worker = id, "{message}"),
            runtime::Level::Debug => tracing::debug!(target: "guest", worker = id, "{message}"),
            runtime::Level::Info => tracing::info!(target: "guest", worker = id, "{message}"),
            runtime::Level::Warn => tracing::warn!(target: "guest", worker = id, "{message}"),
            runtime::Level::Error => tracing::error!(target: "guest", worker = id, "{message}"),
        }
        Ok(())
    }

    fn report_panic(&mut self, message: String, completed: types::Outcome) -> wasmtime::Result<()> {
        let message = truncate(&message, MAX_LOG_BYTES).to_string();
        self.panic = Some((message, outcome_from_guest(completed)));
        Ok(())
    }
}

/// The longest prefix of `s` within `max` bytes, on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
