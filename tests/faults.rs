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

/// Pids of the live children of `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the ")" that closes the command name: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        if fields.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent) && state != Some("Z") {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is a zygote (it names itself so).
fn is_zygote(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "mpwasm-zygote")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Starts `mpwasm pool` with `n` workers busy on long sleeps and its stdin
/// held open (so it waits for more input); returns it, its stdin, and the
/// worker pids once all `n` are up.
fn busy_cli(n: usize) -> (std::process::Child, std::process::ChildStdin, Vec<u32>) {
    use std::process::{Command, Stdio};
    let kit = guest("testkit");
    let jobs = n.to_string();
    let mut command = Command::new(mpwasm_bin());
    // A test run started in the background (`cmd &` in a script) inherits
    // SIGINT ignored, as POSIX shells set it for background jobs, and
    // mpwasm rightly keeps that: give it the default, as an interactive
    // shell would, so Ctrl-C is what is tested.
    // SAFETY: signal(2) is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut parent = command
        .args([
            "pool",
            kit.to_str().unwrap(),
            "-t",
            "sleep_ms",
            "-j",
            &jobs,
            "--chunksize",
            "1",
        ])
        .env("MPWASM_CACHE_DIR", shared_cache())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = parent.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, "5000\n".repeat(n).as_bytes()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The workers, and the zygote they were forked from: all must die.
    let (children, workers) = loop {
        let c = children_of(parent.id());
        let w = c.iter().filter(|&&p| !is_zygote(p)).count();
        if w == n || std::time::Instant::now() > deadline {
            break (c, w);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(workers, n, "{n} workers started");
    (parent, stdin, children)
}

#[test]
fn workers_die_with_a_killed_parent() {
    let (mut parent, stdin, workers) = busy_cli(3);
    sigkill(parent.id());
    parent.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let left: Vec<u32> = workers.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "workers outlived their parent: {left:?}");
    drop(stdin);
}

/// A hostile "worker": answers Init with a valid Ready frame, then answers
/// the first request with `reply` (raw bytes) and waits.
fn hostile_worker(dir: &std::path::Path, reply: &str) -> std::path::PathBuf {
    let path = dir.join("hostile-worker");
    let script = format!(
        "#!/usr/bin/env python3\n\
         import os, struct, time\n\
         sock = os.fdopen(0, 'r+b', buffering=0)  # the channel is the worker's stdin\n\
         def read(n):\n    b = b''\n    while len(b) < n: b += sock.read(n - len(b))\n    return b\n\
         def frame(): n = struct.unpack('<I', read(4))[0]; read(1); read(n)  # length, descriptor count, body\n\
         frame()\n\
         sock.write(bytes([2, 0, 0, 0, 0, 0, 5]))  # Ready {{ pid: 5 }}, no descriptors\n\
         frame()\n\
         sock.write({reply})\n\
         time.sleep(30)\n"
    );
    std::fs::write(&path, script).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

#[test]
fn hostile_frames_end_only_that_worker() {
    let dir = tempfile::tempdir().unwrap();
    for (what, reply) in [
        ("1 GiB length prefix", "bytes([0, 0, 0, 64, 0])"),
        ("garbage body", "bytes([8, 0, 0, 0, 0]) + b'\\xff' * 8"),
        ("wrong number of results", "bytes([3, 0, 0, 0, 0, 2, 0, 0])"),
        (
            "descriptors claimed but never sent",
            "bytes([1, 0, 0, 0, 3, 2])",
        ),
        (
            "more descriptors than a frame may carry",
            "bytes([1, 0, 0, 0, 200, 2])",
        ),
    ] {
        let worker = hostile_worker(dir.path(), reply);
        let pool = mpwasm::Pool::builder(guest("pool_square"))
            .worker_program(&worker)
            .cache(mpwasm::Cache::new(shared_cache()))
            .processes(1)
            .chunksize(4)
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let results: Vec<mpwasm::Result<i64>> = pool.imap("square", 1..=4i64).collect();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: no hang"
        );
        assert_eq!(results.len(), 4, "{what}");
        for r in results {
            match r {
                Err(Error::Task(e)) => assert_eq!(e.kind, TaskErrorKind::WorkerLost, "{what}: {e}"),
                other => panic!("{what}: expected WorkerLost, got {other:?}"),
            }
        }
    }
}

/// A small deterministic generator, so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn sigkill_a_random_worker_mid_map_fifty_times() {
    let pool = pool_builder("testkit")
        .processes(2)
        .chunksize(1)
        .build()
        .unwrap();
    let mut rng = Lcg(0x5eed);
    let mut killed_total = 0;
    for round in 0..50 {
        let inputs = vec![40u64; 8];
        let results = std::thread::scope(|s| {
            let run = s.spawn(|| {
                pool.imap::<u64, u64, _>("sleep_ms", inputs)
                    .collect::<Vec<_>>()
            });
            std::thread::sleep(Duration::from_millis(10 + rng.next(60)));
            let pids = pool.worker_pids();
            if !pids.is_empty() {
                sigkill(pids[rng.next(pids.len() as u64) as usize]);
            }
            run.join().unwrap()
        });
        assert_eq!(results.len(), 8, "round {round}: every input answered");
        for r in &results {
            match r {
                Ok(v) => assert_eq!(*v, 40),
                Err(Error::Task(e)) => {
                    assert_eq!(e.kind, TaskErrorKind::WorkerLost, "round {round}: {e}");
                    killed_total += 1;
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        let lost = results.iter().filter(|r| r.is_err()).count();
        assert!(
            lost <= 1,
            "round {round}: one kill loses at most the one input it held ({lost})"
        );
    }
    assert!(killed_total > 0, "the kills did hit running inputs");
    assert_eq!(pool.map::<u64, u64>("sleep_ms", [1u64; 4]).unwrap(), [1; 4]);
}

#[test]
fn retries_rerun_the_inputs_of_a_killed_worker() {
    let pool = pool_builder("testkit")
        .processes(1)
        .chunksize(1)
        .retries(2)
        .build()
        .unwrap();
    let results = std::thread::scope(|s| {
        let run = s.spawn(|| {
            pool.imap::<u64, u64, _>("sleep_ms", vec![300u64, 10])
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(150));
        sigkill(pool.worker_pids()[0]);
        run.join().unwrap()
    });
    let values: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        values,
        [300, 10],
        "the killed input ran again on a new worker"
    );
}

#[test]
fn maxtasksperchild_recycles_workers() {
    let pool = pool_builder("testkit")
        .processes(1)
        .chunksize(1)
        .maxtasksperchild(2)
        .build()
        .unwrap();
    let ids: Vec<Identity> = pool.map("whoami", 0..6i64).unwrap();
    let pids: Vec<u32> = ids.iter().map(|i| i.pid).collect();
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2], "a fresh worker after two tasks");
    assert_eq!(pids[2], pids[3]);
    assert_ne!(pids[3], pids[4]);
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pids[0])).exists(),
        "old worker reaped"
    );
}

#[test]
fn ctrl_c_stops_everything_within_a_second() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;
    let (mut parent, stdin, workers) = busy_cli(2);
    let t = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &parent.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = parent.wait().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    // Killed by SIGINT: what a shell reports as exit status 130.
    assert!(
        exit.signal() == Some(2) || exit.code() == Some(130),
        "{exit:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<u32> = workers.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "workers outlived Ctrl-C: {left:?}");
    drop(stdin);
}

#[test]
fn a_worker_that_dies_while_idle_costs_no_task() {
    let pool = pool_builder("testkit").processes(2).build().unwrap();
    let _: Vec<i64> = pool.map("add", [(1i64, 1i64), (2, 2)]).unwrap();
    for pid in pool.worker_pids() {
        sigkill(pid);
    }
    std::thread::sleep(Duration::from_millis(50));
    // Every input still succeeds: none was ever given to a dead worker.
    let sums: Vec<i64> = pool.starmap("add", (0..20i64).map(|i| (i, i))).unwrap();
    assert_eq!(sums, (0..20i64).map(|i| 2 * i).collect::<Vec<_>>());
}
