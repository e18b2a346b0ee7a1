//! Sandbox limits and grants, enforced on real guests in real workers:
//! deadlines, memory caps, fuel, and capabilities that are off by default.

mod common;
use common::*;

use std::time::{Duration, Instant};

use mpwasm::{Error, TaskErrorKind};

fn kind_of<T: std::fmt::Debug>(r: mpwasm::Result<T>) -> TaskErrorKind {
    match r {
        Err(Error::Task(e)) => e.kind,
        other => panic!("expected a task error, got {other:?}"),
    }
}

/// Runs the `spin` task `times` times on the one-worker `pool`, each to its
/// deadline (`Timeout`), and asserts each was stopped in its instance: the
/// worker that answered before answers after (`why` if not), not a
/// replacement the watchdog started.
fn assert_spins_stopped_in_their_instance(pool: &mpwasm::Pool, times: usize, why: &str) {
    let before: Identity = pool.apply("whoami", 0i64).unwrap();
    for _ in 0..times {
        assert_eq!(
            kind_of(pool.apply::<i64, i64>("spin", 0)),
            TaskErrorKind::Timeout
        );
    }
    let after: Identity = pool.apply("whoami", 0i64).unwrap();
    assert_eq!(before.pid, after.pid, "{why}");
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let pool = pool_builder("testkit")
        .processes(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    // Each spin was stopped in its instance by the deadline, not by the
    // watchdog replacing the worker: the same worker process answers, and
    // its instance was reset, not lost.
    assert_spins_stopped_in_their_instance(&pool, 5, "a spin was stopped by killing its worker");
    assert_eq!(pool.apply::<(i64, i64), i64>("add", (2, 3)).unwrap(), 5);
}

#[test]
fn deadline_checks_are_compiled_only_into_the_artifact_of_runs_with_a_deadline() {
    // One private cache: a pool without a deadline compiles the guest
    // without epoch checks. A pool with one must get its own artifact: on
    // the first, a spin would run on until the watchdog killed its worker;
    // on its own, the spin is stopped in its instance and the same worker
    // answers next.
    let cache = cache_dir();
    let builder = || {
        mpwasm::Pool::builder(guest("testkit"))
            .worker_program(mpwasm_bin())
            .cache(mpwasm::Cache::new(cache.path()))
            .processes(1)
    };
    let plain = builder().build().unwrap();
    assert_eq!(plain.apply::<(i64, i64), i64>("add", (1, 2)).unwrap(), 3);
    drop(plain);
    let timed = builder()
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert_spins_stopped_in_their_instance(
        &timed,
        1,
        "the spin was stopped by replacing its worker, not in its instance",
    );
    let artifacts = std::fs::read_dir(cache.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert_eq!(artifacts, 2, "one artifact with epoch checks, one without");
}

#[test]
fn a_task_blocked_in_a_host_call_is_stopped_by_the_watchdog() {
    let pool = pool_builder("testkit")
        .processes(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let t = Instant::now();
    // Sleeping blocks in the host, where epoch interruption cannot reach.
    let r = pool.apply::<u64, u64>("sleep_ms", 10_000);
    assert_eq!(kind_of(r), TaskErrorKind::Timeout);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(pool.apply::<u64, u64>("sleep_ms", 1).unwrap(), 1);
}

#[test]
fn deadlines_apply_per_input_and_spare_the_others() {
    let pool = pool_builder("testkit")
        .processes(2)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let results: Vec<mpwasm::Result<u64>> = pool.imap("sleep_ms", [10u64, 5_000, 20, 30]).collect();
    assert_eq!(results[0].as_ref().unwrap(), &10);
    assert!(matches!(&results[1], Err(Error::Task(e)) if e.kind == TaskErrorKind::Timeout));
    assert_eq!(results[2].as_ref().unwrap(), &20);
    assert_eq!(results[3].as_ref().unwrap(), &30);
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_memory_bomb_under_a_cap_fails_its_task_and_the_host_stays_steady() {
    let pool = pool_builder("testkit")
        .processes(1)
        .memory_limit(64 << 20)
        .build()
        .unwrap();
    assert_eq!(pool.apply::<usize, usize>("alloc_mib", 8).unwrap(), 8 << 8);
    let before = vm_rss_kib();
    for _ in 0..10 {
        let r = pool.apply::<usize, usize>("alloc_mib", 1024);
        match r {
            Err(Error::Task(e)) => {
                assert_eq!(e.kind, TaskErrorKind::ResourceLimit);
                assert!(e.message.contains("memory limit"), "{}", e.message);
            }
            other => panic!("expected the cap to stop it: {other:?}"),
        }
    }
    let grown = vm_rss_kib().saturating_sub(before);
    assert!(grown < 16 << 10, "host RSS grew by {grown} KiB");
    assert_eq!(pool.apply::<usize, usize>("alloc_mib", 8).unwrap(), 8 << 8);
}

#[test]
fn fuel_is_a_deterministic_budget() {
    let pool = pool_builder("testkit")
        .processes(1)
        .fuel(1_000_000)
        .build()
        .unwrap();
    assert_eq!(pool.apply::<u64, u64>("busy", 1000).unwrap(), 0);
    for _ in 0..3 {
        let r = pool.apply::<u64, u64>("busy", 1_000_000_000);
        assert_eq!(kind_of(r), TaskErrorKind::ResourceLimit);
    }
    assert_eq!(pool.apply::<u64, u64>("busy", 1001).unwrap(), 1000);
}

#[test]
fn files_env_and_network_are_denied_by_default() {
    let pool = pool("testkit", 1);
    let secret = std::env::temp_dir().join("mpwasm-sandbox-test-secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let r: mpwasm::Result<Result<String, String>> =
        pool.apply("read_file", secret.display().to_string());
    assert!(
        matches!(&r, Err(Error::Task(e)) if e.kind == TaskErrorKind::Failed),
        "{r:?}"
    );
    let r: mpwasm::Result<Result<String, String>> =
        pool.apply("read_file", "/etc/passwd".to_string());
    assert!(
        matches!(&r, Err(Error::Task(e)) if e.kind == TaskErrorKind::Failed),
        "{r:?}"
    );
    let home: Option<String> = pool.apply("env_var", "HOME".to_string()).unwrap();
    assert_eq!(home, None);
    let net: mpwasm::Result<String> = pool.apply("connect", "127.0.0.1:9".to_string());
    assert!(
        matches!(&net, Err(Error::Task(e)) if e.kind == TaskErrorKind::Failed),
        "{net:?}"
    );
}

#[test]
fn grants_open_exactly_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "granted").unwrap();
    let rw = pool_builder("testkit")
        .processes(1)
        .preopen_dir(dir.path(), "/data", false)
        .env("GREETING", "hello")
        .build()
        .unwrap();
    let text: String = rw.apply("read_file", "/data/in.txt".to_string()).unwrap();
    assert_eq!(text, "granted");
    let n: usize = rw
        .apply(
            "write_file",
            ("/data/out.txt".to_string(), "abc".to_string()),
        )
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "abc"
    );
    let g: Option<String> = rw.apply("env_var", "GREETING".to_string()).unwrap();
    assert_eq!(g.as_deref(), Some("hello"));
    // Outside the grant: still nothing.
    let r: mpwasm::Result<String> = rw.apply("read_file", "/etc/passwd".to_string());
    assert!(r.is_err());

    let ro = pool_builder("testkit")
        .processes(1)
        .preopen_dir(dir.path(), "/data", true)
        .build()
        .unwrap();
    let text: String = ro.apply("read_file", "/data/in.txt".to_string()).unwrap();
    assert_eq!(text, "granted");
    let w: mpwasm::Result<usize> =
        ro.apply("write_file", ("/data/new.txt".to_string(), "x".to_string()));
    assert!(
        matches!(&w, Err(Error::Task(e)) if e.kind == TaskErrorKind::Failed),
        "{w:?}"
    );
    assert!(!dir.path().join("new.txt").exists());
}

#[test]
fn cli_sandbox_flags() {
    let kit = guest("testkit");
    let kit = kit.to_str().unwrap();
    let out = run_mpwasm(
        &["pool", kit, "-t", "spin", "--task-timeout", "150ms"],
        "1\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"kind\":\"timeout\""),
        "{}",
        stdout(&out)
    );
    let out = run_mpwasm(
        &["pool", kit, "-t", "alloc_mib", "--memory", "32MiB"],
        "4\n256\n",
    );
    assert_eq!(stdout(&out).lines().next(), Some("1024"));
    assert!(
        stdout(&out).contains("\"kind\":\"resource_limit\""),
        "{}",
        stdout(&out)
    );
    let out = run_mpwasm(&["pool", kit, "-t", "env_var", "--env", "A=1"], "\"A\"\n");
    assert_eq!(stdout(&out), "\"1\"\n");
    let out = run_mpwasm(
        &["pool", kit, "-t", "busy", "--fuel", "1000000"],
        "100\n100000000\n",
    );
    assert_eq!(stdout(&out).lines().next(), Some("0"));
    assert!(stdout(&out).contains("resource_limit"));
    let out = run_mpwasm(&["pool", kit, "-t", "spin", "--memory", "lots"], "1\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--memory"), "{}", stderr(&out));
}

#[test]
fn workers_are_locked_down_and_inherit_no_stray_descriptors() {
    // A descriptor this process leaks on purpose (no O_CLOEXEC).
    let dir = tempfile::tempdir().unwrap();
    let leak = dir.path().join("leaked-descriptor");
    std::fs::write(&leak, "x").unwrap();
    let c = std::ffi::CString::new(leak.to_str().unwrap()).unwrap();
    // SAFETY: a plain open(2) of a path we own; the descriptor is closed below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(fd > 2);

    let pool = pool("testkit", 1);
    let id: Identity = pool.apply("whoami", 0i64).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", id.pid)).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(field("NoNewPrivs:"), "1", "no_new_privs set");
    assert_eq!(field("Seccomp:"), "2", "seccomp filter installed");
    for entry in std::fs::read_dir(format!("/proc/{}/fd", id.pid))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        assert_ne!(target, leak, "worker inherited fd {:?}", entry.file_name());
    }
    // SAFETY: `fd` was opened above and is not used elsewhere.
    unsafe { libc::close(fd) };
}

#[test]
fn a_pool_with_a_deadline_still_answers_after_idling() {
    let pool = pool_builder("testkit")
        .processes(1)
        .task_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    // Idle well past the deadline: calls made later are armed afresh.
    std::thread::sleep(Duration::from_millis(200));
    assert!(pool.task_names().unwrap().contains(&"spin".to_string()));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(pool.apply::<(i64, i64), i64>("add", (1, 2)).unwrap(), 3);
}

#[test]
fn cli_grants_and_worker_policies() {
    let kit = guest("testkit");
    let kit = kit.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "via --dir").unwrap();
    let grant = format!("{}::/data:ro", dir.path().display());
    let out = run_mpwasm(
        &["pool", kit, "-t", "read_file", "--dir", &grant],
        "\"/data/in.txt\"\n",
    );
    assert_eq!(stdout(&out), "\"via --dir\"\n", "{}", stderr(&out));
    let out = run_mpwasm(
        &["pool", kit, "-t", "write_file", "--dir", &grant],
        "[\"/data/new.txt\", \"x\"]\n",
    );
    assert!(
        stdout(&out).contains("\"kind\":\"failed\""),
        "read-only: {}",
        stdout(&out)
    );
    assert!(!dir.path().join("new.txt").exists());

    let mut child = std::process::Command::new(mpwasm_bin())
        .args(["pool", kit, "-t", "env_var", "--inherit-env"])
        .env("MPWASM_CACHE_DIR", shared_cache())
        .env("MPWASM_TEST_MARKER", "inherited")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"\"MPWASM_TEST_MARKER\"\n").unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\"inherited\"\n");

    let out = run_mpwasm(
        &[
            "pool",
            kit,
            "-t",
            "whoami",
            "-j",
            "1",
            "--chunksize",
            "1",
            "--maxtasksperchild",
            "1",
            "--retries",
            "1",
        ],
        "1\n2\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pids: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["pid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1], "a fresh worker per task");
    let out = run_mpwasm(&["pool", kit, "-t", "read_file", "--dir", "::/x"], "1\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HOST[::GUEST][:ro]"),
        "{}",
        stderr(&out)
    );
}
