//! Pools across machines: real JetStream servers on loopback ports, real
//! `mpwasm serve` worker hosts, a real caller (issue 14).

mod common;

use std::time::{Duration, Instant};

use mpwasm::AsyncResult;

use common::nats::{NatsServer, WorkerHost};

/// A caller's pool on the cluster at `url`.
fn cluster_pool(guest: &str, url: &str, chunks_in_flight: usize) -> mpwasm::PoolBuilder {
    common::pool_builder(guest)
        .cluster(url)
        .processes(chunks_in_flight)
}

/// `n` hosts of one slot each, with a private cache per test.
fn hosts(url: &str, n: usize, cache: &std::path::Path, extra: &[&str]) -> Vec<WorkerHost> {
    (0..n)
        .map(|_| WorkerHost::start(url, 1, cache, extra))
        .collect()
}

#[test]
fn smoke_map_on_three_hosts_matches_the_local_pool() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _hosts = hosts(&server.url(), 3, cache.path(), &[]);
    let pool = cluster_pool("pool_square", &server.url(), 3)
        .build()
        .expect("cluster pool");
    let inputs: Vec<i64> = (0..20_000).collect();
    let remote: Vec<i64> = pool.map("square", inputs.clone()).expect("cluster map");
    let local: Vec<i64> = common::pool("pool_square", 2)
        .map("square", inputs)
        .expect("local map");
    assert_eq!(remote, local);
}

#[test]
fn every_pool_method_gives_the_local_results_and_errors() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _hosts = hosts(&server.url(), 2, cache.path(), &[]);
    let remote = cluster_pool("testkit", &server.url(), 4)
        .chunksize(7)
        .build()
        .expect("cluster pool");
    let local = common::pool_builder("testkit")
        .processes(2)
        .chunksize(7)
        .build()
        .expect("local pool");
    let outcome = |p: &mpwasm::Pool| -> Vec<Result<i64, (u64, mpwasm::TaskErrorKind, String)>> {
        p.imap::<i64, i64, _>("unlucky", 0..40)
            .map(|r| {
                r.map_err(|e| match e {
                    mpwasm::Error::Task(t) => (t.index, t.kind, t.message),
                    other => panic!("not a task error: {other}"),
                })
            })
            .collect()
    };
    assert_eq!(outcome(&remote), outcome(&local));
    let mut unordered: Vec<i64> = remote
        .imap_unordered::<i64, i64, _>("unlucky", (0..40).filter(|x| *x != 13))
        .map(|r| r.expect("no failure"))
        .collect();
    unordered.sort();
    assert_eq!(
        unordered,
        (0..40)
            .filter(|x| *x != 13)
            .map(|x| x * 2)
            .collect::<Vec<_>>()
    );
    let sums: Vec<i64> = remote.starmap("add", [(1i64, 2i64), (3, 4)]).unwrap();
    assert_eq!(sums, [3, 7]);
    assert_eq!(remote.apply::<_, i64>("unlucky", 21i64).unwrap(), 42);
    let err = remote.apply::<_, i64>("unlucky", 13i64).unwrap_err();
    assert!(
        matches!(&err, mpwasm::Error::Task(t) if t.kind == mpwasm::TaskErrorKind::Panic && t.message.contains("unlucky number 13")),
        "{err}"
    );
    let map = remote.map_async::<_, i64>("unlucky", 100i64..200).unwrap();
    let apply = remote
        .apply_async::<_, f64>("checked_sqrt", -1.0f64)
        .unwrap();
    assert_eq!(
        map.get(None).unwrap(),
        (100..200).map(|x| x * 2).collect::<Vec<_>>()
    );
    let err = apply.get(None).unwrap_err();
    assert!(
        matches!(&err, mpwasm::Error::Task(t) if t.kind == mpwasm::TaskErrorKind::Failed),
        "{err}"
    );
    assert!(remote.check_task("nope").is_err());
}

/// How long the hosts of the delivery tests wait for a chunk's progress.
const ACK_WAIT: &str = "1s";

/// Inputs of `sleep_ms` that take about `total_ms` on one slot: each
/// input is its own result, and all are distinct.
fn sleeps(n: u64, total_ms: u64) -> Vec<u64> {
    (0..n).map(|i| total_ms / n + i % 3).collect()
}

/// Starts a map of `inputs` through `sleep_ms` on the cluster, two inputs
/// a chunk.
fn sleep_map(pool: &mpwasm::Pool, inputs: &[u64]) -> AsyncResult<Vec<u64>> {
    pool.map_async("sleep_ms", inputs.to_vec())
        .expect("map_async")
}

/// The outcome of a map, failing the test instead of hanging.
fn outcome(result: AsyncResult<Vec<u64>>) -> Vec<u64> {
    result
        .get(Some(Duration::from_secs(90)))
        .expect("the map completes")
}

#[test]
fn a_host_sigkilled_mid_map_loses_nothing_ten_times() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let extra = ["--ack-wait", ACK_WAIT];
    let mut hosts = hosts(&server.url(), 3, cache.path(), &extra);
    let pool = cluster_pool("testkit", &server.url(), 6)
        .chunksize(2)
        .build()
        .expect("cluster pool");
    let inputs = sleeps(30, 1500);
    for round in 0..10 {
        let result = sleep_map(&pool, &inputs);
        std::thread::sleep(Duration::from_millis(250));
        let victim = round % hosts.len();
        hosts[victim].kill();
        let started = Instant::now();
        let answers = outcome(result);
        assert_eq!(answers, inputs, "round {round}");
        eprintln!("round {round}: done {:?} after the kill", started.elapsed());
        hosts[victim] = WorkerHost::start(&server.url(), 1, cache.path(), &extra);
    }
}

#[test]
fn a_host_stopped_past_ack_wait_has_its_late_result_discarded() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let extra = ["--ack-wait", ACK_WAIT];
    let hosts = hosts(&server.url(), 2, cache.path(), &extra);
    let pool = cluster_pool("testkit", &server.url(), 4)
        .chunksize(2)
        .build()
        .expect("cluster pool");
    // Ten chunks of 400 ms: 2 s for two hosts, 4 s for one.
    let inputs = sleeps(20, 4000);
    for _ in 0..2 {
        let result = sleep_map(&pool, &inputs);
        std::thread::sleep(Duration::from_millis(250));
        hosts[0].signal(libc::SIGSTOP);
        // Past AckWait the other host takes the stopped one's chunk; the
        // stopped one wakes while the map still runs, finishes that chunk
        // and publishes its result a second time, which must be dropped.
        std::thread::sleep(Duration::from_millis(2200));
        hosts[0].signal(libc::SIGCONT);
        assert_eq!(outcome(result), inputs);
    }
}

#[test]
fn the_nats_server_restarted_mid_map_does_not_lose_the_job() {
    let mut server = NatsServer::start();
    let cache = common::cache_dir();
    let extra = ["--ack-wait", ACK_WAIT];
    let _hosts = hosts(&server.url(), 2, cache.path(), &extra);
    let pool = cluster_pool("testkit", &server.url(), 4)
        .chunksize(2)
        .build()
        .expect("cluster pool");
    let inputs = sleeps(30, 2000);
    let result = sleep_map(&pool, &inputs);
    std::thread::sleep(Duration::from_millis(400));
    server.restart();
    assert_eq!(outcome(result), inputs);
}

/// The worker processes `pid` has started that are still alive.
fn children(pid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r)
                .split_whitespace()
                .collect();
            fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(pid)
                && fields.first() != Some(&"Z")
        })
        .count()
}

#[test]
fn a_caller_sigkilled_leaves_nothing_running_on_the_hosts() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let hosts = hosts(&server.url(), 2, cache.path(), &["--ack-wait", ACK_WAIT]);
    // 80 inputs of 500 ms: 20 s of work for the two hosts.
    let input: String = (0..80).map(|i| format!("{}\n", 500 + i)).collect();
    let mut caller = std::process::Command::new(common::mpwasm_bin())
        .args([
            "pool",
            "--cluster",
            &server.url(),
            "--task",
            "sleep_ms",
            "--chunksize",
            "1",
            "-j",
            "4",
        ])
        .arg(common::guest("testkit"))
        .env("MPWASM_CACHE_DIR", common::shared_cache())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the caller");
    {
        use std::io::Write;
        let mut stdin = caller.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write inputs");
    }
    // Wait (at most 20 s) until both hosts run its chunks.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hosts.iter().any(|h| children(h.pid()) == 0) {
        assert!(
            Instant::now() < deadline,
            "the hosts never ran the caller's chunks"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    caller.kill().expect("kill the caller");
    caller.wait().expect("reap the caller");
    // Within seconds (RUN_SILENCE, 3 s, and the hosts' sweep), no host has
    // a worker running for it; the caller's 20 s of work are not done.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hosts.iter().any(|h| children(h.pid()) > 0) {
        assert!(
            Instant::now() < deadline,
            "hosts still run a dead caller's chunks 10 s after it died"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Against `server` (which asks for credentials or client certificates): a
/// host without `access` cannot join (it exits with status 2), a caller
/// without it cannot build a pool, and with `access` (the same `mpwasm`
/// arguments for both) a host serves a caller's CLI pool.
fn only_those_with_access_get_in(server: &NatsServer, access: &[&str]) {
    let cache = common::cache_dir();
    let mut stranger = WorkerHost::start(&server.url(), 1, cache.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = stranger.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "a host without access is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
    let err = cluster_pool("pool_square", &server.url(), 2)
        .build()
        .err()
        .expect("refused");
    assert!(matches!(err, mpwasm::Error::Cluster(_)), "{err}");
    let _host = WorkerHost::start(&server.url(), 1, cache.path(), access);
    let guest = common::guest("pool_square");
    let url = server.url();
    let mut args = vec!["pool", "--cluster", url.as_str()];
    args.extend_from_slice(access);
    args.push(guest.to_str().unwrap());
    let out = common::run_mpwasm(&args, "1\n2\n3\n");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "1\n4\n9\n");
}

#[test]
fn a_token_server_refuses_hosts_and_callers_without_the_token() {
    let server = NatsServer::start_with(&["--auth", "s3cret-token"]);
    only_those_with_access_get_in(&server, &["--nats-token", "s3cret-token"]);
}

#[test]
fn a_password_server_refuses_hosts_and_callers_without_the_password() {
    let server = NatsServer::start_with(&["--user", "mpw", "--pass", "s3cret-pass"]);
    only_those_with_access_get_in(
        &server,
        &["--nats-user", "mpw", "--nats-password", "s3cret-pass"],
    );
}

/// A test user's nkey (`tests/fixtures/nkey/user.seed` is its seed).
const NKEY_USER: &str = "UADSTGLRP2GTGYOZGTKZ6CPV5EW2C3BJF7L4XDPUTQ5YRUG5IS6XYNN7";

#[test]
fn an_nkey_server_refuses_hosts_and_callers_without_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nkey.conf");
    std::fs::write(
        &config,
        format!("authorization {{ users = [ {{ nkey: \"{NKEY_USER}\" }} ] }}\n"),
    )
    .unwrap();
    let server = NatsServer::start_with(&["-c", config.to_str().unwrap()]);
    let seed = fixture("nkey/user.seed");
    only_those_with_access_get_in(&server, &["--nats-nkey", seed.to_str().unwrap()]);
}

#[test]
fn a_mutual_tls_server_refuses_hosts_and_callers_without_a_client_certificate() {
    let (ca, cert, key) = (
        fixture("tls/ca.pem"),
        fixture("tls/client.pem"),
        fixture("tls/client.key"),
    );
    let server = NatsServer::start_with(&[
        "--tlsverify",
        "--tlscert",
        fixture("tls/server.pem").to_str().unwrap(),
        "--tlskey",
        fixture("tls/server.key").to_str().unwrap(),
        "--tlscacert",
        ca.to_str().unwrap(),
    ]);
    only_those_with_access_get_in(
        &server,
        &[
            "--tls-ca",
            ca.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
}

/// A file in `tests/fixtures/` (test-only keys and certificates).
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

#[test]
fn a_chunk_no_host_finishes_fails_with_worker_lost_after_max_deliver() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let extra = ["--ack-wait", ACK_WAIT, "--max-deliver", "2"];
    let pool = cluster_pool("testkit", &server.url(), 1)
        .build()
        .expect("cluster pool");
    // A minute-long task: its host keeps it alive with +WPI, so only the
    // host's death hands it on. Each of its two deliveries ends with the
    // host killed (as a chunk that brings its host down would).
    let result = pool.apply_async::<_, u64>("sleep_ms", 60_000u64).unwrap();
    for delivery in 0..2 {
        let mut host = WorkerHost::start(&server.url(), 1, cache.path(), &extra);
        let deadline = Instant::now() + Duration::from_secs(30);
        while children(host.pid()) == 0 {
            assert!(Instant::now() < deadline, "delivery {delivery} never ran");
            std::thread::sleep(Duration::from_millis(50));
        }
        host.kill();
    }
    let _spare = WorkerHost::start(&server.url(), 1, cache.path(), &extra);
    let err = result
        .get(Some(Duration::from_secs(30)))
        .expect_err("the chunk fails");
    assert!(
        matches!(&err, mpwasm::Error::Task(t) if t.kind == mpwasm::TaskErrorKind::WorkerLost && t.message.contains("2 deliveries")),
        "{err}"
    );
}

#[test]
fn a_three_server_nats_cluster_survives_one_server_sigkilled_mid_map() {
    let stores: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let routes: Vec<u16> = (0..3).map(|_| common::nats::free_port()).collect();
    let mut servers: Vec<NatsServer> = (0..3)
        .map(|i| NatsServer::start_clustered(i, &routes, stores[i].path()))
        .collect();
    let url = servers
        .iter()
        .map(|s| s.url())
        .collect::<Vec<_>>()
        .join(",");
    // JetStream elects its meta leader after the routes are up: retry
    // (at most 60 s) until the replicated streams can be made.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pool = loop {
        let options = mpwasm::ClusterOptions::new(&url).replicas(3);
        match common::pool_builder("testkit")
            .cluster_options(options)
            .processes(4)
            .chunksize(2)
            .build()
        {
            Ok(pool) => break pool,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the NATS cluster never took streams: {e}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let cache = common::cache_dir();
    let extra = ["--ack-wait", ACK_WAIT, "--cluster-replicas", "3"];
    let _hosts = hosts(&url, 2, cache.path(), &extra);
    let inputs = sleeps(30, 3000);
    let result = sleep_map(&pool, &inputs);
    std::thread::sleep(Duration::from_millis(500));
    servers[0].kill();
    assert_eq!(outcome(result), inputs);
}

#[test]
fn the_hosts_sandbox_is_a_ceiling_the_caller_cannot_raise() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _host = WorkerHost::start(&server.url(), 1, cache.path(), &["--memory", "32MiB"]);
    // The caller asks for 1 GiB; the host's 32 MiB holds.
    let pool = cluster_pool("testkit", &server.url(), 1)
        .memory_limit(1 << 30)
        .build()
        .expect("cluster pool");
    assert_eq!(pool.apply::<usize, usize>("alloc_mib", 8).unwrap(), 8 << 8);
    let err = pool.apply::<usize, usize>("alloc_mib", 64).unwrap_err();
    assert!(
        matches!(&err, mpwasm::Error::Task(t) if t.kind == mpwasm::TaskErrorKind::ResourceLimit),
        "{err}"
    );
}

#[test]
fn a_guest_whose_bytes_do_not_match_its_hash_is_never_run() {
    use async_nats::jetstream;
    let server = NatsServer::start();
    let cache = common::cache_dir();
    // A hostile peer stores other bytes under the hash of pool_square.
    let square = std::fs::read(common::guest("pool_square")).unwrap();
    let other = std::fs::read(common::guest("testkit")).unwrap();
    let hash = blake3::hash(&square).to_hex().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(server.url()).await.expect("connect");
        let js = jetstream::new(client);
        let store = js
            .create_object_store(jetstream::object_store::Config {
                bucket: "MPWASM_GUESTS".into(),
                ..Default::default()
            })
            .await
            .expect("object store");
        store
            .put(hash.as_str(), &mut other.as_slice())
            .await
            .expect("put");
    });
    let _host = WorkerHost::start(
        &server.url(),
        1,
        cache.path(),
        &["--ack-wait", ACK_WAIT, "--max-deliver", "2"],
    );
    let pool = cluster_pool("pool_square", &server.url(), 1)
        .build()
        .expect("cluster pool");
    // The host refuses the swapped bytes on every delivery; the chunk
    // fails after MaxDeliver instead of running testkit's code.
    let err = pool
        .apply_async::<_, i64>("square", 7i64)
        .unwrap()
        .get(Some(Duration::from_secs(60)))
        .unwrap_err();
    assert!(
        matches!(&err, mpwasm::Error::Task(t) if t.kind == mpwasm::TaskErrorKind::WorkerLost),
        "{err}"
    );
    let fetched = cache
        .path()
        .join("cluster-guests")
        .join(format!("{hash}.wasm"));
    assert!(!fetched.exists(), "the swapped bytes were kept");
}

#[test]
fn a_chunk_over_the_servers_max_payload_fails_its_inputs_not_the_pool() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _host = WorkerHost::start(&server.url(), 1, cache.path(), &[]);
    let pool = cluster_pool("testkit", &server.url(), 2)
        .chunksize(1)
        .build()
        .expect("cluster pool");
    // nats-server's default max_payload is 1 MiB.
    let big = "x".repeat(2 << 20);
    let out: Vec<Result<String, mpwasm::Error>> = pool
        .imap::<String, String, _>("echo", ["small".to_string(), big, "after".to_string()])
        .collect();
    assert_eq!(out[0].as_deref().unwrap(), "small");
    assert!(
        matches!(&out[1], Err(mpwasm::Error::Task(t)) if t.kind == mpwasm::TaskErrorKind::BadInput && t.message.contains("max_payload")),
        "{:?}",
        out[1].as_ref().err()
    );
    assert_eq!(out[2].as_deref().unwrap(), "after");
}

/// `mpwasm ARGS…` with `stdin` and the shared cache: its exit status,
/// stdout and stderr; killed (and the test failed) after 120 s.
fn mpwasm_bounded(args: &[&str], stdin: &str) -> (std::process::ExitStatus, String, String) {
    use std::io::{Read, Write};
    let mut child = std::process::Command::new(common::mpwasm_bin())
        .args(args)
        .env("MPWASM_CACHE_DIR", common::shared_cache())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start mpwasm");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
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
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpwasm {args:?} hung: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    (status, out.join().unwrap(), err.join().unwrap())
}

/// `mpwasm run OPTIONS… poolkit.wasm cluster_map`, bounded.
fn run_cluster_map(options: &[&str]) -> (std::process::ExitStatus, String, String) {
    let guest = common::guest("poolkit");
    let mut args = vec!["run"];
    args.extend_from_slice(options);
    args.extend([guest.to_str().unwrap(), "cluster_map"]);
    mpwasm_bounded(&args, "")
}

#[test]
fn run_with_cluster_sends_the_guests_pools_to_the_hosts() {
    let server = NatsServer::start();
    let cache = common::cache_dir();
    let _a = WorkerHost::start(
        &server.url(),
        1,
        cache.path(),
        &["--env", "MPWASM_TEST_HOST=a"],
    );
    let _b = WorkerHost::start(
        &server.url(),
        1,
        cache.path(),
        &["--env", "MPWASM_TEST_HOST=b"],
    );
    let (status, local, stderr) = run_cluster_map(&[]);
    assert!(status.success(), "local run: {stderr}");
    let (status, remote, stderr) = run_cluster_map(&["--cluster", &server.url()]);
    assert!(status.success(), "cluster run: {stderr}");
    // Main runs here; the pool's chunks ran on the hosts, which alone set
    // MPWASM_TEST_HOST; everything else is the local run's output.
    let (local_rest, local_hosts) = local.rsplit_once("hosts ").expect("local hosts line");
    let (remote_rest, remote_hosts) = remote.rsplit_once("hosts ").expect("remote hosts line");
    assert_eq!(local_hosts.trim(), "local");
    let remote_hosts: Vec<&str> = remote_hosts.split_whitespace().collect();
    assert!(
        !remote_hosts.is_empty() && remote_hosts.iter().all(|h| ["a", "b"].contains(h)),
        "the tasks ran on {remote_hosts:?}"
    );
    assert_eq!(remote_rest, local_rest);
    let n: u64 = 20_000;
    assert!(
        local_rest.contains(&format!("sum {}\n", (0..n).map(|x| x * x).sum::<u64>())),
        "{local_rest}"
    );
    assert!(
        local_rest.contains("even_only 0 failed 2 failed 4 failed\n"),
        "{local_rest}"
    );
}

#[test]
fn a_python_programs_pool_runs_on_the_hosts() {
    let tasks =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/tasks.py");
    let tasks = tasks.to_str().unwrap();
    // The hosts build the Python component like any `mpwasm pool prog.py`:
    // build it once into the cache they share with this test.
    let (status, _, stderr) = mpwasm_bounded(&["compile", tasks], "");
    assert!(status.success(), "mpwasm compile {tasks}: {stderr}");
    let cache = common::shared_cache();
    // A program a host kept from an earlier run would hide how it keeps a
    // fetched one: only this test leaves `.py` guests there.
    if let Ok(kept) = std::fs::read_dir(cache.join("cluster-guests")) {
        for e in kept.flatten() {
            if e.path().extension().is_some_and(|x| x == "py") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let server = NatsServer::start();
    let _a = WorkerHost::start(&server.url(), 1, &cache, &["--env", "MPWASM_TEST_HOST=a"]);
    let _b = WorkerHost::start(&server.url(), 1, &cache, &["--env", "MPWASM_TEST_HOST=b"]);
    let url = server.url();
    let pool = |task: &str, input: &str, cluster: bool| {
        let mut args = vec!["pool", tasks, "--task", task, "--chunksize", "2", "-j", "2"];
        if cluster {
            args.extend(["--cluster", url.as_str()]);
        }
        let (status, out, err) = mpwasm_bounded(&args, input);
        (status.code(), out, err)
    };
    let input: String = (0..30).map(|i| format!("{i}\n")).collect();
    let local = pool("fails_on_three", &input, false);
    let remote = pool("fails_on_three", &input, true);
    assert_eq!(local.0, Some(1), "{}", local.2);
    assert_eq!((remote.0, &remote.1), (local.0, &local.1), "{}", remote.2);
    assert!(remote.1.contains("ValueError: bad input 3"), "{}", remote.1);
    // The tasks ran on the hosts, which alone set MPWASM_TEST_HOST.
    let env: String = (0..20)
        .map(|_| "\"MPWASM_TEST_HOST\"\n".to_string())
        .collect();
    let (code, out, err) = pool("env", &env, true);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.lines().all(|l| l == "\"a\"" || l == "\"b\"") && out.lines().count() == 20,
        "{out}"
    );
}
