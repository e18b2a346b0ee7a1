//! The host crate's `Pool`, driving real worker processes.

mod common;
use common::*;

use std::collections::HashSet;
use std::time::Duration;

use mpwasm::{Error, TaskErrorKind};

#[test]
fn map_returns_results_in_order() {
    let pool = pool("pool_square", 2);
    let squares: Vec<i64> = pool.map("square", 1..=1000i64).unwrap();
    assert_eq!(squares, (1..=1000i64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn map_puts_chunks_that_finish_early_in_their_place() {
    let pool = pool_builder("testkit")
        .processes(2)
        .chunksize(2)
        .build()
        .unwrap();
    // The first chunk sleeps longest: every later chunk arrives before it.
    let naps: Vec<u64> = (0..12u64)
        .map(|i| if i < 2 { 300 } else { i % 3 })
        .collect();
    let got: Vec<u64> = pool.map("sleep_ms", naps.clone()).unwrap();
    assert_eq!(got, naps);
}

#[test]
fn map_takes_inputs_of_unknown_length() {
    let pool = pool("pool_square", 2);
    let odd = (1..=999i64).filter(|x| x % 2 == 1);
    assert_eq!(odd.size_hint().1, Some(999), "an upper bound only");
    let squares: Vec<i64> = pool.map("square", odd.clone()).unwrap();
    assert_eq!(squares, odd.map(|x| x * x).collect::<Vec<_>>());
    let none: Vec<i64> = pool.map("square", std::iter::empty::<i64>()).unwrap();
    assert!(none.is_empty());
}

#[test]
fn starmap_and_apply() {
    let pool = pool("testkit", 2);
    let sums: Vec<i64> = pool.starmap("add", [(1i64, 2i64), (3, 4), (5, 6)]).unwrap();
    assert_eq!(sums, [3, 7, 11]);
    let four: i64 = pool.apply("add", (2i64, 2i64)).unwrap();
    assert_eq!(four, 4);
}

#[test]
fn workers_are_distinct_os_processes_and_know_who_they_are() {
    let pool = pool_builder("testkit")
        .processes(3)
        .chunksize(1)
        .build()
        .unwrap();
    // Each input sleeps, so every worker gets some.
    let ids: Vec<Identity> = pool.map("whoami_slow", 0..9i64).unwrap();
    let me = std::process::id();
    let pids: HashSet<u32> = ids.iter().map(|i| i.pid).collect();
    assert_eq!(pids.len(), 3, "three worker processes: {ids:?}");
    assert!(!pids.contains(&me), "workers are not the parent");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(id.parent_pid, me);
        assert_eq!(id.index, i as u64, "task identity");
        assert_eq!(id.task, "whoami_slow");
        assert_eq!(id.name, format!("PoolWorker-{}", id.worker + 1));
        assert!(
            std::path::Path::new(&format!("/proc/{}", id.pid)).exists(),
            "worker {} alive",
            id.pid
        );
    }
}

#[test]
fn a_panic_fails_only_its_input_and_carries_message_and_backtrace() {
    let pool = pool_builder("testkit")
        .processes(2)
        .chunksize(10)
        .build()
        .unwrap();
    let results: Vec<mpwasm::Result<i64>> = pool.imap("unlucky", 1..=30i64).collect();
    assert_eq!(results.len(), 30);
    for (i, r) in results.iter().enumerate() {
        let x = i as i64 + 1;
        match r {
            Ok(v) => assert_eq!(*v, x * 2),
            Err(Error::Task(e)) => {
                assert_eq!(x, 13);
                assert_eq!(e.index, 12);
                assert_eq!(e.kind, TaskErrorKind::Panic);
                assert!(e.message.contains("unlucky number 13"), "{}", e.message);
                let bt = e.backtrace.as_deref().expect("backtrace");
                assert!(
                    bt.contains("unlucky"),
                    "function names in the backtrace: {bt}"
                );
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    // map reports the first failure, as Python re-raises it.
    let err = pool.map::<i64, i64>("unlucky", [1, 13, 2]).unwrap_err();
    assert!(matches!(err, Error::Task(ref e) if e.index == 1), "{err}");
    // And the pool carries on.
    assert_eq!(pool.map::<i64, i64>("unlucky", [1, 2]).unwrap(), [2, 4]);
}

#[test]
fn imap_is_lazy_over_an_endless_input() {
    let pool = pool("pool_square", 2);
    let first: Vec<i64> = pool
        .imap::<i64, i64, _>("square", 1i64..)
        .take(20_000)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first.len(), 20_000);
    assert_eq!(first[19_999], 20_000 * 20_000);
}

#[test]
fn imap_unordered_returns_the_same_multiset() {
    let pool = pool_builder("pool_square")
        .processes(3)
        .chunksize(3)
        .build()
        .unwrap();
    let mut got: Vec<i64> = pool
        .imap_unordered::<i64, i64, _>("square", 0..3000i64)
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..3000i64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn map_async_get_with_timeout() {
    let pool = pool("testkit", 2);
    let slow = pool.map_async::<u64, u64>("sleep_ms", [400u64]).unwrap();
    assert!(!slow.ready());
    assert_eq!(slow.successful(), None);
    assert!(matches!(
        slow.get(Some(Duration::from_millis(50))),
        Err(Error::Timeout)
    ));
    assert_eq!(slow.get(Some(Duration::from_secs(10))).unwrap(), [400]);
    assert_eq!(slow.successful(), Some(true));
    assert!(matches!(slow.get(None), Err(Error::Taken)));

    let applied = pool
        .apply_async::<(i64, i64), i64>("add", (20, 22))
        .unwrap();
    assert!(applied.wait(Some(Duration::from_secs(10))));
    assert_eq!(applied.get(None).unwrap(), 42);
}

#[test]
fn close_lets_queued_work_finish_then_join() {
    let pool = pool("testkit", 2);
    let pending = pool
        .map_async::<u64, u64>("sleep_ms", [50u64, 60, 70])
        .unwrap();
    pool.close();
    assert!(matches!(
        pool.map::<(i64, i64), i64>("add", [(1i64, 1i64)])
            .unwrap_err(),
        Error::Closed
    ));
    pool.join().unwrap();
    assert_eq!(
        pending.get(Some(Duration::from_secs(10))).unwrap(),
        [50, 60, 70]
    );
}

#[test]
fn join_before_close_is_an_error() {
    let pool = pool("pool_square", 1);
    assert!(matches!(pool.join(), Err(Error::Config(_))));
}

#[test]
fn terminate_fails_pending_work_and_stops_the_workers() {
    let pool = pool("testkit", 2);
    let ids: Vec<Identity> = pool.map("whoami", [0i64, 1]).unwrap();
    let pending = pool
        .map_async::<u64, u64>("sleep_ms", [5_000u64, 5_000])
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    pool.terminate();
    assert!(matches!(
        pending.get(Some(Duration::from_secs(2))),
        Err(Error::Terminated)
    ));
    pool.join().unwrap();
    for id in ids {
        assert!(
            !std::path::Path::new(&format!("/proc/{}", id.pid)).exists(),
            "worker {} still there",
            id.pid
        );
    }
}

#[test]
fn dropping_the_pool_reaps_its_workers() {
    let pids: Vec<u32> = {
        let pool = pool("testkit", 2);
        let ids: Vec<Identity> = pool.map("whoami", [0i64, 1, 2, 3]).unwrap();
        ids.into_iter().map(|i| i.pid).collect()
    };
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} left behind"
        );
    }
}

#[test]
fn unknown_task_is_reported() {
    let pool = pool("pool_square", 1);
    let err = pool.check_task("cube").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTask { name, available } if name == "cube" && available == &["square"])
    );
    let err = pool.map::<i64, i64>("cube", [1]).unwrap_err();
    assert!(
        matches!(&err, Error::Task(e) if e.kind == TaskErrorKind::UnknownTask),
        "{err}"
    );
}

#[test]
fn bad_options_are_refused() {
    assert!(matches!(
        pool_builder("pool_square").processes(0).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        pool_builder("pool_square").chunksize(0).build(),
        Err(Error::Config(_))
    ));
}

/// CPython finishes every task submitted before `close()` (issue 9, 2):
/// six 300 ms `apply_async` on a pool of three, then `close`, `join`,
/// `get`.
#[test]
fn close_then_join_finishes_submitted_work() {
    for _ in 0..3 {
        let pool = pool("testkit", 3);
        let pending: Vec<_> = (0..6)
            .map(|_| pool.apply_async::<u64, u64>("sleep_ms", 300).unwrap())
            .collect();
        pool.close();
        pool.join().unwrap();
        for p in pending {
            assert_eq!(p.get(Some(Duration::ZERO)).unwrap(), 300);
        }
    }
}

/// An `imap` started before `close()` still yields every input.
#[test]
fn imap_started_before_close_runs_to_its_end() {
    let pool = pool_builder("testkit")
        .processes(2)
        .chunksize(1)
        .build()
        .unwrap();
    let results = pool.imap::<u64, u64, _>("sleep_ms", std::iter::repeat_n(2u64, 200));
    std::thread::sleep(Duration::from_millis(100));
    pool.close();
    assert_eq!(results.filter(|r| r.is_ok()).count(), 200);
    pool.join().unwrap();
    // After close, new work is refused at the call.
    assert!(matches!(
        pool.map_async::<u64, u64>("sleep_ms", [1]),
        Err(Error::Closed)
    ));
}

/// A pool dropped while an `imap` nobody iterates holds work for it does
/// not wait for that iterator.
#[test]
fn dropping_a_pool_does_not_wait_for_an_unread_imap() {
    let pool = pool("testkit", 1);
    let results = pool.imap::<u64, u64, _>("sleep_ms", std::iter::repeat(1u64));
    let started = std::time::Instant::now();
    drop(pool);
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(results);
}

/// `map` reports the first failure to arrive, not the first in input
/// order after waiting for everything before it (CPython's behaviour).
#[test]
fn map_fails_with_the_first_failure_to_arrive() {
    let pool = pool_builder("testkit")
        .processes(2)
        .chunksize(1)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    // Input 0 sleeps 20 s; input 1 panics (unlucky's 13) at once.
    let err = pool
        .map::<i64, i64>("slow_or_unlucky", [0i64, 13])
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited for input 0"
    );
    match err {
        Error::Task(t) => assert_eq!(t.index, 1),
        other => panic!("{other}"),
    }
}
