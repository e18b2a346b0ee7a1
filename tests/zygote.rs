//! Zygotes (issue 11): worker processes forked from a per-run zygote, in
//! this process (the test is the broker, so its own children, zombies and
//! descriptors are what is checked). The tests run one at a time: each
//! counts this process's children and descriptors.

mod common;
use common::*;

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Serializes the tests of this file (see the module docs).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A child process of this one, from `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Child {
    pid: u32,
    /// Its name: `mpwasm-zygote`, `mpwasm-worker` (forked), `mpwasm`
    /// (exec'd).
    comm: String,
    zombie: bool,
    /// Started with `exec` as a worker (its environment names the worker's
    /// parent; a forked worker's and a zygote's name the zygote's parent).
    /// A zygote is also named `mpwasm` until it renames itself, so the
    /// name alone does not tell an exec'd worker.
    execd_worker: bool,
}

fn children() -> Vec<Child> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, then ppid.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        if fields.next().and_then(|p| p.parse::<u32>().ok()) != Some(me) {
            continue;
        }
        let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let execd_worker = environ
            .split(|&b| b == 0)
            .any(|var| var.starts_with(b"MPWASM_WORKER_PARENT="));
        out.push(Child {
            pid,
            comm,
            zombie: state == Some("Z"),
            execd_worker,
        });
    }
    out
}

fn named(name: &str) -> Vec<u32> {
    children()
        .into_iter()
        .filter(|c| c.comm == name && !c.zombie)
        .map(|c| c.pid)
        .collect()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits (at most 5 s, polling) until `done` holds; whether it did.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// A pool's workers are forked by its zygote; SIGKILL the zygote (and a
/// worker, so one must be started again): the pool starts another zygote,
/// which forks the replacement, and every input is answered.
#[test]
fn a_killed_zygote_is_replaced() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = pool("testkit", 2);
    let squares: Vec<i64> = pool.starmap("add", (0..20i64).map(|i| (i, i))).unwrap();
    assert_eq!(squares, (0..20).map(|i| 2 * i).collect::<Vec<i64>>());
    // The first worker may have answered everything while the second was
    // still starting (a just-forked child is named after the zygote until
    // it renames itself): wait until both are up.
    let settled = || named("mpwasm-zygote").len() == 1 && named("mpwasm-worker").len() == 2;
    assert!(eventually(settled), "{:?}", children());
    let zygotes = named("mpwasm-zygote");
    assert_eq!(zygotes.len(), 1, "one zygote: {:?}", children());
    let workers = named("mpwasm-worker");
    assert_eq!(workers.len(), 2, "two forked workers: {:?}", children());

    // SAFETY: kill(2) on our own child processes.
    unsafe {
        libc::kill(zygotes[0] as i32, libc::SIGKILL);
        libc::kill(workers[0] as i32, libc::SIGKILL);
    }
    assert!(eventually(|| !named("mpwasm-worker").contains(&workers[0])));
    // The pool notices the dead worker when its driver next takes an
    // input; the live worker may take a whole map first. Map until the
    // replacement is up (bounded by `eventually`'s 5 s).
    let replaced = eventually(|| {
        let sums: Vec<i64> = pool.starmap("add", (0..20i64).map(|i| (i, 1))).unwrap();
        assert_eq!(sums, (1..21).collect::<Vec<i64>>());
        settled()
    });
    assert!(replaced, "no replacement: {:?}", children());
    let now = children();
    let zygotes_now = named("mpwasm-zygote");
    assert_eq!(zygotes_now.len(), 1, "a zygote again: {now:?}");
    assert_ne!(zygotes_now[0], zygotes[0], "a new one: {now:?}");
    assert!(
        !now.iter().any(|c| c.pid == zygotes[0]),
        "the killed zygote was reaped: {now:?}"
    );
    let forked = named("mpwasm-worker");
    assert_eq!(forked.len(), 2, "the replacement was forked too: {now:?}");
    assert!(forked.contains(&workers[1]), "{now:?}");

    drop(pool);
    assert!(
        eventually(|| children().is_empty()),
        "the pool's workers and zygote are gone with it: {:?}",
        children()
    );
}

/// A pool's drivers ask for their workers together: the zygote forks them
/// in one batch and each driver takes one. All eight are forked from one
/// zygote, and none (nor any forked and not taken) outlives the pool, as a
/// process or a zombie; no descriptor is left behind.
#[test]
fn workers_asked_for_together_are_all_forked_and_none_outlives_the_pool() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Counted after the first round, which makes what lives as long as
    // this process (the spawner thread).
    let mut fds = usize::MAX;
    for round in 0..3 {
        let pool = pool("testkit", 8);
        let sums: Vec<i64> = pool.starmap("add", (0..64i64).map(|i| (i, i))).unwrap();
        assert_eq!(sums, (0..64).map(|i| 2 * i).collect::<Vec<i64>>());
        let settled = || named("mpwasm-zygote").len() == 1 && named("mpwasm-worker").len() == 8;
        assert!(eventually(settled), "round {round}: {:?}", children());
        drop(pool);
        assert!(
            eventually(|| children().is_empty()),
            "round {round}: the pool's workers and zygote are gone with it: {:?}",
            children()
        );
        if round == 0 {
            fds = open_fds();
        }
    }
    assert!(
        eventually(|| open_fds() <= fds),
        "{} descriptors open after the pools, {fds} before",
        open_fds()
    );
}

/// 1,000 `Process` starts and joins in a loop (a guest's main run in this
/// process): every one forked, none left as a zombie, no descriptor left
/// behind once the run is over.
#[test]
fn a_thousand_process_starts_leave_no_zombie_and_no_descriptor() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run = |n: u32| {
        let pool = pool_builder("msgkit")
            .processes(1)
            .args([
                "msgkit.wasm".to_string(),
                "start_join".into(),
                n.to_string(),
            ])
            .build()
            .unwrap();
        assert_eq!(pool.run_main().unwrap(), 0, "{n} starts");
        drop(pool);
        assert!(
            eventually(|| children().is_empty()),
            "after {n} starts: {:?}",
            children()
        );
    };
    // A first run makes what lives as long as this process (the spawner
    // thread, the cache's files are closed again).
    run(5);
    let fds = open_fds();

    let sampling = std::sync::atomic::AtomicBool::new(true);
    let (peak, forked) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut peak, mut forked) = (0, false);
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let now = children();
                peak = peak.max(now.iter().filter(|c| !c.zombie).count());
                forked |= now.iter().any(|c| c.comm == "mpwasm-worker");
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak, forked)
        });
        run(1000);
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    assert!(forked, "the processes were forked from the zygote");
    // Main, the process it runs, and the zygote.
    assert!(peak <= 3, "{peak} live children at once");
    assert!(
        eventually(|| open_fds() <= fds),
        "{} descriptors open after the run, {fds} before",
        open_fds()
    );
}

/// A guest with a window (issue 12: its Lock taken in guest code, in the
/// window) gets its workers forked too: the zygote maps its artifact with
/// the window engine, and each forked worker reserves its own window. Were
/// the zygote's engine the plain one, it could not map the artifact and
/// the run would exec its workers (named `mpwasm`).
#[test]
fn a_window_guests_processes_are_forked() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = pool_builder("lock_counter").processes(1).build().unwrap();
    let sampling = std::sync::atomic::AtomicBool::new(true);
    let (forked, execd) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut forked, mut execd) = (0, 0);
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let now = children();
                let live = |name| now.iter().filter(|c| c.comm == name && !c.zombie).count();
                forked = live("mpwasm-worker").max(forked);
                let execd_now = now.iter().filter(|c| c.execd_worker && !c.zombie).count();
                execd = execd_now.max(execd);
                std::thread::sleep(Duration::from_millis(2));
            }
            (forked, execd)
        });
        assert_eq!(pool.run_main().unwrap(), 0, "lock_counter's main");
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    // Main's own worker lives through the run: seen either way.
    assert!(forked >= 1, "no forked worker seen");
    assert_eq!(execd, 0, "exec'd workers");
    drop(pool);
    assert!(eventually(|| children().is_empty()), "{:?}", children());
}

/// A worker program that cannot be a zygote (here a script that exits in
/// zygote mode and runs `mpwasm` otherwise): the run starts its workers
/// with `exec` instead, and they work.
#[test]
fn a_refused_fork_path_falls_back_to_exec() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("worker.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -n \"$MPWASM_ZYGOTE_PARENT\" ] && exit 3\nexec '{}' \"$@\"\n",
            mpwasm_bin().display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();

    let pool = pool_builder("testkit")
        .worker_program(&script)
        .processes(2)
        .build()
        .unwrap();
    let sums: Vec<i64> = pool.starmap("add", (0..20i64).map(|i| (i, 1))).unwrap();
    assert_eq!(sums, (1..21).collect::<Vec<i64>>());
    // The second worker may still be starting if the first answered all.
    assert!(eventually(|| children().len() == 2), "{:?}", children());
    let now = children();
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter().all(|c| c.comm == "mpwasm" && !c.zombie),
        "exec'd workers only, the failed zygote reaped: {now:?}"
    );
    drop(pool);
    assert!(eventually(|| children().is_empty()), "{:?}", children());
}

/// The executables of this process's live children (zygotes and workers).
fn children_exes() -> Vec<std::path::PathBuf> {
    children()
        .into_iter()
        .filter(|c| !c.zombie)
        .filter_map(|c| std::fs::read_link(format!("/proc/{}/exe", c.pid)).ok())
        .collect()
}

/// With `mpwasm-worker` of this build beside the `mpwasm` binary (what
/// `make build` and `make test` leave in target/release), a pool given
/// `mpwasm` runs its zygote and every worker from the runtime-only worker.
#[test]
fn the_runtime_only_worker_beside_mpwasm_is_used() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = mpwasm_bin().with_file_name("mpwasm-worker");
    assert!(
        runtime.is_file(),
        "{} is missing: build it with scripts/build-worker.sh (make test does)",
        runtime.display()
    );
    let runtime = runtime.canonicalize().unwrap();
    let pool = pool("testkit", 2);
    let sums: Vec<i64> = pool.starmap("add", (0..20i64).map(|i| (i, 1))).unwrap();
    assert_eq!(sums, (1..21).collect::<Vec<i64>>());
    let exes = children_exes();
    assert_eq!(exes.len(), 3, "a zygote and two workers: {:?}", children());
    assert!(
        exes.iter().all(|exe| *exe == runtime),
        "all run {}: {exes:?}",
        runtime.display()
    );
    drop(pool);
    assert!(eventually(|| children().is_empty()), "{:?}", children());
}

/// `mpwasm --version` names the build id that `mpwasm-worker --build-id`
/// answers and the pool checks (the bench refuses to measure when they
/// differ).
#[test]
fn mpwasm_version_names_the_build_the_worker_answers() {
    let answer = |program: &std::path::Path, arg: &str| {
        let out = std::process::Command::new(program)
            .arg(arg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{} {arg}: {out:?}", program.display());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let version = answer(&mpwasm_bin(), "--version");
    assert_eq!(
        version,
        format!(
            "mpwasm {} (build {})",
            env!("CARGO_PKG_VERSION"),
            mpwasm::BUILD_ID
        )
    );
    let worker = mpwasm_bin().with_file_name("mpwasm-worker");
    assert_eq!(answer(&worker, mpwasm::BUILD_ID_ARG), mpwasm::BUILD_ID);
}

/// Without a runtime-only worker beside `mpwasm` (a directory holding only
/// a link to it), or with one of another build (here a script answering
/// another build id), the run's zygote and workers are `mpwasm` itself, as
/// before the runtime-only worker existed.
#[test]
fn without_a_runtime_only_worker_of_this_build_mpwasm_is_the_worker() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let whole = mpwasm_bin().canonicalize().unwrap();
    let absent = tempfile::tempdir().unwrap();
    let stale = tempfile::tempdir().unwrap();
    let script = stale.path().join("mpwasm-worker");
    std::fs::write(&script, "#!/bin/sh\necho 0123456789abcdef\n").unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();

    for dir in [absent.path(), stale.path()] {
        let link = dir.join("mpwasm");
        std::os::unix::fs::symlink(&whole, &link).unwrap();
        let pool = pool_builder("testkit")
            .worker_program(&link)
            .processes(2)
            .build()
            .unwrap();
        let sums: Vec<i64> = pool.starmap("add", (0..20i64).map(|i| (i, 1))).unwrap();
        assert_eq!(sums, (1..21).collect::<Vec<i64>>());
        let exes = children_exes();
        assert_eq!(exes.len(), 3, "a zygote and two workers: {:?}", children());
        assert!(
            exes.iter().all(|exe| *exe == whole),
            "all run {} ({}): {exes:?}",
            whole.display(),
            dir.display()
        );
        drop(pool);
        assert!(eventually(|| children().is_empty()), "{:?}", children());
    }
}

/// Several `mpwasm pool` processes compiling one guest into one fresh cache
/// at once, as CI's first tests do: each publishes the artifact by renaming
/// its copy over the path, possibly while another's zygote is loading it.
/// A zygote once found the descriptors to keep by that path, and a rename
/// in between left its children without the mapped artifact ("cannot start
/// worker process: Bad file descriptor"). A race: this run may miss it,
/// but must never see it.
#[test]
fn pools_compiling_one_guest_into_a_fresh_cache_at_once_all_start() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let kit = guest("testkit");
    for _round in 0..3 {
        let cache = cache_dir();
        let runs: Vec<_> = (0..6)
            .map(|_| {
                let (kit, cache) = (kit.clone(), cache.path().to_path_buf());
                std::thread::spawn(move || {
                    run_mpwasm_in(
                        &cache,
                        &[
                            "pool",
                            kit.to_str().unwrap(),
                            "--task",
                            "unlucky",
                            "-j",
                            "2",
                        ],
                        "1\n2\n3\n4\n",
                    )
                })
            })
            .collect();
        for run in runs {
            let out = run.join().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert_eq!(stdout(&out), "2\n4\n6\n8\n");
        }
    }
}
