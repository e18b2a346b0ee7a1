//! The `mpwasm` command: pools of sandboxed wasm workers from the shell.
//!
//! See `mpwasm --help`. The library crate does the work; this binary parses
//! arguments, reports errors in one line, and maps outcomes to exit codes:
//! 0 success, 1 some tasks failed, 2 bad usage or an unusable guest.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Worker processes are this binary started again: serve and exit.
    mpwasm::init();
    cli::main()
}
