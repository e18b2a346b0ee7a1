//! `mpwasm compile`: fill the cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Compile a guest into the cache, so that pools start without compiling.
///
/// A wasm32-wasip1 core module is first turned into a component. The result
/// is stored under a key made of the file's content hash and the engine's
/// settings; later runs of any mpwasm command map it directly. Prints where
/// the compiled guest is, and whether it had to be compiled.
#[derive(Args)]
pub(crate) struct CompileCommand {
    /// The guest: a .wasm core module or component
    guest: PathBuf,
}

impl CompileCommand {
    pub(crate) fn execute(self, cache: &mpwasm::Cache) -> anyhow::Result<ExitCode> {
        let guest = cache.load(&self.guest)?;
        match guest.compile_time() {
            Some(t) => println!(
                "compiled {} in {} ms: {}",
                self.guest.display(),
                t.as_millis(),
                guest.artifact().display()
            ),
            None => println!(
                "cached {}: {}",
                self.guest.display(),
                guest.artifact().display()
            ),
        }
        Ok(ExitCode::SUCCESS)
    }
}
