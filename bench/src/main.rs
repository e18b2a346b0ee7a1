//! Benchmarks W1–W9 of `shared/BENCH.md`: each runs mpwasm and
//! CPython's `multiprocessing` (and, where a target is relative to it, native
//! Rust) in the same run, and prints both and their ratio. Medians of a few
//! repetitions; the machine is shared and noisy, so only the ratios taken
//! side by side mean much.
//!
//! Run with `make bench` (which builds the guests first).

mod boundary;
mod channels;
mod cluster;
mod messaging;
mod python;
mod reliability;
mod shared_state;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const REPS: usize = 5;

fn main() {
    // Native references and workers are this program started again.
    messaging::native_helper();
    mpwasm::init();
    // The library's warnings on stderr (a worker of another build stops the
    // bench before it measures anything: `same_build`).
    mpwasm::init_logging();
    pool16_exec_helper();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let guests = root.join("target/guests");
    let square = guests.join("pool_square.wasm");
    let primes = guests.join("primes.wasm");
    let bench_msg = guests.join("bench_msg.wasm");
    let bench_state = guests.join("bench_state.wasm");
    let testkit = guests.join("testkit.wasm");
    for g in [&square, &primes, &bench_msg, &bench_state, &testkit] {
        assert!(g.is_file(), "{} missing: run `make guests`", g.display());
        mpwasm::Cache::default_location()
            .load(g)
            .expect("compile guest");
    }
    let py = root.join("bench/cpython_bench.py");
    // `mpwasm-bench w3 w8` runs only those; no arguments runs everything.
    let only: Vec<String> = std::env::args().skip(1).map(|a| a.to_lowercase()).collect();
    let wanted = |id: &str| only.is_empty() || only.iter().any(|a| a == id);
    let mpwasm = root.join("target/release/mpwasm");
    assert!(
        mpwasm.is_file(),
        "{} missing: run `make build`",
        mpwasm.display()
    );
    same_build(&root.join("target/release"));
    println!("| id | workload | mpwasm | CPython | ratio | native | target |");
    println!("|---|---|---|---|---|---|---|");
    let msg = messaging::Guest {
        mpwasm: &mpwasm,
        wasm: &bench_msg,
    };
    if wanted("w1") {
        w1(&square, &py);
    }
    if wanted("w2") {
        w2(&primes, &py);
    }
    if wanted("w3") {
        messaging::w3(&msg, &py);
    }
    if wanted("w3") || only.iter().any(|a| a == "w3chan") {
        channels::w3_channels();
    }
    if wanted("w3") || only.iter().any(|a| a == "w3floor") {
        boundary::w3_floor();
    }
    if wanted("w4") {
        messaging::w4(&msg, &py);
    }
    if wanted("w5") {
        shared_state::w5(&mpwasm, &bench_state, &py);
    }
    if wanted("w5sync") {
        shared_state::w5sync(&mpwasm, &bench_state, &py);
    }
    if wanted("w6") {
        w6(&msg, &square, &py);
    }
    if wanted("pool16") {
        pool16(&testkit, &py);
    }
    if wanted("w7") {
        w7(&square, &py);
    }
    if wanted("w8") {
        messaging::w8(&msg, &py);
    }
    if only.iter().any(|a| a == "cluster") {
        cluster::run(&mpwasm, &square, &primes, &testkit);
    }
    if wanted("w9") {
        python::w9(&mpwasm, &root);
    }
    if wanted("reliability") {
        let kit = guests.join("testkit.wasm");
        reliability::run(&kit, &mpwasm);
    }
}

/// Stops the bench unless the `mpwasm` command in `release` and the
/// worker beside it are of this program's build: otherwise a pool runs
/// another worker (`mpwasm` itself, slower to start), or `mpwasm run`
/// measures another build, and the figures are not of these sources.
fn same_build(release: &Path) {
    let answer = |program: &str, arg: &str| {
        let out = Command::new(release.join(program)).arg(arg).output();
        out.map_or_else(
            |e| format!("nothing ({e})"),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let cli = answer("mpwasm", "--version");
    let worker = answer("mpwasm-worker", mpwasm::BUILD_ID_ARG);
    let this = mpwasm::BUILD_ID;
    if !cli.ends_with(&format!("(build {this})")) || worker != this {
        eprintln!(
            "mpwasm-bench: this is build {this}, but `mpwasm --version` says {cli:?} and \
             `mpwasm-worker --build-id` says {worker:?} (in {}): run `make build`",
            release.display()
        );
        std::process::exit(2);
    }
}

fn cpython(py: &Path, which: &str) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(py)
        .arg(which)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from cpython_bench.py")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

/// W1: `Pool(2).map(square, range(200_000))`, including pool start.
fn w1(square: &PathBuf, py: &Path) {
    let ours = median(
        (0..REPS)
            .map(|_| {
                let (d, out) = time(|| {
                    let pool = mpwasm::Pool::builder(square).processes(2).build().unwrap();
                    pool.map::<i64, i64>("square", 0..200_000i64).unwrap()
                });
                assert_eq!(out[199_999], 199_999 * 199_999);
                200_000.0 / d.as_secs_f64()
            })
            .collect(),
    );
    let theirs = median(
        (0..REPS)
            .map(|_| cpython(py, "w1")["tasks_per_s"].as_f64().unwrap())
            .collect(),
    );
    println!(
        "| W1 | tiny map, 200k tasks, 2 workers, incl. pool start | {:.2} M tasks/s | {:.2} M tasks/s | {:.1}× faster | – | ≥ 6 M tasks/s |",
        ours / 1e6,
        theirs / 1e6,
        ours / theirs
    );
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

fn chunks() -> Vec<(u64, u64)> {
    let step = 2_000_000 / 64;
    (0..64).map(|i| (i * step, (i + 1) * step)).collect()
}

/// The same computation in native Rust, on 2 threads pulling chunks.
fn native_primes_2_threads() -> u64 {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let chunks = chunks();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut total = 0;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(lo, hi)) = chunks.get(i) else {
                            return total;
                        };
                        total += (lo..hi).filter(|&n| is_prime(n)).count() as u64;
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

/// W2: `Pool(2).starmap(count_primes, 64 chunks of [0, 2M))`.
fn w2(primes: &PathBuf, py: &Path) {
    let ours = median(
        (0..3)
            .map(|_| {
                let (d, total) = time(|| {
                    let pool = mpwasm::Pool::builder(primes).processes(2).build().unwrap();
                    pool.starmap::<(u64, u64), u64>("count_primes", chunks())
                        .unwrap()
                        .iter()
                        .sum::<u64>()
                });
                assert_eq!(total, 148_933);
                d.as_secs_f64()
            })
            .collect(),
    );
    let native = median(
        (0..3)
            .map(|_| {
                let (d, total) = time(native_primes_2_threads);
                assert_eq!(total, 148_933);
                d.as_secs_f64()
            })
            .collect(),
    );
    let theirs = cpython(py, "w2")["secs"].as_f64().unwrap();
    let serial = cpython(py, "w2serial")["secs"].as_f64().unwrap();
    println!(
        "| W2 | count_primes over 64 chunks of [0, 2M), 2 workers | {ours:.3} s ({:.2}× native) | {theirs:.2} s (serial {serial:.2} s) | {:.1}× faster | {native:.3} s (2 threads) | ≤ 1.5× native |",
        ours / native,
        theirs / ours
    );
}

/// W6: a guest's `Process` start to its first answer, and start + join
/// (its own clock, 50 in sequence: `bench_msg w6`); and a pool of one built
/// from scratch to its first answer (50 times: each pool starts its own
/// zygote, so this is the exec path plus a fork). `MPWASM_NO_ZYGOTE=1`
/// gives the exec-only figures.
fn w6(msg: &messaging::Guest, square: &PathBuf, py: &Path) {
    let json = msg.run("w6");
    let (first, whole) = (
        json["first_ms"].as_f64().unwrap(),
        json["whole_ms"].as_f64().unwrap(),
    );
    let mut fresh = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let pool = mpwasm::Pool::builder(square).processes(1).build().unwrap();
        let _: i64 = pool.apply("square", 0i64).unwrap();
        fresh.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let fresh = median(fresh);
    let theirs = cpython(py, "w6")["ms_per_process"].as_f64().unwrap();
    println!(
        "| W6 | process start: spawn to first answer (start + join) | {first:.2} ms ({whole:.2} ms); a new Pool(1) to its first answer {fresh:.2} ms | – ({theirs:.2} ms, fork) | {:.1}× | – | ≤ 1.0 ms |",
        theirs / whole
    );
}

/// A `Pool(16)` from `build()` until all 16 workers are ready: each of 16
/// single-input chunks sleeps [`POOL16_SLEEP_MS`] in the guest (so no worker
/// takes two), and the sleep is subtracted. Median of [`REPS`]. Workers start
/// when the pool is built, as CPython's `Pool` starts them in its
/// constructor (CPython's figure is the same measure, with `time.sleep`).
/// Beside it, the same with every worker exec'd (`MPWASM_NO_ZYGOTE=1`, in a
/// run of this program of its own).
fn pool16(testkit: &Path, py: &Path) {
    let (ours, started) = pool16_ms(testkit);
    let exec = Command::new(std::env::current_exe().expect("this program"))
        .arg(POOL16_EXEC_ARG)
        .arg(testkit)
        .env("MPWASM_NO_ZYGOTE", "1")
        .output()
        .expect("run the exec'd pool16");
    let exec: f64 = String::from_utf8_lossy(&exec.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    let theirs = cpython(py, "pool16")["ms"].as_f64().unwrap();
    println!(
        "| – | `Pool(16)`: `build()` to all 16 workers ready ({started} started; each answered a {POOL16_SLEEP_MS} ms sleep, subtracted; exec'd: {exec:.2} ms) | {ours:.2} ms | {theirs:.2} ms | {:.1}× | – | ≤ 15 ms |",
        theirs / ours
    );
}

/// How long each of `pool16`'s inputs sleeps.
const POOL16_SLEEP_MS: u64 = 50;

/// This program's argument for [`pool16_exec_helper`].
const POOL16_EXEC_ARG: &str = "--pool16-ms";

/// With [`POOL16_EXEC_ARG`] and a guest: prints `pool16`'s median for that
/// guest and exits (run with `MPWASM_NO_ZYGOTE=1` for the exec'd figure).
fn pool16_exec_helper() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(POOL16_EXEC_ARG) {
        return;
    }
    let guest = PathBuf::from(args.next().expect("a guest"));
    println!("{:.3}", pool16_ms(&guest).0);
    std::process::exit(0);
}

/// `pool16`'s median in ms, and the fewest workers any run started.
fn pool16_ms(testkit: &Path) -> (f64, usize) {
    let mut times = Vec::new();
    let mut started = usize::MAX;
    for _ in 0..REPS {
        let t = Instant::now();
        let pool = mpwasm::Pool::builder(testkit)
            .processes(16)
            .chunksize(1)
            .build()
            .unwrap();
        let _: Vec<u64> = pool.map("sleep_ms", [POOL16_SLEEP_MS; 16]).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0 - POOL16_SLEEP_MS as f64);
        started = started.min(pool.worker_pids().len());
    }
    (median(times), started)
}

fn proc_mib(pid: u32, file: &str, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// W7: VmRSS and Pss of one idle pool worker.
fn w7(square: &PathBuf, py: &Path) {
    let pool = mpwasm::Pool::builder(square).processes(1).build().unwrap();
    let _: Vec<i64> = pool.map("square", 0..10i64).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = pool.worker_pids()[0];
    let rss = proc_mib(pid, "status", "VmRSS:").unwrap_or(f64::NAN);
    let pss = proc_mib(pid, "smaps_rollup", "Pss:").unwrap_or(f64::NAN);
    // `mpwasm-worker` when the runtime-only worker lies beside this program.
    let program = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| Some(exe.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "?".into());
    let theirs = cpython(py, "w7");
    let (trss, tpss) = (
        theirs["rss_mib"].as_f64().unwrap_or(f64::NAN),
        theirs["pss_mib"].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "| W7 | idle worker memory (`{program}`) | {rss:.1} MiB VmRSS ({pss:.1} MiB Pss) | {trss:.1} MiB VmRSS ({tpss:.1} MiB Pss) | {:.1}× smaller | – | ≤ 8 MiB VmRSS |",
        trss / rss
    );
}
