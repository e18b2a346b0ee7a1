//! How to reach the cluster: the NATS URL, credentials and TLS.

use std::path::PathBuf;
use std::time::Duration;

use super::{nats_error, Storage};
use crate::error::Result;

/// How to connect to a NATS cluster (both for callers and worker hosts).
///
/// # Examples
///
/// ```
/// let opts = mpwasm::ClusterOptions::new("nats://127.0.0.1:4222")
///     .token("s3cret")
///     .tls_root_certificate("/etc/mpwasm/ca.pem");
/// assert_eq!(opts.url(), "nats://127.0.0.1:4222");
/// ```
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    url: String,
    auth: Auth,
    tls_ca: Option<PathBuf>,
    tls_client: Option<(PathBuf, PathBuf)>,
    require_tls: bool,
    storage: Storage,
    replicas: usize,
}

/// Credentials, one kind at a time.
#[derive(Clone, Default)]
enum Auth {
    #[default]
    None,
    UserPassword(String, String),
    Token(String),
    NkeySeed(String),
    CredsFile(PathBuf),
}

impl std::fmt::Debug for Auth {
    // Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::UserPassword(..) => "UserPassword(..)",
            Auth::Token(_) => "Token(..)",
            Auth::NkeySeed(_) => "NkeySeed(..)",
            Auth::CredsFile(_) => "CredsFile(..)",
        })
    }
}

impl ClusterOptions {
    /// The server(s) at `url`: `nats://HOST:PORT`, or several separated by
    /// commas; `tls://` asks for TLS.
    pub fn new(url: impl Into<String>) -> Self {
        ClusterOptions {
            url: url.into(),
            auth: Auth::None,
            tls_ca: None,
            tls_client: None,
            require_tls: false,
            storage: Storage::File,
            replicas: 1,
        }
    }

    /// The URL given to [`new`](Self::new).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Authenticates with a user name and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticates with an nkey seed (`SU…`).
    pub fn nkey_seed(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::NkeySeed(seed.into());
        self
    }

    /// Authenticates with a `.creds` file (a user JWT and its nkey seed).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredsFile(path.into());
        self
    }

    /// Trusts the CA certificate(s) in this PEM file for the server's TLS
    /// certificate (and requires TLS).
    pub fn tls_root_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self.require_tls = true;
        self
    }

    /// Presents this client certificate and key (PEM) to the server.
    pub fn tls_client_certificate(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.tls_client = Some((cert.into(), key.into()));
        self.require_tls = true;
        self
    }

    /// Refuses to talk to the server without TLS.
    pub fn require_tls(mut self, yes: bool) -> Self {
        self.require_tls = yes;
        self
    }

    /// Where the streams keep messages if this client makes them (default:
    /// [`Storage::File`], which survives a server restart).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// How many servers of a NATS cluster keep each stream if this client
    /// makes them (default 1; 3 survives the loss of one server).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n.max(1);
        self
    }

    pub(super) fn storage_kind(&self) -> Storage {
        self.storage
    }

    pub(super) fn replica_count(&self) -> usize {
        self.replicas
    }

    /// Connects, retrying while the servers restart.
    pub(super) async fn connect(&self, name: &str) -> Result<async_nats::Client> {
        let mut opts = match &self.auth {
            Auth::None => async_nats::ConnectOptions::new(),
            Auth::UserPassword(u, p) => {
                async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
            }
            Auth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
            Auth::NkeySeed(s) => async_nats::ConnectOptions::with_nkey(s.clone()),
            Auth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| nats_error(&format!("{}", path.display()), e))?,
        };
        if let Some(ca) = &self.tls_ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        opts = opts
            .require_tls(self.require_tls)
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            // A restarting server comes back within a few seconds; keep the
            // retries fast.
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((50 * attempt as u64).min(1000))
            });
        let servers: Vec<&str> = self.url.split(',').map(str::trim).collect();
        let addrs: Vec<async_nats::ServerAddr> = servers
            .iter()
            .map(|s| s.parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| nats_error(&format!("bad cluster URL {}", self.url), e))?;
        opts.connect(addrs)
            .await
            .map_err(|e| nats_error(&format!("cannot connect to {}", self.url), e))
    }
}
