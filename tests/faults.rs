//! Worker processes that die: only their inputs fail, and the pool heals.

mod common;
use common::*;

use std::time::Duration;

use mpwasm::{Error, TaskErrorKind};

fn sigkill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_killed_worker_fails_only_its_inputs_and_is_replaced() {
    let pool = pool_builder("testkit")
        .processes(2)
        .chunksize(1)
        .build()
        .unwrap();
    let ids: Vec<Identity> = pool.map("whoami", [0i64, 1, 2, 3]).unwrap();
    // Inputs 0..8 sleep; kill one worker while it holds one.
    let results = std::thread::scope(|s| {
        let run = s.spawn(|| {
            pool.imap::<u64, u64, _>("sleep_ms", vec![300u64; 8])
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(150));
        sigkill(ids[0].pid);
        run.join().unwrap()
    });
    let lost: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Err(Error::Task(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(lost.len(), 1, "exactly the input the killed worker held");
    assert_eq!(lost[0].kind, TaskErrorKind::WorkerLost);
    assert!(lost[0].message.contains("signal 9"), "{}", lost[0].message);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 7);
    // The pool healed: both workers serve again.
    let again: Vec<u64> = pool.map("sleep_ms", [1u64, 1, 1, 1]).unwrap();
    assert_eq!(again, [1, 1, 1, 1]);
}
