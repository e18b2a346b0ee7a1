//! Test guest for `tests/guest_pools.rs`: pools a guest starts — what
//! happens when their holder ends in every way it can, `close` + `join`,
//! Python's pool options, and errors at the call.
//!
//! `mpwasm run poolkit.wasm <scenario>` runs one scenario in `main`, which
//! prints one fact per line (`name value…`) for the test to check; the
//! `#[task]`s are what the pools and processes run. Every blocking call that
//! could hang on a bug has a timeout or is guarded by the test.

mod cluster_queues;
mod holders;
mod options;

use std::cell::Cell;
use std::time::Duration;

use mpwasm_guest::{Error, Event, Result};

/// Sleeps `ms` milliseconds and returns this worker's pid.
#[mpwasm_guest::task]
fn sleep_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    mpwasm_guest::current_process().pid
}

/// This worker's pid.
#[mpwasm_guest::task]
fn pid(_x: u64) -> u32 {
    mpwasm_guest::current_process().pid
}

#[mpwasm_guest::task]
fn square(x: u64) -> u64 {
    x * x
}

/// Fails for odd inputs.
#[mpwasm_guest::task]
fn even_only(x: u64) -> std::result::Result<u64, String> {
    if x % 2 == 1 {
        Err(format!("{x} is odd"))
    } else {
        Ok(x)
    }
}

/// Panics.
#[mpwasm_guest::task]
fn boom(_x: u64) -> u64 {
    panic!("boom")
}

/// Waits (at most 20 s) for `event`; true if it was set.
#[mpwasm_guest::task]
fn wait_for(event: Event) -> bool {
    event.wait_timeout(Duration::from_secs(20))
}

thread_local! {
    /// What the pool initializer set in this instance.
    static INIT: Cell<u64> = const { Cell::new(0) };
}

/// A pool initializer: remembers `x` for [`init_value`].
#[mpwasm_guest::task]
fn remember(x: u64) {
    INIT.with(|i| i.set(x));
}

/// A pool initializer that fails.
#[mpwasm_guest::task]
fn refuse(_x: u64) -> std::result::Result<(), String> {
    Err("no setup today".into())
}

/// What the initializer left in this instance; panics on input 13 (the
/// instance is reset, so the initializer must run again).
#[mpwasm_guest::task]
fn init_value(x: u64) -> u64 {
    if x == 13 {
        panic!("unlucky");
    }
    INIT.with(|i| i.get())
}

/// The worker's `MPWASM_TEST_HOST` (set by a test's worker host with
/// `--env`), or `local`.
#[mpwasm_guest::task]
fn host_env(_x: u64) -> String {
    std::env::var("MPWASM_TEST_HOST").unwrap_or_else(|_| "local".into())
}

#[mpwasm_guest::main]
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((scenario, rest)) = args.split_first() else {
        return Err(Error::Other(
            "usage: poolkit.wasm <scenario> [args…]".into(),
        ));
    };
    match scenario.as_str() {
        "panic_main" => holders::panic_main(),
        "panic_in_process" => holders::panic_in_process(),
        "exit_main" => holders::exit_main(),
        "forget_pool" => holders::forget_pool(),
        "killed_holder" => holders::killed_holder(),
        "blocked_main" => holders::blocked_main(),
        "close_join" => options::close_join(),
        "imap_close" => options::imap_close(),
        "pids" => options::pids(rest),
        "initializer" => options::initializer(),
        "chunksize" => options::chunksize(),
        "callbacks" => options::callbacks(),
        "big_map" => options::big_map(rest),
        "closed_calls" => options::closed_calls(),
        "first_failure" => options::first_failure(),
        "scope" => options::scope(),
        "call_errors" => options::call_errors(),
        "cluster_map" => options::cluster_map(rest),
        "cluster_queue" => cluster_queues::to_main(rest),
        "cluster_queue_mpmc" => cluster_queues::mpmc(rest),
        "cluster_queue_redeliver" => cluster_queues::redeliver(rest),
        other => Err(Error::Other(format!("no scenario {other:?}"))),
    }
}
