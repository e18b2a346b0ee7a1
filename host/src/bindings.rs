//! The one `bindgen!` call: host bindings for the `worker` world of `wit/`.
//!
//! Host implementations of the imported interfaces live in
//! [`crate::interfaces`], one file per interface.

wasmtime::component::bindgen!({
    world: "worker",
    path: "../wit",
});

pub(crate) use self::mpwasm::runtime::{runtime, types};

/// The fully qualified name of the export every guest must provide.
pub(crate) const TASKS_EXPORT: &str = "mpwasm:runtime/tasks@0.1.0";
