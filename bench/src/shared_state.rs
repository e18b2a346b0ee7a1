//! W5 (locked counter) of `shared/BENCH.md`: the guest
//! `examples/bench_state` under `mpwasm run`, `cpython_bench.py`, and the
//! native reference (two threads on a futex mutex and on an atomic) in the
//! same run.
//!
//! Two processes each add one to a shared `Value<i32>` 100 000 times: under
//! its lock (final exactly 200 000), with an atomic add (mpwasm only; also
//! exact), and unlocked (`v.value += 1`, which races: its lost updates are
//! reported beside CPython's).
//!
//! W5 sync rounds (`w5sync`): a `Barrier(2)` passed 20 000 times by two
//! processes, and a turn handed back and forth 20 000 times under a
//! `Condition` (`notify` + `wait_for`), against CPython's.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::{cpython, median};

/// Processes (threads, natively) and increments each.
const WORKERS: u32 = 2;
const INCREMENTS: u32 = 100_000;
const TOTAL: i64 = (WORKERS * INCREMENTS) as i64;
/// Increments per thread of the native references: ten times as many, so
/// that the two threads overlap (100k uncontended increments take less time
/// than a scheduler slice on a busy machine, and then measure no
/// contention at all).
const NATIVE_INCREMENTS: u32 = 10 * INCREMENTS;
const NATIVE_TOTAL: i64 = (WORKERS * NATIVE_INCREMENTS) as i64;
const REPS: usize = 5;

/// One run's rate and final value.
struct Run {
    ops_per_s: f64,
    last: i64,
}

impl Run {
    fn from_json(json: &serde_json::Value) -> Run {
        let field = |k: &str| {
            json[k]
                .as_f64()
                .unwrap_or_else(|| panic!("no {k} in {json}"))
        };
        Run {
            ops_per_s: field("ops_per_s"),
            last: field("final") as i64,
        }
    }
}

/// `mpwasm run bench_state.wasm <how>`: its one line of JSON.
fn run(mpwasm: &Path, wasm: &Path, how: &str) -> serde_json::Value {
    let out = Command::new(mpwasm)
        .arg("run")
        .arg(wasm)
        .arg(how)
        .output()
        .expect("mpwasm run");
    assert!(
        out.status.success(),
        "mpwasm run bench_state.wasm {how}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// `REPS` runs of one way to increment.
fn ours(mpwasm: &Path, wasm: &Path, how: &str) -> Vec<Run> {
    (0..REPS)
        .map(|_| Run::from_json(&run(mpwasm, wasm, how)))
        .collect()
}

/// Nanoseconds per uncontended guest→host call (median of `REPS`).
fn call_ns(mpwasm: &Path, wasm: &Path) -> f64 {
    let ns = |json: serde_json::Value| json["ns_per_call"].as_f64().expect("ns_per_call");
    median((0..REPS).map(|_| ns(run(mpwasm, wasm, "calls"))).collect())
}

fn theirs(py: &Path, which: &str) -> Vec<Run> {
    (0..3)
        .map(|_| Run::from_json(&cpython(py, which)))
        .collect()
}

fn rate(runs: &[Run]) -> f64 {
    median(runs.iter().map(|r| r.ops_per_s).collect())
}

/// Share of the increments lost, in per cent (median over runs).
fn lost(runs: &[Run]) -> f64 {
    median(
        runs.iter()
            .map(|r| 100.0 * (TOTAL - r.last) as f64 / TOTAL as f64)
            .collect(),
    )
}

/// Ops/s of two threads doing `NATIVE_INCREMENTS` each of `op`. They spin until
/// told to go, so that both are running when the clock starts (a barrier's
/// wake-up takes longer than a whole uncontended run).
fn native(op: impl Fn() + Sync) -> f64 {
    let go = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(|| {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    (0..NATIVE_INCREMENTS).for_each(|_| op());
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(10));
        let t = Instant::now();
        go.store(true, Ordering::Release);
        workers.into_iter().for_each(|w| w.join().unwrap());
        NATIVE_TOTAL as f64 / t.elapsed().as_secs_f64()
    })
}

fn native_locked() -> f64 {
    let counter = Mutex::new(0_i32);
    let rate = native(|| *counter.lock().unwrap() += 1);
    assert_eq!(i64::from(*counter.lock().unwrap()), NATIVE_TOTAL);
    rate
}

fn native_atomic() -> f64 {
    let counter = AtomicI32::new(0);
    let rate = native(|| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(i64::from(counter.load(Ordering::SeqCst)), NATIVE_TOTAL);
    rate
}

/// W5: locked, atomic and racy counters, two processes × 100k increments.
pub fn w5(mpwasm: &Path, wasm: &Path, py: &Path) {
    let locked = ours(mpwasm, wasm, "locked");
    assert!(
        locked.iter().all(|r| r.last == TOTAL),
        "W5 locked: an increment was lost"
    );
    let atomic = ours(mpwasm, wasm, "atomic");
    assert!(
        atomic.iter().all(|r| r.last == TOTAL),
        "W5 atomic: an increment was lost"
    );
    let racy = ours(mpwasm, wasm, "racy");
    let (py_locked, py_racy) = (theirs(py, "w5"), theirs(py, "w5racy"));
    let native_locked = median((0..REPS).map(|_| native_locked()).collect());
    let native_atomic = median((0..REPS).map(|_| native_atomic()).collect());
    let call = call_ns(mpwasm, wasm);
    let (ours_locked, ours_atomic, py_rate) = (rate(&locked), rate(&atomic), rate(&py_locked));
    // A locked increment is acquire, get, set, release, each a helper call
    // on the guest's window (a busy lock: a host call to wait); an atomic
    // one is one helper call. `call` is one uncontended `get`.
    println!(
        "| W5 | locked counter, 2 × 100k, final 200000 | {:.2} M ops/s (in guest code; one get {call:.0} ns) | {:.2} M ops/s | {:.2}× | {:.1} M ops/s (2 threads × 1M, futex mutex) | ≥ 20 M locked |",
        ours_locked / 1e6,
        py_rate / 1e6,
        ours_locked / py_rate,
        native_locked / 1e6
    );
    println!(
        "| W5 | atomic add, 2 × 100k, final 200000 (mpwasm only) | {:.2} M ops/s | – (locked: {:.2} M ops/s) | {:.1}× the locked Python | {:.1} M ops/s (2 threads × 1M, atomic add) | ≥ 50 M atomic |",
        ours_atomic / 1e6,
        py_rate / 1e6,
        ours_atomic / py_rate,
        native_atomic / 1e6
    );
    println!(
        "| W5 | racy `v.value += 1`, 2 × 100k: updates lost | {:.0} % lost ({:.2} M ops/s) | {:.0} % lost ({:.2} M ops/s) | – | – | – |",
        lost(&racy),
        rate(&racy) / 1e6,
        lost(&py_racy),
        rate(&py_racy) / 1e6
    );
}

/// Rounds per second of `bench_state.wasm <how>` (median of `REPS`), each
/// run checked to have done all of them.
fn sync_rounds(mpwasm: &Path, wasm: &Path, how: &str) -> f64 {
    let rounds = |json: serde_json::Value| {
        assert_eq!(json["final"], 20_000, "{how}: {json}");
        json["rounds_per_s"].as_f64().expect("rounds_per_s")
    };
    median((0..REPS).map(|_| rounds(run(mpwasm, wasm, how))).collect())
}

/// The same in CPython (median of 3).
fn py_sync_rounds(py: &Path, which: &str) -> f64 {
    median(
        (0..3)
            .map(|_| {
                cpython(py, which)["rounds_per_s"]
                    .as_f64()
                    .expect("rounds_per_s")
            })
            .collect(),
    )
}

/// W5 sync rounds: a 2-party Barrier and a Condition ping-pong between two
/// processes.
pub fn w5sync(mpwasm: &Path, wasm: &Path, py: &Path) {
    for (how, which, what) in [
        (
            "barrier",
            "w5barrier",
            "Barrier(2) passed by 2 processes, 20k times",
        ),
        (
            "condition",
            "w5condition",
            "Condition ping-pong (notify + wait_for) between 2 processes, 20k rounds",
        ),
    ] {
        let ours = sync_rounds(mpwasm, wasm, how);
        let theirs = py_sync_rounds(py, which);
        println!(
            "| W5 | {what} | {:.1} k rounds/s | {:.1} k rounds/s | {:.2}× | – | – |",
            ours / 1e3,
            theirs / 1e3,
            ours / theirs
        );
    }
}
