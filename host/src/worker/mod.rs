//! Worker processes: one OS process per mpwasm process, each running one
//! wasmtime instance of the guest.
//!
//! - [`spawn`] is the parent's side: it starts `mpwasm` (or the embedding
//!   program) again with [`WORKER_ENV`] set and one end of a socketpair as
//!   stdin, then talks [`crate::wire`] frames over it.
//! - [`child`] is the worker's side: [`child::run_if_worker`] notices the
//!   variable, maps the precompiled component, and serves requests until the
//!   parent closes the socket (or dies: the worker is SIGKILLed with it).

pub(crate) mod child;
pub(crate) mod program;
mod sandbox;
pub(crate) mod spawn;

/// Set in a worker process's environment; its value is the parent's pid.
pub(crate) const WORKER_ENV: &str = "MPWASM_WORKER_PARENT";
