//! Sandbox options shared by `mpwasm pool` and `mpwasm run`.

use anyhow::bail;
use clap::Args;

/// Limits and grants for the guest (all off by default).
#[derive(Args)]
#[command(next_help_heading = "Sandbox")]
pub(crate) struct SandboxArgs {
    /// Cap each worker's guest memory (e.g. 64MiB); a task that needs more fails
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size)]
    memory: Option<u64>,

    /// Stop any task running longer than this (e.g. 2s, 250ms); it fails with kind "timeout"
    #[arg(long, value_name = "DURATION", value_parser = super::units::parse_duration)]
    task_timeout: Option<std::time::Duration>,

    /// Give each task a deterministic budget of N fuel units (about N wasm instructions)
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,

    /// Let guests open HOST as GUEST (default: the same path); append :ro for read-only
    #[arg(long, value_name = "HOST[::GUEST][:ro]")]
    dir: Vec<String>,

    /// Set an environment variable for guests
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Give guests mpwasm's whole environment
    #[arg(long)]
    inherit_env: bool,

    /// Re-run a task whose worker process died up to N more times before failing it
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,

    /// Replace each worker process after it has run N tasks
    #[arg(long, value_name = "N")]
    maxtasksperchild: Option<u64>,

    /// Let guests have at most N processes running at once; starting more fails
    #[arg(long, value_name = "N")]
    max_processes: Option<u32>,

    /// Refuse queue items, pipe messages and process arguments larger than SIZE [default: 64MiB]
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size)]
    max_message: Option<u64>,

    /// Let the parent hold at most SIZE for the guests (spilled items, manager data, pool jobs, handles) [default: 1GiB]
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size)]
    host_memory: Option<u64>,

    /// Let guests have at most SIZE of shared memory at once (regions, queues' socket buffers) [default: 1GiB]
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size)]
    shared_memory: Option<u64>,

    /// Let guests have at most N queues, regions, locks and other primitives alive at once [default: 4096]
    #[arg(long, value_name = "N")]
    max_objects: Option<u32>,
}

impl SandboxArgs {
    /// Applies the limits and grants to a pool builder.
    pub(crate) fn apply(&self, mut b: mpwasm::PoolBuilder) -> anyhow::Result<mpwasm::PoolBuilder> {
        if let Some(m) = self.memory {
            b = b.memory_limit(m);
        }
        if let Some(t) = self.task_timeout {
            b = b.task_timeout(t);
        }
        if let Some(f) = self.fuel {
            b = b.fuel(f);
        }
        for d in &self.dir {
            let (spec, read_only) = match d.strip_suffix(":ro") {
                Some(spec) => (spec, true),
                None => (d.as_str(), false),
            };
            let (host, guest) = spec.split_once("::").unwrap_or((spec, spec));
            if host.is_empty() || guest.is_empty() {
                bail!("--dir {d}: expected HOST[::GUEST][:ro]");
            }
            b = b.preopen_dir(host, guest, read_only);
        }
        for e in &self.env {
            let Some((k, v)) = e.split_once('=') else {
                bail!("--env {e}: expected KEY=VALUE");
            };
            b = b.env(k, v);
        }
        if self.inherit_env {
            b = b.inherit_env();
        }
        if let Some(n) = self.maxtasksperchild {
            b = b.maxtasksperchild(n);
        }
        if let Some(n) = self.max_processes {
            b = b.max_processes(n);
        }
        if let Some(m) = self.max_message {
            b = b.max_message(m);
        }
        if let Some(m) = self.host_memory {
            b = b.host_memory(m);
        }
        if let Some(m) = self.shared_memory {
            b = b.shared_memory(m);
        }
        if let Some(n) = self.max_objects {
            b = b.max_objects(n);
        }
        Ok(b.retries(self.retries))
    }
}
