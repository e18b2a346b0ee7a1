//! `mpwasm-worker`: the program a pool forks its workers from when it lies
//! next to the `mpwasm` executable.
//!
//! It is the `mpwasm` crate built without its `compiler` feature: wasmtime's
//! runtime without Cranelift, and none of the command line's crates, so a
//! zygote and every worker forked from it map and touch less code than the
//! whole `mpwasm` binary. It serves only as a zygote or worker (see
//! [`mpwasm::init`]). `mpwasm-worker --build-id` prints the build id a pool
//! checks before using it; started any other way it says so and exits
//! with 2.

use std::process::ExitCode;

fn main() -> ExitCode {
    mpwasm::init();
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() == 1 && args[0] == mpwasm::BUILD_ID_ARG {
        println!("{}", mpwasm::BUILD_ID);
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "mpwasm-worker: this program only runs as an mpwasm worker, started by a pool; \
         run `mpwasm` instead"
    );
    ExitCode::from(2)
}
