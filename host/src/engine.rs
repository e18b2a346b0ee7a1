//! The one wasmtime configuration every part of mpwasm uses.
//!
//! A precompiled component is tied to the exact `Config` that produced it, so
//! the parent (which compiles and caches) and every worker process (which
//! loads from the cache) must build their engine here. The engine's
//! compatibility hash is part of the cache key ([`crate::load`]).

use serde::{Deserialize, Serialize};
use wasmtime::{Config, Engine};

use crate::wire::Sandbox;

/// The checks compiled into a guest's code for its sandbox's limits. Each
/// costs time in every loop, so an artifact has only those its run asks
/// for, and each combination is a separate artifact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checks {
    /// Fuel metering (`--fuel`): a counter update per block.
    pub(crate) fuel: bool,
    /// Epoch checks at loop headers and calls (`--task-timeout`): a load
    /// and compare each, about 15% of a bytecode interpreter's time.
    pub(crate) deadline: bool,
}

impl Checks {
    /// What `sandbox`'s limits need.
    pub(crate) fn of(sandbox: &Sandbox) -> Self {
        Checks {
            fuel: sandbox.fuel.is_some(),
            deadline: sandbox.timeout.is_some(),
        }
    }
}

/// Builds the engine shared by compilation and worker processes: `checks`
/// enables fuel and epoch checks; `window` makes the engine of guests with a window
/// ([`crate::load::window`]): atomics validated (wasmtime's `threads`, no
/// shared memories), memories from [`crate::sys::window::Creator`] that
/// never move, and no copy-on-write memory images (which a custom creator
/// cannot have: bytecodealliance/wasmtime#10740). Each combination is a
/// separate artifact.
///
/// # Errors
///
/// Fails only if wasmtime rejects the configuration (a build problem).
pub(crate) fn engine(checks: Checks, window: bool) -> wasmtime::Result<Engine> {
    Engine::new(&config(checks, window))
}

/// The engine of a worker process or zygote: [`engine`]'s configuration
/// (the same `checks` and `window`) with the compiler switched off.
/// Workers only map precompiled artifacts, which such an engine loads
/// (their compatibility check compares settings, not whether a compiler
/// exists); without one, making the engine builds no Cranelift back end and
/// touches none of its code.
///
/// # Errors
///
/// As [`engine`].
pub(crate) fn runtime_engine(checks: Checks, window: bool) -> wasmtime::Result<Engine> {
    #[allow(unused_mut)] // a build without the `compiler` feature has none to switch off
    let mut config = config(checks, window);
    #[cfg(feature = "compiler")]
    config.enable_compiler(false);
    Engine::new(&config)
}

fn config(checks: Checks, window: bool) -> Config {
    let mut config = Config::new();
    // Atomic instructions only in the generated helpers of window guests;
    // other guests keep the engine (and artifacts) they had.
    config.wasm_threads(window);
    config.shared_memory(false);
    if window {
        config.with_host_memory(std::sync::Arc::new(crate::sys::window::Creator));
        config.memory_init_cow(false);
        config.memory_may_move(false);
    }
    // Task deadlines: a ticker thread in the worker advances the epoch; a
    // store whose deadline passes traps at the next loop header or call.
    // The checks cost ~15% of CPython's time in wasm (count_primes 0.53 s
    // -> 0.44 s), so only runs with a deadline have them.
    config.epoch_interruption(checks.deadline);
    // Fuel (deterministic limits) costs a counter update per block, so it
    // is compiled in only for pools that ask for it.
    config.consume_fuel(checks.fuel);
    // No component-model async: it roughly doubles the cost of a host call
    // and mpwasm's host functions block in their own process instead.
    config.concurrency_support(false);
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    config
}
