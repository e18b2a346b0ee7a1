//! Pools across machines: real JetStream servers on loopback ports, real
//! `mpwasm serve` worker hosts, a real caller (issue 14).

mod common;

use std::time::{Duration, Instant};

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
