//! `mpwasm run`: a guest's `main` as the main process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Run a guest's main function in a sandboxed worker process.
///
/// The guest marks its entry point with #[mpwasm_guest::main]. ARGS become its
/// std::env::args() after the program name. Its stdout and stderr are this
/// command's; stdin is closed. The exit status is main's: the value it returns
/// (0 for a main without one), 1 if it calls exit with a non-zero code (WASI
/// preview 2 carries only success or failure), 1 if it panics or traps (the trap
/// and a wasm backtrace are printed), 1 if its worker process is stopped past
/// --task-timeout or dies, 2 if the guest has no main or cannot be loaded.
///
/// With --cluster URL, the pools the guest creates send their chunks to the
/// worker hosts of that NATS cluster (mpwasm serve --cluster URL), as mpwasm
/// pool --cluster does; main, the processes it starts, its queues and pipes
/// stay on this machine.
///
/// Example:
///
///   mpwasm run --env NAME=world hello.wasm --shout
#[derive(Args)]
pub(crate) struct RunCommand {
    #[command(flatten)]
    sandbox: super::sandbox::SandboxArgs,

    // The pools the guest creates run on the cluster's worker hosts; main,
    // its processes, queues and pipes stay on this machine.
    #[command(flatten)]
    cluster: super::cluster::ClusterArgs,

    /// The guest: a .wasm core module or component
    guest: PathBuf,

    /// Arguments for the guest's main
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

impl RunCommand {
    pub(crate) fn execute(self, cache: &mpwasm::Cache) -> anyhow::Result<ExitCode> {
        let program = self.guest.display().to_string();
        let mut builder = mpwasm::Pool::builder(&self.guest)
            .processes(1)
            .cache(cache.clone())
            .args(std::iter::once(program).chain(self.args.iter().cloned()));
        if let Some(cluster) = self.cluster.options()? {
            builder = builder.guest_pools_cluster(cluster);
        }
        let pool = self.sandbox.apply(builder)?.build()?;
        match pool.run_main() {
            Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
            // Main ran and failed (stopped past its deadline, broke the
            // protocol, died): its failure, not bad usage.
            Err(e @ mpwasm::Error::Main(_)) => {
                eprintln!("mpwasm: {e}");
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e.into()),
        }
    }
}
