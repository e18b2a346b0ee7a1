//! The one `bindgen!` call: host bindings for the `guest` world of `wit/`.
//!
//! Host implementations of the imported interfaces live in
//! [`crate::interfaces`], one file per interface; the resources map to the
//! types named in `with`.

wasmtime::component::bindgen!({
    world: "guest",
    path: "../wit",
    // Host functions may trap: a broken channel to the parent ends the
    // instance instead of inventing an answer.
    imports: { default: trappable },
    with: {
        "mpwasm:runtime/process.process": crate::interfaces::process::ProcessHandle,
        "mpwasm:runtime/queue.queue": crate::interfaces::queue::QueueHandle,
        "mpwasm:runtime/pipe.connection": crate::interfaces::pipe::ConnectionHandle,
        "mpwasm:runtime/pool.pool": crate::interfaces::pool::PoolHandle,
        "mpwasm:runtime/pool.job": crate::interfaces::pool::JobHandle,
        "mpwasm:runtime/shared.region": crate::interfaces::shared::RegionHandle,
        "mpwasm:runtime/sync.sync-object": crate::interfaces::sync::SyncHandle,
        "mpwasm:runtime/manager.proxy": crate::interfaces::manager::ProxyHandle,
    },
});

pub(crate) use self::mpwasm::runtime::{
    manager, pipe, pool, process, queue, runtime, shared, sync, types,
};

/// The fully qualified name of the export every guest must provide.
pub(crate) const TASKS_EXPORT: &str = "mpwasm:runtime/tasks@0.1.0";
