//! Tests ported from CPython's multiprocessing test suite.
//!
//! Source: `Lib/test/_test_multiprocessing.py` of CPython
//! (<https://github.com/python/cpython>), Copyright © 2001 Python Software
//! Foundation, used under the PSF License Agreement version 2.
//!
//! Each test here runs one ported CPython test method, a `#[task]` of the
//! `conform` guest (tests/guests/conform) named `<Class>__<method>`, with
//! `mpwasm run conform.wasm <Class>__<method>`: the method runs as the main
//! process, as in CPython, and starts real worker processes, queues, pipes
//! and pools. It passes if the run exits with 0; a failed check prints its
//! file, line and values on stderr and exits with 1. A run that outlives
//! [`GUARD`] is killed and fails the test.
//!
//! A method whose CPython fact does not hold here is kept with the CPython
//! assertion and `#[ignore = "differs: …"]`; README.md's "Differences from
//! CPython" table lists each, and the CPython methods not ported, with the
//! reason.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest one method may run; the slowest takes a few seconds.
const GUARD: Duration = Duration::from_secs(90);

/// What `mpwasm run conform.wasm METHOD` did.
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs one ported method, killing the run after [`GUARD`].
fn run_method(method: &str) -> Outcome {
    let mut child = Command::new(mpwasm_bin())
        .arg("run")
        .arg(guest("conform"))
        .arg(method)
        .env("MPWASM_CACHE_DIR", shared_cache())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpwasm run");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait mpwasm") {
            break status;
        }
        if started.elapsed() > GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{method}: still running after {GUARD:?}, killed\nstderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Runs `method` and asserts that every check in it held.
fn passes(method: &str) {
    let out = run_method(method);
    assert!(
        out.status.success(),
        "{method} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

/// One `#[test]` per ported method (attributes such as `#[ignore]` go
/// before its name), and [`PORTED`], the list of them all.
macro_rules! conformance {
    ($($(#[$attr:meta])* $method:ident,)*) => {
        $(
            $(#[$attr])*
            #[test]
            #[allow(non_snake_case, reason = "named after CPython's Class.method")]
            fn $method() {
                passes(stringify!($method));
            }
        )*

        /// Every ported method this file runs.
        const PORTED: &[&str] = &[$(stringify!($method)),*];
    };
}

conformance! {
    // _TestProcess, _TestSubclassingProcess, TestStartMethod,
    // TestStdinBadfiledescriptor
    TestProcess__test_process,
    TestProcess__test_args_argument,
    TestProcess__test_daemon_argument,
    TestProcess__test_parent_process_attributes,
    TestProcess__test_terminate,
    TestProcess__test_kill,
    TestProcess__test_cpu_count,
    TestProcess__test_active_children,
    TestProcess__test_recursion,
    TestProcess__test_sentinel,
    TestProcess__test_close,
    TestProcess__test_many_processes,
    #[ignore = "differs: std::process::exit(8) in a process gives exit code 1 (0 and 1 hold); \
                WASI preview 2's exit carries only success or failure"]
    TestProcess__test_sys_exit,
    TestSubclassingProcess__test_subclassing,
    TestStartMethod__test_nested_startmethod,
    TestStdinBadfiledescriptor__test_queue_in_process,
    TestStdinBadfiledescriptor__test_pool_in_process,
    // _TestQueue, TestSimpleQueue
    TestQueue__test_put,
    TestQueue__test_get,
    TestQueue__test_fork,
    TestQueue__test_qsize,
    TestQueue__test_task_done,
    TestQueue__test_timeout,
    TestQueue__test_queue_feeder_donot_stop_onexc,
    TestQueue__test_closed_queue_put_get_exceptions,
    TestQueue__test_shutdown_empty,
    TestQueue__test_shutdown_nonempty,
    TestQueue__test_shutdown_immediate,
    TestQueue__test_shutdown_immediate_with_unfinished,
    TestSimpleQueue__test_empty,
    TestSimpleQueue__test_close,
    // _TestLock, _TestSemaphore
    TestLock__test_lock,
    TestLock__test_lock_locked_2processes,
    TestLock__test_rlock,
    TestLock__test_lock_context,
    TestLock__test_rlock_context,
    TestSemaphore__test_semaphore,
    TestSemaphore__test_bounded_semaphore,
    TestSemaphore__test_timeout,
    // _TestCondition, _TestEvent
    TestCondition__test_notify,
    TestCondition__test_notify_all,
    TestCondition__test_notify_n,
    TestCondition__test_timeout,
    TestCondition__test_waitfor,
    TestCondition__test_waitfor_timeout,
    TestCondition__test_wait_result,
    TestEvent__test_event,
    // _TestBarrier
    TestBarrier__test_barrier,
    TestBarrier__test_barrier_10,
    TestBarrier__test_wait_return,
    TestBarrier__test_abort,
    TestBarrier__test_reset,
    TestBarrier__test_abort_and_reset,
    TestBarrier__test_timeout,
    TestBarrier__test_single_thread,
    TestBarrier__test_thousand,
    TestBarrier__test_action,
    TestBarrier__test_default_timeout,
    // _TestValue, _TestArray, _TestSharedCTypes, _TestSharedMemory
    TestValue__test_value,
    TestValue__test_rawvalue,
    TestArray__test_array,
    TestArray__test_rawarray,
    TestArray__test_array_from_size,
    TestSharedCTypes__test_sharedctypes,
    TestSharedCTypes__test_synchronize,
    TestSharedMemory__test_shared_memory_basics,
    TestSharedMemory__test_shared_memory_across_processes,
    TestSharedMemory__test_shared_memory_pickle_unpickle,
    #[ignore = "differs: a block lives while any handle holds it, one in flight too; unlink \
                only removes the name, so the handle still decodes (CPython reattaches by name)"]
    TestSharedMemory__test_shared_memory_pickle_unpickle_dead_object,
    TestSharedMemory__test_invalid_shared_memory_creation,
    TestSharedMemory__test_shared_memory_name_with_embedded_null,
    TestSharedMemory__test_shared_memory_ShareableList_basics,
    TestSharedMemory__test_shared_memory_ShareableList_pickling,
    // _TestContainers, TestSyncManagerTypes
    TestContainers__test_list,
    TestContainers__test_list_proxy_in_list,
    TestContainers__test_dict,
    TestContainers__test_dict_proxy_nested,
    TestContainers__test_nested_queue,
    TestSyncManagerTypes__test_list,
    TestSyncManagerTypes__test_dict,
    TestSyncManagerTypes__test_namespace,
    TestContainers__test_namespace,
    TestSyncManagerTypes__test_event,
    #[ignore = "differs: only the process holding a Lock may release it (a robust lock needs an \
                owner); CPython's may be released by any process"]
    TestSyncManagerTypes__test_lock,
    TestSyncManagerTypes__test_rlock,
    TestSyncManagerTypes__test_semaphore,
    TestSyncManagerTypes__test_bounded_semaphore,
    TestSyncManagerTypes__test_condition,
    TestSyncManagerTypes__test_barrier,
    TestSyncManagerTypes__test_queue,
    TestSyncManagerTypes__test_joinable_queue,
    TestSyncManagerTypes__test_value,
    TestSyncManagerTypes__test_array,
    // _TestPool, _TestPoolWorkerErrors, _TestPoolWorkerLifetime,
    // TestInitializers, MiscTestCase
    TestPool__test_apply,
    TestPool__test_map,
    TestPool__test_starmap,
    TestPool__test_starmap_async,
    TestPool__test_map_async,
    TestPool__test_map_chunksize,
    TestPool__test_async,
    TestPool__test_async_timeout,
    TestPool__test_imap,
    TestPool__test_imap_unordered,
    TestPool__test_make_pool,
    TestPool__test_terminate,
    TestPool__test_empty_iterable,
    TestPool__test_context,
    TestPool__test_traceback,
    TestPool__test_wrapped_exception,
    TestPool__test_map_no_failfast,
    TestPool__test_map_unplicklable,
    TestPoolWorkerErrors__test_unpickleable_result,
    MiscTestCase__test_large_pool,
    TestPool__test_map_async_callbacks,
    TestPoolWorkerErrors__test_async_error_callback,
    TestPoolWorkerLifetime__test_pool_worker_lifetime,
    TestPoolWorkerLifetime__test_pool_worker_lifetime_early_close,
    TestPoolWorkerLifetime__test_pool_maxtasksperchild_invalid,
    TestInitializers__test_pool_initializer,
    // _TestConnection, _TestPoll, _TestPicklingConnections, TestWait
    TestConnection__test_connection,
    TestConnection__test_duplex_false,
    TestConnection__test_spawn_close,
    TestConnection__test_context,
    TestConnection__test_sendbytes,
    TestPoll__test_empty_string,
    TestPoll__test_strings,
    TestPoll__test_boundaries,
    TestPoll__test_dont_merge,
    TestPicklingConnections__test_access,
    TestWait__test_wait,
    TestWait__test_wait_slow,
    TestWait__test_wait_timeout,
    TestWait__test_wait_integer,
    TestWait__test_neg_timeout,
}

/// Every ported method the guest exports is run by a test here, and every
/// test here names a method the guest exports (`mpwasm inspect` lists the
/// guest's tasks; the ported ones are those named `<Class>__<method>`).
#[test]
fn every_ported_method_has_a_test() {
    let out = run_mpwasm(&["inspect", guest("conform").to_str().unwrap()], "");
    assert!(out.status.success(), "inspect: {}", stderr(&out));
    let exported: BTreeSet<String> = stdout(&out)
        .lines()
        .map(str::trim)
        .filter(|task| task.contains("__test_"))
        .map(String::from)
        .collect();
    let tested: BTreeSet<String> = PORTED.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        exported.difference(&tested).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "ported in the guest, not run here"
    );
    assert_eq!(
        tested.difference(&exported).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "run here, not in the guest"
    );
    assert!(tested.len() >= 100, "{} methods ported", tested.len());
}

/// The guest refuses a method it does not have (so a test cannot pass by
/// running nothing).
#[test]
fn an_unknown_method_fails() {
    let out = run_method("TestNothing__test_nothing");
    assert!(!out.status.success());
    assert!(out.stderr.contains("no ported method"), "{}", out.stderr);
}
