//! Options for reaching a NATS cluster, shared by `mpwasm pool --cluster`
//! and `mpwasm serve`.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};

/// Where the cluster is and how to authenticate.
#[derive(Args)]
#[command(next_help_heading = "Cluster")]
pub(crate) struct ClusterArgs {
    /// Run on the worker hosts of this NATS JetStream cluster (nats://HOST:PORT, several comma-separated)
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// NATS user name (with --nats-password, or $MPWASM_NATS_PASSWORD)
    #[arg(long, value_name = "USER")]
    nats_user: Option<String>,

    /// NATS password
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "MPWASM_NATS_PASSWORD",
        hide_env_values = true
    )]
    nats_password: Option<String>,

    /// NATS token
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MPWASM_NATS_TOKEN",
        hide_env_values = true
    )]
    nats_token: Option<String>,

    /// File holding an NATS nkey seed (SU...)
    #[arg(long, value_name = "FILE")]
    nats_nkey: Option<PathBuf>,

    /// NATS credentials file (.creds: user JWT and nkey seed)
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,

    /// Trust this CA certificate (PEM) for the servers' TLS; requires TLS
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for TLS, with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// Client key (PEM) for TLS, with --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Refuse servers without TLS
    #[arg(long)]
    require_tls: bool,

    /// Where the streams keep messages if this process makes them
    #[arg(long, value_name = "KIND", default_value = "file")]
    cluster_storage: StorageArg,

    /// How many NATS servers keep each stream if this process makes them
    #[arg(long, value_name = "N", default_value_t = 1)]
    cluster_replicas: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum StorageArg {
    File,
    Memory,
}

impl ClusterArgs {
    /// The cluster options, or `None` without `--cluster`.
    pub(crate) fn options(&self) -> anyhow::Result<Option<mpwasm::ClusterOptions>> {
        let Some(url) = &self.cluster else {
            return Ok(None);
        };
        let mut o = mpwasm::ClusterOptions::new(url)
            .storage(match self.cluster_storage {
                StorageArg::File => mpwasm::Storage::File,
                StorageArg::Memory => mpwasm::Storage::Memory,
            })
            .replicas(self.cluster_replicas)
            .require_tls(self.require_tls);
        let kinds = [
            self.nats_user.is_some(),
            self.nats_token.is_some(),
            self.nats_nkey.is_some(),
            self.nats_creds.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            bail!("give one of --nats-user, --nats-token, --nats-nkey, --nats-creds");
        }
        if let Some(user) = &self.nats_user {
            let Some(password) = &self.nats_password else {
                bail!("--nats-user needs --nats-password (or MPWASM_NATS_PASSWORD)");
            };
            o = o.user_password(user, password);
        }
        if let Some(token) = &self.nats_token {
            o = o.token(token);
        }
        if let Some(path) = &self.nats_nkey {
            let seed = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            o = o.nkey_seed(seed.trim());
        }
        if let Some(path) = &self.nats_creds {
            o = o.credentials_file(path);
        }
        if let Some(ca) = &self.tls_ca {
            o = o.tls_root_certificate(ca);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            o = o.tls_client_certificate(cert, key);
        }
        Ok(Some(o))
    }
}
