//! Argument parsing and dispatch; one file per subcommand.

mod build;
mod cluster;
mod compile;
mod inspect;
mod json_lines;
mod pool;
mod run;
mod sandbox;
mod serve;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `mpwasm --version`: the crate's version and its build id (a hash of
/// the host's sources and the WIT, which `mpwasm-worker --build-id` prints
/// too: a pool uses that worker only when the two agree).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (build ",
    env!("MPWASM_BUILD_ID"),
    ")"
);

/// Run Python-multiprocessing-style pools of sandboxed WebAssembly workers.
///
/// mpwasm runs a wasm32-wasip1 guest, written with the mpwasm-guest SDK, in a
/// pool of worker processes. Each worker is a separate OS process holding one
/// wasmtime instance, with no filesystem, environment or network access. A
/// task that panics or traps fails only its own input; a worker that dies is
/// replaced.
///
/// Exit status: 0 when every task succeeded, 1 when some tasks failed, 2 for
/// bad usage or a guest that cannot be loaded.
#[derive(Parser)]
#[command(name = "mpwasm", version = VERSION, propagate_version = true)]
struct Cli {
    /// Directory of compiled guests [default: $XDG_CACHE_HOME/mpwasm or ~/.cache/mpwasm]
    #[arg(long, global = true, env = "MPWASM_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Pool(Box<pool::PoolCommand>),
    Run(Box<run::RunCommand>),
    Compile(compile::CompileCommand),
    Inspect(inspect::InspectCommand),
    Serve(Box<serve::ServeCommand>),
    Build(build::BuildCommand),
}

/// Parses the command line, runs it, and turns the outcome into an exit code.
pub(crate) fn main() -> ExitCode {
    mpwasm::init_logging();
    let cli = Cli::parse();
    let cache = match cli.cache_dir {
        Some(dir) => mpwasm::Cache::new(dir),
        None => mpwasm::Cache::default_location(),
    };
    let outcome = match cli.command {
        Command::Pool(cmd) => cmd.execute(&cache),
        Command::Run(cmd) => cmd.execute(&cache),
        Command::Compile(cmd) => cmd.execute(&cache),
        Command::Inspect(cmd) => cmd.execute(&cache),
        Command::Serve(cmd) => cmd.execute(&cache),
        Command::Build(cmd) => cmd.execute(&cache),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mpwasm: error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// An error chain on one line: "context: cause: cause".
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', "; ")
}
