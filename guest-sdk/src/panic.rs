//! Turning a panic into that one task's error.
//!
//! wasm32-wasip1 aborts on panic, which traps the instance. Before that
//! happens, the hook hands the host the panic message and the results the
//! current chunk already produced, so the host fails only the panicking input
//! and re-runs the rest on a fresh instance.

use std::sync::Once;

use crate::bindings::runtime;
use crate::dispatch::BATCH;

/// Installs the hook once per instance.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = match info.location() {
                Some(at) => format!("{} (at {})", payload_text(info.payload()), at),
                None => payload_text(info.payload()).to_string(),
            };
            // `try_with`/`try_borrow_mut`: a panic inside the dispatcher
            // itself must not turn into a double panic here.
            let batch = BATCH
                .try_with(|b| b.try_borrow_mut().ok().and_then(|mut b| b.take()))
                .ok()
                .flatten();
            match batch {
                Some(batch) => runtime::report_panic(&message, &batch.out),
                // Outside a task (in main): the default hook prints it.
                None => default(info),
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
