//! The one wasmtime configuration every part of mpwasm uses.
//!
//! A precompiled component is tied to the exact `Config` that produced it, so
//! the parent (which compiles and caches) and every worker process (which
//! loads from the cache) must build their engine here. The engine's
//! compatibility hash is part of the cache key ([`crate::load`]).

use wasmtime::{Config, Engine};

/// Builds the engine shared by compilation and worker processes: `metering`
/// enables fuel; `window` makes the engine of guests with a window
/// ([`crate::load::window`]): atomics validated (wasmtime's `threads`, no
/// shared memories), memories from [`crate::sys::window::Creator`] that
/// never move, and no copy-on-write memory images (which a custom creator
/// cannot have: bytecodealliance/wasmtime#10740). Each combination is a
/// separate artifact.
///
/// # Errors
///
/// Fails only if wasmtime rejects the configuration (a build problem).
pub(crate) fn engine(metering: bool, window: bool) -> wasmtime::Result<Engine> {
    Engine::new(&config(metering, window))
}

/// The engine of a worker process or zygote: [`engine`]'s configuration
/// (the same `metering` and `window`) with the compiler switched off.
/// Workers only map precompiled artifacts, which such an engine loads
/// (their compatibility check compares settings, not whether a compiler
/// exists); without one, making the engine builds no Cranelift back end and
/// touches none of its code.
///
/// # Errors
///
/// As [`engine`].
pub(crate) fn runtime_engine(metering: bool, window: bool) -> wasmtime::Result<Engine> {
    #[allow(unused_mut)] // a build without the `compiler` feature has none to switch off
    let mut config = config(metering, window);
    #[cfg(feature = "compiler")]
    config.enable_compiler(false);
    Engine::new(&config)
}

fn config(metering: bool, window: bool) -> Config {
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
    config.epoch_interruption(true);
    // Fuel (deterministic limits) costs a counter update per block, so it
    // is compiled in only for pools that ask for it (a separate artifact).
    config.consume_fuel(metering);
    // No component-model async: it roughly doubles the cost of a host call
    // and mpwasm's host functions block in their own process instead.
    config.concurrency_support(false);
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    config
}
