//! Real NATS JetStream servers and real worker hosts for the cluster tests:
//! each server listens on a free loopback port with its own temporary store
//! directory, and is killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary (`scripts/setup.sh` installs it with apt).
pub fn nats_server_bin() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!("nats-server is not installed: run scripts/setup.sh (make test does)");
}

/// A free TCP port on loopback (bound, then let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits (at most 10 s) until something listens on `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One JetStream server on loopback.
pub struct NatsServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    _store: Option<tempfile::TempDir>,
}

/// A JetStream server's arguments: loopback only, on `port`, storing in `store`.
fn jetstream_args(port: u16, store: &Path) -> Vec<String> {
    vec![
        "-js".into(),
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-sd".into(),
        store.display().to_string(),
    ]
}

impl NatsServer {
    /// A single server with file storage in a fresh temporary directory.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// [`start`](Self::start) with more `nats-server` arguments.
    pub fn start_with(extra: &[&str]) -> NatsServer {
        let store = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut args = jetstream_args(port, store.path());
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut server = NatsServer {
            port,
            args,
            child: None,
            _store: Some(store),
        };
        server.spawn();
        server
    }

    /// Server `i` of a cluster whose route ports are `routes`; `store` is
    /// its store directory.
    pub fn start_clustered(i: usize, routes: &[u16], store: &Path) -> NatsServer {
        let port = free_port();
        let all: Vec<String> = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let mut args = jetstream_args(port, store);
        args.extend([
            "-n".into(),
            format!("mpw{i}"),
            "--cluster_name".into(),
            "mpwtest".into(),
            "--cluster".into(),
            format!("nats://127.0.0.1:{}", routes[i]),
            "--routes".into(),
            all.join(","),
        ]);
        let mut server = NatsServer {
            port,
            args,
            child: None,
            _store: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(nats_server_bin())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        wait_listening(self.port);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server (its store stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `mpwasm serve` worker host, SIGKILLed when dropped.
pub struct WorkerHost {
    pub child: Child,
}

impl WorkerHost {
    /// Starts a host with `slots` slots and extra arguments, its compile
    /// cache in `cache`.
    pub fn start(url: &str, slots: usize, cache: &Path, extra: &[&str]) -> WorkerHost {
        let child = Command::new(super::mpwasm_bin())
            .args(["serve", "--cluster", url, "--slots", &slots.to_string()])
            .args(extra)
            .env("MPWASM_CACHE_DIR", cache)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mpwasm serve");
        WorkerHost { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to the host process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child we started and have not reaped.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGKILLs the host and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerHost {
    fn drop(&mut self) {
        self.kill();
    }
}
