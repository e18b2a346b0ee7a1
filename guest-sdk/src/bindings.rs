//! The one `generate!` call: Rust bindings for the `guest` world of `wit/`
//! (the `worker` world's tasks and main, plus processes, queues, pipes,
//! pools, shared memory, locks and managers).
//!
//! Everything generated here is private to the SDK; the public API in the
//! other modules wraps it in Python's names.

wit_bindgen::generate!({
    world: "guest",
    path: "../wit",
    // The SDK implements the exports itself (see `dispatch`), so guests only
    // write `#[mpwasm_guest::task]` functions.
    pub_export_macro: false,
});

pub(crate) use exports::mpwasm::runtime::{program, tasks};
pub(crate) use mpwasm::runtime::{
    manager, pipe, pool, process, queue, runtime, shared, sync, types,
};

/// The type that implements the world's exports.
pub(crate) struct Guest;

export!(Guest);
