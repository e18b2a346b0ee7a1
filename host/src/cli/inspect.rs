//! `mpwasm inspect`: what a guest exports.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// List the tasks a guest exports, one per line.
///
/// The guest is loaded (and compiled into the cache if needed) and asked for
/// its task names inside a sandboxed worker process, as a pool would.
#[derive(Args)]
pub(crate) struct InspectCommand {
    /// The guest: a .wasm core module or component
    guest: PathBuf,
}

impl InspectCommand {
    pub(crate) fn execute(self, cache: &mpwasm::Cache) -> anyhow::Result<ExitCode> {
        let pool = mpwasm::Pool::builder(&self.guest)
            .processes(1)
            .cache(cache.clone())
            .guest_stdout_to_stderr(true)
            .build()?;
        for name in pool.task_names()? {
            println!("{name}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
