//! Test guest for `tests/processes.rs`: processes, queues and pipes under
//! stress and failure.
//!
//! `mpwasm run msgkit.wasm <scenario> [ARGS…]` runs one scenario in `main`,
//! which prints one fact per line (`name value…`, values in `{:?}` form) for
//! the test to check; the `#[task]`s are the targets its processes run.
//! Scenarios do not assert: a wrong value is printed, so the test shows all
//! of them, and every blocking call that could hang on a bug has a timeout.

mod api;
mod lifecycle;
mod pipes;
mod processes;
mod queues;

use std::time::{Duration, Instant};

use mpwasm_guest::{Error, Result};

/// How long any scenario waits for something that should come at once.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Milliseconds since `t`.
pub(crate) fn ms(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

/// The scenario's `i`th argument (after its name), or `default`.
pub(crate) fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// Sleeps `ms` milliseconds.
pub(crate) fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[mpwasm_guest::main]
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((scenario, rest)) = args.split_first() else {
        return Err(Error::Other("usage: msgkit.wasm <scenario> [args…]".into()));
    };
    let outcome = run(scenario, rest);
    if outcome.is_err() {
        // The run would wait for children left blocked (as Python joins
        // non-daemon children at exit): end them, so a failure is reported
        // rather than hung on.
        for child in mpwasm_guest::active_children() {
            let _ = child.kill();
        }
    }
    outcome
}

fn run(scenario: &str, rest: &[String]) -> Result<()> {
    match scenario {
        "mpmc" => queues::mpmc(rest),
        "bounded" => queues::bounded(),
        "unbounded_exit" => queues::unbounded_exit(rest),
        "joinable" => queues::joinable(),
        "killed_while_blocked" => queues::killed_while_blocked(),
        "big" => pipes::big(),
        "eof_kill" => pipes::eof(true),
        "eof_return" => pipes::eof(false),
        "forged" => pipes::forged(),
        "wait" => pipes::wait_ready(),
        "join_timeout" => processes::join_timeout(),
        "terminate" => processes::terminate(),
        "exitcodes" => processes::exitcodes(),
        "daemon_grandchild" => processes::daemon_grandchild(),
        "daemon_at_exit" => processes::daemon_at_exit(),
        "nondaemon_at_exit" => processes::nondaemon_at_exit(),
        "nested" => processes::nested(),
        "process_cap" => processes::process_cap(rest),
        "start_join" => processes::start_join(rest),
        "blocked_child" => processes::blocked_child(),
        "shutdown" => api::shutdown(),
        "join_thread" => api::join_thread(),
        "send_bytes_range" => api::send_bytes_range(),
        "orphan_grandchild" => lifecycle::orphan_grandchild(),
        "exit_codes" => lifecycle::exit_codes(),
        other => Err(Error::Other(format!("no scenario {other:?}"))),
    }
}
