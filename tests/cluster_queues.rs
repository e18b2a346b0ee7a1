//! Queues across machines (issue 14, item 4): a `mpwasm run --cluster`
//! guest shares a `Queue` or `JoinableQueue` with its pools' tasks, which
//! run on real `mpwasm serve` worker hosts; the queue lives in a real
//! JetStream stream on a loopback server.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nats::{NatsServer, WorkerHost};

/// `n` hosts of `slots` slots each, with a private cache per test.
fn hosts(url: &str, n: usize, slots: usize, cache: &std::path::Path) -> Vec<WorkerHost> {
    (0..n)
        .map(|_| WorkerHost::start(url, slots, cache, &[]))
        .collect()
}

/// `mpwasm run --cluster URL poolkit.wasm SCENARIO ARGS…`, started with
/// its stdout piped.
fn start_run(url: &str, scenario: &[&str]) -> Child {
    let guest = common::guest("poolkit");
    Command::new(common::mpwasm_bin())
        .args(["run", "--cluster", url, guest.to_str().unwrap()])
        .args(scenario)
        .env("MPWASM_CACHE_DIR", common::shared_cache())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpwasm run")
}

/// Waits (at most `limit`) for `child` to exit: its status, stdout, stderr.
/// Kills it and fails the test if it hangs.
fn finish(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String, String) {
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpwasm run hung: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

#[test]
fn smoke_producers_on_hosts_put_and_main_gets_every_item_once_in_order() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _hosts = hosts(&server.url(), 2, 2, cache.path());
    let run = start_run(&server.url(), &["cluster_queue", "4", "500", "0"]);
    let (status, out, err) = finish(run, Duration::from_secs(120));
    assert!(status.success(), "{out}\n{err}");
    assert_eq!(
        out.trim(),
        "sent 2000 got 2000 unique 2000 extra false",
        "{err}"
    );
}
