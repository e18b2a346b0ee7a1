//! The reliability figures of the README: how mpwasm behaves when things go
//! wrong, measured rather than asserted (`make bench` prints them after the
//! performance table; `tests/faults.rs` and `tests/sandbox.rs` check the
//! behaviour itself).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mpwasm::{Error, TaskErrorKind};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sigkill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            == Some(parent)
        {
            out.push(pid);
        }
    }
    out
}

/// Prints the reliability table rows.
pub fn run(kit: &Path, mpwasm: &Path) {
    println!();
    println!("| scenario | tries | hangs | figure |");
    println!("|---|---|---|---|");
    deadline(kit);
    kills(kit);
    recovery(kit);
    memory_bomb(kit);
    parent_death(
        kit,
        mpwasm,
        "KILL",
        "parent SIGKILL: last worker gone after",
    );
    parent_death(
        kit,
        mpwasm,
        "INT",
        "Ctrl-C (SIGINT): parent and workers gone after",
    );
}

fn deadline(kit: &Path) {
    let pool = mpwasm::Pool::builder(kit)
        .processes(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let _: i64 = pool.apply("add", (1i64, 1i64)).unwrap();
    let mut over = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let r = pool.apply::<i64, i64>("spin", 0);
        assert!(matches!(r, Err(Error::Task(ref e)) if e.kind == TaskErrorKind::Timeout));
        over.push((t.elapsed().as_secs_f64() - 0.2) * 1000.0);
    }
    println!(
        "| infinite loop, 200 ms deadline | 20 | 0 | stopped {:.1} ms after the deadline (median; max {:.1} ms) |",
        median(over.clone()),
        over.iter().cloned().fold(0.0, f64::max)
    );
}

fn kills(kit: &Path) {
    let pool = mpwasm::Pool::builder(kit)
        .processes(2)
        .chunksize(1)
        .build()
        .unwrap();
    let (mut lost, mut answered) = (0, 0);
    for round in 0..50u64 {
        let results = std::thread::scope(|s| {
            let run = s.spawn(|| {
                pool.imap::<u64, u64, _>("sleep_ms", vec![40u64; 8])
                    .collect::<Vec<_>>()
            });
            std::thread::sleep(Duration::from_millis(10 + (round * 37) % 60));
            if let Some(&pid) = pool.worker_pids().get((round % 2) as usize) {
                sigkill(pid);
            }
            run.join().unwrap()
        });
        answered += results.len();
        lost += results.iter().filter(|r| r.is_err()).count();
    }
    println!(
        "| SIGKILL a random worker mid-map (8 inputs each) | 50 | 0 | {answered}/400 inputs answered; {lost} failed with WorkerLost, {} returned |",
        answered - lost
    );
}

fn recovery(kit: &Path) {
    let pool = mpwasm::Pool::builder(kit).processes(1).build().unwrap();
    let mut ms = Vec::new();
    for _ in 0..20 {
        let _: i64 = pool.apply("add", (1i64, 1i64)).unwrap();
        let pid = pool.worker_pids()[0];
        let t = Instant::now();
        sigkill(pid);
        // The next task finds the dead worker, fails or not, then a new one serves.
        loop {
            if pool.apply::<(i64, i64), i64>("add", (1, 1)).is_ok() {
                break;
            }
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "| time to recover: SIGKILL an idle worker, until the pool answers again | 20 | 0 | {:.1} ms (median) |",
        median(ms)
    );
}

fn memory_bomb(kit: &Path) {
    let pool = mpwasm::Pool::builder(kit)
        .processes(1)
        .memory_limit(64 << 20)
        .build()
        .unwrap();
    let mut ms = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = pool.apply::<usize, usize>("alloc_mib", 1024);
        assert!(matches!(r, Err(Error::Task(ref e)) if e.kind == TaskErrorKind::ResourceLimit));
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "| 1 GiB allocation under a 64 MiB cap | 10 | 0 | refused in {:.1} ms (median); the worker carries on |",
        median(ms)
    );
}

fn parent_death(kit: &Path, mpwasm: &Path, signal: &str, label: &str) {
    let mut ms = Vec::new();
    for _ in 0..5 {
        let mut parent = Command::new(mpwasm)
            .args([
                "pool",
                kit.to_str().unwrap(),
                "-t",
                "sleep_ms",
                "-j",
                "2",
                "--chunksize",
                "1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = parent.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, b"5000\n5000\n").unwrap();
        let workers = loop {
            let w = children_of(parent.id());
            if w.len() == 2 {
                break w;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let t = Instant::now();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &parent.id().to_string()])
            .status();
        let _ = parent.wait();
        while workers.iter().any(|&p| alive(p)) {
            assert!(t.elapsed() < Duration::from_secs(5), "workers survived");
            std::thread::sleep(Duration::from_micros(200));
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(stdin);
    }
    println!("| {label} | 5 | 0 | {:.1} ms (median) |", median(ms));
}
