//! Host implementations of the WIT interfaces a guest imports, one file per
//! interface. Each implements the `Host` trait `bindgen!` generated for it on
//! [`WorkerState`](crate::worker::child::WorkerState).
//!
//! This version provides `runtime`; `process`, `queue`, `pipe`, `shared`,
//! `sync` and `manager` are specified in `wit/` and not linked yet: a guest
//! importing them is refused at load time with a one-line error.

mod runtime;
