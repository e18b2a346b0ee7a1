//! Queues across machines (issue 14, item 4): a `mpwasm run --cluster`
//! guest shares a `Queue` or `JoinableQueue` with its pools' tasks, which
//! run on real `mpwasm serve` worker hosts; the queue lives in a real
//! JetStream stream on a loopback server.

mod common;

use std::io::{BufRead, BufReader, Read};
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
    let mut out: Box<dyn Read + Send> = match child.stdout.take() {
        Some(out) => Box::new(out),
        None => Box::new(std::io::empty()),
    };
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

#[test]
fn maxsize_bounds_a_queue_shared_across_hosts() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _hosts = hosts(&server.url(), 2, 2, cache.path());
    let run = start_run(&server.url(), &["cluster_queue", "4", "100", "50"]);
    let (status, out, err) = finish(run, Duration::from_secs(120));
    assert!(status.success(), "{out}\n{err}");
    assert_eq!(
        out, "full at 50 of 50\nsent 400 got 400 unique 400 extra false\n",
        "{err}"
    );
}

/// The test: producers and consumers over three hosts, a bounded
/// `JoinableQueue`, every item taken exactly once, each consumer seeing
/// each producer's items in order. Scaled from the 20,000 items per
/// producer: see `ITEMS`.
#[test]
fn four_producers_and_four_consumers_over_three_hosts_take_every_item_once() {
    const ITEMS: u64 = 20_000;
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _hosts = hosts(&server.url(), 3, 3, cache.path());
    let items = ITEMS.to_string();
    let scenario = ["cluster_queue_mpmc", "4", "4", &items, "1000"];
    let started = Instant::now();
    let run = start_run(&server.url(), &scenario);
    let (status, out, err) = finish(run, Duration::from_secs(300));
    eprintln!("4 x 4 x {ITEMS} items in {:?}", started.elapsed());
    assert!(status.success(), "{out}\n{err}");
    let total = 4 * ITEMS;
    assert!(
        out.starts_with(&format!("sent {total} unique {total} consumers_busy ")),
        "{out}\n{err}"
    );
}

/// `task_done` is the ack: a host killed while its task holds an item it
/// took and did not mark done loses nothing; the item is handed out again.
#[test]
fn an_item_taken_by_a_host_that_dies_before_task_done_is_handed_out_again() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let mut host = WorkerHost::start(&server.url(), 1, cache.path(), &[]);
    let mut run = start_run(&server.url(), &["cluster_queue_redeliver", "5"]);
    let mut lines = BufReader::new(run.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("stdout");
    assert_eq!(first, "taken");
    host.kill();
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let (status, _, err) = finish(run, Duration::from_secs(120));
    assert!(status.success(), "{rest:?}\n{err}");
    assert_eq!(rest, ["got [0, 1, 2, 3, 4]"], "{err}");
}
