//! W9: W1, W2 and S12 written in Python (`bench/python/w9.py`), run by
//! `mpwasm run` (a Python main with `Pool.map`) beside CPython running the
//! same file, in the same run.

use std::path::Path;
use std::process::Command;

/// Runs `w9.py WHICH` with `cmd` (CPython or `mpwasm run`) and returns its JSON.
fn run(mut cmd: Command, which: &str) -> serde_json::Value {
    let out = cmd.arg(which).output().expect("start w9.py");
    assert!(
        out.status.success(),
        "w9.py {which}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from w9.py")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median of `reps` runs of `w9.py WHICH`'s `key` under mpwasm and CPython.
fn both(mpwasm: &Path, w9: &Path, which: &str, key: &str, reps: usize) -> (f64, f64) {
    let ours = (0..reps)
        .map(|_| {
            let mut cmd = Command::new(mpwasm);
            cmd.arg("run").arg(w9);
            run(cmd, which)[key].as_f64().unwrap()
        })
        .collect();
    let theirs = (0..reps)
        .map(|_| {
            let mut cmd = Command::new("python3");
            cmd.arg(w9);
            run(cmd, which)[key].as_f64().unwrap()
        })
        .collect();
    (median(ours), median(theirs))
}

/// W9: the Python rows of the table.
pub fn w9(mpwasm: &Path, root: &Path) {
    let w9 = root.join("bench/python/w9.py");
    // The first run builds and compiles the Python component (once).
    run(
        {
            let mut cmd = Command::new(mpwasm);
            cmd.arg("run").arg(&w9);
            cmd
        },
        "s12",
    );
    let (ours, theirs) = both(mpwasm, &w9, "w1", "tasks_per_s", 5);
    println!(
        "| W9 W1 | Python guest: Pool(2).map(square, range(200k)) in a Python main, incl. pool start | {:.2} M tasks/s | {:.2} M tasks/s | {:.2}× | – | ≥ 1 M tasks/s |",
        ours / 1e6,
        theirs / 1e6,
        ours / theirs
    );
    let (ours, theirs) = both(mpwasm, &w9, "w2", "secs", 1);
    println!(
        "| W9 W2 | Python guest: count_primes, 64 chunks of [0, 2M), Pool(2) | {ours:.2} s | {theirs:.2} s | {:.2}× CPython's time | – | ≤ 1.6× CPython |",
        ours / theirs
    );
    let (ours, theirs) = both(mpwasm, &w9, "w2one", "secs", 3);
    println!(
        "| W9 W2 floor | Python guest: W2's costliest task, count_primes on [1.97M, 2M), alone in main (the interpreter) | {ours:.2} s | {theirs:.2} s | {:.2}× CPython's time | – | – |",
        ours / theirs
    );
    let (ours, theirs) = both(mpwasm, &w9, "s12", "secs", 5);
    println!(
        "| W9 S12 | Python guest: Value + Lock, 4 × 10 000 increments | {ours:.3} s | {theirs:.3} s | {:.2}× CPython's time | – | faster than CPython |",
        ours / theirs
    );
}
