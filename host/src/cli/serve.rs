//! `mpwasm serve`: a worker host of a cluster.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

/// Join a NATS JetStream cluster as a worker host and run callers' chunks.
///
/// Takes chunks from the cluster (`mpwasm pool --cluster URL`,
/// `PoolBuilder::cluster`) and runs each on local sandboxed worker
/// processes, --slots at a time. The sandbox options below are the ceiling
/// for every caller: a caller may ask for a lower memory cap, deadline or
/// fuel budget, never for more, and only this host grants directories or
/// environment. Runs until killed.
///
/// Example:
///
///   mpwasm serve --cluster nats://10.0.0.5:4222 --slots 8 --memory 256MiB
#[derive(Args)]
pub(crate) struct ServeCommand {
    /// Chunks run at once (one worker process each) [default: number of CPUs]
    #[arg(long, value_name = "N")]
    slots: Option<usize>,

    /// How long the server waits for a chunk's progress before handing it to another host
    #[arg(long, value_name = "DURATION", value_parser = super::units::parse_duration, default_value = "5s")]
    ack_wait: Duration,

    /// Deliveries of a chunk before its caller fails it with worker_lost
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_deliver: u32,

    #[command(flatten)]
    cluster: super::cluster::ClusterArgs,

    #[command(flatten)]
    sandbox: super::sandbox::SandboxArgs,
}

impl ServeCommand {
    pub(crate) fn execute(self, cache: &mpwasm::Cache) -> anyhow::Result<ExitCode> {
        let Some(cluster) = self.cluster.options()? else {
            bail!("serve needs --cluster URL");
        };
        let slots = self
            .slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let sandbox = self.sandbox.apply(mpwasm::Pool::builder(""))?;
        let options = mpwasm::ServeOptions::new(cluster, slots, sandbox, cache.clone())
            .ack_wait(self.ack_wait)
            .max_deliver(self.max_deliver);
        mpwasm::serve(options)?;
        Ok(ExitCode::SUCCESS)
    }
}
