//! `mpwasm build`: a Python program as a component to ship.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Build a Python program into a component that carries it.
///
/// `mpwasm run prog.py` needs no build: every Python program runs in one
/// component, built once and cached, and its source is handed to it at
/// start. This bakes the source in instead, so `mpwasm run prog.wasm`,
/// `mpwasm pool prog.wasm --task f` and `Pool::builder("prog.wasm")` run it
/// from a single file. Needs componentize-py (scripts/setup.sh installs it).
///
/// Example:
///
///   mpwasm build prog.py -o prog.wasm
#[derive(Args)]
pub(crate) struct BuildCommand {
    /// The Python program
    program: PathBuf,

    /// Where to write the component [default: the program's name with .wasm]
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

impl BuildCommand {
    pub(crate) fn execute(self, _cache: &mpwasm::Cache) -> anyhow::Result<ExitCode> {
        let output = self
            .output
            .unwrap_or_else(|| self.program.with_extension("wasm"));
        let took = mpwasm::build_python(&self.program, &output)?;
        let size = std::fs::metadata(&output).map_or(0, |m| m.len());
        println!(
            "built {} in {} ms: {} ({size} bytes)",
            self.program.display(),
            took.as_millis(),
            output.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
